"""Writeback ledger, task ledger, run history and source status on both backends."""

from __future__ import annotations

import inspect
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from healthsync.sync.store import Store, credentials_fingerprint
from healthsync.sync.store.ledger import LedgerRepository
from healthsync.sync.store.schema import task_ledger
from healthsync.writeback.apply import apply_plan
from healthsync.writeback.base import FieldUpdate, Ledger, Plan, RuleTaskState, TaskUpsert, WriteResult

NOW = datetime(2024, 7, 1, 8, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)


# ---- writeback ledger ---------------------------------------------------------------------------


def test_the_store_implements_the_writeback_ledger_protocol() -> None:
    # Same method names, parameter names and kinds as writeback.base.Ledger, so apply/plan can use it.
    for name, member in inspect.getmembers(Ledger, inspect.isfunction):
        if name.startswith("_"):
            continue
        ours = inspect.signature(getattr(LedgerRepository, name))
        theirs = inspect.signature(member)
        assert [(p.name, p.kind) for p in ours.parameters.values()] == [
            (p.name, p.kind) for p in theirs.parameters.values()
        ], name


def test_a_ledger_transaction_records_a_batch_together_or_not_at_all(store: Store) -> None:
    # apply_plan records each batch inside `ledger.transaction()`; a failure part-way records none of it.
    with pytest.raises(RuntimeError, match="crash"), store.ledger.transaction() as tx:
        tx.record_field_writes("salesforce", [FieldUpdate("001A", {"Score__c": 70})], at=NOW, run_id="r1")
        tx.record_task("salesforce", task(), crm_task_id="00T1", status="open", at=NOW, run_id="r1")
        assert tx.last_written("salesforce", ["001A"]) == {"001A": {"Score__c": 70}}  # reads its own writes
        raise RuntimeError("crash")
    assert store.ledger.last_written("salesforce", ["001A"]) == {}
    assert store.ledger.tasks.find() == []
    with store.ledger.transaction() as tx:
        tx.record_field_writes("salesforce", [FieldUpdate("001A", {"Score__c": 71})], at=NOW, run_id="r2")
    assert store.ledger.last_written("salesforce", ["001A"]) == {"001A": {"Score__c": 71}}


def test_confirmed_writes_are_what_we_last_wrote(store: Store) -> None:
    store.ledger.record_field_writes(
        "salesforce",
        [
            FieldUpdate("001A", {"Health_Score__c": 72, "Health_Band__c": "healthy"}),
            FieldUpdate("001B", {"Trend__c": None}),
        ],
        at=NOW,
        run_id="r1",
    )
    store.ledger.record_field_writes(
        "salesforce", [FieldUpdate("001A", {"Health_Score__c": 64})], at=LATER, run_id="r2"
    )
    assert store.ledger.last_written("salesforce", ["001A", "001B", "001C"]) == {
        "001A": {"Health_Score__c": 64, "Health_Band__c": "healthy"},
        "001B": {"Trend__c": None},
    }
    assert store.ledger.last_written("hubspot", ["001A"]) == {}
    entries = {(e.record_id, e.field): (e.written_at, e.run_id) for e in store.ledger.fields.entries("salesforce")}
    assert entries[("001A", "Health_Score__c")] == (LATER, "r2")
    assert entries[("001A", "Health_Band__c")] == (NOW, "r1")


def test_failures_count_attempts_until_a_success_resets_them(store: Store) -> None:
    store.ledger.record_field_writes("salesforce", [FieldUpdate("001A", {"Score__c": 70})], at=NOW, run_id="r0")
    for attempt in range(3):
        store.ledger.record_field_failure(
            "salesforce",
            "001A",
            f"FIELD_INTEGRITY_EXCEPTION {attempt}",
            at=NOW + timedelta(hours=attempt),
            run_id="r",
        )
    [failed] = store.ledger.fields.statuses("salesforce", status="failed")
    assert (failed.record_id, failed.attempts, failed.last_error) == (
        "001A",
        3,
        "FIELD_INTEGRITY_EXCEPTION 2",
    )
    assert (failed.last_attempt_at, failed.last_success_at) == (NOW + timedelta(hours=2), NOW)
    assert store.ledger.last_written("salesforce", ["001A"]) == {
        "001A": {"Score__c": 70}
    }  # a failure marks nothing written
    store.ledger.record_field_writes("salesforce", [FieldUpdate("001A", {"Score__c": 64})], at=LATER, run_id="r9")
    [ok] = store.ledger.fields.statuses("salesforce")
    assert (ok.status, ok.attempts, ok.last_error, ok.last_success_at, ok.run_id) == (
        "ok",
        0,
        None,
        LATER,
        "r9",
    )


def test_last_written_handles_many_accounts(store: Store) -> None:
    writes = [FieldUpdate(f"001{i:04d}", {"Score__c": i}) for i in range(1200)]
    store.ledger.record_field_writes("salesforce", writes, at=NOW, run_id="r1")
    got = store.ledger.last_written("salesforce", [w.account_id for w in writes])
    assert len(got) == 1200 and got["0010777"] == {"Score__c": 777}


# ---- task ledger ---------------------------------------------------------------------------------


def task(
    key: str = "001A:below_threshold:2024-W27", account: str = "001A", rule: str = "below_threshold"
) -> TaskUpsert:
    return TaskUpsert(
        key,
        account,
        rule,
        "task",
        "Review account",
        "Score 64 < 70",
        "005X",
        None,
        date(2024, 7, 2),
        "high",
        14,
    )


def test_one_row_per_dedupe_key(store: Store) -> None:
    store.ledger.record_task(
        "salesforce", task(), crm_task_id=None, status="failed", at=NOW, run_id="r1", error="owner"
    )
    store.ledger.record_task("salesforce", task(), crm_task_id="00T1", status="open", at=LATER, run_id="r2")
    [row] = store.ledger.tasks.find()
    assert (row.status, row.crm_task_id, row.attempts, row.last_error) == ("open", "00T1", 0, None)
    assert (row.created_at, row.updated_at, row.run_id) == (NOW, LATER, "r2")
    assert row.payload["due_date"] == "2024-07-02" and row.payload["subject"] == "Review account"
    with store.engine.connect() as conn:  # the database itself refuses a second row for a key
        with pytest.raises(sa.exc.IntegrityError):
            conn.execute(
                sa.insert(task_ledger).values(
                    dedupe_key=row.dedupe_key,
                    crm="salesforce",
                    account_id="001A",
                    rule_id="x",
                    status="open",
                    payload={},
                    created_at=NOW,
                    updated_at=NOW,
                )
            )


def test_failed_task_attempts_count_up(store: Store) -> None:
    for n in range(3):
        store.ledger.record_task(
            "hubspot", task(), crm_task_id=None, status="failed", at=NOW, run_id=f"r{n}", error=f"e{n}"
        )
    entry = store.ledger.task_entries("hubspot", [task().dedupe_key, "unknown"])
    assert list(entry) == [task().dedupe_key]
    assert (entry[task().dedupe_key].status, entry[task().dedupe_key].attempts) == ("failed", 3)
    assert store.ledger.tasks.get(task().dedupe_key).last_error == "e2"


def test_task_entries_are_per_crm(store: Store) -> None:
    store.ledger.record_task("salesforce", task(), crm_task_id="00T1", status="open", at=NOW, run_id="r1")
    assert store.ledger.task_entries("hubspot", [task().dedupe_key]) == {}
    entry = store.ledger.task_entries("salesforce", [task().dedupe_key])[task().dedupe_key]
    assert (entry.status, entry.crm_task_id, entry.cooldown_until) == ("open", "00T1", None)


def test_closing_a_task_keeps_its_cooldown(store: Store) -> None:
    store.ledger.record_task("salesforce", task(), crm_task_id="00T1", status="open", at=NOW, run_id="r1")
    until = LATER + timedelta(days=14)
    store.ledger.record_task_state(
        "salesforce", task().dedupe_key, status="completed", closed_at=LATER, cooldown_until=until
    )
    row = store.ledger.tasks.find_by_crm_id("salesforce", "00T1")
    assert (row.status, row.closed_at, row.cooldown_until) == ("completed", LATER, until)
    assert store.ledger.task_entries("salesforce", [row.dedupe_key])[row.dedupe_key].cooldown_until == until
    with pytest.raises(KeyError, match="nope"):
        store.ledger.record_task_state(
            "salesforce", "nope", status="completed", closed_at=LATER, cooldown_until=None
        )
    with pytest.raises(ValueError, match="closed"):
        store.ledger.record_task_state(
            "salesforce", row.dedupe_key, status="closed", closed_at=LATER, cooldown_until=None
        )


def test_rule_states_report_open_tasks_and_the_latest_cooldown(store: Store) -> None:
    store.ledger.record_task(
        "salesforce",
        task("001A:drop:W25", rule="drop"),
        crm_task_id="00T1",
        status="open",
        at=NOW,
        run_id="r",
    )
    store.ledger.record_task_state(
        "salesforce",
        "001A:drop:W25",
        status="completed",
        closed_at=NOW,
        cooldown_until=NOW + timedelta(days=3),
    )
    store.ledger.record_task(
        "salesforce",
        task("001A:drop:W26", rule="drop"),
        crm_task_id="00T2",
        status="open",
        at=LATER,
        run_id="r",
    )
    store.ledger.record_task_state(
        "salesforce",
        "001A:drop:W26",
        status="completed",
        closed_at=LATER,
        cooldown_until=LATER + timedelta(days=14),
    )
    store.ledger.record_task(
        "salesforce",
        task("001A:silent:W26", rule="silent"),
        crm_task_id="00T3",
        status="open",
        at=LATER,
        run_id="r",
    )
    store.ledger.record_task(
        "salesforce",
        task("001B:silent:W26", account="001B", rule="silent"),
        crm_task_id=None,
        status="failed",
        at=LATER,
        run_id="r",
        error="x",
    )
    states = store.ledger.rule_states(
        "salesforce", [("001A", "drop"), ("001A", "silent"), ("001B", "silent"), ("001C", "x")]
    )
    assert states == {
        ("001A", "drop"): RuleTaskState(open_dedupe_key=None, cooldown_until=LATER + timedelta(days=14)),
        ("001A", "silent"): RuleTaskState(open_dedupe_key="001A:silent:W26", cooldown_until=None),
        ("001B", "silent"): RuleTaskState(open_dedupe_key=None, cooldown_until=None),
    }


def test_re_creating_a_task_after_its_cooldown_clears_the_old_close(store: Store) -> None:
    store.ledger.record_task("salesforce", task(), crm_task_id="00T1", status="open", at=NOW, run_id="r1")
    store.ledger.record_task_state(
        "salesforce", task().dedupe_key, status="completed", closed_at=NOW, cooldown_until=LATER
    )
    store.ledger.record_task("salesforce", task(), crm_task_id="00T9", status="open", at=LATER, run_id="r2")
    row = store.ledger.tasks.get(task().dedupe_key)
    assert (row.status, row.crm_task_id, row.closed_at, row.cooldown_until) == ("open", "00T9", None, None)


def test_one_crm_task_id_maps_to_one_dedupe_key(store: Store) -> None:
    store.ledger.record_task("salesforce", task("k1"), crm_task_id="00T1", status="open", at=NOW, run_id="r")
    with pytest.raises(sa.exc.IntegrityError):
        store.ledger.record_task("salesforce", task("k2"), crm_task_id="00T1", status="open", at=NOW, run_id="r")
    assert store.ledger.tasks.get("k2") is None


class RecordingCrm:
    """A small strict CRM for the apply → store round trip; fails the accounts it is told to."""

    crm = "salesforce"
    max_update_batch = 2
    max_create_batch = 2

    def __init__(self, bad: set[str]):
        self.bad, self.created = bad, 0

    def update_accounts(self, updates):
        assert len(updates) <= self.max_update_batch
        return [
            WriteResult(u.account_id, "failed" if u.account_id in self.bad else "ok", error="REJECTED")
            for u in updates
        ]

    def find_tasks(self, keys):
        return {}

    def create_tasks(self, tasks):
        assert len(tasks) <= self.max_create_batch
        self.created += len(tasks)
        return [WriteResult(t.dedupe_key, "ok", crm_id=f"00T{t.dedupe_key}") for t in tasks]


def test_apply_plan_records_into_the_store(store: Store) -> None:
    updates = tuple(FieldUpdate(f"001{i}", {"Score__c": 60 + i}) for i in range(5))
    plan = Plan(crm="salesforce", as_of=NOW, field_updates=updates, tasks=(task("k1"), task("k2")))
    report = apply_plan(plan, RecordingCrm(bad={"0013"}), store.ledger, now=NOW, run_id="r1")
    assert (report.fields_written, report.fields_failed, report.tasks_created) == (4, 1, 2)
    assert set(store.ledger.last_written("salesforce", [u.account_id for u in updates])) == {
        "0010",
        "0011",
        "0012",
        "0014",
    }
    assert [s.record_id for s in store.ledger.fields.statuses("salesforce", status="failed")] == ["0013"]
    assert {k: e.crm_task_id for k, e in store.ledger.task_entries("salesforce", ["k1", "k2"]).items()} == {
        "k1": "00Tk1",
        "k2": "00Tk2",
    }


# ---- runs ----------------------------------------------------------------------------------------


def test_run_history_records_steps_and_outcome(store: Store) -> None:
    run_id = store.runs.start("cycle", started_at=NOW)
    store.runs.record_step(run_id, "pull", {"records": 1200, "api_calls": 14, "duration_s": 3.5, "errors": 0})
    store.runs.record_step(run_id, "score", {"accounts": 40, "duration_s": 0.2})
    store.runs.finish(run_id, status="partial", finished_at=LATER, error="zendesk: 429 after 5 retries")
    run = store.runs.get(run_id)
    assert (run.kind, run.status, run.started_at, run.finished_at) == ("cycle", "partial", NOW, LATER)
    assert run.steps == {
        "pull": {"records": 1200, "api_calls": 14, "duration_s": 3.5, "errors": 0},
        "score": {"accounts": 40, "duration_s": 0.2},
    }
    assert run.error == "zendesk: 429 after 5 retries"


def test_recent_runs_newest_first_and_by_kind(store: Store) -> None:
    for i, kind in enumerate(["cycle", "pull", "cycle"]):
        store.runs.start(kind, started_at=NOW + timedelta(minutes=i), run_id=f"r{i}")
    assert [r.id for r in store.runs.recent()] == ["r2", "r1", "r0"]
    assert [r.id for r in store.runs.recent(1, kind="cycle")] == ["r2"]


def test_runs_left_running_by_a_crash_are_abandoned(store: Store) -> None:
    store.runs.start("cycle", started_at=NOW, run_id="crashed")
    store.runs.start("cycle", started_at=NOW, run_id="done")
    store.runs.finish("done", status="ok", finished_at=LATER)
    assert store.runs.abandon_running(now=LATER, reason="process restarted") == 1
    crashed = store.runs.get("crashed")
    assert (crashed.status, crashed.error, crashed.finished_at) == ("failed", "process restarted", LATER)
    assert store.runs.get("done").status == "ok"


def test_run_status_and_ids_are_checked(store: Store) -> None:
    run_id = store.runs.start("apply", started_at=NOW)
    with pytest.raises(ValueError, match="running"):
        store.runs.finish(run_id, status="running", finished_at=LATER)
    with pytest.raises(KeyError):
        store.runs.finish("missing", status="ok", finished_at=LATER)
    with pytest.raises(KeyError):
        store.runs.record_step("missing", "pull", {})


# ---- source status --------------------------------------------------------------------------------


def test_source_status_tracks_success_errors_and_pauses(store: Store) -> None:
    store.runs.record_source_success("zendesk", now=NOW)
    store.runs.record_source_error("zendesk", "401 Unauthorized", now=LATER)
    store.runs.pause_source("zendesk", "credentials rejected", now=LATER)
    status = store.runs.source_status("zendesk")
    assert (status.last_success_at, status.last_error_at, status.last_error) == (
        NOW,
        LATER,
        "401 Unauthorized",
    )
    assert (status.paused, status.paused_reason) == (True, "credentials rejected")
    store.runs.resume_source("zendesk", now=LATER)
    assert store.runs.source_status("zendesk").paused is False
    assert [s.source for s in store.runs.source_statuses()] == ["zendesk"]


def test_only_a_fingerprint_of_credentials_is_stored(store: Store) -> None:
    fingerprint = credentials_fingerprint("agent@example.com", "zd-token-secret")
    assert fingerprint != credentials_fingerprint("agent@example.co", "mzd-token-secret")
    store.runs.set_credentials_fingerprint("zendesk", fingerprint, now=NOW)
    assert store.runs.source_status("zendesk").credentials_fingerprint == fingerprint
    with pytest.raises(ValueError, match="refusing to store") as caught:
        store.runs.set_credentials_fingerprint("zendesk", "zd-token-secret", now=NOW)
    assert "zd-token-secret" not in str(caught.value)
    assert store.runs.source_status("zendesk").credentials_fingerprint == fingerprint


def test_long_errors_are_clipped(store: Store) -> None:
    store.runs.record_source_error("mixpanel", "x" * 10_000, now=NOW)
    assert len(store.runs.source_status("mixpanel").last_error) == 2000
