"""SPEC §7 API etiquette, end to end: a cycle that meets 429 bursts (with and without Retry-After), 5xx answers,
dropped connections and an expired Salesforce session — on reads and on writes, on every API — retries, re-logs
in, and leaves the CRM exactly as a fault-free run of the same book as of the same instant does."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import BOOK_SIZE, WITHOUT_USAGE, apply_counts
from tests.e2e.crm import crm_state
from tests.e2e.harness import pinned_env

pytestmark = pytest.mark.slow

_SF = r"/services/data/v[\d.]+"
RETRY_AFTER = {"Retry-After": "1"}
# A 429 without Retry-After holds every call to that API for one window of its limit (Zendesk: a minute,
# HubSpot: 10 s, Mixpanel: 1 s), so hint-less bursts are planted where that window is short.

# (path regex, kind, times, extra) in the order they are met; every one must fire.
SALESFORCE_FAULTS = [
    (rf"{_SF}/queryAll", "status", 2, {"status": 503}),
    (rf"{_SF}/queryAll", "reset", 1, {}),
    (rf"{_SF}/queryAll", "expired_session", 1, {}),  # INVALID_SESSION_ID: log in again, repeat the call
    (rf"{_SF}/query/", "status", 1, {"status": 500}),
    (rf"{_SF}/composite/sobjects", "status", 1, {"status": 503, "method": "PATCH"}),  # the field batch
    (rf"{_SF}/composite/sobjects", "reset", 1, {"method": "POST"}),  # the task batch
    (r"/api/v2/incremental/tickets/cursor\.json", "status", 2, {"status": 429, "headers": RETRY_AFTER}),
    (r"/api/v2/(incremental/)?organizations", "status", 1, {"status": 503}),
    (r"/api/v2/(incremental/)?users", "reset", 1, {}),
    (r"/api/v2/satisfaction_ratings", "status", 1, {"status": 502}),
    (r"/api/2\.0/export", "status", 2, {"status": 429}),
    (r"/api/2\.0/export", "status", 1, {"status": 429, "headers": RETRY_AFTER}),
    (r"/api/2\.0/export", "reset", 1, {}),
]
HUBSPOT_FAULTS = [
    (r"/crm/v3/objects/companies/search", "status", 2, {"status": 429, "headers": RETRY_AFTER}),
    (r"/crm/v3/objects/contacts/search", "status", 1, {"status": 429}),  # no hint: holds HubSpot's 10 s window
    (r"/crm/v3/objects/deals/search", "reset", 1, {}),
    (r"/crm/v3/owners", "status", 1, {"status": 500}),
    (r"/crm/v4/associations/", "status", 1, {"status": 503}),
    (r"/crm/v3/objects/companies/batch/update", "status", 1, {"status": 502}),
    (r"/crm/v3/objects/tasks/batch/create", "status", 1, {"status": 429, "headers": RETRY_AFTER}),
    (r"/api/v2/incremental/tickets/cursor\.json", "status", 1, {"status": 429, "headers": RETRY_AFTER}),
]


def inject(server, faults) -> list:
    return [server.faults.add(path, kind=kind, times=times, **extra) for path, kind, times, extra in faults]


def faulted_run(crm: str, faults, drop: tuple[str, ...]):
    """The clean run's three cycles (see conftest.run_to_steady_state), the faults planted before the first."""
    with pinned_env(crm, accounts=BOOK_SIZE, drop=drop) as env:
        env.setup_fields()
        logins_before = env.server.calls.snapshot().get("salesforce soap_login", 0)
        planted = inject(env.server, faults)
        first = env.cycle(full=True)
        unfired = [(f.path, f.kind, f.times) for f in planted if f.times > 0]
        logins = env.server.calls.snapshot().get("salesforce soap_login", 0) - logins_before
        later = [env.cycle(step=1), env.cycle(step=1)]
        return first, later, unfired, logins, crm_state(env)


def check_like_a_clean_run(first, later, unfired, state, clean) -> None:
    assert not unfired, f"injected faults never met (the test no longer exercises them): {unfired}"
    assert first.status == "ok", (first.error, {n: r.error for n, r in first.sources.items()}, first.applied)
    assert apply_counts(first) == clean.first_cycle  # the faults left nothing for a later cycle to do
    assert [r.status for r in later] == ["ok", "ok"]
    assert later[-1].applied.write_calls == 0
    assert not state["duplicates"]
    assert state == clean.state


def test_salesforce_zendesk_and_mixpanel_faults_end_like_a_clean_run(clean_state):
    clean = clean_state("salesforce", drop=())
    first, later, unfired, logins, state = faulted_run("salesforce", SALESFORCE_FAULTS, drop=())
    assert logins >= 1  # the expired session was renewed by logging in again
    check_like_a_clean_run(first, later, unfired, state, clean)


def test_hubspot_faults_end_like_a_clean_run(clean_state):
    clean = clean_state("hubspot", drop=WITHOUT_USAGE)
    first, later, unfired, _, state = faulted_run("hubspot", HUBSPOT_FAULTS, drop=WITHOUT_USAGE)
    check_like_a_clean_run(first, later, unfired, state, clean)
