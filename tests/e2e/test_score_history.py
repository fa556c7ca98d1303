"""Score history through the store: what a cycle records is what the next one compares with, so explanations
written to the CRM can say what moved from what (SPEC §4), and the run record says what each step did (SPEC §7)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from healthsync.sync.cycle import api_use
from healthsync.sync.gather import gather_facts
from healthsync.sync.pipeline import score_accounts
from tests.e2e.conftest import BOOK_SIZE
from tests.e2e.harness import pinned_env

pytestmark = pytest.mark.slow


def test_a_week_later_explanations_say_what_moved_from_the_stored_raw_values():
    with pinned_env("salesforce", accounts=BOOK_SIZE, drop=("mixpanel",)) as env:
        env.setup_fields()
        first = env.cycle(full=True)
        assert first.status == "ok"
        week_later = env.as_of + timedelta(days=7)
        gathered = gather_facts(env.store, env.ctx, set(first.sources), week_later)
        scored = score_accounts(env.ctx, gathered.facts, week_later, None)
    moves = [s.result.explanation.split("Moved since", 1)[1] for s in scored if "Moved since" in s.result.explanation]
    assert len(moves) >= 5, "too few accounts moved in a week for the test to mean anything"
    # each move reads "component/measure signal BEFORE->AFTER, score X->Y": BEFORE comes from the stored row
    unknown_before = [m for m in moves if "n/a->" in m]
    assert not unknown_before, f"stored history lost its raw values: {unknown_before[:3]}"


def test_the_run_record_keeps_every_step_of_the_cycle():
    with pinned_env("hubspot", accounts=BOOK_SIZE, drop=("mixpanel", "zendesk")) as env:
        env.setup_fields()
        report = env.cycle(full=True)
        [run] = [r for r in env.store.runs.recent(5) if r.id == report.run_id]
    assert run.status == "ok"
    assert set(run.steps) == {"pull", "identity_and_facts", "score", "plan", "apply"}
    assert run.steps["score"]["accounts"] == BOOK_SIZE
    assert run.steps["apply"]["tasks_created"] == report.applied.tasks_created > 0
    assert run.steps["pull"]["hubspot"]["ok"] is True


def test_each_cycle_reports_what_its_own_api_calls_cost_writes_included():
    with pinned_env("hubspot", accounts=BOOK_SIZE, drop=("mixpanel", "zendesk")) as env:
        env.setup_fields()
        before = api_use(env.ctx.pacers, "hubspot").calls
        reports = [env.cycle(full=True), env.cycle(step=1)]
        spent = api_use(env.ctx.pacers, "hubspot").calls - before
    per_cycle = [report.sources["hubspot"].api.calls for report in reports]
    assert all(calls > 0 for calls in per_cycle) and sum(per_cycle) == spent  # not a running total each time
    first = reports[0]
    assert first.writes == {"fields": first.applied.fields_written, "tasks": first.applied.tasks_created}
    assert sum(first.accounts_by_band.values()) == BOOK_SIZE
