"""Signals from raw facts (SPEC §3): values, None for missing data, and facts after as_of ignored."""

from __future__ import annotations

from datetime import timedelta

import pytest

from healthsync.scoring import Activity, Contact, NpsResponse, Opportunity, Ticket, UsageDay
from healthsync.scoring.signals import SIGNALS, SignalCalculator, SignalConfig, compute_signals

from .scoring_factories import AS_OF, account, day, days_ago, facts, usage_rows


def signals_of(f, config=SignalConfig(), as_of=AS_OF):
    return compute_signals(f, as_of, config).values


def test_every_listed_signal_is_computed_and_nothing_else():
    values = signals_of(facts(usage=usage_rows(range(70))))
    assert set(values) == set(SIGNALS)


def test_unlinked_sources_give_none_not_zero():
    values = signals_of(facts(covered=frozenset({"crm"})))
    for name in ("mau", "login_days_30d", "tickets_30d", "csat_pct", "has_logged_in", "competitor_mentioned"):
        assert values[name] is None, name
    assert values["contacts_engaged_90d"] == 0.0  # CRM is linked: no activity is a real zero


def test_linked_usage_without_rows_is_zero_usage():
    values = signals_of(facts())
    assert values["mau"] == 0.0
    assert values["login_days_30d"] == 0.0
    assert values["has_logged_in"] is False


def test_usage_windows_and_ratios():
    rows = usage_rows(range(0, 10), users=4, events=50, core=8) + usage_rows(range(10, 30), users=2, events=10)
    values = signals_of(facts(account(seats_purchased=8, plan_capacity=1000, plan_features=("reports", "api")),
                              usage=rows))
    assert values["mau"] == 4.0
    assert values["wau"] == 4.0
    assert values["dau"] == pytest.approx((10 * 4 + 20 * 2) / 30)
    assert values["login_days_30d"] == 30.0
    assert values["events_30d"] == 10 * 50 + 20 * 10
    assert values["seat_utilisation_pct"] == pytest.approx(50.0)
    assert values["capacity_use_pct"] == pytest.approx(70.0)
    assert values["feature_adoption_pct"] == pytest.approx(50.0)
    assert values["core_actions_per_user_30d"] == pytest.approx((10 * 8 + 20 * 10) / 4)


def test_feature_adoption_uses_configured_plan_features_when_account_has_none():
    config = SignalConfig(features_by_plan={"pro": ("reports", "api", "sso", "alerts")})
    values = signals_of(facts(account(plan_tier="pro"), usage=usage_rows(range(5), features=("reports", "sso"))),
                        config)
    assert values["feature_adoption_pct"] == pytest.approx(50.0)
    assert signals_of(facts(account(plan_tier="free"), usage=usage_rows(range(5))), config)[
        "feature_adoption_pct"] is None


def test_week_over_week_change_and_decline_streak():
    # weekly events, newest first: 70, 140, 210, 280 (each week lower than the one before) then flat
    rows = []
    for week, per_day in enumerate((10, 20, 30, 40, 40, 40)):
        rows += usage_rows(range(7 * week, 7 * week + 7), events=per_day)
    values = signals_of(facts(usage=tuple(rows)))
    assert values["usage_wow_change_pct"] == pytest.approx(-50.0)
    assert values["usage_decline_weeks"] == 3.0


def test_comparisons_need_known_history():
    # a contract that started 10 days ago has no complete previous week
    values = signals_of(facts(account(contract_start=day(10)), usage=usage_rows(range(10))))
    assert values["usage_wow_change_pct"] is None
    assert values["usage_trend_30d_pct"] is None
    assert values["usage_decline_weeks"] is None


def test_usage_rows_after_as_of_are_ignored():
    rows = usage_rows(range(0, 20)) + (UsageDay(day(-1), frozenset({"late"}), frozenset({"late"}), 999),)
    values = signals_of(facts(usage=rows))
    assert values["mau"] == 3.0
    assert values["events_30d"] == 20 * 100


def test_onboarding_milestones_count_only_since_contract_start():
    rows = usage_rows(range(5, 8), users=1, core=0, value=0)
    values = signals_of(facts(account(contract_start=day(6)), usage=rows))
    assert values["has_logged_in"] is True
    assert values["has_core_action"] is False
    assert values["users_since_start"] == 1.0
    assert values["days_since_contract_start"] == 6.0


def ticket(tid, age_days, **kw):
    return Ticket(tid, days_ago(age_days), **kw)


def test_support_counts_windows_severity_and_csat():
    tickets = (
        ticket("1", 1, priority="urgent", satisfaction="good"),
        ticket("2", 5, priority="high", status="solved", solved_at=days_ago(2), satisfaction="bad"),
        ticket("3", 20, priority="low", reopens=2, tags=("billing",)),
        ticket("4", 60, tags=("billing",), status="solved", solved_at=days_ago(50), satisfaction="good"),
        ticket("5", 100, status="solved", solved_at=days_ago(95)),
        ticket("6", -1, priority="urgent"),  # created after as_of: ignored
    )
    values = signals_of(facts(tickets=tickets))
    assert (values["tickets_7d"], values["tickets_30d"], values["tickets_90d"]) == (2.0, 3.0, 4.0)
    assert values["high_severity_open"] == 1.0
    assert values["high_severity_30d"] == 2.0
    assert values["csat_pct"] == pytest.approx(200 / 3)
    assert values["reopened_tickets_90d"] == 1.0
    assert values["repeat_topics_90d"] == 1.0
    assert values["backlog_age_days"] == pytest.approx(20.0, abs=0.1)


def test_ticket_solved_after_as_of_counts_as_open_then():
    t = ticket("1", 10, priority="high", status="solved", solved_at=days_ago(1))
    assert signals_of(facts(tickets=(t,)), as_of=days_ago(3))["high_severity_open"] == 1.0
    assert signals_of(facts(tickets=(t,)))["high_severity_open"] == 0.0


def test_competitor_mentions_match_whole_words_case_insensitively():
    config = SignalConfig(competitor_words=("Gainsight", "Totango"))
    hit = ticket("1", 3, subject="Question", description="We are trialling GAINSIGHT next month")
    near_miss = ticket("2", 3, subject="Gainsighted", description="")
    calc = SignalCalculator(config, AS_OF)
    found = calc.compute(facts(tickets=(hit,)))
    assert found.values["competitor_mentioned"] is True
    assert found.evidence["competitor_mentioned"] == "gainsight"
    assert calc.compute(facts(tickets=(near_miss,))).values["competitor_mentioned"] is False
    assert signals_of(facts(tickets=(hit,)))["competitor_mentioned"] is None  # no word list configured


def test_engagement_meetings_emails_and_silence():
    acts = (
        Activity("a1", "meeting", days_ago(10), outcome="held", contact_id="c1"),
        Activity("a2", "meeting", days_ago(20), outcome="no_show", contact_id="c2"),
        Activity("a3", "qbr", days_ago(40), outcome="cancelled"),
        Activity("a4", "email", days_ago(3), direction="outbound", contact_id="c1"),
        Activity("a5", "email", days_ago(5), direction="outbound"),
        Activity("a6", "email", days_ago(4), direction="inbound", contact_id="c3"),
        Activity("a7", "call", days_ago(-2), outcome="held", contact_id="c4"),  # future: ignored
    )
    values = signals_of(facts(activities=acts))
    assert values["meetings_held_90d"] == 1.0
    assert values["meetings_no_show_90d"] == 1.0
    assert values["meetings_cancelled_90d"] == 1.0
    assert values["meeting_attendance_pct"] == pytest.approx(100 / 3)
    assert values["qbr_attended"] is False
    assert values["email_response_rate_pct"] == pytest.approx(50.0)
    assert values["days_since_two_way_touch"] == 4.0
    assert values["contacts_engaged_90d"] == 2.0


def test_never_touched_account_is_silent_since_contract_start():
    values = signals_of(facts(account(contract_start=day(45))))
    assert values["days_since_two_way_touch"] == 45.0


def test_stakeholders_champion_left_and_sponsor_engaged():
    contacts = (
        Contact("c1", "champ@acme.io", is_champion=True, left_at=days_ago(30)),
        Contact("c2", "new@acme.io", is_champion=True),
        Contact("c3", "ceo@acme.io", is_exec_sponsor=True, role_changed_at=days_ago(200)),
    )
    acts = (Activity("a", "meeting", days_ago(5), outcome="held", contact_id="c3"),)
    values = signals_of(facts(contacts=contacts, activities=acts))
    assert values["champion_present"] is True
    assert values["champion_left_90d"] is True
    assert values["exec_sponsor_engaged_90d"] is True
    assert values["stakeholder_changes_12m"] == 2.0
    # as of 40 days ago the champion had not left yet
    assert signals_of(facts(contacts=contacts, activities=acts), as_of=days_ago(40))["champion_left_90d"] is False


def test_contract_signals_and_dated_renewal_signature():
    won = Opportunity("o1", "renewal", 50_000, "Closed Won", True, close_date=day(10), created_at=days_ago(90))
    exp = Opportunity("o2", "expansion", 8_000, "Closed Won", True, close_date=day(100))
    acct = account(renewal_date=day(-20), renewal_signed=None, payment_status="late")
    values = signals_of(facts(acct, opportunities=(won, exp)))
    assert values["days_to_renewal"] == 20.0
    assert values["renewal_signed"] is True
    assert values["expansion_12m"] is True
    assert values["expansion_amount_12m"] == 8_000.0
    assert values["late_payments"] == 1.0
    assert values["payment_failed"] is False
    # before the opportunity closed, the renewal was not signed yet
    assert signals_of(facts(acct, opportunities=(won, exp)), as_of=days_ago(15))["renewal_signed"] is False


def test_unknown_renewal_and_payment_are_none():
    values = signals_of(facts(account(renewal_date=None, payment_status=None)))
    assert values["days_to_renewal"] is None
    assert values["renewal_signed"] is None
    assert values["late_payments"] is None
    assert values["payment_failed"] is None


def test_nps_prefers_latest_dated_response_then_crm_field():
    responses = (NpsResponse(days_ago(50), 6), NpsResponse(days_ago(5), 9), NpsResponse(days_ago(-1), 0))
    assert signals_of(facts(account(nps=3), nps_responses=responses))["nps"] == 9.0
    assert signals_of(facts(account(nps=3)))["nps"] == 3.0
    assert signals_of(facts(account(nps=None)))["nps"] is None


def test_naive_datetimes_are_taken_as_utc():
    naive = Ticket("1", (AS_OF - timedelta(days=1)).replace(tzinfo=None))
    assert naive.created_at.tzinfo is not None
    assert signals_of(facts(tickets=(naive,)))["tickets_7d"] == 1.0


def test_as_of_must_be_timezone_aware():
    with pytest.raises(ValueError, match="timezone-aware"):
        SignalCalculator(SignalConfig(), AS_OF.replace(tzinfo=None))


def test_users_since_start_is_counted_only_while_onboarding():
    assert signals_of(facts(account(contract_start=day(90)), usage=usage_rows(range(20))))["users_since_start"] == 3.0
    assert signals_of(facts(account(contract_start=day(91)), usage=usage_rows(range(20))))["users_since_start"] is None


def test_rows_in_any_order_give_the_same_signals():
    rows = usage_rows(range(0, 40), users=2, events=5) + usage_rows(range(40, 70), users=4, events=50)
    sorted_values = signals_of(facts(usage=rows))
    shuffled_values = signals_of(facts(usage=tuple(reversed(rows))))
    assert sorted_values == shuffled_values
    # last 30 days: 30 x 5 = 150 events; the 30 before: 10 x 5 + 20 x 50 = 1050
    assert sorted_values["usage_trend_30d_pct"] == pytest.approx(100.0 * (150 - 1050) / 1050)
