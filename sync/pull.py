"""The pull loop: read every stream of a source page by page into the store, each page and its cursor in one
transaction, so a crash anywhere loses nothing and a restart re-reads at most the overlap window.

Errors are sorted by what happens next: an AuthError or a QuotaExhaustedError stops this source and is
reported as a failure (never as a successful sync); a RetryableError that outlived the connector's retries
stops this source for this cycle; skipped records are counted and kept in the report; other sources go on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from healthsync.connectors.base import Page, Source
from healthsync.connectors.cursor import StreamState
from healthsync.errors import AuthError, HealthsyncError, QuotaExhaustedError, RetryableError
from healthsync.redaction import redact
from healthsync.sync.cycle import SourceReport, StreamReport
from healthsync.sync.store import Store
from healthsync.sync.store.rows import RecordRow

# Called after each committed page with (source, stream, records so far); the CLI draws progress from it.
ProgressFn = Callable[[str, str, int], None]
MAX_SKIPPED_EXAMPLES = 20


def pull_source(  # noqa: PLR0913 (store and source, then one pull's independent keyword-only options)
    store: Store,
    source: Source,
    *,
    as_of: datetime,
    now: Callable[[], datetime],
    full: bool = False,
    run_id: str | None = None,
    streams: list[str] | None = None,
    stop: threading.Event | None = None,
    progress: ProgressFn | None = None,
) -> SourceReport:
    """Pull the named streams (default: all) of one source; never raises a HealthsyncError."""
    report = SourceReport(source=source.name)
    pull = _Pull(store, source, report, as_of, now, full, run_id, stop, progress)
    started = time.monotonic()
    try:
        for spec in source.streams():
            if streams and spec.name not in streams:
                continue
            if pull.stopped():
                report.interrupted = True
                break
            _pull_stream(pull, spec.name)
    except HealthsyncError as exc:
        report.ok = False
        report.error = redact(str(exc))  # it goes on to the run record, the source status, /healthz and the CLI
        report.error_kind = _kind(exc)
    finally:
        report.seconds = time.monotonic() - started
    return report


@dataclass(frozen=True)
class _Pull:
    """One pull of one source: where pages go, what the cycle asked for, and the report it fills."""

    store: Store
    source: Source
    report: SourceReport
    as_of: datetime
    now: Callable[[], datetime]
    full: bool
    run_id: str | None
    stop: threading.Event | None
    progress: ProgressFn | None

    def stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()


def _pull_stream(pull: _Pull, stream: str) -> None:
    store, source, report = pull.store, pull.source, pull.report
    stream_report = report.streams.setdefault(stream, StreamReport())
    saved = None if pull.full else store.records.get_state(source.name, stream)
    state = StreamState.from_json(saved) if saved else None
    for page in source.read(stream, state, as_of=pull.as_of, full=pull.full):
        _commit(pull, stream, page)
        stream_report.pages += 1
        stream_report.records += sum(1 for r in page.records if not getattr(r, "deleted", False))
        stream_report.deleted += len(page.deleted_ids) + sum(1 for r in page.records if getattr(r, "deleted", False))
        stream_report.skipped += len(page.skipped)
        for skipped in page.skipped:
            if len(report.skipped_examples) < MAX_SKIPPED_EXAMPLES:
                report.skipped_examples.append(f"{stream} {skipped.record_id or '?'}: {skipped.reason}")
        if pull.progress:
            pull.progress(source.name, stream, stream_report.records)
        if pull.stopped():
            report.interrupted = True  # the page is committed; the cursor resumes here next cycle
            return


def _commit(pull: _Pull, stream: str, page: Page) -> None:
    store, source, now = pull.store, pull.source.name, pull.now()
    rows, deletes = [], list(page.deleted_ids) + _replaced_by_window(store, source, stream, page)
    for record in page.records:
        if getattr(record, "deleted", False):
            deletes.append(record.primary_key)
            continue
        raw = page.raw.get(record.primary_key)
        rows.append(RecordRow(record_id=record.primary_key, data=record.to_json(),
                              updated_at=getattr(record, "updated_at", None), raw=dict(raw) if raw else None))
    state = page.state.to_json() if page.state is not None else {}
    store.records.commit_page(source, stream, rows, deletes, state, now=now, run_id=pull.run_id)


def _replaced_by_window(store: Store, source: str, stream: str, page: Page) -> list[str]:
    """A page that re-aggregates a window of days (Mixpanel's late-event lookback) replaces those days whole:
    stored day rows in the window that the page no longer holds are deleted with it, in the same transaction.
    Day rows are keyed `<kind>:<key>:<YYYY-MM-DD>`."""
    extra = page.state.extra if page.state is not None else {}
    first, last = extra.get("window_first_day"), extra.get("window_last_day")
    if not isinstance(first, str) or not isinstance(last, str):
        return []
    kept = {r.primary_key for r in page.records}
    return [rid for rid in store.records.live_ids(source, stream)
            if first <= rid.rsplit(":", 1)[-1] <= last and rid not in kept]


def _kind(exc: HealthsyncError) -> str:
    if isinstance(exc, AuthError):
        return "auth"
    if isinstance(exc, QuotaExhaustedError):
        return "quota"
    return "retryable" if isinstance(exc, RetryableError) else "fatal"
