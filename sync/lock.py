"""One daemon per store: an exclusive lock on the store's database, held for the life of the process.

    SQLite file    fcntl.flock(LOCK_EX | LOCK_NB) on `<database file>.lock`; the file says who holds it
                   (pid, host, started_at). The kernel drops the lock when the process dies, even on kill -9.
    PostgreSQL     pg_try_advisory_lock(key) on a dedicated connection kept open; the key is derived from
                   'healthsync', the database and the schema the store lives in, so two stores in one server
                   (or in two schemas of one database) never block each other. The server drops the lock
                   when the connection closes. The connection's application_name says who holds it.
    SQLite memory  private to the process by construction: nothing to lock.

A second holder gets `AlreadyRunningError` naming the pid and host that hold the lock when they are known.
The lock file is never deleted: unlinking a lock file lets two processes lock two different inodes.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from healthsync.errors import FatalError, HealthsyncError
from healthsync.sync.store.engine import normalise_url, require_driver

_KEY_NAMESPACE = b"healthsync\x00store-lock\x00"
_APPLICATION_NAME_MAX = 63  # PostgreSQL truncates application_name to NAMEDATALEN - 1 bytes


class AlreadyRunningError(HealthsyncError):
    """Another healthsync daemon holds this store's lock (the CLI exits 1)."""

    def __init__(self, message: str, *, holder: Holder | None = None):
        super().__init__(message)
        self.holder = holder


class LockLostError(FatalError):
    """The lock we held is gone (e.g. the PostgreSQL connection dropped) and someone else may hold it now."""


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, as far as the lock itself can tell."""

    pid: int | None
    host: str | None
    started_at: str | None = None

    def describe(self) -> str:
        if self.pid is None:
            return f"a process on {self.host} (pid unknown)" if self.host else "another process (pid unknown)"
        where = f" on {self.host}" if self.host else ""
        since = f", since {self.started_at}" if self.started_at else ""
        return f"pid {self.pid}{where}{since}"


class StoreLock(Protocol):
    """A held lock. `ensure_held()` raises LockLostError when it is gone; `release()` is idempotent."""

    description: str

    def ensure_held(self) -> None: ...

    def release(self) -> None: ...


def acquire_store_lock(url: str | URL, *, now: datetime | None = None) -> StoreLock:
    """Take the store's daemon lock without waiting; AlreadyRunningError when another process has it."""
    parsed = normalise_url(url if isinstance(url, str) else url.render_as_string(hide_password=False))
    require_driver(parsed)  # the lock comes before the store opens: say which extra is missing here too
    started_at = (now or datetime.now(UTC)).isoformat()
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:"):
            return MemoryStoreLock()
        return FileLock.acquire(lock_path_for(Path(database)), started_at=started_at)
    return PostgresAdvisoryLock.acquire(parsed, started_at=started_at)


def lock_path_for(database: Path) -> Path:
    """`<database file>.lock`, next to the database (relative paths resolved now, so a chdir can't move it)."""
    path = database.expanduser().resolve()
    return path.with_name(path.name + ".lock")


def this_host() -> str:
    return socket.gethostname() or "unknown-host"


# --- SQLite memory -----------------------------------------------------------------------------------


class MemoryStoreLock:
    """An in-memory SQLite store exists only inside this process, so no other process can run against it."""

    description = "in-memory store (private to this process)"

    def ensure_held(self) -> None:
        return None

    def release(self) -> None:
        return None


# --- SQLite file: flock ------------------------------------------------------------------------------


class FileLock:
    """An flock on `<db>.lock`, whose content names the holder for the error message of the next one."""

    def __init__(self, path: Path, fd: int):
        self.path = path
        self._fd: int | None = fd
        self.description = f"lock file {path}"

    @classmethod
    def acquire(cls, path: Path, *, started_at: str) -> FileLock:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise FatalError(f"cannot open the lock file {path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_holder(fd)
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise FatalError(f"cannot lock {path}: {exc.strerror or exc}") from None
            raise AlreadyRunningError(
                f"healthsync is already running against this store ({holder.describe()} holds {path}); "
                f"stop it first, or point this one at another store",
                holder=holder,
            ) from None
        _write_holder(fd, Holder(os.getpid(), this_host(), started_at))
        return cls(path, fd)

    def ensure_held(self) -> None:
        """The kernel never takes an flock back, but someone can delete the file: then a second daemon
        would lock a new file of the same name, and both would believe they are alone."""
        if self._fd is None:
            raise LockLostError(f"the lock on {self.path} was released")
        try:
            same_file = os.path.samestat(os.fstat(self._fd), os.stat(self.path))
        except FileNotFoundError:
            same_file = False
        if not same_file:
            raise LockLostError(f"the lock file {self.path} was deleted or replaced: stopping, as another daemon may start")

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)  # an empty file means "nobody": a stale pid would mislead the next reader
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _write_holder(fd: int, holder: Holder) -> None:
    content = json.dumps({"pid": holder.pid, "host": holder.host, "started_at": holder.started_at}).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, content + b"\n", 0)
    os.fsync(fd)


def _read_holder(fd: int) -> Holder:
    """What the holder wrote; partial or foreign content (it may be writing right now) means unknown."""
    try:
        data: Any = json.loads(os.pread(fd, 4096, 0) or b"null")
    except (OSError, ValueError):
        data = None
    if not isinstance(data, dict):
        return Holder(None, None)
    pid = data.get("pid")
    return Holder(
        pid if isinstance(pid, int) else None,
        str(data["host"]) if data.get("host") else None,
        str(data["started_at"]) if data.get("started_at") else None,
    )


# --- PostgreSQL: advisory lock -----------------------------------------------------------------------


def advisory_key(database: str, schema: str) -> int:
    """A stable signed 64-bit key for (database, schema): the same in every process and every release."""
    digest = hashlib.sha256(_KEY_NAMESPACE + f"{database}\x00{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _application_name(pid: int, host: str) -> str:
    return f"healthsync pid={pid} host={host}"[:_APPLICATION_NAME_MAX]


class PostgresAdvisoryLock:
    """A session-level advisory lock on a connection that exists only to hold it."""

    def __init__(self, engine: Engine, conn: Connection, key: int, where: str):
        self._engine = engine
        self._conn: Connection | None = conn
        self.key = key
        self.description = f"PostgreSQL advisory lock {key} ({where})"

    @classmethod
    def acquire(cls, url: URL, *, started_at: str) -> PostgresAdvisoryLock:
        engine = sa.create_engine(
            url,
            poolclass=sa.pool.NullPool,
            isolation_level="AUTOCOMMIT",  # the lock is per session: no transaction left open while idle
            connect_args={
                "application_name": _application_name(os.getpid(), this_host()),
                "keepalives": 1,
                "keepalives_idle": 30,
                "keepalives_interval": 10,
                "keepalives_count": 3,
            },
        )
        try:
            conn = engine.connect()
        except sa.exc.OperationalError as exc:
            engine.dispose()
            # str(url) masks the password; the CLI redacts the whole line again as it prints it
            raise FatalError(f"cannot connect to the store {url} to take the daemon lock: {_first_line(exc)}") from None
        try:
            database, schema = conn.execute(sa.text("SELECT current_database(), current_schema()")).one()
            key = advisory_key(database, schema or "")
            got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar_one()
            if not got:
                holder = _advisory_holder(conn, key)
                raise AlreadyRunningError(
                    f"healthsync is already running against this store ({holder.describe()} holds the advisory "
                    f"lock of database {database!r}, schema {schema!r}); stop it first, or point this one at "
                    f"another store",
                    holder=holder,
                )
        except BaseException:
            conn.close()
            engine.dispose()
            raise
        return cls(engine, conn, key, f"database {database!r}, schema {schema!r}")

    def ensure_held(self) -> None:
        """Raise LockLostError unless our session still holds the lock (a dropped connection loses it)."""
        if self._conn is None:
            raise LockLostError(f"the {self.description} was released")
        try:
            held = self._conn.execute(_HELD_BY_US, _key_parts(self.key)).scalar_one()
        except sa.exc.SQLAlchemyError as exc:
            raise LockLostError(f"lost the connection holding the {self.description}: {_first_line(exc)}") from None
        if not held:
            raise LockLostError(f"the {self.description} is no longer held by this process")

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
        except sa.exc.SQLAlchemyError:
            pass  # the connection is gone, and the server released the lock with it
        finally:
            conn.close()
            self._engine.dispose()


# An int8 advisory key shows in pg_locks as classid = high 32 bits, objid = low 32 bits, objsubid = 1.
_HOLDER_QUERY = sa.text(
    "SELECT a.pid, a.application_name, a.client_addr::text, a.backend_start FROM pg_locks l "
    "LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND l.database = "
    "(SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND l.classid = :classid AND l.objid = :objid AND l.objsubid = 1 LIMIT 1"
)
_HELD_BY_US = sa.text(
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid() "
    "AND classid = :classid AND objid = :objid AND objsubid = 1)"
)


def _key_parts(key: int) -> dict[str, int]:
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    return {"classid": unsigned >> 32, "objid": unsigned & 0xFFFF_FFFF}


def _advisory_holder(conn: Connection, key: int) -> Holder:
    """The holder's pid and host from its application_name (ours), else the server's view of the session."""
    try:
        row = conn.execute(_HOLDER_QUERY, _key_parts(key)).first()
    except sa.exc.DBAPIError:
        return Holder(None, None)
    if row is None:
        return Holder(None, None)
    _backend_pid, application_name, client_addr, backend_start = row
    fields = dict(part.split("=", 1) for part in (application_name or "").split()[1:] if "=" in part)
    pid = fields.get("pid", "")
    started = backend_start.isoformat() if backend_start is not None else None
    if (application_name or "").startswith("healthsync ") and pid.isdigit():
        return Holder(int(pid), fields.get("host"), started)
    return Holder(None, client_addr, started)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
