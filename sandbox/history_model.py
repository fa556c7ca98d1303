"""The latent health behind the sandbox's churn history: episodes of decline, each showing in usage, support,
engagement and sentiment with its own strength, and what they make of an account's usage on any past day.

An account's `Behaviour` describes it on one reference day (today for a current customer, the start of its
known past for a former one); its `Trajectory` says how much worse (or better) each channel was on any other
day. The churn reasons are seed 002's categories; each shows in the channels a CS team would see it in, with
a strength drawn per account, so some churners are loud, some quiet, and some renewers had a bad quarter.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import date, timedelta

from healthsync.sandbox.behaviour import Behaviour

CHANNELS = ("usage", "support", "engagement", "sentiment")
RECOVERY_DAYS = 45  # a decline that passes fades out over this many days
_NOISE_RHO, _NOISE_SIGMA = 0.75, 0.1  # weekly usage noise: AR(1) in log space (stationary sd ~ 0.15)
# Days from the first sign of a churner's decline to its renewal: log-normal, median 6 months, most between
# 3 and 11, a few within weeks. Seed 001: "most churn happens not because of a sudden event but because of a
# slow erosion ... detect churn signals months before the renewal conversation" (which starts 90-120 days out).
_LEAD_MEDIAN, _LEAD_SIGMA, _LEAD_RANGE = 180.0, 0.5, (14, 420)
EROSION_DAYS = (60, 150)  # the erosion deepens this long, then holds until the renewal


@dataclass(frozen=True)
class Episode:
    """A decline that starts at `onset`, deepens linearly to full strength at `peak` and holds there, then
    fades out over RECOVERY_DAYS ending on `recovered` (None: it never passes). Strengths are 0..1 per channel."""

    onset: date
    peak: date
    recovered: date | None
    usage: float = 0.0  # share of the usual usage lost at full strength
    support: float = 0.0  # more tickets (up to 4x), more severe ones, worse CSAT, competitors named
    engagement: float = 0.0  # no-shows, cancellations, unanswered mail; silence past 0.6
    sentiment: float = 0.0  # NPS answers fall by up to 6 points
    champion_left: date | None = None  # the champion leaves the customer on this day

    def progress(self, day: date) -> float:
        if day <= self.onset:
            return 0.0
        if day < self.peak:
            return (day - self.onset).days / max(1, (self.peak - self.onset).days)
        if self.recovered is None:
            return 1.0
        if day >= self.recovered:
            return 0.0
        fade_from = max(self.peak, self.recovered - timedelta(days=RECOVERY_DAYS))
        if day <= fade_from:
            return 1.0
        return (self.recovered - day).days / max(1, (self.recovered - fade_from).days)


@dataclass(frozen=True)
class Trajectory:
    """One account's latent health over time, relative to the day its Behaviour describes (`reference`).

    `recent_days`: usage younger than this keeps the generator's own level (a current customer's recent
    past is what the planted scenarios and today's signals are built from); None for former customers.
    `last_day`: a former customer's term end, after which nobody uses the product."""

    as_of: date
    reference: date
    episodes: tuple[Episode, ...] = ()
    recent_days: int | None = None
    noise_start: date | None = None
    noise: tuple[float, ...] = ()
    last_day: date | None = None

    def pressure(self, channel: str, day: date) -> float:
        """How far `channel` is down on `day`, 0..1 (episodes combine like independent losses)."""
        remaining = 1.0
        for episode in self.episodes:
            remaining *= 1.0 - getattr(episode, channel) * episode.progress(day)
        return 1.0 - remaining

    def relative(self, channel: str, day: date) -> float:
        """How much worse `channel` is on `day` than on the reference day (negative: better then)."""
        return self.pressure(channel, day) - self.pressure(channel, self.reference)

    def usage(self, day: date) -> float:
        """Usage on `day` as a multiple of the reference day's, with the week's noise."""
        base = max(1.0 - self.pressure("usage", self.reference), 0.05)
        return (1.0 - self.pressure("usage", day)) / base * self._noise(day)

    def _noise(self, day: date) -> float:
        if not self.noise or self.noise_start is None:
            return 1.0
        week = (day - self.noise_start).days // 7
        return self.noise[min(max(week, 0), len(self.noise) - 1)]

    def active(self, day: date) -> bool:
        return self.last_day is None or day <= self.last_day

    def level(self, behaviour: Behaviour, age: int) -> float:
        """The usage multiplier `age` days before as_of (the Mixpanel event generator's hook)."""
        recent = self.recent_days
        if recent is not None and age <= recent:
            return behaviour.level(age)
        return behaviour.level(recent or 0) * self.usage(self.as_of - timedelta(days=age))


@dataclass(frozen=True)
class Reason:
    """A churn reason (seed 002's categories) and the strength it shows with in each channel (uniform ranges)."""

    name: str
    weight: int
    usage: tuple[float, float]
    support: tuple[float, float]
    engagement: tuple[float, float]
    sentiment: tuple[float, float]
    champion: float  # chance the champion leaves during the decline


REASONS = (
    Reason("product_fit", 32, (0.5, 0.9), (0.0, 0.3), (0.2, 0.6), (0.3, 0.8), 0.2),
    Reason("service", 20, (0.1, 0.4), (0.6, 1.0), (0.2, 0.5), (0.4, 0.9), 0.15),
    Reason("pricing", 20, (0.1, 0.5), (0.0, 0.2), (0.3, 0.7), (0.2, 0.5), 0.25),
    Reason("strategic_shift", 16, (0.0, 0.4), (0.0, 0.1), (0.4, 0.9), (0.0, 0.3), 0.85),
    Reason("other", 12, (0.0, 0.25), (0.0, 0.25), (0.0, 0.25), (0.0, 0.25), 0.1),
)


def draw_reason(rng: random.Random) -> Reason:
    return rng.choices(REASONS, [r.weight for r in REASONS])[0]


def draw_episode(rng: random.Random, reason: Reason, span: tuple[date, date, date | None],  # noqa: PLR0913 (the episode's reason, dates and strength, plus its rng)
                 visibility: float) -> Episode:
    """An episode of `reason` from `span` = (onset, peak, recovered), its strengths scaled by `visibility`."""
    onset, peak, recovered = span
    strengths = {c: visibility * rng.uniform(*getattr(reason, c)) for c in CHANNELS}
    champion_left = None
    if rng.random() < reason.champion:
        champion_left = onset + timedelta(days=int(rng.uniform(0.0, 0.6) * (peak - onset).days))
    return Episode(onset, peak, recovered, champion_left=champion_left, **strengths)


def lead_days(rng: random.Random) -> int:
    days = _LEAD_MEDIAN * math.exp(rng.gauss(0.0, _LEAD_SIGMA))
    return int(min(max(days, _LEAD_RANGE[0]), _LEAD_RANGE[1]))


def weekly_noise(rng: random.Random, weeks: int) -> tuple[float, ...]:
    level, out = 0.0, []
    for _ in range(max(weeks, 1)):
        level = _NOISE_RHO * level + _NOISE_SIGMA * rng.gauss(0.0, 1.0)
        out.append(math.exp(level))
    return tuple(out)
