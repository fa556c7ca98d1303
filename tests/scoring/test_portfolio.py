"""End to end: facts -> signals -> score -> rules via score_portfolio, backfilled history, explanations."""

from __future__ import annotations

from datetime import timedelta

import pytest

from healthsync.config.health_model import load_model
from healthsync.scoring import Activity, Contact, PastResult, Ticket, backfill_history, score_portfolio
from healthsync.scoring.explain import fit

from .scoring_factories import (
    AS_OF,
    account,
    day,
    days_ago,
    default_playbook,
    facts,
    preset,
    preset_dict,
    usage_rows,
)


def active_account(**overrides):
    """An established account with steady usage, a held meeting and a champion."""
    acct = account(**overrides)
    return facts(
        acct,
        usage=usage_rows(range(0, 70), users=6, events=120, core=20),
        contacts=(Contact("c1", "champ@acme.io", is_champion=True), Contact("c2", "ceo@acme.io", is_exec_sponsor=True)),
        activities=(Activity("m1", "meeting", days_ago(3), outcome="held", contact_id="c2"),
                    Activity("e1", "email", days_ago(2), direction="outbound", contact_id="c1"),
                    Activity("e2", "email", days_ago(1), direction="inbound", contact_id="c1")),
    )


def run(portfolio, history=None, model="default", as_of=AS_OF):
    return score_portfolio(portfolio, preset(model), default_playbook(), history or {}, as_of)


def test_result_fields_and_order():
    portfolio = [active_account(id="A1"), active_account(id="A2", acv=150_000.0)]
    results = run(portfolio)
    assert [s.result.account_id for s in results] == ["A1", "A2"]
    first = results[0].result
    assert 0 <= first.score <= 100 and first.band in ("healthy", "at-risk", "critical")
    assert [c.name for c in first.components] == ["usage", "support_sentiment", "engagement", "contract",
                                                  "stakeholder"]
    assert {m.signal for m in first.measures} >= {"dau_mau_pct", "tickets_90d"}
    assert first.segment == "Mid-Market" and results[1].result.segment == "Enterprise"
    assert first.renewal_stage is None and first.days_to_renewal == 200
    assert first.trend_7d is None and first.insufficient_data is False
    result, intents = results[0]  # unpacks like a (result, intents) pair
    assert result is first and isinstance(intents, tuple)


def test_unsigned_renewal_in_30_days_escalates_to_cto():
    portfolio = [active_account(renewal_date=day(-30), renewal_signed=False)]
    [scored] = run(portfolio)
    assert scored.result.renewal_stage == "escalate"
    escalation = [i for i in scored.intents if i.rule_id == "renewal_unsigned"]
    assert escalation and escalation[0].owner.email == "cto@cloudscale.io"
    assert "renewal_stage = escalate" in escalation[0].body


def test_champion_departure_and_competitor_reach_rules_and_active_signals():
    base = active_account()
    model = dict(preset_dict("default"))
    model["signals"] = dict(model["signals"], competitor_words=["Gainsight"])
    competitor_model = load_model(model)
    troubled = facts(
        base.account,
        usage=base.usage,
        contacts=(Contact("c1", "champ@acme.io", is_champion=True, left_at=days_ago(10)),),
        activities=base.activities,
        tickets=(Ticket("t1", days_ago(2), subject="Renewal", description="Gainsight offered us a discount"),),
    )
    [scored] = score_portfolio([troubled], competitor_model, default_playbook(), {}, AS_OF)
    fired = {i.rule_id for i in scored.intents}
    assert {"champion_left", "competitor_mentioned"} <= fired
    assert {"champion_left", "competitor_mentioned", "no_champion"} <= set(scored.result.active_signals)


def test_onboarding_day_3_without_login():
    new = facts(account(contract_start=day(3)), contacts=(Contact("c1", is_champion=True),))
    [scored] = run([new])
    assert "onboarding_day3_no_login" in {i.rule_id for i in scored.intents}
    earlier = run([new], as_of=AS_OF - timedelta(days=1))[0]
    assert "onboarding_day3_no_login" not in {i.rule_id for i in earlier.intents}


def test_backfill_makes_trend_rules_work_on_the_first_run():
    # usage collapsed in the last 7 days: the same facts scored 7 and 30 days ago give a real trend
    healthy_then = usage_rows(range(7, 70), users=8, events=300, core=40)
    quiet_now = usage_rows(range(0, 7), users=1, events=1, core=0)
    acct = facts(account(seats_purchased=8), usage=healthy_then + quiet_now,
                 tickets=tuple(Ticket(f"t{i}", days_ago(i + 1), priority="urgent") for i in range(4)),
                 activities=(Activity("m", "meeting", days_ago(40), outcome="held", contact_id="c1"),))
    history = backfill_history([acct], preset("default"), AS_OF)
    past = history[acct.account.id]
    assert [p.as_of for p in past] == [AS_OF - timedelta(days=30), AS_OF - timedelta(days=7)]
    [scored] = run([acct], history)
    assert scored.result.trend_7d is not None and scored.result.trend_7d < -10
    assert scored.result.trend_30d is not None
    assert {"sharp_drop", "usage_drop"} <= {i.rule_id for i in scored.intents}
    assert "Moved since" in scored.result.explanation


def test_facts_after_as_of_do_not_change_a_backfilled_score():
    acct = active_account()
    later_ticket = Ticket("late", AS_OF - timedelta(days=2), priority="urgent")
    with_later = facts(acct.account, usage=acct.usage, contacts=acct.contacts, activities=acct.activities,
                       tickets=(later_ticket,))
    as_of = AS_OF - timedelta(days=7)
    assert run([acct], as_of=as_of)[0].result.score == run([with_later], as_of=as_of)[0].result.score


def test_explanation_names_raw_values_and_what_moved():
    acct = active_account()
    [first] = run([acct], as_of=AS_OF - timedelta(days=1))
    worse = facts(acct.account, usage=acct.usage, contacts=acct.contacts, activities=acct.activities,
                  tickets=tuple(Ticket(f"t{i}", days_ago(0.5), priority="high") for i in range(3)))
    [second] = run([worse], {acct.account.id: [first.result.to_past()]})
    text = second.result.explanation
    assert len(text) <= 1000
    assert text.startswith(f"Health {second.result.score}/100 ({second.result.band})")
    assert "Pulling down: support_sentiment/severity (high_severity_open=3) scored 0" in text
    assert "Moved since" in text and "high_severity_open 0->3" in text


def test_insufficient_data_is_flagged_and_explained():
    bare = facts(account(renewal_date=None, payment_status=None), covered=frozenset())
    [scored] = run([bare])
    assert scored.result.insufficient_data is True
    assert "Insufficient data" in scored.result.explanation
    assert "No data (left out, re-weighted)" in scored.result.explanation


def test_past_result_round_trip_keeps_measure_scores():
    [scored] = run([active_account()])
    past = scored.result.to_past()
    assert past.score == scored.result.score and past.band == scored.result.band
    assert set(past.measures) == {m.name for m in scored.result.measures if m.score is not None}


def test_naive_as_of_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        score_portfolio([], preset("default"), None, {}, AS_OF.replace(tzinfo=None))


def test_no_playbook_means_no_intents_and_history_is_optional():
    [scored] = score_portfolio([active_account()], preset("default"), None, {}, AS_OF)
    assert scored.intents == ()


def test_band_change_from_stored_history_escalates():
    # CRM only: no contacts engaged, silent for 400 days -> 46, critical (see the explanation below)
    acct = facts(account(), covered=frozenset({"crm"}))
    [scored] = run([acct], {"001A": [PastResult(AS_OF - timedelta(days=1), 75, "healthy")]})
    assert (scored.result.score, scored.result.band) == (46, "critical")
    fired = {i.rule_id: i for i in scored.intents}
    assert set(fired) == {"below_threshold", "outreach_24h", "band_change_escalation", "silent_customer"}
    escalation = fired["band_change_escalation"]
    assert escalation.owner.email == "cs-leadership@cloudscale.io"
    assert "band changed healthy -> critical (score 46)" in escalation.body
    assert "was healthy" in scored.result.explanation


def test_fit_truncates_with_an_ellipsis():
    text = fit(["a" * 600, "b" * 600])
    assert len(text) <= 1000 and text.endswith("…") and text.startswith("a" * 600)
    assert fit(["short.", "also short."]) == "short. also short."
