"""What every repository stands on: a database handle whose calls run alone or share one caller's transaction."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Self

from sqlalchemy.engine import Connection, Engine

from healthsync.sync.store.engine import write_connection

MAX_ERROR_CHARS = 2000
IN_CHUNK = 500  # ids per IN (...) list: well under SQLite's bound-parameter limit


class Database:
    """The engine, plus (inside `transaction()`) the one connection every call shares."""

    def __init__(self, engine: Engine, conn: Connection | None = None):
        self.engine = engine
        self._conn = conn

    @property
    def in_transaction(self) -> bool:
        return self._conn is not None

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """A Database whose calls share one write transaction; inside one already, that one is joined."""
        if self._conn is not None:
            yield self
            return
        with write_connection(self.engine) as conn:
            yield Database(self.engine, conn)

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A connection in a write transaction: the shared one, or its own, committed when the block ends."""
        if self._conn is not None:
            yield self._conn
            return
        with write_connection(self.engine) as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """The shared connection (so a transaction reads its own writes), or a short-lived one."""
        if self._conn is not None:
            yield self._conn
            return
        with self.engine.connect() as conn:
            yield conn


class Repository:
    """The queries of one concern. Each call is its own transaction unless the repository is bound to one."""

    def __init__(self, db: Database):
        self._db = db

    @contextmanager
    def transaction(self) -> Iterator[Self]:
        """This repository bound to one transaction: its calls inside the block commit or roll back together."""
        with self._db.transaction() as bound:
            yield self if bound is self._db else type(self)(bound)


def chunks(items: Sequence[str], size: int = IN_CHUNK) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def clip(text: str) -> str:
    """Errors are kept for people to read, not as logs: bound their size."""
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"
