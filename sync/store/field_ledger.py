"""The write ledger: the value the CRM last confirmed for each field we own, and how each record's last write went."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from healthsync.sync.store import schema as t
from healthsync.sync.store.base import Repository, chunks, clip
from healthsync.sync.store.engine import dialect_insert
from healthsync.sync.store.mapper import RowMapper
from healthsync.sync.store.rows import LedgerEntry, WriteStatusRow
from healthsync.writeback.base import FieldUpdate, FieldValue

ACCOUNT_OBJECT = "account"  # writeback only writes account fields today; the ledger keys by object anyway

_ENTRIES = RowMapper(LedgerEntry, t.writeback_ledger)
_STATUSES = RowMapper(WriteStatusRow, t.writeback_status)


class FieldLedgerRepository(Repository):
    """Field values keyed (crm, object, record_id, field); write outcomes keyed (crm, object, record_id)."""

    def last_written(self, crm: str, account_ids: Sequence[str]) -> dict[str, dict[str, FieldValue]]:
        """account id → CRM field → the value the CRM last confirmed: what a plan diffs against."""
        c = t.writeback_ledger.c
        query = sa.select(c.record_id, c.field, c.value).where(
            c.crm == crm, c.object == ACCOUNT_OBJECT, c.record_id.in_(sa.bindparam("ids", expanding=True))
        )
        found: dict[str, dict[str, FieldValue]] = {}
        with self._db.read() as conn:
            for chunk in chunks(sorted(set(account_ids))):
                for row in conn.execute(query, {"ids": chunk}):
                    found.setdefault(row.record_id, {})[row.field] = row.value
        return found

    def record_writes(self, crm: str, writes: Sequence[FieldUpdate], *, at: datetime, run_id: str) -> None:
        """The CRM confirmed these values: they become what we last wrote, and the records are `ok`."""
        entries = [
            _ENTRIES.to_row(LedgerEntry(crm, ACCOUNT_OBJECT, w.account_id, name, value, at, run_id))
            for w in writes
            for name, value in w.fields.items()
        ]
        statuses = [
            _STATUSES.to_row(WriteStatusRow(crm, ACCOUNT_OBJECT, account_id, "ok", 0, None, at, at, run_id))
            for account_id in dict.fromkeys(w.account_id for w in writes)
        ]
        if not statuses:
            return
        with self._db.write() as conn:
            if entries:
                _upsert_entries(conn, entries)
            _upsert_status(conn, statuses, failed=False)

    def record_failure(self, crm: str, account_id: str, error: str, *, at: datetime, run_id: str) -> None:
        """The CRM rejected this record's update; nothing is marked written, attempts count up."""
        status = WriteStatusRow(crm, ACCOUNT_OBJECT, account_id, "failed", 1, clip(error), at, None, run_id)
        with self._db.write() as conn:
            _upsert_status(conn, [_STATUSES.to_row(status)], failed=True)

    def entries(self, crm: str, crm_object: str = ACCOUNT_OBJECT) -> list[LedgerEntry]:
        c = t.writeback_ledger.c
        query = _ENTRIES.select().where(c.crm == crm, c.object == crm_object).order_by(c.record_id, c.field)
        with self._db.read() as conn:
            return [_ENTRIES.from_row(row) for row in conn.execute(query).mappings()]

    def statuses(self, crm: str, *, status: str | None = None) -> list[WriteStatusRow]:
        """Per-record write outcomes; `status="failed"` lists what the next cycle will retry."""
        c = t.writeback_status.c
        query = _STATUSES.select().where(c.crm == crm)
        if status is not None:
            query = query.where(c.status == status)
        with self._db.read() as conn:
            rows = conn.execute(query.order_by(c.object, c.record_id)).mappings()
            return [_STATUSES.from_row(row) for row in rows]


def _upsert_entries(conn: Connection, rows: list[dict[str, Any]]) -> None:
    stmt = dialect_insert(conn, t.writeback_ledger)
    c = t.writeback_ledger.c
    stmt = stmt.on_conflict_do_update(
        index_elements=[c.crm, c.object, c.record_id, c.field],
        set_={name: stmt.excluded[name] for name in ("value", "written_at", "run_id")},
    )
    conn.execute(stmt, rows)


def _upsert_status(conn: Connection, rows: list[dict[str, Any]], *, failed: bool) -> None:
    c = t.writeback_status.c
    stmt = dialect_insert(conn, t.writeback_status)
    ex = stmt.excluded
    changes: dict[str, Any] = {
        "status": ex.status,
        "last_error": ex.last_error,
        "last_attempt_at": ex.last_attempt_at,
        "run_id": ex.run_id,
    }
    if failed:
        changes["attempts"] = c.attempts + 1
    else:
        changes.update(attempts=0, last_success_at=ex.last_success_at)
    stmt = stmt.on_conflict_do_update(index_elements=[c.crm, c.object, c.record_id], set_=changes)
    conn.execute(stmt, rows)
