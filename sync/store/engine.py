"""Opening the store's database: URL rules, the PostgreSQL driver check, per-backend engines and write transactions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from healthsync.errors import ConfigError, RetryableError
from healthsync.redaction import redact
from healthsync.sync.store.columns import dumps_json

SQLITE_BUSY_TIMEOUT_MS = 30_000
POSTGRES_EXTRA_HINT = "pip install 'healthsync[postgres]'"
_URL_HELP = "use sqlite:///path/to/healthsync.db or postgresql://user:password@host:5432/dbname"


class StoreUnavailableError(RetryableError):
    """The database could not be reached or refused the connection."""


def normalise_url(url: str) -> URL:
    """Parse a store URL; PostgreSQL URLs of any spelling go to psycopg 3. Raises ConfigError."""
    text = (url or "").strip()
    if not text:
        raise ConfigError(f"the store URL is empty: {_URL_HELP}")
    try:
        parsed = make_url(text)
    except ArgumentError:
        scheme = text.split("://", 1)[0] if "://" in text else "(no scheme)"
        raise ConfigError(f"the store URL (scheme {scheme!r}) is not a database URL: {_URL_HELP}") from None
    backend, _, driver = parsed.drivername.partition("+")
    if backend in ("postgresql", "postgres"):
        if driver not in ("", "psycopg"):
            raise ConfigError(
                f"store URL driver {parsed.drivername!r} is not supported: healthsync uses psycopg 3 "
                f"(write postgresql:// or postgresql+psycopg://)"
            )
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        if driver not in ("", "pysqlite"):
            raise ConfigError(
                f"store URL driver {parsed.drivername!r} is not supported: write sqlite:///path.db"
            )
        return parsed.set(drivername="sqlite")
    raise ConfigError(f"store backend {backend!r} is not supported: {_URL_HELP}")


def require_driver(url: URL) -> None:
    """ConfigError naming the extra when the URL's backend needs a driver that is not installed.

    psycopg is the `postgres` extra, not a dependency: a SQLite-only install must not need it.
    """
    if url.get_backend_name() != "postgresql":
        return
    try:
        import psycopg  # noqa: F401  (only asking whether it is there)
    except ImportError:
        raise ConfigError(
            f"the store URL is PostgreSQL but psycopg is not installed: {POSTGRES_EXTRA_HINT}"
        ) from None


def create_store_engine(url: str | URL) -> Engine:
    """An engine with the store's JSON encoding and, for SQLite, WAL + IMMEDIATE write transactions."""
    parsed = normalise_url(url if isinstance(url, str) else url.render_as_string(hide_password=False))
    require_driver(parsed)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    return sa.create_engine(parsed, json_serializer=dumps_json, pool_pre_ping=True)


def _sqlite_engine(url: URL) -> Engine:
    database = url.database or ""
    in_memory = database in ("", ":memory:")
    if in_memory:
        engine = sa.create_engine(
            url, json_serializer=dumps_json, poolclass=StaticPool, connect_args={"check_same_thread": False}
        )
    else:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url, json_serializer=dumps_json, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        )
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control from pysqlite so we can choose BEGIN IMMEDIATE for writers.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable with WAL up to the last checkpoint
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    # A deferred transaction that later writes can fail with SQLITE_BUSY without waiting;
    # writers take the write lock up front so busy_timeout applies.
    mode = "IMMEDIATE" if conn.get_execution_options().get("healthsync_write") else "DEFERRED"
    conn.exec_driver_sql(f"BEGIN {mode}")


@contextmanager
def write_connection(engine: Engine) -> Iterator[Connection]:
    """A connection inside one write transaction, committed on success, rolled back on error."""
    with engine.connect() as conn:
        conn.execution_options(healthsync_write=True)
        with conn.begin():
            yield conn


@contextmanager
def connecting(engine: Engine) -> Iterator[None]:
    """Turn a failure to connect (not a failing statement) into one clear, password-free error."""
    try:
        yield
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        if exc.statement is not None:
            raise
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
        raise StoreUnavailableError(f"cannot open the store at {redact(engine.url)}: {reason}") from None


def dialect_insert(conn: Connection, table: sa.Table) -> Any:
    """INSERT with ON CONFLICT support for the connection's backend (SQLite or PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)
