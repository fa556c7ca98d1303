"""Mixpanel's export, engage and discovery endpoints and both auth methods against the documented requests
and shapes, driven with the unmodified mixpanel-utils (its generic `request` where it has no helper)."""

from __future__ import annotations

import json

import pytest

from .. import zm_fixtures as fx
from .conftest import MP, mixpanel_sa, mixpanel_secret, mp_get
from .docshapes import MP_ENGAGE_FIRST_PAGE, MP_ERROR, MP_EVENT, MP_PROPERTY_COUNT, assert_shape


def day(**extra) -> dict:
    """A fresh one-day export request: mixpanel-utils writes `project_id` into the dict it is given."""
    return {"from_date": "2024-04-30", "to_date": "2024-04-30", **extra}
PROFILES = len(fx.ACCOUNT_SPECS) * fx.PROFILES_PER_ACCOUNT + 1


def test_project_secret_auth_is_accepted_beside_service_accounts(mp_server):
    """Authentication (https://developer.mixpanel.com/reference/authentication): a service account
    (username:secret plus project_id) or the project secret as the username with an empty password."""
    by_secret = mixpanel_secret(mp_server).query_export(day())
    by_account = mixpanel_sa(mp_server).query_export(day())
    assert by_secret == by_account and len(by_secret) == PROFILES * 2
    assert len(mixpanel_secret(mp_server).query_engage({})) == PROFILES
    # the secret without the colon, as tap-mixpanel encodes it
    assert mp_get(mp_server, "/api/2.0/engage", token=MP.api_secret)[0] == 200
    status, _ = mp_get(mp_server, "/api/2.0/engage", token=f"{MP.api_secret}:", project_id=MP.project_id)
    assert status == 200


def test_auth_failures_answer_mixpanel_error_json(mp_server):
    status, body = mp_get(mp_server, "/api/2.0/engage", token="wrong-secret:")
    assert status == 401
    assert_shape(body, MP_ERROR)
    assert body["status"] == "error"
    status, body = mp_get(mp_server, "/api/2.0/engage", token=f"{MP.api_secret}:", project_id=1)
    assert status == 403 and body["status"] == "error"
    status, body = mp_get(mp_server, "/api/2.0/engage")  # a service account must name its project
    assert status == 400 and "project_id" in body["error"]
    with pytest.raises(AttributeError):  # the SDK swallows the 401 and trips on None
        mixpanel_secret(mp_server, secret="wrong").query_export(day())


def test_raw_export_lines_have_the_documented_shape(mp_server):
    # GET /api/2.0/export?from_date=2024-04-30&to_date=2024-04-30&event=["login"]
    events = mixpanel_sa(mp_server).query_export(day(event=["login"]))
    assert len(events) == PROFILES
    for event in events:
        assert_shape(event, MP_EVENT)
        assert event["event"] == "login" and "_account_key" not in event["properties"]
    status, text = mp_get(mp_server, "/api/2.0/export", project_id=MP.project_id, **day())
    lines = text.strip().split("\n")
    assert status == 200 and len(lines) == PROFILES * 2 and all(json.loads(line)["event"] for line in lines)


def test_engage_first_page_shape_and_group_profiles(mp_server):
    mp = mixpanel_sa(mp_server)
    page = json.loads(mp.request(mp.formatted_api, ["engage"], {"page_size": 5}))
    assert_shape(page, MP_ENGAGE_FIRST_PAGE)
    assert page["total"] == PROFILES and page["page"] == 0 and len(page["results"]) == 5
    groups = mp.query_engage({"data_group_id": "1"})
    assert {g["$properties"]["account_id"] for g in groups} == {fx.sf_id(1), "globex.test"}


def test_top_event_properties_documented_request_and_shape(mp_server):
    """Top Event Properties: GET /api/2.0/events/properties/top?event=login&limit=10 → {"prop": {"count": n}}."""
    mp = mixpanel_sa(mp_server)
    top = json.loads(mp.request(mp.formatted_api, ["events", "properties", "top"], {"event": "login", "limit": 10}))
    assert top and all(not name.startswith("_") for name in top)
    for counted in top.values():
        assert_shape(counted, MP_PROPERTY_COUNT)
    assert {"distinct_id", "$insert_id", "time"} <= set(top)
    assert top["time"]["count"] >= top.get("account_id", {"count": 0})["count"]
    limited = json.loads(mp.request(mp.formatted_api, ["events", "properties", "top"], {"event": "login", "limit": 2}))
    assert len(limited) == 2
    # without `event` (what tap-mixpanel sends): every event's properties
    status, everything = mp_get(mp_server, "/api/2.0/events/properties/top", token=MP.api_secret, limit=2000)
    assert status == 200 and "feature" in everything


def test_event_names_and_engage_properties(mp_server):
    mp = mixpanel_secret(mp_server)
    names = json.loads(mp.request(mp.formatted_api, ["events", "names"], {"type": "general"}))
    assert sorted(names) == ["feature_used", "login"]
    status, bad = mp_get(mp_server, "/api/2.0/events/names", token=MP.api_secret, type="weird")
    assert status == 400
    assert_shape(bad, MP_ERROR)
    # GET /api/2.0/engage/properties?limit=2000, as tap-mixpanel's discovery reads it
    props = json.loads(mp.request(mp.formatted_api, ["engage", "properties"], {"limit": 2000}))
    assert props["status"] == "ok"
    assert props["results"]["$email"] == {"count": PROFILES, "type": "string"}
    assert props["results"]["$created"]["type"] == "datetime"
    assert_shape(props["results"], {"$name": {"count": int, "type": str}})


def test_query_api_prefix_serves_the_same_endpoints(mp_server):
    for path in ("/api/query/engage", "/api/query/events/properties/top", "/api/query/engage/properties"):
        status, _ = mp_get(mp_server, path, project_id=MP.project_id, event="login")
        assert status == 200, path
