"""HubSpot endpoints against the documented shapes: the schemas API, tickets as a standard object, the legacy
v1/v2 read endpoints and HubSpot's error body for every 404; hubspot-api-client where it covers them."""

from __future__ import annotations

import pytest
from hubspot import HubSpot
from hubspot.crm.tickets import PublicObjectSearchRequest, SimplePublicObjectInputForCreate

from healthsync.sandbox.credentials import DEMO
from tests.sandbox import hs_fixtures as fx

from .conftest import shape

ERROR = {"status": str, "message": str, "correlationId": str, "category": str}


@pytest.fixture(scope="module")
def hs(server):
    return HubSpot(access_token=DEMO.hubspot.access_token, host=server.http_url)


@pytest.fixture(scope="module")
def api(server):
    import requests

    session = requests.Session()
    session.trust_env = False
    session.headers["Authorization"] = f"Bearer {DEMO.hubspot.access_token}"

    def get(path: str):
        return session.get(server.http_url + path, timeout=10)
    return get


def test_schemas_of_a_portal_without_custom_objects(hs, api):
    # "Custom objects": GET /crm/v3/schemas -> {"results": [...]}; the SDK uses /crm-object-schemas/v3/schemas
    assert hs.crm.schemas.core_api.get_all().results == []
    assert api("/crm/v3/schemas").json() == {"results": []}
    missing = api("/crm/v3/schemas/p_cars")
    assert missing.status_code == 404
    shape(missing.json(), ERROR)


def test_tickets_are_a_standard_object(hs):
    # "Tickets": properties, create (hs_pipeline_stage), search, associations (ticket -> company 339)
    names = {p.name for p in hs.crm.properties.core_api.get_all("tickets").results}
    assert {"subject", "content", "hs_pipeline", "hs_pipeline_stage", "hs_ticket_priority"} <= names
    ticket = hs.crm.tickets.basic_api.create(SimplePublicObjectInputForCreate(
        properties={"subject": "Printer on fire", "hs_pipeline_stage": "1", "hs_ticket_priority": "HIGH"},
        associations=[{"to": {"id": fx.company_id(1)},
                       "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 339}]}]))
    assert ticket.properties["hs_pipeline"] == "0"
    found = hs.crm.tickets.search_api.do_search(PublicObjectSearchRequest(
        filter_groups=[{"filters": [{"propertyName": "hs_ticket_priority", "operator": "EQ", "value": "HIGH"}]}]))
    assert found.total == 1 and found.results[0].id == ticket.id
    linked = hs.crm.associations.v4.basic_api.get_page("tickets", ticket.id, "companies").results
    assert [(a.to_object_id, a.association_types[0].type_id) for a in linked] == [(fx.company_id(1), 339)]
    back = hs.crm.associations.v4.basic_api.get_page("companies", fx.company_id(1), "tickets").results
    assert back[0].association_types[0].type_id == 340


def test_companies_v2_paged(api):
    # "Get all companies": {companies: [{portalId, companyId, isDeleted, properties: {name: {value, timestamp,
    # source, sourceId, versions}}}], has-more, offset}; no properties unless asked for
    first = api("/companies/v2/companies/paged?limit=2&properties=name").json()
    shape(first, {"companies": list, "has-more": bool, "offset": int})
    company = first["companies"][0]
    shape(company, {"portalId": int, "companyId": int, "isDeleted": bool, "properties": dict})
    shape(company["properties"]["name"], {"value": str, "timestamp": int, "source": str, "versions": list})
    rest = api(f"/companies/v2/companies/paged?limit=250&offset={first['offset']}").json()
    assert rest["has-more"] is False and all(c["properties"] == {} for c in rest["companies"])
    ids = [c["companyId"] for c in first["companies"] + rest["companies"]]
    assert ids == sorted(ids) and len(ids) == 5  # six companies, the last archived


def test_deals_v1_paged_and_engagements_v1_paged(api):
    deals = api("/deals/v1/deal/paged?limit=3&properties=dealname&includeAssociations=true").json()
    shape(deals, {"deals": list, "hasMore": bool, "offset": int})
    shape(deals["deals"][0], {"portalId": int, "dealId": int, "isDeleted": bool, "properties": dict,
                              "associations": dict})
    assert deals["deals"][0]["associations"]["associatedCompanyIds"]
    engagements = api("/engagements/v1/engagements/paged?limit=2").json()
    shape(engagements, {"results": list, "hasMore": bool, "offset": int})
    item = engagements["results"][0]
    shape(item, {"engagement": dict, "associations": dict, "attachments": list, "metadata": dict})
    shape(item["engagement"], {"id": int, "portalId": int, "type": str, "createdAt": int, "lastUpdated": int,
                               "timestamp": int})
    shape(item["associations"], {"contactIds": list, "companyIds": list, "dealIds": list, "ticketIds": list})


@pytest.mark.parametrize("path", ["/properties/v1/contacts/properties", "/properties/v1/deals/properties",
                                  "/properties/v2/tickets/properties", "/companies/v2/properties"])
def test_legacy_properties_are_plain_lists(api, path):
    # "Get all ... properties" (v1) and the CRM Properties API v2 answer a JSON array of definitions
    answer = api(path).json()
    assert isinstance(answer, list) and answer
    shape(answer[0], {"name": str, "label": str, "groupName": str, "type": str, "fieldType": str, "options": list,
                      "readOnlyValue": bool, "hubspotDefined": bool})


@pytest.mark.parametrize("path", ["/crm/v3/objects/widgets/1", "/companies/v2/nothing/here", "/owners/v2/owners",
                                  "/crm/v9/whatever", "/totally/unknown"])
def test_every_hubspot_404_is_hubspot_shaped(api, path):
    # "Error handling": {status: "error", message, correlationId, category}; an unknown root path counts as
    # HubSpot's because the request carries this portal's token (ambiguous: the docs do not show unrouted paths)
    answer = api(path)
    assert answer.status_code in (400, 404)
    shape(answer.json(), ERROR)
    assert answer.json()["status"] == "error"
