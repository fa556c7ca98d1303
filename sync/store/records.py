"""Pulled records and the cursors that cover them: a page and its stream state are committed together."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from healthsync.errors import FatalError
from healthsync.sync.store import schema as t
from healthsync.sync.store.base import Repository, chunks
from healthsync.sync.store.engine import dialect_insert
from healthsync.sync.store.mapper import RowMapper
from healthsync.sync.store.rows import RecordRow, StoredRecord, StreamStateRow

_ITER_BATCH = 1000
_INCOMING = RowMapper(RecordRow, t.records)
_STORED = RowMapper(StoredRecord, t.records)
_STATE = RowMapper(StreamStateRow, t.stream_state)


class StateConflictError(FatalError):
    """The stream state changed since the caller read it: another writer is using this store."""


class RecordRepository(Repository):
    """Records by (source, stream, record_id), soft-deleted rather than removed, and one state per stream."""

    def commit_page(  # noqa: PLR0913 (the stream's key, the page's parts, then keyword-only stamp and revision check)
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
        # Whatever else a page must change (e.g. per-account aggregates) joins this same transaction.
        with self.transaction() as tx:
            tx.upsert(source, stream, records, now=now, run_id=run_id)
            tx.mark_deleted(source, stream, deletes, now=now)
            return tx.set_state(
                source, stream, state, now=now, version=state_version, expected_revision=expected_revision
            )

    def upsert(
        self, source: str, stream: str, rows: Sequence[RecordRow], *, now: datetime, run_id: str | None = None
    ) -> int:
        """Insert or update by (source, stream, record_id); an older `updated_at` never overwrites a newer one.

        Returns how many distinct records the page held (duplicates in a page: the last one wins).
        """
        unique = {row.record_id: row for row in rows}
        if not unique:
            return 0
        values = [_new_record(source, stream, row, now, run_id) for row in unique.values()]
        with self._db.write() as conn:
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
        with self._db.write() as conn:
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
        with self._db.write() as conn:
            return conn.execute(stmt, params).rowcount

    def get(self, source: str, stream: str, record_id: str) -> StoredRecord | None:
        c = t.records.c
        query = _STORED.select().where(c.source == source, c.stream == stream, c.record_id == record_id)
        with self._db.read() as conn:
            row = conn.execute(query).mappings().first()
        return _STORED.from_row(row) if row else None

    def iter_stream(
        self, source: str, stream: str, *, include_deleted: bool = False
    ) -> Iterator[StoredRecord]:
        """Every record of a stream in record_id order, read in batches (no connection held between batches)."""
        c = t.records.c
        after: str | None = None
        while True:
            query = _STORED.select().where(c.source == source, c.stream == stream)
            if not include_deleted:
                query = query.where(c.deleted.is_(sa.false()))
            if after is not None:
                query = query.where(c.record_id > after)
            query = query.order_by(c.record_id).limit(_ITER_BATCH)
            with self._db.read() as conn:
                batch = [_STORED.from_row(row) for row in conn.execute(query).mappings()]
            yield from batch
            if len(batch) < _ITER_BATCH:
                return
            after = batch[-1].record_id

    def live_ids(self, source: str, stream: str) -> list[str]:
        """The ids of a stream's live records (cheap: no payloads), e.g. to find rows a re-read replaced."""
        c = t.records.c
        query = sa.select(c.record_id).where(c.source == source, c.stream == stream, c.deleted.is_(sa.false()))
        with self._db.read() as conn:
            return [row[0] for row in conn.execute(query)]

    def for_account(
        self,
        account_id: str,
        *,
        source: str | None = None,
        stream: str | None = None,
        include_deleted: bool = False,
    ) -> list[StoredRecord]:
        c = t.records.c
        query = _STORED.select().where(c.account_id == account_id)
        if source is not None:
            query = query.where(c.source == source)
        if stream is not None:
            query = query.where(c.stream == stream)
        if not include_deleted:
            query = query.where(c.deleted.is_(sa.false()))
        query = query.order_by(c.source, c.stream, c.record_id)
        with self._db.read() as conn:
            return [_STORED.from_row(row) for row in conn.execute(query).mappings()]

    def count(self, source: str, stream: str | None = None, *, include_deleted: bool = False) -> int:
        c = t.records.c
        query = sa.select(sa.func.count()).select_from(t.records).where(c.source == source)
        if stream is not None:
            query = query.where(c.stream == stream)
        if not include_deleted:
            query = query.where(c.deleted.is_(sa.false()))
        with self._db.read() as conn:
            return int(conn.execute(query).scalar_one())

    # ---- stream state (cursors) ------------------------------------------------------------

    def get_state(self, source: str, stream: str) -> dict[str, Any] | None:
        """The stream's saved cursor state, or None before its first page."""
        row = self.get_state_row(source, stream)
        return row.state if row else None

    def get_state_row(self, source: str, stream: str) -> StreamStateRow | None:
        c = t.stream_state.c
        query = _STATE.select().where(c.source == source, c.stream == stream)
        with self._db.read() as conn:
            row = conn.execute(query).mappings().first()
        return _STATE.from_row(row) if row else None

    def set_state(  # noqa: PLR0913 (the stream's key and state, then keyword-only stamp, version and revision check)
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
        with self._db.write() as conn:
            lock = sa.select(c.revision).where(*key)
            if conn.dialect.name == "postgresql":
                lock = lock.with_for_update()
            current = conn.execute(lock).scalar_one_or_none()
            if expected_revision is not None and (current or 0) != expected_revision:
                raise StateConflictError(
                    f"state of {source}/{stream} is at revision {current or 0}, expected {expected_revision}: "
                    f"another healthsync process is writing to this store"
                )
            revision = (current or 0) + 1
            values = _STATE.to_row(StreamStateRow(source, stream, dict(state), version, revision, now))
            if current is None:
                conn.execute(sa.insert(t.stream_state).values(values))
            else:
                conn.execute(sa.update(t.stream_state).where(*key).values(values))
            return revision

    def reset_state(self, source: str, stream: str | None = None) -> int:
        """Forget saved cursors (a full resync starts from the beginning). Returns states removed."""
        c = t.stream_state.c
        stmt = sa.delete(t.stream_state).where(c.source == source)
        if stream is not None:
            stmt = stmt.where(c.stream == stream)
        with self._db.write() as conn:
            return conn.execute(stmt).rowcount


def _new_record(source: str, stream: str, row: RecordRow, now: datetime, run_id: str | None) -> dict[str, Any]:
    """The columns of a record first seen now; an update keeps first_seen_* (see `upsert`)."""
    return _INCOMING.to_row(
        row,
        source=source,
        stream=stream,
        deleted=False,
        deleted_at=None,
        first_seen_run=run_id,
        first_seen_at=now,
        last_seen_at=now,
    )
