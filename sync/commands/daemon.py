"""`healthsync run`: the daemon (or one cycle with --once), one per store, with health and metrics."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import typer

from healthsync.errors import ConfigError
from healthsync.sync import pipeline
from healthsync.sync.daemon import CycleFn, Daemon, Schedule, utc_now
from healthsync.sync.lock import acquire_store_lock
from healthsync.sync.logs import configure_logging, get_logger

CycleBuilder = Callable[[Any, Any], CycleFn]  # build_cycle(settings, store) -> CycleFn

_log = get_logger(__name__)


def register(app: typer.Typer) -> None:
    app.command("run")(run)


def run(  # noqa: PLR0913 (one keyword per CLI option, declared for typer)
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None, "--config", "-c", help="Config file (default: $HEALTHSYNC_CONFIG, then ./healthsync.yaml)."
    ),
    once: bool = typer.Option(False, "--once", help="Run one cycle and exit (no health endpoint): 0 if it was ok or partial, 1 if it failed."),
    full: bool = typer.Option(False, "--full", help="With --once: a full resync instead of an incremental cycle."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Plan every CRM write but make none (whatever writeback.dry_run says)."
    ),
    interval_seconds: float | None = typer.Option(
        None, "--interval-seconds", hidden=True, min=0.1,
        help="Testing only: incremental cycles every N seconds (config allows whole minutes only).",
    ),
) -> None:
    """Run the daemon: an incremental cycle now, then on schedule; full resyncs on schedule.full_resync_cron.

    One daemon per store: a second `run` on the same store exits 1 at once, naming the process holding it.
    SIGTERM or Ctrl-C lets the running cycle commit its batch, then exits 0.
    """
    if full and not once:
        raise ConfigError("--full goes with --once; the daemon runs full resyncs on schedule.full_resync_cron")
    from healthsync.config.loader import load_config  # deferred: keeps `healthsync --help` fast

    settings = load_config(config)
    if dry_run:
        settings = settings.model_copy(update={"writeback": settings.writeback.model_copy(update={"dry_run": True})})
    _apply_log_settings(ctx, settings.observability)
    code = run_daemon(settings, once=once, full=full, interval_seconds=interval_seconds)
    if code:
        raise typer.Exit(code)


def run_daemon(settings: Any, *, once: bool = False, full: bool = False, build_cycle: CycleBuilder | None = None,
               interval_seconds: float | None = None) -> int:
    """Lock the store, open it, build the cycle, and serve (or run once). Returns the exit code.
    `interval_seconds` replaces the configured incremental schedule (end-to-end tests need seconds, not minutes)."""
    lock = acquire_store_lock(settings.store.resolved_url, now=utc_now())  # first: "already running" beats all
    try:
        builder = build_cycle or pipeline.build_cycle  # looked up now, so a test can put a fake in its place
        daemon, code = _open_and_run(settings, lock, builder, once=once, full=full, interval_seconds=interval_seconds)
        if daemon.overran:
            # A cycle thread is stuck mid-batch: exit without waiting for it, and without releasing the lock
            # first (the kernel / server drops it with the process, so no second daemon overlaps the stuck one).
            _flush_and_exit(code)
    finally:
        lock.release()
    return code


def _open_and_run(  # noqa: PLR0913 (the store lock and cycle builder, then the run mode's keyword-only flags)
    settings: Any, lock: Any, builder: CycleBuilder, *, once: bool, full: bool, interval_seconds: float | None = None
) -> tuple[Daemon, int]:
    from healthsync.sync.store import (
        Store,  # deferred: SQLAlchemy and Alembic load only for commands that need them
    )

    store = Store.open(settings.store.resolved_url)
    observability = None
    try:
        abandoned = store.runs.abandon_running(now=utc_now(), reason="the daemon stopped before this run finished")
        cycle_fn = builder(settings, store)
        if not once and settings.observability.enabled:
            observability = _start_observability(settings.observability, store)
        schedule = Schedule.from_settings(settings.schedule)
        if interval_seconds is not None:
            schedule = replace(schedule, incremental_every=timedelta(seconds=interval_seconds), incremental_cron=None)
        daemon = Daemon(cycle_fn, schedule, observability=observability, guard=lock.ensure_held)
        _log.info(
            "healthsync run",
            mode="once" if once else "daemon",
            pid=os.getpid(),
            store=store.url,
            lock=lock.description,
            dry_run=settings.writeback.dry_run,
            abandoned_runs=abandoned,
        )
        return daemon, daemon.run_once(full=full) if once else daemon.serve()
    finally:
        if observability is not None:
            observability.stop()
        store.close()


def _start_observability(options: Any, store: Any) -> Any:
    from healthsync.sync.observability import Observability

    observability = Observability(host=options.host, port=options.port, source_statuses=store.runs.source_statuses)
    observability.metrics.seed(store.runs.source_statuses())
    return observability.start()


def _apply_log_settings(ctx: typer.Context, options: Any) -> None:
    """observability.log_level / log_format apply unless --log-level / --log-format were given."""
    root = ctx.find_root()
    explicit = {}
    for name in ("log_level", "log_format"):
        source = root.get_parameter_source(name)  # an enum of Typer's vendored click: compare by name
        explicit[name] = source is not None and source.name != "DEFAULT"
    level = root.params.get("log_level", "INFO") if explicit["log_level"] else options.log_level
    fmt = root.params.get("log_format", "auto") if explicit["log_format"] else options.log_format
    configure_logging(level=level, fmt=fmt)


def _flush_and_exit(code: int) -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
