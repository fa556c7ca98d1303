"""The Salesforce Source against the emulator, through the unmodified simple-salesforce over TLS: full and
incremental reads, deletes, crash/resume, Bulk 2.0, faults, sessions, credentials, the field map, quota."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceGeneralError,
    SalesforceMalformedRequest,
    SalesforceMoreThanOneRecord,
    SalesforceOperationError,
    SalesforceRefusedRequest,
)

from healthsync.connectors.base import Source
from healthsync.connectors.cursor import KeysetPosition
from healthsync.connectors.pacing import PacerRegistry, salesforce_pacing
from healthsync.connectors.records import ActivityKind, Direction, MeetingOutcome, OpportunityKind
from healthsync.connectors.salesforce import SalesforceConnection, SalesforceSource
from healthsync.connectors.salesforce.client import LocatorExpiredError, _translate, build_http
from healthsync.errors import (
    AuthError,
    ConfigError,
    FatalError,
    QuotaExhaustedError,
    RateLimitedError,
    RetryableError,
)

from . import sf_conn_fixtures as fx

server, emu = fx.server, fx.emu  # the emulator fixtures, shared with the other Salesforce test module
Store = fx.Store
api_calls = fx.api_calls
harness = fx.harness
pull = fx.pull
settings_for = fx.settings_for


STREAM_OBJECTS = {"accounts": ("Account",), "contacts": ("Contact",), "opportunities": ("Opportunity",),
                  "activities": ("Task", "Event"), "users": ("User",)}
QUERIES = ("query", "query_all", "query_more")


def _live(emu, *sobjects):
    return {row["Id"]: row for sobject in sobjects for row in emu.records(sobject)}


def _deleted(emu, *sobjects):
    return {row["Id"] for sobject in sobjects for row in emu.records(sobject, include_deleted=True)
            if row["IsDeleted"]}


# -------------------------------------------------------------------------------------------------- full reads


@pytest.mark.parametrize("stream", sorted(STREAM_OBJECTS))
def test_full_read_equals_the_org(server, emu, stream):
    h = harness(server)
    store = pull(h.source, stream, Store(), fx.cycle_start(emu))
    assert set(store.records) == set(_live(emu, *STREAM_OBJECTS[stream]))
    if stream != "users":
        assert store.tombstones == _deleted(emu, *STREAM_OBJECTS[stream]) and store.tombstones
    assert store.skipped == []
    assert isinstance(store.state.position, KeysetPosition)


def test_full_read_maps_every_field(server, emu):
    h = harness(server)
    now = fx.cycle_start(emu)
    accounts = pull(h.source, "accounts", Store(), now).records
    account = accounts[fx.sf_id("001", 7)]
    assert (account.name, account.arr, account.acv, account.seats_purchased, account.usage_capacity) == (
        "Account 07", 84000.0, 70000.0, 70, 7000.0)
    assert account.renewal_date == date(2024, 7, 8) and account.contract_start == date(2023, 7, 1)
    assert (account.plan_tier, account.payment_status, account.nps) == ("enterprise", "overdue", 7.0)
    assert account.domain == "acct7.test" and account.owner_id == fx.sf_id("005", 2)
    assert accounts[fx.sf_id("001", 5)].nps is None

    contacts = pull(h.source, "contacts", Store(), now).records
    champion = contacts[fx.sf_id("003", 60)]
    assert champion.is_champion and champion.role == "Champion" and champion.left_company
    assert champion.left_company_at.date() == date(2024, 5, 1) and champion.account_id == fx.sf_id("001", 6)
    assert champion.created_at == fx.BASE - timedelta(days=200)  # CreatedDate: a replay of the past needs it
    sponsor = contacts[fx.sf_id("003", 61)]
    assert (sponsor.role, sponsor.is_champion, sponsor.left_company) == ("Executive Sponsor", False, False)

    opportunities = pull(h.source, "opportunities", Store(), now).records
    won, open_expansion = opportunities[fx.sf_id("006", 8)], opportunities[fx.sf_id("006", 9)]
    assert (won.kind, won.is_won, won.is_closed, won.amount) == (OpportunityKind.RENEWAL, True, True, 96000.0)
    assert (open_expansion.kind, open_expansion.is_closed, open_expansion.stage) == (
        OpportunityKind.EXPANSION, False, "Negotiation/Review")

    activities = pull(h.source, "activities", Store(), now).records
    call, email = activities[fx.sf_id("00T", 100)], activities[fx.sf_id("00T", 101)]
    qbr, meeting = activities[fx.sf_id("00U", 102)], activities[fx.sf_id("00U", 103)]
    assert (call.kind, call.direction, call.contact_id) == (ActivityKind.CALL, Direction.OUTBOUND, fx.sf_id("003", 10))
    assert (email.kind, email.direction) == (ActivityKind.EMAIL, Direction.INBOUND)
    assert (qbr.kind, qbr.outcome) == (ActivityKind.QBR, MeetingOutcome.CANCELLED)
    assert (meeting.kind, meeting.outcome, meeting.account_id) == (ActivityKind.MEETING, MeetingOutcome.HELD,
                                                                   fx.sf_id("001", 1))
    assert qbr.occurred_at is not None and qbr.occurred_at.hour == 2

    users = pull(h.source, "users", Store(), now).records
    assert {u.email for u in users.values() if u.active} >= {"cto@cloudscale.io", "casey@vendor.test"}
    assert users[fx.sf_id("005", 4)].active is False


def test_full_read_costs_the_minimum_and_incremental_one_call_per_object(server, emu):
    h = harness(server)
    now = fx.cycle_start(emu)
    stores = {}
    for stream, sobjects in STREAM_OBJECTS.items():
        h.source.object_fields(sobjects[0])  # describe outside the count: it is cached per connection
        server.calls.reset()
        stores[stream] = pull(h.source, stream, Store(), now)
        assert api_calls(server, *QUERIES) == len(sobjects), stream  # every object here fits one 2,000-row page
    for stream, sobjects in STREAM_OBJECTS.items():
        server.calls.reset()
        pull(h.source, stream, stores[stream], fx.cycle_start(emu))
        assert api_calls(server, *QUERIES) == len(sobjects), stream
        assert sum(server.calls.snapshot().values()) == len(sobjects), server.calls.snapshot()


# -------------------------------------------------------------------------------------------------- incremental


def test_incremental_picks_up_changes_same_stamp_edits_and_deletes(server, emu):
    h = harness(server)
    store = pull(h.source, "accounts", Store(), fx.cycle_start(emu))
    boundary = store.state.position
    emu.update("Account", fx.sf_id("001", 1), {"Name": "Renamed"})
    emu.update("Account", fx.sf_id("001", 2), {"ARR__c": 1.0})  # same second as the edit above
    new_id = emu.insert("Account", {"Name": "Brand New", "Plan_Tier__c": "Growth"})
    emu.delete("Account", fx.sf_id("001", 4))
    # Committed late: stamped exactly at the stored boundary, and below it inside the overlap window.
    emu.update("Account", fx.sf_id("001", 8), {"Name": "Same stamp", "SystemModstamp": boundary.ts.isoformat()})
    emu.update("Account", fx.sf_id("001", 9), {"Name": "Late commit",
                                               "SystemModstamp": (boundary.ts - timedelta(minutes=3)).isoformat()})
    server.calls.reset()
    pull(h.source, "accounts", store, fx.cycle_start(emu))
    assert api_calls(server, *QUERIES) == 1
    live = _live(emu, "Account")
    assert set(store.records) == set(live)
    assert {k: r.name for k, r in store.records.items()} == {k: row["Name"] for k, row in live.items()}
    assert store.records[fx.sf_id("001", 2)].arr == 1.0 and new_id in store.records
    assert fx.sf_id("001", 4) in store.tombstones
    emitted = {r.id for r in store.emitted}
    assert fx.sf_id("001", 25) not in emitted  # at the boundary and unchanged: deduped, not re-emitted
    assert {fx.sf_id("001", 8), fx.sf_id("001", 9), fx.sf_id("001", 1)} <= emitted


def test_unchanged_rows_re_read_only_inside_the_overlap(server, emu):
    h = harness(server, overlap=timedelta(seconds=30))
    store = pull(h.source, "contacts", Store(), fx.cycle_start(emu))
    pull(h.source, "contacts", store, fx.cycle_start(emu))
    # with a 30 s overlap only the newest stamp group is re-read, and its rows are all boundary rows
    assert store.emitted == [] and store.pages == 2


def test_an_edit_made_during_the_pull_arrives_next_cycle(server, emu):
    h = harness(server, batch_size=200)
    as_of = fx.cycle_start(emu)
    early, late = fx.sf_id("00T", 100), fx.sf_id("00T", 2501)

    def edit(page_number):
        if page_number == 1:
            emu.update("Task", early, {"Subject": "edited while paging (already read)"})
            emu.update("Task", late, {"Subject": "edited while paging (not yet read)"})

    store = pull(h.source, "activities", Store(), as_of, during=edit)
    assert store.pages >= 3
    pull(h.source, "activities", store, fx.cycle_start(emu))
    assert store.records[early].subject == "edited while paging (already read)"
    assert store.records[late].subject == "edited while paging (not yet read)"
    assert set(store.records) == set(_live(emu, "Task", "Event"))


def test_pages_come_in_ascending_cursor_order_across_task_and_event(server, emu):
    h = harness(server, batch_size=200)
    positions = []
    for page in h.source.read("activities", None, as_of=fx.cycle_start(emu)):
        positions.append((page.state.position.ts, page.state.position.id))
        assert all(r.updated_at <= page.state.position.ts for r in page.records)
    assert positions == sorted(positions) and len(positions) >= 4


def test_crash_after_page_k_then_resume_gives_the_same_set(server, emu):
    h = harness(server, batch_size=200)
    as_of = fx.cycle_start(emu)
    reference = pull(h.source, "activities", Store(), as_of)
    crashed = pull(h.source, "activities", Store(), as_of, stop_after=2)
    assert len(crashed.records) < len(reference.records)
    resumed = pull(h.source, "activities", Store(records=dict(crashed.records), tombstones=set(crashed.tombstones),
                                                 state=crashed.state), as_of)
    assert set(resumed.records) == set(reference.records) and resumed.tombstones == reference.tombstones
    assert resumed.state.position == reference.state.position


def test_an_expired_query_locator_resumes_from_the_keyset(server, emu):
    h = harness(server, batch_size=200)
    body = json.dumps([{"message": "invalid query locator", "errorCode": "INVALID_QUERY_LOCATOR"}])
    server.faults.add(r"/queryAll/01g", kind="status", status=400, body=body, times=1)
    store = pull(h.source, "activities", Store(), fx.cycle_start(emu))
    assert server.faults.pending() == 0
    assert set(store.records) == set(_live(emu, "Task", "Event")) and len(store.emitted) == 600


# -------------------------------------------------------------------------------------------------- Bulk 2.0


def test_big_initial_load_switches_to_bulk_and_matches_rest(server, emu):
    rest = pull(harness(server).source, "activities", Store(), fx.cycle_start(emu))
    h = harness(server, bulk_threshold=299, batch_size=200)
    server.calls.reset()
    bulk = pull(h.source, "activities", Store(), fx.cycle_start(emu))
    calls = server.calls.snapshot()
    assert calls.get("salesforce bulk_create") == 2  # Task and Event (300 rows each, deletions included)
    assert calls.get("salesforce query_more") is None  # one REST page each, the rest through Bulk
    assert set(bulk.records) == set(rest.records) and bulk.tombstones == rest.tombstones
    assert all(bulk.records[k] == rest.records[k] for k in rest.records)
    server.calls.reset()
    pull(h.source, "activities", bulk, fx.cycle_start(emu))  # incremental reads never use bulk
    assert "salesforce bulk_create" not in server.calls.snapshot()


def test_a_failing_bulk_job_falls_back_to_rest(server, emu):
    h = harness(server, bulk_threshold=100, batch_size=200)
    server.faults.add(r"/jobs/query$", method="POST", kind="status", status=500, times=1)
    store = pull(h.source, "activities", Store(), fx.cycle_start(emu))
    assert server.faults.pending() == 0 and server.calls.snapshot()["salesforce bulk_create"] == 2
    assert set(store.records) == set(_live(emu, "Task", "Event")) and store.skipped == []
    assert len(store.emitted) == 600  # the REST resume continued after the first page: nothing twice


# -------------------------------------------------------------------------------------------------- faults


def test_429_bursts_5xx_and_resets_are_survived_honouring_retry_after(server, emu):
    h = harness(server)
    server.faults.add(r"/queryAll/", kind="status", status=429, headers={"Retry-After": "7"}, times=1)
    server.faults.add(r"/queryAll/", kind="status", status=503, times=1)
    server.faults.add(r"/queryAll/", kind="reset", times=1)
    server.faults.add(r"/queryAll/", kind="malformed", times=1)
    store = pull(h.source, "opportunities", Store(), fx.cycle_start(emu))
    assert set(store.records) == set(_live(emu, "Opportunity"))
    assert len(h.sleeps) == 4 and h.sleeps[0] >= 7  # four failures, four waits; the 429 waited its Retry-After


def test_expired_session_is_renewed_for_credential_logins(server, emu):
    h = harness(server)
    pull(h.source, "users", Store(), fx.cycle_start(emu))
    emu.expire_sessions()
    server.faults.add(r"/queryAll/", kind="expired_session", times=1)
    store = pull(h.source, "accounts", Store(), fx.cycle_start(emu))
    assert len(store.records) == 24
    assert server.calls.snapshot()["salesforce soap_login"] == 3  # first login, then one per expiry


def test_expired_session_of_a_session_id_client_is_an_auth_error(server, emu):
    token = emu.issue_token()

    def direct(http):
        return Salesforce(instance_url=server.https_url, session_id=token, session=http)

    settings = settings_for(server)
    pacer = PacerRegistry().pacer("salesforce", "direct", salesforce_pacing())
    conn = SalesforceConnection(direct, build_http(settings), pacer, sleep=lambda s: None)
    source = SalesforceSource(conn, settings.crm.field_map)
    assert len(pull(source, "users", Store(), fx.cycle_start(emu)).records) == 5
    emu.expire_sessions()
    with pytest.raises(AuthError, match="session expired"):
        pull(source, "accounts", Store(), fx.cycle_start(emu))


def test_odd_record_is_skipped_and_the_rest_lands(server, emu):
    h = harness(server)
    server.faults.add(r"/queryAll/", kind="odd_record", times=1)
    store = pull(h.source, "accounts", Store(), fx.cycle_start(emu))
    assert len(store.skipped) == 1 and store.skipped[0].stream == "accounts"
    assert "SystemModstamp" in store.skipped[0].reason and store.skipped[0].record_id
    assert len(store.records) + len(store.tombstones) == 24  # 25 rows, one skipped


# -------------------------------------------------------------------------------------------------- credentials, config


@pytest.mark.parametrize("mode", ["password", "client_credentials", "jwt"])
def test_every_auth_mode_logs_in(server, emu, mode):
    h = harness(server, settings_for(server, mode=mode))
    result = h.source.check()
    assert result.ok, result.message
    assert "Healthsync_Key__c does not exist yet" in result.message


def test_bad_credentials_give_not_ok_check_and_auth_error(server, emu):
    h = harness(server, settings_for(server, password="hunter2-wrong"))
    result = h.source.check()
    assert not result.ok and "INVALID_LOGIN" in result.message
    assert "crm.salesforce.auth.username, password and security_token" in result.fix_hint
    assert "hunter2" not in result.message + result.fix_hint
    with pytest.raises(AuthError):
        pull(h.source, "accounts", Store(), fx.cycle_start(emu))
    bad_secret = harness(server, settings_for(server, mode="client_credentials", consumer_secret="nope-secret"))
    checked = bad_secret.source.check()
    assert not checked.ok and "consumer_secret" in checked.fix_hint and "nope-secret" not in checked.message


def test_a_field_map_name_missing_in_the_org_is_a_config_error(server, emu):
    h = harness(server, settings_for(server, field_map={"account": {"arr": "Annual_Recurring__c"}}))
    with pytest.raises(ConfigError, match=r"crm\.field_map\.account\.arr.*Annual_Recurring__c.*Account"):
        next(iter(h.source.read("accounts", None, as_of=fx.cycle_start(emu))))
    result = h.source.check()
    assert not result.ok and "crm.field_map.account.arr" in result.message and "Object Manager" in result.fix_hint


def test_quota_share_stops_the_read_before_the_orgs_403(server, emu):
    emu.daily_limit = 40
    h = harness(server, settings_for(server, daily_share=0.25), batch_size=200)  # 10 calls allowed
    with pytest.raises(QuotaExhaustedError, match="share 0.25 allows 10"):
        for stream in ("accounts", "contacts", "opportunities", "activities"):
            pull(h.source, stream, Store(), fx.cycle_start(emu))
    assert emu.api_usage == 10  # stopped at the share, well before the org's own REQUEST_LIMIT_EXCEEDED


# -------------------------------------------------------------------------------------------------- contracts


@pytest.mark.parametrize(("error", "expected"), [
    (SalesforceGeneralError("u", 503, "query", [{"errorCode": "SERVER_UNAVAILABLE", "message": "x"}]),
     RetryableError),
    (SalesforceGeneralError("u", 429, "query", "slow down"), RateLimitedError),
    (SalesforceRefusedRequest("u", 403, "query", [{"errorCode": "REQUEST_LIMIT_EXCEEDED",
                                                  "message": "TotalRequests Limit exceeded."}]), QuotaExhaustedError),
    (SalesforceRefusedRequest("u", 403, "x", [{"errorCode": "INSUFFICIENT_ACCESS", "message": "no"}]), AuthError),
    (SalesforceMalformedRequest("u", 400, "query", [{"errorCode": "INVALID_QUERY_LOCATOR", "message": "gone"}]),
     LocatorExpiredError),
    (SalesforceMalformedRequest("u", 400, "query", [{"errorCode": "MALFORMED_QUERY", "message": "bad"}]), FatalError),
    (SalesforceMoreThanOneRecord("u", 300, "x", []), FatalError),
    (SalesforceAuthenticationFailed("INVALID_LOGIN", "Invalid username, password"), AuthError),
    (SalesforceAuthenticationFailed(503, "<html>down</html>"), RetryableError),
    (SalesforceOperationError("Job failure. Response content: Failed"), FatalError),
    (requests.exceptions.ConnectionError("reset"), RetryableError),
    (requests.exceptions.ReadTimeout("slow"), RetryableError),
    (requests.exceptions.SSLError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"), FatalError),
    (requests.exceptions.JSONDecodeError("Expecting value", "{", 0), RetryableError),
])
def test_sdk_errors_map_onto_our_tree(error, expected):
    translated = _translate(error, "testing", {"Retry-After": "4"}, per_record=False, auth_hint="check auth")
    assert type(translated) is expected
    if isinstance(translated, RetryableError) and not isinstance(error, SalesforceAuthenticationFailed):
        assert translated.retry_after in (4.0, None)


def test_the_source_and_writer_honour_their_protocols(server, emu):
    from healthsync.writeback.base import CrmWriter, SchemaWriter

    h = harness(server)
    assert isinstance(h.source, Source) and h.source.name == "salesforce"
    assert {s.name for s in h.source.streams()} == {"accounts", "contacts", "opportunities", "activities",
                                                     "users", "tasks"}
    for protocol in (CrmWriter, SchemaWriter):
        members = {n for n in vars(protocol) if not n.startswith("_")} | set(protocol.__annotations__)
        assert members and all(hasattr(h.writer, name) for name in members), protocol
