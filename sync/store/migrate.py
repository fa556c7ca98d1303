"""Schema migrations: Alembic run from the package's own `migrations/` folder, never from a config file."""

from __future__ import annotations

import logging
from pathlib import Path

import sqlalchemy as sa
import structlog
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy.engine import Connection, Engine

from healthsync.errors import FatalError
from healthsync.redaction import redact
from healthsync.sync.store.engine import connecting, write_connection

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Any constant works; it only has to be the same for every healthsync process sharing a database.
_PG_MIGRATION_LOCK = 0x68_65_61_6C_74_68  # "health"
# Alembic narrates every step at INFO ("Context impl SQLiteImpl."); we log one line per real upgrade.
logging.getLogger("alembic").setLevel(logging.WARNING)
_log = structlog.get_logger(__name__)


def _alembic_config(conn: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if conn is not None:
        cfg.attributes["connection"] = conn
    return cfg


def head_revision() -> str:
    """The newest migration this version of healthsync ships."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    if head is None:
        raise FatalError(f"no migrations found in {MIGRATIONS_DIR}: the installation is incomplete")
    return head


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at (None: never migrated). Never changes the database."""
    with connecting(engine), engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade_to_head(engine: Engine) -> tuple[str | None, str]:
    """Apply every pending migration in one transaction; returns (revision before, revision after)."""
    with connecting(engine), write_connection(engine) as conn:
        if conn.dialect.name == "postgresql":
            # Two processes opening a fresh database at once must not both create the tables.
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        before = MigrationContext.configure(conn).get_current_revision()
        _refuse_unknown_revision(before)
        command.upgrade(_alembic_config(conn), "head")
        after = MigrationContext.configure(conn).get_current_revision() or head_revision()
    if before != after:
        _log.info("store schema upgraded", store=redact(engine.url), from_revision=before, to_revision=after)
    return before, after


def _refuse_unknown_revision(revision: str | None) -> None:
    if revision is None:
        return
    script = ScriptDirectory.from_config(_alembic_config())
    try:
        script.get_revision(revision)
    except CommandError:
        raise FatalError(
            f"the database schema is at revision {revision!r}, which this healthsync does not know "
            f"(newest here: {head_revision()!r}): it was upgraded by a newer healthsync; upgrade this one"
        ) from None
