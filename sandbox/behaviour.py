"""How one synthetic account behaves over time; the generator turns a `Behaviour` into CRM, Zendesk and
Mixpanel facts, so a planted scenario is just a Behaviour with a few knobs turned hard."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

# --------------------------------------------------------------------------------------- plans and segments


@dataclass(frozen=True)
class Tier:
    name: str
    price_per_seat: float  # yearly list price per seat
    events_per_seat: int  # monthly tracked-event allowance per seat (the plan's usage capacity)
    features: tuple[str, ...]


_BASE_FEATURES = ("dashboards", "reports", "alerts")
TIERS = {
    "starter": Tier("starter", 600.0, 40, _BASE_FEATURES),
    "growth": Tier("growth", 900.0, 45, _BASE_FEATURES + ("workflows", "integrations")),
    "business": Tier("business", 1200.0, 50, _BASE_FEATURES + ("workflows", "integrations", "api_access", "sso")),
    "enterprise": Tier("enterprise", 2000.0, 60, _BASE_FEATURES + (
        "workflows", "integrations", "api_access", "sso", "audit_log", "custom_roles")),
}
# The feature list per plan, for the health model's `features_by_plan` (feature adoption breadth).
PLAN_FEATURES = {name: tier.features for name, tier in TIERS.items()}
CORE_ACTION_EVENTS = ("report_created", "dashboard_shared", "workflow_run")
VALUE_EVENTS = ("first_value_achieved",)


@dataclass(frozen=True)
class Segment:
    name: str
    acv_range: tuple[float, float]  # kept clear of the segment boundaries (seed 001)
    tiers: tuple[str, ...]
    contacts: tuple[int, int]
    tickets_per_90d: float
    meeting_every_days: int | None
    call_every_days: int | None
    email_every_days: int
    qbr_every_days: int | None


SEGMENTS = {
    "enterprise": Segment("enterprise", (110_000, 620_000), ("enterprise",), (8, 14), 7.0, 14, 21, 7, 90),
    "mid_market": Segment("mid_market", (27_000, 95_000), ("business", "business", "enterprise"), (5, 9), 4.5,
                          28, 30, 10, 180),
    "smb": Segment("smb", (5_500, 23_000), ("growth",), (3, 5), 2.5, 45, 35, 14, None),
    "self_serve": Segment("self_serve", (900, 4_600), ("starter",), (1, 3), 1.0, None, None, 21, None),
}
# 10/25/40/25 % (seed 003's dashboard book is enterprise-light, SMB-heavy); one block of 20 accounts.
SEGMENT_BLOCK = ("enterprise",) * 2 + ("mid_market",) * 5 + ("smb",) * 8 + ("self_serve",) * 5

# --------------------------------------------------------------------------------------- behaviour


@dataclass(frozen=True)
class PlannedTicket:
    """A ticket placed on purpose (planted scenarios): created `days_ago` before as_of."""

    days_ago: float
    priority: str = "normal"
    status: str = "solved"
    topic: str = "how_to"
    subject: str | None = None
    description: str | None = None
    satisfaction: str = "unoffered"
    reopens: int = 0


@dataclass(frozen=True)
class Behaviour:
    archetype: str  # thriving | healthy | watch | at_risk | critical | planted
    # usage (Mixpanel)
    adoption: float = 0.62  # users in the product / seats purchased
    activity: float = 0.22  # share of those users active on a weekday
    actions_per_user: float = 2.5  # events besides the login per active user-day
    weekly_growth: float = 0.01  # usage trend (0.01 = +1 % a week)
    shape: str = "steady"  # steady | collapse | decline | login_decline
    floor: float = 1.0  # usage level reached at as_of by the shape (1.0 = unchanged)
    feature_share: float = 0.8  # share of the plan's features in use
    jitter: float = 0.08  # day-to-day noise of the active-user count
    value_rate: float = 0.02  # chance an active user-day records a value event
    # onboarding milestones, in days after contract start (None = not reached yet)
    first_login_day: int | None = 1
    first_core_day: int | None = 2
    first_value_day: int | None = 4
    onboarding_users: int | None = None  # distinct users so far (onboarding accounts)
    # support (Zendesk)
    tickets_per_90d: float | None = None  # None: the segment's rate times the archetype's factor
    severe_share: float = 0.15
    csat_good: float = 0.9
    competitor_chance: float = 0.0
    quiet_ticket_days: int = 0  # no background tickets in the last N days
    planted_tickets: tuple[PlannedTicket, ...] = ()
    # engagement (CRM activity)
    no_show_share: float = 0.05
    cancel_share: float = 0.05
    reply_share: float = 0.65  # outbound emails answered
    silent_days: int | None = None  # no two-way touch in the last N days (meetings missed, mails unanswered)
    last_touch_days: int | None = None  # a held meeting exactly N days ago (default: just before the silence)
    qbr_days_ago: int | None = None  # a held QBR N days ago (besides the segment cadence)
    # stakeholders
    champion_change: tuple[str, int] | None = None  # ("left" | "role_changed", days ago)
    replace_champion: bool = True  # a champion who left 60+ days ago has been replaced by a new one
    sponsor_left_days: int | None = None  # the executive sponsor left N days ago
    # sentiment and contract
    nps: int | None = None  # latest NPS (CRM field and the latest survey event)
    nps_days_ago: int | None = None  # survey event date; None: no survey event in the window
    earlier_nps: tuple[int, int] | None = None  # (score, days ago): an earlier survey, for trend plants
    payment_status: str = "current"
    renewal_in_days: int | None = None
    renewal_signed: bool | None = None
    signed_days_ago: int = 12
    contract_age_days: int | None = None
    expansion_won: bool | None = None

    def level(self, age: int) -> float:
        """Usage multiplier `age` days before as_of (negative ages are days after it)."""
        growth = (1.0 + self.weekly_growth) ** (-age / 7.0)
        return growth * self._shape(max(age, 0))

    def _shape(self, age: int) -> float:
        if self.shape == "collapse":
            return self.floor if age < 7 else 1.0
        if self.shape == "decline":
            return 1.0 if age >= 30 else self.floor + (1.0 - self.floor) * age / 30.0
        if self.shape == "login_decline":
            # strictly lower each of the last four weeks, as the scoring's weekly buckets see them
            steps = (self.floor, self.floor + 0.1, self.floor + 0.24, self.floor + 0.38)
            week = age // 7
            return min(1.0, steps[week]) if week < 4 else 1.0
        return 1.0

    def with_(self, **changes: object) -> Behaviour:
        return replace(self, **changes)


ARCHETYPE_MIX = (("thriving", 25), ("healthy", 45), ("watch", 17), ("at_risk", 9), ("critical", 4))
TICKET_FACTOR = {"thriving": 0.6, "healthy": 0.9, "watch": 1.4, "at_risk": 2.2, "critical": 3.2, "planted": 0.5}


def pick_archetype(rng: random.Random) -> str:
    names = [name for name, _ in ARCHETYPE_MIX]
    weights = [w for _, w in ARCHETYPE_MIX]
    return rng.choices(names, weights)[0]


def book_behaviour(archetype: str, rng: random.Random) -> Behaviour:
    """A background (non-planted) account: realistic, noisy, firing rules at plausible rates.
    The steps draw from `rng` in a fixed order, so a seed always builds the same book."""
    b = _archetype_behaviour(archetype, rng)
    b = _with_survey(b, rng)
    b = _with_champion_change(b, rng)
    return _with_payment(b, archetype, rng)


def _archetype_behaviour(archetype: str, rng: random.Random) -> Behaviour:
    u = rng.uniform
    if archetype == "thriving":
        b = Behaviour(archetype, adoption=u(0.68, 0.86), activity=u(0.26, 0.34), actions_per_user=u(2.6, 3.4),
                      weekly_growth=u(0.0, 0.03), feature_share=u(0.8, 1.0), csat_good=0.95,
                      nps=rng.choice((8, 9, 9, 10, 10)), severe_share=0.08)
    elif archetype == "healthy":
        b = Behaviour(archetype, adoption=u(0.55, 0.75), activity=u(0.18, 0.26), weekly_growth=u(-0.01, 0.025),
                      feature_share=u(0.6, 0.9), nps=rng.choice((7, 8, 8, 9, 10)))
    elif archetype == "watch":
        b = Behaviour(archetype, adoption=u(0.42, 0.6), activity=u(0.12, 0.18), actions_per_user=u(1.6, 2.4),
                      weekly_growth=u(-0.03, 0.01), feature_share=u(0.4, 0.7), csat_good=0.75,
                      no_show_share=0.12, reply_share=0.45, nps=rng.choice((5, 6, 7, 7, 8)),
                      competitor_chance=0.03, severe_share=0.2)
        if rng.random() < 0.2:
            b = b.with_(shape="decline", floor=u(0.6, 0.8))
    elif archetype == "at_risk":
        b = Behaviour(archetype, adoption=u(0.3, 0.48), activity=u(0.07, 0.12), actions_per_user=u(1.2, 1.8),
                      weekly_growth=u(-0.05, 0.0), feature_share=u(0.25, 0.5), csat_good=0.55,
                      no_show_share=0.2, cancel_share=0.12, reply_share=0.3, nps=rng.choice((2, 4, 5, 6, 7)),
                      competitor_chance=0.12, severe_share=0.3)
        if rng.random() < 0.4:
            b = b.with_(shape="decline", floor=u(0.35, 0.6))
        if rng.random() < 0.3:
            b = b.with_(silent_days=rng.randint(35, 70))
    else:  # critical
        b = Behaviour(archetype, adoption=u(0.15, 0.3), activity=u(0.04, 0.08), actions_per_user=u(1.0, 1.4),
                      weekly_growth=u(-0.08, -0.02), feature_share=u(0.15, 0.35), csat_good=0.35,
                      no_show_share=0.3, cancel_share=0.2, reply_share=0.15, nps=rng.choice((0, 1, 2, 3, 5)),
                      competitor_chance=0.25, severe_share=0.45)
        if rng.random() < 0.3:
            b = b.with_(shape="collapse", floor=u(0.1, 0.3))
        if rng.random() < 0.5:
            b = b.with_(silent_days=rng.randint(35, 80))
    return b


def _with_survey(b: Behaviour, rng: random.Random) -> Behaviour:
    if rng.random() < 0.45:  # not every account answered a survey
        return b.with_(nps=None)
    if rng.random() < 0.4:
        return b.with_(nps_days_ago=rng.randint(3, 85))
    return b


def _with_champion_change(b: Behaviour, rng: random.Random) -> Behaviour:
    roll = rng.random()
    if roll < 0.04:
        return b.with_(champion_change=("left", rng.randint(3, 88)))
    if roll < 0.06:
        return b.with_(champion_change=("role_changed", rng.randint(3, 88)))
    if roll < 0.11:
        return b.with_(champion_change=("left", rng.randint(95, 360)))
    return b


def _with_payment(b: Behaviour, archetype: str, rng: random.Random) -> Behaviour:
    pay = rng.random()
    late, failed = {"thriving": (0.01, 0.0), "healthy": (0.03, 0.005), "watch": (0.06, 0.01),
                    "at_risk": (0.1, 0.04), "critical": (0.2, 0.1)}[archetype]
    if pay < failed:
        return b.with_(payment_status="failed")
    if pay < failed + late:
        return b.with_(payment_status="overdue")
    return b
