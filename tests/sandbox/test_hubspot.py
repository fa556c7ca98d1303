"""The HubSpot emulator, driven by the unmodified hubspot-api-client over real HTTP (and once over TLS)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import urllib3
from hubspot import HubSpot
from hubspot.crm.associations.v4 import (
    AssociationSpec,
    BatchInputPublicFetchAssociationsBatchRequest,
    PublicFetchAssociationsBatchRequest,
)
from hubspot.crm.companies import (
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectBatchInputForCreate,
    BatchReadInputSimplePublicObjectId,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInput,
    SimplePublicObjectBatchInputForCreate,
    SimplePublicObjectId,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.objects.tasks import AssociationSpec as TaskAssociationSpec
from hubspot.crm.objects.tasks import PublicAssociationsForObject, PublicObjectId
from hubspot.crm.objects.tasks import SimplePublicObjectInputForCreate as TaskCreate
from hubspot.crm.properties import PropertyCreate, PropertyGroupCreate

from healthsync.sandbox.core import SandboxServer
from healthsync.sandbox.credentials import DEMO
from healthsync.sandbox.hubspot import HubSpotEmulator
from healthsync.sandbox.hubspot.schema import parse_datetime_ms

from .hs_fixtures import AS_OF, company_id, small_portfolio

NO_RETRY = urllib3.util.Retry(total=0, respect_retry_after_header=False, raise_on_status=False)
LIVE_COMPANIES = 24  # small_portfolio(25) deletes its last account


def start(time_scale: float = 50.0) -> SandboxServer:
    server = SandboxServer([HubSpotEmulator], time_scale=time_scale).start()
    server.emulator("hubspot").load(small_portfolio())
    return server


@pytest.fixture()
def server():
    srv = start()
    # Functional tests must not depend on how fast this box is; the two rate-limit tests use the real limits.
    srv.emulator("hubspot").search_limit_per_second = 1000
    yield srv
    srv.stop()


@pytest.fixture()
def emu(server) -> HubSpotEmulator:
    return server.emulator("hubspot")


def client(server, token: str = DEMO.hubspot.access_token, **kw) -> HubSpot:
    kw.setdefault("host", server.http_url)
    return HubSpot(access_token=token, retry=NO_RETRY, **kw)


def api_error(call, *args, **kwargs):
    """Run an SDK call that must fail; return the exception (each SDK package has its own class tree)."""
    with pytest.raises(Exception) as caught:
        call(*args, **kwargs)
    assert hasattr(caught.value, "status"), caught.value
    return caught.value


def search(hs: HubSpot, object_type: str = "companies", **request):
    api = getattr(hs.crm, object_type).search_api if object_type in ("companies", "contacts", "deals") else None
    body = PublicObjectSearchRequest(**request)
    return api.do_search(public_object_search_request=body)


# ----------------------------------------------------------------------------------------------- reading


def test_list_pages_through_companies_with_properties_and_associations(server):
    hs = client(server)
    api = hs.crm.companies.basic_api
    pages, after = [], None
    while True:
        page = api.get_page(limit=10, after=after, properties=["name", "arr", "renewal_date"],
                            associations=["contacts"], archived=False)
        pages.append(page)
        if page.paging is None:
            break
        after = page.paging.next.after
    assert [len(p.results) for p in pages] == [10, 10, 4]
    first = pages[0].results[0]
    assert first.id == company_id(0)
    assert first.properties["name"] == "Acme 00" and first.properties["arr"] == "20000"
    assert first.properties["renewal_date"] == "2024-07-01"
    assert "hs_lastmodifieddate" in first.properties and "domain" not in first.properties
    assert [a.id for a in first.associations["contacts"].results] == ["5000"]
    exactly_full = api.get_page(limit=12, after=company_id(12))
    assert len(exactly_full.results) == 12 and exactly_full.paging is None  # no paging on the last page
    everything = hs.crm.companies.get_all(properties=["plan_tier"])
    assert len(everything) == LIVE_COMPANIES and len({c.id for c in everything}) == LIVE_COMPANIES
    assert server.calls.snapshot()["hubspot list_objects"] == 3 + 1 + 1  # 3 pages, the full one, get_all's one


def test_comma_separated_properties_and_python_booleans_are_accepted(server):
    import requests

    r = requests.get(server.http_url + "/crm/v3/objects/companies",
                     params={"properties": "name,plan_tier", "archived": "False", "limit": "2"},
                     headers={"Authorization": f"Bearer {DEMO.hubspot.access_token}"})
    assert r.status_code == 200
    assert set(r.json()["results"][0]["properties"]) >= {"name", "plan_tier"}
    assert r.json()["paging"]["next"]["after"] == company_id(2)


def test_archived_companies_are_visible_only_with_archived_true(server, emu):
    hs = client(server)
    api = hs.crm.companies.basic_api
    archived = api.get_page(archived=True, limit=100)
    assert [c.id for c in archived.results] == [company_id(24)] and archived.results[0].archived is True
    assert archived.results[0].archived_at is not None
    api.archive(company_id(3))  # 204: the SDK returns None
    assert {c.id for c in api.get_page(archived=True, limit=100).results} == {company_id(3), company_id(24)}
    assert company_id(3) not in {c.id for c in hs.crm.companies.get_all()}
    assert api_error(api.get_by_id, company_id(3)).status == 404
    assert [o["id"] for o in emu.objects("companies", archived=True)] == [company_id(3), company_id(24)]


def test_portfolio_is_rendered_with_the_field_map_defaults(emu):
    company = emu.get("companies", company_id(5))["properties"]
    assert company["plan_tier"] == "growth" and company["hubspot_owner_id"] == "102"
    assert company["seats_purchased"] == "15" and company["contract_start_date"] == "2023-01-06"
    contact = emu.get("contacts", "5001")["properties"]
    assert contact["is_champion"] == "true" and contact["left_company"] == "true"
    assert contact["left_company_date"] == (AS_OF - timedelta(days=3)).date().isoformat()
    deals = {d["id"]: d["properties"] for d in emu.objects("deals")}
    assert deals["8000"]["dealstage"] == "appointmentscheduled" and deals["8002"]["dealstage"] == "closedwon"
    assert deals["8001"]["deal_type"] == "renewal" and deals["8001"]["amount"] == "15001.50"
    meetings = {m["id"]: m["properties"] for m in emu.objects("meetings")}
    assert meetings["9001"]["hs_activity_type"] == "QBR" and meetings["9001"]["hs_meeting_outcome"] == "NO_SHOW"
    emails = {m["id"]: m["properties"] for m in emu.objects("emails")}
    assert emails["9003"]["hs_email_direction"] == "INCOMING_EMAIL"
    assert emu.associations("meetings", "9000", "companies") == [company_id(0)]
    assert emu.associations("companies", company_id(0), "meetings") == ["9000"]
    assert emu.associations("calls", "9002", "contacts") == ["5002"]


# ----------------------------------------------------------------------------------------------- search


def test_search_with_filters_sorts_and_paging(server):
    hs = client(server)
    since = int((AS_OF - timedelta(days=20)).timestamp() * 1000)
    request = dict(filter_groups=[{"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GTE",
                                                "value": str(since)}]}],
                   sorts=["-hs_lastmodifieddate"], properties=["name", "hs_lastmodifieddate"], limit=5)
    seen, after, pages = [], None, 0
    while True:
        page = search(hs, after=after, **request)
        pages += 1
        assert page.total == 21  # modified 0..20 days before AS_OF
        seen += page.results
        if page.paging is None:
            break
        after = page.paging.next.after
    assert pages == 5 and len(seen) == 21
    stamps = [parse_datetime_ms(r.properties["hs_lastmodifieddate"]) for r in seen]
    assert stamps == sorted(stamps, reverse=True) and min(stamps) >= since

    between = search(hs, filter_groups=[{"filters": [
        {"propertyName": "arr", "operator": "BETWEEN", "value": "25000", "highValue": "27000"},
        {"propertyName": "plan_tier", "operator": "IN", "values": ["growth", "business"]}]}],
        sorts=[{"propertyName": "arr", "direction": "DESCENDING"}], properties=["arr"])
    assert [r.properties["arr"] for r in between.results] == ["26000", "25000"]

    either = search(hs, filter_groups=[
        {"filters": [{"propertyName": "domain", "operator": "CONTAINS_TOKEN", "value": "acme3*"}]},
        {"filters": [{"propertyName": "nps_score", "operator": "NOT_HAS_PROPERTY"},
                     {"propertyName": "createdate", "operator": "LT", "value": AS_OF.isoformat()}]}], limit=100)
    ids = {r.id for r in either.results}
    assert company_id(3) in ids and company_id(0) in ids and company_id(1) not in ids


def test_search_rejects_bad_requests_and_the_10k_cap(server):
    hs = client(server)
    too_far = api_error(search, hs, after="10000", limit=100)
    assert too_far.status == 400
    assert json.loads(too_far.body)["message"] == "There was a problem with the request."
    assert api_error(search, hs, after="9900", limit=200).status == 400
    assert api_error(search, hs, limit=201).status == 400
    six_groups = [{"filters": [{"propertyName": "name", "operator": "HAS_PROPERTY"}]}] * 6
    assert api_error(search, hs, filter_groups=six_groups).status == 400
    seven_filters = [{"filters": [{"propertyName": "name", "operator": "HAS_PROPERTY"}] * 7}]
    assert api_error(search, hs, filter_groups=seven_filters).status == 400
    unknown = api_error(search, hs, filter_groups=[{"filters": [{"propertyName": "nope", "operator": "EQ",
                                                                   "value": "1"}]}])
    assert json.loads(unknown.body)["category"] == "VALIDATION_ERROR"


def test_same_timestamp_flood_needs_id_windowing(server, emu):
    moment = AS_OF + timedelta(days=1)
    emu.bulk_create("companies", 10_050, properties=lambda i: {"name": f"Bulk {i}"}, at=moment)
    emu.touch_all("companies", at=moment)
    hs = client(server)
    same = [{"propertyName": "hs_lastmodifieddate", "operator": "EQ", "value": str(int(moment.timestamp() * 1000))}]
    first = search(hs, filter_groups=[{"filters": same}], sorts=["hs_object_id"], limit=200)
    assert first.total == 10_050 + LIVE_COMPANIES
    assert api_error(search, hs, filter_groups=[{"filters": same}], after="10000", limit=200).status == 400
    last_id = first.results[-1].id
    window = same + [{"propertyName": "hs_object_id", "operator": "GT", "value": last_id}]
    rest = search(hs, filter_groups=[{"filters": window}], sorts=["hs_object_id"], limit=200)
    assert rest.total == first.total - 200 and int(rest.results[0].id) > int(last_id)


# ----------------------------------------------------------------------------------------------- batch


def test_batch_update_partial_failure_is_207_with_per_input_errors(server, emu):
    hs = client(server)
    before = emu.get("companies", company_id(1))["properties"]["hs_lastmodifieddate"]
    inputs = [SimplePublicObjectBatchInput(id=company_id(1), properties={"arr": "99000", "payment_status": "overdue"}),
              SimplePublicObjectBatchInput(id="424242", properties={"arr": "1"}),
              SimplePublicObjectBatchInput(id=company_id(2), properties={"no_such_field": "x"}),
              SimplePublicObjectBatchInput(id=company_id(4), properties={"arr": "lots"})]
    answer = hs.crm.companies.batch_api.update(BatchInputSimplePublicObjectBatchInput(inputs=inputs))
    assert answer.status == "COMPLETE" and answer.num_errors == 3
    assert [r.id for r in answer.results] == [company_id(1)]
    by_category = {}
    for err in answer.errors:
        by_category.setdefault(err.category, []).append(err)
    assert by_category["OBJECT_NOT_FOUND"][0].context == {"ids": ["424242"]}
    invalid = {e.context["ids"][0]: e for e in by_category["VALIDATION_ERROR"]}
    assert invalid[company_id(2)].errors[0].code == "PROPERTY_DOESNT_EXIST"
    assert invalid[company_id(4)].errors[0].code == "INVALID_DOUBLE"
    after = emu.get("companies", company_id(1))["properties"]
    assert after["arr"] == "99000" and after["hs_lastmodifieddate"] > before
    assert emu.get("companies", company_id(4))["properties"]["arr"] == "24000"  # the bad input changed nothing

    read = hs.crm.companies.batch_api.read(BatchReadInputSimplePublicObjectId(
        inputs=[SimplePublicObjectId(id=company_id(1)), SimplePublicObjectId(id="1")], properties=["arr"],
        properties_with_history=[]))
    assert [r.properties["arr"] for r in read.results] == ["99000"] and read.errors[0].context == {"ids": ["1"]}
    clean = hs.crm.companies.batch_api.read(BatchReadInputSimplePublicObjectId(
        inputs=[SimplePublicObjectId(id=company_id(1))], properties=["payment_status"], properties_with_history=[]))
    assert clean.results[0].properties["payment_status"] == "overdue"
    assert type(clean).__name__ == "BatchResponseSimplePublicObject"  # 200, not 207


def test_batch_over_the_limit_is_rejected_and_batch_create_is_201(server, emu):
    hs = client(server)
    too_many = [SimplePublicObjectBatchInput(id=company_id(0), properties={"arr": "1"})] * 101
    err = api_error(hs.crm.companies.batch_api.update, BatchInputSimplePublicObjectBatchInput(inputs=too_many))
    assert err.status == 400 and "limit of 100" in json.loads(err.body)["message"]
    assert emu.get("companies", company_id(0))["properties"]["arr"] == "20000"
    created = hs.crm.companies.batch_api.create(BatchInputSimplePublicObjectBatchInputForCreate(inputs=[
        SimplePublicObjectBatchInputForCreate(properties={"name": "New Co", "plan_tier": "growth"}, associations=[]),
        SimplePublicObjectBatchInputForCreate(properties={"name": "Bad Co", "plan_tier": "platinum"},
                                              associations=[], object_write_trace_id="t-2")]))
    assert [r.properties["name"] for r in created.results] == ["New Co"]
    assert created.errors[0].context == {"objectWriteTraceId": ["t-2"]}
    assert created.errors[0].errors[0].code == "INVALID_OPTION"
    fine = hs.crm.companies.batch_api.create(BatchInputSimplePublicObjectBatchInputForCreate(inputs=[
        SimplePublicObjectBatchInputForCreate(properties={"name": "Fine Co"}, associations=[])]))
    assert fine is not None and fine.results[0].id.isdigit()  # 201 is in the SDK's response map


# ----------------------------------------------------------------------------------------------- writes


def test_create_task_with_association_and_read_it_back(server, emu):
    hs = client(server)
    due = (AS_OF + timedelta(days=1)).isoformat()
    task = hs.crm.objects.tasks.basic_api.create(TaskCreate(
        properties={"hs_task_subject": "Review account", "hs_task_body": "score 55 < 60", "hs_timestamp": due,
                    "hs_task_status": "NOT_STARTED", "hs_task_priority": "HIGH", "hubspot_owner_id": "101"},
        associations=[PublicAssociationsForObject(
            to=PublicObjectId(id=company_id(7)),
            types=[TaskAssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=192)])]))
    assert task is not None and task.properties["hs_task_priority"] == "HIGH"
    assert task.properties["hs_timestamp"] == "2024-06-02T12:00:00.000Z"
    linked = hs.crm.associations.v4.basic_api.get_page("tasks", task.id, "companies", limit=500)
    assert [str(r.to_object_id) for r in linked.results] == [company_id(7)]
    assert linked.results[0].association_types[0].type_id == 192
    assert task.id in emu.associations("companies", company_id(7), "tasks")
    batch = hs.crm.associations.v4.batch_api.get_page("companies", "tasks",
                                                      BatchInputPublicFetchAssociationsBatchRequest(
                                                          inputs=[PublicFetchAssociationsBatchRequest(id=company_id(7)),
                                                                  PublicFetchAssociationsBatchRequest(id=company_id(8))]))
    assert [str(t.to_object_id) for t in batch.results[0].to] == [task.id]
    assert batch.num_errors == 1  # company 8 has no tasks
    no_due = api_error(hs.crm.objects.tasks.basic_api.create, TaskCreate(properties={"hs_task_subject": "x"}))
    assert no_due.status == 400 and "hs_timestamp" in json.loads(no_due.body)["message"]
    bad_owner = api_error(hs.crm.objects.tasks.basic_api.create, TaskCreate(
        properties={"hs_task_subject": "x", "hs_timestamp": due, "hubspot_owner_id": "999"}))
    assert "INVALID_OWNER_ID" in json.loads(bad_owner.body)["message"]


def test_v4_default_and_labelled_associations(server, emu):
    hs = client(server)
    note_id = emu.create("notes", {"hs_note_body": "hello", "hs_timestamp": AS_OF.isoformat()})
    answer = hs.crm.associations.v4.basic_api.create_default("notes", note_id, "contacts", "5003")
    assert answer is not None and answer.results[0].association_spec.association_type_id == 202
    labelled = hs.crm.associations.v4.basic_api.create(
        "notes", note_id, "companies", company_id(3),
        [AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=190)])
    assert labelled is not None and str(labelled.to_object_id) == company_id(3)
    assert emu.associations("contacts", "5003", "notes") == [note_id]
    assert emu.associations("notes", note_id, "companies") == [company_id(3)]
    err = api_error(hs.crm.associations.v4.basic_api.create, "notes", note_id, "companies", company_id(3),
                    [AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=192)])
    assert err.status == 400


def test_update_and_create_validate_property_values(server, emu):
    hs = client(server)
    api = hs.crm.companies.basic_api
    updated = api.update(company_id(2), SimplePublicObjectInput(properties={"renewal_date": "2025-01-31"}))
    assert updated.properties["renewal_date"] == "2025-01-31"
    err = api_error(api.update, company_id(2), SimplePublicObjectInput(properties={"renewal_date": "soon"}))
    assert err.status == 400 and json.loads(err.body)["category"] == "VALIDATION_ERROR"
    err = api_error(api.create, SimplePublicObjectInputForCreate(properties={"name": "X", "health_score": "5"}))
    assert "PROPERTY_DOESNT_EXIST" in json.loads(err.body)["message"]
    assert api_error(api.update, "77", SimplePublicObjectInput(properties={"name": "x"})).status == 404
    created = api.create(SimplePublicObjectInputForCreate(properties={"name": "Made Here", "arr": 1200}))
    assert created is not None and emu.get("companies", created.id)["properties"]["arr"] == "1200"


def test_properties_create_conflict_groups_and_missing_scopes(server, emu):
    hs = client(server)
    group = hs.crm.properties.groups_api.create("companies", PropertyGroupCreate(name="healthsync", label="Health"))
    assert group is not None and group.name == "healthsync"
    assert api_error(hs.crm.properties.groups_api.create, "companies",
                     PropertyGroupCreate(name="healthsync", label="Health")).status == 409
    definition = PropertyCreate(name="healthsync_score", label="Health score", type="number", field_type="number",
                                group_name="healthsync")
    created = hs.crm.properties.core_api.create("companies", definition)
    assert created is not None and created.group_name == "healthsync"
    conflict = api_error(hs.crm.properties.core_api.create, "companies", definition)
    assert conflict.status == 409
    assert json.loads(conflict.body) | {"correlationId": None} == {
        "status": "error", "message": "Property named 'healthsync_score' already exists.",
        "category": "OBJECT_ALREADY_EXISTS", "correlationId": None}
    assert hs.crm.properties.core_api.get_by_name("companies", "healthsync_score").type == "number"
    names = {p.name for p in hs.crm.properties.core_api.get_all("companies").results}
    assert {"healthsync_score", "arr", "renewal_date"} <= names
    hs.crm.companies.basic_api.update(company_id(0), SimplePublicObjectInput(properties={"healthsync_score": "72"}))
    assert emu.get("companies", company_id(0))["properties"]["healthsync_score"] == "72"
    emu.allow_schema_writes = False
    denied = api_error(hs.crm.properties.core_api.create, "companies",
                       PropertyCreate(name="other", label="Other", type="string", field_type="text",
                                      group_name="healthsync"))
    assert denied.status == 403 and json.loads(denied.body)["category"] == "MISSING_SCOPES"


def test_owners_by_email_and_archived(server):
    hs = client(server)
    page = hs.crm.owners.owners_api.get_page(email="robin@vendor.test")
    assert [(o.id, o.first_name, o.archived) for o in page.results] == [("102", "Robin", False)]
    assert page.results[0].user_id is not None
    assert {o.id for o in hs.crm.owners.get_all()} == {"101", "102"}
    gone = hs.crm.owners.owners_api.get_page(archived=True)
    assert [o.email for o in gone.results] == ["sam@vendor.test"]


def test_helpers_bump_modstamps_seen_by_incremental_search(server, emu):
    hs = client(server)
    cutoff = emu.clock.now()
    emu.update("companies", company_id(9), {"nps_score": "10"})
    new_id = emu.create("contacts", {"email": "new@acme9.test"}, associations={"companies": [company_id(9)]})
    recent = [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": cutoff.isoformat()}]
    assert [r.id for r in search(hs, filter_groups=[{"filters": recent}]).results] == [company_id(9)]
    hs.crm.companies.basic_api.update(company_id(11), SimplePublicObjectInput(properties={"nps_score": "3"}))
    hs.crm.companies.basic_api.update(company_id(12), SimplePublicObjectInput(properties={"name": "Acme 12"}))
    again = search(hs, filter_groups=[{"filters": recent}])  # same query: the cached hits must not be stale
    assert [r.id for r in again.results] == [company_id(9), company_id(11)]  # the no-op PATCH moved nothing
    contacts = hs.crm.contacts.search_api.do_search(public_object_search_request=PublicObjectSearchRequest(
        filter_groups=[{"filters": [{"propertyName": "associations.company", "operator": "EQ",
                                     "value": company_id(9)}]}]))
    assert {r.id for r in contacts.results} == {"5009", new_id}
    emu.archive("companies", company_id(9))
    assert [r.id for r in search(hs, filter_groups=[{"filters": recent}]).results] == [company_id(11)]  # no archived
    with pytest.raises(ValueError, match="PROPERTY_DOESNT_EXIST"):
        emu.create("companies", {"bogus": "1"})


# ----------------------------------------------------------------------------------------------- auth, limits, faults


def test_bad_token_is_unauthorized_with_the_real_body(server):
    from hubspot.crm.companies.exceptions import UnauthorizedException

    with pytest.raises(UnauthorizedException) as caught:
        client(server, token="pat-wrong").crm.companies.basic_api.get_page()
    body = json.loads(caught.value.body)
    assert body["category"] == "INVALID_AUTHENTICATION" and body["message"].startswith("Authentication credentials")


def test_oauth_refresh_token_flow_and_token_expiry(server, emu):
    from hubspot.crm.companies.exceptions import UnauthorizedException

    anonymous = HubSpot(host=server.http_url, retry=NO_RETRY)
    creds = DEMO.hubspot
    tokens = anonymous.oauth.tokens_api.create(grant_type="refresh_token", client_id=creds.client_id,
                                               client_secret=creds.client_secret, refresh_token=creds.refresh_token)
    assert tokens.expires_in == 1800 and tokens.access_token != creds.access_token
    assert len(client(server, token=tokens.access_token).crm.companies.basic_api.get_page().results) == 10
    emu.expire_tokens()
    with pytest.raises(UnauthorizedException) as caught:
        client(server, token=tokens.access_token).crm.companies.basic_api.get_page()
    assert json.loads(caught.value.body)["category"] == "EXPIRED_AUTHENTICATION"
    fresh = anonymous.oauth.tokens_api.create(grant_type="refresh_token", client_id=creds.client_id,
                                              client_secret=creds.client_secret, refresh_token=creds.refresh_token)
    emu.clock.advance(timedelta(minutes=31))
    assert api_error(client(server, token=fresh.access_token).crm.companies.basic_api.get_page).status == 401
    bad = api_error(anonymous.oauth.tokens_api.create, grant_type="refresh_token", client_id=creds.client_id,
                    client_secret=creds.client_secret, refresh_token="stolen")
    assert bad.status == 400 and json.loads(bad.body)["status"] == "BAD_REFRESH_TOKEN"


def test_burst_limit_answers_429_with_rate_limit_headers():
    server = start(time_scale=0.1)  # a 100 s window: a loaded CI box cannot outlast it between calls
    try:
        emu = server.emulator("hubspot")
        emu.burst_limit = 3
        api = client(server).crm.companies.basic_api
        _, status, headers = api.get_page_with_http_info(limit=1)
        assert status == 200 and headers["X-HubSpot-RateLimit-Max"] == "3"
        assert headers["X-HubSpot-RateLimit-Remaining"] == "2"
        assert headers["X-HubSpot-RateLimit-Daily-Remaining"] == "649999"
        api.get_page(limit=1)
        api.get_page(limit=1)
        limited = api_error(api.get_page, limit=1)
        assert limited.status == 429 and "Retry-After" not in limited.headers
        body = json.loads(limited.body)
        assert body["policyName"] == "TEN_SECONDLY_ROLLING" and body["errorType"] == "RATE_LIMIT"
        assert body["message"] == "You have reached your ten_secondly_rolling limit."
        emu.send_retry_after = True
        again = api_error(api.get_page, limit=1)
        assert again.status == 429 and 1 <= int(again.headers["Retry-After"]) <= 100
    finally:
        server.stop()


def test_search_has_its_own_per_second_limit():
    server = start(time_scale=0.1)  # the 1 s search window becomes 10 s
    try:
        hs = client(server)
        statuses = []
        for _ in range(7):
            try:
                search(hs, limit=1)
                statuses.append(200)
            except Exception as exc:  # noqa: BLE001 - the package's ApiException
                statuses.append(exc.status)
                assert json.loads(exc.body)["policyName"] == "SECONDLY"
        assert statuses[:5] == [200] * 5 and 429 in statuses[5:]
    finally:
        server.stop()


def test_tls_with_the_sandbox_ca(server):
    hs = client(server, host=server.https_url, ssl_ca_cert=str(server.ca_path))
    assert len(hs.crm.companies.basic_api.get_page(limit=3).results) == 3


def test_faults_expired_session_and_odd_record(server, emu):
    from hubspot.crm.companies.exceptions import UnauthorizedException

    api = client(server).crm.companies.basic_api
    server.faults.add(r"/crm/v3/objects/companies", kind="expired_session")
    with pytest.raises(UnauthorizedException) as caught:
        api.get_page()
    assert json.loads(caught.value.body)["category"] == "EXPIRED_AUTHENTICATION"
    emu.odd_record_mode = "missing_properties"
    server.faults.add(r"/crm/v3/objects/companies", kind="odd_record")
    page = api.get_page(limit=10)
    assert sum(r.properties is None for r in page.results) == 1
    emu.odd_record_mode = "bad_timestamp"
    server.faults.add(r"/crm/v3/objects/companies/search", kind="odd_record")
    found = search(client(server), limit=10, properties=["hs_lastmodifieddate"])
    unparsable = [r for r in found.results if parse_datetime_ms(r.properties["hs_lastmodifieddate"]) is None]
    assert len(unparsable) == 1
    assert all(parse_datetime_ms(r.properties["hs_lastmodifieddate"]) for r in api.get_page(limit=10).results)


def test_daily_limit_resets_at_sandbox_midnight(server, emu):
    emu.daily_limit = 2
    api = client(server).crm.companies.basic_api
    api.get_page(limit=1)
    _, _, headers = api.get_page_with_http_info(limit=1)
    assert headers["X-HubSpot-RateLimit-Daily-Remaining"] == "0"
    limited = api_error(api.get_page, limit=1)
    assert limited.status == 429 and json.loads(limited.body)["policyName"] == "DAILY"
    emu.clock.advance(timedelta(days=1))
    assert len(api.get_page(limit=1).results) == 1


def test_unknown_object_type_and_lookup_by_unique_property(server):
    import requests

    auth = {"Authorization": f"Bearer {DEMO.hubspot.access_token}"}
    r = requests.get(server.http_url + "/crm/v3/objects/widgets", headers=auth)
    assert r.status_code == 400 and r.json()["message"] == "Unable to infer object type from: widgets"
    hs = client(server)
    contact = hs.crm.contacts.basic_api.get_by_id("PAT3@acme3.test", id_property="email", properties=["lastname"])
    assert contact.id == "5003" and contact.properties["lastname"] == "Doe3"
    legacy = requests.post(server.http_url + "/crm/v3/objects/notes", headers=auth, json={
        "properties": {"hs_note_body": "legacy", "hs_timestamp": "1717243200000"},
        "associations": [{"to": company_id(2), "type": "note_to_company"}]})
    assert legacy.status_code == 201 and legacy.json()["properties"]["hs_timestamp"] == "2024-06-01T12:00:00.000Z"
    linked = hs.crm.associations.v4.basic_api.get_page("companies", company_id(2), "notes")
    assert [str(x.to_object_id) for x in linked.results] == [legacy.json()["id"]]
