"""The Salesforce side of writeback: account fields through sObject Collections, tasks found and created by
their dedupe key, users resolved by email, and `setup`'s custom fields through the Tooling API.

Implements writeback's CrmWriter and SchemaWriter structurally (connectors may not import writeback): plan
values arrive duck-typed with the attributes of `writeback.base.FieldUpdate` / `TaskUpsert`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from healthsync.config.settings import Settings, WriteFields
from healthsync.connectors.pacing import PacerRegistry
from healthsync.connectors.salesforce import soql
from healthsync.connectors.salesforce.client import SalesforceConnection, error_code
from healthsync.connectors.salesforce.mapping import parse_datetime
from healthsync.connectors.writes import CrmTaskState, FieldSpec, SetupOutcome, WriteResult
from healthsync.errors import AuthError, ConfigError, FatalError, HealthsyncError, RetryableError

MAX_COLLECTION = 200
SUBJECT_CHARS = 255
DESCRIPTION_CHARS = 32000
ESCALATION_PREFIX = "[Escalation] "
PERMISSION_DETAIL = "the integration user needs the 'Customize Application' permission"
_PRIORITIES = {"urgent": "High", "high": "High", "normal": "Normal", "low": "Low"}
_SCHEMA_OBJECTS = {"account": "Account", "task": "Task"}


class _FieldUpdate(Protocol):
    account_id: str
    fields: Mapping[str, Any]


class _TaskUpsert(Protocol):
    dedupe_key: str
    account_id: str
    kind: str
    subject: str
    body: str
    owner_id: str | None
    due_date: Any
    priority: str


class SalesforceWriter:
    """CrmWriter + SchemaWriter for Salesforce; every call paced and retried through the shared connection."""

    crm = "salesforce"
    max_update_batch = MAX_COLLECTION
    max_create_batch = MAX_COLLECTION

    def __init__(self, connection: SalesforceConnection, write_fields: WriteFields):
        self.conn = connection
        self.task_key_field = write_fields.task_key

    @classmethod
    def from_settings(cls, settings: Settings, pacers: PacerRegistry, *, sleep: Callable[[float], None] = time.sleep,
                      connection: SalesforceConnection | None = None) -> SalesforceWriter:
        conn = connection or SalesforceConnection.from_settings(settings, pacers, sleep=sleep)
        return cls(conn, settings.crm.field_map.write)

    # ------------------------------------------------------------------------------------------ accounts
    def update_accounts(self, updates: Sequence[_FieldUpdate]) -> list[WriteResult]:
        """One Collections PATCH (allOrNone false): per-record results in request order."""
        _check_batch(len(updates), self.max_update_batch, "update_accounts")
        if not updates:
            return []
        records = [{"attributes": {"type": "Account"}, "Id": u.account_id, **dict(u.fields)} for u in updates]
        answer = self.conn.call("updating accounts", lambda sf: sf.restful(
            "composite/sobjects", method="PATCH", json={"allOrNone": False, "records": records}))
        return _results([u.account_id for u in updates], answer)

    # ------------------------------------------------------------------------------------------ tasks
    def find_tasks(self, dedupe_keys: Sequence[str]) -> Mapping[str, CrmTaskState]:
        """Tasks carrying these dedupe keys (open or closed, not deleted); one SOQL per ~7k-character URL."""
        keys = list(dict.fromkeys(k for k in dedupe_keys if k))
        if not keys:
            return {}
        return self._find(keys, self.conn.call)

    def _find(self, keys: Sequence[str], run: Callable[..., Any]) -> dict[str, CrmTaskState]:
        key_field = self._key_field()
        completed_field = "CompletedDateTime" if "completeddatetime" in self.conn.describe("Task") else None
        columns = ["Id", key_field, "IsClosed", "Status", "LastModifiedDate", *([completed_field] if completed_field else [])]
        found: dict[str, CrmTaskState] = {}
        for query in soql.in_chunks(lambda values: soql.select("Task", columns, [f"{key_field} IN ({values})"],
                                                                order_by_cursor=False), keys):
            rows = run("looking up tasks by dedupe key", lambda sf, q=query: sf.query_all(q)["records"])
            for row in rows:
                state = _task_state(row, key_field, completed_field)
                if state is not None and (state.dedupe_key not in found or not state.completed):
                    found[state.dedupe_key] = state  # with duplicates, an open task is the one that matters
        return found

    def create_tasks(self, tasks: Sequence[_TaskUpsert]) -> list[WriteResult]:
        """One Collections POST; before any retry the keys are looked up again, so a POST that landed
        before its answer was lost is adopted rather than created twice."""
        _check_batch(len(tasks), self.max_create_batch, "create_tasks")
        if not tasks:
            return []
        key_field = self._key_field()
        landed: dict[str, WriteResult] = {}
        attempts = 0

        def attempt() -> list[WriteResult]:
            nonlocal attempts
            attempts += 1
            pending = [t for t in tasks if t.dedupe_key not in landed]
            if attempts > 1 and pending:
                for key, state in self._find([t.dedupe_key for t in pending], self.conn.once).items():
                    landed[key] = WriteResult(key, "ok", crm_id=state.crm_task_id)
                pending = [t for t in pending if t.dedupe_key not in landed]
            if pending:
                records = [self._task_record(t, key_field) for t in pending]
                answer = self.conn.once("creating tasks", lambda sf: sf.restful(
                    "composite/sobjects", method="POST", json={"allOrNone": False, "records": records}))
                landed.update({r.key: r for r in _results([t.dedupe_key for t in pending], answer)})
            return [landed[t.dedupe_key] for t in tasks]

        return self.conn.retry(attempt)

    def _task_record(self, task: _TaskUpsert, key_field: str) -> dict[str, Any]:
        escalation = task.kind == "escalation"
        subject = (ESCALATION_PREFIX if escalation else "") + task.subject
        record: dict[str, Any] = {
            "attributes": {"type": "Task"},
            "WhatId": task.account_id,
            "Subject": subject[:SUBJECT_CHARS],
            "Description": task.body[:DESCRIPTION_CHARS],
            "ActivityDate": task.due_date.isoformat(),
            "Priority": "High" if escalation else _PRIORITIES.get(task.priority, "Normal"),
            "Status": "Not Started",
            "TaskSubtype": "Task",
            key_field: task.dedupe_key,
        }
        if task.owner_id:
            record["OwnerId"] = task.owner_id
        return record

    def _key_field(self) -> str:
        found = self.conn.describe("Task").get(self.task_key_field.lower())
        if found is None:  # the cached describe may predate `setup` (run from another process): look again
            self.conn.forget_schema("Task")
            found = self.conn.describe("Task").get(self.task_key_field.lower())
        if found is None:
            raise ConfigError(
                f"the Task field {self.task_key_field} (crm.field_map.write.task_key) does not exist: run "
                "`healthsync setup` to create it; without it task creation cannot be made crash-safe")
        return str(found["name"])

    # ------------------------------------------------------------------------------------------ users
    def resolve_users(self, emails: Sequence[str]) -> Mapping[str, str]:
        """Active users by lower-cased email → user id (SOQL string comparison is case-insensitive)."""
        wanted = list(dict.fromkeys(e.strip().lower() for e in emails if e and e.strip()))
        resolved: dict[str, str] = {}
        for query in soql.in_chunks(lambda values: soql.select(
                "User", ["Id", "Email"], [f"Email IN ({values})", "IsActive = true"], order_by_cursor=False), wanted):
            rows = self.conn.call("resolving users by email", lambda sf, q=query: sf.query_all(q)["records"])
            for row in rows:
                email = str(row.get("Email") or "").lower()
                if email in wanted and email not in resolved:
                    resolved[email] = str(row["Id"])
        return resolved

    # ------------------------------------------------------------------------------------------ schema
    def existing_fields(self, object: str) -> set[str]:  # noqa: A002 - the SchemaWriter protocol's name
        sobject = _SCHEMA_OBJECTS.get(object)
        if sobject is None:
            raise ValueError(f"existing_fields: object must be 'account' or 'task', got {object!r}")
        self.conn.forget_schema(sobject)  # setup must see the org as it is now
        return {str(f["name"]) for f in self.conn.describe(sobject).values()}

    def create_field(self, spec: FieldSpec) -> SetupOutcome:
        """Create one custom field; activity fields go on Activity (shared by Task and Event) where the org
        has it, else on Task. A duplicate is `existed`; a missing permission is `failed` and says which."""
        targets = ["Activity", "Task"] if spec.object == "task" else ["Account"]
        for sobject in targets:
            body = {"FullName": f"{sobject}.{spec.name}", "Metadata": _field_metadata(spec)}
            try:
                self.conn.call(f"creating the custom field {sobject}.{spec.name}", lambda sf, b=body: sf.restful(
                    "tooling/sobjects/CustomField/", method="POST", json=b))
            except AuthError as exc:
                if error_code(exc) in (None, "INVALID_SESSION_ID"):
                    raise  # a login or session failure, not a missing permission
                return SetupOutcome(spec, "failed", f"{PERMISSION_DETAIL} ({exc})")
            except FatalError as exc:
                code = error_code(exc)
                if code == "DUPLICATE_DEVELOPER_NAME":
                    return SetupOutcome(spec, "existed", f"{sobject}.{spec.name} already exists")
                if code == "INVALID_TYPE" and sobject != targets[-1]:
                    continue  # this org (or the sandbox) has no Activity entity: put the field on Task
                return SetupOutcome(spec, "failed", str(exc))
            self.conn.forget_schema(_SCHEMA_OBJECTS[spec.object])
            return SetupOutcome(spec, "created", f"{sobject}.{spec.name}")
        return SetupOutcome(spec, "failed", f"no object accepted the field {spec.name}")


# ---------------------------------------------------------------------------------------------- helpers


def _check_batch(size: int, limit: int, what: str) -> None:
    if size > limit:
        raise ValueError(f"{what}: {size} records in one call; Salesforce Collections take at most {limit} "
                         "(the caller batches by max_update_batch / max_create_batch)")


def _results(keys: Sequence[str], answer: Any) -> list[WriteResult]:
    """Collections answers in request order; a missing or odd answer is a failure, never a silent success."""
    rows = answer if isinstance(answer, list) else []
    if answer is not None and not isinstance(answer, list):
        raise RetryableError("salesforce: a Collections call answered with something other than a result list")
    results = []
    for index, key in enumerate(keys):
        row = rows[index] if index < len(rows) and isinstance(rows[index], Mapping) else None
        if row is None:
            results.append(WriteResult(key, "failed", error="Salesforce gave no result for this record"))
        elif row.get("success") is True:
            results.append(WriteResult(key, "ok", crm_id=str(row.get("id") or "") or None))
        else:
            results.append(WriteResult(key, "failed", crm_id=row.get("id"), error=_record_error(row.get("errors"))))
    return results


def _record_error(errors: Any) -> str:
    parts = []
    for error in errors if isinstance(errors, list) else []:
        if isinstance(error, Mapping):
            fields = error.get("fields") or []
            where = f" ({', '.join(map(str, fields))})" if fields else ""
            parts.append(f"{error.get('statusCode', 'ERROR')}: {error.get('message', '')}{where}".strip())
    return "; ".join(parts) or "Salesforce rejected the record without saying why"


def _task_state(row: Mapping[str, Any], key_field: str, completed_field: str | None) -> CrmTaskState | None:
    key = row.get(key_field)
    if not isinstance(key, str) or not key:
        return None
    completed = row.get("IsClosed") is True or row.get("Status") == "Completed"
    completed_at: datetime | None = None
    if completed:
        try:
            completed_at = parse_datetime((row.get(completed_field) if completed_field else None)
                                          or row.get("LastModifiedDate"))
        except HealthsyncError:
            completed_at = None
    return CrmTaskState(dedupe_key=key, crm_task_id=str(row["Id"]), completed=completed, completed_at=completed_at)


def _field_metadata(spec: FieldSpec) -> dict[str, Any]:
    metadata: dict[str, Any] = {"label": spec.label[:40], "description": spec.description[:1000]}
    if spec.type == "number":
        scale = 2 if any(word in spec.name.lower() for word in ("trend", "ratio", "pct", "percent")) else 0
        metadata.update(type="Number", precision=18, scale=scale)
    elif spec.type == "long_text":
        metadata.update(type="LongTextArea", length=32768, visibleLines=5)
    elif spec.type == "datetime":
        metadata.update(type="DateTime")
    else:
        metadata.update(type="Text", length=255)
        if spec.object == "task":  # the dedupe key: unique, and indexed for the lookups before every create
            metadata.update(externalId=True, unique=True, caseSensitive=False)
    return metadata
