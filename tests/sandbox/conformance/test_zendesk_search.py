"""Zendesk search against the Search reference and the Support search syntax: the documented example query,
keywords, comparisons, negation, dates, paging, the 1,000-result limit, count and export."""

from __future__ import annotations

from datetime import timedelta

from .. import zm_fixtures as fx
from .conftest import zd_get, zenpy
from .docshapes import ZD_ERROR, ZD_GROUP, ZD_SEARCH, ZD_SEARCH_EXPORT, ZD_TICKET, ZD_USER, assert_shape


def _ids(server, query: str, **params) -> list[int]:
    body = zd_get(server, "/api/v2/search.json", query=query, **params).json()
    return [r["id"] for r in body["results"]]


def test_documented_example_query_and_response_shape(zd_server):
    # GET /api/v2/search.json?query=type:ticket status:closed&sort_by=status&sort_order=desc
    body = zd_get(zd_server, "/api/v2/search.json", query="type:ticket status:solved", sort_by="status",
                  sort_order="desc").json()
    assert_shape(body, ZD_SEARCH)
    assert_shape(body["results"], [ZD_TICKET])
    assert {r["result_type"] for r in body["results"]} == {"ticket"} and {r["status"] for r in body["results"]} == {"solved"}
    assert body["count"] == len(body["results"]) > 0 and body["facets"] is None
    group = zd_get(zd_server, "/api/v2/search.json", query="type:group Support").json()["results"]
    assert_shape(group, [{**ZD_GROUP, "result_type": str}])


def test_zenpy_search_calls_used_by_extractors(zd_server):
    zd = zenpy(zd_server)
    # what tap-zendesk's discovery sends: an empty query with an impossible updated window → no users, no error
    assert list(zd.search("", updated_after="2024-05-01T00:00:00Z", updated_before="2000-01-02T00:00:00Z",
                          type="user")) == []
    users = list(zd.search("", updated_after="2000-01-01T00:00:00Z", type="user"))
    assert len(users) == 12
    assert_shape(zd_get(zd_server, "/api/v2/search.json", query="type:user role:agent").json()["results"], [ZD_USER])
    urgent = list(zd.search(type="ticket", priority="urgent"))
    assert urgent and {t.priority for t in urgent} == {"urgent"}


def test_comparisons_negation_text_and_references(zd_server):
    statuses = {t["id"]: t["status"] for t in zd_get(zd_server, "/api/v2/tickets.json").json()["tickets"]}
    below_solved = _ids(zd_server, "type:ticket status<solved")
    assert below_solved and all(statuses[i] in ("new", "open", "pending", "hold") for i in below_solved)
    not_open = _ids(zd_server, "type:ticket -status:open")
    assert set(not_open) == {i for i, s in statuses.items() if s != "open"}
    high_up = zd_get(zd_server, "/api/v2/search.json", query="type:ticket priority>=high").json()["results"]
    assert {t["priority"] for t in high_up} == {"high", "urgent"}
    assert _ids(zd_server, 'type:ticket "Problem number 7"') == [7]
    assert set(_ids(zd_server, "type:ticket organization:Acme")) == set(_ids(zd_server, "type:ticket organization:101"))
    assert _ids(zd_server, "type:user email:user0@acme.test") == [1010]
    assert _ids(zd_server, "type:organization name:Glob*") == [102]


def test_date_filters_absolute_and_relative(zd_server):
    tickets = zd_get(zd_server, "/api/v2/tickets.json").json()["tickets"]
    cut = (fx.AS_OF - timedelta(days=20)).date().isoformat()
    newer = set(_ids(zd_server, f"type:ticket updated>{cut}"))
    assert newer == {t["id"] for t in tickets if t["updated_at"][:10] > cut}
    assert set(_ids(zd_server, "type:ticket updated>60days")) == {t["id"] for t in tickets}
    assert _ids(zd_server, "type:ticket created>1minutes") == []
    bad = zd_get(zd_server, "/api/v2/search.json", query="type:ticket created>someday")
    assert bad.status_code == 400
    assert_shape(bad.json(), ZD_ERROR)


def test_offset_paging_and_the_1000_result_limit(zd_server):
    first = zd_get(zd_server, "/api/v2/search.json", query="type:ticket", per_page=5).json()
    assert len(first["results"]) == 5 and first["next_page"] and first["previous_page"] is None
    assert first["count"] == fx.TICKET_COUNT - len(fx.DELETED_TICKETS)
    over = zd_get(zd_server, "/api/v2/search.json", query="type:ticket", page=11, per_page=100)
    # 422 with error "invalid" is what zenpy turns into SearchResponseLimitExceeded
    assert over.status_code == 422 and over.json()["error"] == "invalid"
    assert "Search Response Limits" in over.json()["description"]


def test_search_count_and_export(zd_server):
    # GET /api/v2/search/count?query=type:ticket status:closed
    count = zd_get(zd_server, "/api/v2/search/count.json", query="type:ticket status:solved").json()
    assert set(count) == {"count"} and count["count"] == len(_ids(zd_server, "type:ticket status:solved"))
    # GET /api/v2/search/export?query=...&filter[type]=ticket&page[size]=100
    page = zd_get(zd_server, "/api/v2/search/export.json", query="status:open",
                  **{"filter[type]": "ticket", "page[size]": 3}).json()
    assert_shape(page, ZD_SEARCH_EXPORT)
    assert page["meta"]["has_more"] is True and len(page["results"]) == 3
    seen = [r["id"] for r in page["results"]]
    while page["meta"]["has_more"]:
        page = zd_get(zd_server, "/api/v2/search/export.json", query="status:open",
                      **{"filter[type]": "ticket", "page[size]": 3, "page[after]": page["meta"]["after_cursor"]}).json()
        seen += [r["id"] for r in page["results"]]
    assert sorted(seen) == sorted(_ids(zd_server, "type:ticket status:open"))
    unfiltered = zd_get(zd_server, "/api/v2/search/export.json", query="status:open")
    assert unfiltered.status_code == 400
