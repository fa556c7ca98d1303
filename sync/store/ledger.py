"""`writeback.base.Ledger`, implemented by the store: the write ledger and the task ledger behind one object."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from healthsync.sync.store.base import Database, Repository
from healthsync.sync.store.field_ledger import FieldLedgerRepository
from healthsync.sync.store.task_ledger import TaskLedgerRepository
from healthsync.writeback.base import FieldUpdate, FieldValue, RuleTaskState, TaskEntry, TaskUpsert


class LedgerRepository(Repository):
    """What `writeback` plans against and records into. `fields` and `tasks` hold the reads beyond the Protocol.

    `transaction()` (from Repository) is the Protocol's optional part: `apply` records each batch in one commit.
    """

    def __init__(self, db: Database):
        super().__init__(db)
        self.fields = FieldLedgerRepository(db)
        self.tasks = TaskLedgerRepository(db)

    def last_written(self, crm: str, account_ids: Sequence[str]) -> dict[str, dict[str, FieldValue]]:
        return self.fields.last_written(crm, account_ids)

    def record_field_writes(self, crm: str, writes: Sequence[FieldUpdate], *, at: datetime, run_id: str) -> None:
        self.fields.record_writes(crm, writes, at=at, run_id=run_id)

    def record_field_failure(self, crm: str, account_id: str, error: str, *, at: datetime, run_id: str) -> None:
        self.fields.record_failure(crm, account_id, error, at=at, run_id=run_id)

    def task_entries(self, crm: str, dedupe_keys: Sequence[str]) -> dict[str, TaskEntry]:
        return self.tasks.entries(crm, dedupe_keys)

    def rule_states(self, crm: str, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], RuleTaskState]:
        return self.tasks.rule_states(crm, pairs)

    def record_task(  # noqa: PLR0913 (a task ledger row's columns, keyword-only)
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
        self.tasks.record(crm, task, crm_task_id=crm_task_id, status=status, at=at, run_id=run_id, error=error)

    def record_task_state(
        self,
        crm: str,
        dedupe_key: str,
        *,
        status: str,
        closed_at: datetime | None,
        cooldown_until: datetime | None,
    ) -> None:
        self.tasks.record_state(crm, dedupe_key, status=status, closed_at=closed_at, cooldown_until=cooldown_until)
