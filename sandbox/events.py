"""Mixpanel raw events, produced lazily one day at a time: 90 days x 10k accounts would not fit in memory,
and any single day must be reproducible on its own (randomness is keyed by seed, account and day)."""

from __future__ import annotations

import calendar
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from healthsync.sandbox.behaviour import CORE_ACTION_EVENTS, Behaviour
from healthsync.sandbox.history_model import Trajectory
from healthsync.sandbox.naming import stable_int

# Monday .. Sunday: B2B products are quiet at weekends.
WEEKDAY_FACTOR = (1.0, 1.0, 1.0, 0.95, 0.8, 0.12, 0.08)
_ONBOARDING_DAYS = 14
_WORKDAY_START, _WORKDAY_SECONDS = 7 * 3600, 11 * 3600


@dataclass(frozen=True, slots=True)
class UsagePlan:
    """Everything needed to produce one account's (or one unmatched group's) events for any day."""

    key: str  # keys the per-day randomness
    account_key: str | None  # None: users nobody can attribute
    users: tuple[tuple[str, str], ...]  # (distinct_id, email)
    start: date  # no events before this day (contract start)
    behaviour: Behaviour
    features: tuple[str, ...]  # plan features this account uses
    onboarding: bool = False  # milestones apply (contract started within the book's onboarding window)
    surveys: tuple[tuple[date, int], ...] = ()  # (day, NPS score) of survey responses
    trajectory: Trajectory | None = None  # the churn history's latent health: usage level by day, last day


class EventSource:
    """`source(day)` -> iterator of the day's events in Mixpanel export shape, never past `horizon`."""

    def __init__(self, seed: int, plans: list[UsagePlan], as_of: datetime):
        self.seed = seed
        self.plans = plans
        self.as_of = as_of
        self.horizon = as_of  # events_for_day never yields anything later
        self.delivered_until = as_of  # events up to here are handed out (a simulated week moves it on)

    def __call__(self, day: date) -> Iterator[dict]:
        return self.events_for_day(day)

    def events_for_day(self, day: date, horizon: datetime | None = None) -> Iterator[dict]:
        limit = calendar.timegm((horizon or self.horizon).utctimetuple())
        day_start = calendar.timegm(day.timetuple())
        if day_start > limit:
            return
        weekday = day.weekday()
        for plan in self.plans:
            yield from self._plan_day(plan, day, day_start, weekday, limit)

    def events_between(self, start: datetime, end: datetime) -> Iterator[dict]:
        """Events with start < time <= end (e.g. the week a simulation adds after as_of)."""
        lower = calendar.timegm(start.utctimetuple())
        day = start.date()
        while day <= end.date():
            for event in self.events_for_day(day, horizon=end):
                if event["properties"]["time"] > lower:
                    yield event
            day += timedelta(days=1)

    def _plan_day(self, plan: UsagePlan, day: date, day_start: int, weekday: int, limit: int) -> Iterator[dict]:
        days_in = (day - plan.start).days
        if days_in < 0:
            return
        b = plan.behaviour
        if plan.onboarding and (b.first_login_day is None or days_in < b.first_login_day):
            return
        if plan.trajectory is not None and not plan.trajectory.active(day):
            return  # a former customer: nobody uses the product after the term ended
        rng = random.Random(stable_int(self.seed, plan.key, day.toordinal()))
        survey = next((score for d, score in plan.surveys if d == day), None)
        active = self._active_users(plan, rng, days_in, weekday, (self.as_of.date() - day).days)
        if not active and survey is None:
            return
        onboarding = plan.onboarding and days_in <= _ONBOARDING_DAYS
        core_ok = not onboarding or (b.first_core_day is not None and days_in >= b.first_core_day)
        value_ok = not onboarding or (b.first_value_day is not None and days_in >= b.first_value_day)
        milestone_value = onboarding and b.first_value_day == days_in
        for index, (distinct_id, email) in enumerate(active):
            t = day_start + _WORKDAY_START + rng.randrange(_WORKDAY_SECONDS)
            events = [("login", None)]
            if core_ok:
                events.extend(_actions(rng, b, plan.features))
            if value_ok and ((milestone_value and index == 0) or rng.random() < b.value_rate):
                events.append(("first_value_achieved", None))
            for name, extra in events:
                if t > limit:
                    break
                yield _event(name, t, distinct_id, email, plan.account_key, rng, extra)
                t += 20 + rng.randrange(900)
        if survey is not None and plan.users:
            t = day_start + 14 * 3600 + rng.randrange(3600)
            distinct_id, email = plan.users[0]
            if t <= limit:
                yield _event("nps_survey_submitted", t, distinct_id, email, plan.account_key, rng, ("score", survey))

    def _active_users(self, plan: UsagePlan, rng: random.Random, days_in: int, weekday: int, age: int) -> list:
        b = plan.behaviour
        users = plan.users
        if not users:
            return []
        onboarding = plan.onboarding and days_in <= _ONBOARDING_DAYS
        factor = 1.0 if onboarding else WEEKDAY_FACTOR[weekday]
        level = b.level(age) if plan.trajectory is None else plan.trajectory.level(b, age)
        expected = len(users) * b.activity * factor * level * (1.0 + b.jitter * (2.0 * rng.random() - 1.0))
        count = int(expected)
        if rng.random() < expected - count:  # stochastic rounding keeps small accounts unbiased
            count += 1
        if onboarding and days_in in (b.first_login_day, b.first_core_day, b.first_value_day):
            count = max(count, 1)  # a milestone day has at least one user in the product
        return rng.sample(users, min(count, len(users)))


def _actions(rng: random.Random, b: Behaviour, features: tuple[str, ...]) -> list[tuple[str, tuple | None]]:
    count = int(b.actions_per_user * (0.5 + rng.random()) + 0.5)
    actions: list[tuple[str, tuple | None]] = []
    for _ in range(count):
        if features and rng.random() < 0.3:
            actions.append(("feature_used", ("feature", features[rng.randrange(len(features))])))
        else:
            actions.append((CORE_ACTION_EVENTS[rng.randrange(len(CORE_ACTION_EVENTS))], None))
    return actions


def _event(name: str, t: int, distinct_id: str, email: str, account_key: str | None, rng: random.Random,  # noqa: PLR0913 (one event's properties plus the book's rng, on the generator's hot path)
           extra: tuple | None) -> dict:
    props = {"time": t, "distinct_id": distinct_id, "$insert_id": f"{rng.getrandbits(64):016x}",
             "$email": email, "mp_lib": "web", "_account_key": account_key}
    if extra is not None:
        props[extra[0]] = extra[1]
    return {"event": name, "properties": props}
