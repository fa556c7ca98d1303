"""Canonical, CRM-neutral records every connector emits and the store keeps (frozen, typed, JSON round-trip).

Rules shared by every record type:
- ids are strings (Zendesk and HubSpot numeric ids are converted by the connector);
- datetimes are timezone-aware and normalised to UTC (a naive datetime is refused, it is ambiguous);
- enum fields accept their enum or its string value ("renewal"), anything else is refused;
- collections are frozen (tuple / frozenset / read-only mapping) so a record can be shared safely;
- an invalid value raises `SkippableRecordError` naming the record type and field, so a connector can turn
  it into a `SkippedRecord` and go on with the rest of the page.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import Enum, StrEnum
from typing import Any, Self

from healthsync.errors import SkippableRecordError

ExtraValue = str | int | float | bool | None | tuple[str | int | float | bool | None, ...]
"""What a field-map extra may hold: a JSON scalar or a tuple of them (multi-select picklists)."""

_RAW_EXCERPT_CHARS = 300


class OpportunityKind(StrEnum):
    RENEWAL = "renewal"
    EXPANSION = "expansion"
    NEW_BUSINESS = "new_business"
    OTHER = "other"


class ActivityKind(StrEnum):
    MEETING = "meeting"
    CALL = "call"
    EMAIL = "email"
    QBR = "qbr"
    TASK = "task"


class MeetingOutcome(StrEnum):
    HELD = "held"
    NO_SHOW = "no_show"
    CANCELLED = "cancelled"


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class TicketPriority(StrEnum):
    URGENT = "urgent"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class TicketStatus(StrEnum):
    NEW = "new"
    OPEN = "open"
    PENDING = "pending"
    HOLD = "hold"
    SOLVED = "solved"
    CLOSED = "closed"
    DELETED = "deleted"


class SatisfactionScore(StrEnum):
    OFFERED = "offered"
    UNOFFERED = "unoffered"
    GOOD = "good"
    BAD = "bad"


class UsageKeyKind(StrEnum):
    GROUP_CRM_ID = "group_crm_id"
    GROUP_DOMAIN = "group_domain"
    EMAIL_DOMAIN = "email_domain"


class TaskStatus(StrEnum):
    OPEN = "open"
    COMPLETED = "completed"


def normalize_domain(value: str | None) -> str | None:
    """`https://www.Acme.com/path` → `acme.com`; blank → None. Identity resolution compares these."""
    if value is None:
        return None
    text = value.strip().lower()
    for prefix in ("https://", "http://"):
        text = text.removeprefix(prefix)
    text = text.split("/", 1)[0].split("?", 1)[0].split(":", 1)[0].removeprefix("www.").strip(".")
    return text or None


# ---------------------------------------------------------------------------------------------------------
# Field typing: one small interpreter of the dataclass annotations serves validation and JSON decoding,
# so adding a field to a record is one line, not three.


@dataclass(frozen=True, slots=True)
class _FieldType:
    base: Any  # str, int, float, bool, datetime, date, an Enum subclass, tuple, frozenset or Mapping
    optional: bool
    item: Any = None  # element type for tuple / frozenset


def _field_type(hint: Any) -> _FieldType:
    optional = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        if len(args) != 1:
            raise TypeError(f"unsupported union field type {hint!r}")
        hint = args[0]
    origin = typing.get_origin(hint)
    if origin is tuple:
        return _FieldType(base=tuple, optional=optional, item=typing.get_args(hint)[0])
    if origin is frozenset:
        return _FieldType(base=frozenset, optional=optional, item=typing.get_args(hint)[0])
    if origin is not None and issubclass(origin, Mapping):
        return _FieldType(base=Mapping, optional=optional)
    return _FieldType(base=hint, optional=optional)


_FIELD_TYPES: dict[type, dict[str, _FieldType]] = {}


def _field_types(cls: type) -> dict[str, _FieldType]:
    cached = _FIELD_TYPES.get(cls)
    if cached is None:
        hints = typing.get_type_hints(cls)
        cached = {f.name: _field_type(hints[f.name]) for f in dataclasses.fields(cls)}
        _FIELD_TYPES[cls] = cached
    return cached


def _bad(owner: str, name: str, problem: str) -> SkippableRecordError:
    return SkippableRecordError(f"{owner}.{name}: {problem}")


def _check_scalar(value: Any, base: Any, owner: str, name: str) -> Any:
    """Return `value` coerced to `base` where that is lossless, else raise a SkippableRecordError."""
    if isinstance(base, type) and issubclass(base, Enum):
        return _as_enum(value, base, owner, name)
    check = _SCALAR_CHECKS.get(base)
    if check is None:
        raise TypeError(f"{owner}.{name}: unsupported field type {base!r}")
    return check(value, owner, name)


def _as_enum(value: Any, base: type[Enum], owner: str, name: str) -> Enum:
    try:
        return base(value)
    except ValueError:
        allowed = ", ".join(str(m.value) for m in base)
        raise _bad(owner, name, f"{value!r} is not one of {allowed}") from None


def _not_a(what: str, value: Any, owner: str, name: str) -> SkippableRecordError:
    return _bad(owner, name, f"expected {what}, got {type(value).__name__}")


def _as_datetime(value: Any, owner: str, name: str) -> datetime:
    if not isinstance(value, datetime):
        raise _not_a("a datetime", value, owner, name)
    if value.tzinfo is None or value.utcoffset() is None:
        raise _bad(owner, name, "naive datetime; give it a timezone (UTC)")
    return value.astimezone(UTC)


def _as_date(value: Any, owner: str, name: str) -> date:
    if not isinstance(value, date) or isinstance(value, datetime):
        raise _not_a("a date", value, owner, name)
    return value


def _as_float(value: Any, owner: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _not_a("a number", value, owner, name)
    if value != value or value in (float("inf"), float("-inf")):
        raise _bad(owner, name, "not a finite number")
    return float(value)


def _as_int(value: Any, owner: str, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _not_a("an integer", value, owner, name)
    return value


def _as_bool(value: Any, owner: str, name: str) -> bool:
    if not isinstance(value, bool):
        raise _not_a("true/false", value, owner, name)
    return value


def _as_str(value: Any, owner: str, name: str) -> str:
    if not isinstance(value, str):
        raise _not_a("text", value, owner, name)
    return value


# The scalar field types a record may declare, each with its check.
_SCALAR_CHECKS: dict[type, Callable[[Any, str, str], Any]] = {
    datetime: _as_datetime, date: _as_date, float: _as_float, int: _as_int, bool: _as_bool, str: _as_str,
}


def _check_extra(value: Any, owner: str, name: str) -> Mapping[str, ExtraValue]:
    if not isinstance(value, Mapping):
        raise _bad(owner, name, f"expected a mapping, got {type(value).__name__}")
    frozen: dict[str, ExtraValue] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise _bad(owner, name, f"key {key!r} is not text")
        if isinstance(item, list | tuple):
            item = tuple(item)
            if not all(v is None or isinstance(v, str | int | float | bool) for v in item):
                raise _bad(owner, name, f"{key!r} holds a non-scalar list item")
        elif not (item is None or isinstance(item, str | int | float | bool)):
            raise _bad(owner, name, f"{key!r} holds a {type(item).__name__}; only JSON scalars are kept")
        frozen[key] = item
    return types.MappingProxyType(frozen)


def _check_value(value: Any, ftype: _FieldType, owner: str, name: str) -> Any:
    if value is None:
        if ftype.optional:
            return None
        raise _bad(owner, name, "is required")
    if ftype.base is Mapping:
        return _check_extra(value, owner, name)
    if ftype.base in (tuple, frozenset):
        if isinstance(value, str | bytes) or not isinstance(value, tuple | list | set | frozenset):
            raise _bad(owner, name, f"expected a collection, got {type(value).__name__}")
        items = [_check_scalar(v, ftype.item, owner, name) for v in value]
        return tuple(items) if ftype.base is tuple else frozenset(items)
    return _check_scalar(value, ftype.base, owner, name)


def _encode(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, frozenset):
        return sorted(_encode(v) for v in value)  # sorted: the same record always serialises the same way
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _encode(v) for k, v in sorted(value.items())}
    return value


def _decode(value: Any, ftype: _FieldType, owner: str, name: str) -> Any:
    """JSON primitive → the Python value the field holds (validation happens in the constructor)."""
    if value is None:
        return None
    try:
        if ftype.base is datetime:
            return datetime.fromisoformat(value)
        if ftype.base is date:
            return date.fromisoformat(value)
        if ftype.base in (tuple, frozenset) and ftype.item in (datetime, date):
            return [ftype.item.fromisoformat(v) for v in value]
    except (TypeError, ValueError) as exc:
        raise _bad(owner, name, f"cannot parse {value!r}: {exc}") from None
    return value


class _Record:
    """Shared behaviour of the canonical records: validation, `to_json`, `from_json`, `primary_key`."""

    __slots__ = ()

    def __post_init__(self) -> None:
        owner = type(self).__name__
        for name, ftype in _field_types(type(self)).items():
            current = getattr(self, name)
            checked = _check_value(current, ftype, owner, name)
            if checked is not current:
                object.__setattr__(self, name, checked)
        self._check_invariants()

    def _check_invariants(self) -> None:
        """Cross-field rules; records that have some override this."""

    @property
    def primary_key(self) -> str:
        return typing.cast(str, getattr(self, "id"))  # noqa: B009  (the mixin declares no fields)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (ISO dates, sorted sets) that `from_json` turns back into an equal record."""
        return {f.name: _encode(getattr(self, f.name)) for f in dataclasses.fields(typing.cast(Any, self))}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        """Rebuild a record from `to_json` output; unknown keys (from a newer writer) are ignored."""
        if not isinstance(data, Mapping):
            raise SkippableRecordError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
        kwargs: dict[str, Any] = {}
        for name, ftype in _field_types(cls).items():
            if name in data:
                kwargs[name] = _decode(data[name], ftype, cls.__name__, name)
        try:
            return cls(**kwargs)
        except TypeError as exc:  # a required field is missing
            raise SkippableRecordError(f"{cls.__name__}: {exc}") from None


def _non_negative(record: Any, *names: str) -> None:
    for name in names:
        value = getattr(record, name)
        if value is not None and value < 0:
            raise _bad(type(record).__name__, name, f"must not be negative, got {value}")


# ---------------------------------------------------------------------------------------------------------
# CRM records


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountRecord(_Record):
    id: str
    name: str | None = None
    domain: str | None = None
    owner_id: str | None = None
    arr: float | None = None
    acv: float | None = None
    renewal_date: date | None = None
    plan_tier: str | None = None
    seats_purchased: int | None = None
    usage_capacity: float | None = None
    contract_start: date | None = None
    payment_status: str | None = None
    nps: float | None = None
    updated_at: datetime
    deleted: bool = False
    extra: Mapping[str, ExtraValue] = field(default_factory=dict, hash=False)

    def _check_invariants(self) -> None:
        object.__setattr__(self, "domain", normalize_domain(self.domain))
        _non_negative(self, "arr", "acv", "seats_purchased", "usage_capacity")


@dataclass(frozen=True, slots=True, kw_only=True)
class ContactRecord(_Record):
    id: str
    account_id: str | None = None
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    title: str | None = None
    role: str | None = None
    is_champion: bool = False
    left_company: bool = False
    left_company_at: datetime | None = None
    role_changed_at: datetime | None = None
    created_at: datetime | None = None  # when the contact was added to the CRM (a replay of the past needs it)
    updated_at: datetime
    deleted: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class OpportunityRecord(_Record):
    id: str
    account_id: str | None = None
    name: str | None = None
    kind: OpportunityKind = OpportunityKind.OTHER
    amount: float | None = None
    stage: str | None = None
    is_closed: bool = False
    is_won: bool = False
    close_date: date | None = None
    loss_reason: str | None = None  # closed lost: the reason the CRM records (field_map.opportunity.loss_reason)
    updated_at: datetime
    deleted: bool = False

    def _check_invariants(self) -> None:
        if self.is_won and not self.is_closed:
            raise _bad("OpportunityRecord", "is_won", "a won opportunity must also be closed")


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivityRecord(_Record):
    id: str
    account_id: str | None = None
    contact_id: str | None = None
    owner_id: str | None = None
    kind: ActivityKind
    subject: str | None = None
    occurred_at: datetime | None = None
    outcome: MeetingOutcome | None = None
    direction: Direction | None = None
    updated_at: datetime
    deleted: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class UserRecord(_Record):
    """A CRM user: account owners and escalation targets (resolved by email)."""

    id: str
    email: str | None = None
    name: str | None = None
    active: bool = True
    title: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CrmTask(_Record):
    """A task as read back from the CRM, so writeback can find ours by dedupe key and see closures."""

    id: str
    account_id: str | None = None
    owner_id: str | None = None
    subject: str
    status: TaskStatus
    due: date | None = None
    dedupe_key: str | None = None
    completed_at: datetime | None = None


# ---------------------------------------------------------------------------------------------------------
# Zendesk records


@dataclass(frozen=True, slots=True, kw_only=True)
class TicketRecord(_Record):
    id: str
    organization_id: str | None = None
    requester_id: str | None = None
    subject: str | None = None
    description: str | None = None
    priority: TicketPriority | None = None
    status: TicketStatus
    tags: tuple[str, ...] = ()
    satisfaction: SatisfactionScore | None = None
    created_at: datetime
    updated_at: datetime
    solved_at: datetime | None = None
    deleted: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class OrganizationRecord(_Record):
    id: str
    name: str | None = None
    external_id: str | None = None
    domains: tuple[str, ...] = ()
    updated_at: datetime | None = None
    deleted: bool = False

    def _check_invariants(self) -> None:
        cleaned = tuple(d for d in (normalize_domain(raw) for raw in self.domains) if d)
        object.__setattr__(self, "domains", tuple(dict.fromkeys(cleaned)))


@dataclass(frozen=True, slots=True, kw_only=True)
class ZendeskUserRecord(_Record):
    id: str
    email: str | None = None
    name: str | None = None
    organization_id: str | None = None
    role: str | None = None
    active: bool = True
    updated_at: datetime | None = None
    deleted: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class SatisfactionRatingRecord(_Record):
    id: str
    ticket_id: str | None = None
    organization_id: str | None = None
    requester_id: str | None = None
    score: SatisfactionScore
    comment: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TicketMetricsRecord(_Record):
    ticket_id: str
    reopens: int | None = None
    replies: int | None = None
    first_reply_minutes: int | None = None
    first_resolution_minutes: int | None = None
    full_resolution_minutes: int | None = None
    updated_at: datetime | None = None

    def _check_invariants(self) -> None:
        _non_negative(
            self,
            "reopens",
            "replies",
            "first_reply_minutes",
            "first_resolution_minutes",
            "full_resolution_minutes",
        )

    @property
    def primary_key(self) -> str:
        return self.ticket_id


# ---------------------------------------------------------------------------------------------------------
# Mixpanel, aggregated on ingest


@dataclass(frozen=True, slots=True, kw_only=True)
class DailyUsageRecord(_Record):
    """One account-key's product usage on one day (project timezone), aggregated from raw events."""

    account_key: str
    key_kind: UsageKeyKind
    day: date
    active_user_ids: frozenset[str] = frozenset()
    login_user_ids: frozenset[str] = frozenset()
    events: int = 0
    core_actions: int = 0
    sessions: int = 0
    features_used: frozenset[str] = frozenset()
    value_events: int = 0
    nps_scores: tuple[int, ...] = ()

    def _check_invariants(self) -> None:
        if not self.account_key:
            raise _bad("DailyUsageRecord", "account_key", "must not be empty")
        _non_negative(self, "events", "core_actions", "sessions", "value_events")
        for score in self.nps_scores:
            if not 0 <= score <= 10:
                raise _bad("DailyUsageRecord", "nps_scores", f"{score} is outside 0–10")

    @property
    def primary_key(self) -> str:
        """`<key_kind>:<account_key>:<YYYY-MM-DD>`; unambiguous since key_kind has no ':' and day is fixed-width."""
        return f"{self.key_kind.value}:{self.account_key}:{self.day.isoformat()}"


# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SkippedRecord:
    """A source record we could not use: counted and reported, never silently dropped."""

    source: str
    stream: str
    record_id: str | None
    reason: str
    raw_excerpt: str = ""

    @classmethod
    def from_raw(
        cls, *, source: str, stream: str, record_id: str | None, reason: str, raw: Any
    ) -> SkippedRecord:
        """Build one from whatever the SDK gave us; the excerpt is compact JSON cut to a few hundred chars."""
        try:
            text = json.dumps(raw, default=str, sort_keys=True, separators=(",", ":"))
        except (TypeError, ValueError):
            text = repr(raw)
        if len(text) > _RAW_EXCERPT_CHARS:
            text = text[: _RAW_EXCERPT_CHARS - 1] + "…"
        return cls(source=source, stream=stream, record_id=record_id, reason=reason, raw_excerpt=text)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SkippedRecord:
        return cls(
            source=str(data["source"]),
            stream=str(data["stream"]),
            record_id=None if data.get("record_id") is None else str(data["record_id"]),
            reason=str(data["reason"]),
            raw_excerpt=str(data.get("raw_excerpt", "")),
        )


Record = (
    AccountRecord
    | ContactRecord
    | OpportunityRecord
    | ActivityRecord
    | UserRecord
    | CrmTask
    | TicketRecord
    | OrganizationRecord
    | ZendeskUserRecord
    | SatisfactionRatingRecord
    | TicketMetricsRecord
    | DailyUsageRecord
)
"""Any canonical record a connector emits."""

RECORD_TYPES: Mapping[str, type[Record]] = types.MappingProxyType(
    {cls.__name__: cls for cls in typing.get_args(Record)}
)
"""Record class by name, for the store to decode rows it wrote with `to_json`."""
