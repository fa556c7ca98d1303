"""Zendesk tickets and ticket metrics against the documented requests and JSON formats: Show Ticket, List
Tickets, Show Multiple Tickets, the `dates`/`comment_count`/`metric_sets` sideloads, Ticket Metrics."""

from __future__ import annotations

import pytest
from zenpy.lib.exception import RecordNotFoundException, TooManyValuesException

from .. import zm_fixtures as fx
from .conftest import zd_get, zenpy
from .docshapes import (
    ZD_CURSOR_PAGE,
    ZD_DATES,
    ZD_ERROR,
    ZD_METRIC,
    ZD_OFFSET_PAGE,
    ZD_TICKET,
    ZD_TICKET_PRIORITIES,
    ZD_TICKET_STATUSES,
    ZD_TICKET_TYPES,
    assert_shape,
)

LIVE_TICKETS = fx.TICKET_COUNT - len(fx.DELETED_TICKETS)


def test_show_ticket_has_every_documented_key_with_documented_types(zd_server):
    # documented example request: GET /api/v2/tickets/{ticket_id}; zenpy parses it (and renames `via.source.from`
    # to `from_` in its objects), the shape is checked on the JSON itself
    parsed = zenpy(zd_server).tickets(id=3)
    assert (parsed.id, parsed.via.channel, parsed.brand_id) == (3, "web", 360000000101)
    ticket = zd_get(zd_server, "/api/v2/tickets/3").json()["ticket"]
    assert_shape(ticket, ZD_TICKET)
    assert ticket["status"] in ZD_TICKET_STATUSES and ticket["priority"] in ZD_TICKET_PRIORITIES
    assert ticket["type"] in ZD_TICKET_TYPES
    assert ticket["fields"] == ticket["custom_fields"]  # the docs list both; `fields` is the alias
    assert ticket["via"]["channel"] in ("email", "web") and ticket["due_at"] is None  # null as in the sample
    raw = zd_get(zd_server, "/api/v2/tickets/3.json").json()
    assert set(raw) == {"ticket"} and raw["ticket"]["url"].endswith("/api/v2/tickets/3.json")


def test_list_tickets_pages_by_offset_and_by_cursor(zd_server):
    zd = zenpy(zd_server)
    assert len(list(zd.tickets())) == LIVE_TICKETS  # GET /api/v2/tickets (offset paging)
    assert [t.id for t in zd.tickets(cursor_pagination=5)] == sorted(
        t for t in range(1, fx.TICKET_COUNT + 1) if t not in fx.DELETED_TICKETS)
    offset = zd_get(zd_server, "/api/v2/tickets.json", per_page=5).json()
    assert_shape(offset, {**ZD_OFFSET_PAGE, "tickets": [ZD_TICKET]})
    assert offset["count"] == LIVE_TICKETS and offset["previous_page"] is None
    cursor = zd_get(zd_server, "/api/v2/tickets.json", **{"page[size]": 5}).json()
    assert_shape(cursor, {**ZD_CURSOR_PAGE, "tickets": [ZD_TICKET]})
    assert cursor["meta"]["has_more"] is True and "page%5Bafter%5D=" in cursor["links"]["next"]


def test_show_many_tickets_by_ids_and_its_100_value_limit(zd_server):
    zd = zenpy(zd_server)
    # documented example request: GET /api/v2/tickets/show_many?ids=1,2,3
    assert sorted(t.id for t in zd.tickets(ids=[1, 2, 3])) == [1, 2, 3]
    deleted = min(fx.DELETED_TICKETS)
    assert [t.id for t in zd.tickets(ids=[deleted, 5])] == [5]
    too_many = zd_get(zd_server, "/api/v2/tickets/show_many.json", ids=",".join(str(n) for n in range(1, 102)))
    assert too_many.status_code == 400 and too_many.json()["error"] == "TooManyValues"
    with pytest.raises(TooManyValuesException):
        list(zd.tickets(ids=list(range(1, 102))))


def test_dates_and_comment_count_are_embedded_and_metric_sets_sideloaded(zd_server):
    body = zd_get(zd_server, "/api/v2/tickets/3.json", include="dates,comment_count,metric_sets").json()
    ticket = body["ticket"]
    assert_shape(ticket["dates"], ZD_DATES)
    assert ticket["dates"]["solved_at"] is not None  # ticket 3 is solved
    assert isinstance(ticket["comment_count"], int) and ticket["comment_count"] == 1 + 3  # description + replies
    assert "metric_set" not in ticket  # outside the incremental exports the sideload is a top-level array
    assert_shape(body["metric_sets"], [ZD_METRIC])
    assert [m["ticket_id"] for m in body["metric_sets"]] == [3]
    listed = zd_get(zd_server, "/api/v2/tickets.json", include="users,groups,organizations", per_page=3).json()
    assert {u["id"] for u in listed["users"]} >= {t["requester_id"] for t in listed["tickets"]}
    assert {g["id"] for g in listed["groups"]} == {t["group_id"] for t in listed["tickets"]}
    assert {o["id"] for o in listed["organizations"]} == {t["organization_id"] for t in listed["tickets"]}


def test_ticket_metrics_list_and_show_have_the_documented_format(zd_server):
    zd = zenpy(zd_server)
    metrics = [m.to_dict() for m in zd.ticket_metrics()]  # GET /api/v2/ticket_metrics
    assert len(metrics) == LIVE_TICKETS
    for metric in metrics:
        assert_shape(metric, ZD_METRIC)
    solved = next(m for m in metrics if m["ticket_id"] == 3)
    assert solved["solved_at"] is not None and solved["full_resolution_time_in_minutes"]["calendar"] == 270
    unsolved = next(m for m in metrics if m["ticket_id"] == 1)
    assert unsolved["solved_at"] is None and unsolved["full_resolution_time_in_minutes"] == {
        "calendar": None, "business": None}
    shown = zd.tickets.metrics(3).to_dict()  # GET /api/v2/tickets/{ticket_id}/metrics
    assert_shape(shown, ZD_METRIC)
    by_id = zd_get(zd_server, f"/api/v2/ticket_metrics/{shown['id']}.json").json()
    assert by_id["ticket_metric"]["ticket_id"] == 3


def test_missing_records_answer_the_documented_error_shape(zd_server):
    with pytest.raises(RecordNotFoundException):
        zenpy(zd_server).tickets(id=999_999)
    missing = zd_get(zd_server, "/api/v2/tickets/999999.json")
    assert missing.status_code == 404
    assert_shape(missing.json(), ZD_ERROR)
    assert missing.json()["error"] == "RecordNotFound"
    unknown = zd_get(zd_server, "/api/v2/no_such_resource.json")
    assert unknown.status_code == 404 and unknown.json()["error"] == "InvalidEndpoint"
