"""Benchmark of the synthetic portfolio: generation time and peak memory for 1k and 10k accounts, and the
cost of producing 90 days of lazy Mixpanel events for 1k accounts. Run: `.venv/bin/python bench/sandbox_gen.py`."""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from datetime import UTC, datetime, timedelta

AS_OF = datetime(2025, 6, 2, 10, tzinfo=UTC)


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def _generate(size: int, queue: multiprocessing.Queue) -> None:
    from healthsync.sandbox.portfolio import generate_portfolio

    started, cpu = time.perf_counter(), time.process_time()
    portfolio = generate_portfolio(7, size, AS_OF)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    counts = {name: len(getattr(portfolio, name)) for name in (
        "contacts", "opportunities", "activities", "tickets", "zendesk_users", "mixpanel_profiles")}
    queue.put(((elapsed, cpu), _peak_rss_mb(), counts))


def _events(size: int, days: int, queue: multiprocessing.Queue) -> None:
    from healthsync.sandbox.portfolio import generate_portfolio

    portfolio = generate_portfolio(7, size, AS_OF)
    started = time.perf_counter()
    total = 0
    for back in range(days):
        for _ in portfolio.events_for_day(AS_OF.date() - timedelta(days=back)):
            total += 1
    elapsed = time.perf_counter() - started
    queue.put((elapsed, total, _peak_rss_mb()))


def _run(target, *args):
    """Each measurement in a fresh process, so peak RSS belongs to that measurement alone."""
    queue: multiprocessing.Queue = multiprocessing.Queue()
    proc = multiprocessing.Process(target=target, args=(*args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated book sizes")
    parser.add_argument("--event-accounts", type=int, default=1000)
    parser.add_argument("--days", type=int, default=90)
    args = parser.parse_args()
    print(f"{'accounts':>9} {'wall s':>7} {'cpu s':>7} {'peak MB':>8}  records")
    for size in (int(s) for s in args.sizes.split(",")):
        (elapsed, cpu), rss, counts = _run(_generate, size)
        detail = " ".join(f"{k}={v}" for k, v in counts.items())
        print(f"{size:>9} {elapsed:>7.2f} {cpu:>7.2f} {rss:>8.0f}  {detail}")
    elapsed, total, rss = _run(_events, args.event_accounts, args.days)
    print(f"events: {args.days} days x {args.event_accounts} accounts = {total} events in {elapsed:.2f} s "
          f"({total / elapsed:,.0f} events/s, {total / args.event_accounts / args.days:.1f} per account-day, "
          f"peak {rss:.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
