"""The default playbook (SPEC §5): every canonical rule fires on an account that just meets its
condition and not on one just short of it; intents carry owner, due date, window and the why."""

from __future__ import annotations

from datetime import timedelta

import pytest

from healthsync.scoring.base import HistoryFacts

from .scoring_factories import AS_OF, account, default_playbook, rule_context

CANONICAL_IDS = (
    "below_threshold outreach_24h sharp_drop sharp_drop_manager slow_decline band_change_intervention "
    "band_change_escalation usage_drop declining_logins ticket_burst severe_tickets competitor_mentioned "
    "champion_left silent_customer renewal_risk renewal_stage_engage renewal_stage_propose "
    "renewal_stage_negotiate renewal_unsigned onboarding_day3_no_login onboarding_day5_no_core_action "
    "onboarding_day7_no_value onboarding_day10_single_user onboarding_day14_low_adoption expansion advocate"
).split()

# an established, healthy, quiet account: no default rule fires on it
QUIET = {
    "usage_wow_change_pct": 0.0, "login_decline_weeks": 0.0, "tickets_7d": 0.0, "high_severity_open": 0.0,
    "high_severity_30d": 0.0, "competitor_mentioned": False, "champion_left_90d": False,
    "days_since_two_way_touch": 5.0, "days_to_renewal": 200.0, "renewal_signed": False,
    "days_since_contract_start": 400.0, "has_logged_in": True, "has_core_action": True, "has_value_event": True,
    "users_since_start": 5.0, "feature_adoption_pct": 60.0, "capacity_use_pct": 50.0,
    "seat_utilisation_pct": 50.0, "nps": 7.0,
}
STEADY = HistoryFacts(previous_score=80, previous_band="healthy", delta_7d=0, delta_30d=0)


def ctx(values=None, score=80, band="healthy", history=STEADY, **kw):
    merged = dict(QUIET)
    merged.update(values or {})
    return rule_context(merged, score=score, band=band, history=history, **kw)


def h(previous_score=80, previous_band="healthy", d7=0, d30=0):
    return HistoryFacts(previous_score=previous_score, previous_band=previous_band, delta_7d=d7, delta_30d=d30)


NEW = {"days_since_contract_start": 3.0, "has_logged_in": False, "has_core_action": False,
       "has_value_event": False, "users_since_start": 0.0, "feature_adoption_pct": 0.0}

CASES = {
    "below_threshold": (
        ctx(score=69, band="at-risk", history=h(70)),
        [ctx(score=70, band="healthy", history=h(75)), ctx(score=65, band="at-risk", history=h(69, "at-risk"))],
    ),
    "outreach_24h": (ctx(score=59, band="critical", history=h(59, "critical")),
                     [ctx(score=60, band="at-risk", history=h(60, "at-risk"))]),
    "sharp_drop": (ctx(history=h(d7=-11)), [ctx(history=h(d7=-10))]),
    "sharp_drop_manager": (ctx(history=h(d7=-16)), [ctx(history=h(d7=-15))]),
    "slow_decline": (ctx(history=h(d30=-16)), [ctx(history=h(d30=-15))]),
    "band_change_intervention": (
        ctx(score=65, band="at-risk", history=h(72, "healthy")),
        [ctx(score=70, band="healthy", history=h(72, "healthy")),
         ctx(score=50, band="critical", history=h(72, "healthy"))],
    ),
    "band_change_escalation": (
        ctx(score=59, band="critical", history=h(61, "at-risk")),
        [ctx(score=60, band="at-risk", history=h(61, "at-risk"))],
    ),
    "usage_drop": (ctx({"usage_wow_change_pct": -30.01}), [ctx({"usage_wow_change_pct": -30.0})]),
    "declining_logins": (ctx({"login_decline_weeks": 3.0}), [ctx({"login_decline_weeks": 2.0})]),
    "ticket_burst": (ctx({"tickets_7d": 2.0}), [ctx({"tickets_7d": 1.0})]),
    "severe_tickets": (ctx({"high_severity_open": 2.0}),
                       [ctx({"high_severity_open": 1.0, "high_severity_30d": 1.0})]),
    "competitor_mentioned": (ctx({"competitor_mentioned": True}, evidence={"competitor_mentioned": "gainsight"}),
                             [ctx({"competitor_mentioned": False}), ctx({"competitor_mentioned": None})]),
    "champion_left": (ctx({"champion_left_90d": True}), [ctx({"champion_left_90d": False})]),
    "silent_customer": (ctx({"days_since_two_way_touch": 30.0}), [ctx({"days_since_two_way_touch": 29.0})]),
    "renewal_risk": (
        ctx({"days_to_renewal": 90.0}, history=h(d30=-5)),
        [ctx({"days_to_renewal": 91.0}, history=h(d30=-5)), ctx({"days_to_renewal": 90.0}, history=h(d30=-4)),
         ctx({"days_to_renewal": 90.0, "renewal_signed": True}, history=h(d30=-5))],
    ),
    "renewal_stage_engage": (ctx({"days_to_renewal": 120.0}, renewal_stage="engage"),
                             [ctx({"days_to_renewal": 121.0}, renewal_stage=None)]),
    "renewal_stage_propose": (ctx({"days_to_renewal": 90.0}, renewal_stage="propose"),
                              [ctx({"days_to_renewal": 91.0}, renewal_stage="engage")]),
    "renewal_stage_negotiate": (ctx({"days_to_renewal": 60.0}, renewal_stage="negotiate"),
                                [ctx({"days_to_renewal": 61.0}, renewal_stage="propose")]),
    "renewal_unsigned": (ctx({"days_to_renewal": 30.0}, renewal_stage="escalate"),
                         [ctx({"days_to_renewal": 31.0}, renewal_stage="negotiate"),
                          ctx({"days_to_renewal": 30.0, "renewal_signed": True}, renewal_stage="renewed")]),
    "onboarding_day3_no_login": (ctx(NEW), [ctx({**NEW, "days_since_contract_start": 2.0}),
                                            ctx({**NEW, "has_logged_in": True})]),
    "onboarding_day5_no_core_action": (
        ctx({**NEW, "days_since_contract_start": 5.0, "has_logged_in": True}),
        [ctx({**NEW, "days_since_contract_start": 4.0, "has_logged_in": True}),
         ctx({**NEW, "days_since_contract_start": 5.0, "has_logged_in": True, "has_core_action": True})],
    ),
    "onboarding_day7_no_value": (ctx({**NEW, "days_since_contract_start": 7.0}),
                                 [ctx({**NEW, "days_since_contract_start": 6.0})]),
    "onboarding_day10_single_user": (
        ctx({**NEW, "days_since_contract_start": 10.0, "users_since_start": 1.0}),
        [ctx({**NEW, "days_since_contract_start": 9.0, "users_since_start": 1.0}),
         ctx({**NEW, "days_since_contract_start": 10.0, "users_since_start": 2.0})],
    ),
    "onboarding_day14_low_adoption": (
        ctx({**NEW, "days_since_contract_start": 14.0, "users_since_start": 2.0, "feature_adoption_pct": 50.0}),
        [ctx({**NEW, "days_since_contract_start": 13.0, "users_since_start": 2.0}),
         ctx({**NEW, "days_since_contract_start": 14.0, "users_since_start": 3.0, "feature_adoption_pct": 40.0})],
    ),
    "expansion": (
        ctx({"capacity_use_pct": 80.01}),
        [ctx({"capacity_use_pct": 80.0, "seat_utilisation_pct": 80.0}),
         ctx({"capacity_use_pct": 95.0}, score=65, band="at-risk", history=h(65, "at-risk"))],
    ),
    "advocate": (ctx({"nps": 9.0}), [ctx({"nps": 8.0}), ctx({"nps": 10.0}, score=65, band="at-risk",
                                                             history=h(65, "at-risk"))]),
}


def fired(context) -> dict[str, object]:
    return {i.rule_id: i for i in default_playbook().evaluate(context, account(), AS_OF)}


def test_the_default_playbook_has_exactly_the_canonical_rules():
    assert [r.id for r in default_playbook().rules] == CANONICAL_IDS
    assert set(CASES) == set(CANONICAL_IDS)


def test_a_quiet_healthy_account_fires_nothing():
    assert fired(ctx()) == {}


@pytest.mark.parametrize("rule_id", CANONICAL_IDS)
def test_rule_fires_when_just_met(rule_id):
    meets, _ = CASES[rule_id]
    assert rule_id in fired(meets)


@pytest.mark.parametrize("rule_id", CANONICAL_IDS)
def test_rule_stays_quiet_just_short(rule_id):
    _, shorts = CASES[rule_id]
    for short in shorts:
        assert rule_id not in fired(short)


def test_unsigned_renewal_escalates_to_the_configured_email_once_per_renewal():
    acct = account(renewal_date=AS_OF.date() + timedelta(days=30))
    intents = {i.rule_id: i for i in default_playbook().evaluate(
        ctx({"days_to_renewal": 30.0}, renewal_stage="escalate"), acct, AS_OF)}
    intent = intents["renewal_unsigned"]
    assert intent.kind == "escalation"
    assert intent.owner.kind == "email" and intent.owner.email == "cto@cloudscale.io"
    assert intent.owner.role == "renewal_escalation"
    assert intent.dedupe_key == f"001A|renewal_unsigned|renewal-{acct.renewal_date.isoformat()}"
    assert intent.priority == "urgent"
    assert intent.due_at == AS_OF + timedelta(days=1)
    later = default_playbook().evaluate(ctx({"days_to_renewal": 20.0}, renewal_stage="escalate"), acct,
                                        AS_OF + timedelta(days=10))
    assert {i.dedupe_key for i in later if i.rule_id == "renewal_unsigned"} == {intent.dedupe_key}


def test_outreach_task_is_due_in_24_hours_to_the_account_owner_and_says_why():
    intent = fired(ctx(score=55, band="critical", history=h(58, "critical")))["outreach_24h"]
    assert intent.due_at == AS_OF + timedelta(hours=24)
    assert intent.owner.kind == "account_owner" and intent.owner.owner_id == "005OWNER"
    assert "score = 55 (score < 60)" in intent.body
    assert intent.subject == "Outreach plan within 24h for Acme (health 55)"


def test_body_names_the_signal_values_and_evidence_that_fired_it():
    intent = fired(CASES["competitor_mentioned"][0])["competitor_mentioned"]
    assert "competitor_mentioned = yes" in intent.body and "gainsight" in intent.body
    usage = fired(ctx({"usage_wow_change_pct": -42.5}))["usage_drop"]
    assert "usage_wow_change_pct = -42.5 (usage_wow_change_pct < -30)" in usage.body


def test_expansion_is_suppressed_for_accounts_that_are_not_healthy():
    healthy = fired(ctx({"seat_utilisation_pct": 90.0}))
    assert "expansion" in healthy
    assert "not suppressed" in healthy["expansion"].body
    unhealthy = fired(ctx({"seat_utilisation_pct": 90.0}, score=68, band="at-risk", history=h(68, "at-risk")))
    assert "expansion" not in unhealthy


def test_same_week_refire_dedupes_next_week_does_not():
    first = fired(ctx({"tickets_7d": 3.0}))["ticket_burst"]
    same_week = default_playbook().evaluate(ctx({"tickets_7d": 3.0}), account(), AS_OF + timedelta(days=2))
    next_week = default_playbook().evaluate(ctx({"tickets_7d": 3.0}), account(), AS_OF + timedelta(days=7))
    assert first.window == "2025-W23"
    assert [i.dedupe_key for i in same_week if i.rule_id == "ticket_burst"] == [first.dedupe_key]
    assert [i.dedupe_key for i in next_week if i.rule_id == "ticket_burst"] != [first.dedupe_key]
    assert first.cooldown_days == 7
