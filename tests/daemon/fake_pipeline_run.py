"""`healthsync run` in its own process with a fake `sync.pipeline` installed, for test_run_command.py.

usage: fake_pipeline_run.py MODE ARGS...   MODE: ok (quick ok cycles) | stuck (a cycle that ignores stop)
Sets the stop grace period to 1 s so a stuck cycle is given up on quickly.
"""

from __future__ import annotations

import sys
import threading
import time
from datetime import datetime

import healthsync.sync.daemon
import healthsync.sync.pipeline
from healthsync.sync.cycle import ApiUse, CycleReport, SourceReport, StreamReport


def build_cycle(settings, store):
    mode = sys.argv[1]

    def cycle(as_of: datetime, full: bool, stop: threading.Event) -> CycleReport:
        print("cycle-start", flush=True)
        if mode == "stuck":
            time.sleep(60)  # ignores stop, as a hung network call would
        sources = {"hubspot": SourceReport("hubspot", streams={"companies": StreamReport(records=42)},
                                           api=ApiUse(calls=5))}
        return CycleReport(as_of=as_of, full=full, sources=sources, accounts_by_band={"green": 3})

    return cycle


def main() -> int:
    healthsync.sync.daemon.DEFAULT_STOP_GRACE_S = 1.0
    healthsync.sync.pipeline.build_cycle = build_cycle  # `run` looks it up when it starts, so it finds the fake
    from healthsync.sync.cli import main as cli_main

    return cli_main(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
