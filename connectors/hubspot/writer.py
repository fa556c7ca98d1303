"""The HubSpot side of writeback and setup: company property updates, tasks found by and created with our dedupe
key, owners resolved by email, and our custom properties (implements writeback's CrmWriter and SchemaWriter).

Values come in duck-typed (writeback's FieldUpdate / TaskUpsert / FieldSpec); answers go out as
`connectors.writes` values. Batches are ≤ 100 inputs (HubSpot's batch limit).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime
from datetime import time as day_time
from typing import Any

from hubspot.crm.objects import (
    AssociationSpec,
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectBatchInputForCreate,
    PublicAssociationsForObject,
    PublicObjectId,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInput,
    SimplePublicObjectBatchInputForCreate,
)
from hubspot.crm.properties import PropertyCreate, PropertyGroupCreate

from healthsync.config.settings import FieldMap, Settings
from healthsync.connectors.hubspot.client import HubSpotClient, missing_scope
from healthsync.connectors.hubspot.mapping import MODSTAMP, parse_datetime
from healthsync.connectors.pacing import PacerRegistry
from healthsync.connectors.writes import CrmTaskState, FieldSpec, SetupOutcome, WriteResult
from healthsync.errors import FatalError, RateLimitedError, RetryableError

BATCH_LIMIT = 100
SEARCH_IN_VALUES = 100  # values per IN filter
TASK_TO_COMPANY = 192  # HUBSPOT_DEFINED association type id task → company
GROUP_NAME = "healthsync"
GROUP_LABEL = "healthsync"
CREATE_ATTEMPTS = 3
MAX_BODY_CHARS = 65_000
_OBJECT_TYPES = {"account": "companies", "task": "tasks"}
_PROPERTY_TYPES = {  # FieldSpec.type -> (HubSpot type, fieldType)
    "number": ("number", "number"),
    "text": ("string", "text"),
    "long_text": ("string", "textarea"),
    "datetime": ("datetime", "date"),
}
_PRIORITIES = {"low": "LOW", "normal": "MEDIUM", "high": "HIGH", "urgent": "HIGH"}
_DUE_TIME = day_time(12, 0)  # noon UTC shows as the same calendar day in every timezone from UTC−11 to UTC+11


class HubSpotWriter:
    """Writes to one HubSpot portal; `crm`, `max_update_batch` and `max_create_batch` are what writeback reads."""

    crm = "hubspot"
    max_create_batch = BATCH_LIMIT

    def __init__(self, client: HubSpotClient, field_map: FieldMap, *, batch_size: int = BATCH_LIMIT,
                 sleep: Callable[[float], None] = time.sleep):
        if not 1 <= batch_size <= BATCH_LIMIT:
            raise ValueError(f"batch_size must be between 1 and {BATCH_LIMIT}, got {batch_size}")
        self.client = client
        self.field_map = field_map
        self.max_update_batch = batch_size
        self._sleep = sleep
        self._groups_ready: set[str] = set()

    @classmethod
    def from_settings(cls, settings: Settings, pacers: PacerRegistry, *, sleep: Callable[[float], None] = time.sleep,
                      client: HubSpotClient | None = None) -> HubSpotWriter:
        return cls(client or HubSpotClient.from_settings(settings, pacers, sleep=sleep), settings.crm.field_map,
                   batch_size=settings.limits.hubspot.batch_size, sleep=sleep)

    @property
    def task_key(self) -> str:
        return self.field_map.write.task_key

    # ------------------------------------------------------------------------------------------ fields
    def update_accounts(self, updates: Sequence[Any]) -> list[WriteResult]:
        """One companies batch update; per-input results in request order (a 207 fails only the named ids)."""
        if not updates:
            return []
        if len(updates) > self.max_update_batch:
            raise ValueError(f"at most {self.max_update_batch} updates per batch, got {len(updates)}")
        merged: dict[str, dict[str, str]] = {}
        for update in updates:  # HubSpot refuses a batch naming one id twice; the later values win
            merged.setdefault(str(update.account_id), {}).update(
                {name: property_value(value) for name, value in update.fields.items()})
        request = BatchInputSimplePublicObjectBatchInput(
            inputs=[SimplePublicObjectBatchInput(id=i, properties=props) for i, props in merged.items()])
        try:
            answer = self.client.call("updating companies", "objects.batch", "update", "companies",
                                      batch_input_simple_public_object_batch_input=request, expect="results")
        except FatalError as exc:  # the whole batch was refused (400): every record failed, for that reason
            return [WriteResult(str(u.account_id), "failed", error=str(exc)) for u in updates]
        written = {str(getattr(obj, "id", "")) for obj in answer.data.results}
        errors = _errors_by_id(getattr(answer.data, "errors", None) or [], "ids")
        results = []
        for update in updates:
            key = str(update.account_id)
            if key in errors:
                results.append(WriteResult(key, "failed", error=errors[key]))
            elif key in written:
                results.append(WriteResult(key, "ok", crm_id=key))
            else:
                results.append(WriteResult(key, "failed", error="HubSpot did not confirm this update"))
        return results

    # ------------------------------------------------------------------------------------------ tasks
    def find_tasks(self, dedupe_keys: Sequence[str]) -> dict[str, CrmTaskState]:
        """Tasks carrying these dedupe keys (an open one wins over completed duplicates)."""
        found: dict[str, CrmTaskState] = {}
        keys = list(dict.fromkeys(str(k) for k in dedupe_keys))
        for start in range(0, len(keys), SEARCH_IN_VALUES):
            for obj in self._search_tasks(keys[start:start + SEARCH_IN_VALUES]):
                state = self._task_state(obj)
                if state is None:
                    continue
                current = found.get(state.dedupe_key)
                if current is None or (current.completed and not state.completed):
                    found[state.dedupe_key] = state
        return found

    def _search_tasks(self, keys: Sequence[str]) -> Iterable[Any]:
        filters = [{"propertyName": self.task_key, "operator": "IN", "values": list(keys)}]
        after: str | None = None
        while True:
            request = PublicObjectSearchRequest(
                filter_groups=[{"filters": filters}], limit=200, after=after,
                properties=[self.task_key, "hs_task_status", "hs_task_completion_date", MODSTAMP])
            answer = self.client.call("searching tasks by dedupe key", "objects.search", "do_search", "tasks",
                                      public_object_search_request=request, search=True, accept=(400,),
                                      expect=None)
            if answer.status == 400:
                if self.task_key in answer.body:
                    return  # the key property does not exist yet, so no task of ours can
                raise FatalError(f"hubspot: searching tasks by dedupe key was refused: {answer.body[:200]}")
            results = getattr(answer.data, "results", None)
            if results is None:
                raise RetryableError("hubspot: searching tasks by dedupe key: malformed answer")
            yield from results
            nxt = getattr(getattr(getattr(answer.data, "paging", None), "next", None), "after", None)
            if not nxt:
                return
            after = str(nxt)

    def _task_state(self, obj: Any) -> CrmTaskState | None:
        props = getattr(obj, "properties", None) or {}
        key = props.get(self.task_key)
        if not key or not getattr(obj, "id", None):
            return None
        completed = str(props.get("hs_task_status") or "").upper() == "COMPLETED"
        completed_at = None
        if completed:
            completed_at = parse_datetime(props.get("hs_task_completion_date")) or parse_datetime(props.get(MODSTAMP))
        return CrmTaskState(dedupe_key=str(key), crm_task_id=str(obj.id), completed=completed,
                            completed_at=completed_at)

    def create_tasks(self, tasks: Sequence[Any]) -> list[WriteResult]:
        """One tasks batch create, each associated with its company (type 192) in the create itself.

        A create is not idempotent, so a failure that may have landed (5xx, reset) is never blindly retried:
        the keys are looked up first and only the missing tasks are created again. A 429 is retried as is.
        """
        if not tasks:
            return []
        if len(tasks) > self.max_create_batch:
            raise ValueError(f"at most {self.max_create_batch} tasks per batch, got {len(tasks)}")
        by_key = {str(t.dedupe_key): t for t in tasks}
        outcome: dict[str, WriteResult] = {}
        pending = list(by_key)
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            try:
                outcome.update(self._create_once([by_key[k] for k in pending]))
                break
            except RetryableError as exc:
                if attempt == CREATE_ATTEMPTS:
                    raise
                self._sleep(exc.retry_after or 0.5 * attempt)
                if not isinstance(exc, RateLimitedError):  # it may have been created: look before creating again
                    for key, state in self.find_tasks(pending).items():
                        outcome[key] = WriteResult(key, "ok", crm_id=state.crm_task_id)
                pending = [k for k in pending if k not in outcome]
                if not pending:
                    break
        return [outcome.get(str(t.dedupe_key)) or WriteResult(str(t.dedupe_key), "failed",
                                                                error="HubSpot did not confirm this task")
                for t in tasks]

    def _create_once(self, tasks: Sequence[Any]) -> dict[str, WriteResult]:
        request = BatchInputSimplePublicObjectBatchInputForCreate(inputs=[self._task_input(t) for t in tasks])
        try:
            answer = self.client.attempt("creating tasks", "objects.batch", "create", "tasks",
                                         batch_input_simple_public_object_batch_input_for_create=request,
                                         expect="results")
        except FatalError as exc:
            return {str(t.dedupe_key): WriteResult(str(t.dedupe_key), "failed", error=str(exc)) for t in tasks}
        outcome: dict[str, WriteResult] = {}
        for obj in answer.data.results:
            key = getattr(obj, "object_write_trace_id", None) or (getattr(obj, "properties", None) or {}).get(
                self.task_key)
            if key:
                outcome[str(key)] = WriteResult(str(key), "ok", crm_id=str(obj.id))
        order = [str(t.dedupe_key) for t in tasks]
        for error in getattr(answer.data, "errors", None) or []:
            context = getattr(error, "context", None) or {}
            keys = list(context.get("objectWriteTraceId") or [])
            keys += [order[int(i)] for i in context.get("inputIndex") or [] if str(i).isdigit() and int(i) < len(order)]
            for key in keys:
                outcome[str(key)] = WriteResult(str(key), "failed", error=_error_text(error))
        return outcome

    def _task_input(self, task: Any) -> SimplePublicObjectBatchInputForCreate:
        due = task.due_date if isinstance(task.due_date, date) else date.fromisoformat(str(task.due_date))
        properties = {
            "hs_task_subject": str(task.subject)[:255],
            "hs_task_body": str(task.body)[:MAX_BODY_CHARS],
            "hs_task_status": "NOT_STARTED",
            "hs_task_priority": _PRIORITIES.get(str(task.priority).lower(), "MEDIUM"),
            "hs_task_type": "TODO",
            "hs_timestamp": datetime.combine(due, _DUE_TIME, tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            self.task_key: str(task.dedupe_key),
        }
        if task.owner_id:
            properties["hubspot_owner_id"] = str(task.owner_id)
        company = PublicAssociationsForObject(
            to=PublicObjectId(id=str(task.account_id)),
            types=[AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=TASK_TO_COMPANY)])
        return SimplePublicObjectBatchInputForCreate(properties=properties, associations=[company],
                                                     object_write_trace_id=str(task.dedupe_key))

    # ------------------------------------------------------------------------------------------ users
    def resolve_users(self, emails: Sequence[str]) -> dict[str, str]:
        """Active owners by lower-cased email → owner id (one listing serves every email asked for)."""
        wanted = {str(e).strip().lower() for e in emails if e}
        if not wanted:
            return {}
        resolved: dict[str, str] = {}
        after: str | None = None
        while True:
            answer = self.client.call("listing owners", "owners", "get_page", limit=500, after=after,
                                      archived=False, expect="results")
            for owner in answer.data.results:
                email = str(getattr(owner, "email", "") or "").lower()
                if email in wanted and getattr(owner, "id", None):
                    resolved[email] = str(owner.id)
            nxt = getattr(getattr(getattr(answer.data, "paging", None), "next", None), "after", None)
            if not nxt or wanted <= resolved.keys():
                return resolved
            after = str(nxt)

    # ------------------------------------------------------------------------------------------ setup
    def existing_fields(self, object: str) -> set[str]:  # noqa: A002 - the SchemaWriter protocol's name
        object_type = _object_type(object)
        answer = self.client.call(f"reading {object_type} properties", "properties.core", "get_all", object_type,
                                  expect="results")
        return {str(p.name) for p in answer.data.results if getattr(p, "name", None)}

    def create_field(self, spec: FieldSpec) -> SetupOutcome:
        """Create the property (in our `healthsync` group, created once); 409 → existed, 403 → the missing scope."""
        object_type = _object_type(spec.object)
        problem = self._ensure_group(object_type)
        if problem is not None:
            return SetupOutcome(spec, "failed", problem)
        kind, field_type = _PROPERTY_TYPES[spec.type]
        body = PropertyCreate(name=spec.name, label=spec.label, type=kind, field_type=field_type,
                              group_name=GROUP_NAME, description=spec.description or "", form_field=False)
        answer = self.client.call(f"creating the {object_type} property {spec.name}", "properties.core", "create",
                                  object_type, property_create=body, accept=(400, 403, 409))
        if answer.status == 409:
            return SetupOutcome(spec, "existed")
        if answer.status in (400, 403):
            return SetupOutcome(spec, "failed", _setup_problem(answer.status, answer.body, object_type))
        return SetupOutcome(spec, "created")

    def _ensure_group(self, object_type: str) -> str | None:
        if object_type in self._groups_ready:
            return None
        answer = self.client.call(f"creating the {object_type} property group {GROUP_NAME}", "properties.groups",
                                  "create", object_type,
                                  property_group_create=PropertyGroupCreate(name=GROUP_NAME, label=GROUP_LABEL),
                                  accept=(400, 403, 409))
        if answer.status in (400, 403):
            return _setup_problem(answer.status, answer.body, object_type)
        self._groups_ready.add(object_type)
        return None


# ---------------------------------------------------------------------------------------------- helpers


def property_value(value: Any) -> str:
    """What HubSpot stores for a value: text; booleans as true/false; None clears the property."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return str(value)


def _object_type(object_name: str) -> str:
    try:
        return _OBJECT_TYPES[object_name]
    except KeyError:
        raise ValueError(f"HubSpot properties are set up for 'account' or 'task', not {object_name!r}") from None


def _errors_by_id(errors: Sequence[Any], context_key: str) -> dict[str, str]:
    by_id: dict[str, str] = {}
    for error in errors:
        context = getattr(error, "context", None) or {}
        for record_id in context.get(context_key) or []:
            by_id[str(record_id)] = _error_text(error)
    return by_id


def _error_text(error: Any) -> str:
    category = getattr(error, "category", None) or "error"
    message = str(getattr(error, "message", None) or "")
    return f"{category}: {message}"[:500]


def _setup_problem(status: int, body: str, object_type: str) -> str:
    if status == 403:
        scope = missing_scope(body) or f"crm.schemas.{object_type}.write"
        return f"the private app needs the {scope} scope (HubSpot → Settings → Integrations → Private apps → Scopes)"
    try:
        message = json.loads(body).get("message")
    except (ValueError, AttributeError):
        message = None
    return f"HubSpot refused the definition: {message or 'HTTP 400'}"[:300]

