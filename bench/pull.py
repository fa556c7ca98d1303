"""Benchmark the pull side: every stream of every source against the sandbox, full and then incremental.

Prints, per stream: records, seconds, records/s, API calls made vs the minimum the API's page size allows
(ceil(records / max page size)), and the incremental cost with nothing changed; then peak RSS.
Run by hand:  .venv/bin/python bench/pull.py [--accounts 1000 10000] [--crm salesforce|hubspot]
"""

from __future__ import annotations

import argparse
import math
import resource
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from healthsync.config.loader import load_config
from healthsync.connectors.pacing import PacerRegistry
from healthsync.sandbox.app import build_sandbox
from healthsync.sync.commands.demo import demo_config
from healthsync.sync.pull import pull_source
from healthsync.sync.runtime import build_sources
from healthsync.sync.store import Store


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def calls_of(server, emulator: str) -> int:
    return server.calls.total(emulator)


def bench(crm: str, accounts: int) -> list[tuple]:
    started = time.monotonic()
    server = build_sandbox(seed=11, accounts=accounts, crm=crm, time_scale=3600.0)
    print(f"\n== {crm}, {accounts} accounts (sandbox ready in {time.monotonic() - started:.1f}s)")
    rows = []
    with server, tempfile.TemporaryDirectory() as workdir:
        path, env = demo_config(server, crm, Path(workdir))
        data = yaml.safe_load(path.read_text())
        data["limits"] = {"zendesk": {"requests_per_minute": 2500, "incremental_per_minute": 30}}
        path.write_text(yaml.safe_dump(data))
        settings = load_config(path, env)
        store = Store.open(settings.store.resolved_url)
        sources, _ = build_sources(settings, PacerRegistry(sleep=lambda s: time.sleep(min(s, 0.05))))
        as_of = server.clock.now()
        for name, source in sources.items():
            for spec in source.streams():
                before = calls_of(server, name)
                t0 = time.monotonic()
                report = pull_source(store, source, as_of=as_of, now=lambda: datetime.now(UTC), streams=[spec.name])
                seconds = time.monotonic() - t0
                full_calls = calls_of(server, name) - before
                records = report.records
                minimum = max(1, math.ceil(records / spec.max_page_size))
                if name == "mixpanel":  # one export call per day window, whatever the row count
                    minimum = math.ceil(getattr(source, "backfill_days", 90) / getattr(source, "window_days", 7))
                rows.append([name, spec.name, records, seconds, full_calls, minimum, None, report.ok])
        server.clock.advance(timedelta(minutes=2))
        as_of = server.clock.now()
        for row in rows:
            source = sources[row[0]]
            before = calls_of(server, row[0])
            pull_source(store, source, as_of=as_of, now=lambda: datetime.now(UTC), streams=[row[1]])
            row[6] = calls_of(server, row[0]) - before
        store.close()
    print(f"{'source':<11}{'stream':<22}{'records':>9}{'secs':>8}{'rec/s':>9}{'calls':>7}{'min':>6}{'ratio':>7}"
          f"{'incr':>6}")
    for name, stream, records, seconds, calls, minimum, incremental, ok in rows:
        rate = records / seconds if seconds else 0
        flag = "" if ok else "  FAILED"
        print(f"{name:<11}{stream:<22}{records:>9}{seconds:>8.2f}{rate:>9.0f}{calls:>7}{minimum:>6}"
              f"{calls / minimum:>7.2f}{incremental:>6}{flag}")
    print(f"peak RSS {peak_rss_mb():.0f} MB  (calls include the one-off login and describe calls; "
          "rec/s is bounded by the store's commit rate)")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--crm", choices=("salesforce", "hubspot"), default="salesforce")
    args = parser.parse_args()
    for n in args.accounts:
        bench(args.crm, n)
    print("\nMixpanel ingest alone (aggregation events/s): run bench/mixpanel_ingest.py")


if __name__ == "__main__":
    main()
