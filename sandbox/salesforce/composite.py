"""sObject Collections (`/composite/sobjects`): up to 200 creates, updates or deletes per call with
per-record results in request order, and the all-or-none rollback."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from healthsync.sandbox.salesforce import ids
from healthsync.sandbox.salesforce.errors import SfError
from healthsync.sandbox.salesforce.store import OrgStore, render_value

MAX_RECORDS = 200
_ROLLED_BACK = SfError(400, "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                       "Record rolled back because not all records were valid and the request was using "
                       "AllOrNone header")


def parse_body(body: Any) -> tuple[list[Any], bool]:
    if not isinstance(body, dict) or not isinstance(body.get("records"), list):
        raise SfError(400, "JSON_PARSER_ERROR",
                      "The request body must be a JSON object with a 'records' list and optional 'allOrNone'")
    records = body["records"]
    _check_count(len(records))
    return records, bool(body.get("allOrNone", False))


def _check_count(count: int) -> None:
    if count > MAX_RECORDS:
        raise SfError(400, "EXCEEDED_ID_LIMIT",
                      f"record limit reached. cannot submit more than {MAX_RECORDS} records into this call")


def write(store: OrgStore, records: list[Any], all_or_none: bool, now: datetime, creating: bool) -> list[dict]:
    """Create (POST) or update (PATCH) each record; returns the per-record results."""
    operation = _create if creating else _update
    return _run(store, [lambda r=r: operation(store, r, now) for r in records], all_or_none,
                ids_hint=[None if creating else (r.get("Id") if isinstance(r, dict) else None) for r in records],
                sobjects=_touched(store, records))  # inserts and updates never cascade


def delete(store: OrgStore, record_ids: list[str], all_or_none: bool, now: datetime) -> list[dict]:
    _check_count(len(record_ids))
    actions = [lambda i=i: _delete(store, i, now) for i in record_ids]
    return _run(store, actions, all_or_none, ids_hint=list(record_ids), sobjects=list(store.tables))


def read(store: OrgStore, sobject: str, record_ids: list[str], field_names: list[str], version: str) -> list[Any]:
    schema = store.schema(sobject)
    _check_count(len(record_ids))
    definitions = [schema.require_field(name) for name in field_names]
    out: list[Any] = []
    for record_id in record_ids:
        found = store.find(record_id) if ids.is_well_formed(record_id) else None
        if found is None or found[0] != schema.name or found[1]["IsDeleted"]:
            out.append(None)
            continue
        record = found[1]
        row = {"attributes": {"type": schema.name, "url": f"/services/data/v{version}/sobjects/{schema.name}/{record['Id']}"}}
        row.update({d.name: render_value(d, record.get(d.name)) for d in definitions})
        out.append(row)
    return out


def _touched(store: OrgStore, records: list[Any]) -> list[str]:
    """The tables a rollback must restore: those of the records' types."""
    names = set()
    for record in records:
        kind = (record.get("attributes") or {}).get("type") if isinstance(record, dict) else None
        if isinstance(kind, str) and store.has(kind):
            names.add(store.schema(kind).name)
    return sorted(names)


def _run(store: OrgStore, actions: list[Callable[[], str]], all_or_none: bool, ids_hint: list[Any],
         sobjects: list[str]) -> list[dict]:
    snapshot = {name: dict(store.tables[name]) for name in sobjects} if all_or_none else {}
    results: list[dict] = []
    failed = False
    for action, hint in zip(actions, ids_hint, strict=True):
        try:
            record_id = action()
            results.append({"id": record_id, "success": True, "errors": []})
        except SfError as error:
            failed = True
            result: dict[str, Any] = {"success": False, "errors": [error.collection_error()]}
            if hint:
                result = {"id": hint, **result}
            results.append(result)
    if all_or_none and failed:
        for name, table in snapshot.items():
            store.tables[name] = table
        results = [{"id": r["id"], "success": False, "errors": [_ROLLED_BACK.collection_error()]}
                   if r["success"] else r for r in results]
    return results


def _sobject_of(record: Any) -> str:
    if not isinstance(record, dict):
        raise SfError(400, "JSON_PARSER_ERROR", "Each record must be a JSON object")
    attributes = record.get("attributes")
    if not isinstance(attributes, dict) or not attributes.get("type"):
        raise SfError(400, "INVALID_TYPE", "Must specify a type in attributes: {\"attributes\": {\"type\": ...}}")
    return str(attributes["type"])


def _create(store: OrgStore, record: Any, now: datetime) -> str:
    sobject = _sobject_of(record)
    if "Id" in record:
        raise SfError(400, "INVALID_FIELD", "cannot specify Id in an insert call", ["Id"])
    return store.insert(sobject, record, now)


def _update(store: OrgStore, record: Any, now: datetime) -> str:
    sobject = _sobject_of(record)
    record_id = record.get("Id")
    if not record_id:
        raise SfError(400, "MISSING_ARGUMENT", "Id not specified in an update call", ["Id"])
    store.update(sobject, str(record_id), record, now)
    return store.get(sobject, str(record_id))["Id"]


def _delete(store: OrgStore, record_id: str, now: datetime) -> str:
    sobject = ids.sobject_of(record_id)
    if sobject is None or sobject not in store.tables:
        raise SfError(400, "MALFORMED_ID", f"malformed id {record_id}")
    store.delete(sobject, record_id, now)
    return ids.to18(record_id)
