"""Salesforce rows ↔ canonical records: which fields each object is read with (describe + field map), the
Bulk CSV cells turned into REST-typed values, and one builder per record type."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
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
from healthsync.errors import ConfigError, SkippableRecordError

NUMBER_TYPES = frozenset({"double", "currency", "percent", "int", "long"})
_OUTCOMES = {"held": MeetingOutcome.HELD, "no show": MeetingOutcome.NO_SHOW, "no_show": MeetingOutcome.NO_SHOW,
             "cancelled": MeetingOutcome.CANCELLED, "canceled": MeetingOutcome.CANCELLED}
_DIRECTIONS = {"inbound": Direction.INBOUND, "outbound": Direction.OUTBOUND}
_ACCOUNT_KEYS = ("arr", "acv", "renewal_date", "contract_start", "plan_tier", "seats", "capacity_limit",
                 "payment_status", "nps", "domain", "owner")
_CONTACT_OPTIONAL_KEYS = ("champion", "executive_sponsor", "left_company", "left_company_date", "role_changed_date")
_OPPORTUNITY_KEYS = ("type_field", "stage", "amount", "close_date")
_WRITTEN_PREFIX = "written:"
_ACTIVITY_COMMON = ("AccountId", "WhatId", "WhoId", "OwnerId", "Subject", "ActivityDate")
_TASK_EXTRA = ("Status", "IsClosed", "TaskSubtype", "Type", "CallType", "Direction__c", "CompletedDateTime",
               "LastModifiedDate")
_EVENT_EXTRA = ("StartDateTime", "ActivityDateTime", "Type", "Outcome__c")


@dataclass(frozen=True, slots=True)
class Want:
    """One field an object is read with: `key` is how builders ask for it, `setting` the field-map key path
    (None for standard fields), `required` whether its absence is a configuration error."""

    key: str
    api_name: str
    setting: str | None = None
    required: bool = False


@dataclass(frozen=True, slots=True)
class ObjectFields:
    """The fields one sObject is queried with in this org: logical key → API name as described, and types."""

    sobject: str
    names: Mapping[str, str]
    types: Mapping[str, str]

    @property
    def select(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(["Id", *self.names.values()]))

    @property
    def deletable(self) -> bool:
        return "IsDeleted" in self.names

    def has(self, key: str) -> bool:
        return key in self.names


def resolve_fields(sobject: str, described: Mapping[str, Mapping[str, Any]], wants: Sequence[Want]) -> ObjectFields:
    """Match wanted fields against a describe; a missing field-map field is a ConfigError naming its key."""
    names: dict[str, str] = {}
    types: dict[str, str] = {}
    for want in wants:
        found = described.get(want.api_name.lower())
        if found is None:
            if want.required:
                setting = f"crm.field_map.{want.setting}" if want.setting else "a standard field"
                raise ConfigError(
                    f"{setting}: field '{want.api_name}' does not exist on the Salesforce {sobject} object "
                    "(or the integration user cannot see it); fix the field map, or create the field and grant "
                    "the integration user read access to it")
            continue
        names[want.key] = str(found["name"])
        types[str(found["name"])] = str(found.get("type") or "string")
    return ObjectFields(sobject, names, types)


def _standard(*names: str, required: Sequence[str] = ("Id", "SystemModstamp")) -> list[Want]:
    return [Want(name, name, required=name in required) for name in names]


def account_wants(field_map: FieldMap) -> list[Want]:
    """The field-map fields, plus the fields we write (once `setup` created them): the planner compares
    their current CRM values with what we last wrote, to see human edits and adopt writes made before a crash."""
    mapped = field_map.account.model_dump()
    written = field_map.write.model_dump()
    return [*_standard("Id", "SystemModstamp", "IsDeleted", "Name"),
            *(Want(key, mapped[key], f"account.{key}", required=True) for key in _ACCOUNT_KEYS),
            *(Want(_WRITTEN_PREFIX + key, name, f"write.{key}") for key, name in written.items()
              if key != "task_key" and name)]


def contact_wants(field_map: FieldMap) -> list[Want]:
    contact = field_map.contact
    wants = [*_standard("Id", "SystemModstamp", "IsDeleted", "AccountId", "FirstName", "LastName", "Title",
                        "CreatedDate"),
             Want("email", contact.email, "contact.email", required=True),
             Want("role", contact.role, "contact.role", required=True)]
    for key in _CONTACT_OPTIONAL_KEYS:
        name = getattr(contact, key)
        if name:
            wants.append(Want(key, name, f"contact.{key}", required=True))
    return wants


def opportunity_wants(field_map: FieldMap) -> list[Want]:
    """The field-map fields; the loss reason only when the org has that field (many orgs never added one)."""
    mapped = field_map.opportunity.model_dump()
    wants = [*_standard("Id", "SystemModstamp", "IsDeleted", "AccountId", "Name", "IsClosed", "IsWon"),
             *(Want(key, mapped[key], f"opportunity.{key}", required=True) for key in _OPPORTUNITY_KEYS)]
    if field_map.opportunity.loss_reason:
        wants.append(Want("loss_reason", field_map.opportunity.loss_reason, "opportunity.loss_reason"))
    return wants


def task_wants(field_map: FieldMap) -> list[Want]:
    """Task fields; the dedupe-key field only exists once `setup` created it, so it is optional here."""
    return [*_standard("Id", "SystemModstamp", "IsDeleted", *_ACTIVITY_COMMON, *_TASK_EXTRA),
            Want("task_key", field_map.write.task_key, "write.task_key")]


def event_wants() -> list[Want]:
    return _standard("Id", "SystemModstamp", "IsDeleted", *_ACTIVITY_COMMON, *_EVENT_EXTRA)


def user_wants() -> list[Want]:
    return _standard("Id", "SystemModstamp", "Email", "Name", "IsActive", "Title")


# ---------------------------------------------------------------------------------------------- values


def coerce_csv_row(row: Mapping[str, str], types: Mapping[str, str]) -> dict[str, Any]:
    """A Bulk API CSV row as the REST API would type it (empty cell → None; booleans and numbers parsed)."""
    out: dict[str, Any] = {}
    for name, cell in row.items():
        if name is None:  # a row with more cells than the header: keep it visible to the record check
            out["__extra_cells__"] = cell
            continue
        kind = types.get(name, "string")
        if cell is None or cell == "":
            out[name] = None
        elif kind == "boolean":
            out[name] = cell.strip().lower() == "true" if cell.strip().lower() in ("true", "false") else cell
        elif kind in NUMBER_TYPES:
            try:
                out[name] = float(cell)
            except ValueError:
                out[name] = cell  # left as text: the record builder rejects it and the row is skipped
        else:
            out[name] = cell
    return out


def parse_datetime(value: Any) -> datetime | None:
    """`2024-05-01T09:30:00.000+0000` / `...Z` / a bare date (midnight UTC) → aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str):
        raise SkippableRecordError(f"expected a datetime, got {type(value).__name__}")
    text = value.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise SkippableRecordError(f"{value!r} is not a datetime") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def parse_date(value: Any) -> date | None:
    if value is None:
        return None
    if isinstance(value, str) and len(value.strip()) >= 10:
        try:
            return date.fromisoformat(value.strip()[:10])
        except ValueError:
            pass
    raise SkippableRecordError(f"{value!r} is not a date")


def as_float(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise SkippableRecordError(f"expected a number, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        raise SkippableRecordError(f"{value!r} is not a number") from None


def as_int(value: Any) -> int | None:
    number = as_float(value)
    return None if number is None else int(round(number))


def as_bool(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    raise SkippableRecordError(f"expected true/false, got {value!r}")


def as_text(value: Any) -> Any:
    """Text stays text; anything else passes through so the record's own check names the field."""
    if isinstance(value, str):
        return value.strip() or None
    return value


def stamp_and_id(row: Mapping[str, Any]) -> tuple[datetime | None, str | None]:
    """A row's cursor position; (None, id) when the stamp is missing or unreadable."""
    rid = row.get("Id")
    rid = rid if isinstance(rid, str) and rid else None
    try:
        return parse_datetime(row.get("SystemModstamp")), rid
    except SkippableRecordError:
        return None, rid


# ---------------------------------------------------------------------------------------------- builders


class RowReader:
    """Field access on one row through the object's resolved names: absent-in-org → None, absent-in-answer → skip."""

    def __init__(self, row: Mapping[str, Any], fields: ObjectFields):
        self.row, self.fields = row, fields

    def __call__(self, key: str) -> Any:
        name = self.fields.names.get(key)
        if name is None:
            return None
        if name not in self.row:
            raise SkippableRecordError(f"{self.fields.sobject}.{name} is missing from the answer")
        return self.row[name]


def _prefixed(value: Any, prefix: str) -> str | None:
    return value if isinstance(value, str) and value.startswith(prefix) else None


def _lower(value: Any) -> Any:
    text = as_text(value)
    return text.lower() if isinstance(text, str) else text


class RecordMapper:
    """Builds canonical records from rows, applying the field map's semantics (renewal types, champion roles)."""

    def __init__(self, field_map: FieldMap):
        self.field_map = field_map
        opportunity = field_map.opportunity
        self._renewal = {t.casefold() for t in opportunity.renewal_types}
        self._expansion = {t.casefold() for t in opportunity.expansion_types}
        self._won = {s.casefold() for s in opportunity.won_stages}
        self._champion_roles = {r.casefold() for r in field_map.contact.champion_roles}
        self._sponsor_roles = {r.casefold() for r in field_map.contact.executive_sponsor_roles}

    def account(self, row: Mapping[str, Any], fields: ObjectFields, updated_at: datetime) -> AccountRecord:
        get = RowReader(row, fields)
        return AccountRecord(
            id=get("Id"), name=as_text(get("Name")), domain=as_text(get("domain")), owner_id=get("owner"),
            arr=as_float(get("arr")), acv=as_float(get("acv")), renewal_date=parse_date(get("renewal_date")),
            plan_tier=_lower(get("plan_tier")), seats_purchased=as_int(get("seats")),
            usage_capacity=as_float(get("capacity_limit")), contract_start=parse_date(get("contract_start")),
            payment_status=_lower(get("payment_status")), nps=as_float(get("nps")), updated_at=updated_at,
            deleted=as_bool(get("IsDeleted")), extra=_written_values(row, fields))

    def contact(self, row: Mapping[str, Any], fields: ObjectFields, updated_at: datetime) -> ContactRecord:
        get = RowReader(row, fields)
        role = as_text(get("role"))
        role_key = role.casefold() if isinstance(role, str) else None
        is_champion = as_bool(get("champion")) or role_key in self._champion_roles
        if as_bool(get("executive_sponsor")) and role_key not in self._sponsor_roles:
            role = self.field_map.contact.executive_sponsor_roles[0]  # the flag wins: report the sponsor role
        return ContactRecord(
            id=get("Id"), account_id=get("AccountId"), email=as_text(get("email")),
            first_name=as_text(get("FirstName")), last_name=as_text(get("LastName")), title=as_text(get("Title")),
            role=role, is_champion=is_champion, left_company=as_bool(get("left_company")),
            left_company_at=parse_datetime(get("left_company_date")),
            role_changed_at=parse_datetime(get("role_changed_date")), created_at=parse_datetime(get("CreatedDate")),
            updated_at=updated_at, deleted=as_bool(get("IsDeleted")))

    def opportunity(self, row: Mapping[str, Any], fields: ObjectFields, updated_at: datetime) -> OpportunityRecord:
        get = RowReader(row, fields)
        stage = as_text(get("stage"))
        is_won = as_bool(get("IsWon")) or (isinstance(stage, str) and stage.casefold() in self._won)
        return OpportunityRecord(
            id=get("Id"), account_id=get("AccountId"), name=as_text(get("Name")),
            kind=self._opportunity_kind(as_text(get("type_field"))), amount=as_float(get("amount")), stage=stage,
            is_closed=as_bool(get("IsClosed")) or is_won, is_won=is_won, close_date=parse_date(get("close_date")),
            loss_reason=as_text(get("loss_reason")), updated_at=updated_at, deleted=as_bool(get("IsDeleted")))

    def _opportunity_kind(self, value: Any) -> OpportunityKind:
        key = value.casefold() if isinstance(value, str) else ""
        if key in self._renewal:
            return OpportunityKind.RENEWAL
        if key in self._expansion:
            return OpportunityKind.EXPANSION
        if key in ("new business", "new_business", "newbusiness"):
            return OpportunityKind.NEW_BUSINESS
        return OpportunityKind.OTHER

    def activity(self, row: Mapping[str, Any], fields: ObjectFields, updated_at: datetime) -> ActivityRecord:
        get = RowReader(row, fields)
        is_event = fields.sobject == "Event"
        kind = _event_kind(get("Type")) if is_event else _task_kind(get("TaskSubtype"), get("Type"))
        if is_event:
            occurred = parse_datetime(get("StartDateTime") or get("ActivityDateTime") or get("ActivityDate"))
            outcome = _OUTCOMES.get(str(get("Outcome__c") or "").strip().casefold())
        else:
            occurred = parse_datetime(get("CompletedDateTime") or get("ActivityDate"))
            outcome = None
        direction = get("Direction__c") or get("CallType")
        return ActivityRecord(
            id=get("Id"), account_id=get("AccountId") or _prefixed(get("WhatId"), "001"),
            contact_id=_prefixed(get("WhoId"), "003"), owner_id=get("OwnerId"), kind=kind,
            subject=as_text(get("Subject")), occurred_at=occurred, outcome=outcome,
            direction=_DIRECTIONS.get(str(direction or "").strip().casefold()), updated_at=updated_at,
            deleted=as_bool(get("IsDeleted")))

    def crm_task(self, row: Mapping[str, Any], fields: ObjectFields) -> CrmTask:
        get = RowReader(row, fields)
        completed = as_bool(get("IsClosed")) or get("Status") == "Completed"
        completed_at = None
        if completed:
            completed_at = parse_datetime(get("CompletedDateTime") or get("LastModifiedDate") or get("SystemModstamp"))
        return CrmTask(
            id=get("Id"), account_id=get("AccountId") or _prefixed(get("WhatId"), "001"), owner_id=get("OwnerId"),
            subject=as_text(get("Subject")) or "", status=TaskStatus.COMPLETED if completed else TaskStatus.OPEN,
            due=parse_date(get("ActivityDate")), dedupe_key=as_text(get("task_key")), completed_at=completed_at)

    def user(self, row: Mapping[str, Any], fields: ObjectFields) -> UserRecord:
        get = RowReader(row, fields)
        email = as_text(get("Email"))
        return UserRecord(id=get("Id"), email=email.lower() if isinstance(email, str) else email,
                          name=as_text(get("Name")), active=as_bool(get("IsActive")) if fields.has("IsActive") else True,
                          title=as_text(get("Title")))


def _task_kind(subtype: Any, type_: Any) -> ActivityKind:
    words = {str(v).strip().casefold() for v in (subtype, type_) if v}
    if "call" in words:
        return ActivityKind.CALL
    if words & {"email", "listemail"}:
        return ActivityKind.EMAIL
    if "meeting" in words:
        return ActivityKind.MEETING
    return ActivityKind.TASK


def _event_kind(type_: Any) -> ActivityKind:
    return ActivityKind.QBR if str(type_ or "").strip().casefold() == "qbr" else ActivityKind.MEETING


def _written_values(row: Mapping[str, Any], fields: ObjectFields) -> dict[str, Any]:
    """Our own fields' current values, keyed by API name (as the planner names them)."""
    out: dict[str, Any] = {}
    for key, api_name in fields.names.items():
        if key.startswith(_WRITTEN_PREFIX):
            value = row.get(api_name)
            out[api_name] = value if value is None or isinstance(value, str | int | float | bool) else str(value)
    return out
