"""Benchmark of writeback against the sandbox CRM: write calls made vs the minimum the batch limits allow, records/s
and peak memory, for a first run (every account), a cycle where 10 % of the accounts changed, and a cycle where
nothing did (which must make zero write calls).

The first run and the no-change run are whole cycles (pull, score, plan, apply) through the real connectors.
The 10 % run is writeback alone: the stored results of the last cycle with one account in ten given a new score,
planned against the real ledger and applied through the real writer, so the change set is exact. "Nothing changed"
is measured both ways: writeback alone (the same results planned again: must make zero write calls) and as a real
cycle, where the minutes a large cycle takes can legitimately move a few values (a `days since last touch` ticks).
Apply time is split into CRM writes, the dedupe-key lookups before creating tasks (the crash-safety reads; the
emulator scans its Task table for each, a real org uses the external-id index) and the rest (ledger, planning data).
Run: `.venv/bin/python bench/writeback.py [--crm salesforce|hubspot|both] [--accounts 10000] [--changed 0.1]`.
"""

from __future__ import annotations

import argparse
import logging
import math
import resource
import sys
import time
from dataclasses import dataclass, replace
from datetime import timedelta

WRITE_ENDPOINTS = {
    "salesforce": ("collections", "record", "upsert"),
    "hubspot": ("batch", "create_object", "update_object", "archive_object"),
}


@dataclass
class Row:
    crm: str
    case: str
    accounts: int  # field updates planned
    tasks: int  # tasks planned
    write_calls: int  # counted by the emulator
    minimum: int  # ceil(accounts / max update batch) + ceil(tasks / max create batch)
    apply_seconds: float
    cycle_seconds: float | None
    write_seconds: float = 0.0  # inside the writer's update/create calls
    lookup_seconds: float = 0.0  # inside find_tasks

    @property
    def per_second(self) -> str:
        records = self.accounts + self.tasks
        if not records:
            return "-"
        return f"{records / self.apply_seconds:,.0f}" if self.apply_seconds > 0 else "inf"


def _write_calls(server, crm: str) -> int:
    snapshot = server.calls.snapshot()
    return sum(snapshot.get(f"{crm} {endpoint}", 0) for endpoint in WRITE_ENDPOINTS[crm])


class CallTimer:
    """Wraps the writer's CRM calls on the instance and adds up the seconds spent in each kind."""

    def __init__(self, writer):
        self.seconds = {"write": 0.0, "lookup": 0.0}
        for name, kind in (("update_accounts", "write"), ("create_tasks", "write"), ("find_tasks", "lookup")):
            setattr(writer, name, self._timed(getattr(writer, name), kind))

    def _timed(self, call, kind: str):
        def timed(*args, **kw):
            started = time.perf_counter()
            try:
                return call(*args, **kw)
            finally:
                self.seconds[kind] += time.perf_counter() - started
        return timed

    def take(self) -> tuple[float, float]:
        taken = (self.seconds["write"], self.seconds["lookup"])
        self.seconds = {"write": 0.0, "lookup": 0.0}
        return taken


def _minimum(writer, accounts: int, tasks: int) -> int:
    return math.ceil(accounts / writer.max_update_batch) + math.ceil(tasks / writer.max_create_batch)


def _cycle_row(env, timer: CallTimer, crm: str, case: str) -> tuple[Row, object]:
    before = _write_calls(env.server, crm)
    started = time.perf_counter()
    report = env.cycle()
    elapsed = time.perf_counter() - started
    env.server.clock.advance(timedelta(seconds=5))
    if report.status != "ok":
        raise SystemExit(f"{crm} {case}: the cycle ended {report.status}: {report.error or report.applied.errors[:3]}")
    plan = report.plan
    row = Row(crm, case, len(plan.field_updates), len(plan.tasks), _write_calls(env.server, crm) - before,
              _minimum(env.ctx.writer, len(plan.field_updates), len(plan.tasks)),
              report.steps.get("apply", {}).get("seconds", 0.0), elapsed, *timer.take())
    return row, report


def _writeback_alone_row(env, timer: CallTimer, crm: str, case: str, scored) -> Row:
    """Plan `scored` against the real ledger and the CRM values pulled last, and apply it through the real writer."""
    from healthsync.sync.gather import gather_facts
    from healthsync.sync.pipeline import plan_writeback
    from healthsync.writeback.apply import apply_plan

    as_of = env.server.clock.now()
    plan = plan_writeback(env.ctx, scored, gather_facts(env.store, env.ctx, {crm}, as_of), as_of)
    before = _write_calls(env.server, crm)
    started = time.perf_counter()
    applied = apply_plan(plan, env.ctx.writer, env.store.ledger, now=as_of, run_id=f"bench-{case}")
    elapsed = time.perf_counter() - started
    env.server.clock.advance(timedelta(seconds=5))
    if not applied.ok:
        raise SystemExit(f"{crm} {case}: {applied.errors[:3]}")
    return Row(crm, case, len(plan.field_updates), len(plan.tasks), _write_calls(env.server, crm) - before,
               _minimum(env.ctx.writer, len(plan.field_updates), len(plan.tasks)), elapsed, None, *timer.take())


def _with_new_scores(scored, share: float) -> list:
    """Every `1/share`-th account (by id) one point lower: an exact change set of `share` of the book."""
    step = max(1, round(1 / share))
    out = []
    for index, item in enumerate(sorted(scored, key=lambda s: s.result.account_id)):
        if index % step == 0:
            result = item.result
            item = replace(item, result=replace(result, score=result.score - 1 if result.score > 0 else 1))
        out.append(item)
    return out


def run(crm: str, accounts: int, share: float) -> list[Row]:
    from tests.support.sandbox_env import sandbox_env

    print(f"{crm}: building a sandbox of {accounts:,} accounts...", file=sys.stderr, flush=True)
    rows = []
    with sandbox_env(crm, accounts=accounts, drop=("zendesk", "mixpanel")) as env:
        env.setup_fields()
        timer = CallTimer(env.ctx.writer)
        first, _ = _cycle_row(env, timer, crm, "first run (all accounts)")
        rows.append(first)
        print(f"{crm}: first cycle {first.cycle_seconds:.0f}s", file=sys.stderr, flush=True)
        settle, _ = _cycle_row(env, timer, crm, "second cycle (history now real)")
        rows.append(settle)
        # A real cycle also pulls back what the last one wrote: the CRM values the planner compares with are fresh.
        quiet, report = _cycle_row(env, timer, crm, "real cycle, no CRM edits")
        rows.append(quiet)
        changed = _with_new_scores(report.scored, share)
        rows.append(_writeback_alone_row(env, timer, crm, f"{share:.0%} changed (writeback alone)", changed))
        rows.append(_writeback_alone_row(env, timer, crm, "nothing changed (writeback alone)", changed))
        back, _ = _cycle_row(env, timer, crm, "real cycle (scores move back)")
        rows.append(back)
    return rows


def print_table(rows: list[Row], peak_mb: float) -> None:
    header = f"{'crm':<11} {'case':<36} {'accounts':>8} {'tasks':>6} {'write calls':>11} {'minimum':>7} " \
             f"{'apply s':>8} {'writes s':>8} {'lookups s':>9} {'other s':>7} {'records/s':>9} {'cycle s':>8}"
    print(header)
    print("-" * len(header))
    for r in rows:
        cycle = f"{r.cycle_seconds:.1f}" if r.cycle_seconds is not None else "-"
        other = max(r.apply_seconds - r.write_seconds - r.lookup_seconds, 0.0)
        print(f"{r.crm:<11} {r.case:<36} {r.accounts:>8,} {r.tasks:>6,} {r.write_calls:>11,} {r.minimum:>7,} "
              f"{r.apply_seconds:>8.2f} {r.write_seconds:>8.2f} {r.lookup_seconds:>9.2f} {other:>7.2f} "
              f"{r.per_second:>9} {cycle:>8}")
    print(f"peak RSS {peak_mb:,.0f} MB (one process: healthsync, the SDKs and the emulators)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crm", choices=("salesforce", "hubspot", "both"), default="salesforce")
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--changed", type=float, default=0.10, help="share of accounts changed (0-1)")
    args = parser.parse_args()
    if not 0 < args.changed <= 1:
        parser.error("--changed is a share between 0 and 1, e.g. 0.1 for 10 %")
    logging.disable(logging.WARNING)
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    crms = ("salesforce", "hubspot") if args.crm == "both" else (args.crm,)
    rows = [row for crm in crms for row in run(crm, args.accounts, args.changed)]
    print_table(rows, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    quiet = [r for r in rows if r.case.startswith("nothing changed")]
    if any(r.write_calls for r in quiet):
        raise SystemExit("writeback made write calls although nothing changed")
    if any(r.write_calls != r.minimum for r in rows):
        raise SystemExit("some case made more write calls than the batch limits require")


if __name__ == "__main__":
    main()
