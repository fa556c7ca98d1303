"""The backtest on books whose past we wrote ourselves: its numbers, its models side by side, its window, what it
skips, its repeatability, its lead time, and its blindness to anything after each replayed instant."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta

import pytest

from healthsync.config.catalog import resolve_preset_path
from healthsync.config.health_model import load_model
from healthsync.config.settings import YamlSource
from healthsync.insights.backtest import History, Options, run_backtest
from healthsync.insights.outcomes import ClosedRenewal
from healthsync.scoring.base import Ticket, UsageDay
from tests.insights.factories import START, at, book, days, facts, steady

PRESETS = ("default", "csm-playbook", "points-100", "ops-thresholds", "weighted-five")
MODELS = [(n, load_model(YamlSource("preset", n, path=resolve_preset_path(n)).load())) for n in PRESETS]
FAST = Options(bootstrap_rounds=200, lead_weeks=8)


@pytest.fixture(scope="module")
def history():
    return book(120, 30, seed=1)


@pytest.fixture(scope="module")
def result(history):
    return run_backtest(history, MODELS, FAST)


def test_every_model_is_measured_on_the_same_renewals(result):
    assert [m.model for m in result.models] == list(PRESETS)
    assert {(m.accounts, m.churned) for m in result.models} == {(150, 30)}
    assert result.outcomes == {"renewed": 120, "contracted": 0, "expanded": 0, "churned": 30}
    assert result.loss_reasons == {"Too expensive": 30} and result.warnings == ()


def test_the_numbers_hang_together(result):
    for m in result.models:
        assert 0.5 < m.auc <= 1.0 and m.auc_ci.low <= m.auc <= m.auc_ci.high
        assert 0.0 < m.pr_auc <= 1.0 and m.lift_top_decile >= 1.0
        assert sum(b.accounts for b in m.by_band) == 150 and sum(b.churned for b in m.by_band) == 30
        red = next(b for b in m.by_band if b.band == m.red_band)
        if red.accounts:
            assert m.precision_at_red == pytest.approx(red.churned / red.accounts)
            assert m.recall_at_red == pytest.approx(red.churned / 30)
        assert m.reliable and 0 <= m.churned_reaching_red <= 30
    default = result.models[0]
    # the early churners are down to their floor at the horizon (red, and only they), the late ones look fine
    assert default.auc > 0.65 and default.precision_at_red == 1.0 and 0.5 < default.recall_at_red < 0.8


def test_the_same_history_gives_the_same_numbers(history, result):
    assert run_backtest(history, MODELS, FAST) == result


def test_the_window_and_the_horizon_choose_the_renewals(history):
    anchors = sorted(r.close_date for r in history.renewals)
    window = run_backtest(history, MODELS[:1], replace(FAST, first=anchors[20], last=anchors[59]))
    assert window.models[0].accounts == 40 and (window.first, window.last) == (anchors[20], anchors[59])
    # a horizon reaching before the usage history's first 60 days leaves those renewals out
    start = history.usage_start
    far = run_backtest(history, MODELS[:1], replace(FAST, horizon_days=(anchors[10] - start).days - 60))
    assert far.skipped == {"before the usage history": 10} and far.models[0].accounts == 140


def test_few_churned_renewals_are_reported_as_unreliable_with_wide_intervals(history):
    small = History(history.facts, history.renewals[:40], history.usage_start)
    churned = sum(not r.won for r in small.renewals)
    report = run_backtest(small, MODELS[:1], replace(FAST, min_churned=30))
    assert report.warnings and f"only {churned} churned" in report.warnings[0]
    model = report.models[0]
    assert not model.reliable and model.auc_ci.high - model.auc_ci.low > 0.1


def test_unknown_accounts_are_skipped_and_counted(history):
    extra = ClosedRenewal("NOPE", "O-x", history.renewals[-1].close_date, True)
    report = run_backtest(History(history.facts, (*history.renewals, extra), history.usage_start), MODELS[:1], FAST)
    assert report.skipped == {"account not in the store": 1}


def _ruined_after(f, after: date):
    """A renewer's facts with a collapse after `after`: nobody logs in, urgent tickets pile up."""
    usage = tuple(u for u in f.usage if u.day <= after) + tuple(UsageDay(d) for d in days(after + timedelta(days=1),
                                                                                           after + timedelta(days=120)))
    tickets = f.tickets + tuple(Ticket(f"x{n}", at(after + timedelta(days=n + 1)), priority="urgent", status="open",
                                       description="We are moving to Gainsight") for n in range(10))
    return replace(f, usage=usage, tickets=tickets)


def test_nothing_after_each_replayed_instant_changes_the_result(history, result):
    horizon = FAST.horizon_days
    anchor = {r.account_id: r.close_date for r in history.renewals}
    ruined = [_ruined_after(f, anchor[f.account.id] - timedelta(days=horizon)) for f in history.facts]
    replayed = run_backtest(History(ruined, history.renewals, history.usage_start), MODELS, FAST)
    # the lead time looks at the whole run-up to each renewal; everything else sees only the replayed instant
    assert [_at_instant(m) for m in replayed.models] == [_at_instant(m) for m in result.models]


def _at_instant(report):
    return replace(report, median_lead_days=None, churned_reaching_red=0)


def test_lead_time_is_when_a_churner_first_stood_in_the_bottom_band():
    model = load_model({
        "name": "logins", "components": [{"name": "usage", "weight": 100, "measures": [{
            "signal": "login_days_30d", "type": "thresholds", "steps": [{"min": 10, "score": 100}], "else": 0}]}],
        "bands": [{"name": "ok", "min": 50}, {"name": "red", "min": 0}]})
    renewal = date(2025, 6, 30)
    quiet_from = renewal - timedelta(days=70)  # every day active before, nobody after: red once 21 days are quiet
    churner = facts("C", lambda d: 1.0 if d < quiet_from else 0.0, last=renewal, seats=5)
    churner = replace(churner, usage=tuple(u if u.day < quiet_from else UsageDay(u.day) for u in churner.usage))
    renewer = facts("R", steady(1.0), last=renewal, seats=5)
    history = History([churner, renewer], [ClosedRenewal("C", "1", renewal, False), ClosedRenewal("R", "2", renewal,
                                                                                                   True)], START)
    report = run_backtest(history, [("logins", model)], replace(FAST, lead_weeks=26)).models[0]
    assert report.median_lead_days == 49 and report.churned_reaching_red == 1
