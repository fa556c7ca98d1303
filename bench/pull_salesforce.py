"""Benchmark of the Salesforce connector against the emulator: API calls of a full pull of a generated portfolio
per stream vs the minimum the 2,000-row SOQL page allows, records/s, and the cost of an incremental pull with no
changes. Run: `.venv/bin/python bench/pull_salesforce.py [--accounts 1000] [--bulk-threshold 10000]`."""

from __future__ import annotations

import argparse
import logging
import math
import time
from datetime import UTC, datetime, timedelta

AS_OF = datetime(2025, 6, 2, 10, tzinfo=UTC)
STREAMS = {"accounts": ("Account",), "contacts": ("Contact",), "opportunities": ("Opportunity",),
           "activities": ("Task", "Event"), "users": ("User",), "tasks": ("Task",)}
API_ENDPOINTS = ("query", "query_all", "query_more", "bulk_create", "bulk_job", "bulk_results", "describe")


def _settings(server):
    from healthsync.config.settings import Settings
    from healthsync.sandbox.credentials import DEMO

    creds = DEMO.salesforce
    return Settings.model_validate({
        "crm": {"kind": "salesforce", "salesforce": {"auth": {
            "mode": "password", "username": creds.username, "password": creds.password,
            "security_token": creds.security_token}}},
        "sandbox": {"salesforce_url": server.https_url, "ca_file": str(server.ca_path)},
    })


def _api_calls(server) -> int:
    return sum(n for key, n in server.calls.snapshot().items() if key.split(" ", 1)[1] in API_ENDPOINTS)


def _rows(emu, sobjects: tuple[str, ...], stream: str) -> int:
    rows = [r for s in sobjects for r in emu.records(s, include_deleted=stream != "users")]
    if stream == "tasks":
        rows = [r for r in rows if r.get("Healthsync_Key__c")]
    return len(rows)


def _pull(source, stream, state, as_of):
    records = 0
    for page in source.read(stream, state, as_of=as_of):
        records += len(page.records) + len(page.deleted_ids)
        state = page.state
    return state, records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--bulk-threshold", type=int, default=10_000)
    args = parser.parse_args()
    logging.disable(logging.WARNING)

    from healthsync.connectors.pacing import PacerRegistry
    from healthsync.connectors.salesforce import SalesforceConnection, SalesforceSource
    from healthsync.sandbox.core import SandboxClock, SandboxServer
    from healthsync.sandbox.portfolio import generate_portfolio
    from healthsync.sandbox.salesforce import SalesforceEmulator

    portfolio = generate_portfolio(7, args.accounts, AS_OF)
    with SandboxServer([SalesforceEmulator], clock=SandboxClock(AS_OF)) as server:
        import werkzeug.serving

        werkzeug.serving._log = lambda *a, **k: None  # keep the table readable
        emu = server.emulator("salesforce")
        emu.load(portfolio)
        settings = _settings(server)
        conn = SalesforceConnection.from_settings(settings, PacerRegistry())
        source = SalesforceSource.from_settings(settings, PacerRegistry(), connection=conn,
                                                bulk_threshold=args.bulk_threshold, bulk_wait_seconds=0)
        for sobject in ("Account", "Contact", "Opportunity", "Task", "Event", "User"):
            source.object_fields(sobject)  # describes: once per connection (schema_ttl), shown separately
        describes = _api_calls(server)
        emu.clock.advance(timedelta(seconds=1))
        as_of = emu.clock.now()
        print(f"Salesforce full pull, {args.accounts} accounts, bulk threshold {args.bulk_threshold:,} "
              f"({describes} describe calls first, cached afterwards)")
        print(f"{'stream':<14}{'rows':>8}{'calls':>7}{'min':>6}{'seconds':>9}{'rows/s':>9}   incremental, no changes")
        states, total_calls, total_min = {}, 0, 0
        for stream, sobjects in STREAMS.items():
            server.calls.reset()
            started = time.perf_counter()
            states[stream], records = _pull(source, stream, None, as_of)
            elapsed = time.perf_counter() - started
            calls = _api_calls(server)
            minimum = sum(max(1, math.ceil(_rows(emu, (s,), stream) / 2000)) for s in sobjects)
            if stream == "tasks" and not source.object_fields("Task").has("task_key"):
                minimum = 0
            total_calls, total_min = total_calls + calls, total_min + minimum
            states[stream] = (states[stream], calls, minimum, records, elapsed)
        emu.clock.advance(timedelta(minutes=5))
        incremental_total = 0
        for stream, (state, calls, minimum, records, elapsed) in states.items():
            server.calls.reset()
            _, re_read = _pull(source, stream, state, emu.clock.now())
            incremental = _api_calls(server)
            incremental_total += incremental
            rate = records / elapsed if elapsed else 0.0
            print(f"{stream:<14}{records:>8}{calls:>7}{minimum:>6}{elapsed:>9.2f}{rate:>9.0f}   "
                  f"{incremental} call(s), {re_read} row(s) re-read in the overlap window")
        print(f"{'total':<14}{'':>8}{total_calls:>7}{total_min:>6}{'':>18}   {incremental_total} call(s)")


if __name__ == "__main__":
    main()
