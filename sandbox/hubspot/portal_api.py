"""Portal-level endpoints: properties and groups, owners, v4 associations and the OAuth token exchange."""

from __future__ import annotations

import secrets
from typing import Any

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from healthsync.sandbox.core import json_response, read_json
from healthsync.sandbox.hubspot import errors
from healthsync.sandbox.hubspot.errors import BadRequest, UnknownObjectType, answers_bad_input
from healthsync.sandbox.hubspot.schema import (
    GroupDef,
    check_property_definition,
    format_datetime,
    property_from_body,
)
from healthsync.sandbox.hubspot.types import (
    default_type_id,
    is_known_hubspot_defined,
    label_of,
    normalize_type,
    singular,
    type_id,
)

MAX_OWNERS_LIMIT = 500
MAX_ASSOCIATIONS_LIMIT = 500

PORTAL_RULES = [
    Rule("/crm/v3/properties/<object_type>", methods=["GET"], endpoint="list_properties"),
    Rule("/crm/v3/properties/<object_type>", methods=["POST"], endpoint="create_property"),
    Rule("/crm/v3/properties/<object_type>/groups", methods=["GET"], endpoint="list_groups"),
    Rule("/crm/v3/properties/<object_type>/groups", methods=["POST"], endpoint="create_group"),
    Rule("/crm/v3/properties/<object_type>/groups/<name>", methods=["GET"], endpoint="get_group"),
    Rule("/crm/v3/properties/<object_type>/<name>", methods=["GET"], endpoint="get_property"),
    Rule("/crm/v3/properties/<object_type>/<name>", methods=["PATCH"], endpoint="update_property"),
    # The schemas API answers under both roots ("Custom objects" guide uses /crm/v3/schemas; the API reference
    # and hubspot-api-client use /crm-object-schemas/v3/schemas)
    Rule("/crm/v3/schemas", methods=["GET"], endpoint="list_schemas"),
    Rule("/crm/v3/schemas/<object_type>", methods=["GET"], endpoint="get_schema"),
    Rule("/crm-object-schemas/v3/schemas", methods=["GET"], endpoint="list_schemas"),
    Rule("/crm-object-schemas/v3/schemas/<object_type>", methods=["GET"], endpoint="get_schema"),
    Rule("/crm/v3/owners", methods=["GET"], endpoint="list_owners"),
    Rule("/crm/v3/owners/<owner_id>", methods=["GET"], endpoint="get_owner"),
    Rule("/crm/v4/associations/<from_type>/<to_type>/batch/read", methods=["POST"], endpoint="associations_batch_read"),
    Rule("/crm/v4/objects/<object_type>/<object_id>/associations/<to_type>", methods=["GET"],
         endpoint="list_associations"),
    Rule("/crm/v4/objects/<object_type>/<object_id>/associations/default/<to_type>/<to_id>", methods=["PUT"],
         endpoint="associate_default"),
    Rule("/crm/v4/objects/<object_type>/<object_id>/associations/<to_type>/<to_id>", methods=["PUT"],
         endpoint="associate_labelled"),
    Rule("/crm/v4/objects/<object_type>/<object_id>/associations/<to_type>/<to_id>", methods=["DELETE"],
         endpoint="dissociate"),
    Rule("/oauth/v1/token", methods=["POST"], endpoint="oauth_token"),
]


def _type(name: str) -> str:
    object_type = normalize_type(name)
    if object_type is None:
        raise UnknownObjectType(name)
    return object_type


def _offset(raw: str | None) -> int:
    if raw in (None, ""):
        return 0
    if not raw.isdigit():
        raise BadRequest(f"Invalid after {raw!r}: use the paging.next.after value of the previous page.")
    return int(raw)


def _limit(raw: str | None, default: int, maximum: int) -> int:
    if raw in (None, ""):
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise BadRequest(f"Invalid limit {raw!r}: must be an integer between 1 and {maximum}.")
    return int(raw)


def _page(items: list, after: int, limit: int) -> dict[str, Any]:
    body: dict[str, Any] = {"results": items[after:after + limit]}
    if after + limit < len(items):
        body["paging"] = {"next": {"after": str(after + limit)}}
    return body


class PortalApi:
    """Mixed into HubSpotEmulator; relies on its store, schema, owners, clock, lock and knobs."""

    # ------------------------------------------------------------------------------------------ properties
    def _schema_write_denied(self, object_type: str) -> Response | None:
        if self.allow_schema_writes:
            return None
        return errors.missing_scopes(f"crm.schemas.{object_type}.write")

    @answers_bad_input
    def on_list_properties(self, request: Request, object_type: str) -> Response:
        t = _type(object_type)
        with self.lock:
            owners = self.owner_options()
            return json_response({"results": [p.to_json(owners) for p in self.schema.properties[t].values()]})

    @answers_bad_input
    def on_get_property(self, request: Request, object_type: str, name: str) -> Response:
        t = _type(object_type)
        with self.lock:
            prop = self.schema.get(t, name)
            if prop is None:
                return errors.not_found(f"Unable to find property {name} for object type {type_id(t)}")
            return json_response(prop.to_json(self.owner_options()))

    @answers_bad_input
    def on_create_property(self, request: Request, object_type: str) -> Response:
        t = _type(object_type)
        denied = self._schema_write_denied(t)
        if denied is not None:
            return denied
        body = read_json(request)
        if not isinstance(body, dict):
            raise BadRequest("Request body must be a JSON property definition.")
        with self.lock:
            if isinstance(body.get("name"), str) and self.schema.get(t, body["name"]) is not None:
                return errors.error(409, "OBJECT_ALREADY_EXISTS", f"Property named '{body['name']}' already exists.")
            problem = check_property_definition(body, self.schema, t)
            if problem is not None:
                raise BadRequest(problem)
            prop = property_from_body(body, format_datetime(self.clock.now()))
            self.schema.properties[t][prop.name] = prop
            return json_response(prop.to_json(), 201)

    @answers_bad_input
    def on_update_property(self, request: Request, object_type: str, name: str) -> Response:
        t = _type(object_type)
        denied = self._schema_write_denied(t)
        if denied is not None:
            return denied
        body = read_json(request)
        if not isinstance(body, dict):
            raise BadRequest("Request body must be a JSON object.")
        with self.lock:
            prop = self.schema.get(t, name)
            if prop is None:
                return errors.not_found(f"Unable to find property {name} for object type {type_id(t)}")
            if prop.hubspot_defined:
                raise BadRequest(f"Property {name} is HubSpot-defined; its definition cannot be changed.")
            merged = {"name": name, "label": prop.label, "type": prop.type, "fieldType": prop.field_type,
                      "groupName": prop.group_name, "description": prop.description, "options": prop.options,
                      "displayOrder": prop.display_order, "hidden": prop.hidden,
                      "hasUniqueValue": prop.has_unique_value, "formField": prop.form_field, **body}
            problem = check_property_definition(merged, self.schema, t)
            if problem is not None:
                raise BadRequest(problem)
            updated = property_from_body(merged, prop.created_at)
            updated.updated_at = format_datetime(self.clock.now())
            self.schema.properties[t][name] = updated
            return json_response(updated.to_json())

    @answers_bad_input
    def on_list_groups(self, request: Request, object_type: str) -> Response:
        t = _type(object_type)
        with self.lock:
            return json_response({"results": [g.to_json() for g in self.schema.groups[t].values()]})

    @answers_bad_input
    def on_get_group(self, request: Request, object_type: str, name: str) -> Response:
        t = _type(object_type)
        with self.lock:
            group = self.schema.groups[t].get(name)
            if group is None:
                return errors.not_found(f"Unable to find property group {name} for object type {type_id(t)}")
            return json_response(group.to_json())

    @answers_bad_input
    def on_create_group(self, request: Request, object_type: str) -> Response:
        t = _type(object_type)
        denied = self._schema_write_denied(t)
        if denied is not None:
            return denied
        body = read_json(request)
        if not isinstance(body, dict) or not body.get("name") or not body.get("label"):
            raise BadRequest("A property group needs 'name' and 'label'.")
        with self.lock:
            if body["name"] in self.schema.groups[t]:
                return errors.error(409, "OBJECT_ALREADY_EXISTS",
                                    f"Property group named '{body['name']}' already exists.")
            group = GroupDef(str(body["name"]), str(body["label"]), int(body.get("displayOrder", -1)))
            self.schema.groups[t][group.name] = group
            return json_response(group.to_json(), 201)

    # ------------------------------------------------------------------------------------------ schemas
    def on_list_schemas(self, request: Request) -> Response:
        """Custom object schemas ("Custom objects" guide, GET /crm/v3/schemas): this portal defines none, and a
        real portal without custom objects answers 200 with an empty list."""
        return json_response({"results": []})

    def on_get_schema(self, request: Request, object_type: str) -> Response:
        return errors.not_found(f"Unable to find object type {object_type}: this portal has no custom objects")

    # ------------------------------------------------------------------------------------------ owners
    @answers_bad_input
    def on_list_owners(self, request: Request) -> Response:
        archived = request.args.get("archived", "false").lower() == "true"
        email = (request.args.get("email") or "").lower()
        limit = _limit(request.args.get("limit"), 100, MAX_OWNERS_LIMIT)
        after = _offset(request.args.get("after"))
        with self.lock:
            owners = [o for o in self._owners if o["archived"] == archived
                      and (not email or o["email"].lower() == email)]
        owners.sort(key=lambda o: int(o["id"]) if str(o["id"]).isdigit() else 0)
        return json_response(_page(owners, after, limit))

    @answers_bad_input
    def on_get_owner(self, request: Request, owner_id: str) -> Response:
        key = "userId" if request.args.get("idProperty") == "userId" else "id"
        archived = request.args.get("archived", "false").lower() == "true"
        with self.lock:
            for owner in self._owners:
                if str(owner[key]) == owner_id and owner["archived"] == archived:
                    return json_response(owner)
        return errors.not_found(f"Owner {owner_id} not found.")

    # ------------------------------------------------------------------------------------------ associations v4
    @answers_bad_input
    def on_associations_batch_read(self, request: Request, from_type: str, to_type: str) -> Response:
        source, target = _type(from_type), _type(to_type)
        body = read_json(request)
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
            raise BadRequest("Request body must be a JSON object with an 'inputs' list of {id}.")
        if len(inputs) > self.association_batch_limit:
            raise BadRequest(f"Too many inputs: {len(inputs)}. Association batch reads are subject to a limit of "
                             f"{self.association_batch_limit} inputs.")
        started = format_datetime(self.clock.now())
        results, errs = [], []
        with self.lock:
            for item in inputs:
                from_id = str(item.get("id", ""))
                linked = self.store.associated(source, from_id, target) if self.store.live(source, from_id) else {}
                if not linked:
                    errs.append(self._no_associations(source, from_id, target))
                    continue
                to = [self.store.v4_item(source, target, tid, edges) for tid, edges in linked.items()]
                results.append({"from": {"id": from_id}, "to": to})
        body = {"status": "COMPLETE", "results": results, "startedAt": started,
                "completedAt": format_datetime(self.clock.now())}
        if errs:
            body.update(numErrors=len(errs), errors=errs)
        return json_response(body, 207 if errs else 200)

    @staticmethod
    def _no_associations(source: str, from_id: str, target: str) -> dict:
        entry = errors.batch_error("VALIDATION_ERROR", f"No {singular(target)} is associated with {singular(source)} "
                                   f"{from_id}.", {"fromObjectId": [from_id], "toObjectType": [target]})
        entry["subCategory"] = "crm.associations.NO_ASSOCIATIONS_FOUND"
        return entry

    @answers_bad_input
    def on_list_associations(self, request: Request, object_type: str, object_id: str, to_type: str) -> Response:
        source, target = _type(object_type), _type(to_type)
        limit = _limit(request.args.get("limit"), MAX_ASSOCIATIONS_LIMIT, MAX_ASSOCIATIONS_LIMIT)
        after = _offset(request.args.get("after"))
        with self.lock:
            if self.store.live(source, object_id) is None:
                return errors.not_found()
            items = [self.store.v4_item(source, target, tid, edges)
                     for tid, edges in self.store.associated(source, object_id, target).items()]
        return json_response(_page(items, after, limit))

    def _both_live(self, source: str, object_id: str, target: str, to_id: str) -> bool:
        return self.store.live(source, object_id) is not None and self.store.live(target, to_id) is not None

    @answers_bad_input
    def on_associate_default(self, request: Request, object_type: str, object_id: str, to_type: str,
                             to_id: str) -> Response:
        source, target = _type(object_type), _type(to_type)
        forward, backward = default_type_id(source, target), default_type_id(target, source)
        if forward is None or backward is None:
            raise BadRequest(f"There is no default association between {source} and {target}.")
        started = format_datetime(self.clock.now())
        with self.lock:
            if not self._both_live(source, object_id, target, to_id):
                return errors.not_found(f"{singular(source)} {object_id} or {singular(target)} {to_id} does not exist.")
            self.store.associate(source, object_id, target, to_id, "HUBSPOT_DEFINED", forward)
        results = [{"from": {"id": a}, "to": {"id": b},
                    "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": spec}}
                   for a, b, spec in ((object_id, to_id, forward), (to_id, object_id, backward))]
        return json_response({"status": "COMPLETE", "results": results, "startedAt": started,
                              "completedAt": format_datetime(self.clock.now())})

    @answers_bad_input
    def on_associate_labelled(self, request: Request, object_type: str, object_id: str, to_type: str,
                              to_id: str) -> Response:
        source, target = _type(object_type), _type(to_type)
        specs = read_json(request)
        if not isinstance(specs, list) or not specs or not all(isinstance(s, dict) for s in specs):
            raise BadRequest("Request body must be a non-empty list of {associationCategory, associationTypeId}.")
        parsed = [self._spec(source, target, s) for s in specs]
        with self.lock:
            if not self._both_live(source, object_id, target, to_id):
                return errors.not_found(f"{singular(source)} {object_id} or {singular(target)} {to_id} does not exist.")
            for category, type_number in parsed:
                self.store.associate(source, object_id, target, to_id, category, type_number)
        labels = [label for c, n in parsed if (label := label_of(source, target, c, n))]
        return json_response({"fromObjectTypeId": type_id(source), "fromObjectId": int(object_id),
                              "toObjectTypeId": type_id(target), "toObjectId": int(to_id), "labels": labels}, 201)

    @staticmethod
    def _spec(source: str, target: str, spec: dict) -> tuple[str, int]:
        category = spec.get("associationCategory") or "HUBSPOT_DEFINED"
        if category not in ("HUBSPOT_DEFINED", "USER_DEFINED", "INTEGRATOR_DEFINED"):
            raise BadRequest(f"Invalid associationCategory {category!r}.")
        try:
            number = int(spec.get("associationTypeId"))
        except (TypeError, ValueError) as exc:
            raise BadRequest(f"Invalid associationTypeId {spec.get('associationTypeId')!r}.") from exc
        if category == "HUBSPOT_DEFINED" and not is_known_hubspot_defined(source, target, number):
            raise BadRequest(f"association type id {number} doesn't exist between {singular(source)} "
                             f"and {singular(target)}")
        return category, number

    @answers_bad_input
    def on_dissociate(self, request: Request, object_type: str, object_id: str, to_type: str, to_id: str) -> Response:
        source, target = _type(object_type), _type(to_type)
        with self.lock:
            self.store.dissociate(source, object_id, target, to_id)
        return Response(status=204)

    # ------------------------------------------------------------------------------------------ oauth
    def on_oauth_token(self, request: Request) -> Response:
        form, creds = request.form, self.credentials
        if form.get("grant_type") != "refresh_token":
            return errors.oauth_error("BAD_GRANT_TYPE", f"unsupported grant_type: {form.get('grant_type')!r}; "
                                      "this portal only issues tokens for grant_type=refresh_token")
        if form.get("client_id") != creds.client_id:
            return errors.oauth_error("BAD_CLIENT_ID", "missing or unknown client id")
        if form.get("client_secret") != creds.client_secret:
            return errors.oauth_error("BAD_CLIENT_SECRET", "missing or invalid client secret")
        if form.get("refresh_token") != creds.refresh_token:
            return errors.oauth_error("BAD_REFRESH_TOKEN", "missing or invalid refresh token")
        token = "hs-oauth-" + secrets.token_urlsafe(24)
        with self.lock:
            self._tokens[token] = self.clock.now() + self.token_lifetime
        return json_response({"access_token": token, "refresh_token": creds.refresh_token, "token_type": "bearer",
                              "expires_in": int(self.token_lifetime.total_seconds())})
