"""HubSpot's legacy v1/v2 read endpoints that older extractors still call, over the same portal: companies v2,
contacts v1, deals v1, engagements v1 and properties v1/v2, in their documented shapes (property values as
`{value, timestamp, source, sourceId, versions}`, offset paging with `has-more`/`hasMore` + `offset`).

Sources (developers.hubspot.com legacy reference, formerly legacydocs.hubspot.com/docs/methods/...): "Get all
companies" (GET /companies/v2/companies/paged), "Get recently modified companies", "Get a company", "Get all
contacts" (GET /contacts/v1/lists/all/contacts/all), "Get all deals" (GET /deals/v1/deal/paged), "Get recently
modified deals", "Get a deal", "Get all engagements" (GET /engagements/v1/engagements/paged), "Get all
contact/company/deal properties" (GET /properties/v1/{object}/properties) and the CRM Properties API v2
(GET /properties/v2/{object_type}/properties).
"""

from __future__ import annotations

from typing import Any

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from healthsync.sandbox.core import json_response
from healthsync.sandbox.hubspot import errors
from healthsync.sandbox.hubspot.errors import BadRequest, answers_bad_input
from healthsync.sandbox.hubspot.schema import parse_datetime_ms
from healthsync.sandbox.hubspot.store import HsObject
from healthsync.sandbox.hubspot.types import ENGAGEMENT_TYPES, normalize_type

LEGACY_PREFIXES = ("/companies/", "/contacts/", "/deals/", "/engagements/", "/properties/", "/crm-object-schemas/")
# Roots of api.hubapi.com's other API families: unrouted requests under them get HubSpot's 404 too.
OTHER_HUBSPOT_ROOTS = ("/owners/", "/crm-associations/", "/crm-objects/", "/crm-pipelines/", "/integrations/",
                       "/automation/", "/email/", "/forms/", "/form-integrations/", "/marketing/", "/cms/",
                       "/files/", "/analytics/", "/account-info/", "/settings/", "/conversations/",
                       "/communication-preferences/", "/webhooks/", "/extensions/", "/events/")
MAX_LEGACY_LIMIT = 250  # "count"/"limit" caps of the paged endpoints
LEGACY_RULES = [
    Rule("/companies/v2/companies/paged", endpoint="v2_companies", methods=["GET"]),
    Rule("/companies/v2/companies/recent/modified", endpoint="v2_companies_recent", methods=["GET"]),
    Rule("/companies/v2/companies/<object_id>", endpoint="v2_company", methods=["GET"]),
    Rule("/companies/v2/properties", endpoint="v1_properties_companies", methods=["GET"]),
    Rule("/contacts/v1/lists/all/contacts/all", endpoint="v1_contacts", methods=["GET"]),
    Rule("/deals/v1/deal/paged", endpoint="v1_deals", methods=["GET"]),
    Rule("/deals/v1/deal/recent/modified", endpoint="v1_deals_recent", methods=["GET"]),
    Rule("/deals/v1/deal/<object_id>", endpoint="v1_deal", methods=["GET"]),
    Rule("/engagements/v1/engagements/paged", endpoint="v1_engagements", methods=["GET"]),
    Rule("/properties/v1/<object_type>/properties", endpoint="v1_properties", methods=["GET"]),
    Rule("/properties/v2/<object_type>/properties", endpoint="v2_properties", methods=["GET"]),
]
_ENGAGEMENT_KIND = {"calls": "CALL", "emails": "EMAIL", "meetings": "MEETING", "notes": "NOTE", "tasks": "TASK"}
_METADATA = {  # v3 property -> v1 engagement metadata key, per engagement type
    "calls": {"hs_call_title": "title", "hs_call_body": "body", "hs_call_status": "status",
              "hs_call_direction": "direction", "hs_call_duration": "durationMilliseconds"},
    "emails": {"hs_email_subject": "subject", "hs_email_text": "text", "hs_email_status": "status"},
    "meetings": {"hs_meeting_title": "title", "hs_meeting_body": "body", "hs_meeting_start_time": "startTime",
                 "hs_meeting_end_time": "endTime", "hs_meeting_outcome": "meetingOutcome"},
    "notes": {"hs_note_body": "body"},
    "tasks": {"hs_task_subject": "subject", "hs_task_body": "body", "hs_task_status": "status",
              "hs_task_priority": "priority", "hs_task_type": "taskType"},
}


def _int_arg(request: Request, names: tuple[str, ...], default: int, maximum: int) -> int:
    for name in names:
        raw = request.args.get(name)
        if raw not in (None, ""):
            if not raw.isdigit():
                raise BadRequest(f"Invalid {name} {raw!r}: must be a non-negative integer.")
            return min(int(raw), maximum)
    return default


def _names(request: Request, key: str) -> list[str]:
    values: list[str] = []
    for raw in request.args.getlist(key):
        values.extend(p.strip() for p in raw.split(",") if p.strip())
    return list(dict.fromkeys(values))


class LegacyApi:
    """Mixed into HubSpotEmulator; relies on its store, schema, owners, credentials and lock."""

    def _v1_value(self, obj: HsObject, name: str, history: bool) -> dict[str, Any] | None:
        value = obj.properties.get(name)
        if value is None:
            return None
        stamp = int(obj.updated_at.timestamp() * 1000)
        entry = {"value": value, "timestamp": stamp, "source": "API", "sourceId": None}
        entry["versions"] = [{"name": name, "value": value, "timestamp": stamp, "source": "API", "sourceVid": []}]
        if not history:
            entry["versions"] = entry["versions"][:1]
        return entry

    def _v1_properties(self, obj: HsObject, request: Request) -> dict[str, Any]:
        wanted = _names(request, "properties")
        history = _names(request, "propertiesWithHistory")
        out = {}
        for name in dict.fromkeys(wanted + history):
            entry = self._v1_value(obj, name, name in history)
            if entry is not None:
                out[name] = entry
        return out

    def _company_v2(self, obj: HsObject, request: Request) -> dict[str, Any]:
        return {"portalId": self.credentials.portal_id, "companyId": obj.numeric_id, "isDeleted": obj.archived,
                "properties": self._v1_properties(obj, request), "additionalDomains": [], "stateChanges": [],
                "mergeAudits": []}

    def _deal_v1(self, obj: HsObject, request: Request, associations: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"portalId": self.credentials.portal_id, "dealId": obj.numeric_id,
                                "isDeleted": obj.archived, "properties": self._v1_properties(obj, request),
                                "imports": [], "stateChanges": []}
        if associations:
            body["associations"] = {
                "associatedVids": [int(i) for i in self.store.associated("deals", obj.id, "contacts")],
                "associatedCompanyIds": [int(i) for i in self.store.associated("deals", obj.id, "companies")],
                "associatedDealIds": []}
        return body

    def _page(self, object_type: str, request: Request, default: int) -> tuple[list[HsObject], bool, int]:
        """Live records in id order after `offset` (the last id of the previous page)."""
        limit = _int_arg(request, ("limit", "count"), default, MAX_LEGACY_LIMIT)
        offset = _int_arg(request, ("offset", "vidOffset"), 0, 10**18)
        live = [o for o in self.store.sorted_objects(object_type, False) if o.numeric_id > offset]
        page = live[:limit]
        return page, len(live) > limit, page[-1].numeric_id if page else offset

    def _recent(self, object_type: str, request: Request) -> tuple[list[HsObject], bool, int, int]:
        """Most recently modified first, numeric offset paging, `since` (epoch ms) lower bound."""
        count = _int_arg(request, ("count",), 100, 100)
        offset = _int_arg(request, ("offset",), 0, 10**9)
        since = parse_datetime_ms(request.args.get("since") or "0") or 0
        ordered = sorted((o for o in self.store.objects[object_type].values()
                          if not o.archived and o.updated_at.timestamp() * 1000 >= since),
                         key=lambda o: (o.updated_at, o.numeric_id), reverse=True)
        page = ordered[offset:offset + count]
        return page, offset + count < len(ordered), offset + len(page), len(ordered)

    # ---------------------------------------------------------------------------------------- companies
    @answers_bad_input
    def on_v2_companies(self, request: Request) -> Response:
        with self.lock:
            page, more, offset = self._page("companies", request, 100)
            return json_response({"companies": [self._company_v2(o, request) for o in page], "has-more": more,
                                  "offset": offset})

    @answers_bad_input
    def on_v2_companies_recent(self, request: Request) -> Response:
        with self.lock:
            page, more, offset, total = self._recent("companies", request)
            return json_response({"results": [self._company_v2(o, request) for o in page], "hasMore": more,
                                  "offset": offset, "total": total})

    @answers_bad_input
    def on_v2_company(self, request: Request, object_id: str) -> Response:
        with self.lock:
            obj = self.store.live("companies", object_id)
            if obj is None:
                return errors.error(404, "OBJECT_NOT_FOUND", f"company {object_id} not found")
            return json_response(self._company_v2(obj, request))

    # ---------------------------------------------------------------------------------------- contacts
    @answers_bad_input
    def on_v1_contacts(self, request: Request) -> Response:
        with self.lock:
            page, more, offset = self._page("contacts", request, 20)
            contacts = [{"vid": o.numeric_id, "canonical-vid": o.numeric_id, "merged-vids": [],
                         "portal-id": self.credentials.portal_id, "is-contact": True,
                         "properties": self._contact_properties(o, request),
                         "form-submissions": [], "identity-profiles": [], "merge-audits": []} for o in page]
            return json_response({"contacts": contacts, "has-more": more, "vid-offset": offset})

    def _contact_properties(self, obj: HsObject, request: Request) -> dict[str, Any]:
        """Contacts v1 names properties with a repeated `property` parameter; without it a few standard ones."""
        wanted = _names(request, "property") or ["firstname", "lastname", "lastmodifieddate", "company"]
        return {n: {"value": obj.properties[n]} for n in wanted if obj.properties.get(n) is not None}

    # ---------------------------------------------------------------------------------------- deals
    @answers_bad_input
    def on_v1_deals(self, request: Request) -> Response:
        associations = (request.args.get("includeAssociations") or "").lower() == "true"
        with self.lock:
            page, more, offset = self._page("deals", request, 100)
            return json_response({"deals": [self._deal_v1(o, request, associations) for o in page],
                                  "hasMore": more, "offset": offset})

    @answers_bad_input
    def on_v1_deals_recent(self, request: Request) -> Response:
        with self.lock:
            page, more, offset, total = self._recent("deals", request)
            return json_response({"results": [self._deal_v1(o, request, True) for o in page], "hasMore": more,
                                  "offset": offset, "total": total})

    @answers_bad_input
    def on_v1_deal(self, request: Request, object_id: str) -> Response:
        with self.lock:
            obj = self.store.live("deals", object_id)
            if obj is None:
                return errors.error(404, "OBJECT_NOT_FOUND", f"Deal {object_id} does not exist")
            return json_response(self._deal_v1(obj, request, True))

    # ---------------------------------------------------------------------------------------- engagements
    @answers_bad_input
    def on_v1_engagements(self, request: Request) -> Response:
        limit = _int_arg(request, ("limit",), 100, MAX_LEGACY_LIMIT)
        offset = _int_arg(request, ("offset",), 0, 10**18)
        with self.lock:
            live = sorted((o for t in ENGAGEMENT_TYPES for o in self.store.objects[t].values()
                           if not o.archived and o.numeric_id > offset), key=lambda o: o.numeric_id)
            page = live[:limit]
            results = [self._engagement_v1(o) for o in page]
        return json_response({"results": results, "hasMore": len(live) > limit,
                              "offset": page[-1].numeric_id if page else offset})

    def _engagement_v1(self, obj: HsObject) -> dict[str, Any]:
        props, kind = obj.properties, obj.object_type
        owner = props.get("hubspot_owner_id")
        stamp = parse_datetime_ms(props.get("hs_timestamp") or "") or int(obj.created_at.timestamp() * 1000)
        metadata = {}
        for name, key in _METADATA[kind].items():
            if props.get(name) is not None:
                value = props[name]
                metadata[key] = parse_datetime_ms(value) if key in ("startTime", "endTime") else value
        linked = {t: [int(i) for i in self.store.associated(kind, obj.id, t)] for t in ("contacts", "companies",
                                                                                         "deals", "tickets")}
        return {"engagement": {"id": obj.numeric_id, "portalId": self.credentials.portal_id, "active": True,
                               "createdAt": int(obj.created_at.timestamp() * 1000),
                               "lastUpdated": int(obj.updated_at.timestamp() * 1000),
                               "ownerId": int(owner) if owner and owner.isdigit() else None,
                               "type": _ENGAGEMENT_KIND[kind], "timestamp": stamp},
                "associations": {"contactIds": linked["contacts"], "companyIds": linked["companies"],
                                 "dealIds": linked["deals"], "ownerIds": [], "workflowIds": [],
                                 "ticketIds": linked["tickets"]},
                "attachments": [], "metadata": metadata}

    # ---------------------------------------------------------------------------------------- properties
    def _legacy_properties(self, object_type: str) -> Response:
        t = normalize_type(object_type)
        if t is None:
            return errors.error(404, "OBJECT_NOT_FOUND", f"Unknown object type {object_type}")
        with self.lock:
            owners = self.owner_options()
            return json_response([_v1_property(p.to_json(owners)) for p in self.schema.properties[t].values()])

    def on_v1_properties(self, request: Request, object_type: str) -> Response:
        return self._legacy_properties(object_type)

    def on_v1_properties_companies(self, request: Request) -> Response:
        return self._legacy_properties("companies")

    def on_v2_properties(self, request: Request, object_type: str) -> Response:
        return self._legacy_properties(object_type)


def _v1_property(v3: dict[str, Any]) -> dict[str, Any]:
    """A v3 property definition in the v1/v2 shape (flat read-only flags, epoch-ms stamps, `deleted`)."""
    meta = v3.get("modificationMetadata") or {}
    return {"name": v3["name"], "label": v3["label"], "description": v3["description"],
            "groupName": v3["groupName"], "type": v3["type"], "fieldType": v3["fieldType"],
            "options": [{"label": o.get("label"), "value": o.get("value"), "displayOrder": o.get("displayOrder", -1),
                         "hidden": bool(o.get("hidden")), "description": o.get("description"),
                         "readOnly": False, "doubleData": None} for o in v3.get("options") or []],
            "displayOrder": v3["displayOrder"], "hidden": v3["hidden"], "formField": v3["formField"],
            "calculated": v3["calculated"], "externalOptions": v3["externalOptions"],
            "hasUniqueValue": v3["hasUniqueValue"], "readOnlyValue": bool(meta.get("readOnlyValue")),
            "readOnlyDefinition": bool(meta.get("readOnlyDefinition")),
            "mutableDefinitionNotDeletable": bool(v3.get("hubspotDefined")),
            "hubspotDefined": bool(v3.get("hubspotDefined")), "deleted": False, "favorited": False,
            "displayMode": "current_value", "showCurrencySymbol": None, "numberDisplayHint": None,
            "createdAt": parse_datetime_ms(v3["createdAt"]), "updatedAt": parse_datetime_ms(v3["updatedAt"])}
