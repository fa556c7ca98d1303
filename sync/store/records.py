"""The store: every pulled record, cursor, score and write we made, in SQLite (default) or PostgreSQL.

Open with ``Store.open(url)`` (migrates to the newest schema first); close with ``store.close()``
or use it as a context manager. The store never reads the clock: every timestamp it records is an
argument (``now``, ``as_of``, ``started_at``...), and every datetime must be timezone-aware; reads
return aware UTC datetimes on both backends. JSON columns accept dicts/lists of plain values plus
aware datetimes (stored as UTC ISO strings), dates, Decimals (stored as strings) and sets.

Atomicity: each method is one transaction. ``with store.transaction() as tx:`` gives a Store bound
to one transaction so several calls commit (or roll back) together; ``commit_page`` is that for
the common case, writing a page of records, its deletes and the stream's new cursor state at once.

Records and cursors (``sync/store.py``)
    commit_page(source, stream, records, deletes, state, *, now, run_id=None, state_version=1) -> int
    upsert_records(source, stream, rows, *, now, run_id=None) -> int
    mark_deleted(source, stream, record_ids, *, now) -> int
    set_account_ids(source, stream, {record_id: account_id | None}) -> int
    get_record(source, stream, record_id) -> StoredRecord | None
    iter_records(source, stream, *, include_deleted=False) -> Iterator[StoredRecord]
    records_for_account(account_id, *, source=None, stream=None) -> list[StoredRecord]
    count_records(source, stream=None, *, include_deleted=False) -> int
    get_state(source, stream) -> dict | None;  get_state_row(...) -> StreamStateRow | None
    set_state(source, stream, state, *, now, version=1, expected_revision=None) -> int
    reset_state(source, stream=None) -> int
Usage, identity, scores (``sync/store_aggregates.py``)
    upsert_usage_days(source, days, *, now) -> int
    replace_usage_window(source, first_day, last_day, days, *, now) -> int
    usage_days(source, *, account_key=None, start=None, end=None) -> list[UsageDay]
    upsert_identity_links(links, *, now) -> int
    identity_links(source=None, *, status=None) -> list[IdentityLink];  get_identity_link(source, key)
    record_scores(rows) -> int;  score_history(account_id, *, since=None, until=None) -> list[ScoreRow]
    scores_at(when, account_ids=None) -> dict[account_id, ScoreRow]
Writeback and task ledgers: ``writeback.base.Ledger``, implemented (``sync/store_ledgers.py``)
    last_written(crm, account_ids) -> {account_id: {field: value}}
    record_field_writes(crm, writes, *, at, run_id);  record_field_failure(crm, account_id, error, *, at, run_id)
    task_entries(crm, dedupe_keys) -> {key: TaskEntry};  rule_states(crm, pairs) -> {pair: RuleTaskState}
    record_task(crm, task, *, crm_task_id, status, at, run_id, error=None)
    record_task_state(crm, dedupe_key, *, status, closed_at, cooldown_until)
    ledger_entries(crm, crm_object="account");  write_statuses(crm, *, status=None)
    get_task(key);  find_task_by_crm_id(crm, crm_task_id);  tasks(*, status=None, account_id=None, crm=None)
Runs and source status (``sync/store_ledgers.py``)
    start_run(kind, *, started_at, run_id=None) -> str;  record_step(run_id, step, metrics)
    finish_run(run_id, *, status, finished_at, error=None);  abandon_running_runs(*, now, reason) -> int
    get_run(run_id);  recent_runs(limit=20, *, kind=None)
    record_source_success / record_source_error / pause_source / resume_source (source, ..., *, now)
    set_credentials_fingerprint(source, sha256_hex, *, now);  get_source_status(source);  source_statuses()
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from healthsync.errors import FatalError
from healthsync.sync.store import schema as t
from healthsync.sync.store.aggregates import AggregateOps
from healthsync.sync.store.base import chunks
from healthsync.sync.store.engine import (
    StoreUnavailableError,
    create_store_engine,
    current_revision,
    dialect_insert,
    head_revision,
    normalise_url,
    redact,
    upgrade_to_head,
    write_connection,
)
from healthsync.sync.store.ledger import LedgerOps
from healthsync.sync.store.rows import (
    IdentityLink,
    LedgerEntry,
    RecordRow,
    RunRow,
    ScoreRow,
    SourceStatus,
    StoredRecord,
    StreamStateRow,
    TaskRow,
    UsageDay,
    WriteStatusRow,
    credentials_fingerprint,
)

__all__ = [
    "IdentityLink",
    "LedgerEntry",
    "RecordRow",
    "RunRow",
    "ScoreRow",
    "SourceStatus",
    "StateConflictError",
    "Store",
    "StoreUnavailableError",
    "StoredRecord",
    "StreamStateRow",
    "TaskRow",
    "UsageDay",
    "WriteStatusRow",
    "credentials_fingerprint",
    "current_revision",
    "head_revision",
]

_ITER_BATCH = 1000


class StateConflictError(FatalError):
    """The stream state changed since the caller read it: another writer is using this store."""


class Store(AggregateOps, LedgerOps):
    """Typed access to the healthsync database. Build with `Store.open(url)`."""

    def __init__(self, engine: Engine, *, conn: Connection | None = None):
        self._engine = engine
        self._conn = conn

    @classmethod
    def open(cls, url: str) -> Store:
        """Connect, apply any pending migrations, and return the store. ConfigError for a bad URL."""
        engine = create_store_engine(normalise_url(url))
        try:
            upgrade_to_head(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    @property
    def url(self) -> str:
        """The database URL with its password hidden (safe for logs)."""
        return redact(self._engine.url)

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    @property
    def engine(self) -> Engine:
        return self._engine

    def close(self) -> None:
        if self._conn is None:
            self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[Store]:
        """A Store whose calls all share one transaction; nested use joins the outer transaction."""
        if self._conn is not None:
            yield self
            return
        with write_connection(self._engine) as conn:
            yield Store(self._engine, conn=conn)

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        if self._conn is not None:
            yield self._conn
            return
        with write_connection(self._engine) as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        if self._conn is not None:
            yield self._conn
            return
        with self._engine.connect() as conn:
            yield conn

    # ---- records and cursors -------------------------------------------------------------

    def commit_page(
        self,
        source: str,
        stream: str,
        records: Sequence[RecordRow],
        deletes: Sequence[str],
        state: Mapping[str, Any],
        *,
        now: datetime,
        run_id: str | None = None,
        state_version: int = 1,
        expected_revision: int | None = None,
    ) -> int:
        """Upsert a page, soft-delete `deletes`, save the cursor: all or nothing. Returns the state revision."""
        with self.transaction() as tx:
            tx.upsert_records(source, stream, records, now=now, run_id=run_id)
            tx.mark_deleted(source, stream, deletes, now=now)
            return tx.set_state(
                source, stream, state, now=now, version=state_version, expected_revision=expected_revision
            )

    def upsert_records(
        self, source: str, stream: str, rows: Sequence[RecordRow], *, now: datetime, run_id: str | None = None
    ) -> int:
        """Insert or update by (source, stream, record_id); an older `updated_at` never overwrites a newer one.

        Returns how many distinct records the page held (duplicates in a page: the last one wins).
        """
        unique = {row.record_id: row for row in rows}
        if not unique:
            return 0
        values = [_record_values(source, stream, row, now, run_id) for row in unique.values()]
        with self._write() as conn:
            stmt = dialect_insert(conn, t.records)
            current, incoming = t.records.c, stmt.excluded
            stmt = stmt.on_conflict_do_update(
                index_elements=[current.source, current.stream, current.record_id],
                set_={
                    "account_id": sa.func.coalesce(incoming.account_id, current.account_id),
                    "updated_at": incoming.updated_at,
                    "deleted": sa.false(),
                    "deleted_at": None,
                    "data": incoming.data,
                    "raw": incoming.raw,
                    "last_seen_at": incoming.last_seen_at,
                },
                where=sa.or_(
                    current.updated_at.is_(None),
                    incoming.updated_at.is_(None),
                    incoming.updated_at >= current.updated_at,
                ),
            )
            conn.execute(stmt, values)
        return len(values)

    def mark_deleted(self, source: str, stream: str, record_ids: Iterable[str], *, now: datetime) -> int:
        """Soft-delete known records (the row stays, flagged, for audit and un-delete). Returns rows changed."""
        ids = sorted(set(record_ids))
        if not ids:
            return 0
        c = t.records.c
        stmt = (
            sa.update(t.records)
            .where(
                c.source == source, c.stream == stream, c.record_id.in_(sa.bindparam("ids", expanding=True))
            )
            .where(c.deleted.is_(sa.false()))
            .values(deleted=True, deleted_at=now, last_seen_at=now)
        )
        with self._write() as conn:
            return sum(conn.execute(stmt, {"ids": chunk}).rowcount for chunk in chunks(ids))

    def set_account_ids(self, source: str, stream: str, account_ids: Mapping[str, str | None]) -> int:
        """Attach (or detach, with None) resolved CRM account ids to records. Returns rows changed."""
        if not account_ids:
            return 0
        c = t.records.c
        stmt = (
            sa.update(t.records)
            .where(c.source == source, c.stream == stream, c.record_id == sa.bindparam("rid"))
            .values(account_id=sa.bindparam("aid"))
        )
        params = [{"rid": rid, "aid": aid} for rid, aid in account_ids.items()]
        with self._write() as conn:
            return conn.execute(stmt, params).rowcount

    def get_record(self, source: str, stream: str, record_id: str) -> StoredRecord | None:
        c = t.records.c
        query = sa.select(t.records).where(c.source == source, c.stream == stream, c.record_id == record_id)
        with self._read() as conn:
            row = conn.execute(query).mappings().first()
        return StoredRecord(**row) if row else None

    def iter_records(
        self, source: str, stream: str, *, include_deleted: bool = False
    ) -> Iterator[StoredRecord]:
        """Every record of a stream in record_id order, read in batches (no connection held between batches)."""
        c = t.records.c
        after: str | None = None
        while True:
            query = sa.select(t.records).where(c.source == source, c.stream == stream)
            if not include_deleted:
                query = query.where(c.deleted.is_(sa.false()))
            if after is not None:
                query = query.where(c.record_id > after)
            query = query.order_by(c.record_id).limit(_ITER_BATCH)
            with self._read() as conn:
                batch = [StoredRecord(**row) for row in conn.execute(query).mappings()]
            yield from batch
            if len(batch) < _ITER_BATCH:
                return
            after = batch[-1].record_id

    def live_record_ids(self, source: str, stream: str) -> list[str]:
        """The ids of a stream's live records (cheap: no payloads), e.g. to find rows a re-read replaced."""
        c = t.records.c
        query = sa.select(c.record_id).where(c.source == source, c.stream == stream, c.deleted.is_(sa.false()))
        with self._read() as conn:
            return [row[0] for row in conn.execute(query)]

    def records_for_account(
        self,
        account_id: str,
        *,
        source: str | None = None,
        stream: str | None = None,
        include_deleted: bool = False,
    ) -> list[StoredRecord]:
        c = t.records.c
        query = sa.select(t.records).where(c.account_id == account_id)
        if source is not None:
            query = query.where(c.source == source)
        if stream is not None:
            query = query.where(c.stream == stream)
        if not include_deleted:
            query = query.where(c.deleted.is_(sa.false()))
        query = query.order_by(c.source, c.stream, c.record_id)
        with self._read() as conn:
            return [StoredRecord(**row) for row in conn.execute(query).mappings()]

    def count_records(self, source: str, stream: str | None = None, *, include_deleted: bool = False) -> int:
        c = t.records.c
        query = sa.select(sa.func.count()).select_from(t.records).where(c.source == source)
        if stream is not None:
            query = query.where(c.stream == stream)
        if not include_deleted:
            query = query.where(c.deleted.is_(sa.false()))
        with self._read() as conn:
            return int(conn.execute(query).scalar_one())

    def get_state(self, source: str, stream: str) -> dict[str, Any] | None:
        """The stream's saved cursor state, or None before its first page."""
        row = self.get_state_row(source, stream)
        return row.state if row else None

    def get_state_row(self, source: str, stream: str) -> StreamStateRow | None:
        c = t.stream_state.c
        query = sa.select(t.stream_state).where(c.source == source, c.stream == stream)
        with self._read() as conn:
            row = conn.execute(query).mappings().first()
        return StreamStateRow(**row) if row else None

    def set_state(
        self,
        source: str,
        stream: str,
        state: Mapping[str, Any],
        *,
        now: datetime,
        version: int = 1,
        expected_revision: int | None = None,
    ) -> int:
        """Save the stream's state; returns its new revision (1 for the first write).

        With `expected_revision` (0 for "none yet"), refuses with StateConflictError when another
        writer saved a state since the caller read it.
        """
        c = t.stream_state.c
        key = (c.source == source, c.stream == stream)
        with self._write() as conn:
            lock = sa.select(c.revision).where(*key)
            if conn.dialect.name == "postgresql":
                lock = lock.with_for_update()
            current = conn.execute(lock).scalar_one_or_none()
            if expected_revision is not None and (current or 0) != expected_revision:
                raise StateConflictError(
                    f"state of {source}/{stream} is at revision {current or 0}, expected {expected_revision}: "
                    f"another healthsync process is writing to this store"
                )
            values = {"state": dict(state), "version": version, "updated_at": now}
            if current is None:
                conn.execute(
                    sa.insert(t.stream_state).values(source=source, stream=stream, revision=1, **values)
                )
                return 1
            conn.execute(sa.update(t.stream_state).where(*key).values(revision=current + 1, **values))
            return current + 1

    def reset_state(self, source: str, stream: str | None = None) -> int:
        """Forget saved cursors (a full resync starts from the beginning). Returns states removed."""
        c = t.stream_state.c
        stmt = sa.delete(t.stream_state).where(c.source == source)
        if stream is not None:
            stmt = stmt.where(c.stream == stream)
        with self._write() as conn:
            return conn.execute(stmt).rowcount


# ---- row <-> value helpers ----------------------------------------------------------------------


def _record_values(
    source: str, stream: str, row: RecordRow, now: datetime, run_id: str | None
) -> dict[str, Any]:
    return {
        "source": source,
        "stream": stream,
        "record_id": row.record_id,
        "account_id": row.account_id,
        "updated_at": row.updated_at,
        "deleted": False,
        "deleted_at": None,
        "data": row.data,
        "raw": row.raw,
        "first_seen_run": run_id,
        "first_seen_at": now,
        "last_seen_at": now,
    }
