"""Zendesk's incremental exports against the Incremental Exports reference: cursor- and time-based ticket and
user exports, organizations, ticket events, the samples, `start_time` forms, sideloads and `exclude_deleted`."""

from __future__ import annotations

from datetime import timedelta

import pytest
from zenpy.lib.exception import APIException

from .. import zm_fixtures as fx
from .conftest import zd_get, zenpy
from .docshapes import (
    ZD_COMMENT_EVENT,
    ZD_CURSOR_EXPORT,
    ZD_ERROR,
    ZD_METRIC,
    ZD_ORGANIZATION,
    ZD_TICKET,
    ZD_TICKET_EVENT,
    ZD_TIME_EXPORT,
    ZD_USER,
    assert_shape,
)

DOC_START_TIME = 1332034771  # the start_time of the reference's example requests
ALL_TICKETS = set(range(1, fx.TICKET_COUNT + 1))


def test_cursor_ticket_export_documented_request_and_shape(zd_server):
    # GET /api/v2/incremental/tickets/cursor.json?start_time=1332034771
    body = zd_get(zd_server, "/api/v2/incremental/tickets/cursor.json", start_time=DOC_START_TIME).json()
    assert_shape(body, {**ZD_CURSOR_EXPORT, "tickets": [ZD_TICKET]})
    assert "end_time" not in body and body["end_of_stream"] is True
    assert {t["id"] for t in body["tickets"]} == ALL_TICKETS  # deleted ones included, with status deleted
    assert {t["status"] for t in body["tickets"] if t["id"] in fx.DELETED_TICKETS} == {"deleted"}
    assert {t.id for t in zenpy(zd_server).tickets.incremental(start_time=DOC_START_TIME)} == ALL_TICKETS


def test_time_based_ticket_export_documented_request_and_shape(zd_server):
    # GET /api/v2/incremental/tickets.json?start_time=1332034771
    body = zd_get(zd_server, "/api/v2/incremental/tickets.json", start_time=DOC_START_TIME, per_page=10).json()
    assert_shape(body, {**ZD_TIME_EXPORT, "tickets": [ZD_TICKET]})
    assert body["count"] == len(body["tickets"]) >= 10 and body["end_of_stream"] is False
    assert f"start_time={body['end_time']}" in body["next_page"] and "per_page=10" in body["next_page"]
    assert body["end_time"] == max(t["generated_timestamp"] for t in body["tickets"])
    seen = {t.id for t in zenpy(zd_server).tickets.incremental(start_time=DOC_START_TIME, paginate_by_time=True)}
    assert seen == ALL_TICKETS


@pytest.mark.parametrize("start_time", ["1420070400.0", "1420070400.75", "2015-01-01T00:00:00Z", "1420070400"])
def test_start_time_accepts_the_forms_clients_send(zd_server, start_time):
    """The reference types start_time as an integer; clients send floats and ISO times and Zendesk serves
    them (see the emulator's `unix_time_arg`), so each form means 2015-01-01T00:00:00Z here."""
    for path in ("/api/v2/incremental/tickets/cursor.json", "/api/v2/incremental/tickets.json",
                 "/api/v2/incremental/users/cursor.json", "/api/v2/incremental/organizations.json"):
        answer = zd_get(zd_server, path, start_time=start_time)
        assert answer.status_code == 200, (path, answer.text)
    time_based = zd_get(zd_server, "/api/v2/incremental/tickets.json", start_time=start_time).json()
    assert {t["id"] for t in time_based["tickets"]} == ALL_TICKETS


def test_bad_and_recent_start_times_answer_400_with_the_error_shape(zd_server):
    for value in ("yesterday", "nan", "-5"):
        answer = zd_get(zd_server, "/api/v2/incremental/tickets/cursor.json", start_time=value)
        assert answer.status_code == 400
        assert_shape(answer.json(), ZD_ERROR)
    recent = int((fx.AS_OF - timedelta(seconds=30)).timestamp())
    with pytest.raises(APIException) as err:
        list(zenpy(zd_server).tickets.incremental(start_time=recent, paginate_by_time=True))
    assert err.value.response.status_code == 400 and "start_time" in err.value.response.json()["description"]


def test_metric_sets_come_nested_in_each_ticket_and_as_a_sideload(zd_server):
    """Documented both ways (see exports.py): each incremental ticket carries `metric_set` and the page a
    top-level `metric_sets`; they describe the same metrics."""
    body = zd_get(zd_server, "/api/v2/incremental/tickets/cursor.json", start_time=0, include="metric_sets").json()
    assert_shape(body["metric_sets"], [ZD_METRIC])
    for ticket in body["tickets"]:
        assert_shape(ticket["metric_set"], ZD_METRIC)
        assert ticket["metric_set"]["ticket_id"] == ticket["id"]
    assert {m["ticket_id"]: m for m in body["metric_sets"]} == {t["id"]: t["metric_set"] for t in body["tickets"]}
    timed = zd_get(zd_server, "/api/v2/incremental/tickets.json", start_time=0, include="metric_sets").json()
    assert all("metric_set" in t for t in timed["tickets"]) and len(timed["metric_sets"]) == fx.TICKET_COUNT


@pytest.mark.parametrize("shape, nested, sideloaded", [("nested", True, False), ("sideload", False, True)])
def test_either_metric_set_shape_can_be_served_alone(zd_server, shape, nested, sideloaded):
    zd_server.emulator("zendesk").metric_set_shape = shape
    body = zd_get(zd_server, "/api/v2/incremental/tickets/cursor.json", start_time=0, include="metric_sets").json()
    assert ("metric_sets" in body) is sideloaded
    assert all(("metric_set" in t) is nested for t in body["tickets"])


def test_exclude_deleted_drops_deleted_tickets_from_both_ticket_exports(zd_server):
    for path in ("/api/v2/incremental/tickets/cursor.json", "/api/v2/incremental/tickets.json"):
        body = zd_get(zd_server, path, start_time=0, exclude_deleted="true").json()
        assert {t["id"] for t in body["tickets"]} == ALL_TICKETS - fx.DELETED_TICKETS
        follow = body.get("after_url") or body["next_page"]
        assert "exclude_deleted=true" in follow  # the next page keeps excluding them
    assert {t["id"] for t in zd_get(zd_server, "/api/v2/incremental/tickets.json", start_time=0,
                                    exclude_deleted="false").json()["tickets"]} == ALL_TICKETS


def test_ticket_export_sideloads_users_groups_organizations(zd_server):
    body = zd_get(zd_server, "/api/v2/incremental/tickets.json", start_time=0, per_page=5,
                  include="users,groups,organizations,dates,comment_count").json()
    assert {o["id"] for o in body["organizations"]} == {t["organization_id"] for t in body["tickets"]}
    assert {g["id"] for g in body["groups"]} == {t["group_id"] for t in body["tickets"]}
    assert_shape(body["users"], [ZD_USER])
    assert all(isinstance(t["comment_count"], int) and "assigned_at" in t["dates"] for t in body["tickets"])


def test_user_exports_cursor_and_time_based(zd_server):
    cursor = zd_get(zd_server, "/api/v2/incremental/users/cursor.json", start_time=DOC_START_TIME).json()
    assert_shape(cursor, {**ZD_CURSOR_EXPORT, "users": [ZD_USER]})
    timed = zd_get(zd_server, "/api/v2/incremental/users.json", start_time=DOC_START_TIME).json()
    assert_shape(timed, {**ZD_TIME_EXPORT, "users": [ZD_USER]})
    assert {u["id"] for u in cursor["users"]} == {u["id"] for u in timed["users"]}
    assert len(list(zenpy(zd_server).users.incremental(start_time=DOC_START_TIME))) == len(timed["users"])


def test_organization_export_shape(zd_server):
    body = zd_get(zd_server, "/api/v2/incremental/organizations.json", start_time=DOC_START_TIME).json()
    assert_shape(body, {**ZD_TIME_EXPORT, "organizations": [ZD_ORGANIZATION]})
    assert body["count"] == 5 and body["end_of_stream"] is True


def test_ticket_event_export_with_and_without_comment_events(zd_server):
    """Exporting ticket events: one audit per ticket update with `child_events`. The reference's own schema
    sample for this endpoint shows metric events instead (a documentation slip); the shape follows the
    "Exporting ticket events" guide and the endpoint's `comment_events` description."""
    body = zd_get(zd_server, "/api/v2/incremental/ticket_events.json", start_time=DOC_START_TIME).json()
    assert_shape(body, {**ZD_TIME_EXPORT, "ticket_events": [ZD_TICKET_EVENT]})
    assert {e["ticket_id"] for e in body["ticket_events"]} == ALL_TICKETS
    stamps = [(e["timestamp"], e["id"]) for e in body["ticket_events"]]
    assert stamps == sorted(stamps)
    flags = [c for e in body["ticket_events"] for c in e["child_events"] if c["event_type"] == "Comment"]
    assert flags and all(c["comment_present"] is True and "body" not in c for c in flags)
    with_comments = zd_get(zd_server, "/api/v2/incremental/ticket_events.json", start_time=DOC_START_TIME,
                           include="comment_events").json()
    comments = [c for e in with_comments["ticket_events"] for c in e["child_events"] if c["event_type"] == "Comment"]
    assert_shape(comments, [ZD_COMMENT_EVENT])
    assert len(list(zenpy(zd_server).tickets.events(start_time=DOC_START_TIME))) == len(body["ticket_events"])


@pytest.mark.parametrize("resource", ["tickets", "ticket_events", "users", "organizations"])
def test_incremental_sample_returns_at_most_50_in_the_time_based_shape(zd_server, resource):
    # GET /api/v2/incremental/{incremental_resource}/sample?start_time=1332034771
    body = zd_get(zd_server, f"/api/v2/incremental/{resource}/sample", start_time=DOC_START_TIME).json()
    assert_shape(body, {**ZD_TIME_EXPORT, resource: list})
    assert 0 < len(body[resource]) <= 50


def test_incremental_sample_has_its_stricter_limit(zd_server):
    """"10 requests per 20 minutes instead of 10 requests per minute" (Incremental Sample Export)."""
    answers = [zd_get(zd_server, "/api/v2/incremental/users/sample", start_time=0).status_code for _ in range(11)]
    assert answers[:10] == [200] * 10 and answers[10] == 429
