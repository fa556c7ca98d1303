"""Contracts of the scoring package: the facts it reads, the results and intents it returns.

Everything here is a frozen value. The sync layer builds `AccountFacts` from the store (raw, dated facts,
never precomputed signals); scoring turns them into `Signals`, a `HealthResult` and a list of `Intent`
values as of a given instant, ignoring every fact dated after it, so a past day can be re-scored
(backfilled) from the same facts.

Datetimes must be timezone-aware; naive ones are taken as UTC when a record is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from types import MappingProxyType
from typing import Literal

SignalValue = float | bool | None
ContextValue = float | bool | str | None

PaymentStatus = Literal["current", "late", "failed"]
OpportunityKind = Literal["renewal", "expansion"]
ActivityKind = Literal["meeting", "call", "email", "qbr"]
ActivityOutcome = Literal["held", "no_show", "cancelled"]
Direction = Literal["inbound", "outbound"]
TicketPriority = Literal["low", "normal", "high", "urgent"]
Satisfaction = Literal["good", "bad"]
IntentKind = Literal["task", "escalation", "field_flag"]
Priority = Literal["low", "normal", "high", "urgent"]

SOURCES = frozenset({"crm", "support", "usage"})
EMPTY_MAPPING: Mapping = MappingProxyType({})


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _normalise_datetimes(record: object, *names: str) -> None:
    """Frozen records accept naive datetimes from callers and store them as UTC."""
    for name in names:
        value = getattr(record, name)
        if value is not None and value.tzinfo is None:
            object.__setattr__(record, name, _utc(value))


# --------------------------------------------------------------------------------------------- facts


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    name: str = ""
    domain: str | None = None
    owner_id: str | None = None
    acv: float | None = None
    arr: float | None = None
    plan_tier: str | None = None
    seats_purchased: int | None = None
    plan_capacity: float | None = None  # the tier's monthly event allowance (capacity_use = events_30d / this)
    contract_start: date | None = None
    renewal_date: date | None = None
    renewal_signed: bool | None = None
    payment_status: PaymentStatus | None = None
    late_payments_12m: int | None = None
    nps: float | None = None  # the CRM's NPS field (0-10), used when no dated survey response exists
    plan_features: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Contact:
    id: str
    email: str | None = None
    role: str | None = None
    is_champion: bool = False
    is_exec_sponsor: bool = False
    active: bool = True
    left_at: datetime | None = None
    role_changed_at: datetime | None = None
    created_at: datetime | None = None  # when the CRM first had the contact (None: not known)

    def __post_init__(self) -> None:
        _normalise_datetimes(self, "left_at", "role_changed_at", "created_at")


@dataclass(frozen=True, slots=True)
class Opportunity:
    id: str
    kind: OpportunityKind
    amount: float | None = None
    stage: str | None = None
    is_won: bool = False
    close_date: date | None = None
    created_at: datetime | None = None
    is_closed: bool = False  # won or lost; a lost renewal with nothing after it makes a former customer

    def __post_init__(self) -> None:
        _normalise_datetimes(self, "created_at")


@dataclass(frozen=True, slots=True)
class Activity:
    id: str
    kind: ActivityKind
    occurred_at: datetime
    outcome: ActivityOutcome | None = None
    direction: Direction | None = None
    contact_id: str | None = None

    def __post_init__(self) -> None:
        _normalise_datetimes(self, "occurred_at")


@dataclass(frozen=True, slots=True)
class Ticket:
    id: str
    created_at: datetime
    updated_at: datetime | None = None
    solved_at: datetime | None = None
    priority: TicketPriority | None = None
    status: str = "open"
    reopens: int = 0
    satisfaction: Satisfaction | None = None
    subject: str = ""
    description: str = ""
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _normalise_datetimes(self, "created_at", "updated_at", "solved_at")


@dataclass(frozen=True, slots=True)
class UsageDay:
    day: date
    active_user_ids: frozenset[str] = frozenset()
    login_user_ids: frozenset[str] = frozenset()
    events: int = 0
    core_actions: int = 0
    features_used: frozenset[str] = frozenset()
    value_events: int = 0


@dataclass(frozen=True, slots=True)
class NpsResponse:
    at: datetime
    score: float

    def __post_init__(self) -> None:
        _normalise_datetimes(self, "at")


@dataclass(frozen=True, slots=True)
class AccountFacts:
    """Everything known about one account. `covered` names the sources linked to it: a source that
    is not linked yields `None` signals (unknown), while a linked source with no rows yields zeros.
    `usage_since` is the first day usage data is complete (defaults to the contract start)."""

    account: Account
    contacts: tuple[Contact, ...] = ()
    opportunities: tuple[Opportunity, ...] = ()
    activities: tuple[Activity, ...] = ()
    tickets: tuple[Ticket, ...] = ()
    usage: tuple[UsageDay, ...] = ()  # any order; scoring sorts when needed
    nps_responses: tuple[NpsResponse, ...] = ()
    covered: frozenset[str] = SOURCES
    usage_since: date | None = None


# ------------------------------------------------------------------------------------------- signals


@dataclass(frozen=True, slots=True)
class Signals:
    """Per-account signal values as of one instant; `None` means no data. `evidence` holds short
    text that explains a value (e.g. which competitor was named) for task bodies."""

    account_id: str
    values: Mapping[str, SignalValue]
    evidence: Mapping[str, str] = field(default_factory=lambda: EMPTY_MAPPING)

    def get(self, name: str) -> SignalValue:
        return self.values.get(name)


# ------------------------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class PastResult:
    """A stored earlier result; `measures` (measure name -> score) lets explanations say what moved."""

    as_of: datetime
    score: int
    band: str
    measures: Mapping[str, float] = field(default_factory=lambda: EMPTY_MAPPING)
    raw: Mapping[str, SignalValue] = field(default_factory=lambda: EMPTY_MAPPING)

    def __post_init__(self) -> None:
        _normalise_datetimes(self, "as_of")


@dataclass(frozen=True, slots=True)
class MeasureDetail:
    name: str
    component: str
    signal: str
    raw: SignalValue
    score: float | None  # None when the signal had no data and the policy skipped it
    weight: float  # this measure's share of the whole score (0..1) as configured
    defaulted: bool = False


@dataclass(frozen=True, slots=True)
class ComponentScore:
    name: str
    score: float | None  # clamped to 0..100; None when no measure had data and it was re-weighted away
    weight: float  # configured weight (sums to 100 over components)
    unclamped: float | None = None
    clamped: bool = False


@dataclass(frozen=True, slots=True)
class HistoryFacts:
    """Score history around one result, as inputs to rules."""

    previous_score: int | None = None
    previous_band: str | None = None
    previous_as_of: datetime | None = None
    delta_7d: int | None = None
    delta_30d: int | None = None
    decline_weeks: int = 0
    band_changed: bool = False


MeasureRow = tuple  # (name, component, signal, raw, score, weight, defaulted): MeasureDetail's fields in order
ComponentRow = tuple  # (name, score, weight, unclamped, clamped): ComponentScore's fields in order


@dataclass(frozen=True, slots=True)
class HealthResult:
    """One account's score as of one instant. Component and measure details are kept as plain rows
    (cheap for 100k accounts) and read through the `components` / `measures` properties."""

    account_id: str
    as_of: datetime
    score: int
    band: str
    component_rows: tuple[ComponentRow, ...]
    measure_rows: tuple[MeasureRow, ...]
    trend_7d: int | None
    trend_30d: int | None
    renewal_stage: str | None
    days_to_renewal: int | None
    segment: str | None
    insufficient_data: bool
    coverage: float  # share of configured weight whose signal had data (0..1)
    active_signals: tuple[str, ...]  # risk/expansion flags that are on, e.g. "competitor_mentioned"
    explanation: str
    band_colour: str = ""
    history: HistoryFacts = HistoryFacts()

    @property
    def components(self) -> tuple[ComponentScore, ...]:
        return tuple(ComponentScore(*row) for row in self.component_rows)

    @property
    def measures(self) -> tuple[MeasureDetail, ...]:
        return tuple(MeasureDetail(*row) for row in self.measure_rows)

    def component_score(self, name: str) -> float | None:
        for row in self.component_rows:
            if row[0] == name:
                return row[1]
        raise KeyError(name)

    def to_past(self) -> PastResult:
        """The value the store keeps so later runs can compute trends and what moved."""
        return PastResult(
            as_of=self.as_of,
            score=self.score,
            band=self.band,
            measures=MappingProxyType({r[0]: r[4] for r in self.measure_rows if r[4] is not None}),
            raw=MappingProxyType({r[0]: r[3] for r in self.measure_rows}),
        )


@dataclass(frozen=True, slots=True)
class OwnerSpec:
    """Who should own a task: the account owner (`owner_id` filled from the account) or a CRM user
    found by `email` (a role from the playbook's `roles` map, already resolved to its email)."""

    kind: Literal["account_owner", "email"]
    owner_id: str | None = None
    email: str | None = None
    role: str | None = None


@dataclass(frozen=True, slots=True)
class Intent:
    """What a rule wants written to the CRM. `dedupe_key` is `account|rule|window`: one open task per key."""

    rule_id: str
    account_id: str
    kind: IntentKind
    subject: str
    body: str
    owner: OwnerSpec
    due_at: datetime
    priority: Priority
    dedupe_key: str
    window: str
    cooldown_days: int
    field_name: str | None = None  # for field flags
    field_value: str | None = None


@dataclass(frozen=True, slots=True)
class ScoredAccount:
    result: HealthResult
    intents: tuple[Intent, ...] = field(default_factory=tuple)

    def __iter__(self):  # lets callers write `for result, intents in score_portfolio(...)`
        yield self.result
        yield self.intents
