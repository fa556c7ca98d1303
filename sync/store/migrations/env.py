"""Alembic environment for the healthsync store, driven programmatically by `healthsync.sync.store.migrate`."""

from __future__ import annotations

from alembic import context

# healthsync.sync.store.migrate hands over an open connection (inside its transaction); running the
# `alembic` CLI by hand is not supported: use `healthsync db upgrade` instead.
connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "the healthsync migrations run through `healthsync db upgrade` (no connection was given)"
    )

context.configure(
    connection=connection,
    target_metadata=None,
    render_as_batch=True,  # SQLite can only ALTER through table copies
    transaction_per_migration=False,
)
with context.begin_transaction():
    context.run_migrations()
