"""The daemon in-process: schedule, one cycle at a time, crashes as failed cycles, the guard, run_once."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import structlog

from healthsync.errors import AuthError
from healthsync.sync.cycle import CycleReport, SourceReport
from healthsync.sync.daemon import EXIT_FAILED, EXIT_OK, Daemon, Schedule
from healthsync.sync.lock import LockLostError

from .fakes import RecordingCycle, outcome, source

FAST = Schedule(incremental_every=timedelta(seconds=1), full_resync_cron=None)
AS_OF = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


class Observer:
    def __init__(self) -> None:
        self.started: list[bool] = []
        self.finished: list[CycleReport] = []

    def cycle_started(self, full: bool, as_of: datetime) -> None:
        self.started.append(full)

    def cycle_finished(self, result: CycleReport) -> None:
        self.finished.append(result)


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def test_interval_schedule_runs_repeatedly_from_the_start() -> None:
    cycle = RecordingCycle(seconds=0.05)
    observer = Observer()
    daemon = Daemon(cycle, FAST, observability=observer)
    began = time.monotonic()
    daemon.start()
    try:
        wait_for(lambda: len(cycle.calls) >= 1, timeout=2)
        first_after = time.monotonic() - began
        wait_for(lambda: len(cycle.calls) >= 3, timeout=6)
    finally:
        assert daemon.shutdown() == EXIT_OK
    assert first_after < 0.9  # the first cycle does not wait for the first interval
    assert cycle.overlaps == 0
    assert [full for _, full in cycle.calls] == [False] * len(cycle.calls)
    assert observer.started == [False] * len(observer.finished) and len(observer.finished) == daemon.cycles_run
    assert observer.finished[0].duration_s >= 0.05  # measured by the daemon (later ones may be cut short)


def test_incremental_and_full_resync_never_overlap() -> None:
    cycle = RecordingCycle(seconds=0.35)
    schedule = Schedule(
        incremental_every=timedelta(seconds=0.5), full_resync_cron=None, full_resync_every=timedelta(seconds=0.7)
    )
    daemon = Daemon(cycle, schedule)
    daemon.start()
    try:
        wait_for(lambda: any(full for _, full in cycle.calls) and len(cycle.calls) >= 5, timeout=10)
    finally:
        daemon.shutdown()
    assert cycle.overlaps == 0
    assert {full for _, full in cycle.calls} == {True, False}


def test_concurrent_run_cycle_calls_are_serialised() -> None:
    cycle = RecordingCycle(seconds=0.1)
    daemon = Daemon(cycle, FAST)
    threads = [threading.Thread(target=daemon.run_cycle, kwargs={"full": i % 2 == 0}) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    assert (len(cycle.calls), cycle.overlaps, daemon.cycles_run) == (4, 0, 4)


def test_cycle_gets_the_clock_time_and_the_stop_event() -> None:
    seen: list[tuple[datetime, bool, threading.Event]] = []

    def cycle(as_of: datetime, full: bool, stop: threading.Event) -> CycleReport:
        seen.append((as_of, full, stop))
        return outcome(as_of=as_of, full=full)

    daemon = Daemon(cycle, FAST, clock=lambda: AS_OF)
    result = daemon.run_cycle(full=True)
    assert result is not None and result.full and result.as_of == AS_OF
    assert seen == [(AS_OF, True, daemon.stop_event)]
    assert daemon.last_outcome is result


def test_a_crashing_cycle_is_a_failed_cycle_and_the_daemon_goes_on() -> None:
    calls = []

    def cycle(as_of: datetime, full: bool, stop: threading.Event) -> CycleReport:
        calls.append(as_of)
        if len(calls) == 1:
            raise RuntimeError("boom with token=sk_live_abcdefghijklmnop")
        return outcome(as_of=as_of)

    daemon = Daemon(cycle, FAST, clock=lambda: AS_OF)
    first = daemon.run_cycle()
    assert first is not None and first.status == "failed"
    assert first.error is not None and "RuntimeError: boom" in first.error
    assert "sk_live_abcdefghijklmnop" not in first.error
    second = daemon.run_cycle()
    assert second is not None and second.status == "ok"


def test_a_cycle_returning_the_wrong_type_is_a_failed_cycle() -> None:
    daemon = Daemon(lambda as_of, full, stop: {"status": "ok"}, FAST)  # type: ignore[arg-type,return-value]
    result = daemon.run_cycle()
    assert result is not None and result.status == "failed" and "not a CycleReport" in (result.error or "")


def test_outcome_rejects_unknown_status_and_naive_time() -> None:
    with pytest.raises(ValueError, match="status"):
        CycleReport(as_of=AS_OF, status="fine")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timezone"):
        CycleReport(as_of=datetime(2024, 1, 1), status="ok")


def test_guard_failure_stops_the_daemon_before_the_cycle_runs() -> None:
    cycle = RecordingCycle()

    def guard() -> None:
        raise LockLostError("lost the connection holding the lock")

    daemon = Daemon(cycle, FAST, guard=guard)
    assert daemon.run_once() == EXIT_FAILED
    assert cycle.calls == [] and isinstance(daemon.fatal, LockLostError) and daemon.stopped.is_set()


def test_guard_failure_in_serve_mode_exits_1() -> None:
    cycle = RecordingCycle()
    guard_calls = []

    def guard() -> None:
        guard_calls.append(1)
        if len(guard_calls) > 1:
            raise LockLostError("lock gone")

    daemon = Daemon(cycle, FAST, guard=guard)
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(daemon.serve()))
    thread.start()
    thread.join(timeout=10)
    assert result == [EXIT_FAILED] and len(cycle.calls) == 1


@pytest.mark.parametrize(("status", "code"), [("ok", EXIT_OK), ("partial", EXIT_OK), ("failed", EXIT_FAILED)])
def test_run_once_exit_code_follows_the_cycle_status(status: str, code: int) -> None:
    cycle = RecordingCycle(statuses=[status])
    daemon = Daemon(cycle, FAST)
    assert daemon.run_once(full=True) == code
    assert cycle.calls[0][1] is True and daemon.cycles_run == 1


def test_stop_while_waiting_for_the_cycle_lock_skips_the_cycle() -> None:
    cycle = RecordingCycle(seconds=0.5)
    daemon = Daemon(cycle, FAST)
    first = threading.Thread(target=daemon.run_cycle)
    first.start()
    wait_for(lambda: len(cycle.calls) == 1)
    waiting: list[CycleReport | None] = []
    second = threading.Thread(target=lambda: waiting.append(daemon.run_cycle(full=True)))
    second.start()
    time.sleep(0.1)
    daemon.request_stop("test")
    first.join(timeout=5)
    second.join(timeout=5)
    assert waiting == [None] and len(cycle.calls) == 1 and cycle.stopped_early == 1


def test_source_failures_are_logged_once_and_recovery_once() -> None:
    def sources(ok: bool) -> dict[str, SourceReport]:
        return {"zendesk": source("zendesk", ok=ok, error=None if ok else "401 from Zendesk")}

    plan = [False, False, False, True, True]
    calls: list[int] = []

    def cycle(as_of: datetime, full: bool, stop: threading.Event) -> CycleReport:
        ok = plan[len(calls)]
        calls.append(1)
        return outcome("ok" if ok else "partial", as_of=as_of, sources=sources(ok))

    daemon = Daemon(cycle, FAST)
    with structlog.testing.capture_logs() as logs:
        for _ in plan:
            daemon.run_cycle()
    events = [entry["event"] for entry in logs if entry.get("source") == "zendesk"]
    assert events == ["source failing", "source recovered"]
    finished = [entry for entry in logs if entry["event"] == "cycle finished"]
    assert [e["log_level"] for e in finished] == ["warning"] * 3 + ["info"] * 2
    assert finished[0]["failed_sources"] == ["zendesk"]


def test_expected_errors_are_logged_without_a_traceback() -> None:
    def cycle(as_of: datetime, full: bool, stop: threading.Event) -> CycleReport:
        raise AuthError("salesforce rejected the credentials")

    daemon = Daemon(cycle, FAST)
    with structlog.testing.capture_logs() as logs:
        result = daemon.run_cycle()
    assert result is not None and result.status == "failed"
    crash = next(entry for entry in logs if entry["event"] == "cycle crashed")
    assert crash["exc_info"] is False and "AuthError" in crash["error"]
