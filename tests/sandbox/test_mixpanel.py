"""The Mixpanel emulator driven by the unmodified mixpanel-utils over plain HTTP: the raw NDJSON export with
group keys rendered per identity mode, filters, late events, the engage query paged concurrently, auth
failures (which the SDK swallows) and the per-project rate limits."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import logging
import re
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from mixpanel_utils import MixpanelUtils

from healthsync.sandbox.core import SandboxClock, SandboxServer
from healthsync.sandbox.credentials import DEMO
from healthsync.sandbox.mixpanel import MixpanelEmulator, WhereError, compile_where
from healthsync.sandbox.portfolio import MIN_SIZE, generate_portfolio

from . import zm_fixtures as fx

CREDS = DEMO.mixpanel
PROFILE_COUNT = len(fx.ACCOUNT_SPECS) * fx.PROFILES_PER_ACCOUNT + 1
EVENTS_PER_DAY = PROFILE_COUNT * 2


@contextlib.contextmanager
def mixpanel_server(time_scale: float = 3600.0, crm: str = "salesforce"):
    """time_scale 3600: the hourly windows last one real second."""
    with SandboxServer([MixpanelEmulator], clock=SandboxClock(start=fx.AS_OF), time_scale=time_scale) as srv:
        srv.emulator("mixpanel").load(fx.make_portfolio(), crm=crm)
        yield srv


@pytest.fixture()
def server(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with mixpanel_server() as srv:
        yield srv


def client(server: SandboxServer, secret: str = CREDS.service_account_secret,
           project_id: int = CREDS.project_id) -> MixpanelUtils:
    mp = MixpanelUtils(secret, service_account_username=CREDS.service_account_username, project_id=project_id,
                       max_retries=1)
    MixpanelUtils.LOGGER.setLevel(logging.CRITICAL)  # the SDK logs every 4xx at ERROR
    mp.raw_api = mp.formatted_api = server.http_url + "/api"
    mp.import_api = server.http_url  # must differ from raw_api as a string (sdk-notes 4.1)
    return mp


def raw_get(server: SandboxServer, path: str, auth: str | None = None, **params) -> tuple[int, dict, dict | str]:
    """(status, headers, body) of a request made without the SDK, which hides 4xx bodies; JSON bodies parsed."""
    token = auth if auth is not None else f"{CREDS.service_account_username}:{CREDS.service_account_secret}"
    url = f"{server.http_url}{path}?{urllib.parse.urlencode(params)}"
    request = urllib.request.Request(url, headers={"Authorization": "Basic " + base64.b64encode(token.encode()).decode()})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, headers, text = response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        status, headers, text = exc.code, dict(exc.headers), exc.read().decode()
    return status, headers, json.loads(text) if headers.get("Content-Type", "").startswith("application/json") else text


def by_user(events: list[dict]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for event in events:
        grouped.setdefault(event["properties"]["distinct_id"], []).append(event["properties"])
    return grouped


# ------------------------------------------------------------------------------------------- export


def test_export_of_several_days_renders_the_group_key_per_identity_mode(server):
    events = client(server).query_export({"from_date": "2024-04-28", "to_date": "2024-04-30"})
    assert len(events) == 3 * EVENTS_PER_DAY
    assert {e["event"] for e in events} == {"login", "feature_used"}
    users = by_user(events)
    assert all("_account_key" not in p for props in users.values() for p in props)
    assert {p["account_id"] for p in users["u-A1-0"]} == {fx.sf_id(1)}  # group_crm_id
    assert {p["account_id"] for p in users["u-A2-1"]} == {"globex.test"}  # group_domain
    assert all("account_id" not in p and p["$email"] == "user2@initech.test" for p in users["u-A3-2"])  # email_domain
    umbrella = users["u-A4-0"]  # none: no group key, a free-mail address
    assert all("account_id" not in p and not p["$email"].endswith("umbrella.test") for p in umbrella)
    days = {datetime.fromtimestamp(e["properties"]["time"], UTC).date().isoformat() for e in events}
    assert days == {"2024-04-28", "2024-04-29", "2024-04-30"}


def test_export_uses_hubspot_ids_when_serving_hubspot():
    with mixpanel_server(crm="hubspot") as srv:
        events = client(srv).query_export({"from_date": "2024-04-30", "to_date": "2024-04-30"})
        assert {p["account_id"] for p in by_user(events)["u-A1-2"]} == {fx.hs_id(1)}


def test_export_event_and_where_filters(server):
    mp = client(server)
    logins = mp.query_export({"from_date": "2024-04-28", "to_date": "2024-04-30", "event": ["login"],
                              "where": 'properties["account_id"] == "globex.test"'})
    assert len(logins) == 3 * fx.PROFILES_PER_ACCOUNT
    assert {e["event"] for e in logins} == {"login"}
    grouped = mp.query_export({"from_date": "2024-04-30", "to_date": "2024-04-30",
                               "where": 'defined(properties["account_id"]) and not properties["feature"] != "reports"'})
    assert len(grouped) == 2 * 2 * fx.PROFILES_PER_ACCOUNT  # A1 and A2 users, both events
    limited = mp.query_export({"from_date": "2024-04-30", "to_date": "2024-04-30", "limit": 5})
    assert len(limited) == 5
    # an ordering comparison on a property no event has is false, not an error (Segmentation Expressions)
    assert mp.query_export({"from_date": "2024-04-30", "to_date": "2024-04-30", "where": 'properties["n"] > 3'}) == []
    with pytest.raises(AttributeError):  # the SDK swallows the 400 and then trips on None
        mp.query_export({"from_date": "2024-04-30", "to_date": "2024-04-30", "where": 'properties["n"] >'})
    status, _, body = raw_get(server, "/api/2.0/export", from_date="2024-04-30", to_date="2024-04-30",
                              where='properties["n"] >', project_id=CREDS.project_id)
    assert status == 400 and body["status"] == "error" and "invalid `where`" in body["error"]


def test_where_compiles_the_documented_language_and_rejects_malformed_text():
    predicate = compile_where('(properties["a"] == "x" or properties[\'b\'] == 2) and not defined(properties["c"])')
    assert predicate({"a": "x"}) and predicate({"b": 2}) and not predicate({"a": "x", "c": 1})
    assert not predicate({"a": "y"})
    assert compile_where('properties["a"] > 1')({"a": 2}) and not compile_where('properties["a"] > 1')({"a": 1})
    assert compile_where('properties["a"] in ["x"]')({"a": "x"}) and not compile_where('properties["a"] in ["x"]')({})
    for malformed in ('"x" == "x" and', 'properties["a"] ==', 'properties[a] == 1', '(properties["a"]', 'foo("x")'):
        with pytest.raises(WhereError):
            compile_where(malformed)


def test_bad_dates_are_rejected(server):
    mp = client(server)
    with pytest.raises(AttributeError):
        mp.query_export({"from_date": "2024-04-30", "to_date": "2024-05-02"})  # to_date after today
    for from_date, to_date in (("2024-05-02", "2024-05-02"), ("2024-04-30", "2024-04-29"), ("30/04/2024", "2024-04-30")):
        status, _, body = raw_get(server, "/api/2.0/export", from_date=from_date, to_date=to_date,
                                  project_id=CREDS.project_id)
        assert status == 400 and body["status"] == "error", (from_date, to_date, body)


def test_late_events_appear_only_after_they_arrive(server):
    emu = server.emulator("mixpanel")
    day = int(datetime(2024, 4, 29, 15, tzinfo=UTC).timestamp())
    late = {"event": "export_report", "properties": {"time": day, "distinct_id": "u-A1-0", "$insert_id": "late-1",
                                                     "$email": "user0@acme.test", "_account_key": "A1"}}
    on_time = {"event": "export_report", "properties": {"time": day + 60, "distinct_id": "u-A2-0",
                                                        "$insert_id": "on-time-1", "_account_key": "A2"}}
    emu.add_events([late], arrive_at=fx.AS_OF + timedelta(hours=2))
    emu.add_events([on_time])
    mp = client(server)
    params = {"from_date": "2024-04-29", "to_date": "2024-04-29", "event": ["export_report"]}
    assert [e["properties"]["$insert_id"] for e in mp.query_export(dict(params))] == ["on-time-1"]
    server.clock.advance(timedelta(hours=2, seconds=1))
    after = mp.query_export(dict(params))
    assert sorted(e["properties"]["$insert_id"] for e in after) == ["late-1", "on-time-1"]
    late_props = next(e["properties"] for e in after if e["properties"]["$insert_id"] == "late-1")
    assert late_props["account_id"] == fx.sf_id(1) and "_account_key" not in late_props


def test_events_after_the_sandbox_clock_are_not_exported_yet(server):
    # today's events at 09:00/10:00; the clock starts at 12:00, so all of today's are visible...
    today = client(server).query_export({"from_date": "2024-05-01", "to_date": "2024-05-01"})
    assert len(today) == EVENTS_PER_DAY
    server.clock.advance(timedelta(hours=-2, minutes=-30))  # ...at 09:30 only the early logins are
    early = client(server).query_export({"from_date": "2024-05-01", "to_date": "2024-05-01"})
    assert {e["event"] for e in early} == {"login"} and len(early) == PROFILE_COUNT


def test_odd_record_fault_strips_time_from_one_event(server):
    server.faults.add(r"/api/2\.0/export", kind="odd_record")
    events = client(server).query_export({"from_date": "2024-04-30", "to_date": "2024-04-30"})
    assert len(events) == EVENTS_PER_DAY
    assert sum(1 for e in events if "time" not in e["properties"]) == 1


def test_export_is_streamed_in_chunks_not_buffered(server):
    query = urllib.parse.urlencode({"from_date": "2024-02-01", "to_date": "2024-04-30",
                                    "project_id": CREDS.project_id})
    token = base64.b64encode(f"{CREDS.service_account_username}:{CREDS.service_account_secret}".encode()).decode()
    conn = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=10)
    try:
        conn.request("GET", f"/api/2.0/export?{query}", headers={"Authorization": f"Basic {token}"})
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Length") is None
        assert response.getheader("Transfer-Encoding") == "chunked"
        lines = response.read().decode().splitlines()
    finally:
        conn.close()
    assert len(lines) == 90 * EVENTS_PER_DAY and all(line.startswith("{") for line in lines)


# ------------------------------------------------------------------------------------------- engage


def test_engage_pages_are_fetched_concurrently_by_the_sdk(server):
    profiles = client(server).query_engage({"page_size": 3})
    assert [p["$distinct_id"] for p in profiles] == sorted(p["$distinct_id"] for p in profiles)
    assert len(profiles) == PROFILE_COUNT
    assert server.calls.snapshot()["mixpanel engage"] == 5  # ceil(13 / 3) pages
    props = {p["$distinct_id"]: p["$properties"] for p in profiles}
    assert props["u-A1-1"]["account_id"] == fx.sf_id(1) and props["u-A2-0"]["account_id"] == "globex.test"
    assert "account_id" not in props["u-A3-0"] and props["u-A3-0"]["$email"] == "user0@initech.test"
    assert "account_id" not in props["u-A4-0"] and not props["u-A4-0"]["$email"].endswith("umbrella.test")


def test_engage_first_page_shape_where_and_output_properties(server):
    emu = server.emulator("mixpanel")
    emu.set_profile("u-new-0", account_key="A2", **{"$email": "new@globex.test", "$name": "New"})
    mp = client(server)
    grouped = mp.query_engage({"where": 'defined(properties["account_id"])', "output_properties": ["$email"],
                               "page_size": 2})
    assert len(grouped) == 2 * fx.PROFILES_PER_ACCOUNT + 1
    assert all(set(p["$properties"]) == {"$email"} for p in grouped)
    assert "u-new-0" in {p["$distinct_id"] for p in grouped}
    status, _, first = raw_get(server, "/api/2.0/engage", project_id=CREDS.project_id, page_size=4)
    assert status == 200
    assert {"results", "session_id", "page", "page_size", "total"} <= set(first)
    assert (first["page"], first["page_size"], first["total"], len(first["results"])) == (0, 4, PROFILE_COUNT + 1, 4)


def test_engage_answers_documented_post_on_both_paths(server):
    token = base64.b64encode(f"{CREDS.service_account_username}:{CREDS.service_account_secret}".encode()).decode()
    form = urllib.parse.urlencode({"project_id": CREDS.project_id, "page_size": 5,
                                   "where": 'properties["account_id"] == "globex.test"'}).encode()
    for path in ("/api/2.0/engage", "/api/query/engage"):
        request = urllib.request.Request(server.http_url + path, data=form, method="POST",
                                         headers={"Authorization": f"Basic {token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            body = json.loads(response.read())
        assert body["total"] == fx.PROFILES_PER_ACCOUNT and len(body["results"]) == fx.PROFILES_PER_ACCOUNT


def test_engage_group_profiles(server):
    groups = client(server).query_engage({"data_group_id": "1"})
    assert {g["$distinct_id"] for g in groups} == {fx.sf_id(1), "globex.test"}
    assert {g["$properties"]["seats"] for g in groups} == {10, 20}
    status, _, body = raw_get(server, "/api/2.0/engage", project_id=CREDS.project_id, data_group_id="7")
    assert status == 400 and "data_group_id" in body["error"]


# ------------------------------------------------------------------------------------------- auth and limits


def test_bad_credentials_are_swallowed_by_the_sdk_and_answered_401(server):
    wrong = client(server, secret="not-the-secret")
    with pytest.raises(AttributeError):
        wrong.query_export({"from_date": "2024-04-30", "to_date": "2024-04-30"})
    with pytest.raises(TypeError):
        wrong.query_engage({})
    status, _, body = raw_get(server, "/api/2.0/export", auth="someone:else", from_date="2024-04-30",
                              to_date="2024-04-30", project_id=CREDS.project_id)
    assert status == 401 and body["status"] == "error" and body["error"].startswith("Unauthorized")


def test_project_id_missing_or_wrong(server):
    status, _, body = raw_get(server, "/api/2.0/engage")
    assert status == 400 and "project_id is required" in body["error"]
    status, _, _ = raw_get(server, "/api/2.0/engage", project_id=1)
    assert status == 403
    with pytest.raises(TypeError):
        client(server, project_id=1).query_engage({})


def test_export_hourly_limit_answers_429_with_integer_retry_after():
    with mixpanel_server(time_scale=1.0) as srv:
        emu = srv.emulator("mixpanel")
        emu.export_per_hour = 2
        emu.export_per_second = 100
        mp = client(srv)
        params = {"from_date": "2024-04-30", "to_date": "2024-04-30"}
        assert len(mp.query_export(dict(params))) == EVENTS_PER_DAY
        assert len(mp.query_export(dict(params))) == EVENTS_PER_DAY
        with pytest.raises(AttributeError):
            mp.query_export(dict(params))
        status, headers, body = raw_get(srv, "/api/2.0/export", project_id=CREDS.project_id, **params)
        assert status == 429 and body == {"error": "rate limit exceeded", "status": "error"}
        assert re.fullmatch(r"\d+", headers["Retry-After"]) and 3000 < int(headers["Retry-After"]) <= 3600
        assert srv.calls.snapshot()["mixpanel export"] == 4


def test_export_per_second_and_query_hourly_limits():
    with mixpanel_server(time_scale=1.0) as srv:
        emu = srv.emulator("mixpanel")
        emu.query_per_hour = 1
        mp = client(srv)
        assert len(mp.query_engage({})) == PROFILE_COUNT
        with pytest.raises(TypeError):
            mp.query_engage({})
        params = {"from_date": "2024-04-30", "to_date": "2024-04-30", "project_id": CREDS.project_id}
        codes = [raw_get(srv, "/api/2.0/export", **params)[0] for _ in range(4)]
        assert codes[:3] == [200, 200, 200] and codes[3] == 429


def test_engage_concurrency_limit(server):
    emu = server.emulator("mixpanel")
    emu.query_concurrency = 0  # every query finds the project's slots taken
    status, headers, body = raw_get(server, "/api/2.0/engage", project_id=CREDS.project_id)
    assert status == 429 and headers["Retry-After"] == "1" and "concurrent" in body["error"]


def test_serves_a_generated_portfolio_end_to_end(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    portfolio = generate_portfolio(seed=5, size=MIN_SIZE, as_of=fx.AS_OF)
    with SandboxServer([MixpanelEmulator], clock=SandboxClock(start=fx.AS_OF), time_scale=3600) as srv:
        srv.emulator("mixpanel").load(portfolio)
        mp = client(srv)
        day = datetime(2024, 4, 30, tzinfo=UTC).date()
        events = mp.query_export({"from_date": "2024-04-30", "to_date": "2024-04-30"})
        assert len(events) == sum(1 for _ in portfolio.events_for_day(day))
        assert not any("_account_key" in e["properties"] for e in events)
        crm_ids = {a.sf_id for a in portfolio.accounts}
        assert {e["properties"]["account_id"] for e in events if "account_id" in e["properties"]} <= (
            crm_ids | {a.domain for a in portfolio.accounts})
        assert len(mp.query_engage({})) == len(portfolio.mixpanel_profiles)
