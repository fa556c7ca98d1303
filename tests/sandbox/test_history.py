"""The churn history: today's book untouched, a past older than today's windows, former customers who lost a
renewal with a reason after a decline with a lead time, noise both ways, and the same seed the same past."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import UTC, datetime, timedelta
from statistics import fmean, median

import pytest

from healthsync.sandbox.history import LOSS_REASONS, PastRenewal
from healthsync.sandbox.portfolio import generate_portfolio

AS_OF = datetime(2025, 6, 4, 10, tzinfo=UTC)
DAYS = 450
LISTS = ("owners", "accounts", "contacts", "opportunities", "activities", "zendesk_orgs", "zendesk_users",
         "tickets", "satisfaction_ratings", "mixpanel_profiles")


@pytest.fixture(scope="module")
def plain():
    return generate_portfolio(7, 300, AS_OF)


@pytest.fixture(scope="module")
def past():
    return generate_portfolio(7, 300, AS_OF, history_days=DAYS)


def _key(record) -> object:
    return getattr(record, "key", None) or getattr(record, "id", None) or record.distinct_id


def test_without_history_nothing_changes(plain):
    assert plain.history is None
    assert all(a.churned_on is None for a in plain.accounts) and len(plain.accounts) == 300
    assert not any(plan.trajectory for plan in plain.event_source.plans)


def test_todays_book_is_kept_record_for_record(plain, past):
    """Only a past renewal's amount may differ (its outcome decides it); every other field of every record stays."""
    for name in LISTS:
        later = {_key(r): r for r in getattr(past, name)}
        for record in getattr(plain, name):
            twin = later[_key(record)]
            if name == "opportunities" and record.kind == "renewal" and record.is_won \
                    and record.close_date < AS_OF.date():
                twin = dataclasses.replace(twin, amount=record.amount)
            assert twin == record, (name, _key(record))
    assert past.scenarios == plain.scenarios and past.controls == plain.controls


def test_todays_usage_is_kept_event_for_event(plain, past):
    current = {a.key for a in plain.accounts}
    for back in (0, 6, 45, 89):
        day = AS_OF.date() - timedelta(days=back)
        mine = [e for e in past.events_for_day(day) if e["properties"]["_account_key"] in current]
        assert mine == [e for e in plain.events_for_day(day) if e["properties"]["_account_key"] in current]


def test_the_past_of_current_accounts_is_older_than_todays_windows(plain, past):
    current = {a.key for a in plain.accounts}
    org_account = {o.id: o.account_key for o in past.zendesk_orgs}
    seen = {name: {_key(r) for r in getattr(plain, name)} for name in ("tickets", "activities", "contacts")}
    new_tickets = [t for t in past.tickets if t.id not in seen["tickets"] and org_account.get(t.org_id) in current]
    new_activities = [a for a in past.activities if a.key not in seen["activities"] and a.account_key in current]
    departed = [c for c in past.contacts if c.key not in seen["contacts"] and c.account_key in current]
    assert new_tickets and new_activities and departed
    assert max(t.created_at for t in new_tickets) <= past.as_of - timedelta(days=180)
    assert max(a.occurred_at for a in new_activities) <= past.as_of - timedelta(days=120)
    assert all(c.is_champion and c.left_company_at <= past.as_of - timedelta(days=365) for c in departed)
    before = {p.account_key: set(p.surveys) for p in plain.event_source.plans}
    for plan in past.event_source.plans:
        for day, _ in set(plan.surveys) - before.get(plan.account_key, set()):
            assert plan.account_key not in current or day <= AS_OF.date() - timedelta(days=365)


def test_former_customers_lost_their_last_renewal_with_a_reason_and_went_quiet(past):
    accounts = {a.key: a for a in past.accounts}
    reasons = {value for values in LOSS_REASONS.values() for value in values}
    org_account = {o.id: o.account_key for o in past.zendesk_orgs}
    assert len(past.history.former_keys) == len(accounts) - 300
    for key in past.history.former_keys:
        account = accounts[key]
        assert account.churned_on == account.renewal_date < AS_OF.date()
        lost = [o for o in past.opportunities if o.account_key == key and o.is_closed and not o.is_won]
        assert len(lost) == 1 and lost[0].kind == "renewal" and lost[0].loss_reason in reasons
        assert 5 <= (account.churned_on - lost[0].close_date).days <= 40
        end = datetime.combine(account.churned_on, datetime.max.time(), tzinfo=UTC)
        assert all(a.occurred_at <= end for a in past.activities if a.account_key == key)
        assert all(t.created_at <= end for t in past.tickets if org_account.get(t.org_id) == key)
    quiet_after = [k for k in past.history.former_keys if accounts[k].churned_on < AS_OF.date() - timedelta(days=3)]
    day = AS_OF.date() - timedelta(days=1)
    assert not [e for e in past.events_for_day(day) if e["properties"]["_account_key"] in set(quiet_after)]


def test_the_window_holds_every_outcome_in_plausible_numbers(past):
    history = past.history
    outcomes = Counter(r.outcome for r in history.renewals)
    assert set(outcomes) == {"renewed", "contracted", "expanded", "churned"}
    assert 30 <= outcomes["churned"] <= 70  # ~12 % of 300 logos a year over 15 months
    assert all(history.window_start <= r.close_date < AS_OF.date() for r in history.renewals)
    churned = history.churned
    assert len({r.reason for r in churned}) == 5
    leads = [r.lead_days for r in churned]
    assert 120 <= median(leads) <= 240 and min(leads) < 90  # months ahead, some within weeks


def test_the_latent_decline_is_noisy_both_ways(past):
    """Most churners were already declining 90 days out, some looked fine; some renewers were declining too."""
    churned = [r.pressure for r in past.history.churned]
    renewed = [r.pressure for r in past.history.renewals if r.outcome != "churned"]
    assert fmean(churned) > 3 * fmean(renewed)
    assert 0.05 < sum(p < 0.05 for p in churned) / len(churned) < 0.5
    assert sum(p > 0.1 for p in renewed) >= 10


def test_the_same_seed_gives_the_same_past_and_another_seed_another():
    first = generate_portfolio(5, 120, AS_OF, history_days=365)
    second = generate_portfolio(5, 120, AS_OF, history_days=365)
    assert first.history == second.history
    for name in LISTS:
        assert getattr(first, name) == getattr(second, name), name
    day = AS_OF.date() - timedelta(days=300)
    assert list(first.events_for_day(day)) == list(second.events_for_day(day))
    other = generate_portfolio(6, 120, AS_OF, history_days=365)
    assert other.history.renewals != first.history.renewals


def test_a_history_outside_a_sensible_range_is_refused():
    with pytest.raises(ValueError, match="history_days"):
        generate_portfolio(1, 60, AS_OF, history_days=10)


def test_past_renewals_sort_by_close_date():
    early = PastRenewal(AS_OF.date() - timedelta(days=9), "A2", AS_OF.date(), "renewed")
    late = PastRenewal(AS_OF.date() - timedelta(days=2), "A1", AS_OF.date(), "churned")
    assert sorted([late, early]) == [early, late]


def test_sandbox_serve_refuses_a_history_it_cannot_make(capsys):
    from healthsync.sync.cli import main

    assert main(["sandbox", "serve", "--accounts", "44", "--history-days", "10"]) == 2
    assert "--history-days 10: history_days must be within 60..730" in capsys.readouterr().err
