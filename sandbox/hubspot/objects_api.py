"""The CRM v3 object endpoints: list, get, create, update, archive, search and the batch family."""

from __future__ import annotations

import bisect
import json
from typing import Any

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from healthsync.sandbox.core import json_response, read_json
from healthsync.sandbox.hubspot import errors
from healthsync.sandbox.hubspot.errors import BadRequest, UnknownObjectType, answers_bad_input
from healthsync.sandbox.hubspot.schema import (
    DEFAULT_PROPERTIES,
    SYSTEM_PROPERTIES,
    format_datetime,
    validate_properties,
)
from healthsync.sandbox.hubspot.search import (
    MAX_SEARCH_LIMIT,
    MAX_SEARCH_RESULTS,
    SearchError,
    compile_filter_groups,
    matches,
    matches_query,
    order,
    parse_sorts,
)
from healthsync.sandbox.hubspot.store import HsObject
from healthsync.sandbox.hubspot.types import (
    OBJECT_TYPES,
    default_type_id,
    normalize_type,
    pair_of_type_id,
    singular,
    v3_type_name,
)

MAX_LIST_LIMIT = 100

OBJECT_RULES = [
    Rule("/crm/v3/objects/<object_type>", methods=["GET"], endpoint="list_objects"),
    Rule("/crm/v3/objects/<object_type>", methods=["POST"], endpoint="create_object"),
    Rule("/crm/v3/objects/<object_type>/search", methods=["POST"], endpoint="search"),
    Rule("/crm/v3/objects/<object_type>/batch/<operation>", methods=["POST"], endpoint="batch"),
    Rule("/crm/v3/objects/<object_type>/<object_id>", methods=["GET"], endpoint="get_object"),
    Rule("/crm/v3/objects/<object_type>/<object_id>", methods=["PATCH"], endpoint="update_object"),
    Rule("/crm/v3/objects/<object_type>/<object_id>", methods=["DELETE"], endpoint="archive_object"),
]


def query_list(request: Request, key: str) -> list[str]:
    """Repeated keys and comma lists alike (`properties=a&properties=b,c`)."""
    values: list[str] = []
    for raw in request.args.getlist(key):
        values.extend(part.strip() for part in raw.split(",") if part.strip())
    return list(dict.fromkeys(values))


def query_bool(request: Request, key: str, default: bool = False) -> bool:
    raw = request.args.get(key)
    if raw is None or raw == "":
        return default
    if raw.lower() not in ("true", "false"):
        raise BadRequest(f"Invalid boolean for {key}: {raw!r}; use true or false.")
    return raw.lower() == "true"


def query_int(request: Request, key: str, default: int, maximum: int) -> int:
    raw = request.args.get(key)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise BadRequest(f"Invalid {key} {raw!r}: must be an integer between 1 and {maximum}.")
    return int(raw)


def batch_envelope(started: str, completed: str, results: list, errs: list) -> dict:
    body: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": started, "completedAt": completed}
    if errs:
        body.update(numErrors=len(errs), errors=errs)
    return body


class ObjectsApi:
    """Mixed into HubSpotEmulator; relies on its store, schema, clock, lock and knobs."""

    # ------------------------------------------------------------------------------------------ helpers
    def _object_type(self, name: str) -> str:
        object_type = normalize_type(name)
        if object_type is None:
            raise UnknownObjectType(name)
        return object_type

    def _properties_to_show(self, object_type: str, requested: list[str]) -> list[str]:
        if not requested:
            return list(DEFAULT_PROPERTIES[object_type])
        known = [n for n in requested if self.schema.get(object_type, n) is not None]  # unknown names are ignored
        return list(dict.fromkeys(known + list(SYSTEM_PROPERTIES[object_type])))

    def _render(self, obj: HsObject, names: list[str] | None, association_types: list[str] = ()) -> dict:
        body = obj.to_json(names)
        linked = {}
        for to_type in association_types:
            targets = self.store.associated(obj.object_type, obj.id, to_type)
            if targets:
                linked[to_type] = {"results": [{"id": tid, "type": v3_type_name(obj.object_type, to_type)}
                                               for tid in targets]}
        if linked:
            body["associations"] = linked
        return body

    def _corrupt_one(self, request: Request, results: list[dict]) -> None:
        """The `odd_record` fault: one record of this page loses its properties or gets a bad modstamp."""
        if not request.environ.get("sandbox.odd_record") or not results:
            return
        with self.lock:
            mode = self.odd_record_mode
            if mode == "alternate":
                mode = ("bad_timestamp", "missing_properties")[self._odd_records_served % 2]
            self._odd_records_served += 1
        victim = results[len(results) // 2]
        if mode == "missing_properties":
            victim.pop("properties", None)
        else:
            victim.setdefault("properties", {})["hs_lastmodifieddate"] = "last tuesday-ish"

    def _lookup(self, object_type: str, object_id: str, id_property: str | None, archived: bool = False):
        if id_property and id_property != "hs_object_id":
            if self.schema.get(object_type, id_property) is None:
                raise BadRequest(f"Property '{id_property}' does not exist on {object_type}.")
            return None if archived else self.store.find_by_property(object_type, id_property, object_id)
        return self.store.find(object_type, object_id, archived)

    def _validate(self, object_type: str, properties: Any, *, creating: bool):
        if not isinstance(properties, dict):
            raise BadRequest("'properties' must be an object of property name to value.")
        return validate_properties(self.schema, object_type, properties, self.owner_ids(), creating=creating)

    def _create_associations(self, from_type: str, raw: Any) -> list[tuple[str, str, str, int]]:
        """Resolve a create body's `associations` to (to_type, to_id, category, typeId); BadRequest if invalid."""
        if raw in (None, []):
            return []
        if not isinstance(raw, list):
            raise BadRequest("'associations' must be a list.")
        resolved = []
        for item in raw:
            target = (item or {}).get("to")
            to_id = str(target.get("id") if isinstance(target, dict) else target or "")
            for to_type, category, type_id in self._association_specs(from_type, item or {}):
                if self.store.live(to_type, to_id) is None:
                    raise BadRequest(f"{singular(to_type).title()} {to_id} does not exist; cannot associate.")
                resolved.append((to_type, to_id, category, type_id))
        return resolved

    def _association_specs(self, from_type: str, item: dict):
        if item.get("type") and not item.get("types"):  # legacy v3 style: {"to": "1", "type": "task_to_company"}
            for to_type in OBJECT_TYPES:
                if item["type"] == v3_type_name(from_type, to_type):
                    return [(to_type, "HUBSPOT_DEFINED", default_type_id(from_type, to_type))]
            raise BadRequest(f"Unknown association type {item['type']!r} for {from_type}.")
        specs = []
        for spec in item.get("types") or []:
            category = spec.get("associationCategory") or "HUBSPOT_DEFINED"
            try:
                type_id = int(spec.get("associationTypeId"))
            except (TypeError, ValueError) as exc:
                raise BadRequest(f"Invalid associationTypeId {spec.get('associationTypeId')!r}.") from exc
            pair = pair_of_type_id(type_id) if category == "HUBSPOT_DEFINED" else None
            if pair is None or pair[0] != from_type:
                raise BadRequest(f"association type id {type_id} ({category}) doesn't exist for "
                                 f"{singular(from_type)} associations.")
            specs.append((pair[1], category, type_id))
        if not specs:
            raise BadRequest("Each association needs at least one entry in 'types'.")
        return specs

    def _insert(self, object_type: str, clean: dict, links: list[tuple[str, str, str, int]]) -> HsObject:
        now = self.clock.now()
        obj = self.store.put(object_type, self.store.mint_id(), clean, now, now)
        for to_type, to_id, category, type_id in links:
            self.store.associate(object_type, obj.id, to_type, to_id, category, type_id)
        return obj

    def _apply(self, obj: HsObject, clean: dict, now) -> None:
        """Write values; only a real change moves hs_lastmodifieddate (a no-op PATCH does not)."""
        self.store.write(obj, clean, now)

    # ------------------------------------------------------------------------------------------ basic
    @answers_bad_input
    def on_list_objects(self, request: Request, object_type: str) -> Response:
        t = self._object_type(object_type)
        limit = query_int(request, "limit", 10, MAX_LIST_LIMIT)
        after = request.args.get("after") or "0"
        if not after.isdigit():
            raise BadRequest(f"Invalid after {after!r}: use the paging.next.after value of the previous page.")
        archived = query_bool(request, "archived")
        names = self._properties_to_show(t, query_list(request, "properties"))
        linked = [self._object_type(n) for n in query_list(request, "associations")]
        with self.lock:
            everything = self.store.sorted_objects(t, archived)
            start = bisect.bisect_left(self.store.sorted_ids(t, archived), int(after))
            window = everything[start:start + limit + 1]
            results = [self._render(o, names, linked) for o in window[:limit]]
        self._corrupt_one(request, results)
        body: dict[str, Any] = {"results": results}
        if len(window) > limit:
            nxt = str(window[limit].numeric_id)
            body["paging"] = {"next": {"after": nxt, "link": f"{self.base_url(request)}{request.path}?after={nxt}"}}
        return json_response(body)

    @answers_bad_input
    def on_get_object(self, request: Request, object_type: str, object_id: str) -> Response:
        t = self._object_type(object_type)
        archived = query_bool(request, "archived")
        names = self._properties_to_show(t, query_list(request, "properties"))
        linked = [self._object_type(n) for n in query_list(request, "associations")]
        with self.lock:
            obj = self._lookup(t, object_id, request.args.get("idProperty"), archived)
            if obj is None:
                return errors.not_found()
            return json_response(self._render(obj, names, linked))

    @answers_bad_input
    def on_create_object(self, request: Request, object_type: str) -> Response:
        t = self._object_type(object_type)
        body = read_json(request)
        if not isinstance(body, dict):
            raise BadRequest("Request body must be a JSON object with 'properties'.")
        with self.lock:
            clean, problems = self._validate(t, body.get("properties", {}), creating=True)
            if problems:
                return errors.property_values_invalid(problems)
            links = self._create_associations(t, body.get("associations"))
            obj = self._insert(t, clean, links)
            return json_response(obj.to_json(None), 201)

    @answers_bad_input
    def on_update_object(self, request: Request, object_type: str, object_id: str) -> Response:
        t = self._object_type(object_type)
        body = read_json(request)
        if not isinstance(body, dict):
            raise BadRequest("Request body must be a JSON object with 'properties'.")
        with self.lock:
            obj = self._lookup(t, object_id, request.args.get("idProperty"))
            if obj is None:
                return errors.not_found()
            clean, problems = self._validate(t, body.get("properties", {}), creating=False)
            if problems:
                return errors.property_values_invalid(problems)
            self._apply(obj, clean, self.clock.now())
            return json_response(obj.to_json(None))

    @answers_bad_input
    def on_archive_object(self, request: Request, object_type: str, object_id: str) -> Response:
        t = self._object_type(object_type)
        with self.lock:
            obj = self.store.live(t, object_id)
            if obj is not None:
                self.store.archive(obj, self.clock.now())
        return Response(status=204)  # HubSpot answers 204 for unknown ids as well

    # ------------------------------------------------------------------------------------------ search
    @answers_bad_input
    def on_search(self, request: Request, object_type: str) -> Response:
        t = self._object_type(object_type)
        body = read_json(request)
        if not isinstance(body, dict):
            raise BadRequest("Request body must be a JSON object.")
        limit, after = self._search_window(body)
        try:
            groups = compile_filter_groups(body.get("filterGroups"), self.schema, t)
            sorts = parse_sorts(body.get("sorts"), self.schema, t)
        except SearchError as exc:
            raise BadRequest(str(exc)) from exc
        names = self._properties_to_show(t, [str(p) for p in body.get("properties") or []])
        key = (t, json.dumps([body.get("filterGroups"), body.get("sorts"), body.get("query")], sort_keys=True,
                             default=str))
        with self.lock:
            ordered = self.store.cached_query(key)
            if ordered is None:
                hits = [o for o in self.store.objects[t].values()
                        if not o.archived and matches_query(o, body.get("query"))
                        and (not groups or any(all(matches(o, f, self.store) for f in g) for g in groups))]
                ordered = order(hits, sorts)
                self.store.remember_query(key, ordered)
            results = [o.to_json(names) for o in ordered[after:after + limit]]
        self._corrupt_one(request, results)
        answer: dict[str, Any] = {"total": len(ordered), "results": results}
        if after + limit < len(ordered):
            answer["paging"] = {"next": {"after": str(after + limit)}}
        return json_response(answer)

    def _search_window(self, body: dict) -> tuple[int, int]:
        raw_limit, raw_after = body.get("limit", 10), body.get("after") or "0"
        try:
            limit, after = int(raw_limit), int(str(raw_after))
        except ValueError as exc:
            raise BadRequest(f"Invalid limit {raw_limit!r} or after {raw_after!r}.") from exc
        if not 1 <= limit <= MAX_SEARCH_LIMIT:
            raise BadRequest(f"limit must be between 1 and {MAX_SEARCH_LIMIT}; got {limit}.")
        if after < 0 or after >= MAX_SEARCH_RESULTS or after + limit > MAX_SEARCH_RESULTS:
            raise BadRequest(errors.GENERIC_BAD_REQUEST)  # the real API's words for "past 10,000 results"
        return limit, after

    # ------------------------------------------------------------------------------------------ batch
    @answers_bad_input
    def on_batch(self, request: Request, object_type: str, operation: str) -> Response:
        t = self._object_type(object_type)
        handler = {"read": self._batch_read, "update": self._batch_update, "create": self._batch_create,
                   "archive": self._batch_archive, "upsert": self._batch_upsert}.get(operation)
        if handler is None:
            return errors.not_found(f"Unknown batch operation {operation!r}.")
        body = read_json(request)
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
            raise BadRequest("Request body must be a JSON object with an 'inputs' list of objects.")
        if len(inputs) > self.batch_limit:
            raise BadRequest(f"Too many inputs: {len(inputs)}. Batch requests are subject to a limit of "
                             f"{self.batch_limit} inputs.")
        started = format_datetime(self.clock.now())
        with self.lock:
            status, results, errs = handler(request, t, body, inputs)
        if status == 204:
            return Response(status=204)
        ok_status = 207 if errs else status
        return json_response(batch_envelope(started, format_datetime(self.clock.now()), results, errs), ok_status)

    def _missing_error(self, object_type: str, ids: list[str]) -> list[dict]:
        if not ids:
            return []
        message = (f"Could not get some {singular(object_type).upper()} objects, they may be deleted or not exist. "
                   "Check that ids are valid.")
        return [errors.batch_error("OBJECT_NOT_FOUND", message, {"ids": ids})]

    @staticmethod
    def _invalid_error(problems: list[dict], context: dict[str, list[str]]) -> dict:
        details = [{"message": p["message"], "code": p["error"], "context": {"propertyName": [p["name"]]}}
                   for p in problems]
        entry = errors.batch_error("VALIDATION_ERROR", errors.property_values_message(problems), context, details)
        entry["subCategory"] = problems[0]["error"]
        return entry

    def _batch_read(self, request: Request, t: str, body: dict, inputs: list[dict]):
        names = self._properties_to_show(t, [str(p) for p in body.get("properties") or []])
        archived = query_bool(request, "archived")
        results, missing = [], []
        for item in inputs:
            key = str(item.get("id", ""))
            obj = self._lookup(t, key, body.get("idProperty"), archived)
            if obj is None:
                missing.append(key)
            elif all(r["id"] != obj.id for r in results):
                results.append(obj.to_json(names))
        self._corrupt_one(request, results)
        return 200, results, self._missing_error(t, missing)

    def _batch_update(self, request: Request, t: str, body: dict, inputs: list[dict]):
        keys = [str(i.get("id", "")) for i in inputs]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            raise BadRequest(f"Duplicate IDs found in batch input: {duplicates}. IDs must be unique")
        now, results, missing, errs = self.clock.now(), [], [], []
        for item, key in zip(inputs, keys, strict=True):
            obj = self._lookup(t, key, item.get("idProperty") or body.get("idProperty"))
            if obj is None:
                missing.append(key)
                continue
            clean, problems = self._validate(t, item.get("properties", {}), creating=False)
            if problems:
                errs.append(self._invalid_error(problems, {"ids": [key]}))
                continue
            self._apply(obj, clean, now)
            results.append(obj.to_json(None))
        return 200, results, self._missing_error(t, missing) + errs

    def _batch_create(self, request: Request, t: str, body: dict, inputs: list[dict]):
        results, errs = [], []
        for index, item in enumerate(inputs):
            trace = item.get("objectWriteTraceId")
            context = {"objectWriteTraceId": [str(trace)]} if trace else {"inputIndex": [str(index)]}
            clean, problems = self._validate(t, item.get("properties", {}), creating=True)
            if problems:
                errs.append(self._invalid_error(problems, context))
                continue
            try:
                links = self._create_associations(t, item.get("associations"))
            except BadRequest as exc:
                errs.append(errors.batch_error("VALIDATION_ERROR", str(exc), context))
                continue
            obj = self._insert(t, clean, links).to_json(None)
            if trace:
                obj["objectWriteTraceId"] = str(trace)
            results.append(obj)
        return 201, results, errs

    def _batch_archive(self, request: Request, t: str, body: dict, inputs: list[dict]):
        now = self.clock.now()
        for item in inputs:
            obj = self.store.live(t, str(item.get("id", "")))
            if obj is not None:
                self.store.archive(obj, now)
        return 204, [], []

    def _batch_upsert(self, request: Request, t: str, body: dict, inputs: list[dict]):
        for item in inputs:  # checked up front so a bad input cannot leave the batch half applied
            prop = self.schema.get(t, item.get("idProperty") or "")
            if prop is None or not (prop.has_unique_value or prop.name == "email"):
                raise BadRequest(f"Upsert needs an idProperty with unique values; got {item.get('idProperty')!r}.")
        now, results, errs = self.clock.now(), [], []
        for item in inputs:
            key, id_property = str(item.get("id", "")), item["idProperty"]
            clean, problems = self._validate(t, {**(item.get("properties") or {}), id_property: key}, creating=False)
            if problems:
                errs.append(self._invalid_error(problems, {"ids": [key]}))
                continue
            obj = self.store.find_by_property(t, id_property, key)
            created = obj is None
            if created:
                obj = self._insert(t, clean, [])
            else:
                self._apply(obj, clean, now)
            results.append({**obj.to_json(None), "new": created})
        return 200, results, errs
