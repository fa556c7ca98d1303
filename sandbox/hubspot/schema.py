"""The portal's property definitions and property groups, and the value rules HubSpot enforces on writes.

A fresh demo portal has HubSpot's standard properties plus the customer-success fields the customer's
admin added (arr, acv, renewal_date, ...). healthsync's own writeback properties are NOT here: `setup`
creates them through the properties API, exactly as against a real portal.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from healthsync.sandbox.hubspot.types import ENGAGEMENT_TYPES, OBJECT_TYPES, singular

PROPERTY_TYPES = {"string", "number", "date", "datetime", "enumeration", "bool", "phone_number"}
FIELD_TYPES = {"textarea", "text", "date", "file", "number", "select", "radio", "checkbox",
               "booleancheckbox", "calculation_equation", "html", "phonenumber"}
_DEFAULT_FIELD_TYPE = {"string": "text", "number": "number", "date": "date", "datetime": "date",
                       "enumeration": "select", "bool": "booleancheckbox", "phone_number": "phonenumber"}
PROPERTY_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,99}$")
OWNER_PROPERTY = "hubspot_owner_id"
CS_GROUP = "customer_success"
MAX_STRING = 65536


@dataclass
class PropertyDef:
    name: str
    type: str
    field_type: str
    label: str
    group_name: str
    description: str = ""
    options: list[dict] = field(default_factory=list)
    display_order: int = -1
    hidden: bool = False
    hubspot_defined: bool = True
    read_only: bool = False
    has_unique_value: bool = False
    form_field: bool = False
    created_at: str = "2019-08-06T02:43:14.491Z"
    updated_at: str = "2019-08-06T02:43:14.491Z"

    def to_json(self, owner_options: list[dict] | None = None) -> dict:
        options = owner_options if self.name == OWNER_PROPERTY and owner_options is not None else self.options
        body = {
            "name": self.name, "label": self.label, "type": self.type, "fieldType": self.field_type,
            "description": self.description, "groupName": self.group_name, "options": options,
            "displayOrder": self.display_order, "calculated": False, "externalOptions": self.name == OWNER_PROPERTY,
            "hasUniqueValue": self.has_unique_value, "hidden": self.hidden, "formField": self.form_field,
            "modificationMetadata": {"archivable": not self.hubspot_defined, "readOnlyDefinition": self.hubspot_defined,
                                     "readOnlyValue": self.read_only},
            "createdAt": self.created_at, "updatedAt": self.updated_at, "archived": False,
        }
        if self.hubspot_defined:
            body["hubspotDefined"] = True
        return body


@dataclass
class GroupDef:
    name: str
    label: str
    display_order: int = -1

    def to_json(self) -> dict:
        return {"name": self.name, "label": self.label, "displayOrder": self.display_order, "archived": False}


def options_of(*values: str) -> list[dict]:
    return [{"label": v.replace("_", " ").title(), "value": v, "displayOrder": i, "hidden": False}
            for i, v in enumerate(values)]


def make_property(name: str, ptype: str = "string", *, options: tuple[str, ...] = (), read_only: bool = False,  # noqa: PLR0913 (a property definition's fields, all but name and type keyword-only)
       group: str | None = None, custom: bool = False, unique: bool = False) -> PropertyDef:
    opts = options_of(*options) if ptype != "bool" else options_of("true", "false")
    return PropertyDef(name=name, type=ptype, field_type=_DEFAULT_FIELD_TYPE[ptype],
                       label=name.replace("hs_", "").replace("_", " ").capitalize(), group_name=group or "",
                       options=opts, hubspot_defined=not custom, read_only=read_only, has_unique_value=unique)


_OWNER = ("hubspot_owner_id", "enumeration")
_LIFECYCLE = ("subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity",
              "customer", "evangelist", "other")
TICKET_STAGES = ("1", "2", "3", "4")  # New, Waiting on contact, Waiting on us, Closed
DEAL_STAGES = ("appointmentscheduled", "qualifiedtobuy", "presentationscheduled", "decisionmakerboughtin",
               "contractsent", "closedwon", "closedlost")


def _standard_properties() -> dict[str, list[PropertyDef]]:
    cs = {"group": CS_GROUP, "custom": True}
    engagement_common = [make_property(*_OWNER), make_property("hs_timestamp", "datetime"), make_property("hs_createdate", "datetime", read_only=True),
                         make_property("hs_lastmodifieddate", "datetime", read_only=True),
                         make_property("hs_object_id", "number", read_only=True), make_property("hs_activity_type")]
    return {
        "companies": [
            make_property("name"), make_property("domain"), make_property(*_OWNER), make_property("annualrevenue", "number"), make_property("industry"),
            make_property("lifecyclestage", "enumeration", options=_LIFECYCLE), make_property("createdate", "datetime"),
            make_property("hs_lastmodifieddate", "datetime", read_only=True), make_property("hs_object_id", "number", read_only=True),
            make_property("arr", "number", **cs), make_property("acv", "number", **cs), make_property("renewal_date", "date", **cs),
            make_property("plan_tier", "enumeration", options=("starter", "growth", "business", "enterprise"), **cs),
            make_property("seats_purchased", "number", **cs), make_property("usage_capacity", "number", **cs),
            make_property("contract_start_date", "date", **cs),
            make_property("payment_status", "enumeration", options=("current", "overdue", "failed"), **cs),
            make_property("nps_score", "number", **cs),
        ],
        "contacts": [
            make_property("email", unique=True), make_property("firstname"), make_property("lastname"), make_property("jobtitle"), make_property(*_OWNER),
            make_property("lifecyclestage", "enumeration", options=_LIFECYCLE), make_property("associatedcompanyid", "number"),
            make_property("createdate", "datetime"), make_property("lastmodifieddate", "datetime", read_only=True),
            make_property("hs_lastmodifieddate", "datetime", read_only=True), make_property("hs_object_id", "number", read_only=True),
            make_property("contact_role", "enumeration", options=("champion", "exec_sponsor", "admin", "user"), **cs),
            make_property("is_champion", "bool", **cs), make_property("left_company", "bool", **cs),
            make_property("left_company_date", "date", **cs), make_property("role_changed_date", "date", **cs),
        ],
        "deals": [
            make_property("dealname"), make_property("amount", "number"), make_property("dealstage", "enumeration", options=DEAL_STAGES),
            make_property("pipeline", "enumeration", options=("default",)), make_property("closedate", "datetime"), make_property(*_OWNER),
            make_property("createdate", "datetime"), make_property("hs_lastmodifieddate", "datetime", read_only=True),
            make_property("hs_object_id", "number", read_only=True), make_property("closed_lost_reason"),
            make_property("deal_type", "enumeration", options=("renewal", "expansion", "newbusiness"), **cs),
        ],
        # Tickets' default properties ("Tickets" guide; the default support pipeline "0" has stages 1-4)
        "tickets": [
            make_property("subject"), make_property("content"), make_property(*_OWNER),
            make_property("hs_pipeline", "enumeration", options=("0",)),
            make_property("hs_pipeline_stage", "enumeration", options=TICKET_STAGES),
            make_property("hs_ticket_priority", "enumeration", options=("LOW", "MEDIUM", "HIGH", "URGENT")),
            make_property("hs_ticket_category", "enumeration",
                          options=("PRODUCT_ISSUE", "BILLING_ISSUE", "FEATURE_REQUEST", "GENERAL_INQUIRY")),
            make_property("source_type", "enumeration", options=("CHAT", "EMAIL", "FORM", "PHONE")),
            make_property("closed_date", "datetime"), make_property("createdate", "datetime"),
            make_property("hs_lastmodifieddate", "datetime", read_only=True),
            make_property("hs_object_id", "number", read_only=True),
        ],
        "meetings": engagement_common + [
            make_property("hs_meeting_title"), make_property("hs_meeting_body"), make_property("hs_meeting_start_time", "datetime"),
            make_property("hs_meeting_end_time", "datetime"),
            make_property("hs_meeting_outcome", "enumeration",
               options=("SCHEDULED", "COMPLETED", "RESCHEDULED", "NO_SHOW", "CANCELED")),
        ],
        "calls": engagement_common + [
            make_property("hs_call_title"), make_property("hs_call_body"), make_property("hs_call_duration", "number"),
            make_property("hs_call_direction", "enumeration", options=("INBOUND", "OUTBOUND")),
            make_property("hs_call_status", "enumeration", options=("BUSY", "CALLING_CRM_USER", "CANCELED", "COMPLETED",
                                                          "CONNECTING", "FAILED", "IN_PROGRESS", "NO_ANSWER",
                                                          "QUEUED", "RINGING")),
        ],
        "emails": engagement_common + [
            make_property("hs_email_subject"), make_property("hs_email_text"),
            make_property("hs_email_direction", "enumeration", options=("EMAIL", "INCOMING_EMAIL", "FORWARDED_EMAIL")),
            make_property("hs_email_status", "enumeration", options=("BOUNCED", "FAILED", "SCHEDULED", "SENDING", "SENT")),
        ],
        "tasks": engagement_common + [
            make_property("hs_task_subject"), make_property("hs_task_body"),
            make_property("hs_task_status", "enumeration",
               options=("NOT_STARTED", "IN_PROGRESS", "WAITING", "COMPLETED", "DEFERRED")),
            make_property("hs_task_priority", "enumeration", options=("NONE", "LOW", "MEDIUM", "HIGH")),
            make_property("hs_task_type", "enumeration", options=("TODO", "CALL", "EMAIL", "LINKED_IN", "MEETING")),
        ],
        "notes": engagement_common + [make_property("hs_note_body")],
    }


# Properties the list/search endpoints return when the caller names none (as the real API does).
DEFAULT_PROPERTIES: dict[str, tuple[str, ...]] = {
    "companies": ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
    "contacts": ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
    "deals": ("amount", "closedate", "createdate", "dealname", "dealstage", "hs_lastmodifieddate",
              "hs_object_id", "pipeline"),
    "tickets": ("content", "createdate", "hs_lastmodifieddate", "hs_object_id", "hs_pipeline",
                "hs_pipeline_stage", "hs_ticket_category", "hs_ticket_priority", "subject"),
    **{t: ("hs_createdate", "hs_lastmodifieddate", "hs_object_id") for t in ENGAGEMENT_TYPES},
}
# System properties every answer carries, whatever was asked for.
SYSTEM_PROPERTIES: dict[str, tuple[str, ...]] = {
    "companies": ("createdate", "hs_lastmodifieddate", "hs_object_id"),
    "contacts": ("createdate", "lastmodifieddate", "hs_object_id"),
    "deals": ("createdate", "hs_lastmodifieddate", "hs_object_id"),
    "tickets": ("createdate", "hs_lastmodifieddate", "hs_object_id"),
    **{t: ("hs_createdate", "hs_lastmodifieddate", "hs_object_id") for t in ENGAGEMENT_TYPES},
}
CREATED_PROPERTY = {t: ("hs_createdate" if t in ENGAGEMENT_TYPES else "createdate") for t in OBJECT_TYPES}


class Schema:
    """Property definitions and groups per object type; mutable through the properties API."""

    def __init__(self) -> None:
        self.properties: dict[str, dict[str, PropertyDef]] = {}
        self.groups: dict[str, dict[str, GroupDef]] = {}
        for object_type, props in _standard_properties().items():
            info = f"{singular(object_type)}information"
            self.groups[object_type] = {info: GroupDef(info, f"{singular(object_type).title()} information", 0)}
            if object_type in ("companies", "contacts", "deals"):
                self.groups[object_type][CS_GROUP] = GroupDef(CS_GROUP, "Customer success", 1)
            self.properties[object_type] = {}
            for order, prop in enumerate(props):
                prop.group_name = prop.group_name or info
                prop.display_order = order
                self.properties[object_type][prop.name] = prop

    def get(self, object_type: str, name: str) -> PropertyDef | None:
        return self.properties[object_type].get(name)


# ----------------------------------------------------------------------------------------------- values


def format_datetime(moment: datetime) -> str:
    """HubSpot's datetime rendering: ISO 8601, UTC, milliseconds, `Z`."""
    if moment.utcoffset():
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def parse_datetime_ms(raw: str) -> int | None:
    """Epoch milliseconds from epoch-ms digits or an ISO 8601 string (naive = UTC); None when unparsable."""
    text = raw.strip()
    if re.fullmatch(r"-?\d{1,16}", text):
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _invalid(name: str, code: str, message: str) -> dict:
    return {"isValid": False, "message": message, "error": code, "name": name, "localizedErrorMessage": message}


def normalize_value(prop: PropertyDef, raw: Any, owner_ids: set[str]) -> tuple[str | None, dict | None]:
    """(stored value, None) when `raw` is valid for `prop`, else (None, HubSpot's per-property error)."""
    if raw is None or raw == "":
        return None, None
    if isinstance(raw, bool):
        raw = "true" if raw else "false"
    text = str(raw)
    handler = _NORMALIZERS.get(prop.type, _normalize_string)
    return handler(prop, text, owner_ids)


def _normalize_string(prop: PropertyDef, text: str, owner_ids: set[str]) -> tuple[str | None, dict | None]:
    if len(text) > MAX_STRING:
        return None, _invalid(prop.name, "INVALID_STRING", f"{prop.name} is longer than {MAX_STRING} characters")
    return text, None


def _normalize_number(prop: PropertyDef, text: str, owner_ids: set[str]) -> tuple[str | None, dict | None]:
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        return None, _invalid(prop.name, "INVALID_LONG" if prop.name == "hs_object_id" else "INVALID_DOUBLE",
                              f"{text} was not a valid number.")
    return text.strip(), None


def _normalize_bool(prop: PropertyDef, text: str, owner_ids: set[str]) -> tuple[str | None, dict | None]:
    lowered = text.strip().lower()
    if lowered not in ("true", "false"):
        return None, _invalid(prop.name, "INVALID_OPTION",
                              f'{text} was not one of the allowed options: [label: "Yes"\nvalue: "true"\n, '
                              f'label: "No"\nvalue: "false"\n]')
    return lowered, None


def _normalize_date(prop: PropertyDef, text: str, owner_ids: set[str]) -> tuple[str | None, dict | None]:
    stripped = text.strip()
    try:
        return date.fromisoformat(stripped).isoformat(), None
    except ValueError:
        pass
    ms = parse_datetime_ms(stripped)
    if ms is None:
        return None, _invalid(prop.name, "INVALID_DATE", f"{text} is not a valid date.")
    moment = ms_to_datetime(ms)
    if moment.hour or moment.minute or moment.second or moment.microsecond:
        return None, _invalid(prop.name, "INVALID_DATE",
                              f"{text} is at {moment.time()} UTC, not midnight! Date properties must be at midnight UTC.")
    return moment.date().isoformat(), None


def _normalize_datetime(prop: PropertyDef, text: str, owner_ids: set[str]) -> tuple[str | None, dict | None]:
    ms = parse_datetime_ms(text)
    if ms is None:
        return None, _invalid(prop.name, "INVALID_DATE", f"{text} is not a valid datetime.")
    return format_datetime(ms_to_datetime(ms)), None


def _normalize_enumeration(prop: PropertyDef, text: str, owner_ids: set[str]) -> tuple[str | None, dict | None]:
    if prop.name == OWNER_PROPERTY:
        if text.strip() not in owner_ids:
            return None, _invalid(prop.name, "INVALID_OWNER_ID", f"{text} is not a valid owner id")
        return text.strip(), None
    allowed = [o["value"] for o in prop.options]
    for part in text.split(";"):
        if allowed and part not in allowed:
            listed = ", ".join(allowed)
            return None, _invalid(prop.name, "INVALID_OPTION", f"{part} was not one of the allowed options: [{listed}]")
    return text, None


_NORMALIZERS = {
    "string": _normalize_string, "phone_number": _normalize_string, "number": _normalize_number,
    "bool": _normalize_bool, "date": _normalize_date, "datetime": _normalize_datetime,
    "enumeration": _normalize_enumeration,
}


def validate_properties(schema: Schema, object_type: str, values: dict, owner_ids: set[str],
                        *, creating: bool) -> tuple[dict[str, str | None], list[dict]]:
    """Normalised values plus HubSpot's per-property errors (unknown name, read-only, bad value)."""
    clean: dict[str, str | None] = {}
    errors: list[dict] = []
    for name, raw in values.items():
        prop = schema.get(object_type, name)
        if prop is None:
            errors.append(_invalid(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist'))
            continue
        if prop.read_only:
            errors.append(_invalid(name, "READ_ONLY_VALUE", f'"{name}" is a read only property; its value cannot be set.'))
            continue
        value, error = normalize_value(prop, raw, owner_ids)
        if error is not None:
            errors.append(error)
        else:
            clean[name] = value
    if creating and object_type in ENGAGEMENT_TYPES and clean.get("hs_timestamp") is None and not errors:
        errors.append(_invalid("hs_timestamp", "REQUIRED_PROPERTY", "hs_timestamp is required"))
    if creating and object_type == "tickets" and not errors:
        # "Tickets" guide: a new ticket needs hs_pipeline_stage; hs_pipeline falls back to the default pipeline
        if clean.get("hs_pipeline_stage") is None:
            errors.append(_invalid("hs_pipeline_stage", "REQUIRED_PROPERTY", "hs_pipeline_stage is required"))
        clean.setdefault("hs_pipeline", "0")
    return clean, errors


def check_property_definition(body: dict, schema: Schema, object_type: str) -> str | None:
    """Why a property-create body is invalid (HubSpot's wording, roughly), or None when it is fine."""
    name = body.get("name")
    if not isinstance(name, str) or not PROPERTY_NAME_RE.match(name):
        return (f"Invalid property name {name!r}: names must start with a lowercase letter and contain only "
                "lowercase letters, digits and underscores (at most 100 characters).")
    for key in ("label", "type", "fieldType", "groupName"):
        if not body.get(key):
            return f"Property '{name}' is missing required field '{key}'."
    if body["type"] not in PROPERTY_TYPES:
        return f"Invalid type {body['type']!r}; expected one of {sorted(PROPERTY_TYPES)}."
    if body["fieldType"] not in FIELD_TYPES:
        return f"Invalid fieldType {body['fieldType']!r}; expected one of {sorted(FIELD_TYPES)}."
    if body["groupName"] not in schema.groups[object_type]:
        return f"Property group {body['groupName']!r} does not exist for {object_type}."
    if body["type"] == "enumeration" and body["fieldType"] != "booleancheckbox" and not body.get("options"):
        return f"Enumeration property '{name}' needs at least one option."
    return None


def property_from_body(body: dict, now_iso: str) -> PropertyDef:
    options = body.get("options") or []
    if body["type"] == "bool" and not options:
        options = options_of("true", "false")
    return PropertyDef(
        name=body["name"], type=body["type"], field_type=body["fieldType"], label=body["label"],
        group_name=body["groupName"], description=body.get("description") or "",
        options=[{"label": o.get("label", o.get("value")), "value": o.get("value"),
                  "displayOrder": o.get("displayOrder", i), "hidden": bool(o.get("hidden", False))}
                 for i, o in enumerate(options)],
        display_order=int(body.get("displayOrder", -1)), hidden=bool(body.get("hidden", False)),
        hubspot_defined=False, has_unique_value=bool(body.get("hasUniqueValue", False)),
        form_field=bool(body.get("formField", False)), created_at=now_iso, updated_at=now_iso,
    )
