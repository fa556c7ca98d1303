"""Benchmark: Mixpanel raw-export ingest — NDJSON bytes → per-account daily usage — events/s and peak memory.

A synthetic export is produced lazily (a pool of realistic event lines served over and over as a byte
stream, like the HTTP response the connector reads), so the stream itself costs no memory and any growth
in RSS is the aggregator's. Prints, per size: events/s and RSS growth for the connector's batched parse,
and for a naive one-`json.loads`-per-line loop for comparison. Target (issue "Connectors"): ≥ 200k events/s,
memory flat as the export grows. Run: .venv/bin/python bench/mixpanel_ingest.py [--sizes 250000,1000000]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from datetime import UTC, date, datetime, timedelta

import psutil

from healthsync.connectors.mixpanel.aggregate import DailyUsageAggregator, UsageRules

LAST_DAY = date(2025, 6, 1)
WINDOW_DAYS = 7
RULES = UsageRules(
    login_event="login",
    core_action_events=frozenset({"report_created", "dashboard_shared", "workflow_run"}),
    feature_events=frozenset({"feature_used"}),
    first_value_event="first_value_achieved",
)
EVENT_MIX = (("login", 3), ("report_created", 3), ("dashboard_shared", 2), ("workflow_run", 2),
             ("feature_used", 2), ("page_view", 4), ("first_value_achieved", 1))
FEATURES = ("dashboards", "reports", "alerts", "workflows", "integrations", "api_access", "sso")


def event_pool(size: int, accounts: int, users_per_account: int, seed: int = 7) -> bytes:
    """`size` NDJSON lines spread over accounts, users and the window's days; a third use the email domain."""
    rng = random.Random(seed)
    names = [name for name, weight in EVENT_MIX for _ in range(weight)]
    first = datetime(LAST_DAY.year, LAST_DAY.month, LAST_DAY.day, tzinfo=UTC) - timedelta(days=WINDOW_DAYS - 1)
    span = WINDOW_DAYS * 86400
    lines = []
    for n in range(size):
        account = rng.randrange(accounts)
        user = f"user-{account}-{rng.randrange(users_per_account)}"
        props = {"time": int(first.timestamp()) + rng.randrange(span), "distinct_id": user,
                 "$insert_id": f"{n:016x}", "$email": f"{user}@acct{account}.example", "mp_lib": "web",
                 "$browser": "Chrome", "$city": "Berlin"}
        if account % 3:
            props["account_id"] = f"001{account:012d}AAA"
        name = rng.choice(names)
        if name == "feature_used":
            props["feature"] = rng.choice(FEATURES)
        lines.append(json.dumps({"event": name, "properties": props}, separators=(",", ":")))
    return ("\n".join(lines) + "\n").encode()


class RepeatingExport:
    """A file-like NDJSON stream: the pool `repeats` times, read in whatever chunks the reader asks for."""

    def __init__(self, pool: bytes, repeats: int):
        self.pool, self.left, self.pos = pool, repeats, 0

    def read(self, size: int) -> bytes:
        if self.left <= 0:
            return b""
        chunk = self.pool[self.pos:self.pos + size]
        self.pos += len(chunk)
        if self.pos >= len(self.pool):
            self.pos, self.left = 0, self.left - 1
        return chunk


class PeakRss:
    """Samples RSS every `every` reads of the wrapped stream (cheap enough to leave on)."""

    def __init__(self, stream: RepeatingExport, every: int = 16):
        self.stream, self.every, self.reads = stream, every, 0
        self.process = psutil.Process()
        self.start = self.peak = self.process.memory_info().rss

    def read(self, size: int) -> bytes:
        self.reads += 1
        if self.reads % self.every == 0:
            self.peak = max(self.peak, self.process.memory_info().rss)
        return self.stream.read(size)


def run_batched(pool: bytes, repeats: int) -> tuple[tuple[float, float], int, DailyUsageAggregator, PeakRss]:
    aggregator = DailyUsageAggregator(RULES, LAST_DAY - timedelta(days=WINDOW_DAYS - 1), LAST_DAY)
    stream = PeakRss(RepeatingExport(pool, repeats))
    started, cpu = time.perf_counter(), time.process_time()
    aggregator.feed_stream(stream)
    records = aggregator.records()
    return (time.perf_counter() - started, time.process_time() - cpu), len(records), aggregator, stream


def run_per_line(pool: bytes, repeats: int) -> tuple[tuple[float, float], int, DailyUsageAggregator, PeakRss]:
    """The naive loop for comparison: one json.loads per line, then the same fold."""
    aggregator = DailyUsageAggregator(RULES, LAST_DAY - timedelta(days=WINDOW_DAYS - 1), LAST_DAY)
    stream = PeakRss(RepeatingExport(pool, repeats))
    started, cpu = time.perf_counter(), time.process_time()
    tail = b""
    while chunk := stream.read(1 << 16):
        lines = (tail + chunk).split(b"\n")
        tail = lines.pop()
        aggregator.feed_events([json.loads(line) for line in lines if line])
    records = aggregator.records()
    return (time.perf_counter() - started, time.process_time() - cpu), len(records), aggregator, stream


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="250000,1000000,2000000", help="events per run, comma-separated")
    parser.add_argument("--pool", type=int, default=50_000, help="distinct event lines in the repeated pool")
    parser.add_argument("--accounts", type=int, default=2_000)
    parser.add_argument("--users", type=int, default=15, help="users per account")
    args = parser.parse_args()
    pool = event_pool(args.pool, args.accounts, args.users)
    print(f"pool: {args.pool:,} lines, {len(pool) / 1e6:.1f} MB; {args.accounts:,} accounts × {args.users} users; "
          f"{WINDOW_DAYS}-day window")
    header = (f"{'parser':<10} {'events':>11} {'wall s':>7} {'events/s':>10} {'CPU s':>7} {'events/CPU s':>13} "
              f"{'RSS +MB':>8} {'peak RSS MB':>12} {'usage rows':>11} {'skipped':>8}")
    print(header)
    print("-" * len(header))
    for size in (int(s) for s in args.sizes.split(",")):
        repeats = max(1, round(size / args.pool))
        for label, run in (("batched", run_batched), ("per-line", run_per_line)):
            (wall, cpu), rows, aggregator, rss = run(pool, repeats)
            events = aggregator.events_seen
            print(f"{label:<10} {events:>11,} {wall:>7.2f} {events / wall:>10,.0f} {cpu:>7.2f} {events / cpu:>13,.0f} "
                  f"{(rss.peak - rss.start) / 2**20:>8.1f} {rss.peak / 2**20:>12.1f} {rows:>11,} {aggregator.skips.total:>8,}")
            del aggregator


if __name__ == "__main__":
    main()
