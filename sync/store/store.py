"""The Store: opens (and migrates) the database, owns the engine and the transaction, hands out the repositories."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Engine

from healthsync.redaction import redact
from healthsync.sync.store.aggregates import AggregateRepository
from healthsync.sync.store.base import Database
from healthsync.sync.store.engine import create_store_engine
from healthsync.sync.store.ledger import LedgerRepository
from healthsync.sync.store.migrate import upgrade_to_head
from healthsync.sync.store.records import RecordRepository
from healthsync.sync.store.runs import RunRepository
from healthsync.sync.store.scores import ScoreRepository


class Store:
    """Typed access to the healthsync database. Build with `Store.open(url)`."""

    def __init__(self, db: Database):
        self._db = db
        self.records = RecordRepository(db)
        self.aggregates = AggregateRepository(db)
        self.scores = ScoreRepository(db)
        self.ledger = LedgerRepository(db)
        self.runs = RunRepository(db)

    @classmethod
    def open(cls, url: str) -> Store:
        """Connect, apply any pending migrations, and return the store. ConfigError for a bad URL."""
        engine = create_store_engine(url)
        try:
            upgrade_to_head(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(Database(engine))

    @property
    def url(self) -> str:
        """The database URL with its password hidden (safe for logs)."""
        return redact(self._db.engine.url)

    @property
    def dialect(self) -> str:
        return self._db.engine.dialect.name

    @property
    def engine(self) -> Engine:
        return self._db.engine

    def close(self) -> None:
        if not self._db.in_transaction:
            self._db.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[Store]:
        """A Store whose repositories all share one transaction; nested use joins the outer transaction."""
        with self._db.transaction() as bound:
            yield self if bound is self._db else Store(bound)
