"""Zendesk users, organizations, groups, custom field definitions and satisfaction ratings against their
documented requests and JSON formats, with zenpy where it covers the endpoint."""

from __future__ import annotations

from .. import zm_fixtures as fx
from .conftest import zd_get, zenpy
from .docshapes import (
    ZD_CURSOR_PAGE,
    ZD_CUSTOM_FIELD,
    ZD_ERROR,
    ZD_FIELD_OPTION,
    ZD_GROUP,
    ZD_OFFSET_PAGE,
    ZD_ORGANIZATION,
    ZD_RATING,
    ZD_USER,
    assert_shape,
)


def test_users_list_show_and_show_many(zd_server):
    zd = zenpy(zd_server)
    users = list(zd.users())  # GET /api/v2/users
    assert len(users) == 12
    listed = zd_get(zd_server, "/api/v2/users.json", **{"page[size]": 5}).json()
    assert_shape(listed, {**ZD_CURSOR_PAGE, "users": [ZD_USER]})
    assert_shape(zd_get(zd_server, "/api/v2/users/1010.json").json()["user"], ZD_USER)
    # GET /api/v2/users/show_many?ids=1,2
    assert sorted(u.id for u in zd.users(ids=[1010, 1011, 999])) == [1010, 1011]
    many = zd_get(zd_server, "/api/v2/users/show_many.json", ids="1010,1011").json()
    assert_shape(many, {**ZD_OFFSET_PAGE, "users": [ZD_USER]})
    assert many["users"][0]["user_fields"] == {"customer_since": "2023-10-14T00:00:00Z"}


def test_organizations_list_show_and_show_many_by_ids_and_external_ids(zd_server):
    zd = zenpy(zd_server)
    assert [o.id for o in zd.organizations()] == [101, 102, 103, 104, fx.UNMATCHED_ORG_ID]
    shown = zd_get(zd_server, "/api/v2/organizations/101.json").json()["organization"]
    assert_shape(shown, ZD_ORGANIZATION)
    assert shown["organization_fields"] == {"plan_tier": "growth"}
    assert sorted(o.id for o in zd.organizations(ids=[101, 102])) == [101, 102]
    # GET /api/v2/organizations/show_many?external_ids=ABC123,DEF456
    by_external = zd_get(zd_server, "/api/v2/organizations/show_many.json",
                         external_ids=f"{fx.sf_id(1)},{fx.UNMATCHED_EXTERNAL_ID}").json()
    assert sorted(o["id"] for o in by_external["organizations"]) == [101, fx.UNMATCHED_ORG_ID]
    neither = zd_get(zd_server, "/api/v2/organizations/show_many.json")
    assert neither.status_code == 400
    assert_shape(neither.json(), ZD_ERROR)


def test_groups_list_and_show(zd_server):
    groups = list(zenpy(zd_server).groups())  # GET /api/v2/groups
    assert [g.name for g in groups] == ["Support", "Escalations"]
    body = zd_get(zd_server, "/api/v2/groups", **{"page[size]": 1}).json()
    assert_shape(body, {**ZD_CURSOR_PAGE, "groups": [ZD_GROUP]})
    assert body["meta"]["has_more"] is True
    tickets = zd_get(zd_server, "/api/v2/tickets.json").json()["tickets"]
    assert {t["group_id"] for t in tickets} <= {g.id for g in groups}
    assert zd_get(zd_server, f"/api/v2/groups/{groups[0].id}.json").json()["group"]["default"] is True


def test_organization_and_user_field_definitions(zd_server):
    zd = zenpy(zd_server)
    org_fields = list(zd.organization_fields())  # GET /api/v2/organization_fields
    user_fields = list(zd.user_fields())  # GET /api/v2/user_fields
    assert [f.key for f in org_fields] == ["plan_tier"] and [f.key for f in user_fields] == ["customer_since"]
    body = zd_get(zd_server, "/api/v2/organization_fields.json").json()
    assert_shape(body, {**ZD_OFFSET_PAGE, "organization_fields": [ZD_CUSTOM_FIELD]})
    assert_shape(body["organization_fields"][0]["custom_field_options"], [ZD_FIELD_OPTION])
    assert_shape(zd_get(zd_server, "/api/v2/user_fields.json").json()["user_fields"], [ZD_CUSTOM_FIELD])
    # every organization's custom field values are keyed by a defined field's key
    keys = {f.key for f in org_fields}
    assert all(set(o.organization_fields) <= keys for o in zd.organizations())


def test_satisfaction_ratings_shape(zd_server):
    ratings = list(zenpy(zd_server).satisfaction_ratings())  # GET /api/v2/satisfaction_ratings
    assert len(ratings) == 12
    body = zd_get(zd_server, "/api/v2/satisfaction_ratings", **{"page[size]": 100}).json()
    assert_shape(body, {**ZD_CURSOR_PAGE, "satisfaction_ratings": [ZD_RATING]})
    assert {r["score"] for r in body["satisfaction_ratings"]} <= {"good", "bad"}
    float_start = zd_get(zd_server, "/api/v2/satisfaction_ratings.json", start_time="0.0")
    assert float_start.status_code == 200 and len(float_start.json()["satisfaction_ratings"]) == 12
