"""The executor half of writeback: runs a Plan through a CrmWriter in batches and records each confirmed write.

Order of operations is what makes it crash-safe: a write is recorded in the ledger only after the CRM
confirmed it; tasks are looked up by their dedupe key in the CRM before any is created, so a task that
was created just before a crash is adopted, not duplicated. A failed record is recorded as failed and
retried next cycle; it never blocks the rest of its batch or the batches after it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from healthsync.writeback.base import CrmWriter, FieldUpdate, Ledger, Plan, TaskUpsert, WriteResult

# Called after each batch with (phase, batch number); tests raise from it to simulate a crash.
BatchHook = Callable[[str, int], None]


@dataclass
class ApplyReport:
    fields_written: int = 0
    fields_failed: int = 0
    accounts_adopted: int = 0
    tasks_created: int = 0
    tasks_adopted: int = 0
    tasks_failed: int = 0
    write_calls: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.fields_failed and not self.tasks_failed


def apply_plan(  # noqa: PLR0913 (plan, writer and ledger, then the run's keyword-only stamp and test hook)
    plan: Plan,
    writer: CrmWriter,
    ledger: Ledger,
    *,
    now: datetime,
    run_id: str,
    after_batch: BatchHook | None = None,
) -> ApplyReport:
    """Execute `plan`; `now` stamps the ledger (the caller's clock, so replays are deterministic)."""
    run = _ApplyRun(plan, writer, ledger, ApplyReport(), now, run_id, after_batch)
    if plan.adopted:
        ledger.record_field_writes(plan.crm, plan.adopted, at=now, run_id=run_id)
        run.report.accounts_adopted = len(plan.adopted)
    _apply_field_updates(run)
    _apply_tasks(run)
    return run.report


@dataclass(frozen=True)
class _ApplyRun:
    """One execution of a plan: what both phases write, through what, where they record it and how it went."""

    plan: Plan
    writer: CrmWriter
    ledger: Ledger
    report: ApplyReport
    now: datetime
    run_id: str
    after_batch: BatchHook | None


@contextmanager
def _one_transaction(ledger: Ledger) -> Iterator[Ledger]:
    """The ledger records of one batch, committed together when the ledger can (the store can: a commit per
    record made the ledger, not the CRM, the slow half of a first run). All or none of a batch is recorded;
    either way a restart is safe, since unrecorded writes are found in the CRM again."""
    begin = getattr(ledger, "transaction", None)
    if callable(begin):
        with begin() as joined:
            yield joined
    else:
        yield ledger


def _batches(items: Sequence, size: int) -> list[Sequence]:
    return [items[i : i + size] for i in range(0, len(items), max(size, 1))]


def _apply_field_updates(run: _ApplyRun) -> None:
    plan, writer, report, now, run_id = run.plan, run.writer, run.report, run.now, run.run_id
    by_account = {u.account_id: u for u in plan.field_updates}
    for number, batch in enumerate(_batches(plan.field_updates, writer.max_update_batch), start=1):
        results = writer.update_accounts(batch)
        report.write_calls += 1
        confirmed: list[FieldUpdate] = []
        with _one_transaction(run.ledger) as tx:
            for result in _in_request_order(batch, results, key=lambda u: u.account_id):
                if result.status == "ok":
                    confirmed.append(by_account[result.key])
                else:
                    report.fields_failed += 1
                    report.errors.append(f"account {result.key}: {result.error}")
                    tx.record_field_failure(plan.crm, result.key, result.error or "failed", at=now, run_id=run_id)
            if confirmed:
                tx.record_field_writes(plan.crm, confirmed, at=now, run_id=run_id)
                report.fields_written += len(confirmed)
        if run.after_batch:
            run.after_batch("fields", number)


def _apply_tasks(run: _ApplyRun) -> None:
    if not run.plan.tasks:
        return
    to_create = _adopt_existing_tasks(run)
    _create_tasks(run, to_create)


def _adopt_existing_tasks(run: _ApplyRun) -> list[TaskUpsert]:
    """Record the planned tasks the CRM already holds (created just before a crash); return the others."""
    plan, now, run_id = run.plan, run.now, run.run_id
    existing = run.writer.find_tasks([t.dedupe_key for t in plan.tasks])
    to_create: list[TaskUpsert] = []
    with _one_transaction(run.ledger) as tx:
        for task in plan.tasks:
            found = existing.get(task.dedupe_key)
            if found is None:
                to_create.append(task)
                continue
            status = "completed" if found.completed else "open"
            closed = found.completed_at if found.completed else None
            tx.record_task(plan.crm, task, crm_task_id=found.crm_task_id, status=status, at=now, run_id=run_id)
            if found.completed:
                tx.record_task_state(plan.crm, task.dedupe_key, status="completed", closed_at=closed,
                                     cooldown_until=(closed or now) + timedelta(days=task.cooldown_days))
            run.report.tasks_adopted += 1
    return to_create


def _create_tasks(run: _ApplyRun, to_create: list[TaskUpsert]) -> None:
    plan, writer, report, now, run_id = run.plan, run.writer, run.report, run.now, run.run_id
    by_key = {t.dedupe_key: t for t in to_create}
    for number, batch in enumerate(_batches(to_create, writer.max_create_batch), start=1):
        results = writer.create_tasks(batch)
        report.write_calls += 1
        with _one_transaction(run.ledger) as tx:
            for result in _in_request_order(batch, results, key=lambda t: t.dedupe_key):
                task = by_key[result.key]
                if result.status == "ok":
                    tx.record_task(plan.crm, task, crm_task_id=result.crm_id, status="open", at=now, run_id=run_id)
                    report.tasks_created += 1
                else:
                    tx.record_task(plan.crm, task, crm_task_id=None, status="failed", at=now, run_id=run_id,
                                   error=result.error)
                    report.tasks_failed += 1
                    report.errors.append(f"task {result.key}: {result.error}")
        if run.after_batch:
            run.after_batch("tasks", number)


def _in_request_order(batch: Sequence, results: Sequence[WriteResult], key) -> list[WriteResult]:
    """A writer must answer one result per record; a missing answer is a failure, never a silent success."""
    answered = {r.key: r for r in results}
    ordered = []
    for item in batch:
        k = key(item)
        ordered.append(answered.get(k) or WriteResult(key=k, status="failed", error="no result from the CRM"))
    return ordered
