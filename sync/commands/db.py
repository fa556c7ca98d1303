"""`healthsync db`: create or upgrade the store's schema, and say which schema revision a store is at."""

from __future__ import annotations

from pathlib import Path

import typer
from sqlalchemy.engine import URL

from healthsync.errors import ConfigError, FatalError
from healthsync.redaction import redact
from healthsync.sync.store.engine import create_store_engine, normalise_url
from healthsync.sync.store.migrate import current_revision, head_revision, upgrade_to_head

_CONFIG_HELP = "Config file whose store section names the database (default: $HEALTHSYNC_CONFIG, then ./healthsync.yaml)."
_URL_HELP = "Database URL (sqlite:///path.db or postgresql://user@host/db) instead of --config."


def register(app: typer.Typer) -> None:
    db_app = typer.Typer(help="The store's database schema (migrations).", no_args_is_help=True)
    db_app.command("upgrade")(upgrade)
    db_app.command("current")(current)
    app.add_typer(db_app, name="db")


def upgrade(
    config: Path | None = typer.Option(None, "--config", "-c", help=_CONFIG_HELP),
    url: str | None = typer.Option(None, "--url", help=_URL_HELP),
) -> None:
    """Apply every pending migration (the daemon also does this when it opens the store)."""
    target = store_url(config, url)
    engine = create_store_engine(target)
    try:
        before, after = upgrade_to_head(engine)
    finally:
        engine.dispose()
    where = redact(target)
    if before == after:
        typer.echo(f"{where}: already at {after} (head)")
    else:
        typer.echo(f"{where}: upgraded {before or '(empty)'} -> {after} (head)")


def current(
    config: Path | None = typer.Option(None, "--config", "-c", help=_CONFIG_HELP),
    url: str | None = typer.Option(None, "--url", help=_URL_HELP),
    check: bool = typer.Option(
        False, "--check", help="Exit 1 unless the database is at the newest revision."
    ),
) -> None:
    """Print the store's schema revision and whether it is the newest this healthsync knows."""
    target = store_url(config, url)
    head = head_revision()
    where = redact(target)
    missing_file = _missing_sqlite_file(target)
    if missing_file is not None:
        revision = None
        typer.echo(f"{where}: no database file at {missing_file} (run `healthsync db upgrade` to create it)")
    else:
        engine = create_store_engine(target)
        try:
            revision = current_revision(engine)
        finally:
            engine.dispose()
        typer.echo(f"{where}: {_describe(revision, head)}")
    if check and revision != head:
        # An error rather than typer.Exit: main() maps it to exit 1 in every invocation mode.
        raise FatalError(
            f"the store is not at the newest schema revision {head}: run `healthsync db upgrade`"
        )


def _describe(revision: str | None, head: str) -> str:
    if revision == head:
        return f"{revision} (head)"
    if revision is None:
        return f"empty, no schema yet (head is {head}: run `healthsync db upgrade`)"
    return f"{revision} (head is {head}: run `healthsync db upgrade`)"


def store_url(config: Path | None, url: str | None) -> URL:
    """The store URL from --url, else from the config (--config, $HEALTHSYNC_CONFIG, ./healthsync.yaml)."""
    if config is not None and url is not None:
        raise ConfigError("give either --config or --url, not both")
    if url is not None:
        return normalise_url(url)
    from healthsync.config.loader import load_config  # deferred: only this path needs the config package

    return normalise_url(load_config(config).store.resolved_url)


def _missing_sqlite_file(url: URL) -> Path | None:
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return None
    path = Path(database).expanduser()
    return None if path.exists() else path
