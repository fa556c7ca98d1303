"""The executor against an in-memory CRM and ledger: batching, per-record failures, crash safety."""

from datetime import UTC, date, datetime

import pytest

from healthsync.writeback.apply import apply_plan
from healthsync.writeback.base import CrmTaskState, FieldUpdate, Plan, TaskUpsert, WriteResult

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


class FakeCrm:
    """A strict in-memory CRM: counts calls, rejects over-size batches, fails the ids it is told to."""

    crm = "fake"
    max_update_batch = 3
    max_create_batch = 2

    def __init__(self, bad_accounts=()):
        self.fields: dict[str, dict] = {}
        self.tasks: dict[str, dict] = {}
        self.calls = 0
        self.bad = set(bad_accounts)

    def update_accounts(self, updates):
        assert len(updates) <= self.max_update_batch
        self.calls += 1
        out = []
        for u in updates:
            if u.account_id in self.bad:
                out.append(WriteResult(u.account_id, "failed", error="FIELD_INTEGRITY_EXCEPTION"))
            else:
                self.fields.setdefault(u.account_id, {}).update(u.fields)
                out.append(WriteResult(u.account_id, "ok", crm_id=u.account_id))
        return out

    def find_tasks(self, keys):
        self.calls += 1
        return {k: CrmTaskState(k, t["id"], False, None) for k, t in self.tasks.items() if k in keys}

    def create_tasks(self, tasks):
        assert len(tasks) <= self.max_create_batch
        self.calls += 1
        out = []
        for t in tasks:
            task_id = f"00T{len(self.tasks)}"
            self.tasks[t.dedupe_key] = {"id": task_id, "subject": t.subject}
            out.append(WriteResult(t.dedupe_key, "ok", crm_id=task_id))
        return out

    def resolve_users(self, emails):
        return {}


class FakeLedger:
    def __init__(self):
        self.fields: dict[str, dict] = {}
        self.failures: dict[str, str] = {}
        self.tasks: dict[str, tuple] = {}

    def record_field_writes(self, crm, writes, *, at, run_id):
        for w in writes:
            self.fields.setdefault(w.account_id, {}).update(w.fields)

    def record_field_failure(self, crm, account_id, error, *, at, run_id):
        self.failures[account_id] = error

    def record_task(self, crm, task, *, crm_task_id, status, at, run_id, error=None):  # noqa: PLR0913 (the Ledger protocol's signature)
        self.tasks[task.dedupe_key] = (status, crm_task_id)

    def record_task_state(self, crm, dedupe_key, *, status, closed_at, cooldown_until):
        self.tasks[dedupe_key] = (status, self.tasks[dedupe_key][1])


def task(key):
    return TaskUpsert(key, "001A", "usage_drop", "task", "s", "b", "005X", None, date(2026, 11, 24), "high", 14)


def make_plan(n_accounts=7, n_tasks=5):
    updates = tuple(FieldUpdate(f"001{i}", {"Score__c": i}) for i in range(n_accounts))
    return Plan(crm="fake", as_of=NOW, field_updates=updates, tasks=tuple(task(f"k{i}") for i in range(n_tasks)))


def test_batches_to_the_minimum_number_of_calls():
    crm, ledger = FakeCrm(), FakeLedger()
    report = apply_plan(make_plan(), crm, ledger, now=NOW, run_id="r1")
    # 7 updates / 3 per call = 3 calls; 1 task lookup; 5 tasks / 2 per call = 3 calls
    assert crm.calls == 3 + 1 + 3
    assert report.fields_written == 7 and report.tasks_created == 5 and report.ok
    assert ledger.fields == crm.fields


def test_one_bad_record_does_not_block_the_batch():
    crm, ledger = FakeCrm(bad_accounts={"0011"}), FakeLedger()
    report = apply_plan(make_plan(n_tasks=0), crm, ledger, now=NOW, run_id="r1")
    assert report.fields_failed == 1 and report.fields_written == 6
    assert "0011" not in ledger.fields and ledger.failures == {"0011": "FIELD_INTEGRITY_EXCEPTION"}


@pytest.mark.parametrize("crash_at", [("fields", 1), ("fields", 3), ("tasks", 1), ("tasks", 2)])
def test_crash_after_any_batch_then_rerun_creates_no_duplicates(crash_at):
    crm, ledger = FakeCrm(), FakeLedger()

    def crash(phase, number):
        if (phase, number) == crash_at:
            raise KeyboardInterrupt("simulated crash")

    with pytest.raises(KeyboardInterrupt):
        apply_plan(make_plan(), crm, ledger, now=NOW, run_id="r1", after_batch=crash)
    # Restart: the same plan again (the planner would drop what the ledger confirmed; re-applying all is the worst case)
    apply_plan(make_plan(), crm, ledger, now=NOW, run_id="r2")
    assert len(crm.tasks) == 5
    assert set(ledger.tasks) == {f"k{i}" for i in range(5)}
    assert all(status == "open" and crm_id for status, crm_id in ledger.tasks.values())


def test_missing_answer_from_the_crm_is_a_failure_not_a_success():
    class Silent(FakeCrm):
        def update_accounts(self, updates):
            self.calls += 1
            return []

    crm, ledger = Silent(), FakeLedger()
    report = apply_plan(make_plan(n_accounts=2, n_tasks=0), crm, ledger, now=NOW, run_id="r1")
    assert report.fields_failed == 2 and ledger.fields == {}
