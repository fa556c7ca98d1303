"""Zendesk JSON (as zenpy's `to_dict()` renders it) → canonical records; a bad field raises SkippableRecordError."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from healthsync.connectors.records import (
    OrganizationRecord,
    SatisfactionRatingRecord,
    SatisfactionScore,
    TicketMetricsRecord,
    TicketRecord,
    TicketStatus,
    ZendeskUserRecord,
)
from healthsync.errors import SkippableRecordError

Raw = Mapping[str, Any]
_SCORES = frozenset(s.value for s in SatisfactionScore)


def ticket(raw: Raw, metric_set: Raw | None = None) -> TicketRecord:
    status = raw.get("status")
    return TicketRecord(
        id=_id(raw, "id", "TicketRecord"),
        organization_id=_optional_id(raw.get("organization_id")),
        requester_id=_optional_id(raw.get("requester_id")),
        subject=raw.get("subject"),
        description=raw.get("description"),
        priority=raw.get("priority") or None,
        status=status,
        tags=tuple(raw.get("tags") or ()),
        satisfaction=_ticket_satisfaction(raw.get("satisfaction_rating")),
        created_at=when(raw, "created_at", "TicketRecord"),
        updated_at=when(raw, "updated_at", "TicketRecord"),
        solved_at=when(metric_set, "solved_at", "TicketRecord") if metric_set else None,
        deleted=status == TicketStatus.DELETED.value,
    )


def ticket_metrics(raw: Raw) -> TicketMetricsRecord:
    return TicketMetricsRecord(
        ticket_id=_id(raw, "ticket_id", "TicketMetricsRecord"),
        reopens=raw.get("reopens"),
        replies=raw.get("replies"),
        first_reply_minutes=_calendar_minutes(raw.get("reply_time_in_minutes")),
        first_resolution_minutes=_calendar_minutes(raw.get("first_resolution_time_in_minutes")),
        full_resolution_minutes=_calendar_minutes(raw.get("full_resolution_time_in_minutes")),
        updated_at=when(raw, "updated_at", "TicketMetricsRecord"),
    )


def organization(raw: Raw) -> OrganizationRecord:
    external_id = raw.get("external_id")
    return OrganizationRecord(
        id=_id(raw, "id", "OrganizationRecord"),
        name=raw.get("name"),
        external_id=(str(external_id).strip() or None) if external_id is not None else None,
        domains=tuple(raw.get("domain_names") or ()),
        updated_at=when(raw, "updated_at", "OrganizationRecord"),
        deleted=raw.get("deleted_at") is not None,  # the organization export keeps deleted ones, stamped
    )


def user(raw: Raw) -> ZendeskUserRecord:
    active = raw.get("active")
    return ZendeskUserRecord(
        id=_id(raw, "id", "ZendeskUserRecord"),
        email=raw.get("email") or None,
        name=raw.get("name"),
        organization_id=_optional_id(raw.get("organization_id")),
        role=raw.get("role"),
        active=True if active is None else active,
        updated_at=when(raw, "updated_at", "ZendeskUserRecord"),
        deleted=active is False,  # Zendesk has no suspended-as-inactive: `active: false` means deleted
    )


def satisfaction_rating(raw: Raw) -> SatisfactionRatingRecord:
    return SatisfactionRatingRecord(
        id=_id(raw, "id", "SatisfactionRatingRecord"),
        ticket_id=_optional_id(raw.get("ticket_id")),
        organization_id=_optional_id(raw.get("organization_id")),
        requester_id=_optional_id(raw.get("requester_id")),
        score=raw.get("score"),
        comment=raw.get("comment") or None,
        created_at=when(raw, "created_at", "SatisfactionRatingRecord"),
        updated_at=when(raw, "updated_at", "SatisfactionRatingRecord"),
    )


def when(raw: Raw | None, name: str, owner: str) -> datetime | None:
    """An ISO-8601 Zendesk timestamp (`2024-05-01T12:00:00Z`) as an aware datetime; absent → None."""
    value = None if raw is None else raw.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise SkippableRecordError(f"{owner}.{name}: expected an ISO timestamp, got {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise SkippableRecordError(f"{owner}.{name}: {value!r} is not an ISO timestamp") from None
    if parsed.tzinfo is None:
        raise SkippableRecordError(f"{owner}.{name}: {value!r} has no timezone")
    return parsed


def record_id(raw: Raw, name: str = "id") -> str | None:
    """The id as a string for SkippedRecord.record_id, or None when it is missing."""
    value = raw.get(name)
    return None if value is None else str(value)


def _id(raw: Raw, name: str, owner: str) -> str:
    value = raw.get(name)
    if value is None or value == "":
        raise SkippableRecordError(f"{owner}.{name}: is required")
    return str(value)


def _optional_id(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _ticket_satisfaction(value: Any) -> SatisfactionScore | None:
    """The score embedded in a ticket; an unknown score is dropped rather than losing the ticket."""
    score = value.get("score") if isinstance(value, Mapping) else None
    return SatisfactionScore(score) if score in _SCORES else None


def _calendar_minutes(value: Any) -> int | None:
    """Zendesk reports durations as `{"calendar": m, "business": m}`; health uses calendar time."""
    if isinstance(value, Mapping):
        value = value.get("calendar")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SkippableRecordError(f"TicketMetricsRecord: duration {value!r} is not a number of minutes")
    return int(value)
