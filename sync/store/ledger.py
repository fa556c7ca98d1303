"""Store operations for what we did to the outside world: CRM writes, CRM tasks, runs and source health."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from healthsync.sync.store import schema as t
from healthsync.sync.store.base import StoreOps, chunks, clip
from healthsync.sync.store.engine import dialect_insert
from healthsync.sync.store.rows import LedgerEntry, RunRow, SourceStatus, TaskRow, WriteStatusRow
from healthsync.writeback.base import FieldUpdate, FieldValue, RuleTaskState, TaskEntry, TaskUpsert

ACCOUNT_OBJECT = "account"  # writeback only writes account fields today; the ledger keys by object anyway

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_FINISHED = ("ok", "partial", "failed")
_OPEN_TASK = ("pending", "open")


class LedgerOps(StoreOps):
    """Mixed into Store."""

    # ---- writeback ledger (implements writeback.base.Ledger) --------------------------------

    def last_written(self, crm: str, account_ids: Sequence[str]) -> dict[str, dict[str, FieldValue]]:
        """account id → CRM field → the value the CRM last confirmed: what a plan diffs against."""
        c = t.writeback_ledger.c
        query = sa.select(c.record_id, c.field, c.value).where(
            c.crm == crm, c.object == ACCOUNT_OBJECT, c.record_id.in_(sa.bindparam("ids", expanding=True))
        )
        found: dict[str, dict[str, FieldValue]] = {}
        with self._read() as conn:
            for chunk in chunks(sorted(set(account_ids))):
                for row in conn.execute(query, {"ids": chunk}):
                    found.setdefault(row.record_id, {})[row.field] = row.value
        return found

    def record_field_writes(
        self, crm: str, writes: Sequence[FieldUpdate], *, at: datetime, run_id: str
    ) -> None:
        """The CRM confirmed these values: they become what we last wrote, and the records are `ok`."""
        values = [
            {
                "crm": crm,
                "object": ACCOUNT_OBJECT,
                "record_id": w.account_id,
                "field": name,
                "value": value,
                "written_at": at,
                "run_id": run_id,
            }
            for w in writes
            for name, value in w.fields.items()
        ]
        statuses = [
            {
                "crm": crm,
                "object": ACCOUNT_OBJECT,
                "record_id": account_id,
                "status": "ok",
                "attempts": 0,
                "last_error": None,
                "last_attempt_at": at,
                "last_success_at": at,
                "run_id": run_id,
            }
            for account_id in dict.fromkeys(w.account_id for w in writes)
        ]
        if not statuses:
            return
        with self._write() as conn:
            if values:
                stmt = dialect_insert(conn, t.writeback_ledger)
                c = t.writeback_ledger.c
                stmt = stmt.on_conflict_do_update(
                    index_elements=[c.crm, c.object, c.record_id, c.field],
                    set_={
                        "value": stmt.excluded.value,
                        "written_at": stmt.excluded.written_at,
                        "run_id": stmt.excluded.run_id,
                    },
                )
                conn.execute(stmt, values)
            self._upsert_write_status(conn, statuses, failed=False)

    def record_field_failure(
        self, crm: str, account_id: str, error: str, *, at: datetime, run_id: str
    ) -> None:
        """The CRM rejected this record's update; nothing is marked written, attempts count up."""
        status = {
            "crm": crm,
            "object": ACCOUNT_OBJECT,
            "record_id": account_id,
            "status": "failed",
            "attempts": 1,
            "last_error": clip(error),
            "last_attempt_at": at,
            "last_success_at": None,
            "run_id": run_id,
        }
        with self._write() as conn:
            self._upsert_write_status(conn, [status], failed=True)

    @staticmethod
    def _upsert_write_status(conn: Connection, rows: list[dict[str, Any]], *, failed: bool) -> None:
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

    def ledger_entries(self, crm: str, crm_object: str = ACCOUNT_OBJECT) -> list[LedgerEntry]:
        c = t.writeback_ledger.c
        query = (
            sa.select(t.writeback_ledger)
            .where(c.crm == crm, c.object == crm_object)
            .order_by(c.record_id, c.field)
        )
        with self._read() as conn:
            return [LedgerEntry(**row) for row in conn.execute(query).mappings()]

    def write_statuses(self, crm: str, *, status: str | None = None) -> list[WriteStatusRow]:
        """Per-record write outcomes; `status="failed"` lists what the next cycle will retry."""
        c = t.writeback_status.c
        query = sa.select(t.writeback_status).where(c.crm == crm)
        if status is not None:
            query = query.where(c.status == status)
        with self._read() as conn:
            rows = conn.execute(query.order_by(c.object, c.record_id)).mappings()
            return [WriteStatusRow(**row) for row in rows]

    # ---- task ledger (implements writeback.base.Ledger) -----------------------------------

    def task_entries(self, crm: str, dedupe_keys: Sequence[str]) -> dict[str, TaskEntry]:
        c = t.task_ledger.c
        query = sa.select(t.task_ledger).where(
            c.crm == crm, c.dedupe_key.in_(sa.bindparam("keys", expanding=True))
        )
        entries: dict[str, TaskEntry] = {}
        with self._read() as conn:
            for chunk in chunks(sorted(set(dedupe_keys))):
                for row in conn.execute(query, {"keys": chunk}).mappings():
                    entries[row["dedupe_key"]] = TaskEntry(
                        dedupe_key=row["dedupe_key"],
                        status=row["status"],
                        crm_task_id=row["crm_task_id"],
                        cooldown_until=row["cooldown_until"],
                        attempts=row["attempts"],
                    )
        return entries

    def rule_states(self, crm: str, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], RuleTaskState]:
        """Per (account, rule) asked about: its open task (newest, any window) and the latest cooldown end.

        Pairs with no task at all are left out.
        """
        wanted = set(pairs)
        c = t.task_ledger.c
        query = (
            sa.select(t.task_ledger)
            .where(c.crm == crm, c.account_id.in_(sa.bindparam("ids", expanding=True)))
            .order_by(c.created_at, c.dedupe_key)
        )
        open_keys: dict[tuple[str, str], str] = {}
        cooldowns: dict[tuple[str, str], datetime | None] = {}
        with self._read() as conn:
            for chunk in chunks(sorted({account for account, _ in wanted})):
                for row in conn.execute(query, {"ids": chunk}).mappings():
                    pair = (row["account_id"], row["rule_id"])
                    if pair not in wanted:
                        continue
                    cooldowns.setdefault(pair, None)
                    if row["status"] in _OPEN_TASK:
                        open_keys[pair] = row["dedupe_key"]  # ordered by creation: the newest wins
                    until = row["cooldown_until"] if row["status"] == "completed" else None
                    if until is not None and (cooldowns[pair] is None or until > cooldowns[pair]):
                        cooldowns[pair] = until
        return {
            pair: RuleTaskState(open_dedupe_key=open_keys.get(pair), cooldown_until=until)
            for pair, until in cooldowns.items()
        }

    def record_task(
        self,
        crm: str,
        task: TaskUpsert,
        *,
        crm_task_id: str | None,
        status: str,
        at: datetime,
        run_id: str,
        error: str | None = None,
    ) -> None:
        """Record the CRM's answer for a task, keyed by its dedupe key (one row per key, ever)."""
        if status not in t.TASK_STATUSES:
            raise ValueError(f"task status {status!r} is not one of {', '.join(t.TASK_STATUSES)}")
        failed = status == "failed"
        values = {
            "dedupe_key": task.dedupe_key,
            "crm": crm,
            "crm_task_id": crm_task_id,
            "account_id": task.account_id,
            "rule_id": task.rule_id,
            "status": status,
            "payload": asdict(task),
            "attempts": 1 if failed else 0,
            "last_error": clip(error) if error else None,
            "created_at": at,
            "updated_at": at,
            "run_id": run_id,
        }
        c = t.task_ledger.c
        with self._write() as conn:
            stmt = dialect_insert(conn, t.task_ledger).values(values)
            ex = stmt.excluded
            keep_if_completed = {
                name: sa.case((ex.status == "completed", getattr(c, name)), else_=None)
                for name in ("closed_at", "cooldown_until")
            }
            stmt = stmt.on_conflict_do_update(
                index_elements=[c.dedupe_key],
                set_={
                    "status": ex.status,
                    "payload": ex.payload,
                    "last_error": ex.last_error,
                    "crm_task_id": sa.func.coalesce(ex.crm_task_id, c.crm_task_id),
                    "attempts": c.attempts + 1 if failed else 0,
                    "updated_at": ex.updated_at,
                    "run_id": ex.run_id,
                    **keep_if_completed,
                },
            )
            conn.execute(stmt)

    def record_task_state(
        self,
        crm: str,
        dedupe_key: str,
        *,
        status: str,
        closed_at: datetime | None,
        cooldown_until: datetime | None,
    ) -> None:
        """The CRM says the task changed (e.g. the CSM completed it): keep its closing time and cooldown."""
        if status not in t.TASK_STATUSES:
            raise ValueError(f"task status {status!r} is not one of {', '.join(t.TASK_STATUSES)}")
        c = t.task_ledger.c
        stmt = (
            sa.update(t.task_ledger)
            .where(c.crm == crm, c.dedupe_key == dedupe_key)
            .values(status=status, closed_at=closed_at, cooldown_until=cooldown_until)
        )
        with self._write() as conn:
            if conn.execute(stmt).rowcount != 1:
                raise KeyError(f"no {crm} task with dedupe key {dedupe_key!r} in the task ledger")

    def get_task(self, dedupe_key: str) -> TaskRow | None:
        return next(iter(self._tasks(t.task_ledger.c.dedupe_key == dedupe_key)), None)

    def find_task_by_crm_id(self, crm: str, crm_task_id: str) -> TaskRow | None:
        c = t.task_ledger.c
        return next(iter(self._tasks(c.crm == crm, c.crm_task_id == crm_task_id)), None)

    def tasks(
        self, *, status: str | None = None, account_id: str | None = None, crm: str | None = None
    ) -> list[TaskRow]:
        c = t.task_ledger.c
        wanted = ((status, c.status == status), (account_id, c.account_id == account_id), (crm, c.crm == crm))
        return self._tasks(*(cond for value, cond in wanted if value is not None))

    def _tasks(self, *filters: Any) -> list[TaskRow]:
        query = sa.select(t.task_ledger).where(*filters).order_by(t.task_ledger.c.dedupe_key)
        with self._read() as conn:
            return [TaskRow(**row) for row in conn.execute(query).mappings()]

    # ---- runs ------------------------------------------------------------------------------

    def start_run(self, kind: str, *, started_at: datetime, run_id: str | None = None) -> str:
        """Record a run as running; returns its id (a new uuid4 hex unless given)."""
        run_id = run_id or uuid.uuid4().hex
        values = {"id": run_id, "kind": kind, "status": "running", "started_at": started_at, "steps": {}}
        with self._write() as conn:
            conn.execute(sa.insert(t.runs).values(values))
        return run_id

    def record_step(self, run_id: str, step: str, metrics: Mapping[str, Any]) -> None:
        """Set one step's figures (counts, duration_s, api_calls, errors...) on a run."""
        with self._write() as conn:
            steps = self._run_steps(conn, run_id)
            steps[step] = dict(metrics)
            conn.execute(sa.update(t.runs).where(t.runs.c.id == run_id).values(steps=steps))

    def finish_run(
        self, run_id: str, *, status: str, finished_at: datetime, error: str | None = None
    ) -> None:
        if status not in _FINISHED:
            raise ValueError(f"a run finishes as one of {', '.join(_FINISHED)}, not {status!r}")
        stmt = (
            sa.update(t.runs)
            .where(t.runs.c.id == run_id)
            .values(status=status, finished_at=finished_at, error=clip(error) if error else None)
        )
        with self._write() as conn:
            if conn.execute(stmt).rowcount != 1:
                raise KeyError(f"no run with id {run_id!r}")

    def abandon_running_runs(self, *, now: datetime, reason: str) -> int:
        """Mark runs a crashed process left 'running' as failed. Call at startup, under the daemon lock."""
        stmt = (
            sa.update(t.runs)
            .where(t.runs.c.status == "running")
            .values(status="failed", finished_at=now, error=clip(reason))
        )
        with self._write() as conn:
            return conn.execute(stmt).rowcount

    def get_run(self, run_id: str) -> RunRow | None:
        with self._read() as conn:
            row = conn.execute(sa.select(t.runs).where(t.runs.c.id == run_id)).mappings().first()
        return RunRow(**row) if row else None

    def recent_runs(self, limit: int = 20, *, kind: str | None = None) -> list[RunRow]:
        """Newest first."""
        query = sa.select(t.runs)
        if kind is not None:
            query = query.where(t.runs.c.kind == kind)
        query = query.order_by(t.runs.c.started_at.desc(), t.runs.c.id.desc()).limit(limit)
        with self._read() as conn:
            return [RunRow(**row) for row in conn.execute(query).mappings()]

    @staticmethod
    def _run_steps(conn: Connection, run_id: str) -> dict[str, Any]:
        query = sa.select(t.runs.c.steps).where(t.runs.c.id == run_id)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        steps = conn.execute(query).scalar_one_or_none()
        if steps is None:
            raise KeyError(f"no run with id {run_id!r}")
        return dict(steps)

    # ---- source status ---------------------------------------------------------------------

    def record_source_success(self, source: str, *, now: datetime) -> None:
        self._touch_source(source, now, last_success_at=now)

    def record_source_error(self, source: str, error: str, *, now: datetime) -> None:
        """Keep the latest error; the message must already be free of secrets (connectors redact)."""
        self._touch_source(source, now, last_error_at=now, last_error=clip(error))

    def pause_source(self, source: str, reason: str, *, now: datetime) -> None:
        """Stop pulling a source (e.g. its credentials were rejected) until resumed."""
        self._touch_source(source, now, paused=True, paused_reason=clip(reason))

    def resume_source(self, source: str, *, now: datetime) -> None:
        self._touch_source(source, now, paused=False, paused_reason=None)

    def set_credentials_fingerprint(self, source: str, fingerprint: str, *, now: datetime) -> None:
        """Store a sha256 hex digest from `credentials_fingerprint()`; anything else is refused."""
        if not _SHA256_HEX.match(fingerprint):
            # The value is not echoed: it may be the secret itself.
            raise ValueError(
                "credentials fingerprint must be a 64-character sha256 hex digest "
                "(build it with sync.store.credentials_fingerprint); refusing to store what may be a secret"
            )
        self._touch_source(source, now, credentials_fingerprint=fingerprint)

    def get_source_status(self, source: str) -> SourceStatus | None:
        return next(iter(self._source_statuses(t.source_status.c.source == source)), None)

    def source_statuses(self) -> list[SourceStatus]:
        return self._source_statuses()

    def _source_statuses(self, *filters: Any) -> list[SourceStatus]:
        query = sa.select(t.source_status).where(*filters).order_by(t.source_status.c.source)
        with self._read() as conn:
            return [SourceStatus(**row) for row in conn.execute(query).mappings()]

    def _touch_source(self, source: str, now: datetime, **changes: Any) -> None:
        values = {"source": source, "paused": False, "updated_at": now, **changes}
        with self._write() as conn:
            stmt = dialect_insert(conn, t.source_status).values(values)
            stmt = stmt.on_conflict_do_update(
                index_elements=[t.source_status.c.source], set_={**changes, "updated_at": now}
            )
            conn.execute(stmt)
