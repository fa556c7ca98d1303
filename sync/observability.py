"""The daemon's health endpoint and Prometheus metrics, served on a loopback port (127.0.0.1:9464 by default).

    GET /healthz   JSON: overall status, the last cycle, and per source its last success, last error and
                   whether it is paused (the store's source status merged with what the last cycle saw).
                   200 while starting and after an ok/partial cycle; 503 when the last cycle failed outright.
    GET /metrics   Prometheus text format, from a registry of our own (never the process-global one).

Loopback only: the endpoints have no authentication, so exposing them is a deliberate act (a reverse proxy
or a sidecar), not a config default. Port 0 binds an ephemeral port; `Observability.port` says which.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from healthsync.errors import ConfigError, FatalError
from healthsync.redaction import redact
from healthsync.sync.cycle import CYCLE_STATUSES, CycleReport
from healthsync.sync.logs import get_logger
from healthsync.sync.store.rows import SourceStatus

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9464  # the port Prometheus exporters of OpenTelemetry use; nothing else of ours listens
CYCLE_KINDS = ("incremental", "full")
# Cycles take from seconds (nothing changed) to an hour (a first full resync of a big org).
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)

_log = get_logger(__name__)


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment is not None else None


def _newest(*moments: datetime | None) -> datetime | None:
    known = [m for m in moments if m is not None]
    return max(known) if known else None


# --- metrics -----------------------------------------------------------------------------------------


class Metrics:
    """Every metric the daemon exports, registered in one CollectorRegistry."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.cycles = Counter("healthsync_cycles", "Cycles finished, by kind and status.", ["kind", "status"], registry=r)
        self.cycle_duration = Histogram(
            "healthsync_cycle_duration_seconds", "How long cycles took.", ["kind"], buckets=DURATION_BUCKETS, registry=r
        )
        self.cycle_running = Gauge("healthsync_cycle_running", "1 while a cycle is running.", registry=r)
        self.last_cycle = Gauge(
            "healthsync_last_cycle_timestamp_seconds", "When the last cycle finished (unix time).", registry=r
        )
        self.last_good_cycle = Gauge(
            "healthsync_last_successful_cycle_timestamp_seconds",
            "When the last ok or partial cycle finished (unix time).",
            registry=r,
        )
        self.records = Counter("healthsync_records_pulled", "Records pulled, by source.", ["source"], registry=r)
        self.writes = Counter("healthsync_writes", "Writes made to the CRM, by kind.", ["kind"], registry=r)
        self.api_calls = Counter("healthsync_api_calls", "API calls made, by source.", ["source"], registry=r)
        self.rate_limited = Counter(
            "healthsync_api_rate_limited", "Responses that said slow down (HTTP 429), by source.", ["source"], registry=r
        )
        self.source_up = Gauge("healthsync_source_up", "1 if the source worked in the last cycle.", ["source"], registry=r)
        self.source_paused = Gauge("healthsync_source_paused", "1 while the source is paused.", ["source"], registry=r)
        self.source_last_success = Gauge(
            "healthsync_source_last_success_timestamp_seconds",
            "When the source last worked (unix time).",
            ["source"],
            registry=r,
        )
        self.accounts = Gauge("healthsync_accounts", "Accounts per health band, as of the last scoring.", ["band"], registry=r)
        for kind in CYCLE_KINDS:  # series that exist from the start make rate() and absent() alerts simpler
            self.cycle_duration.labels(kind=kind)
            for status in CYCLE_STATUSES:
                self.cycles.labels(kind=kind, status=status)

    def observe(self, outcome: CycleReport) -> None:
        finished = outcome.finished_at.timestamp()
        self.cycles.labels(kind=outcome.kind, status=outcome.status).inc()
        self.cycle_duration.labels(kind=outcome.kind).observe(outcome.duration_s)
        self.last_cycle.set(finished)
        if outcome.status != "failed":
            self.last_good_cycle.set(finished)
        for name, source in outcome.sources.items():
            self.records.labels(source=name).inc(source.records)
            self.api_calls.labels(source=name).inc(source.api.calls)
            self.rate_limited.labels(source=name).inc(source.api.rate_limited)
            self.source_up.labels(source=name).set(1 if source.ok else 0)
            self.source_paused.labels(source=name).set(1 if source.paused else 0)
            if source.ok:
                self.source_last_success.labels(source=name).set(finished)
        for kind, count in outcome.writes.items():
            self.writes.labels(kind=kind).inc(count)
        if outcome.accounts_by_band:  # a cycle that scored nothing leaves the last distribution standing
            self.accounts.clear()
            for band, count in outcome.accounts_by_band.items():
                self.accounts.labels(band=band).set(count)

    def seed(self, statuses: Iterable[SourceStatus]) -> None:
        """Start from what the store remembers, so a restart doesn't reset "last success" to never."""
        for status in statuses:
            self.source_paused.labels(source=status.source).set(1 if status.paused else 0)
            if status.last_success_at is not None:
                self.source_last_success.labels(source=status.source).set(status.last_success_at.timestamp())

    def render(self) -> bytes:
        return generate_latest(self.registry)


# --- health ------------------------------------------------------------------------------------------


@dataclass
class _SourceSeen:
    """What the daemon's own cycles saw of one source (the store's row may be newer, or older)."""

    ok: bool
    paused: bool
    error: str | None
    last_success_at: datetime | None
    last_error_at: datetime | None
    seen_at: datetime


class HealthState:
    """The last cycle and every source's state, safe to read from the HTTP threads while cycles run."""

    def __init__(self, source_statuses: Callable[[], Iterable[SourceStatus]] | None = None):
        self._lock = threading.Lock()
        self._statuses = source_statuses
        self._last: CycleReport | None = None
        self._running: str | None = None
        self._counts = dict.fromkeys(CYCLE_STATUSES, 0)
        self._sources: dict[str, _SourceSeen] = {}

    def started(self, full: bool) -> None:
        with self._lock:
            self._running = "full" if full else "incremental"

    def finished(self, outcome: CycleReport) -> None:
        at = outcome.finished_at
        with self._lock:
            self._running = None
            self._last = outcome
            self._counts[outcome.status] += 1
            for name, source in outcome.sources.items():
                before = self._sources.get(name)
                self._sources[name] = _SourceSeen(
                    ok=source.ok,
                    paused=source.paused,
                    error=source.error or (before.error if before else None),
                    last_success_at=at if source.ok else (before.last_success_at if before else None),
                    last_error_at=(before.last_error_at if before else None) if source.ok else at,
                    seen_at=at,
                )

    def snapshot(self) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON body) for /healthz; the body is redacted whole, as it leaves the process."""
        stored, store_problem = self._read_store()
        with self._lock:
            last, running, counts = self._last, self._running, dict(self._counts)
            seen = dict(self._sources)
        status = last.status if last is not None else "starting"
        body: dict[str, Any] = {
            "status": status,
            "cycle_running": running,
            "last_cycle": _cycle_json(last) if last is not None else None,
            "cycles": counts,
            "sources": _merge_sources(stored, seen),
        }
        if self._statuses is not None:
            body["store"] = store_problem or "ok"
        code = HTTPStatus.SERVICE_UNAVAILABLE if status == "failed" else HTTPStatus.OK
        return int(code), redact(body)

    def _read_store(self) -> tuple[dict[str, SourceStatus], str | None]:
        if self._statuses is None:
            return {}, None
        try:
            return {s.source: s for s in self._statuses()}, None
        except Exception as exc:  # health must answer even when the database does not
            return {}, "unavailable: " + f"{type(exc).__name__}: {exc}".splitlines()[0]


def _cycle_json(outcome: CycleReport) -> dict[str, Any]:
    return {
        "run_id": outcome.run_id,
        "kind": outcome.kind,
        "status": outcome.status,
        "started_at": _iso(outcome.as_of),
        "finished_at": _iso(outcome.finished_at),
        "duration_s": outcome.duration_s,
        "error": outcome.error,
        "writes": dict(outcome.writes),
        "accounts_by_band": dict(outcome.accounts_by_band),
    }


def _merge_sources(stored: dict[str, SourceStatus], seen: dict[str, _SourceSeen]) -> dict[str, Any]:
    """Per source: timestamps are the newest either side knows; paused/error come from the newer side."""
    merged: dict[str, Any] = {}
    for name in sorted(set(stored) | set(seen)):
        row, mine = stored.get(name), seen.get(name)
        row_is_newer = row is not None and (mine is None or row.updated_at > mine.seen_at)
        paused = row.paused if row_is_newer and row is not None else bool(mine and mine.paused)
        last_error_at = _newest(row.last_error_at if row else None, mine.last_error_at if mine else None)
        last_error = _latest_error(row, mine)
        merged[name] = {
            "ok": mine.ok if mine is not None else None,  # None: no cycle of this process has seen it yet
            "paused": paused,
            "paused_reason": (row.paused_reason or None) if paused and row else None,
            "last_success_at": _iso(_newest(row.last_success_at if row else None, mine.last_success_at if mine else None)),
            "last_error_at": _iso(last_error_at),
            "last_error": last_error or None,
        }
    return merged


def _latest_error(row: SourceStatus | None, mine: _SourceSeen | None) -> str | None:
    mine_at = mine.last_error_at if mine else None
    row_at = row.last_error_at if row else None
    if mine is not None and mine_at is not None and (row_at is None or mine_at > row_at):
        return mine.error
    return row.last_error if row is not None else None


# --- the HTTP side -----------------------------------------------------------------------------------


def check_loopback(host: str) -> None:
    """ConfigError unless `host` is a loopback address: the endpoints are unauthenticated."""
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(
            f"observability.host {host!r} is not a loopback address: the health and metrics endpoints have no "
            f"authentication, so they listen on 127.0.0.1 (or ::1) only; expose them through a reverse proxy"
        )


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a slow scraper never holds up shutdown
    allow_reuse_address = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class Observability:
    """Health + metrics for one daemon: a CycleObserver, and an HTTP server in a background thread."""

    def __init__(
        self,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        source_statuses: Callable[[], Iterable[SourceStatus]] | None = None,
    ):
        check_loopback(host)
        self.host = host
        self.requested_port = port
        self.metrics = Metrics()
        self.health = HealthState(source_statuses)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def registry(self) -> CollectorRegistry:
        return self.metrics.registry

    # CycleObserver
    def cycle_started(self, full: bool, as_of: datetime) -> None:
        self.health.started(full)
        self.metrics.cycle_running.set(1)

    def cycle_finished(self, outcome: CycleReport) -> None:
        self.metrics.cycle_running.set(0)
        self.metrics.observe(outcome)
        self.health.finished(outcome)

    # HTTP
    @property
    def port(self) -> int:
        """The bound port (the ephemeral one when started with port 0)."""
        if self._server is None:
            raise RuntimeError("observability server is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> Observability:
        server_class = _Server6 if ":" in self.host else _Server
        try:
            server = server_class((self.host, self.requested_port), _handler_for(self))
        except OSError as exc:
            raise FatalError(
                f"cannot serve health and metrics on {self.host}:{self.requested_port}: {exc.strerror or exc}; "
                f"set observability.port to a free port, or observability.enabled: false"
            ) from None
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="healthsync-observability", daemon=True
        )
        self._thread.start()
        _log.info("observability listening", healthz=f"{self.url}/healthz", metrics=f"{self.url}/metrics")
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Observability:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _handler_for(observability: Observability) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "healthsync"
        sys_version = ""

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                code, body = observability.health.snapshot()
                self._send(code, "application/json", json.dumps(body, indent=None).encode())
            elif path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, observability.metrics.render())
            else:
                self._send(404, "text/plain; charset=utf-8", b"not found: try /healthz or /metrics\n")

        def _send(self, code: int, content_type: str, payload: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            _log.debug("observability request", request=format % args)

    return Handler
