"""Shared machinery of the four emulators: one threaded loopback server (TLS + plain HTTP), a clock that
tests can move, per-endpoint call counts, scriptable fault injection and sliding-window rate limits.

An emulator subclasses `Emulator`, declares its path prefixes and a werkzeug `Map` of rules whose
endpoints name methods on itself, and returns werkzeug `Response`s. Everything else lives here, so that
the four emulators behave alike under faults and limits.

Control plane (plain JSON over the same ports, under `/__sandbox/`):
    POST /__sandbox/faults      {"path": regex, "method": "GET"?, "kind": ..., "times": N, ...}  add a fault
    DELETE /__sandbox/faults    clear all faults
    GET  /__sandbox/calls       {"emulator endpoint": count, ..., "by_endpoint", "by_object", "by_client",
                                "unrouted", "total", "rows"}   (?client=NAME: only that client's calls)
    POST /__sandbox/calls/reset
A caller tags its requests with `X-Sandbox-Client: NAME` (untagged ones count as client "untagged").
    POST /__sandbox/clock       {"advance_seconds": S}
Tests in the same process use the `SandboxServer` handle directly (server.faults.add(...), server.calls...).
"""

from __future__ import annotations

import json
import logging
import re
import socket
import ssl
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import trustme
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import Map
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

# ----------------------------------------------------------------------------------------------- clock


class SandboxClock:
    """Wall-clock time shifted by an offset that tests (and the demo's "a week passes") can advance."""

    def __init__(self, start: datetime | None = None):
        real_now = datetime.now(UTC)
        self._offset = (start - real_now) if start is not None else timedelta(0)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return datetime.now(UTC) + self._offset

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._offset += delta


# ----------------------------------------------------------------------------------------------- calls


UNROUTED = "unrouted"  # the endpoint name of a request no rule of the emulator matched (its 404/405)
UNTAGGED = "untagged"  # the client name of a request without an X-Sandbox-Client header
CLIENT_HEADER = "X-Sandbox-Client"


@dataclass(frozen=True)
class CallKey:
    """One cell of the call counts: which emulator, which endpoint, which object type, which client."""

    emulator: str
    endpoint: str
    object_type: str | None = None
    client: str = UNTAGGED


class CallLog:
    """Counts calls per emulator, endpoint, object type (sObject / HubSpot object type) and client, so tests
    and benchmarks can check API efficiency and attribute every call, the unrouted (404) ones included."""

    def __init__(self) -> None:
        self._counts: Counter[CallKey] = Counter()
        self._lock = threading.Lock()

    def record(self, emulator: str, endpoint: str, object_type: str | None = None, client: str | None = None) -> None:
        with self._lock:
            self._counts[CallKey(emulator, endpoint, object_type, client or UNTAGGED)] += 1

    def snapshot(self, client: str | None = None) -> dict[str, int]:
        """`{"<emulator> <endpoint>": count}` (unrouted requests under `"<emulator> unrouted"`)."""
        out: Counter[str] = Counter()
        for key, n in self._cells(client):
            out[f"{key.emulator} {key.endpoint}"] += n
        return dict(out)

    def detail(self, client: str | None = None) -> dict[str, Any]:
        """Every split a benchmark needs: per endpoint, per object type, per client, unrouted, and the rows."""
        by_object: dict[str, Counter[str]] = {}
        by_client: dict[str, Counter[str]] = {}
        unrouted: Counter[str] = Counter()
        rows = []
        for key, n in self._cells(client):
            label = f"{key.emulator} {key.endpoint}"
            if key.object_type is not None:
                by_object.setdefault(key.emulator, Counter())[key.object_type] += n
            by_client.setdefault(key.client, Counter())[label] += n
            if key.endpoint == UNROUTED:
                unrouted[key.emulator] += n
            rows.append({"emulator": key.emulator, "endpoint": key.endpoint, "object": key.object_type,
                         "client": key.client, "count": n})
        return {"by_endpoint": self.snapshot(client), "by_object": {k: dict(v) for k, v in by_object.items()},
                "by_client": {k: dict(v) for k, v in by_client.items()}, "unrouted": dict(unrouted),
                "total": sum(r["count"] for r in rows), "rows": rows}

    def _cells(self, client: str | None) -> list[tuple[CallKey, int]]:
        with self._lock:
            return sorted(((k, n) for k, n in self._counts.items() if client is None or k.client == client),
                          key=lambda kv: (kv[0].emulator, kv[0].endpoint, kv[0].object_type or "", kv[0].client))

    def total(self, emulator: str | None = None) -> int:
        with self._lock:
            return sum(n for k, n in self._counts.items() if emulator is None or k.emulator == emulator)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


def client_of(request: Request) -> str:
    """The caller's self-chosen name (`X-Sandbox-Client`), so concurrent clients are counted apart."""
    return (request.headers.get(CLIENT_HEADER) or "").strip()[:64] or UNTAGGED


# ----------------------------------------------------------------------------------------------- faults

FAULT_KINDS = (
    "status",  # answer `status` with `headers`/`body` (e.g. 429 with or without Retry-After, 500, 503)
    "slow",  # sleep `delay` seconds, then answer normally
    "reset",  # close the connection without an answer
    "expired_session",  # the emulator's own "token expired" answer (Salesforce INVALID_SESSION_ID, ...)
    "malformed",  # 200 with a body that is not valid JSON
    "odd_record",  # answer normally; the emulator corrupts one record of the page (missing/odd fields)
)


@dataclass
class Fault:
    path: str  # regex searched in the request path (with query string)
    kind: str = "status"
    times: int = 1
    method: str | None = None
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    delay: float = 0.0
    emulator: str | None = None

    def matches(self, emulator: str, method: str, path: str) -> bool:
        if self.emulator and self.emulator != emulator:
            return False
        if self.method and self.method.upper() != method.upper():
            return False
        return re.search(self.path, path) is not None


class FaultInjector:
    """The next N requests matching a rule get a scripted failure instead of (or besides) the real answer."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self.fired: Counter[str] = Counter()

    def add(self, path: str, kind: str = "status", times: int = 1, **kw: Any) -> Fault:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
        fault = Fault(path=path, kind=kind, times=times, **kw)
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, emulator: str, method: str, path: str) -> Fault | None:
        """Consume one firing of the first matching fault, if any."""
        with self._lock:
            for fault in self._faults:
                if fault.times > 0 and fault.matches(emulator, method, path):
                    fault.times -= 1
                    self.fired[fault.kind] += 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def pending(self) -> int:
        with self._lock:
            return sum(f.times for f in self._faults)


class ConnectionResetFault(Exception):
    """Raised inside the WSGI app to make the server drop the connection without answering."""


# ----------------------------------------------------------------------------------------------- limits


class SlidingWindowLimit:
    """At most `limit` requests per `window` seconds (the window shrinks by the server's time scale)."""

    def __init__(self, limit: int, window: float, time_scale: float = 1.0):
        self.limit = limit
        self.window = window
        self.time_scale = time_scale
        self._hits: deque[float] = deque()
        self._lock = threading.Lock()

    @property
    def effective_window(self) -> float:
        return self.window / self.time_scale

    def hit(self) -> tuple[bool, int, float]:
        """Record a request. Returns (allowed, remaining, seconds until a slot frees up)."""
        now = time.monotonic()
        with self._lock:
            horizon = now - self.effective_window
            while self._hits and self._hits[0] <= horizon:
                self._hits.popleft()
            if len(self._hits) >= self.limit:
                wait = self._hits[0] + self.effective_window - now
                return False, 0, max(wait, 0.0)
            self._hits.append(now)
            return True, self.limit - len(self._hits), 0.0


# ----------------------------------------------------------------------------------------------- emulator base


class Emulator:
    """Base of one API emulator. Subclasses set `name`, `prefixes`, `url_map` and endpoint methods
    `def on_<endpoint>(self, request, **values) -> Response`."""

    name = "emulator"
    prefixes: tuple[str, ...] = ()
    url_map: Map = Map([])

    def __init__(self, clock: SandboxClock, calls: CallLog, faults: FaultInjector, time_scale: float = 1.0):
        self.clock = clock
        self.calls = calls
        self.faults = faults
        self.time_scale = time_scale
        self.lock = threading.RLock()  # guards this emulator's in-memory state
        self.base_urls: dict[str, str] = {}  # scheme -> "scheme://127.0.0.1:port", set by the server

    # Hooks a subclass may override -------------------------------------------------------------------
    def check_auth(self, request: Request) -> Response | None:
        """Return an error Response when the request is not authenticated, else None."""
        return None

    def rate_limit(self, request: Request, endpoint: str) -> Response | None:
        """Return a 429 Response when over a limit, else None (and optionally set limit headers later)."""
        return None

    def decorate(self, request: Request, response: Response, endpoint: str) -> Response:
        """Add per-API headers (rate-limit info) to every answer."""
        return response

    def expired_session_response(self) -> Response:
        return json_response({"error": "expired session"}, 401)

    def error_response(self, status: int, message: str) -> Response:
        return json_response({"error": message}, status)

    # Dispatch ---------------------------------------------------------------------------------------
    def handles(self, path: str) -> bool:
        return any(path.startswith(p) for p in self.prefixes)

    def call_object(self, request: Request, endpoint: str, values: dict[str, Any]) -> str | None:
        """The object type a call concerns, for the per-object counts (an sObject, a HubSpot object type)."""
        found = values.get("object_type") or values.get("sobject")
        return str(found) if found else None

    def claims(self, request: Request) -> bool:
        """Whether a request no emulator's prefix matched is meant for this API (e.g. by its credentials), so
        its 404 comes in this API's shape and is counted here."""
        return False

    def unrouted(self, request: Request, status: int = 404, message: str | None = None) -> Response:
        """Count and answer a request no rule matched, in this API's error shape."""
        self.calls.record(self.name, UNROUTED, None, client_of(request))
        return self.error_response(status, message or f"no such resource: {request.method} {request.path}")

    def dispatch(self, request: Request) -> Response:
        adapter = self.url_map.bind_to_environ(request.environ)
        try:
            endpoint, values = adapter.match()
        except NotFound:
            return self.unrouted(request)
        except HTTPException as exc:  # 405 and friends
            return self.unrouted(request, exc.code or 400, exc.description or "bad request")
        self.calls.record(self.name, endpoint, self.call_object(request, endpoint, values), client_of(request))
        full_path = request.full_path.rstrip("?")
        fault = self.faults.take(self.name, request.method, full_path)
        if fault is not None and fault.kind != "odd_record":
            injected = self._apply_fault(fault)
            if injected is not None:
                return injected
        denied = self.check_auth(request) or self.rate_limit(request, endpoint)
        if denied is not None:
            return self.decorate(request, denied, endpoint)
        request.environ["sandbox.odd_record"] = fault is not None and fault.kind == "odd_record"
        handler: Callable[..., Response] = getattr(self, f"on_{endpoint}")
        response = handler(request, **values)
        return self.decorate(request, response, endpoint)

    def _apply_fault(self, fault: Fault) -> Response | None:
        if fault.kind == "slow":
            time.sleep(fault.delay)
            return None
        if fault.kind == "reset":
            raise ConnectionResetFault()
        if fault.kind == "expired_session":
            return self.expired_session_response()
        if fault.kind == "malformed":
            return Response('{"records": [ {"Id": "trunc', status=200, content_type="application/json")
        body = fault.body if fault.body is not None else json.dumps({"error": f"injected {fault.status}"})
        return Response(body, status=fault.status, headers=fault.headers, content_type="application/json")

    def base_url(self, request: Request) -> str:
        """Absolute base of the port this request came in on (for self-referencing URLs)."""
        return f"{request.scheme}://{request.host}"


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(payload, default=_json_default), status=status, headers=headers,
                    content_type="application/json;charset=UTF-8")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def read_json(request: Request) -> Any:
    """The request's JSON body, or None when it has none or it does not parse."""
    data = request.get_data(cache=True)
    if not data:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return None


# ----------------------------------------------------------------------------------------------- server


class SandboxServer:
    """Serves every emulator on two loopback ports: TLS (Salesforce needs it) and plain HTTP."""

    def __init__(  # noqa: PLR0913 (the emulators, then keyword-only server options, each defaulted)
        self,
        emulators: Iterable[Callable[..., Emulator]] = (),
        *,
        clock: SandboxClock | None = None,
        time_scale: float = 1.0,
        host: str = "127.0.0.1",
        tls_port: int = 0,
        http_port: int = 0,
        workdir: str | Path | None = None,
    ):
        self.clock = clock or SandboxClock()
        self.calls = CallLog()
        self.faults = FaultInjector()
        self.time_scale = time_scale
        self.host = host
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="healthsync-sandbox-")
        self.workdir = Path(workdir or self._tmp.name)  # type: ignore[union-attr]
        self.emulators: list[Emulator] = [
            factory(clock=self.clock, calls=self.calls, faults=self.faults, time_scale=time_scale)
            for factory in emulators
        ]
        self._ca = trustme.CA()
        self.ca_path = self.workdir / "sandbox-ca.pem"
        self._ca.cert_pem.write_to_path(str(self.ca_path))
        self._servers: list[BaseWSGIServer] = []
        self._threads: list[threading.Thread] = []
        self._tls_port_req, self._http_port_req = tls_port, http_port
        self.tls_port = 0
        self.http_port = 0

    # ---------------------------------------------------------------------------------------------
    def add(self, emulator: Emulator) -> Emulator:
        self.emulators.append(emulator)
        return emulator

    def emulator(self, name: str) -> Emulator:
        for emu in self.emulators:
            if emu.name == name:
                return emu
        raise KeyError(name)

    @property
    def https_url(self) -> str:
        return f"https://{self.host}:{self.tls_port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    def start(self) -> SandboxServer:
        # werkzeug logs every request at INFO; a sandbox serving thousands of SDK calls would drown the output.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        leaf = self._ca.issue_cert("127.0.0.1", "localhost")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        leaf.configure_cert(ctx)
        tls = make_server(self.host, self._tls_port_req, self.wsgi_app, threaded=True, ssl_context=ctx)
        plain = make_server(self.host, self._http_port_req, self.wsgi_app, threaded=True)
        for srv in (tls, plain):
            srv.daemon_threads = True
            srv.handle_error = lambda *a, **k: None  # resets are expected in fault tests
            thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
            thread.start()
            self._servers.append(srv)
            self._threads.append(thread)
        self.tls_port = tls.server_port
        self.http_port = plain.server_port
        for emu in self.emulators:
            emu.base_urls = {"https": self.https_url, "http": self.http_url}
        return self

    def stop(self) -> None:
        for srv in self._servers:
            srv.shutdown()
            srv.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers.clear()
        self._threads.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------------------------------------
    def wsgi_app(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        request = Request(environ)
        try:
            response = self._route(request)
        except ConnectionResetFault:
            _drop_connection(environ)
            response = Response(b"", status=500)  # never reaches the client
        return response(environ, start_response)

    def _route(self, request: Request) -> Response:
        if request.path.startswith("/__sandbox/"):
            return self._control(request)
        for emu in self.emulators:
            if emu.handles(request.path):
                return emu.dispatch(request)
        for emu in self.emulators:
            if emu.claims(request):
                return emu.unrouted(request)
        self.calls.record("sandbox", UNROUTED, None, client_of(request))
        return json_response({"error": f"no emulator serves {request.path}"}, 404)

    def calls_report(self, client: str | None = None) -> dict[str, Any]:
        """The flat `"<emulator> <endpoint>": count` keys current callers read, plus the splits (their keys
        have no space, so they cannot collide with an endpoint key)."""
        detail = self.calls.detail(client)
        return {**detail["by_endpoint"], **detail}

    def _control(self, request: Request) -> Response:
        path, method = request.path, request.method
        if path == "/__sandbox/faults" and method == "POST":
            spec = read_json(request) or {}
            try:
                self.faults.add(**spec)
            except (TypeError, ValueError) as exc:
                return json_response({"error": str(exc)}, 400)
            return json_response({"ok": True, "pending": self.faults.pending()}, 201)
        if path == "/__sandbox/faults" and method == "DELETE":
            self.faults.clear()
            return json_response({"ok": True})
        if path == "/__sandbox/calls" and method == "GET":
            return json_response(self.calls_report(request.args.get("client") or None))
        if path == "/__sandbox/calls/reset" and method == "POST":
            self.calls.reset()
            return json_response({"ok": True})
        if path == "/__sandbox/clock" and method == "POST":
            spec = read_json(request) or {}
            self.clock.advance(timedelta(seconds=float(spec.get("advance_seconds", 0))))
            return json_response({"now": self.clock.now().isoformat()})
        if path == "/__sandbox/clock" and method == "GET":
            return json_response({"now": self.clock.now().isoformat()})
        return json_response({"error": "unknown control endpoint"}, 404)


def _drop_connection(environ: dict) -> None:
    """Close the client socket abruptly (RST) so the client sees a connection reset."""
    sock = environ.get("werkzeug.socket")
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        try:
            sock.close()
        except OSError:
            pass
