"""The daemon: runs one cycle at a time on a schedule (incremental + periodic full resync) and stops cleanly.

The cycle itself is someone else's: the daemon calls a `CycleFn(as_of, full, stop) -> CycleReport`.

    Daemon.serve()      first incremental cycle at once, then the schedule; SIGTERM/SIGINT set `stop`, the
                        running cycle finishes its batch and returns, the scheduler shuts down, exit code 0
    Daemon.run_once()   one cycle in the calling thread (`healthsync run --once`); exit code from its status

Two jobs share one lock, so cycles never overlap: a full resync that comes due during an incremental waits
for it (and the other way round); APScheduler's `max_instances=1` + `coalesce` drop the pile-up behind a
long cycle instead of queueing it. Cron expressions mean what crontab(5) says (0 = Sunday, day-of-month OR
day-of-week), not APScheduler 3's own reading of them.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from healthsync.errors import HealthsyncError
from healthsync.redaction import redact
from healthsync.sync.cycle import CycleReport
from healthsync.sync.logs import get_logger

EXIT_OK, EXIT_FAILED = 0, 1
DEFAULT_STOP_GRACE_S = 25.0  # under systemd's and Kubernetes' usual 30 s before SIGKILL
_LOCK_POLL_S = 0.2

_log = get_logger(__name__)
# APScheduler narrates every job at INFO ("Running job ...", "executed successfully"); "cycle finished" says it.
logging.getLogger("apscheduler").setLevel(logging.WARNING)


# --- what the daemon runs and tells -------------------------------------------------------------------

CycleFn = Callable[[datetime, bool, threading.Event], CycleReport]
"""(as_of, full, stop) -> report. Check `stop` between batches: when set, commit the batch and return."""


class CycleObserver(Protocol):
    """Told about every cycle (the health endpoint and the metrics implement it)."""

    def cycle_started(self, full: bool, as_of: datetime) -> None: ...

    def cycle_finished(self, outcome: CycleReport) -> None: ...


def utc_now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


# --- when cycles run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """When cycles run. Exactly one incremental trigger; the full resync is optional."""

    incremental_every: timedelta | None = timedelta(minutes=5)
    incremental_cron: str | None = None
    full_resync_cron: str | None = "0 3 * * sun"
    full_resync_every: timedelta | None = None
    timezone: str = "UTC"
    run_at_start: bool = True  # the first incremental cycle starts at once, not one interval later

    def __post_init__(self) -> None:
        if (self.incremental_every is None) == (self.incremental_cron is None):
            raise ValueError("a schedule needs exactly one of incremental_every and incremental_cron")
        if self.full_resync_cron is not None and self.full_resync_every is not None:
            raise ValueError("set full_resync_cron or full_resync_every, not both")
        for every in (self.incremental_every, self.full_resync_every):
            if every is not None and every <= timedelta(0):
                raise ValueError("a schedule interval must be positive")

    @classmethod
    def from_settings(cls, settings: Any) -> Schedule:
        """From config's ScheduleSettings (or anything with its attributes)."""
        minutes = settings.incremental_minutes
        return cls(
            incremental_every=timedelta(minutes=minutes) if minutes is not None else None,
            incremental_cron=settings.incremental_cron if minutes is None else None,
            full_resync_cron=settings.full_resync_cron,
            timezone=settings.timezone,
        )

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def incremental_trigger(self) -> BaseTrigger:
        if self.incremental_every is not None:
            return IntervalTrigger(seconds=self.incremental_every.total_seconds(), timezone=self.tz)
        assert self.incremental_cron is not None
        return crontab_trigger(self.incremental_cron, self.tz)

    def full_resync_trigger(self) -> BaseTrigger | None:
        if self.full_resync_every is not None:
            return IntervalTrigger(seconds=self.full_resync_every.total_seconds(), timezone=self.tz)
        return crontab_trigger(self.full_resync_cron, self.tz) if self.full_resync_cron else None

    def misfire_grace_s(self, full: bool) -> int:
        """How late a run may start and still run: an interval's length, an hour for cron, six for a resync."""
        if full:
            return 6 * 3600
        if self.incremental_every is not None:
            return max(1, int(self.incremental_every.total_seconds()))
        return 3600

    def describe(self) -> dict[str, str]:
        incremental = (
            f"every {self.incremental_every}" if self.incremental_every is not None else f"cron '{self.incremental_cron}'"
        )
        if self.full_resync_every is not None:
            full = f"every {self.full_resync_every}"
        else:
            full = f"cron '{self.full_resync_cron}'" if self.full_resync_cron else "never"
        return {"incremental": incremental, "full_resync": full, "timezone": self.timezone}


_WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # crontab numbering: 0 = Sunday
_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")


def crontab_trigger(expression: str, tz: ZoneInfo) -> BaseTrigger:
    """An APScheduler 3 trigger that fires when crontab(5) would for this 5-field expression.

    APScheduler 3 numbers weekdays from Monday and ANDs day-of-month with day-of-week; crontab numbers
    them from Sunday and ORs the two when both are restricted. We expand the weekday field to names and
    build an OrTrigger for the OR case.
    """
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"'{expression}' is not a 5-field cron expression")
    minute, hour, day, month, weekday = (f.replace("?", "*") for f in fields)
    month = _month_numbers(month)
    weekdays = ",".join(_WEEKDAY_NAMES[d] for d in sorted(_expand_weekdays(weekday)))
    common = {"minute": minute, "hour": hour, "month": month, "timezone": tz}
    if day.startswith("*") or weekday.startswith("*"):
        return CronTrigger(day=day, day_of_week=weekdays, **common)
    return OrTrigger([CronTrigger(day=day, **common), CronTrigger(day_of_week=weekdays, **common)])


def _month_numbers(text: str) -> str:
    for index, name in enumerate(_MONTH_NAMES, start=1):
        text = text.lower().replace(name, str(index))
    return text


def _expand_weekdays(text: str) -> set[int]:
    """The crontab weekday field as a set of 0..6 (0 = Sunday); 7 is Sunday too, as in Vixie cron."""
    days: set[int] = set()
    for item in text.lower().split(","):
        span, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if span == "*":
            first, last = 0, 6
        else:
            first_text, _, last_text = span.partition("-")
            first = _weekday_number(first_text)
            last = _weekday_number(last_text) if last_text else (6 if step_text else first)
        days.update(d % 7 for d in range(first, last + 1, step))
    return days


def _weekday_number(token: str) -> int:
    if token in _WEEKDAY_NAMES:
        return _WEEKDAY_NAMES.index(token)
    if token.isdigit() and 0 <= int(token) <= 7:
        return int(token)
    raise ValueError(f"day of week '{token}' is not 0-7 or sun..sat")


# --- the daemon --------------------------------------------------------------------------------------


class Daemon:
    """Schedules a cycle function, one cycle at a time, and stops cleanly on request or signal."""

    def __init__(  # noqa: PLR0913 (the cycle and its schedule, then independent keyword-only hooks with defaults)
        self,
        cycle_fn: CycleFn,
        schedule: Schedule,
        *,
        clock: Callable[[], datetime] = utc_now,
        observability: CycleObserver | None = None,
        guard: Callable[[], None] | None = None,
        stop_grace_s: float | None = None,
    ):
        """`guard` runs before every cycle (e.g. the store lock's ensure_held); if it raises, the daemon stops."""
        self._cycle_fn = cycle_fn
        self.schedule = schedule
        self._clock = clock
        self._observer = observability
        self._guard = guard
        self._stop_grace_s = DEFAULT_STOP_GRACE_S if stop_grace_s is None else stop_grace_s
        self._stop = threading.Event()
        self._done = threading.Event()
        self._cycle_lock = threading.Lock()
        self._failing: dict[str, bool] = {}
        self._scheduler: BackgroundScheduler | None = None
        self.fatal: BaseException | None = None
        self.overran = False  # a cycle was still running when the stop grace period ended
        self.cycles_run = 0
        self.last_outcome: CycleReport | None = None
        self._signal_name = ""
        self._signals_received = 0  # written by the signal handler, read by the main thread
        self._signals_seen = 0

    @property
    def stop_event(self) -> threading.Event:
        """Set once a stop was requested: cycles check it between batches."""
        return self._stop

    @property
    def stopped(self) -> threading.Event:
        """Set when the daemon has nothing more to do (stop requested, or a fatal error)."""
        return self._done

    def request_stop(self, reason: str = "requested") -> None:
        if not self._stop.is_set():
            _log.info("daemon stopping", reason=reason, cycle_running=self._cycle_lock.locked())
        self._stop.set()
        self._done.set()

    # ---- one cycle --------------------------------------------------------------------------------

    def run_cycle(self, *, full: bool = False) -> CycleReport | None:
        """Run one cycle under the cycle lock; None when the daemon stopped before the cycle could start."""
        with self._exclusive() as got_it:
            if not got_it or self._stop.is_set():
                return None
            if not self._guard_passes():
                return None
            as_of = self._clock()
            self._notify("cycle_started", full, as_of)
            began = time.monotonic()
            outcome = self._call_cycle(as_of, full)
            outcome.duration_s = round(time.monotonic() - began, 3)
            self.cycles_run += 1
            self.last_outcome = outcome
            self._log_outcome(outcome)
            self._notify("cycle_finished", outcome)
            return outcome

    @contextmanager
    def _exclusive(self) -> Iterator[bool]:
        """Hold the cycle lock; give up (yield False) if a stop comes while waiting for it."""
        while not self._cycle_lock.acquire(timeout=_LOCK_POLL_S):
            if self._stop.is_set():
                yield False
                return
        try:
            yield True
        finally:
            self._cycle_lock.release()

    def _guard_passes(self) -> bool:
        if self._guard is None:
            return True
        try:
            self._guard()
        except Exception as exc:
            self.fatal = exc
            _log.error("daemon cannot go on", error=str(exc), error_type=type(exc).__name__)
            self.request_stop("guard failed")
            return False
        return True

    def _call_cycle(self, as_of: datetime, full: bool) -> CycleReport:
        try:
            outcome = self._cycle_fn(as_of, full, self._stop)
            if not isinstance(outcome, CycleReport):
                raise TypeError(f"the cycle function returned {type(outcome).__name__}, not a CycleReport")
            return outcome
        except Exception as exc:  # a crash is one failed cycle: the next one may well succeed
            expected = isinstance(exc, HealthsyncError)
            error = redact(f"{type(exc).__name__}: {exc}")  # the outcome goes on to /healthz
            _log.error("cycle crashed", kind="full" if full else "incremental", error=error, exc_info=not expected)
            return CycleReport(as_of=as_of, full=full, status="failed", error=error)

    def _notify(self, method: str, *args: Any) -> None:
        if self._observer is None:
            return
        try:
            getattr(self._observer, method)(*args)
        except Exception:  # observability must never take the daemon down
            _log.exception("observer failed", method=method)

    def _log_outcome(self, outcome: CycleReport) -> None:
        failed = sorted(name for name, source in outcome.sources.items() if not source.ok)
        log = {"ok": _log.info, "partial": _log.warning, "failed": _log.error}[outcome.status]
        log(
            "cycle finished",
            kind=outcome.kind,
            status=outcome.status,
            run_id=outcome.run_id,
            duration_s=outcome.duration_s,
            records_pulled=sum(s.records for s in outcome.sources.values()),
            api_calls=sum(s.api.calls for s in outcome.sources.values()),
            writes=dict(outcome.writes),
            failed_sources=failed,
            error=outcome.error,
        )
        self._log_source_transitions(outcome)

    def _log_source_transitions(self, outcome: CycleReport) -> None:
        """Once when a source starts failing, once when it recovers; not on every cycle in between."""
        for name, source in sorted(outcome.sources.items()):
            was_failing = self._failing.get(name, False)
            if not source.ok and not was_failing:
                _log.warning(
                    "source paused" if source.paused else "source failing",
                    source=name,
                    error=source.error,
                )
            elif source.ok and was_failing:
                _log.info("source recovered", source=name)
            self._failing[name] = not source.ok

    # ---- modes ------------------------------------------------------------------------------------

    def run_once(self, *, full: bool = False) -> int:
        """One cycle, SIGTERM/SIGINT asking it to wrap up. Exit code: 1 if it failed (or overran), else 0."""
        result: dict[str, CycleReport | None] = {}
        worker = threading.Thread(  # a daemon thread: an overrun must not keep the process alive
            target=lambda: result.__setitem__("outcome", self.run_cycle(full=full)),
            name="healthsync-cycle",
            daemon=True,
        )
        with self._signals_handled():
            worker.start()
            while worker.is_alive():
                worker.join(timeout=_LOCK_POLL_S)
                self._poll_signals()
                if self._stop.is_set() and worker.is_alive():
                    worker.join(timeout=self._stop_grace_s)
                    self.overran = worker.is_alive()
                    break
        if self.overran:
            _log.error("cycle still running after the stop grace period", grace_s=self._stop_grace_s)
        outcome = result.get("outcome")
        failed = self.fatal is not None or self.overran or (outcome is not None and outcome.status == "failed")
        return EXIT_FAILED if failed else EXIT_OK

    def serve(self) -> int:
        """Run on the schedule until SIGTERM/SIGINT (or a fatal error). Exit code 0 on a clean stop."""
        with self._signals_handled():
            self.start()
            while not self._done.wait(timeout=_LOCK_POLL_S):
                self._poll_signals()
            return self.shutdown()

    def start(self) -> None:
        """Start the scheduler in background threads (the first incremental cycle begins at once)."""
        tz = self.schedule.tz
        scheduler = BackgroundScheduler(
            timezone=tz,
            executors={"default": ThreadPoolExecutor(max_workers=2)},  # one per job; the cycle lock serialises
            job_defaults={"coalesce": True, "max_instances": 1},
        )
        first = datetime.now(tz) if self.schedule.run_at_start else None
        scheduler.add_job(
            self._job,
            self.schedule.incremental_trigger(),
            kwargs={"full": False},
            id="incremental",
            name="incremental cycle",
            misfire_grace_time=self.schedule.misfire_grace_s(False),
            **({"next_run_time": first} if first is not None else {}),
        )
        full_trigger = self.schedule.full_resync_trigger()
        if full_trigger is not None:
            scheduler.add_job(
                self._job,
                full_trigger,
                kwargs={"full": True},
                id="full_resync",
                name="full resync",
                misfire_grace_time=self.schedule.misfire_grace_s(True),
            )
        scheduler.start()
        self._scheduler = scheduler
        next_runs = {f"next_{job.id}": _iso(job.next_run_time) for job in scheduler.get_jobs()}
        _log.info("daemon started", **self.schedule.describe(), **next_runs)

    def _job(self, full: bool) -> None:
        try:
            self.run_cycle(full=full)
        except Exception:  # never let a bug escape into APScheduler's executor, which would only log it
            _log.exception("cycle job failed", kind="full" if full else "incremental")

    def shutdown(self) -> int:
        """Stop scheduling, let the running cycle finish (up to the grace period). Returns the exit code."""
        self.request_stop("shutdown")
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=False)
        if self._cycle_lock.acquire(timeout=self._stop_grace_s):
            self._cycle_lock.release()
        else:
            self.overran = True
            _log.error("cycle still running after the stop grace period", grace_s=self._stop_grace_s)
        code = EXIT_FAILED if self.fatal is not None or self.overran else EXIT_OK
        _log.info("daemon stopped", cycles=self.cycles_run, exit_code=code)
        return code

    @contextmanager
    def _signals_handled(self) -> Iterator[None]:
        """SIGTERM/SIGINT request a stop. Main thread only: Python delivers signals there.

        The handler only counts: it runs between two bytecodes of the main thread, which may be holding
        an Event's or the logging module's lock at that moment, so taking any lock there could deadlock.
        The main thread turns the count into request_stop() in `_poll_signals`.
        """
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            self._signal_name = signal.Signals(signum).name
            self._signals_received += 1

        for sig in previous:
            signal.signal(sig, on_signal)
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._poll_signals()

    def _poll_signals(self) -> None:
        if self._signals_received == self._signals_seen:
            return
        self._signals_seen = self._signals_received
        if self._stop.is_set():
            _log.warning("already stopping: waiting for the current batch to commit", signal=self._signal_name)
        self.request_stop(self._signal_name)
