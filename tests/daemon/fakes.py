"""Fake cycle functions for the daemon tests: they record what they saw and fail loudly on overlap."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from healthsync.sync.cycle import ApiUse, CycleReport, SourceReport, StreamReport


def source(name: str, *, records: int = 0, api_calls: int = 0, rate_limited: int = 0, **kwargs: object) -> SourceReport:
    """One source's part of a report: `records` pulled (in one stream), what its API calls cost."""
    return SourceReport(name, streams={"records": StreamReport(records=records)},  # type: ignore[arg-type]
                        api=ApiUse(calls=api_calls, rate_limited=rate_limited), **kwargs)


def outcome(status: str = "ok", *, full: bool = False, as_of: datetime, **kwargs: object) -> CycleReport:
    sources = kwargs.pop("sources", None) or {
        "salesforce": source("salesforce", records=10, api_calls=3),
        "zendesk": source("zendesk", records=4, api_calls=2, rate_limited=1),
    }
    return CycleReport(as_of=as_of, full=full, status=status, sources=sources, **kwargs)  # type: ignore[arg-type]


@dataclass
class RecordingCycle:
    """Sleeps `seconds` per call, in small batches that honour `stop`; notes overlaps instead of hiding them."""

    seconds: float = 0.0
    statuses: list[str] = field(default_factory=lambda: ["ok"])
    calls: list[tuple[datetime, bool]] = field(default_factory=list)
    overlaps: int = 0
    stopped_early: int = 0
    _active: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, as_of: datetime, full: bool, stop: threading.Event) -> CycleReport:
        with self._lock:
            self._active += 1
            if self._active > 1:
                self.overlaps += 1
            status = self.statuses[min(len(self.calls), len(self.statuses) - 1)]
            self.calls.append((as_of, full))
        try:
            deadline = time.monotonic() + self.seconds
            while time.monotonic() < deadline:
                if stop.is_set():
                    self.stopped_early += 1
                    break
                time.sleep(0.02)
            return outcome(status, full=full, as_of=as_of, run_id=f"run-{len(self.calls)}")
        finally:
            with self._lock:
                self._active -= 1
