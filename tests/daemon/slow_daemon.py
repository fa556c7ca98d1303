"""A daemon around a slow fake cycle, run as its own process by test_signals.py.

usage: slow_daemon.py serve|once CYCLE_SECONDS
Prints one line per event (cycle-start, batch-committed N, cycle-end, exit CODE) so the test can follow along.
"""

from __future__ import annotations

import sys
import threading
import time
from datetime import datetime, timedelta

from healthsync.sync.cycle import CycleReport, SourceReport
from healthsync.sync.daemon import Daemon, Schedule
from healthsync.sync.logs import configure_logging


def say(line: str) -> None:
    print(line, flush=True)


def slow_cycle(seconds: float):
    def cycle(as_of: datetime, full: bool, stop: threading.Event) -> CycleReport:
        say("cycle-start")
        batches = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(0.1)  # one batch of work, then its commit
            batches += 1
            if stop.is_set():
                say(f"batch-committed {batches} then stop")
                break
        say("cycle-end")
        return CycleReport(as_of=as_of, full=full, sources={"crm": SourceReport("crm")})

    return cycle


def main() -> int:
    mode, seconds = sys.argv[1], float(sys.argv[2])
    configure_logging("WARNING", "json")
    daemon = Daemon(slow_cycle(seconds), Schedule(incremental_every=timedelta(seconds=1), full_resync_cron=None))
    code = daemon.serve() if mode == "serve" else daemon.run_once()
    say(f"exit {code} cycles={daemon.cycles_run}")
    return code


if __name__ == "__main__":
    sys.exit(main())
