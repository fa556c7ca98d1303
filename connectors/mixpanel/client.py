"""mixpanel-utils, pointed and guarded: one attempt per call (our retry policy owns retries), paced, and its
hidden failures — swallowed 4xx, bare `BaseException` after 5xx — turned into our error tree.

mixpanel-utils never tells the caller the HTTP status: a 4xx makes `request()` log it and return None, so the
caller later trips over None; a 5xx or transport failure ends in a bare `BaseException`. It does log the
status ("HTTP Error Code: 401") on its class logger, so while one of our calls runs, a logging filter reads
the status and the error body back from those records (and keeps them off stderr: we report the failure
once ourselves). 401 → AuthError, 403 → AuthError (no access to the project), 429 → RateLimitedError,
5xx and transport errors → RetryableError. The filter also drops the SDK's DEBUG line that prints the
Authorization header, whoever calls the SDK.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import re
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

import tenacity
from mixpanel_utils import MixpanelUtils

from healthsync.connectors.base import classify_http
from healthsync.connectors.pacing import Pacer
from healthsync.errors import ConfigError, FatalError, HealthsyncError, RetryableError

SOURCE = "mixpanel"
RESIDENCY_HOSTS = {
    # residency: (raw export API, query API incl. engage)
    "us": ("https://data.mixpanel.com/api", "https://mixpanel.com/api"),
    "eu": ("https://data-eu.mixpanel.com/api", "https://eu.mixpanel.com/api"),
    "in": ("https://data-in.mixpanel.com/api", "https://in.mixpanel.com/api"),
}
_STATUS_LINE = re.compile(r"HTTP Error Code: (\d{3})")
_TRANSPORT_ERRORS = (
    http.client.HTTPException,  # IncompleteRead, RemoteDisconnected while streaming the body
    ConnectionError,
    socket.timeout,
    TimeoutError,
    OSError,
)

T = TypeVar("T")


@dataclass
class _Seen:
    """What the SDK logged during one of our calls."""

    status: int | None = None
    body: str = ""
    transport: bool = False


class _SdkLogReader(logging.Filter):
    """Reads swallowed HTTP statuses back from mixpanel-utils' log records, per thread."""

    def __init__(self) -> None:
        super().__init__()
        self._local = threading.local()

    @contextlib.contextmanager
    def watching(self) -> Iterator[_Seen]:
        seen = _Seen()
        previous = getattr(self._local, "seen", None)
        self._local.seen = seen
        try:
            yield seen
        finally:
            self._local.seen = previous

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("Request Headers"):
            return False  # carries the Basic credentials
        seen: _Seen | None = getattr(self._local, "seen", None)
        if seen is None:
            return True
        match = _STATUS_LINE.search(message)
        if match:
            seen.status = int(match.group(1))
        elif message.startswith("Response: "):
            seen.body = message.removeprefix("Response: ")[:500]
        elif message.startswith(("We failed to reach a server", "The read operation timed out", "Response data is incomplete")):
            seen.transport = True
        return False


_LOG_READER = _SdkLogReader()
_install_lock = threading.Lock()


def _install_log_reader() -> None:
    with _install_lock:
        if _LOG_READER not in MixpanelUtils.LOGGER.filters:
            MixpanelUtils.LOGGER.addFilter(_LOG_READER)


def build_client(  # noqa: PLR0913 (one keyword per SDK client setting)
    *,
    project_id: int,
    username: str,
    secret: str,
    residency: str = "us",
    base_url: str | None = None,
    timeout: int = 120,
) -> MixpanelUtils:
    """A MixpanelUtils for one project: a single attempt per request, on the residency's hosts or a sandbox."""
    if residency not in RESIDENCY_HOSTS:
        raise ConfigError(f"mixpanel.residency must be one of {', '.join(RESIDENCY_HOSTS)}, got {residency!r}")
    _install_log_reader()
    client = MixpanelUtils(
        secret,
        service_account_username=username,
        project_id=project_id,
        timeout=timeout,
        max_retries=1,  # one attempt: the SDK's immediate, backoff-free retries would multiply ours
        read_pool_size=1,
        residency=residency,
    )
    raw_api, query_api = RESIDENCY_HOSTS[residency]
    if base_url:
        parts = urlsplit(base_url)
        if parts.scheme != "http":
            raise ConfigError(
                f"sandbox.mixpanel_url must be plain http:// (got {base_url!r}): mixpanel-utils has no per-client "
                "TLS setting, and healthsync does not change the process-wide one"
            )
        root = base_url.rstrip("/")
        raw_api = query_api = f"{root}/api"
        client.import_api = root  # must differ from the others, or the SDK drops the /2.0 segment
    client.raw_api, client.formatted_api = raw_api, query_api
    return client


class MixpanelCaller:
    """Runs SDK calls paced and under the retry policy, translating what the SDK hides into our errors."""

    def __init__(self, pacer: Pacer, retry: tenacity.Retrying):
        self.pacer = pacer
        self._retry = retry

    def call(self, scope: str, fn: Callable[[], T]) -> T:
        return self._retry(self._once, scope, fn)

    def _once(self, scope: str, fn: Callable[[], T]) -> T:
        self.pacer.acquire(scope)
        with _LOG_READER.watching() as seen:
            try:
                result = fn()
            except (KeyboardInterrupt, SystemExit, GeneratorExit):
                raise
            except HealthsyncError:
                raise
            except BaseException as exc:  # noqa: BLE001 - the SDK raises a bare BaseException after 5xx
                raise self._translate(exc, seen) from None
        if result is None:
            raise self._from_seen(seen, "the SDK returned nothing")
        return result

    def _translate(self, exc: BaseException, seen: _Seen) -> HealthsyncError:
        if seen.status is not None or seen.transport:
            return self._from_seen(seen, type(exc).__name__)
        if isinstance(exc, json.JSONDecodeError):
            return RetryableError(f"{SOURCE}: an answer is not valid JSON")
        if isinstance(exc, _TRANSPORT_ERRORS):
            return RetryableError(f"{SOURCE}: transport error ({type(exc).__name__})")
        if type(exc) is BaseException:
            return RetryableError(f"{SOURCE}: the request failed (the SDK gave no reason)")
        return FatalError(f"{SOURCE}: unexpected {type(exc).__name__} from mixpanel-utils: {str(exc)[:200]}")

    def _from_seen(self, seen: _Seen, what: str) -> HealthsyncError:
        if seen.status is not None:
            if seen.status == 429:
                self.pacer.record_rate_limited(None)
            return classify_http(seen.status, {}, seen.body, source=SOURCE)
        if seen.transport:
            return RetryableError(f"{SOURCE}: could not reach the server or the answer broke off")
        return FatalError(f"{SOURCE}: {what}, and it logged no HTTP status")
