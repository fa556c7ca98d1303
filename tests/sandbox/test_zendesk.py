"""The Zendesk emulator driven by the unmodified zenpy over real HTTPS and HTTP: the incremental exports — cursor
tickets and users, time-based organizations (pages, repeats at page boundaries, deletes, resume, late changes,
the one-minute delay) — cursor and offset lists, single reads, auth failures and both rate limits with zenpy
honouring the integer Retry-After."""

from __future__ import annotations

import contextlib
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from zenpy import Zenpy
from zenpy.lib.api import BaseApi
from zenpy.lib.exception import APIException, RatelimitBudgetExceeded, RecordNotFoundException

from healthsync.sandbox.core import SandboxClock, SandboxServer
from healthsync.sandbox.credentials import DEMO
from healthsync.sandbox.portfolio import MIN_SIZE, generate_portfolio
from healthsync.sandbox.zendesk import ZendeskEmulator, decode_cursor, encode_cursor
from tests.support.tls import sandbox_session

from . import zm_fixtures as fx

AS_OF, DELETED_TICKETS, TICKET_COUNT = fx.AS_OF, fx.DELETED_TICKETS, fx.TICKET_COUNT
UNMATCHED_EXTERNAL_ID, UNMATCHED_ORG_ID = fx.UNMATCHED_EXTERNAL_ID, fx.UNMATCHED_ORG_ID
hs_id, make_portfolio, sf_id = fx.hs_id, fx.make_portfolio, fx.sf_id

EXPORT = "zendesk ticket_export"


@contextlib.contextmanager
def zendesk_server(time_scale: float = 60.0, crm: str = "salesforce"):
    """time_scale 60: Zendesk's one-minute windows last one real second."""
    with SandboxServer([ZendeskEmulator], clock=SandboxClock(start=AS_OF), time_scale=time_scale) as srv:
        srv.emulator("zendesk").load(make_portfolio(), crm=crm)
        yield srv


@pytest.fixture()
def server():
    with zendesk_server() as srv:
        yield srv


_session = sandbox_session


def zenpy_tls(server: SandboxServer, **kw) -> Zenpy:
    creds = {"email": DEMO.zendesk.email, "token": DEMO.zendesk.token}
    creds.update(kw.pop("creds", {}))
    return Zenpy(subdomain="127.0.0", domain=f"1:{server.tls_port}", session=_session(server),
                 disable_cache=True, **creds, **kw)


def zenpy_http(server: SandboxServer, **kw) -> Zenpy:
    client = Zenpy(subdomain="127.0.0", domain=f"1:{server.http_port}", email=DEMO.zendesk.email,
                   token=DEMO.zendesk.token, session=_session(server), disable_cache=True, **kw)
    for api in vars(client).values():
        if isinstance(api, BaseApi):
            api.protocol = "http"
    return client


def export_order(emu: ZendeskEmulator) -> list[int]:
    return [t["id"] for t in sorted(emu.tickets(), key=lambda t: (t["generated_timestamp"], t["id"]))]


def raw_get(server: SandboxServer, path: str, **params) -> requests.Response:
    auth = (f"{DEMO.zendesk.email}/token", DEMO.zendesk.token)
    return _session(server).get(server.https_url + path, params=params, auth=auth)


# ------------------------------------------------------------------------------------------- export


def test_incremental_export_pages_over_tls_in_updated_order_with_deleted_tickets(server):
    emu = server.emulator("zendesk")
    gen = zenpy_tls(server).tickets.incremental(start_time=0, per_page=5)
    tickets = list(gen)
    assert [t.id for t in tickets] == export_order(emu)
    assert len(tickets) == TICKET_COUNT
    assert {t.id for t in tickets if t.status == "deleted"} == DELETED_TICKETS
    assert server.calls.snapshot()[EXPORT] == 5  # ceil(23 / 5)
    assert gen.end_of_stream is True and re.fullmatch(r"[a-z0-9]+", gen.after_cursor)
    tied = [t.id for t in tickets if t.updated_at == "2024-04-04T00:00:00Z"]
    assert tied == sorted(tied) and len(tied) == 3  # equal updated_at: ordered by id
    assert all(t.generated_timestamp and t.requester_id for t in tickets)


def test_export_page_shape_has_absolute_after_url_and_no_end_time(server):
    body = raw_get(server, "/api/v2/incremental/tickets/cursor.json", start_time=0, per_page=10).json()
    assert "end_time" not in body
    assert body["end_of_stream"] is False and len(body["tickets"]) == 10
    assert body["after_url"].startswith(server.https_url + "/api/v2/incremental/tickets/cursor.json?cursor=")
    assert "per_page=10" in body["after_url"]
    ticket = body["tickets"][0]
    expected = {"id", "url", "external_id", "subject", "raw_subject", "description", "priority", "status", "type",
                "requester_id", "submitter_id", "assignee_id", "organization_id", "group_id", "tags",
                "satisfaction_rating", "created_at", "updated_at", "generated_timestamp"}
    assert expected <= set(ticket)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", ticket["updated_at"])
    assert ticket["satisfaction_rating"]["score"] in ("good", "bad", "offered", "unoffered")


def test_export_sideloads_users_organizations_and_metric_sets(server):
    body = raw_get(server, "/api/v2/incremental/tickets/cursor.json", start_time=0, per_page=4,
                   include="users,organizations,metric_sets").json()
    org_ids = {t["organization_id"] for t in body["tickets"]}
    assert {o["id"] for o in body["organizations"]} == org_ids
    assert {m["ticket_id"] for m in body["metric_sets"]} <= {t["id"] for t in body["tickets"]}
    assert {t["requester_id"] for t in body["tickets"]} <= {u["id"] for u in body["users"]}


def test_resume_from_saved_cursor_then_later_changes_arrive_after_the_export_delay(server):
    emu = server.emulator("zendesk")
    zd = zenpy_http(server)
    first = zd.tickets.incremental(start_time=0, per_page=5)
    first_page = [next(first) for _ in range(5)]
    saved = first.after_cursor  # what a connector persists after each page
    rest_gen = zd.tickets.incremental(cursor=saved, per_page=5)
    rest = list(rest_gen)
    assert [t.id for t in first_page + rest] == export_order(emu)
    final_cursor = rest_gen.after_cursor

    emu.update_ticket(3, priority="urgent", tags=["escalated"])
    new_id = emu.add_ticket("Competitor mentioned", organization_id=101, requester_id=1010, priority="high")
    emu.delete_ticket(8)
    assert list(zd.tickets.incremental(cursor=final_cursor)) == []  # changed within the last minute

    server.clock.advance(timedelta(seconds=61))
    changed = list(zd.tickets.incremental(cursor=final_cursor))
    assert sorted(t.id for t in changed) == sorted([3, 8, new_id])
    by_id = {t.id: t for t in changed}
    assert by_id[3].priority == "urgent" and by_id[3].tags == ["escalated"]
    assert by_id[8].status == "deleted" and by_id[new_id].subject == "Competitor mentioned"
    stamps = [(t.generated_timestamp, t.id) for t in changed]
    assert stamps == sorted(stamps)


def test_recent_start_time_missing_start_and_bad_cursor_are_rejected(server):
    zd = zenpy_tls(server)
    recent = int((AS_OF - timedelta(seconds=20)).timestamp())
    with pytest.raises(APIException) as err:
        list(zd.tickets.incremental(start_time=recent))
    assert err.value.response.status_code == 400
    assert err.value.response.json()["error"] == "InvalidValue"
    assert "start_time" in err.value.response.json()["description"]
    missing = raw_get(server, "/api/v2/incremental/tickets/cursor.json")
    assert missing.status_code == 400 and "start_time" in missing.json()["description"]
    bad = raw_get(server, "/api/v2/incremental/tickets/cursor.json", cursor="zzzz1")
    assert bad.status_code == 400
    too_big = raw_get(server, "/api/v2/incremental/tickets/cursor.json", start_time=0, per_page=1001)
    assert too_big.status_code == 400


def test_backward_pages_through_before_url(server):
    emu = server.emulator("zendesk")
    last = raw_get(server, "/api/v2/incremental/tickets/cursor.json", start_time=0, per_page=20).json()
    tail = raw_get(server, "/api/v2/incremental/tickets/cursor.json", cursor=last["after_cursor"], per_page=20).json()
    assert tail["end_of_stream"] is True
    back = _session(server).get(tail["before_url"], auth=(f"{DEMO.zendesk.email}/token", DEMO.zendesk.token)).json()
    assert [t["id"] for t in back["tickets"]] == export_order(emu)[:20]


def test_cursor_codec_round_trips_and_is_url_safe():
    token = encode_cursor("a", (1714521600, 42))
    assert re.fullmatch(r"[a-z0-9]+", token)
    assert decode_cursor(token) == ("a", (1714521600, 42))


def test_odd_record_fault_drops_updated_at_from_one_ticket(server):
    server.faults.add(r"/incremental/tickets/cursor\.json", kind="odd_record")
    tickets = list(zenpy_tls(server).tickets.incremental(start_time=0, per_page=10))
    assert len(tickets) == TICKET_COUNT
    assert sum(1 for t in tickets if t.updated_at is None) == 1


# ------------------------------------------------------------------------------------------- rate limits


def test_incremental_limit_429_is_honoured_by_zenpy_with_integer_retry_after(server):
    emu = server.emulator("zendesk")
    emu.incremental_per_minute = 2  # one-second window at time_scale 60
    started = time.monotonic()
    tickets = list(zenpy_tls(server, ratelimit_budget=10).tickets.incremental(start_time=0, per_page=5))
    elapsed = time.monotonic() - started
    assert [t.id for t in tickets] == export_order(emu)
    rejected = server.calls.snapshot()[EXPORT] - 5
    assert rejected >= 1  # at least one page was answered 429 and re-sent after the wait
    assert elapsed < 8


def test_over_limit_answers_429_with_headers_and_zenpy_budget_stops(server):
    with zendesk_server(time_scale=1.0) as slow:
        emu = slow.emulator("zendesk")
        emu.per_minute = 2
        ok = raw_get(slow, "/api/v2/users.json")
        assert ok.headers["X-Rate-Limit"] == "2" and ok.headers["X-Rate-Limit-Remaining"] == "1"
        raw_get(slow, "/api/v2/users.json")
        denied = raw_get(slow, "/api/v2/users.json")
        assert denied.status_code == 429
        assert denied.json()["error"] == "APIRateLimitExceeded"
        assert re.fullmatch(r"\d+", denied.headers["Retry-After"]) and 55 <= int(denied.headers["Retry-After"]) <= 60
        started = time.monotonic()
        with pytest.raises(RatelimitBudgetExceeded):
            list(zenpy_tls(slow, ratelimit_budget=2).organizations())
        assert time.monotonic() - started < 5


def test_incremental_limit_is_separate_from_account_limit():
    with zendesk_server(time_scale=1.0) as slow:
        slow.emulator("zendesk").incremental_per_minute = 1
        first = raw_get(slow, "/api/v2/incremental/tickets/cursor.json", start_time=0)
        assert first.headers["Zendesk-RateLimit-incremental-exports"].startswith("total=1; remaining=0")
        second = raw_get(slow, "/api/v2/incremental/tickets/cursor.json", start_time=0)
        assert second.status_code == 429 and "incremental" in second.json()["description"]
        assert raw_get(slow, "/api/v2/organizations.json").status_code == 200


# ------------------------------------------------------------------------------------------- auth


def test_bad_token_is_rejected_with_401_and_oauth_token_is_accepted(server):
    zd = zenpy_tls(server, creds={"token": "not-the-token"})
    with pytest.raises(APIException) as err:
        list(zd.organizations())
    assert err.value.response.status_code == 401
    assert err.value.response.json() == {"error": "Couldn't authenticate you"}
    oauth = Zenpy(subdomain="127.0.0", domain=f"1:{server.tls_port}", oauth_token=DEMO.zendesk.oauth_token,
                  session=_session(server), disable_cache=True)
    assert oauth.organizations(id=101).name == "Acme"


# ------------------------------------------------------------------------------------------- lists and reads


def test_organizations_page_by_cursor_with_external_ids_of_the_served_crm(server):
    orgs = list(zenpy_tls(server).organizations(cursor_pagination=2))
    assert [o.id for o in orgs] == [101, 102, 103, 104, UNMATCHED_ORG_ID]
    assert server.calls.snapshot()["zendesk organizations"] == 3
    external = {o.id: o.external_id for o in orgs}
    assert external == {101: sf_id(1), 102: None, 103: None, 104: sf_id(4), UNMATCHED_ORG_ID: UNMATCHED_EXTERNAL_ID}
    assert orgs[1].domain_names == ["globex.test"]
    with zendesk_server(crm="hubspot") as hubspot:
        orgs = list(zenpy_tls(hubspot).organizations())
        assert {o.id: o.external_id for o in orgs}[101] == hs_id(1)


def test_users_metrics_and_ratings_page_by_cursor(server):
    zd = zenpy_http(server)
    users = list(zd.users(cursor_pagination=5))
    assert len(users) == 12 and {u.role for u in users} == {"agent", "end-user"}
    metrics = list(zd.ticket_metrics(cursor_pagination=8))
    assert len(metrics) == TICKET_COUNT - len(DELETED_TICKETS)
    assert not {m.ticket_id for m in metrics} & DELETED_TICKETS
    solved = next(m for m in metrics if m.ticket_id == 3)
    assert solved.first_resolution_time_in_minutes == {"calendar": 180, "business": 60}
    ratings = list(zd.satisfaction_ratings(cursor_pagination=5))
    assert len(ratings) == 12
    calls = server.calls.snapshot()
    assert (calls["zendesk users"], calls["zendesk ticket_metrics"], calls["zendesk satisfaction_ratings"]) == (3, 3, 3)
    created = [r.created_at for r in ratings]
    assert created == sorted(created)


def test_satisfaction_rating_filters_and_a_new_rating(server):
    emu = server.emulator("zendesk")
    zd = zenpy_tls(server)
    bad = list(zd.satisfaction_ratings(score="bad"))
    assert bad and {r.score for r in bad} == {"bad"}
    with_comment = raw_get(server, "/api/v2/satisfaction_ratings.json", score="good_with_comment").json()
    assert all(r["comment"] and r["score"] == "good" for r in with_comment["satisfaction_ratings"])
    rating_id = emu.add_rating(1, "bad", comment="switching to a competitor")
    recent = list(zd.satisfaction_ratings(start_time=AS_OF - timedelta(minutes=5)))
    assert [(r.id, r.ticket_id, r.comment) for r in recent] == [(rating_id, 1, "switching to a competitor")]
    assert raw_get(server, "/api/v2/satisfaction_ratings.json", score="great").status_code == 400
    desc = raw_get(server, "/api/v2/satisfaction_ratings", sort_order="desc", **{"page[size]": 100}).json()
    assert desc["satisfaction_ratings"][0]["id"] == rating_id


def test_offset_pagination_when_page_and_per_page_are_sent(server):
    page = raw_get(server, "/api/v2/organizations.json", page=1, per_page=2).json()
    seen = []
    while True:
        seen += [o["id"] for o in page["organizations"]]
        assert page["count"] == 5
        if page["next_page"] is None:
            break
        assert page["next_page"].startswith(server.https_url)
        page = _session(server).get(page["next_page"], auth=(f"{DEMO.zendesk.email}/token", DEMO.zendesk.token)).json()
    assert seen == [101, 102, 103, 104, UNMATCHED_ORG_ID]
    assert raw_get(server, "/api/v2/users.json", **{"page[size]": 101}).status_code == 400


def test_single_reads_metrics_and_record_not_found(server):
    zd = zenpy_tls(server)
    assert zd.users(id=1010).email == "user0@acme.test"
    assert zd.tickets(id=3).subject == "Ticket 3"
    metric = zd.tickets.metrics(3)
    assert (metric.ticket_id, metric.reopens, metric.replies) == (3, 1, 3)
    with pytest.raises(RecordNotFoundException):
        zd.organizations(id=999)
    with pytest.raises(RecordNotFoundException):
        zd.tickets(id=min(DELETED_TICKETS))  # deleted tickets are gone from single reads
    missing = raw_get(server, "/api/v2/tickets/9999/metrics.json")
    assert missing.status_code == 404 and missing.json() == {"error": "RecordNotFound", "description": "Not found"}


def test_update_ticket_helper_validates_and_records_metrics(server):
    emu = server.emulator("zendesk")
    with pytest.raises(ValueError, match="unknown ticket fields"):
        emu.update_ticket(1, colour="red")
    emu.update_ticket(1, reopens=4, status="open")
    server.clock.advance(timedelta(seconds=61))
    assert zenpy_tls(server).tickets.metrics(1).reopens == 4
    assert next(t for t in emu.tickets() if t["id"] == 1)["updated_at"].startswith("2024-05-01T12:00:")


def test_serves_a_generated_portfolio_end_to_end():
    portfolio = generate_portfolio(seed=5, size=MIN_SIZE, as_of=AS_OF)
    with SandboxServer([ZendeskEmulator], clock=SandboxClock(start=AS_OF), time_scale=600) as srv:
        srv.emulator("zendesk").load(portfolio, crm="hubspot")
        zd = zenpy_tls(srv)
        settled = {t.id for t in portfolio.tickets if t.updated_at <= AS_OF - timedelta(seconds=60)}
        exported = list(zd.tickets.incremental(start_time=0, per_page=25))
        assert {t.id for t in exported} == settled  # the last minute's changes wait
        srv.clock.advance(timedelta(seconds=61))
        exported = list(zd.tickets.incremental(start_time=0, per_page=25))
        assert sorted(t.id for t in exported) == sorted(t.id for t in portfolio.tickets)
        accounts = {a.key: a for a in portfolio.accounts}
        orgs = {o.id: o for o in zd.organizations(cursor_pagination=10)}
        assert set(orgs) == {o.id for o in portfolio.zendesk_orgs}
        for org in portfolio.zendesk_orgs:
            account = accounts.get(org.account_key)
            if account is not None and account.zendesk_identity == "external_id":
                assert orgs[org.id].external_id == account.hs_id


# ------------------------------------------------------------------------------------------- organization and user exports

ORG_EXPORT, USER_EXPORT = "zendesk organization_export", "zendesk user_export"


def org_export_order(emu: ZendeskEmulator) -> list[int]:
    return [o["id"] for o in sorted(emu.organizations(), key=lambda o: (o["updated_at"], o["id"]))]


def test_organization_export_pages_by_time_and_repeats_the_boundary_second(server):
    emu = server.emulator("zendesk")
    gen = zenpy_http(server).organizations.incremental(start_time=0, per_page=2)
    seen = [o.id for o in gen]
    order = org_export_order(emu)
    assert server.calls.snapshot()[ORG_EXPORT] == 4  # pages of 2 from 0, each starting at the last one's end_time
    assert list(dict.fromkeys(seen)) == order  # in (updated_at, id) order once duplicates are dropped
    assert len(seen) == len(order) + 3  # each later page starts with the previous page's last item again
    assert gen.end_of_stream is True and gen.count == 2
    assert gen.end_time == int(max(o.updated_at for o in fx.make_portfolio().zendesk_orgs).timestamp())


def test_organization_export_page_shape(server):
    body = raw_get(server, "/api/v2/incremental/organizations.json", start_time=0, per_page=2).json()
    assert set(body) == {"organizations", "next_page", "count", "end_of_stream", "end_time"}
    assert body["count"] == 2 and body["end_of_stream"] is False
    last = body["organizations"][-1]
    assert body["end_time"] == int(datetime.fromisoformat(last["updated_at"]).timestamp())
    assert body["next_page"].startswith(server.https_url + "/api/v2/incremental/organizations.json?")
    assert f"start_time={body['end_time']}" in body["next_page"] and "per_page=2" in body["next_page"]
    assert {"id", "name", "external_id", "domain_names", "updated_at", "deleted_at"} <= set(last)
    assert last["deleted_at"] is None
    quiet_since = int((AS_OF - timedelta(seconds=61)).timestamp())
    tail = raw_get(server, "/api/v2/incremental/organizations.json", start_time=quiet_since).json()
    assert tail == {"organizations": [], "next_page": tail["next_page"], "count": 0, "end_of_stream": True,
                    "end_time": quiet_since}  # an empty page hands its start back as end_time
    assert f"start_time={quiet_since}" in tail["next_page"]


def test_organization_export_resumes_from_end_time_with_edits_adds_and_deletes(server):
    emu = server.emulator("zendesk")
    zd = zenpy_http(server)
    gen = zd.organizations.incremental(start_time=0)
    assert len(list(gen)) == 5
    resume_at = gen.end_time  # what a connector persists
    emu.update_organization(101, name="Acme Corp", domain_names=["acme.test", "acme.example"])
    new_id = emu.add_organization("Hooli", external_id="hooli-1", domain_names=["hooli.test"])
    emu.delete_organization(103)
    assert [o.id for o in zd.organizations.incremental(start_time=resume_at)] == [104]  # the last minute waits
    server.clock.advance(timedelta(seconds=61))
    changed = {o.id: o for o in zd.organizations.incremental(start_time=resume_at)}
    assert set(changed) == {104, 101, new_id, 103}  # 104 again: it sits at resume_at itself
    assert changed[101].name == "Acme Corp" and changed[101].domain_names == ["acme.test", "acme.example"]
    assert changed[new_id].external_id == "hooli-1" and changed[new_id].deleted_at is None
    assert changed[103].deleted_at == "2024-05-01T12:00:00Z"
    assert 103 not in {o.id for o in zd.organizations()}  # deleted: gone from the list...
    with pytest.raises(RecordNotFoundException):
        zd.organizations(id=103)  # ...and from single reads
    with pytest.raises(KeyError):
        emu.update_organization(103, name="ghost")
    with pytest.raises(ValueError, match="unknown organizations fields"):
        emu.update_organization(101, colour="red")


def test_organization_export_gets_past_a_crowd_sharing_one_second(server):
    emu = server.emulator("zendesk")
    crowd_time = AS_OF - timedelta(hours=1)
    crowd = [emu.add_organization(f"Bulk {n}", created_at=crowd_time) for n in range(5)]
    later = emu.add_organization("After the crowd", created_at=AS_OF - timedelta(minutes=30))
    start = int(crowd_time.timestamp())
    first = raw_get(server, "/api/v2/incremental/organizations.json", start_time=start, per_page=2).json()
    assert [o["id"] for o in first["organizations"]] == crowd + [later]  # the whole crowd, then onward
    assert first["end_time"] == int((AS_OF - timedelta(minutes=30)).timestamp()) and first["end_of_stream"]
    before = raw_get(server, "/api/v2/incremental/organizations.json", start_time=start - 60, per_page=2).json()
    assert [o["id"] for o in before["organizations"]] == crowd  # a page ends on a second boundary
    assert before["end_time"] == start and before["end_of_stream"] is False
    everything = [o.id for o in zenpy_http(server).organizations.incremental(start_time=0, per_page=2)]
    assert set(everything) == set(org_export_order(emu))


def test_users_cursor_export_pages_resumes_and_shows_deleted_users_inactive(server):
    emu = server.emulator("zendesk")
    zd = zenpy_tls(server)
    gen = zd.users.incremental(start_time=0, per_page=5)
    first = list(gen)
    assert len(first) == 12 and len({u.id for u in first}) == 12  # cursor export: no repeats
    assert server.calls.snapshot()[USER_EXPORT] == 3  # 12 users sharing one second, 5 a page
    assert {u.role for u in first} == {"agent", "end-user"} and all(u.active for u in first)
    saved = gen.after_cursor
    emu.update_user(1011, email="renamed@acme.test")
    new_id = emu.add_user("Newcomer", "new@globex.test", organization_id=102)
    emu.delete_user(1020)
    emu.update_user(1030, role="agent")
    assert list(zd.users.incremental(cursor=saved)) == []  # changed within the last minute
    server.clock.advance(timedelta(seconds=61))
    changed_gen = zd.users.incremental(cursor=saved)
    changed = {u.id: u for u in changed_gen}
    assert set(changed) == {1011, new_id, 1020, 1030}
    assert changed[1011].email == "renamed@acme.test" and changed[new_id].organization_id == 102
    assert changed[1020].active is False and changed[1030].role == "agent"
    assert changed_gen.end_of_stream is True
    assert zd.users(id=1020).active is False  # a deleted user still reads, inactive...
    assert 1020 not in {u.id for u in zd.users()}  # ...but leaves the list
    assert "end_time" not in raw_get(server, "/api/v2/incremental/users/cursor.json", start_time=0).json()
    with pytest.raises(ValueError, match="role"):
        emu.add_user("Boss", "boss@x.test", role="owner")


def test_new_exports_reject_recent_or_missing_start_time_and_count_against_the_export_limit():
    with zendesk_server(time_scale=1.0) as slow:
        recent = int((AS_OF - timedelta(seconds=20)).timestamp())
        for path in ("/api/v2/incremental/organizations.json", "/api/v2/incremental/users/cursor.json"):
            too_recent = raw_get(slow, path, start_time=recent)
            assert too_recent.status_code == 400 and "too recent" in too_recent.json()["description"]
            assert raw_get(slow, path).status_code == 400
            assert raw_get(slow, path, start_time=0, per_page=1001).status_code == 400
        slow.emulator("zendesk").incremental_per_minute = 8  # the six refusals above counted too
        assert raw_get(slow, "/api/v2/incremental/organizations.json", start_time=0).status_code == 200
        assert raw_get(slow, "/api/v2/incremental/users/cursor.json", start_time=0).status_code == 200
        denied = raw_get(slow, "/api/v2/incremental/organizations.json", start_time=0)
        assert denied.status_code == 429 and "incremental" in denied.json()["description"]
        assert raw_get(slow, "/api/v2/organizations.json").status_code == 200


def test_zenpy_stops_the_time_based_export_early_when_end_time_is_recent():
    """sdk-notes §3.2: zenpy will not follow `next_page` while `end_time` is within five minutes of the
    machine's clock, even with `end_of_stream` false — why the connector requests each page itself."""
    now = datetime.now(UTC).replace(microsecond=0)
    with SandboxServer([ZendeskEmulator], clock=SandboxClock(start=now), time_scale=60.0) as srv:
        emu = srv.emulator("zendesk")
        emu.load(make_portfolio())
        fresh = [emu.add_organization(f"Fresh {n}", created_at=now - timedelta(seconds=180 - n)) for n in range(3)]
        gen = zenpy_http(srv).organizations.incremental(start_time=0, per_page=6)
        got = [o.id for o in gen]
        assert got[-1] == fresh[0] and gen.end_of_stream is False  # stopped with two still to come
        assert srv.calls.snapshot()[ORG_EXPORT] == 1
