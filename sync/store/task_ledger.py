"""The task ledger: one row per dedupe key ever, so a CS task is created once and its cooldown is remembered."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from healthsync.sync.store import schema as t
from healthsync.sync.store.base import Repository, chunks, clip
from healthsync.sync.store.engine import dialect_insert
from healthsync.sync.store.mapper import RowMapper
from healthsync.sync.store.rows import TaskRow
from healthsync.writeback.base import RuleTaskState, TaskEntry, TaskUpsert

_OPEN_TASK = ("pending", "open")
_TASKS = RowMapper(TaskRow, t.task_ledger)
_ENTRIES = RowMapper(TaskEntry, t.task_ledger)


class TaskLedgerRepository(Repository):
    """Tasks keyed by dedupe key, with the CRM's task id once it confirmed the create."""

    def entries(self, crm: str, dedupe_keys: Sequence[str]) -> dict[str, TaskEntry]:
        c = t.task_ledger.c
        query = _ENTRIES.select().where(c.crm == crm, c.dedupe_key.in_(sa.bindparam("keys", expanding=True)))
        entries: dict[str, TaskEntry] = {}
        with self._db.read() as conn:
            for chunk in chunks(sorted(set(dedupe_keys))):
                for row in conn.execute(query, {"keys": chunk}).mappings():
                    entries[row["dedupe_key"]] = _ENTRIES.from_row(row)
        return entries

    def rule_states(self, crm: str, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], RuleTaskState]:
        """Per (account, rule) asked about: its open task (newest, any window) and the latest cooldown end.

        Pairs with no task at all are left out.
        """
        wanted = set(pairs)
        c = t.task_ledger.c
        query = (
            sa.select(c.account_id, c.rule_id, c.status, c.dedupe_key, c.cooldown_until)
            .where(c.crm == crm, c.account_id.in_(sa.bindparam("ids", expanding=True)))
            .order_by(c.created_at, c.dedupe_key)
        )
        open_keys: dict[tuple[str, str], str] = {}
        cooldowns: dict[tuple[str, str], datetime | None] = {}
        with self._db.read() as conn:
            for chunk in chunks(sorted({account for account, _ in wanted})):
                for row in conn.execute(query, {"ids": chunk}):
                    pair = (row.account_id, row.rule_id)
                    if pair not in wanted:
                        continue
                    cooldowns.setdefault(pair, None)
                    if row.status in _OPEN_TASK:
                        open_keys[pair] = row.dedupe_key  # ordered by creation: the newest wins
                    until = row.cooldown_until if row.status == "completed" else None
                    if until is not None and (cooldowns[pair] is None or until > cooldowns[pair]):
                        cooldowns[pair] = until
        return {
            pair: RuleTaskState(open_dedupe_key=open_keys.get(pair), cooldown_until=until)
            for pair, until in cooldowns.items()
        }

    def record(  # noqa: PLR0913 (a task ledger row's columns, keyword-only)
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
        _check_status(status)
        failed = status == "failed"
        row = TaskRow(
            dedupe_key=task.dedupe_key,
            crm=crm,
            account_id=task.account_id,
            rule_id=task.rule_id,
            status=status,
            payload=asdict(task),
            crm_task_id=crm_task_id,
            attempts=1 if failed else 0,
            last_error=clip(error) if error else None,
            created_at=at,
            updated_at=at,
            closed_at=None,
            cooldown_until=None,
            run_id=run_id,
        )
        with self._db.write() as conn:
            conn.execute(_upsert_task(conn, _TASKS.to_row(row), failed=failed))

    def record_state(
        self,
        crm: str,
        dedupe_key: str,
        *,
        status: str,
        closed_at: datetime | None,
        cooldown_until: datetime | None,
    ) -> None:
        """The CRM says the task changed (e.g. the CSM completed it): keep its closing time and cooldown."""
        _check_status(status)
        c = t.task_ledger.c
        stmt = (
            sa.update(t.task_ledger)
            .where(c.crm == crm, c.dedupe_key == dedupe_key)
            .values(status=status, closed_at=closed_at, cooldown_until=cooldown_until)
        )
        with self._db.write() as conn:
            if conn.execute(stmt).rowcount != 1:
                raise KeyError(f"no {crm} task with dedupe key {dedupe_key!r} in the task ledger")

    def get(self, dedupe_key: str) -> TaskRow | None:
        return next(iter(self._tasks(t.task_ledger.c.dedupe_key == dedupe_key)), None)

    def find_by_crm_id(self, crm: str, crm_task_id: str) -> TaskRow | None:
        c = t.task_ledger.c
        return next(iter(self._tasks(c.crm == crm, c.crm_task_id == crm_task_id)), None)

    def find(
        self, *, status: str | None = None, account_id: str | None = None, crm: str | None = None
    ) -> list[TaskRow]:
        """Tasks matching every filter given, by dedupe key."""
        c = t.task_ledger.c
        wanted = ((status, c.status == status), (account_id, c.account_id == account_id), (crm, c.crm == crm))
        return self._tasks(*(cond for value, cond in wanted if value is not None))

    def _tasks(self, *filters: Any) -> list[TaskRow]:
        query = _TASKS.select().where(*filters).order_by(t.task_ledger.c.dedupe_key)
        with self._db.read() as conn:
            return [_TASKS.from_row(row) for row in conn.execute(query).mappings()]


def _upsert_task(conn: sa.Connection, values: dict[str, Any], *, failed: bool) -> Any:
    """One row per key: a repeat keeps the CRM task id it had, and a close only while still completed."""
    c = t.task_ledger.c
    stmt = dialect_insert(conn, t.task_ledger).values(values)
    ex = stmt.excluded
    keep_if_completed = {
        name: sa.case((ex.status == "completed", getattr(c, name)), else_=None)
        for name in ("closed_at", "cooldown_until")
    }
    return stmt.on_conflict_do_update(
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


def _check_status(status: str) -> None:
    if status not in t.TASK_STATUSES:
        raise ValueError(f"task status {status!r} is not one of {', '.join(t.TASK_STATUSES)}")
