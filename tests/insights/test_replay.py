"""No look-ahead: an account replayed as of a past instant is the same whatever happened after it — later
usage, tickets, meetings, answers, departures, deals, and new values in the CRM's undated fields."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import date, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from healthsync.config.catalog import resolve_preset_path
from healthsync.config.health_model import load_model
from healthsync.config.settings import YamlSource
from healthsync.insights.replay import Replay, end_of_day
from healthsync.scoring.base import Activity, Contact, NpsResponse, Opportunity, Ticket, UsageDay
from healthsync.scoring.model import Populations
from healthsync.scoring.renewal import segment_for
from healthsync.scoring.signals import SignalCalculator
from tests.insights.factories import END, at, eroding, facts

PRESETS = ("default", "csm-playbook", "points-100", "ops-thresholds", "weighted-five")
RENEWAL = date(2025, 9, 1)
BASE = facts("A1", eroding(RENEWAL, 200), last=END)


MODELS = [load_model(YamlSource("preset", name, path=resolve_preset_path(name)).load()) for name in PRESETS]


def _future(base, after: datetime, rng: random.Random):
    """Everything that can happen after `after`, and new values in every undated field."""
    day = after.date() + timedelta(days=1)
    later = [day + timedelta(days=rng.randint(0, 120)) for _ in range(8)]
    usage = {u.day: u for u in base.usage}
    for d in later:
        usage[d] = UsageDay(d, frozenset({"x", "y"}), frozenset({"x"}), events=rng.randint(0, 900), core_actions=9)
    tickets = base.tickets + tuple(Ticket(f"late-{n}", at(d), at(d), None, "urgent", "open", description="Gainsight")
                                   for n, d in enumerate(later[:3]))
    activities = base.activities + tuple(Activity(f"late-{n}", "meeting", at(d), "no_show", "outbound", "A1-c0")
                                         for n, d in enumerate(later[3:6]))
    champion = replace(base.contacts[0], left_at=at(later[0]), active=False)
    contacts = (champion, Contact("late-sponsor", "s@example.com", "exec_sponsor", is_exec_sponsor=True,
                                  left_at=at(later[1]), active=False, created_at=at(day)),
                Contact("gone-undated", "g@example.com", "champion", is_champion=True, active=False))
    opportunities = base.opportunities + (Opportunity("late-exp", "expansion", 5000.0, "Closed Won", True, later[2],
                                                      is_closed=True),
                                          Opportunity("late-renewal", "renewal", 9.0, "Closed Lost", False, later[3],
                                                      is_closed=True))
    account = replace(base.account, payment_status="failed", nps=0.0, renewal_signed=True, late_payments_12m=5)
    return replace(base, account=account, usage=tuple(usage.values()), tickets=tickets, activities=activities,
                   contacts=contacts, opportunities=opportunities,
                   nps_responses=base.nps_responses + (NpsResponse(at(later[4]), 0.0),))


def _verdicts(f, instant: datetime) -> list:
    out = []
    for model in MODELS:
        values = SignalCalculator(model.signal_config, instant).compute(f).values
        segment = segment_for(values["acv"], model.segments)
        core = model.variant_for(segment).score(values, Populations(), segment)
        out.append((dict(values), core.score, core.band))
    return out


def _with_undated_departure(base):
    contacts = base.contacts + (Contact("gone-undated", "g@example.com", "champion", is_champion=True, active=False),)
    return replace(base, contacts=contacts)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=90, max_value=500), st.integers(min_value=0, max_value=10_000))
def test_nothing_after_the_instant_changes_signals_or_scores(days_before_end, seed):
    instant = end_of_day(END - timedelta(days=days_before_end))
    base = _with_undated_departure(BASE)
    seen = Replay(base).as_of(instant, RENEWAL)
    with_future = Replay(_future(base, instant, random.Random(seed))).as_of(instant, RENEWAL)
    assert _verdicts(seen, instant) == _verdicts(with_future, instant)


def test_what_was_open_or_present_then_is_rolled_back():
    instant = end_of_day(date(2025, 3, 1))
    solved_later = Ticket("t", at(date(2025, 2, 20)), at(date(2025, 3, 9)), at(date(2025, 3, 9)), "high", "solved",
                          reopens=2, satisfaction="bad")
    solved_before = replace(solved_later, id="t2", solved_at=at(date(2025, 2, 21)), updated_at=at(date(2025, 2, 21)))
    rated_late = replace(solved_later, id="t3", solved_at=at(date(2025, 2, 28)), updated_at=at(date(2025, 2, 28)))
    won_later = Opportunity("r", "renewal", 1.0, "Closed Won", True, date(2025, 4, 1), is_closed=True)
    left_later = Contact("c", "c@x.io", "champion", is_champion=True, active=False, left_at=at(date(2025, 3, 5)))
    base = replace(BASE, tickets=(solved_later, solved_before, rated_late), opportunities=(won_later,),
                   contacts=(left_later,))
    seen = Replay(base).as_of(instant, date(2025, 5, 30))
    by_id = {t.id: t for t in seen.tickets}
    assert by_id["t"].solved_at is None and by_id["t"].status == "open" and by_id["t"].satisfaction is None
    assert by_id["t2"] == solved_before  # solved well before: as it is
    assert by_id["t3"].satisfaction is None  # solved a day before: its rating may have come after
    assert seen.opportunities == ()  # decided later: not known then
    assert seen.contacts[0].active and seen.contacts[0].left_at is None
    assert seen.account.renewal_date == date(2025, 5, 30)
    assert (seen.account.payment_status, seen.account.nps, seen.account.renewal_signed) == (None, None, False)
    assert max(u.day for u in seen.usage) == instant.date()
    assert all(a.occurred_at <= instant for a in seen.activities)


def test_the_replayed_account_scores_lower_as_its_renewal_nears():
    early = end_of_day(RENEWAL - timedelta(days=300))
    late = end_of_day(RENEWAL - timedelta(days=20))
    replay = Replay(BASE)
    model = MODELS[0]
    score = [model.base.score(SignalCalculator(model.signal_config, t).compute(replay.as_of(t, RENEWAL)).values,
                              Populations(), None).score for t in (early, late)]
    assert score[0] > score[1] + 15
