"""The org's records in memory: validated inserts, updates and soft deletes with the real error codes,
derived fields (Name, IsClosed, AccountId on activities), and JSON rendering of field values.

Records are replaced, never mutated, on write (copy-on-write), so a query cursor that holds references to
the records it matched keeps a consistent snapshot while later pages are fetched.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from healthsync.sandbox.salesforce import ids
from healthsync.sandbox.salesforce.errors import SfError
from healthsync.sandbox.salesforce.schema import NUMBER_TYPES, FieldDef, SObjectSchema

Record = dict[str, Any]
DELETED_AT = "_deleted_at"  # hidden bookkeeping key: when the record went to the recycle bin
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CHILDREN = {  # cascade on delete, as the real org does for these standard relationships
    "Account": (("Contact", "AccountId"), ("Opportunity", "AccountId"), ("Task", "AccountId"), ("Event", "AccountId")),
    "Contact": (("Task", "WhoId"), ("Event", "WhoId")),
    "Opportunity": (("Task", "WhatId"), ("Event", "WhatId")),
}


class OrgStore:
    """Tables of records keyed by the 15-character id, with the schema that governs them."""

    def __init__(self, schemas: dict[str, SObjectSchema], minter: ids.IdMinter):
        self.schemas = schemas
        self.minter = minter
        self.tables: dict[str, dict[str, Record]] = {name: {} for name in schemas}
        self.acting_user_id: str | None = None  # CreatedById / default OwnerId of API writes

    # ---------------------------------------------------------------------------------------- lookups
    def schema(self, sobject: str) -> SObjectSchema:
        for name, schema in self.schemas.items():
            if name.lower() == sobject.lower():
                return schema
        raise SfError(404, "NOT_FOUND", "The requested resource does not exist")

    def has(self, sobject: str) -> bool:
        return any(name.lower() == sobject.lower() for name in self.schemas)

    def find(self, record_id: str) -> tuple[str, Record] | None:
        """Any record by id, deleted or not, with its sObject name."""
        sobject = ids.sobject_of(record_id)
        if sobject is None or sobject not in self.tables:
            return None
        record = self.tables[sobject].get(ids.key15(record_id))
        return (sobject, record) if record is not None else None

    def get(self, sobject: str, record_id: str) -> Record:
        """A live record or the real 404s: NOT_FOUND, or ENTITY_IS_DELETED for one in the recycle bin."""
        schema = self.schema(sobject)
        record = self.tables[schema.name].get(ids.key15(record_id)) if ids.is_well_formed(record_id) else None
        if record is None:
            raise SfError(404, "NOT_FOUND", "The requested resource does not exist")
        if record["IsDeleted"]:
            raise SfError(404, "ENTITY_IS_DELETED", "entity is deleted")
        return record

    def rows(self, sobject: str, include_deleted: bool = False) -> Iterator[Record]:
        for record in self.tables[self.schema(sobject).name].values():
            if include_deleted or not record["IsDeleted"]:
                yield record

    # ---------------------------------------------------------------------------------------- writes
    def insert(self, sobject: str, values: dict[str, Any], now: datetime, *, system: bool = False) -> str:
        schema = self.schema(sobject)
        clean = self._coerce(schema, values, creating=True, system=system)
        record: Record = {definition.name: definition.default for definition in schema.fields.values()}
        record_id = values.get("Id") if system and values.get("Id") else self.minter.mint(
            schema.key_prefix, self.tables[schema.name])
        record.update(clean)
        actor = self.acting_user_id
        record.update(Id=ids.to18(record_id), IsDeleted=False)
        for key in ("CreatedById", "LastModifiedById", "OwnerId"):
            if key in record and record[key] is None:
                record[key] = actor
        for key in ("CreatedDate", "LastModifiedDate", "SystemModstamp"):
            record[key] = clean.get(key) or now
        missing = [d.name for d in schema.fields.values() if d.required and record.get(d.name) in (None, "")]
        if missing:
            raise SfError(400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]",
                          missing)
        self._derive(schema.name, record)
        self._check_references(schema, record, clean)
        self.tables[schema.name][ids.key15(record["Id"])] = record
        return record["Id"]

    def update(self, sobject: str, record_id: str, values: dict[str, Any], now: datetime, *,
               system: bool = False) -> None:
        schema = self.schema(sobject)
        current = self._writable(schema, record_id)
        clean = self._coerce(schema, {k: v for k, v in values.items() if k.lower() != "id"}, creating=False,
                             system=system)
        record = {**current, **clean}
        blank = [d.name for d in schema.fields.values()
                 if d.name in clean and not d.nillable and record.get(d.name) in (None, "")]
        if blank:
            raise SfError(400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(blank)}]",
                          blank)
        if "LastModifiedById" in record:
            record["LastModifiedById"] = self.acting_user_id or record["LastModifiedById"]
        record["LastModifiedDate"] = clean.get("LastModifiedDate") or now
        record["SystemModstamp"] = clean.get("SystemModstamp") or now
        self._derive(schema.name, record)
        self._check_references(schema, record, clean)
        self.tables[schema.name][ids.key15(record["Id"])] = record

    def delete(self, sobject: str, record_id: str, now: datetime) -> None:
        schema = self.schema(sobject)
        current = self._writable(schema, record_id)
        self.tables[schema.name][ids.key15(current["Id"])] = {
            **current, "IsDeleted": True, "SystemModstamp": now, "LastModifiedDate": now, DELETED_AT: now}
        for child, via in _CHILDREN.get(schema.name, ()):
            for row in list(self.rows(child)):
                if row.get(via) and ids.key15(row[via]) == ids.key15(current["Id"]):
                    self.delete(child, row["Id"], now)

    def purge(self, older_than: datetime) -> None:
        """Empty the recycle bin of records deleted before `older_than` (the real org keeps them 15 days)."""
        for table in self.tables.values():
            for key in [k for k, r in table.items() if r.get(DELETED_AT) and r[DELETED_AT] < older_than]:
                del table[key]

    def _writable(self, schema: SObjectSchema, record_id: str) -> Record:
        if not ids.is_well_formed(record_id) or ids.sobject_of(record_id) != schema.name:
            raise SfError(400, "MALFORMED_ID", f"{schema.label} ID: id value of incorrect type: {record_id}",
                          ["Id"])
        return self.get(schema.name, record_id)

    # ---------------------------------------------------------------------------------------- validation
    def _coerce(self, schema: SObjectSchema, values: dict[str, Any], *, creating: bool,
                system: bool) -> dict[str, Any]:
        if not isinstance(values, dict):
            raise SfError(400, "JSON_PARSER_ERROR", "Cannot deserialize instance of sObject from a non-object")
        clean: dict[str, Any] = {}
        readonly: list[str] = []
        for key, raw in values.items():
            if key == "attributes":
                continue
            definition = schema.field(key)
            if definition is None:
                raise SfError(400, "INVALID_FIELD", f"No such column '{key}' on sobject of type {schema.name}")
            writable = definition.createable if creating else definition.updateable
            if not writable and not system:
                readonly.append(definition.name)
                continue
            clean[definition.name] = coerce_value(definition, raw)
        if readonly:
            raise SfError(400, "INVALID_FIELD_FOR_INSERT_UPDATE",
                          f"Unable to create/update fields: {', '.join(readonly)}. Please check the security "
                          "settings of this field and verify that it is read/write for your profile or "
                          "permission set.", readonly)
        return clean

    def _check_references(self, schema: SObjectSchema, record: Record, changed: dict[str, Any]) -> None:
        for name, value in changed.items():
            definition = schema.fields[name.lower()]
            if definition.type != "reference" or value is None:
                continue
            found = self.find(value)
            target_type = ids.sobject_of(value)
            if target_type not in definition.reference_to and target_type is not None:
                raise SfError(400, "FIELD_INTEGRITY_EXCEPTION",
                              f"{definition.label}: id value of incorrect type: {value}", [definition.name])
            if found is None:
                raise SfError(400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id",
                              [definition.name])
            if found[1]["IsDeleted"]:
                raise SfError(400, "ENTITY_IS_DELETED", "entity is deleted", [definition.name])
            if found[0] == "User" and not found[1].get("IsActive", True) and definition.name == "OwnerId":
                raise SfError(400, "INACTIVE_OWNER_OR_USER",
                              f"operation performed with inactive user [{value}] as owner of "
                              f"{schema.name.lower()}", [definition.name])

    def _derive(self, sobject: str, record: Record) -> None:
        if sobject in {"Contact", "User"}:
            record["Name"] = " ".join(p for p in (record.get("FirstName"), record.get("LastName")) if p)
        elif sobject == "Opportunity":
            stage = record.get("StageName") or ""
            record["IsClosed"] = stage.startswith("Closed")
            record["IsWon"] = stage == "Closed Won"
        elif sobject == "Task":
            record["IsClosed"] = record.get("Status") in {"Completed", "Deferred"}
        elif sobject == "Case":
            self._derive_case(record)
        if sobject == "Event":
            _derive_event_times(record)
        if sobject in {"Task", "Event"}:
            record["AccountId"] = self._activity_account(record)

    def _derive_case(self, record: Record) -> None:
        """CaseNumber is an auto-number; IsClosed follows the Closed status, which stamps ClosedDate."""
        if not record.get("CaseNumber"):
            record["CaseNumber"] = f"{1000 + len(self.tables['Case']) + 1:08d}"
        record["IsClosed"] = record.get("Status") == "Closed"
        if record["IsClosed"] and record.get("ClosedDate") is None:
            record["ClosedDate"] = record.get("LastModifiedDate")
        elif not record["IsClosed"]:
            record["ClosedDate"] = None

    def _activity_account(self, record: Record) -> str | None:
        for key in ("WhatId", "WhoId"):
            found = self.find(record[key]) if record.get(key) else None
            if found and found[0] == "Account":
                return found[1]["Id"]
            if found and found[0] in {"Opportunity", "Contact", "Case"} and found[1].get("AccountId"):
                return found[1]["AccountId"]
        return None


def _derive_event_times(record: Record) -> None:
    start = record.get("StartDateTime") or record.get("ActivityDateTime")
    if start is None:
        raise SfError(400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [StartDateTime]",
                      ["StartDateTime"])
    end, duration = record.get("EndDateTime"), record.get("DurationInMinutes")
    if end is None and duration is None:
        raise SfError(400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [DurationInMinutes]",
                      ["DurationInMinutes"])
    if end is None:
        end = start + timedelta(minutes=int(duration))
    if end < start:
        raise SfError(400, "FIELD_INTEGRITY_EXCEPTION", "End Date Time: End time can't be before start time",
                      ["EndDateTime"])
    record.update(StartDateTime=start, ActivityDateTime=start, EndDateTime=end, ActivityDate=start.date(),
                  DurationInMinutes=int((end - start).total_seconds() // 60))


# ------------------------------------------------------------------------------------------------ values


def coerce_value(definition: FieldDef, raw: Any) -> Any:
    """One JSON value written to a field, checked and converted the way the real API does."""
    if raw is None:
        return False if definition.type == "boolean" else None
    kind = definition.type
    if kind == "boolean":
        if isinstance(raw, bool):
            return raw
        raise _parse_error("boolean", raw)
    if kind in NUMBER_TYPES:
        return _number(definition, raw)
    if kind == "date":
        return _date(raw)
    if kind == "datetime":
        return parse_datetime_value(raw)
    if kind in {"id", "reference"}:
        if not ids.is_well_formed(raw):
            raise SfError(400, "MALFORMED_ID", f"{definition.label}: id value of incorrect type: {raw}",
                          [definition.name])
        return ids.to18(raw)
    return _text(definition, raw)


def _text(definition: FieldDef, raw: Any) -> str:
    if isinstance(raw, (dict, list)):
        raise _parse_error("string", raw)
    value = raw if isinstance(raw, str) else (str(raw).lower() if isinstance(raw, bool) else str(raw))
    if definition.length and len(value) > definition.length:
        raise SfError(400, "STRING_TOO_LONG",
                      f"{definition.label}: data value too large: {value[:40]} (max length={definition.length})",
                      [definition.name])
    if definition.type == "picklist" and definition.restricted and value and value not in definition.picklist:
        raise SfError(400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                      f"{definition.label}: bad value for restricted picklist field: {value}", [definition.name])
    if definition.type == "email" and value and not _EMAIL.match(value):
        raise SfError(400, "INVALID_EMAIL_ADDRESS", f"{definition.label}: invalid email address: {value}",
                      [definition.name])
    return value


def _number(definition: FieldDef, raw: Any) -> float | int:
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        raise _parse_error("double", raw)
    try:
        number = Decimal(str(raw))
    except InvalidOperation:
        raise _parse_error("double", raw) from None
    if not number.is_finite():
        raise _parse_error("double", raw)
    if definition.type == "int":
        return int(number)
    integer_digits = definition.precision - definition.scale
    if integer_digits and abs(number) >= Decimal(10) ** integer_digits:
        raise SfError(400, "NUMBER_OUTSIDE_VALID_RANGE",
                      f"{definition.label}: value outside of valid range on numeric field: {raw}",
                      [definition.name])
    return float(round(number, definition.scale))


def _date(raw: Any) -> date:
    if isinstance(raw, str) and len(raw) == 10:
        try:
            return date.fromisoformat(raw)
        except ValueError:
            pass
    raise _parse_error("date", raw)


def parse_datetime_value(raw: Any) -> datetime:
    """Accepts what the real API accepts: ISO 8601 with Z, ±hh:mm or ±hhmm offsets, optional millis."""
    if isinstance(raw, str):
        text = raw.strip()
        if re.fullmatch(r".*[+-]\d{4}", text):
            text = text[:-2] + ":" + text[-2:]
        text = text.replace("Z", "+00:00")
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            value = None
        if value is not None:
            if value.tzinfo is None:
                value = value.replace(tzinfo=UTC)
            return value.astimezone(UTC).replace(microsecond=0)
    raise _parse_error("datetime", raw)


def _parse_error(kind: str, raw: Any) -> SfError:
    token = "VALUE_STRING" if isinstance(raw, str) else ("VALUE_NUMBER" if isinstance(raw, (int, float))
                                                         else "START_OBJECT")
    return SfError(400, "JSON_PARSER_ERROR",
                   f"Cannot deserialize instance of {kind} from {token} value {raw} or request may be missing "
                   "a required field")


def render_value(definition: FieldDef | None, value: Any) -> Any:
    """A stored value as the REST API prints it."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    if definition is not None and definition.type in {"double", "currency", "percent"}:
        return float(value)
    return value


def format_datetime(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")

