"""HubSpot property values (all strings) → canonical records, named through the configured field map."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from healthsync.config.settings import FieldMap
from healthsync.connectors.records import (
    AccountRecord,
    ActivityKind,
    ActivityRecord,
    ContactRecord,
    CrmTask,
    Direction,
    MeetingOutcome,
    OpportunityKind,
    OpportunityRecord,
    TaskStatus,
    UserRecord,
)
from healthsync.errors import SkippableRecordError

MODSTAMP = "hs_lastmodifieddate"
OBJECT_ID = "hs_object_id"
ENGAGEMENT_TYPES = ("meetings", "calls", "emails")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HS_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
_OUTCOMES = {"COMPLETED": MeetingOutcome.HELD, "NO_SHOW": MeetingOutcome.NO_SHOW, "CANCELED": MeetingOutcome.CANCELLED,
             "CANCELLED": MeetingOutcome.CANCELLED}
_EMAIL_DIRECTIONS = {"INCOMING_EMAIL": Direction.INBOUND, "EMAIL": Direction.OUTBOUND,
                     "FORWARDED_EMAIL": Direction.OUTBOUND}
_NEW_BUSINESS = {"newbusiness", "new_business", "new business"}

Props = Mapping[str, Any]


# ---------------------------------------------------------------------------------------------- values


def parse_datetime(raw: Any) -> datetime | None:
    """HubSpot datetimes: ISO 8601 (`2024-05-01T12:00:00.000Z`) or epoch milliseconds; None when unreadable."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, datetime):
        return raw.astimezone(UTC) if raw.tzinfo else raw.replace(tzinfo=UTC)
    text = str(raw).strip()
    if re.fullmatch(r"-?\d{1,16}", text):
        return _EPOCH + timedelta(milliseconds=int(text))
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_date(raw: Any) -> date | None:
    """Date properties come as `YYYY-MM-DD`; datetime-typed ones (closedate) as a midnight datetime."""
    if raw is None or raw == "":
        return None
    text = str(raw).strip()
    try:
        return date.fromisoformat(text)
    except ValueError:
        moment = parse_datetime(text)
        if moment is None:
            raise SkippableRecordError(f"{text!r} is not a date") from None
        return moment.date()


def required_datetime(raw: Any, name: str) -> datetime | None:
    if raw is None or raw == "":
        return None
    moment = parse_datetime(raw)
    if moment is None:
        raise SkippableRecordError(f"{name}: {str(raw)[:40]!r} is not a datetime")
    return moment


def epoch_ms(moment: datetime) -> int:
    """Exact epoch milliseconds (integer arithmetic: no float rounding at the cursor boundary)."""
    return (moment.astimezone(UTC) - _EPOCH) // timedelta(milliseconds=1)


def as_float(raw: Any, name: str = "value") -> float | None:
    if raw is None or raw == "":
        return None
    try:
        return float(str(raw).strip())
    except ValueError:
        raise SkippableRecordError(f"{name}: {str(raw)[:40]!r} is not a number") from None


def as_int(raw: Any, name: str = "value") -> int | None:
    number = as_float(raw, name)
    if number is None:
        return None
    if not number.is_integer():
        raise SkippableRecordError(f"{name}: {raw!r} is not a whole number")
    return int(number)


def as_bool(raw: Any) -> bool:
    return str(raw).strip().lower() in ("true", "1", "yes") if raw is not None else False


def as_text(raw: Any) -> str | None:
    if raw is None:
        return None
    text = str(raw).strip()
    return text or None


def canonical_written_value(raw: Any) -> Any:
    """A value of one of our own properties as writeback compares it.

    HubSpot renders datetimes as `2024-06-01T12:00:00.000Z`; writeback writes (and remembers) ISO 8601 with
    an offset and seconds precision, so the read-back value is rendered the same way — otherwise every
    `last_scored_at` would look like a human edit.
    """
    if isinstance(raw, str) and _HS_DATETIME.match(raw):
        moment = parse_datetime(raw)
        if moment is not None:
            return moment.isoformat(timespec="seconds" if moment.microsecond == 0 else "microseconds")
    return raw


# ---------------------------------------------------------------------------------------------- records


class RecordMapper:
    """Builds canonical records from HubSpot objects; property names come from the field map."""

    def __init__(self, field_map: FieldMap):
        self.fm = field_map

    # -- what to ask for ----------------------------------------------------------------------------
    def properties(self, object_type: str) -> list[str]:
        """Every property the mapping reads for an object type (the cursor ones included)."""
        fm = self.fm
        names: list[str | None]
        if object_type == "companies":
            a = fm.account
            names = ["name", a.domain, a.owner, a.arr, a.acv, a.renewal_date, a.plan_tier, a.seats,
                     a.capacity_limit, a.contract_start, a.payment_status, a.nps, *self.written_properties()]
        elif object_type == "contacts":
            c = fm.contact
            names = [c.email, "firstname", "lastname", "jobtitle", c.role, c.champion, c.executive_sponsor,
                     c.left_company, c.left_company_date, c.role_changed_date, "createdate"]
        elif object_type == "deals":
            o = fm.opportunity
            names = ["dealname", o.amount, o.stage, o.close_date, o.type_field, o.loss_reason]
        elif object_type == "meetings":
            names = ["hs_meeting_title", "hs_meeting_start_time", "hs_meeting_outcome", "hs_activity_type",
                     "hs_timestamp", "hubspot_owner_id"]
        elif object_type == "calls":
            names = ["hs_call_title", "hs_timestamp", "hs_call_direction", "hubspot_owner_id"]
        elif object_type == "emails":
            names = ["hs_email_subject", "hs_timestamp", "hs_email_direction", "hubspot_owner_id"]
        elif object_type == "tasks":
            names = ["hs_task_subject", "hs_task_status", "hs_task_priority", "hs_timestamp", "hubspot_owner_id",
                     "hs_task_completion_date", fm.write.task_key]
        else:
            raise ValueError(f"no mapping for HubSpot object type {object_type!r}")
        return list(dict.fromkeys([n for n in names if n] + [MODSTAMP, OBJECT_ID]))

    def written_properties(self) -> list[str]:
        """Our own company properties (the field map's write section, except the task key)."""
        write = self.fm.write.model_dump()
        return [name for logical, name in write.items() if logical != "task_key" and name]

    # -- records ------------------------------------------------------------------------------------
    def account(self, object_id: str, props: Props, updated_at: datetime) -> AccountRecord:
        a = self.fm.account
        extra = {name: canonical_written_value(props[name]) for name in self.written_properties() if name in props}
        return AccountRecord(
            id=object_id, name=as_text(props.get("name")), domain=as_text(props.get(a.domain)),
            owner_id=as_text(props.get(a.owner)), arr=as_float(props.get(a.arr), a.arr),
            acv=as_float(props.get(a.acv), a.acv), renewal_date=parse_date(props.get(a.renewal_date)),
            plan_tier=as_text(props.get(a.plan_tier)), seats_purchased=as_int(props.get(a.seats), a.seats),
            usage_capacity=as_float(props.get(a.capacity_limit), a.capacity_limit),
            contract_start=parse_date(props.get(a.contract_start)),
            payment_status=as_text(props.get(a.payment_status)), nps=as_float(props.get(a.nps), a.nps),
            updated_at=updated_at, extra=extra,
        )

    def contact(self, object_id: str, props: Props, updated_at: datetime, account_id: str | None) -> ContactRecord:
        c = self.fm.contact
        role = as_text(props.get(c.role))
        champion = (as_bool(props.get(c.champion)) if c.champion else False) or role in c.champion_roles
        left_at = _date_as_datetime(parse_date(props.get(c.left_company_date))) if c.left_company_date else None
        return ContactRecord(
            id=object_id, account_id=account_id, email=as_text(props.get(c.email)),
            first_name=as_text(props.get("firstname")), last_name=as_text(props.get("lastname")),
            title=as_text(props.get("jobtitle")), role=role, is_champion=champion,
            left_company=(as_bool(props.get(c.left_company)) if c.left_company else False) or left_at is not None,
            left_company_at=left_at,
            role_changed_at=(_date_as_datetime(parse_date(props.get(c.role_changed_date)))
                             if c.role_changed_date else None),
            created_at=parse_datetime(props.get("createdate")), updated_at=updated_at,
        )

    def opportunity(self, object_id: str, props: Props, updated_at: datetime,
                    account_id: str | None) -> OpportunityRecord:
        o = self.fm.opportunity
        stage = as_text(props.get(o.stage))
        won = stage is not None and stage in o.won_stages
        return OpportunityRecord(
            id=object_id, account_id=account_id, name=as_text(props.get("dealname")),
            kind=self._kind(as_text(props.get(o.type_field))), amount=as_float(props.get(o.amount), o.amount),
            stage=stage, is_won=won, is_closed=won or (stage or "").lower() == "closedlost",
            close_date=parse_date(props.get(o.close_date)),
            loss_reason=as_text(props.get(o.loss_reason)) if o.loss_reason else None, updated_at=updated_at,
        )

    def _kind(self, value: str | None) -> OpportunityKind:
        o = self.fm.opportunity
        if value is None:
            return OpportunityKind.OTHER
        if value in o.renewal_types:
            return OpportunityKind.RENEWAL
        if value in o.expansion_types:
            return OpportunityKind.EXPANSION
        if value.lower() in _NEW_BUSINESS:
            return OpportunityKind.NEW_BUSINESS
        return OpportunityKind.OTHER

    def activity(self, object_type: str, object_id: str, props: Props, updated_at: datetime,  # noqa: PLR0913 (one search row's parts, as the other mapper methods take them, plus its two associations)
                 account_id: str | None, contact_id: str | None) -> ActivityRecord:
        common = {"id": object_id, "account_id": account_id, "contact_id": contact_id,
                  "owner_id": as_text(props.get("hubspot_owner_id")), "updated_at": updated_at}
        when = required_datetime(props.get("hs_timestamp"), "hs_timestamp")
        if object_type == "meetings":
            qbr = (as_text(props.get("hs_activity_type")) or "").upper() == "QBR"
            outcome = _OUTCOMES.get((as_text(props.get("hs_meeting_outcome")) or "").upper())
            start = required_datetime(props.get("hs_meeting_start_time"), "hs_meeting_start_time")
            return ActivityRecord(kind=ActivityKind.QBR if qbr else ActivityKind.MEETING,
                                  subject=as_text(props.get("hs_meeting_title")), occurred_at=start or when,
                                  outcome=outcome, **common)
        if object_type == "calls":
            raw = (as_text(props.get("hs_call_direction")) or "").upper()
            direction = {"INBOUND": Direction.INBOUND, "OUTBOUND": Direction.OUTBOUND}.get(raw)
            return ActivityRecord(kind=ActivityKind.CALL, subject=as_text(props.get("hs_call_title")),
                                  occurred_at=when, direction=direction, **common)
        if object_type == "emails":
            direction = _EMAIL_DIRECTIONS.get((as_text(props.get("hs_email_direction")) or "").upper())
            return ActivityRecord(kind=ActivityKind.EMAIL, subject=as_text(props.get("hs_email_subject")),
                                  occurred_at=when, direction=direction, **common)
        raise ValueError(f"{object_type} is not an activity type")

    def crm_task(self, object_id: str, props: Props, updated_at: datetime, account_id: str | None) -> CrmTask:
        completed = (as_text(props.get("hs_task_status")) or "").upper() == "COMPLETED"
        completed_at = None
        if completed:
            completed_at = required_datetime(props.get("hs_task_completion_date"),
                                             "hs_task_completion_date") or updated_at
        due = required_datetime(props.get("hs_timestamp"), "hs_timestamp")
        return CrmTask(
            id=object_id, account_id=account_id, owner_id=as_text(props.get("hubspot_owner_id")),
            subject=as_text(props.get("hs_task_subject")) or "", status=TaskStatus.COMPLETED if completed else
            TaskStatus.OPEN, due=due.date() if due else None,
            dedupe_key=as_text(props.get(self.fm.write.task_key)), completed_at=completed_at,
        )

    @staticmethod
    def user(owner: Any) -> UserRecord:
        """An owner (PublicOwner) → UserRecord; archived owners are deactivated users."""
        names = [n for n in (as_text(getattr(owner, "first_name", None)), as_text(getattr(owner, "last_name", None)))
                 if n]
        owner_id = as_text(getattr(owner, "id", None))
        if owner_id is None:
            raise SkippableRecordError("owner without an id")
        email = as_text(getattr(owner, "email", None))
        return UserRecord(id=owner_id, email=email.lower() if email else None, name=" ".join(names) or None,
                          active=not bool(getattr(owner, "archived", False)))

    @staticmethod
    def tombstone(stream: str, object_type: str, object_id: str, archived_at: datetime) -> Any:
        """The deleted marker of an archived record (only the id and the time matter to the store)."""
        if stream == "accounts":
            return AccountRecord(id=object_id, updated_at=archived_at, deleted=True)
        if stream == "contacts":
            return ContactRecord(id=object_id, updated_at=archived_at, deleted=True)
        if stream == "opportunities":
            return OpportunityRecord(id=object_id, updated_at=archived_at, deleted=True)
        if stream == "activities":
            kind = {"meetings": ActivityKind.MEETING, "calls": ActivityKind.CALL}.get(object_type, ActivityKind.EMAIL)
            return ActivityRecord(id=object_id, kind=kind, updated_at=archived_at, deleted=True)
        raise ValueError(f"stream {stream!r} has no tombstones")


def primary_target(targets: Sequence[Any]) -> str | None:
    """The associated record to use when there are several: the one labelled Primary, else the lowest id."""
    best: tuple[int, int, str] | None = None
    for target in targets:
        raw_id = getattr(target, "to_object_id", None)
        if raw_id is None:
            continue
        to_id = str(raw_id)
        labels = [getattr(t, "label", None) for t in getattr(target, "association_types", None) or []]
        rank = (0 if "Primary" in labels else 1, int(to_id) if to_id.isdecimal() else 0, to_id)
        if best is None or rank < best:
            best = rank
    return best[2] if best else None


def _date_as_datetime(day: date | None) -> datetime | None:
    return datetime(day.year, day.month, day.day, tzinfo=UTC) if day else None
