"""ZendeskSource against the Zendesk emulator with the unmodified zenpy over real HTTP: full reads equal the
portfolio, incremental reads pick up exactly the changes (ties, deletes, edits during a pull) on every stream at
one call per stream when nothing changed, resumes from a saved cursor, faults and limits are survived by pacing
and one retry policy, bad input is reported clearly."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from healthsync.config.loader import load_config
from healthsync.connectors.base import Page, Source
from healthsync.connectors.cursor import ApiCursorPosition, StreamState
from healthsync.connectors.pacing import PacerRegistry
from healthsync.connectors.records import TicketRecord, TicketStatus
from healthsync.connectors.zendesk import ZendeskSource
from healthsync.errors import AuthError, FatalError, RetryableError

from . import zm_conn_fixtures as fx

EXPORT = "zendesk ticket_export"
ORG_EXPORT, USER_EXPORT = "zendesk organization_export", "zendesk user_export"


@pytest.fixture()
def server():
    with fx.zendesk_server() as srv:
        yield srv


def make_source(server, *, pacer=None, retry=None, page_size=5, **credentials) -> ZendeskSource:
    return ZendeskSource(
        server.http_url,
        pacer or fx.scaled_zendesk_pacer(),
        retry=retry or fx.fast_retry(),
        export_page_size=page_size,
        **fx.zendesk_credentials(**credentials),
    )


def drain(source: ZendeskSource, stream: str, state=None, *, server, full=False) -> tuple[list[Page], dict]:
    """Read a whole stream at the sandbox's current time into a dict store (upsert by primary key)."""
    pages = list(source.read(stream, state, as_of=server.clock.now(), full=full))
    store: dict = {}
    for page in pages:
        apply(store, page)
    return pages, store


def apply(store: dict, page: Page) -> None:
    for record in page.records:
        store[record.primary_key] = record
    for record_id in page.deleted_ids:
        store.pop(record_id, None)


def settle(server, seconds: int = 61) -> None:
    """Let sandbox time pass so the export shows changes (it hides the last minute, like Zendesk)."""
    server.clock.advance(timedelta(seconds=seconds))


def expected_tickets() -> dict[str, fx.Ticket]:
    return {str(t.id): t for t in fx.make_portfolio().tickets}


# --------------------------------------------------------------------------------------------- full reads


def test_is_a_source_with_five_streams(server):
    source = make_source(server)
    assert isinstance(source, Source)
    assert [s.name for s in source.streams()] == [
        "tickets", "ticket_metrics", "satisfaction_ratings", "organizations", "users"]


def test_full_ticket_read_equals_the_portfolio(server):
    pages, store = drain(make_source(server), "tickets", server=server)
    expected = expected_tickets()
    assert set(store) == set(expected)
    for tid, ticket in expected.items():
        record: TicketRecord = store[tid]
        assert record.organization_id == str(ticket.org_id)
        assert record.requester_id == str(ticket.requester_id)
        assert (record.subject, record.description) == (ticket.subject, ticket.description)
        assert record.priority.value == ticket.priority
        assert record.status.value == ticket.status
        assert record.deleted == (ticket.id in fx.DELETED_TICKETS)
        assert record.tags == tuple(ticket.tags)
        assert record.satisfaction.value == ticket.satisfaction
        assert (record.created_at, record.updated_at) == (ticket.created_at, ticket.updated_at)
        assert record.solved_at == ticket.solved_at
    assert sum(len(p.records) for p in pages) == fx.TICKET_COUNT  # nothing read twice
    assert isinstance(pages[-1].state.position, ApiCursorPosition)
    assert pages[-1].state.position.high_water == max(t.updated_at for t in expected.values())


def test_full_reads_of_the_other_streams_equal_the_portfolio(server):
    portfolio = fx.make_portfolio()
    source = make_source(server)

    emu = server.emulator("zendesk")
    pages, orgs = drain(make_source(server, page_size=2), "organizations", server=server)
    assert set(orgs) == {str(o["id"]) for o in emu.organizations()} == {str(o.id) for o in portfolio.zendesk_orgs}
    assert sum(len(p.records) for p in pages) == len(orgs)  # the boundary repeats of the time export are dropped
    assert server.calls.snapshot()[ORG_EXPORT] == len(pages) == 4  # 2 a page, each repeating the last one
    assert orgs["101"].external_id == fx.sf_id(1) and orgs["104"].external_id == fx.sf_id(4)
    assert orgs["102"].external_id is None and orgs["102"].domains == ("globex.test",)
    assert orgs["103"].domains == () and orgs["105"].external_id == "legacy-77"
    assert orgs["105"].domains == ("reseller.test",)  # normalised: www. and case dropped

    pages, users = drain(source, "users", server=server)
    end_users = [u for u in portfolio.zendesk_users if u.role == "end-user"]
    assert set(users) == {str(u.id) for u in end_users}  # agents belong to no customer
    assert set(users) == {str(u["id"]) for u in emu.users() if u["role"] == "end-user" and u["active"]}
    assert sum(len(p.records) for p in pages) == len(users) and not any(p.deleted_ids for p in pages)
    assert server.calls.snapshot()[USER_EXPORT] == 3  # fourteen users, five a page
    assert all(users[str(u.id)].email == u.email and users[str(u.id)].organization_id == str(u.org_id)
               for u in end_users)

    _, ratings = drain(source, "satisfaction_ratings", server=server)
    assert {r: (v.ticket_id, v.score.value) for r, v in ratings.items()} == {
        str(r.id): (str(r.ticket_id), r.score) for r in portfolio.satisfaction_ratings}

    pages, metrics = drain(source, "ticket_metrics", server=server)
    live = {str(t.id): t for t in portfolio.tickets if t.status != "deleted"}
    assert set(metrics) == set(live)
    assert {d for p in pages for d in p.deleted_ids} == {str(t) for t in fx.DELETED_TICKETS}
    for tid, ticket in live.items():
        assert (metrics[tid].reopens, metrics[tid].replies) == (ticket.reopens, ticket.replies)
        assert metrics[tid].first_resolution_minutes == ticket.first_resolution_minutes
        assert metrics[tid].full_resolution_minutes == ticket.full_resolution_minutes


# --------------------------------------------------------------------------------------------- incremental


def test_incremental_read_picks_up_exactly_the_changes(server):
    source = make_source(server, page_size=1000)
    pages, _ = drain(source, "tickets", server=server)
    state = pages[-1].state
    emu = server.emulator("zendesk")
    settle(server, 5)
    tie = server.clock.now().replace(microsecond=0)
    emu.update_ticket(7, priority="urgent")
    emu.update_ticket(8, subject="same second A", updated_at=tie)
    emu.update_ticket(9, subject="same second B", updated_at=tie)
    new_id = emu.add_ticket("Brand new", organization_id=101, requester_id=1010, priority="high")
    emu.delete_ticket(10)
    settle(server)
    server.calls.reset()

    pages, changed = drain(source, "tickets", state, server=server)
    assert set(changed) == {"7", "8", "9", str(new_id), "10"}
    assert changed["7"].priority.value == "urgent"
    assert (changed["8"].subject, changed["9"].subject) == ("same second A", "same second B")
    assert changed["10"].deleted and changed["10"].status is TicketStatus.DELETED
    assert server.calls.snapshot() == {EXPORT: 1}


def test_no_change_cycle_costs_one_call_per_stream(server):
    source = make_source(server, page_size=1000)
    streams = [spec.name for spec in source.streams()]
    states = {s: drain(source, s, server=server)[0][-1].state for s in streams}
    server.calls.reset()
    for stream, state in states.items():
        pages, store = drain(source, stream, state, server=server)
        assert store == {}, stream
        assert pages[-1].state is not None
    assert server.calls.snapshot() == {
        EXPORT: 2, "zendesk satisfaction_ratings": 1, ORG_EXPORT: 1, USER_EXPORT: 1}


def test_an_idle_organization_read_costs_one_call_and_repeats_only_the_overlap(server):
    emu = server.emulator("zendesk")
    settle(server, 3600)
    emu.update_organization(104, notes="recent", updated_at=server.clock.now() - timedelta(minutes=70))
    emu.update_organization(103, notes="recent", updated_at=server.clock.now() - timedelta(minutes=65))
    source = make_source(server)
    state = drain(source, "organizations", server=server)[0][-1].state
    assert state.position.id == "103" and state.boundary_ids == {"103"}
    settle(server, 3600)
    server.calls.reset()
    pages, store = drain(source, "organizations", state, server=server)
    assert set(store) == {"104"}  # inside the ten-minute overlap: upserted again; 103 is the boundary: dropped
    assert server.calls.snapshot() == {ORG_EXPORT: 1}
    assert pages[-1].state == state


def test_an_edit_made_during_the_pull_is_delivered(server):
    source = make_source(server, page_size=5)
    emu = server.emulator("zendesk")
    store: dict = {}
    state = None
    iterator = source.read("tickets", None, as_of=server.clock.now())
    first = next(iterator)
    apply(store, first)
    edited = first.records[0].id
    emu.update_ticket(int(edited), priority="low", subject="edited mid-pull")
    for page in iterator:
        apply(store, page)
        state = page.state
    settle(server)
    pages, _ = drain(source, "tickets", state, server=server)
    for page in pages:
        apply(store, page)
    assert store[edited].subject == "edited mid-pull"
    assert set(store) == set(expected_tickets())


def test_crash_after_page_k_then_resume_gives_the_same_set(server):
    source = make_source(server, page_size=4)
    _, reference = drain(source, "tickets", server=server)
    store: dict = {}
    saved = None
    for k, page in enumerate(source.read("tickets", None, as_of=server.clock.now()), start=1):
        apply(store, page)
        saved = page.state  # committed with the page
        if k == 3:
            break  # the process dies here
    restarted = make_source(server, page_size=4)
    for page in restarted.read("tickets", StreamState.from_json(saved.to_json()), as_of=server.clock.now()):
        apply(store, page)
    assert store == reference


def test_resume_from_a_saved_after_cursor_picks_up_later_changes(server):
    source = make_source(server, page_size=1000)
    pages, _ = drain(source, "tickets", server=server)
    saved = pages[-1].state.to_json()
    emu = server.emulator("zendesk")
    emu.update_ticket(3, status="closed")
    emu.update_ticket(21, tags=["vip"])
    settle(server)
    restarted = make_source(server, page_size=1000)  # a new process: only the stored JSON survives
    _, changed = drain(restarted, "tickets", StreamState.from_json(saved), server=server)
    assert set(changed) == {"3", "21"}
    assert changed["3"].status is TicketStatus.CLOSED and changed["21"].tags == ("vip",)


def test_a_refused_cursor_restarts_from_the_high_water_mark(server):
    source = make_source(server, page_size=1000)
    pages, _ = drain(source, "tickets", server=server)
    high_water = pages[-1].state.position.high_water
    bogus = StreamState(position=ApiCursorPosition("notacursor", high_water), overlap_seconds=600)
    pages, store = drain(source, "tickets", bogus, server=server)
    window_start = high_water - timedelta(minutes=10)
    assert set(store) == {tid for tid, t in expected_tickets().items() if t.updated_at >= window_start}
    assert store  # the newest ticket at least
    assert pages[-1].state.position.cursor != "notacursor"


def test_ticket_metrics_follow_ticket_changes(server):
    source = make_source(server)
    pages, _ = drain(source, "ticket_metrics", server=server)
    server.emulator("zendesk").update_ticket(7, reopens=5, replies=9)
    server.emulator("zendesk").delete_ticket(8)
    settle(server)
    pages, store = drain(source, "ticket_metrics", pages[-1].state, server=server)
    assert set(store) == {"7"}
    assert (store["7"].reopens, store["7"].replies) == (5, 9)
    assert [d for p in pages for d in p.deleted_ids] == ["8"]


def test_new_satisfaction_ratings_arrive_once(server):
    source = make_source(server)
    pages, _ = drain(source, "satisfaction_ratings", server=server)
    settle(server, 3600)
    rating_id = server.emulator("zendesk").add_rating(2, "bad", comment="slow answers")
    pages, store = drain(source, "satisfaction_ratings", pages[-1].state, server=server)
    assert set(store) == {str(rating_id)}
    assert store[str(rating_id)].comment == "slow answers"
    pages, store = drain(source, "satisfaction_ratings", pages[-1].state, server=server)
    assert store == {}  # the overlap re-reads it, the boundary keeps it from arriving twice


# --------------------------------------------------------------------------------------------- organizations, users


def test_organization_changes_ties_and_deletes_arrive_exactly_once(server):
    source = make_source(server, page_size=2)
    state = drain(source, "organizations", server=server)[0][-1].state
    emu = server.emulator("zendesk")
    settle(server, 5)
    first = server.clock.now().replace(microsecond=0)
    tie = first + timedelta(seconds=1)
    emu.update_organization(101, name="Acme Corp", updated_at=first)
    emu.update_organization(104, domain_names=["umbrella.test", "umbrella.example"], updated_at=tie)
    new_id = emu.add_organization("Hooli", external_id="hooli-1", domain_names=["hooli.test"], created_at=tie)
    settle(server, 2)
    emu.delete_organization(102)
    settle(server)
    server.calls.reset()
    pages, changed = drain(source, "organizations", state, server=server)
    assert set(changed) == {"101", "104", str(new_id), "102"}
    # pages of two, ending on whole seconds: [101 104 hooli] then from `tie` again [104 hooli 102]
    assert server.calls.snapshot() == {ORG_EXPORT: 2}
    assert sum(len(p.records) for p in pages) == 4  # the tie repeated at the page boundary arrives once
    assert changed["101"].name == "Acme Corp" and changed["104"].domains == ("umbrella.test", "umbrella.example")
    assert changed[str(new_id)].external_id == "hooli-1" and not changed[str(new_id)].deleted
    assert changed["102"].deleted and not changed["101"].deleted
    pages, again = drain(source, "organizations", pages[-1].state, server=server)
    assert "102" not in again  # the newest is the boundary; the rest of the overlap may be upserted again
    assert server.calls.snapshot() == {ORG_EXPORT: 4}  # the overlap holds four: two pages of two


def test_user_changes_deletes_and_promotions_arrive(server):
    source = make_source(server, page_size=1000)
    state = drain(source, "users", server=server)[0][-1].state
    assert isinstance(state.position, ApiCursorPosition)
    emu = server.emulator("zendesk")
    emu.update_user(1011, email="renamed@acme.test")
    new_id = emu.add_user("Newcomer", "new@globex.test", organization_id=102)
    hire = emu.add_user("Support hire", "hire@support.test", role="agent")
    emu.delete_user(1020)
    emu.update_user(1030, role="agent")  # no longer a customer contact
    settle(server)
    server.calls.reset()
    pages, changed = drain(source, "users", state, server=server)
    assert set(changed) == {"1011", str(new_id), "1020"}
    assert changed["1011"].email == "renamed@acme.test" and changed[str(new_id)].organization_id == "102"
    assert changed["1020"].deleted and not changed["1020"].active and not changed["1011"].deleted
    # the promoted user leaves the store; removing the new agent's id (never stored) is harmless
    assert sorted(d for p in pages for d in p.deleted_ids) == ["1030", str(hire)]
    assert server.calls.snapshot() == {USER_EXPORT: 1}


def test_an_organization_edited_during_the_pull_is_delivered(server):
    source = make_source(server, page_size=2)
    emu = server.emulator("zendesk")
    store: dict = {}
    iterator = source.read("organizations", None, as_of=server.clock.now())
    first = next(iterator)
    apply(store, first)
    emu.update_organization(int(first.records[0].id), name="renamed mid-pull")
    state = None
    for page in iterator:
        apply(store, page)
        state = page.state
    settle(server)
    for page in source.read("organizations", state, as_of=server.clock.now()):
        apply(store, page)
    assert store[first.records[0].id].name == "renamed mid-pull"
    assert set(store) == {str(o.id) for o in fx.make_portfolio().zendesk_orgs}


@pytest.mark.parametrize("stream", ["organizations", "users"])
def test_crash_after_page_k_then_resume_gives_the_same_set_for(server, stream):
    source = make_source(server, page_size=2)
    _, reference = drain(source, stream, server=server)
    store: dict = {}
    saved = None
    for k, page in enumerate(source.read(stream, None, as_of=server.clock.now()), start=1):
        apply(store, page)
        saved = page.state
        if k == 2:
            break  # the process dies here
    assert set(store) < set(reference)
    restarted = make_source(server, page_size=2)
    for page in restarted.read(stream, StreamState.from_json(saved.to_json()), as_of=server.clock.now()):
        apply(store, page)
    assert store == reference


def test_a_crowd_of_organizations_in_one_second_is_read_once_in_small_pages(server):
    emu = server.emulator("zendesk")
    crowd_time = server.clock.now() - timedelta(hours=2)
    crowd = {str(emu.add_organization(f"Bulk {n}", created_at=crowd_time)) for n in range(7)}
    pages, store = drain(make_source(server, page_size=2), "organizations", server=server)
    assert crowd <= set(store) and len(store) == 12
    assert sum(len(p.records) for p in pages) == 12
    assert pages[-1].state.boundary_ids == crowd  # the newest second: its ids are dropped when re-read


def test_recent_organizations_are_all_read_although_zenpy_would_stop_paging():
    now = datetime.now(UTC).replace(microsecond=0)  # the sandbox clock is the machine's: zenpy's 5-minute rule bites
    with fx.zendesk_server(start=now) as server:
        emu = server.emulator("zendesk")
        fresh = {str(emu.add_organization(f"Fresh {n}", created_at=now - timedelta(seconds=180 - n)))
                 for n in range(4)}
        pages, store = drain(make_source(server, page_size=2), "organizations", server=server)
        assert fresh <= set(store) and len(store) == 9
        assert server.calls.snapshot()[ORG_EXPORT] == len(pages) >= 4


def test_an_organization_export_that_stops_moving_is_a_fatal_error(server):
    stuck = json.dumps({"organizations": [], "next_page": None, "count": 0, "end_of_stream": False, "end_time": 0})
    server.faults.add(r"incremental/organizations\.json", "status", status=200, body=stuck)
    with pytest.raises(FatalError, match="did not move past start_time=0"):
        drain(make_source(server), "organizations", server=server)


def test_faults_on_the_organization_and_user_exports_are_survived(server):
    orgs, users = r"incremental/organizations\.json", r"incremental/users/cursor\.json"
    server.faults.add(orgs, "status", status=500)
    server.faults.add(orgs, "reset")
    server.faults.add(r"incremental/organizations\.json\?.*start_time=[1-9]", "status", status=429,
                      headers={"Retry-After": "1"}, body='{"error": "APIRateLimitExceeded"}')
    server.faults.add(r"incremental/users/cursor\.json\?.*cursor=", "expired_session")
    server.faults.add(users, "status", status=502, body="<html>bad gateway</html>")
    source = make_source(server, page_size=2)
    _, orgs_read = drain(source, "organizations", server=server)
    _, users_read = drain(source, "users", server=server)
    assert len(orgs_read) == 5 and len(users_read) == 10
    assert server.faults.pending() == 0


# --------------------------------------------------------------------------------------------- faults and limits


def test_faults_are_survived_with_one_retry_layer(server):
    pacer = fx.scaled_zendesk_pacer()
    source = make_source(server, pacer=pacer, page_size=10)
    first_page, later_page = r"incremental/tickets/cursor\.json\?.*start_time=", r"incremental/tickets/cursor\.json\?.*cursor="
    server.faults.add(first_page, "status", status=500)
    server.faults.add(first_page, "reset")
    server.faults.add(first_page, "status", status=429, headers={"Retry-After": "1"},
                      body='{"error": "APIRateLimitExceeded"}')
    server.faults.add(first_page, "malformed")  # zenpy returns the raw Response for this one
    server.faults.add(later_page, "expired_session")
    server.faults.add(later_page, "status", status=503, body="<html>busy</html>")
    started = time.monotonic()
    _, store = drain(source, "tickets", server=server)
    assert set(store) == set(expected_tickets())
    assert server.faults.pending() == 0
    assert pacer.stats().rate_limited == 1
    assert time.monotonic() - started >= 1.0  # the 429's Retry-After was honoured...
    assert source._zd.tickets.ratelimit_budget == 5  # ...by our policy: zenpy's own sleep loop never ran


def test_malformed_first_page_is_a_retryable_error(server):
    server.faults.add(r"incremental/tickets", "malformed")
    source = make_source(server, retry=fx.fast_retry(max_attempts=1))
    with pytest.raises(RetryableError, match="not valid JSON"):
        drain(source, "tickets", server=server)


def test_export_limit_is_paced_not_hammered(server):
    pacer = fx.scaled_zendesk_pacer()
    source = make_source(server, pacer=pacer, page_size=1)
    started = time.monotonic()
    pages, store = drain(source, "tickets", server=server)
    elapsed = time.monotonic() - started
    assert len(store) == fx.TICKET_COUNT
    export_calls = server.calls.snapshot()[EXPORT]
    assert export_calls - len(pages) <= 1  # at most one 429 answered (and retried)
    assert pacer.stats().rate_limited <= 1
    assert elapsed >= 1.5  # 23+ calls at 8 per scaled minute (1 s) take over two windows


def test_bad_credentials_are_an_auth_error_and_a_failed_check(server):
    source = make_source(server, token="wrong-token-123")
    with pytest.raises(AuthError) as raised:
        drain(source, "tickets", server=server)
    assert "wrong-token-123" not in str(raised.value)
    result = source.check()
    assert not result.ok and "401" in result.message
    assert "zendesk.auth.token" in result.fix_hint and "wrong-token-123" not in result.message
    assert make_source(server).check().ok


def test_a_401_that_persists_after_success_stops_after_one_retry(server):
    source = make_source(server, page_size=5)
    server.faults.add(r"incremental/tickets/cursor\.json\?.*cursor=", "expired_session", times=5)
    with pytest.raises(AuthError):
        drain(source, "tickets", server=server)
    assert server.faults.pending() == 3  # two attempts on the second page, then AuthError


def test_an_odd_record_is_skipped_and_the_rest_lands(server):
    server.faults.add(r"incremental/tickets", "odd_record")
    server.faults.add(r"organizations\.json", "odd_record")
    source = make_source(server, page_size=1000)
    pages, store = drain(source, "tickets", server=server)
    skipped = [s for p in pages for s in p.skipped]
    assert len(skipped) == 1 and "updated_at" in skipped[0].reason
    assert len(store) == fx.TICKET_COUNT - 1 and skipped[0].record_id not in store
    pages, orgs = drain(source, "organizations", server=server)
    assert len(orgs) == 4 and len([s for p in pages for s in p.skipped]) == 1


# --------------------------------------------------------------------------------------------- config


def test_from_settings_points_at_the_sandbox(server, tmp_path):
    settings = load_config(fx.write_sandbox_config(tmp_path, server), env=fx.sandbox_env())
    registry = PacerRegistry()
    source = ZendeskSource.from_settings(settings, registry)
    assert source.check().ok
    assert registry.stats()[0].calls == 1
    bad = load_config(fx.write_sandbox_config(tmp_path, server), env=fx.sandbox_env(ZD_TOKEN="nope-nope"))
    result = ZendeskSource.from_settings(bad, PacerRegistry()).check()
    assert not result.ok and "nope-nope" not in result.message
