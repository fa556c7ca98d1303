"""Fake cycle functions for the daemon tests: they record what they saw and fail loudly on overlap."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from healthsync.sync.daemon import CycleOutcome, SourceOutcome


def outcome(status: str = "ok", *, full: bool = False, as_of: datetime, **kwargs: object) -> CycleOutcome:
    sources = kwargs.pop("sources", None) or {
        "salesforce": SourceOutcome(ok=True, records_pulled=10, api_calls=3),
        "zendesk": SourceOutcome(ok=True, records_pulled=4, api_calls=2, rate_limited=1),
    }
    return CycleOutcome(status=status, full=full, started_at=as_of, sources=sources, **kwargs)  # type: ignore[arg-type]


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

    def __call__(self, as_of: datetime, full: bool, stop: threading.Event) -> CycleOutcome:
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
