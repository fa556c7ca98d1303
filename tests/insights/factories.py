"""Synthetic accounts for the insights tests: dated facts whose health follows a curve the test chooses."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from healthsync.insights.backtest import History
from healthsync.insights.outcomes import ClosedRenewal
from healthsync.scoring.base import (
    Account,
    AccountFacts,
    Activity,
    Contact,
    NpsResponse,
    Opportunity,
    Ticket,
    UsageDay,
)

START = date(2024, 1, 1)
END = date(2025, 12, 31)


def at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def days(first: date, last: date):
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def facts(account_id: str, health: Callable[[date], float], *, first: date = START, last: date = END,  # noqa: PLR0913 (test factory: one keyword per fact family)
          seats: int = 20, opportunities: tuple[Opportunity, ...] = (), seed: int = 0) -> AccountFacts:
    """Daily usage, tickets, meetings, mails and NPS answers from `first` to `last`, all following `health(day)`
    (0..1): fewer active users, more tickets rated worse, missed meetings and unanswered mail as it sinks."""
    rng = random.Random(f"{account_id}:{seed}")
    users = [f"{account_id}-u{n}" for n in range(seats)]
    usage, tickets, activities, nps = [], [], [], []
    for day in days(first, last):
        h = health(day)
        active = frozenset(rng.sample(users, max(0, min(seats, round(seats * 0.6 * h + rng.uniform(-1, 1))))))
        usage.append(UsageDay(day, active, active, events=len(active) * 4, core_actions=len(active) * 2,
                              features_used=frozenset({"reports", "alerts"} if h > 0.5 else {"reports"}),
                              value_events=len(active) // 4))
        if rng.random() < 0.02 + 0.08 * (1 - h):
            solved = at(day) + timedelta(days=2)
            tickets.append(Ticket(f"{account_id}-t{len(tickets)}", at(day), solved, solved,
                                  "high" if rng.random() > h else "normal", "solved",
                                  satisfaction="good" if rng.random() < h else "bad", tags=("topic",)))
        if day.toordinal() % 14 == 0:
            activities.append(Activity(f"{account_id}-m{len(activities)}", "meeting", at(day, 10),
                                       "held" if rng.random() < h else "no_show", "outbound", f"{account_id}-c0"))
        if day.toordinal() % 7 == 0:
            activities.append(Activity(f"{account_id}-e{len(activities)}", "email", at(day, 9), None, "outbound"))
            if rng.random() < h:
                activities.append(Activity(f"{account_id}-r{len(activities)}", "email", at(day, 15), None,
                                           "inbound", f"{account_id}-c0"))
        if day.toordinal() % 90 == 0:
            nps.append(NpsResponse(at(day), round(10 * h)))
    contacts = (Contact(f"{account_id}-c0", f"{account_id}@example.com", "champion", is_champion=True),)
    account = Account(account_id, account_id, acv=20_000.0, arr=20_000.0, plan_tier="growth", seats_purchased=seats,
                      plan_capacity=2_000.0, contract_start=date(2023, 1, 1), renewal_date=date(2026, 1, 1),
                      payment_status="current", nps=8.0, plan_features=("reports", "alerts", "workflows"))
    return AccountFacts(account, contacts, opportunities, tuple(activities), tuple(tickets), tuple(usage), tuple(nps),
                        usage_since=first)


def steady(level: float) -> Callable[[date], float]:
    return lambda day: level


def eroding(renewal: date, lead_days: int, floor: float = 0.1, level: float = 0.9,
            ramp_days: int = 120) -> Callable[[date], float]:
    """Healthy until `lead_days` before the renewal, then sliding down to `floor` over `ramp_days`, and staying."""
    onset = renewal - timedelta(days=lead_days)

    def health(day: date) -> float:
        if day <= onset:
            return level
        return max(floor, level - (level - floor) * (day - onset).days / ramp_days)
    return health


def book(n_renewed: int, n_churned: int, *, lead_days: int = 250, first_renewal: date = date(2025, 3, 1),  # noqa: PLR0913 (test factory: one keyword per knob)
         spacing_days: int = 2, seed: int = 0) -> History:
    """Accounts renewing (steady, at various levels) or churning (eroding, 40 % of them late), one renewal each,
    spaced in time."""
    rng = random.Random(seed)
    first = first_renewal - timedelta(days=300)  # enough for a 90-day horizon and the windows behind it
    all_facts, renewals = [], []
    for n in range(n_renewed + n_churned):
        churns = n % ((n_renewed + n_churned) // max(n_churned, 1)) == 0 and sum(not r.won for r in renewals) < n_churned
        renewal = first_renewal + timedelta(days=spacing_days * n)
        account_id = f"A{n:04d}"
        late = churns and rng.random() < 0.4  # some churners only start to slide a few weeks before the horizon
        curve = eroding(renewal, 100 if late else lead_days) if churns else steady(rng.uniform(0.55, 0.95))
        all_facts.append(facts(account_id, curve, first=first, last=renewal, seed=seed))
        renewals.append(ClosedRenewal(account_id, f"O{n:04d}", renewal, not churns, 20_000.0, 20_000.0,
                                      None if not churns else "Too expensive"))
    return History(all_facts, renewals, first)
