"""Writeback proved end to end against the sandbox, for Salesforce and HubSpot: the real connectors and SDKs
over HTTP, the real store and cycle. Each promise of SPEC §6 is read back from the emulator, not from our
own reports: fields land with the right values, a quiet cycle writes nothing, one open task per dedupe
key with cooldowns, crash at any batch then restart converges to the clean result, a bad record does not
block its batch and is retried, escalations land on the user found by email, human edits are kept (or
overwritten when config says we win), and `setup` is idempotent.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from healthsync.scoring.base import HealthResult
from healthsync.sync.store.ledger import LedgerRepository
from healthsync.writeback.plan import PlanInputs, WritebackPolicy, build_plan, desired_fields, same_value
from tests.support.sandbox_env import SandboxEnv, sandbox_env

# Every test runs real writeback cycles against the emulated CRMs: kept out of `make test-fast`.
pytestmark = pytest.mark.slow

CRMS = ("salesforce", "hubspot")
ACCOUNTS = 60
STEP = timedelta(seconds=5)  # between cycles, so modstamps differ
ESCALATION_EMAIL = "cto@cloudscale.io"
# Endpoints (as the sandbox's CallLog names them) through which a CRM can be written.
WRITE_ENDPOINTS = {
    "salesforce": ("collections", "record", "upsert"),
    "hubspot": ("batch", "create_object", "update_object", "archive_object"),
}
SETUP_ENDPOINTS = {
    "salesforce": ("tooling_create",),
    "hubspot": ("create_property", "create_group"),
}


# ---------------------------------------------------------------------------------------------- the CRM, read back


class CrmView:
    """What the emulator holds, in CRM-neutral terms (account fields, our tasks), plus the human's hands."""

    def __init__(self, env: SandboxEnv):
        self.env = env
        self.crm = env.crm
        self.emu = env.emulator(self.crm)
        self.key_field = env.settings.crm.field_map.write.task_key
        self.owned = sorted(env.ctx.policy.owned)

    # ---- ids
    def account_id(self, neutral_key: str) -> str:
        account = next(a for a in self.env.server.portfolio.accounts if a.key == neutral_key)
        return account.sf_id if self.crm == "salesforce" else account.hs_id

    def scenario_account(self, rule_id: str) -> str:
        return self.account_id(self.env.server.portfolio.scenarios[rule_id][0])

    def user_id(self, email: str) -> str:
        owner = next(o for o in self.env.server.portfolio.owners if o.email.lower() == email.lower())
        return owner.sf_id if self.crm == "salesforce" else owner.hs_id

    # ---- accounts
    def account(self, account_id: str) -> dict[str, Any]:
        if self.crm == "salesforce":
            return self.emu.record("Account", account_id)
        found = self.emu.get("companies", account_id)
        assert found is not None, f"no company {account_id}"
        return dict(found["properties"])

    def owned_fields(self, account_id: str) -> dict[str, Any]:
        record = self.account(account_id)
        return {name: record.get(name) for name in self.owned}

    def all_owned(self, account_ids) -> dict[str, dict[str, Any]]:
        return {a: self.owned_fields(a) for a in account_ids}

    def edit_account(self, account_id: str, fields: dict[str, Any]) -> None:
        """A person edits the account in the CRM (bumps its modstamp like a real edit)."""
        if self.crm == "salesforce":
            self.emu.update("Account", account_id, fields)
        else:
            self.emu.update("companies", account_id, {k: str(v) for k, v in fields.items()})

    def break_account(self, account_id: str) -> None:
        """Delete (Salesforce) / archive (HubSpot) the account, so an update of it is refused."""
        if self.crm == "salesforce":
            self.emu.delete("Account", account_id)
        else:
            self.emu.archive("companies", account_id)

    def restore_account(self, account_id: str) -> None:
        """Undelete from the recycle bin / restore from archive. Neither emulator has a helper for it, so this
        flips the emulator's own record back (and bumps the modstamp, as an undelete does)."""
        now = self.env.server.clock.now()
        with self.emu.lock:
            if self.crm == "salesforce":
                table = self.emu.store.tables["Account"]
                key = next(k for k, r in table.items() if r["Id"] == account_id)
                record = {k: v for k, v in table[key].items() if not str(k).startswith("_")}
                table[key] = {**record, "IsDeleted": False, "SystemModstamp": now, "LastModifiedDate": now}
            else:
                obj = self.emu.store.objects["companies"][str(account_id)]
                obj.archived, obj.archived_at = False, None
                self.emu.store._forget_order("companies")
                self.emu.store.touch(obj, now)

    # ---- tasks
    def tasks(self) -> list[dict[str, Any]]:
        """Every task carrying one of our dedupe keys: key, id, account, owner, completed."""
        out = []
        if self.crm == "salesforce":
            for row in self.emu.records("Task"):
                if row.get(self.key_field):
                    out.append({"key": row[self.key_field], "id": row["Id"], "account": row["WhatId"],
                                "owner": row["OwnerId"], "completed": row["Status"] == "Completed",
                                "subject": row["Subject"]})
            return out
        for obj in self.emu.objects("tasks"):
            props = obj["properties"]
            if props.get(self.key_field):
                companies = self.emu.associations("tasks", obj["id"], "companies")
                out.append({"key": props[self.key_field], "id": obj["id"],
                            "account": companies[0] if len(companies) == 1 else tuple(companies),
                            "owner": props.get("hubspot_owner_id"),
                            "completed": str(props.get("hs_task_status")).upper() == "COMPLETED",
                            "subject": props.get("hs_task_subject")})
        return out

    def complete_task(self, task_id: str) -> None:
        """The CSM closes the task in the CRM."""
        if self.crm == "salesforce":
            self.emu.update("Task", task_id, {"Status": "Completed"})
        else:
            self.emu.update("tasks", task_id, {"hs_task_status": "COMPLETED"})

    # ---- calls
    def calls(self, endpoints) -> int:
        snapshot = self.env.server.calls.snapshot()
        return sum(snapshot.get(f"{self.crm} {e}", 0) for e in endpoints)

    def write_calls(self) -> int:
        return self.calls(WRITE_ENDPOINTS[self.crm])


def tick(env: SandboxEnv, delta: timedelta = STEP) -> None:
    env.server.clock.advance(delta)


def cycle(env: SandboxEnv, **kw):
    report = env.cycle(**kw)
    tick(env)
    return report


@contextmanager
def aligned_env(crm: str, **kw) -> Iterator[SandboxEnv]:
    """A sandbox whose clock sits at a fixed offset from its book's as_of (the book is generated at the hour),
    so two environments built minutes apart, even across an hour boundary, score the same book alike.
    HubSpot searches are paced at the published 5/s (the default config keeps to 4/s) to keep the file fast."""
    overrides = {"limits": {"hubspot": {"search_per_second": 5}}, **(kw.pop("overrides", None) or {})}
    with sandbox_env(crm, accounts=ACCOUNTS, drop=("zendesk", "mixpanel"), overrides=overrides, **kw) as env:
        target = env.server.portfolio.as_of + timedelta(minutes=65)
        now = env.server.clock.now()
        if target > now:
            env.server.clock.advance(target - now)
        yield env


def assert_fields_match(view: CrmView, results, policy, *, skip=()) -> None:
    """Every owned field of every scored account holds exactly what the result says."""
    wrong = []
    for result in results:
        want = desired_fields(result, policy)
        have = view.owned_fields(result.account_id)
        for name, value in want.items():
            if name not in skip and not same_value(value, have.get(name)):
                wrong.append((result.account_id, name, value, have.get(name)))
    assert not wrong, f"{len(wrong)} field values differ from the results, e.g. {wrong[:5]}"


def keys_once(tasks) -> Counter:
    counts = Counter(t["key"] for t in tasks)
    duplicated = {k: n for k, n in counts.items() if n > 1}
    assert not duplicated, f"dedupe keys on more than one task: {duplicated}"
    return counts


# ---------------------------------------------------------------------------------------------- a shared journey


@dataclass
class Journey:
    env: SandboxEnv
    view: CrmView
    setup_first: list
    reports: list
    owned_after_first: dict[str, dict[str, Any]]
    other_before: dict[str, dict[str, Any]]
    other_after_first: dict[str, dict[str, Any]]
    write_calls: list[int]  # write calls made by each cycle


# Fields a CRM changes itself on every write (or that are ours): left out of the "we touched nothing else" check.
_BOOKKEEPING = {"LastModifiedDate", "SystemModstamp", "LastModifiedById", "hs_lastmodifieddate",
                "hs_object_id", "hs_updated_by_user_id", "hs_all_accessible_team_ids"}


def _other_fields(view: CrmView, account_ids) -> dict[str, dict[str, Any]]:
    owned = set(view.owned)
    return {a: {k: v for k, v in view.account(a).items() if k not in owned and k not in _BOOKKEEPING}
            for a in account_ids}


@pytest.fixture(scope="module", params=CRMS)
def journey(request) -> Iterator[Journey]:
    """setup, then three cycles (first run, settle, nothing changed), with what the CRM held after the first."""
    with aligned_env(request.param) as env:
        view = CrmView(env)
        setup_first = env.setup_fields()
        ids = [a.sf_id if env.crm == "salesforce" else a.hs_id for a in env.server.portfolio.accounts]
        other_before = _other_fields(view, ids)
        reports, write_calls, owned_after_first, other_after_first = [], [], {}, {}
        for number in range(3):
            before = view.write_calls()
            reports.append(cycle(env))
            write_calls.append(view.write_calls() - before)
            if number == 0:
                owned_after_first = view.all_owned(ids)
                other_after_first = _other_fields(view, ids)
        yield Journey(env, view, setup_first, reports, owned_after_first, other_before, other_after_first,
                      write_calls)


def test_fields_land_with_the_values_of_the_health_results(journey):
    first = journey.reports[0]
    assert first.status == "ok", first.error
    assert len(first.scored) == ACCOUNTS
    assert first.applied is not None and first.applied.fields_failed == 0
    policy = journey.env.ctx.policy
    wrong = []
    for scored in first.scored:
        result = scored.result
        want = desired_fields(result, policy)
        have = journey.owned_after_first[result.account_id]
        wrong += [(result.account_id, n, v, have.get(n)) for n, v in want.items() if not same_value(v, have.get(n))]
        assert len(str(have[policy.field_names["explanation"]] or "")) <= policy.text_limit
        assert same_value(have[policy.field_names["health_score"]], result.score)
        assert same_value(have[policy.field_names["health_band"]], result.band)
        assert same_value(have[policy.field_names["renewal_stage"]], result.renewal_stage)
    assert not wrong, f"{len(wrong)} values differ from the health results, e.g. {wrong[:5]}"
    explanations = [journey.owned_after_first[s.result.account_id][policy.field_names["explanation"]]
                    for s in first.scored]
    assert all(explanations) and max(len(e) for e in explanations) > 300  # real explanations, not stubs


def test_fields_we_do_not_own_are_never_written(journey):
    assert journey.other_after_first == journey.other_before


def test_a_no_change_cycle_makes_zero_write_calls(journey):
    first, second, third = journey.reports
    assert journey.write_calls[0] > 0
    # Cycle 2 writes only what moved (history went from backfilled to real), in as few calls as the limits allow.
    writer = journey.env.ctx.writer
    minimum = math.ceil(len(second.plan.field_updates) / writer.max_update_batch) + math.ceil(
        len(second.plan.tasks) / writer.max_create_batch)
    assert journey.write_calls[1] == minimum
    assert third.plan.is_empty, (third.plan.field_updates[:3], third.plan.tasks[:3])
    assert third.plan.conflicts == ()
    assert journey.write_calls[2] == 0
    assert third.applied is not None and third.applied.write_calls == 0


def test_one_task_per_dedupe_key_after_repeated_cycles(journey):
    tasks = journey.view.tasks()
    counts = keys_once(tasks)
    planned = {t.dedupe_key for t in journey.reports[0].plan.tasks}
    assert set(counts) == planned
    assert all(not t["completed"] for t in tasks)
    # The later cycles saw the same intents and suppressed them as already open.
    later = {s.dedupe_key for s in journey.reports[2].plan.suppressed}
    assert planned & later


def test_renewal_unsigned_escalation_lands_on_the_user_found_by_email(journey):
    view = journey.view
    account = view.scenario_account("renewal_unsigned")
    cto = view.user_id(ESCALATION_EMAIL)
    planned = [t for t in journey.reports[0].plan.escalations
               if t.account_id == account and t.rule_id == "renewal_unsigned"]
    assert len(planned) == 1 and planned[0].owner_id == cto
    landed = [t for t in view.tasks() if t["key"] == planned[0].dedupe_key]
    assert len(landed) == 1
    assert landed[0]["owner"] == cto
    assert landed[0]["account"] == account
    # Routed to the CTO, not the account's CSM.
    csm = next(o for o in journey.env.server.portfolio.owners
               if o.key == next(a.owner_key for a in journey.env.server.portfolio.accounts
                                if view.account_id(a.key) == account))
    assert landed[0]["owner"] != (csm.sf_id if view.crm == "salesforce" else csm.hs_id)


def test_setup_twice_is_a_no_op(journey):
    env, view = journey.env, journey.view
    assert {o.status for o in journey.setup_first} == {"created"}
    creates = view.calls(SETUP_ENDPOINTS[env.crm])
    again = env.setup_fields()
    assert [o.status for o in again] == ["existed"] * len(journey.setup_first)
    env.rebuild_context()  # a new process: no cached schema, no cached property group
    third = env.setup_fields()
    assert [o.status for o in third] == ["existed"] * len(journey.setup_first)
    assert view.calls(SETUP_ENDPOINTS[env.crm]) == creates


# ---------------------------------------------------------------------------------------------- tasks and cooldowns


def _next_iso_week(now: datetime, before: datetime) -> datetime:
    """An instant in the ISO week after `now`'s, strictly before `before`."""
    monday = (now + timedelta(days=7 - now.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    target = monday + min(timedelta(hours=1), (before - monday) / 2)
    assert now.isocalendar()[:2] != target.isocalendar()[:2] and target < before
    return target


@pytest.mark.parametrize("crm", CRMS)
def test_a_completed_task_is_not_recreated_within_its_cooldown_but_is_after(crm):
    rule = "outreach_24h"  # window iso_week, cooldown 7 days in the default playbook
    with aligned_env(crm) as env:
        view = CrmView(env)
        env.setup_fields()
        account = view.scenario_account(rule)
        prefix = f"{account}|{rule}|"

        def ours():
            return [t for t in view.tasks() if t["key"].startswith(prefix)]

        cycle(env)
        cycle(env)
        first = ours()
        assert len(first) == 1 and not first[0]["completed"]
        keys_once(view.tasks())

        view.complete_task(first[0]["id"])
        completed_at = env.server.clock.now()
        tick(env)
        cooldown_end = completed_at + timedelta(days=7)
        target = _next_iso_week(env.server.clock.now(), cooldown_end)
        tick(env, target - env.server.clock.now())

        report = cycle(env)
        fired = [i for s in report.scored for i in s.intents if i.account_id == account and i.rule_id == rule]
        assert fired, "precondition: the rule still fires a week later"
        new_key = fired[0].dedupe_key
        assert new_key != first[0]["key"]  # a later window...
        suppressed = {s.dedupe_key: s.reason for s in report.plan.suppressed}
        assert "cooldown" in suppressed.get(new_key, ""), suppressed.get(new_key)
        state = env.store.ledger.rule_states(crm, [(account, rule)])[(account, rule)]
        assert state.open_dedupe_key is None
        assert state.cooldown_until is not None and report.as_of < state.cooldown_until <= cooldown_end + STEP
        assert [t["key"] for t in ours()] == [first[0]["key"]]  # ...and still not re-created

        tick(env, state.cooldown_until + timedelta(hours=1) - env.server.clock.now())
        report = cycle(env)
        after = ours()
        keys_once(view.tasks())
        reopened = [t for t in after if not t["completed"]]
        assert len(after) == 2 and len(reopened) == 1
        fired = [i for s in report.scored for i in s.intents if i.account_id == account and i.rule_id == rule]
        assert reopened[0]["key"] == fired[0].dedupe_key
        assert env.store.ledger.tasks.get(fired[0].dedupe_key).status == "open"


# ---------------------------------------------------------------------------------------------- crash safety


def _small_batches(env: SandboxEnv, update: int, create: int) -> None:
    env.ctx.writer.max_update_batch = update
    env.ctx.writer.max_create_batch = create


def _final_state(view: CrmView, policy) -> tuple[dict, dict]:
    """Owned fields (bar the timestamp of the write) per account, and our tasks by key."""
    scored_at = policy.field_names.get("last_scored_at")
    ids = [view.account_id(a.key) for a in view.env.server.portfolio.accounts]
    fields = {a: {k: str(v) for k, v in f.items() if k != scored_at} for a, f in view.all_owned(ids).items()}
    tasks = view.tasks()
    keys_once(tasks)
    return fields, {t["key"]: (t["account"], t["owner"], t["completed"]) for t in tasks}


class Crash(RuntimeError):
    pass


UPDATE_BATCH, CREATE_BATCH = 30, 12  # 2 field batches, 3 task batches


def _clean_run(crm: str):
    """One cycle, no crash: the reference the crashed runs must converge to, and its plan. (A cycle that crashed
    records no scores, so the cycle after the restart is a first cycle again.)"""
    with aligned_env(crm) as env:
        env.setup_fields()
        _small_batches(env, UPDATE_BATCH, CREATE_BATCH)
        plan = cycle(env).plan
        return _final_state(CrmView(env), env.ctx.policy), plan


@contextmanager
def _crashed_and_restarted(crm: str, point: tuple[str, int]):
    """A first cycle that dies right after apply's batch `point`, then a restart and one more cycle."""
    with aligned_env(crm) as env:
        env.setup_fields()
        _small_batches(env, UPDATE_BATCH, CREATE_BATCH)

        def crash(phase: str, number: int) -> None:
            if (phase, number) == point:
                raise Crash(f"crash after {phase} batch {number}")

        env.ctx.after_apply_batch = crash
        with pytest.raises(Crash):
            env.cycle()
        tick(env)
        env.rebuild_context()  # the restart: a new context on the same store and CRM
        _small_batches(env, UPDATE_BATCH, CREATE_BATCH)
        report = cycle(env)
        assert report.status == "ok", (point, report.error)
        yield env, report


@pytest.mark.parametrize("crm", CRMS)
def test_a_crash_after_any_batch_then_a_restart_converges_to_the_clean_run(crm):
    (clean_fields, clean_tasks), plan = _clean_run(crm)
    crash_points = [("fields", n) for n in range(1, math.ceil(len(plan.field_updates) / UPDATE_BATCH) + 1)]
    crash_points += [("tasks", n) for n in range(1, math.ceil(len(plan.tasks) / CREATE_BATCH) + 1)]
    assert len(crash_points) >= 4, "precondition: several batches of each kind"
    # Edge-triggered rules ("newly" below 70, band changes) fire once: a crash must not lose their tasks.
    assert any("|below_threshold|" in k or "|band_change_" in k for k in clean_tasks), "precondition"
    for point in crash_points:
        with _crashed_and_restarted(crm, point) as (env, report):
            fields, tasks = _final_state(CrmView(env), env.ctx.policy)  # no duplicate dedupe key, checked inside
            assert fields == clean_fields, f"crash at {point}"
            assert tasks == clean_tasks, f"crash at {point}"
            for key in tasks:  # and the ledger knows every one of them
                entry = env.store.ledger.tasks.get(key)
                assert entry is not None and entry.crm_task_id and entry.status == "open", (point, key)
            assert report.plan.conflicts == ()


def _fail_once(monkeypatch, name: str, *, armed=lambda: True) -> list:
    """Make the ledger's `name` raise Crash the first time it is called while `armed()` (patched on the class:
    apply records each batch through a transaction-bound ledger); returns the calls that crashed."""
    original = getattr(LedgerRepository, name)
    fired: list = []

    def wrapper(self, *args, **kw):
        if armed() and not fired:
            fired.append(args)
            raise Crash(f"process died before {name} committed")
        return original(self, *args, **kw)

    monkeypatch.setattr(LedgerRepository, name, wrapper)
    return fired


@pytest.mark.parametrize("crm", CRMS)
def test_a_crash_after_tasks_landed_but_before_the_ledger_knew_adopts_them(crm, monkeypatch):
    with aligned_env(crm) as env:
        view = CrmView(env)
        env.setup_fields()
        _small_batches(env, UPDATE_BATCH, CREATE_BATCH)
        crashed = _fail_once(monkeypatch, "record_task")
        with pytest.raises(Crash):
            env.cycle()
        assert crashed
        landed = {t["key"]: t["id"] for t in view.tasks()}
        assert 0 < len(landed) <= CREATE_BATCH, "precondition: one batch reached the CRM, unrecorded"
        assert all(env.store.ledger.tasks.get(key) is None for key in landed)
        tick(env)
        env.rebuild_context()
        report = cycle(env)
        assert report.status == "ok", report.error
        keys_once(view.tasks())
        planned = {t.dedupe_key for t in report.plan.tasks}
        adopted = {key for key in landed if key in planned}
        assert adopted, "precondition: the restart still intends some of the tasks that landed"
        assert report.applied.tasks_adopted == len(adopted)
        assert report.applied.tasks_created == len(planned) - len(adopted)
        for key in adopted:
            entry = env.store.ledger.tasks.get(key)
            assert (entry.crm_task_id, entry.status) == (landed[key], "open")
        assert {t["key"] for t in view.tasks()} == planned | set(landed)
        again = cycle(env)
        assert again.plan.tasks == () and again.applied.tasks_created == 0
        keys_once(view.tasks())


def _crash_after_fields_landed(env: SandboxEnv, monkeypatch):
    """Settle, let a day pass (days to renewal move), then die after the CRM took the field batch but before the
    ledger recorded it, and restart: (the restart's report, the accounts whose values landed, its write calls)."""
    view = CrmView(env)
    env.setup_fields()
    cycle(env)
    cycle(env)
    tick(env, timedelta(days=1))
    writer = env.ctx.writer
    sent: list[str] = []
    update_accounts = writer.update_accounts

    def update_and_remember(updates):
        results = update_accounts(updates)
        sent.extend(r.key for r in results if r.status == "ok")
        return results

    writer.update_accounts = update_and_remember
    _fail_once(monkeypatch, "record_field_writes", armed=lambda: bool(sent))
    with pytest.raises(Crash):
        env.cycle()
    assert sent, "precondition: a day later some fields changed and reached the CRM"
    tick(env)
    env.rebuild_context()
    before = view.write_calls()
    report = cycle(env)
    assert report.status == "ok", report.error
    return report, set(sent), view.write_calls() - before


@pytest.mark.parametrize("crm", CRMS)
def test_a_crash_after_fields_landed_but_before_the_ledger_knew_adopts_them(crm, monkeypatch):
    with aligned_env(crm) as env:
        report, sent, write_calls = _crash_after_fields_landed(env, monkeypatch)
        marker = env.ctx.policy.field_names["last_scored_at"]
        assert sent <= {u.account_id for u in report.plan.adopted}
        for update in report.plan.field_updates:  # rewritten only where the restart's value moved since
            if update.account_id in sent:
                moved = {k for k, v in update.fields.items() if not same_value(update.previous.get(k), v)}
                assert moved - {marker} and set(update.fields) == moved, update
        assert len(report.plan.field_updates) < len(sent) / 4
        assert report.plan.conflicts == ()  # our own write is not mistaken for a human's
        assert write_calls == report.applied.write_calls
        assert_fields_match(CrmView(env), [s.result for s in report.scored], env.ctx.policy, skip={marker})
        again = cycle(env)
        assert again.plan.conflicts == () and not again.plan.adopted


# ---------------------------------------------------------------------------------------------- partial failure


@pytest.mark.parametrize("crm", CRMS)
def test_one_bad_record_fails_alone_and_is_retried_next_cycle(crm):
    with aligned_env(crm) as env:
        view = CrmView(env)
        env.setup_fields()
        bad = view.account_id(env.server.portfolio.accounts[-1].key)
        writer = env.ctx.writer
        update_accounts = writer.update_accounts
        broken = []

        def break_then_update(updates):
            if bad in {u.account_id for u in updates} and not broken:
                view.break_account(bad)  # after the pull read it, before our write reaches it
                broken.append(bad)
            return update_accounts(updates)

        writer.update_accounts = break_then_update
        first = cycle(env)
        assert first.status == "partial"
        assert first.applied.fields_failed == 1 and first.applied.fields_written == ACCOUNTS - 1
        failed = env.store.ledger.fields.statuses(crm, status="failed")
        assert [r.record_id for r in failed] == [bad]
        assert failed[0].last_error
        refused = next(u for u in first.plan.field_updates if u.account_id == bad)
        assert not set(env.store.ledger.last_written(crm, [bad]).get(bad, {})) & set(refused.fields)  # nothing marked written
        good = [s.result for s in first.scored if s.result.account_id != bad]
        assert_fields_match(view, good, env.ctx.policy)

        view.restore_account(bad)
        writer.update_accounts = update_accounts
        second = cycle(env)
        assert second.status == "ok", second.error
        assert bad in {u.account_id for u in second.plan.field_updates}
        assert env.store.ledger.fields.statuses(crm, status="failed") == []
        retried = next(s.result for s in second.scored if s.result.account_id == bad)
        assert_fields_match(view, [retried], env.ctx.policy)


# ---------------------------------------------------------------------------------------------- human edits


@pytest.mark.parametrize("crm", CRMS)
@pytest.mark.parametrize("we_win", [False, True])
def test_a_human_edit_of_an_owned_field_is_reported_and_kept_unless_we_win(crm, we_win):
    overrides = {"writeback": {"we_win_conflicts": True}} if we_win else None
    with aligned_env(crm, overrides=overrides) as env:
        view = CrmView(env)
        env.setup_fields()
        cycle(env)
        cycle(env)
        band_field = env.ctx.policy.field_names["health_band"]
        account = view.account_id(env.server.portfolio.accounts[-2].key)
        ours = view.owned_fields(account)[band_field]
        view.edit_account(account, {band_field: "Watch list (CSM)"})
        tick(env)
        report = cycle(env)
        conflicts = [c for c in report.plan.conflicts if c.account_id == account]
        assert len(conflicts) == 1, report.plan.conflicts
        conflict = conflicts[0]
        assert (conflict.field, conflict.theirs) == (band_field, "Watch list (CSM)")
        assert same_value(conflict.ours, ours)
        if we_win:
            assert conflict.action == "overwrote"
            assert same_value(view.owned_fields(account)[band_field], ours)
        else:
            assert conflict.action == "kept_theirs"
            assert view.owned_fields(account)[band_field] == "Watch list (CSM)"
            assert all(band_field not in u.fields for u in report.plan.field_updates if u.account_id == account)
        # The other accounts are untouched by the edit: no conflicts for them.
        assert {c.account_id for c in report.plan.conflicts} == {account}


# ---------------------------------------------------------------------------------------------- the planner rule it took


_AT = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
_POLICY = WritebackPolicy(field_names={"health_score": "Score", "explanation": "Why", "last_scored_at": "At"},
                          owned=frozenset({"Score", "Why", "At"}))


def _plan_one(last: dict, current: dict, *, score=70, why="new", we_win=False):
    result = HealthResult(account_id="A", as_of=_AT, score=score, band="b", component_rows=(), measure_rows=(),
                          trend_7d=None, trend_30d=None, renewal_stage=None, days_to_renewal=None, segment=None,
                          insufficient_data=False, coverage=1.0, active_signals=(), explanation=why)
    policy = WritebackPolicy(_POLICY.field_names, _POLICY.owned, we_win_conflicts=we_win)
    return build_plan(PlanInputs("hubspot", _AT, [result], [], {"A": last}, {"A": current}), policy)


_LEDGER = {"Score": 80, "Why": "old", "At": "2026-11-23T12:00:00+00:00"}  # what we last recorded


def test_planner_a_write_of_ours_the_ledger_missed_is_adopted_not_reported_as_a_human_edit():
    landed = {"Score": "70", "Why": "crashed", "At": "2026-11-24T11:59:55.000Z"}  # our write, unrecorded
    plan = _plan_one(_LEDGER, landed)
    assert plan.conflicts == ()
    assert plan.adopted[0].fields == {"Score": 70}  # the value that still holds: recorded, not rewritten
    assert plan.field_updates[0].fields == {"At": "2026-11-24T12:00:00+00:00", "Why": "new"}
    assert plan.field_updates[0].previous == {"At": "2026-11-24T11:59:55.000Z", "Why": "crashed"}
    settled = _plan_one(_LEDGER, {**landed, "Why": "new"})  # nothing else to write: the marker is adopted
    assert settled.field_updates == () and settled.conflicts == ()
    assert settled.adopted[0].fields == {"At": "2026-11-24T11:59:55.000Z", "Score": 70, "Why": "new"}


def test_planner_without_a_later_marker_a_difference_is_still_a_human_edit():
    human = {"Score": "95", "Why": "old", "At": "2026-11-23T12:00:00.000Z"}  # marker untouched: a person edited
    assert [(c.field, c.action) for c in _plan_one(_LEDGER, human).conflicts] == [("Score", "kept_theirs")]
    future = {**human, "At": "2026-11-25T00:00:00.000Z"}  # a marker after this cycle is not one of ours
    assert sorted(c.field for c in _plan_one(_LEDGER, future).conflicts) == ["At", "Score"]
    assert [c.action for c in _plan_one(_LEDGER, human, we_win=True).conflicts] == ["overwrote"]


def test_planner_risk_signals_fit_the_short_text_field_setup_creates():
    policy = WritebackPolicy(field_names={"top_risks": "Risks"}, owned=frozenset({"Risks"}))
    signals = tuple(f"a_rather_long_custom_risk_flag_{n:02d}" for n in range(8))  # 34 chars each: 8 make 286
    result = HealthResult(account_id="A", as_of=_AT, score=50, band="b", component_rows=(), measure_rows=(),
                          trend_7d=None, trend_30d=None, renewal_stage=None, days_to_renewal=None, segment=None,
                          insufficient_data=False, coverage=1.0, active_signals=signals, explanation="")
    text = desired_fields(result, policy)["Risks"]
    assert len(text) <= 255 and text.split(", ") == list(signals[:7])
