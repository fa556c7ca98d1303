"""The HubSpot source against the HubSpot emulator, through the unmodified hubspot-api-client over real HTTP(S)."""

from __future__ import annotations

import math
import time
from datetime import UTC, date, datetime, timedelta

import pytest

from healthsync.config.settings import FieldMap
from healthsync.connectors.cursor import KeysetPosition
from healthsync.connectors.hubspot import HubSpotClient, HubSpotSource
from healthsync.connectors.pacing import PacerRegistry
from healthsync.connectors.records import ActivityKind, Direction, MeetingOutcome, OpportunityKind, TaskStatus
from healthsync.errors import AuthError, ConfigError

from .hs_conn_fixtures import (
    ACCOUNTS,
    AS_OF,
    FIELD_MAP,
    FakeStore,
    activity_id,
    calls_delta,
    company_id,
    contact_id,
    deal_id,
    fast_retry,
    hubspot_sandbox,
    make_client,
    make_source,
    oauth_auth,
    private_app_auth,
    settings_for,
    small_portfolio,
)

KEYED = ("accounts", "contacts", "opportunities", "activities")
LIVE = ACCOUNTS - 1  # companies; the archived company's contacts, deals and activities stay (unassociated)


@pytest.fixture()
def server():
    with hubspot_sandbox() as srv:
        yield srv


@pytest.fixture()
def emu(server):
    return server.emulator("hubspot")


def now(server) -> datetime:
    return server.clock.now()


def full_store(source: HubSpotSource, as_of: datetime) -> FakeStore:
    store = FakeStore()
    for stream in (*KEYED, "users", "tasks"):
        store.pull(source, stream, as_of, full=True)
    return store


# ---------------------------------------------------------------------------------------------- full read


def test_full_read_equals_the_portfolio(server):
    store = full_store(make_source(server), now(server))
    book = small_portfolio()

    accounts = store.of("accounts")
    assert set(accounts) == {company_id(i) for i in range(LIVE)}  # the archived company became a tombstone
    acme3 = accounts[company_id(3)]
    truth = book.accounts[3]
    assert (acme3.name, acme3.domain, acme3.owner_id) == (truth.name, truth.domain, "102")
    assert (acme3.arr, acme3.acv, acme3.seats_purchased, acme3.usage_capacity) == (27_000.0, 23_000.0, 13, 4_000.0)
    assert (acme3.renewal_date, acme3.contract_start) == (date(2024, 7, 4), date(2023, 1, 4))
    assert (acme3.plan_tier, acme3.payment_status, acme3.nps) == ("enterprise", "overdue", None)
    assert accounts[company_id(4)].nps == 4.0
    assert acme3.updated_at == truth.modified_at

    contacts = store.of("contacts")
    assert len(contacts) == 2 * ACCOUNTS
    assert contacts[contact_id(LIVE, 0)].account_id is None  # its company is archived
    champion = contacts[contact_id(1, 0)]
    assert (champion.account_id, champion.email, champion.is_champion, champion.role) == \
        (company_id(1), "pat1@acme1.test", True, "champion")
    assert champion.left_company and champion.left_company_at == datetime(2024, 5, 29, tzinfo=UTC)
    assert champion.created_at is not None and champion.created_at.date() == (AS_OF - timedelta(days=300)).date()
    assert contacts[contact_id(2, 1)].role_changed_at == datetime(2024, 5, 27, tzinfo=UTC)
    assert not contacts[contact_id(2, 1)].is_champion

    deals = store.of("opportunities")
    assert len(deals) == ACCOUNTS
    assert (deals[deal_id(0)].kind, deals[deal_id(0)].is_closed) == (OpportunityKind.RENEWAL, False)
    assert (deals[deal_id(1)].kind, deals[deal_id(1)].is_won, deals[deal_id(1)].stage) == \
        (OpportunityKind.EXPANSION, True, "closedwon")
    assert (deals[deal_id(2)].kind, deals[deal_id(2)].is_closed, deals[deal_id(2)].is_won) == \
        (OpportunityKind.NEW_BUSINESS, True, False)
    assert (deals[deal_id(2)].loss_reason, deals[deal_id(1)].loss_reason) == ("Budget cut", None)
    assert deals[deal_id(4)].account_id == company_id(4) and deals[deal_id(4)].amount == 15_004.5

    activities = store.of("activities")
    assert len(activities) == 4 * ACCOUNTS
    meeting, qbr, call, email = (activities[activity_id(5, n)] for n in range(4))
    assert (meeting.kind, meeting.outcome, meeting.account_id, meeting.contact_id) == \
        (ActivityKind.MEETING, MeetingOutcome.HELD, company_id(5), contact_id(5, 0))
    assert (qbr.kind, qbr.outcome) == (ActivityKind.QBR, MeetingOutcome.NO_SHOW)
    assert (call.kind, call.direction, call.subject) == (ActivityKind.CALL, Direction.OUTBOUND, "call 5")
    assert (email.kind, email.direction) == (ActivityKind.EMAIL, Direction.INBOUND)
    assert meeting.occurred_at == AS_OF - timedelta(days=6) and meeting.owner_id == "102"

    users = store.of("users")
    assert {u.email for u in users.values()} == {"casey@vendor.test", "robin@vendor.test", "cto@cloudscale.io",
                                                  "sam@vendor.test"}
    assert not users["104"].active and users["103"].name == "Chris Tower"
    assert store.of("tasks") == {} and store.skipped == []


def test_full_read_costs_the_minimum_calls(server):
    source = make_source(server)
    before = server.calls.snapshot()
    store = FakeStore()
    for stream in KEYED:
        store.pull(source, stream, now(server), full=True)
    used = calls_delta(server, before)
    # one search per object type (≤ 200 records each), one association read per target, one archived listing
    assert used == {"hubspot search": 6, "hubspot associations_batch_read": 1 + 1 + 2 * 3,
                    "hubspot list_objects": 6}


def test_incremental_with_no_changes_costs_one_call_per_object_type(server):
    source = make_source(server)
    store = full_store(source, now(server))
    before = server.calls.snapshot()
    emitted = store.emitted
    as_of = now(server) + timedelta(minutes=5)
    for stream in (*KEYED, "users", "tasks"):
        store.pull(source, stream, as_of)
    used = calls_delta(server, before)
    # a search per object type (activities: meetings, calls, emails), owners once, the task key check once
    assert used == {"hubspot search": 6, "hubspot list_owners": 1, "hubspot get_property": 1}
    assert store.emitted - emitted == 3  # only the (full-refresh) users stream re-emits (3 active owners)


def test_stream_specs_and_unknown_stream(server):
    source = make_source(server)
    specs = {s.name: s for s in source.streams()}
    assert set(specs) == {"accounts", "contacts", "opportunities", "activities", "users", "tasks"}
    assert specs["accounts"].cursor_field == "hs_lastmodifieddate" and specs["users"].cursor_field is None
    assert specs["accounts"].supports_deletes and not specs["tasks"].supports_deletes
    with pytest.raises(ConfigError, match="no stream 'companies'"):
        list(source.read("companies", None, as_of=now(server)))


# ---------------------------------------------------------------------------------------------- incremental


def test_incremental_picks_up_exactly_the_changes(server, emu):
    source = make_source(server, archived_sweep_every=timedelta(0))
    store = full_store(source, now(server))
    edited_at = now(server) - timedelta(seconds=30)
    emu.update("companies", company_id(2), {"name": "Acme Two"}, at=edited_at)
    emu.update("companies", company_id(3), {"arr": "99000"}, at=edited_at)  # same stamp as the edit above
    new_contact = emu.create("contacts", {"email": "new@acme2.test", "firstname": "Nova"},
                             associations={"companies": [company_id(2)]}, at=edited_at)
    emu.archive("deals", deal_id(4), at=edited_at)
    emu.archive("meetings", activity_id(6, 0), at=edited_at)
    emitted = store.emitted
    as_of = now(server)
    for stream in KEYED:
        store.pull(source, stream, as_of)
    assert store.emitted - emitted == 5  # 2 companies, 1 contact, 2 tombstones: nothing re-emitted
    assert store.of("accounts")[company_id(2)].name == "Acme Two"
    assert store.of("accounts")[company_id(3)].arr == 99_000.0
    assert store.of("contacts")[new_contact].account_id == company_id(2)
    assert deal_id(4) not in store.of("opportunities")
    assert activity_id(6, 0) not in store.of("activities") and activity_id(6, 1) in store.of("activities")


def test_edit_made_during_the_pull_is_read_next_cycle(server, emu):
    source = make_source(server)
    store = full_store(source, now(server))
    as_of = now(server)
    pages = source.read("activities", store.states["activities"], as_of=as_of)
    store.apply("activities", next(pages))  # meetings read; the calls are still to come
    emu.update("calls", activity_id(3, 2), {"hs_call_title": "edited mid-pull"})  # stamped after as_of
    emu.update("meetings", activity_id(3, 0), {"hs_meeting_title": "also mid-pull"})  # already passed
    for page in pages:
        store.apply("activities", page)
    assert store.of("activities")[activity_id(3, 2)].subject == "call 3"  # newer than as_of: not this cycle
    store.pull(source, "activities", now(server))
    assert store.of("activities")[activity_id(3, 2)].subject == "edited mid-pull"
    assert store.of("activities")[activity_id(3, 0)].subject == "also mid-pull"


def test_same_timestamp_edit_after_the_position_is_not_missed(server, emu):
    source = make_source(server)
    store = full_store(source, now(server))
    position = store.states["accounts"].position
    assert isinstance(position, KeysetPosition)
    # a record that commits late with exactly the stored stamp (and a lower id): the overlap re-read catches it
    emu.update("companies", company_id(9), {"name": "Late Commit"}, at=position.ts)
    store.pull(source, "accounts", now(server))
    assert store.of("accounts")[company_id(9)].name == "Late Commit"


def test_crash_after_a_page_then_resume_gives_the_same_set(server, emu):
    stamp = now(server) - timedelta(minutes=2)
    emu.bulk_create("contacts", 2_500, lambda i: {"email": f"bulk{i}@acme1.test"}, at=stamp)
    as_of = now(server)
    reference = FakeStore()
    reference.pull(make_source(server), "contacts", as_of, full=True)

    crashed = FakeStore()
    assert crashed.pull(make_source(server), "contacts", as_of, full=True, stop_after=1) == 1
    first = crashed.emitted
    crashed.pull(make_source(server), "contacts", as_of)  # a new process resumes from the committed state
    assert crashed.of("contacts").keys() == reference.of("contacts").keys()
    assert len(crashed.of("contacts")) == 2 * ACCOUNTS + 2_500
    assert crashed.emitted - first == 2 * ACCOUNTS + 2_500 - first  # nothing emitted twice across the crash


def test_flood_past_the_search_cap_is_read_once_without_a_400(emu, server):
    emu.load(small_portfolio(2))
    emu.bulk_create("companies", 10_050, lambda i: {"name": f"Flood {i}"}, at=now(server) - timedelta(hours=1))
    source = make_source(server)
    store = FakeStore()
    before = server.calls.snapshot()
    store.pull(source, "accounts", now(server), full=True)
    searches = calls_delta(server, before)["hubspot search"]
    assert len(store.of("accounts")) == 10_051
    assert searches == math.ceil(10_051 / 200)  # restarts past 10,000 results cost no extra call

    touched_at = now(server) - timedelta(seconds=10)
    assert emu.touch_all("companies", at=touched_at) == 10_051  # a month-end mass update: one stamp for all
    emitted, before = store.emitted, server.calls.snapshot()
    store.pull(source, "accounts", now(server) + timedelta(seconds=1))
    assert store.emitted - emitted == 10_051
    assert calls_delta(server, before) == {"hubspot search": math.ceil(10_051 / 200)}
    assert store.states["accounts"].position == KeysetPosition(touched_at.replace(microsecond=touched_at.microsecond
                                                                                  // 1000 * 1000), "50000010050")


# ---------------------------------------------------------------------------------------------- faults


def test_429_bursts_with_and_without_retry_after_are_survived(server, emu):
    source = make_source(server)
    store = FakeStore()
    # one answer first, so the pacer learns the emulator's (scaled) window from the rate-limit headers: a 429
    # without Retry-After then holds the portal for one 0.2 s window instead of HubSpot's real 10 s
    store.pull(source, "accounts", now(server), full=True)
    server.faults.add(r"/crm/v3/objects/contacts/search", status=429, times=2,
                      body='{"status":"error","policyName":"TEN_SECONDLY_ROLLING","errorType":"RATE_LIMIT"}')
    server.faults.add(r"/crm/v3/owners", status=429, times=1, headers={"Retry-After": "1"})
    store.pull(source, "contacts", now(server), full=True)
    started = time.monotonic()
    store.pull(source, "users", now(server))
    assert time.monotonic() - started >= 1.0  # Retry-After: 1 was honoured
    assert len(store.of("contacts")) == 2 * ACCOUNTS and len(store.of("users")) == 3
    assert source.client.pacer.stats().rate_limited == 3


def test_real_rate_limit_of_the_emulator_is_paced_through(server, emu):
    emu.burst_limit = 5  # per 10 s window, scaled to 0.2 s
    source = make_source(server)
    store = FakeStore()
    for stream in KEYED:
        store.pull(source, stream, now(server), full=True)
    assert len(store.of("activities")) == 4 * ACCOUNTS


def test_5xx_resets_and_malformed_answers_are_retried(server):
    source = make_source(server)
    server.faults.add(r"/crm/v3/objects/companies/search", status=503, times=1)
    server.faults.add(r"/crm/v3/objects/companies/search", kind="reset", times=1)
    server.faults.add(r"/crm/v4/associations", kind="malformed", times=1)
    server.faults.add(r"/crm/v3/objects/deals/search", kind="malformed", times=1)
    store = FakeStore()
    for stream in ("accounts", "opportunities"):
        store.pull(source, stream, now(server), full=True)
    assert len(store.of("accounts")) == LIVE and len(store.of("opportunities")) == ACCOUNTS
    assert sum(1 for d in store.of("opportunities").values() if d.account_id) == LIVE
    assert server.faults.pending() == 0


def test_expired_oauth_token_is_refreshed_once(server, emu):
    client = make_client(server, auth=oauth_auth())
    source = make_source(server, client=client)
    store = FakeStore()
    store.pull(source, "accounts", now(server), full=True)
    assert client.token_refreshes == 1
    emu.expire_tokens()
    before = server.calls.snapshot()
    store.pull(source, "opportunities", now(server), full=True)
    used = calls_delta(server, before)
    assert client.token_refreshes == 2 and used["hubspot oauth_token"] == 1
    assert used["hubspot search"] == 2  # the refused search, then the same search with the new token
    assert len(store.of("opportunities")) == ACCOUNTS


def test_bad_private_app_token_gives_auth_error_and_a_failed_check(server):
    source = make_source(server, client=make_client(server, auth=private_app_auth("pat-wrong-secret-123")))
    result = source.check()
    assert not result.ok and "crm.hubspot.auth.access_token" in (result.fix_hint or "")
    assert "pat-wrong-secret-123" not in result.message + (result.fix_hint or "")
    with pytest.raises(AuthError, match="401"):
        list(source.read("accounts", None, as_of=now(server)))


def test_bad_refresh_token_names_the_oauth_settings(server):
    source = make_source(server, client=make_client(server, auth=oauth_auth("revoked-refresh-token")))
    with pytest.raises(AuthError, match="refresh_token") as caught:
        list(source.read("accounts", None, as_of=now(server)))
    assert "revoked-refresh-token" not in str(caught.value)
    assert not source.check().ok


@pytest.mark.parametrize("mode", ["bad_timestamp", "missing_properties"])
def test_odd_record_is_skipped_and_the_rest_lands(server, emu, mode):
    emu.odd_record_mode = mode
    server.faults.add(r"/crm/v3/objects/contacts/search", kind="odd_record", times=1)
    store = FakeStore()
    store.pull(make_source(server), "contacts", now(server), full=True)
    assert len(store.skipped) == 1 and store.skipped[0].stream == "contacts"
    assert len(store.of("contacts")) == 2 * ACCOUNTS - 1


# ---------------------------------------------------------------------------------------------- the rest


def test_check_and_tls_from_settings(server):
    source = HubSpotSource.from_settings(settings_for(server), PacerRegistry())
    assert source.client.pacer.config.limits[0].limit == 100  # limits.hubspot.requests_per_10s
    result = source.check()
    assert result.ok and "run `healthsync setup`" in result.message  # over TLS, with the sandbox CA


def test_check_names_missing_field_map_properties(server):
    bad = FieldMap.model_validate({**FIELD_MAP.model_dump(), "account": {**FIELD_MAP.account.model_dump(),
                                                                        "arr": "annual_recurring_revenue"}})
    result = HubSpotSource(make_client(server), bad).check()
    assert not result.ok and "annual_recurring_revenue" in result.message


def test_written_properties_land_in_account_extra(server, emu):
    emu.define_property("companies", "healthsync_score", "number")
    emu.define_property("companies", "healthsync_scored_at", "datetime")
    emu.update("companies", company_id(1), {"healthsync_score": "72", "healthsync_scored_at": "2024-06-01T12:00:00Z"})
    store = FakeStore()
    store.pull(make_source(server), "accounts", now(server), full=True)
    extra = store.of("accounts")[company_id(1)].extra
    assert dict(extra) == {"healthsync_score": "72", "healthsync_scored_at": "2024-06-01T12:00:00+00:00"}
    assert dict(store.of("accounts")[company_id(2)].extra) == {"healthsync_score": None,
                                                               "healthsync_scored_at": None}


def test_tasks_stream_reads_our_tasks_and_their_completion(server, emu):
    emu.define_property("tasks", "healthsync_key")
    due = "2024-06-03T12:00:00.000Z"
    ours = emu.create("tasks", {"hs_task_subject": "Review", "hs_task_status": "NOT_STARTED", "hs_timestamp": due,
                                "healthsync_key": "1001|below|2024-06", "hubspot_owner_id": "101"},
                      associations={"companies": [company_id(1)]})
    emu.create("tasks", {"hs_task_subject": "A human's task", "hs_timestamp": due})
    source = make_source(server)
    store = FakeStore()
    store.pull(source, "tasks", now(server), full=True)
    task = store.of("tasks")[ours]
    assert (task.dedupe_key, task.status, task.account_id, task.due) == \
        ("1001|below|2024-06", TaskStatus.OPEN, company_id(1), date(2024, 6, 3))
    assert len(store.of("tasks")) == 1
    completed_at = now(server)
    emu.update("tasks", ours, {"hs_task_status": "COMPLETED"}, at=completed_at)
    before = server.calls.snapshot()
    store.pull(source, "tasks", now(server))
    assert calls_delta(server, before) == {"hubspot search": 1, "hubspot associations_batch_read": 1}
    task = store.of("tasks")[ours]
    assert task.status == TaskStatus.COMPLETED and task.completed_at is not None
    assert abs(task.completed_at - completed_at) < timedelta(milliseconds=1)


def test_client_from_settings_pins_the_sdk_retries_off(server):
    client = HubSpotClient.from_settings(settings_for(server), PacerRegistry(), retry=fast_retry())
    configuration = client.api("objects.search").api_client.configuration
    assert configuration.retries.total == 0 and configuration.ssl_ca_cert == str(server.ca_path)
    assert client.api("objects.search") is client.api("objects.search")  # cached: one pool per API
