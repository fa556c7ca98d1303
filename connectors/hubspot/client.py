"""One HubSpot portal connection: the SDK client built from Settings, its token, the pacer, retries and error mapping.

Every SDK call of the HubSpot connector goes through `HubSpotClient.call`, which

* waits for the pacer (the portal's 10-second burst window, plus the search window for search calls),
* attaches a valid access token (private-app token, or an OAuth access token traded for the refresh token
  and refreshed before it expires and once on a 401),
* calls the `*_with_http_info` variant so the answer's status (200 vs 207) and rate-limit headers are seen,
* feeds the `X-HubSpot-RateLimit-*` headers (and 429s) into the pacer,
* and turns every SDK / urllib3 exception into our error tree, retried by the one tenacity policy.

The SDK's own urllib3 retries are switched off (`NO_SDK_RETRY`), so attempts are counted in exactly one place.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import tenacity
import urllib3
from hubspot import HubSpot

from healthsync.config.settings import HubSpotOAuth, HubSpotPrivateAppAuth, Settings
from healthsync.connectors.base import classify_http, safe_reason
from healthsync.connectors.pacing import SEARCH, Pacer, PacerConfig, PacerRegistry, hubspot_pacing
from healthsync.connectors.retry import retry_policy
from healthsync.errors import AuthError, ConfigError, FatalError, HealthsyncError, RetryableError

NO_SDK_RETRY = urllib3.util.Retry(total=0, respect_retry_after_header=False, raise_on_status=False)
DEFAULT_TIMEOUT = (10.0, 120.0)  # (connect, read) seconds per request
REFRESH_MARGIN_SECONDS = 120  # trade the refresh token this long before the access token expires
SOURCE = "hubspot"

# Where each API object lives in the SDK: name -> (attribute path from the HubSpot client).
_API_PATHS: dict[str, tuple[str, ...]] = {
    "objects.basic": ("crm", "objects", "basic_api"),
    "objects.batch": ("crm", "objects", "batch_api"),
    "objects.search": ("crm", "objects", "search_api"),
    "associations.batch": ("crm", "associations", "v4", "batch_api"),
    "owners": ("crm", "owners", "owners_api"),
    "properties.core": ("crm", "properties", "core_api"),
    "properties.groups": ("crm", "properties", "groups_api"),
    "oauth.tokens": ("oauth", "tokens_api"),
}


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer: the SDK model (None for an accepted error status), its status, headers and error body."""

    data: Any
    status: int
    headers: Mapping[str, str]
    body: str = ""


def pacing_config(settings: Settings) -> PacerConfig:
    """The portal's pacing from `limits.hubspot` (burst per 10 s, search per second)."""
    limits = settings.limits.hubspot
    return hubspot_pacing(burst=limits.requests_per_10s, search_per_second=limits.search_per_second)


def portal_key(settings: Settings) -> str:
    """Which portal's buckets a pacer guards: the API host plus the app identity (never a secret)."""
    host = sandbox_host(settings) or "api.hubapi.com"
    auth = _auth(settings)
    who = f"oauth:{auth.client_id}" if isinstance(auth, HubSpotOAuth) else "private-app"
    return f"{host}/{who}"


def sandbox_host(settings: Settings) -> str | None:
    sandbox = settings.sandbox
    if sandbox is None or sandbox.hubspot_url is None:
        return None
    return str(sandbox.hubspot_url).rstrip("/")


def auth_fix_hint(auth: HubSpotPrivateAppAuth | HubSpotOAuth) -> str:
    if isinstance(auth, HubSpotOAuth):
        return ("check crm.hubspot.auth.client_id, client_secret and refresh_token (re-install the app "
                "to get a new refresh token if it was revoked)")
    return "check crm.hubspot.auth.access_token (Settings → Integrations → Private apps → the app's access token)"


def _auth(settings: Settings) -> HubSpotPrivateAppAuth | HubSpotOAuth:
    if settings.crm.hubspot is None:
        raise ConfigError("crm.hubspot is missing: the HubSpot connector needs its auth settings")
    return settings.crm.hubspot.auth


class HubSpotClient:
    """A paced, retried, error-mapped HubSpot SDK client for one portal; thread-safe."""

    def __init__(  # noqa: PLR0913 (auth and pacer, then keyword-only transport settings and test seams, each defaulted)
        self,
        auth: HubSpotPrivateAppAuth | HubSpotOAuth,
        pacer: Pacer,
        *,
        host: str | None = None,
        ca_file: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        retry: tenacity.Retrying | None = None,
        clock: Callable[[], float] = time.monotonic,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    ):
        self.auth = auth
        self.pacer = pacer
        self.auth_hint = auth_fix_hint(auth)
        self._retry = retry or retry_policy(sleep=sleep)
        self._clock = clock
        self._timeout = timeout
        options: dict[str, Any] = {"retry": NO_SDK_RETRY}
        if host:
            options["host"] = host.rstrip("/")
            if host.startswith("https://") and ca_file:
                options["ssl_ca_cert"] = str(ca_file)
        self._oauth = isinstance(auth, HubSpotOAuth)
        token = None if self._oauth else auth.access_token.get_secret_value()  # type: ignore[union-attr]
        self._hs = HubSpot(access_token=token, **options)
        self._access_token: str | None = token
        self._expires_at = float("inf")
        self._refresh_token = auth.refresh_token.get_secret_value() if isinstance(auth, HubSpotOAuth) else None
        self._apis: dict[str, Any] = {}
        self._lock = threading.RLock()
        self.token_refreshes = 0

    @classmethod
    def from_settings(
        cls, settings: Settings, pacers: PacerRegistry, *, sleep: Callable[[float], None] = time.sleep,
        retry: tenacity.Retrying | None = None,
    ) -> HubSpotClient:
        auth = _auth(settings)
        pacer = pacers.pacer("hubspot", portal_key(settings), pacing_config(settings))
        ca_file = settings.sandbox.ca_file if settings.sandbox else None
        return cls(auth, pacer, host=sandbox_host(settings), ca_file=str(ca_file) if ca_file else None,
                   sleep=sleep, retry=retry)

    # ------------------------------------------------------------------------------------------ calls
    def api(self, name: str) -> Any:
        """The cached SDK API object (each fresh attribute access would build a new connection pool)."""
        with self._lock:
            cached = self._apis.get(name)
            if cached is None:
                cached = self._hs
                for attribute in _API_PATHS[name]:
                    cached = getattr(cached, attribute)
                self._apis[name] = cached
            return cached

    def call(  # noqa: PLR0913 (the SDK call's name and target plus keyword-only options; the SDK's own arguments pass through)
        self, what: str, api: str, method: str, *args: Any, search: bool = False,
        accept: Collection[int] = (), expect: str | None = None, **kwargs: Any,
    ) -> Answer:
        """`api.<method>_with_http_info(*args, **kwargs)` paced, authenticated and retried.

        Statuses in `accept` come back as an `Answer` with `data=None` and the error body instead of raising
        (409 "already exists", 404 "no such property"); every other failure raises one of our errors.
        `expect` names a field a 2xx model must have: when the SDK could not parse the body it builds an empty
        model instead of raising, and that (a truncated or garbled answer) is retried like a 5xx.
        """
        return self._retry(self.attempt, what, api, method, *args, search=search, accept=accept,
                           expect=expect, **kwargs)

    def attempt(  # noqa: PLR0913 (the SDK call's name and target plus keyword-only options; the SDK's own arguments pass through)
        self, what: str, api: str, method: str, *args: Any, search: bool = False,
        accept: Collection[int] = (), expect: str | None = None, **kwargs: Any,
    ) -> Answer:
        """One paced attempt (plus one immediate retry after refreshing an OAuth token on 401), not retried."""
        refreshed = False
        while True:
            token = self._valid_token()
            if search:
                self.pacer.acquire(SEARCH)
            else:
                self.pacer.acquire()
            try:
                data, status, headers = getattr(self.api(api), f"{method}_with_http_info")(
                    *args, _request_timeout=self._timeout, **kwargs)
            except Exception as exc:  # noqa: BLE001 - every SDK/transport failure is translated below
                status, headers, body = _error_parts(exc)
                if status and status >= 400:
                    self.pacer.observe(status, headers)
                if status == 401 and self._oauth and not refreshed:
                    self._forget_token(token)  # expired or revoked: trade the refresh token once, then retry
                    refreshed = True
                    continue
                if status in accept:
                    return Answer(None, status, headers, body)
                raise self._translate(exc, what, status, headers, body) from None
            self.pacer.update_from_headers(headers or {})
            if expect is not None and getattr(data, expect, None) is None:
                raise RetryableError(f"hubspot: {what}: the answer had no '{expect}' (malformed or truncated JSON)")
            return Answer(data, status, headers or {})

    # ------------------------------------------------------------------------------------------ tokens
    def _valid_token(self) -> str | None:
        if not self._oauth:
            return self._access_token
        with self._lock:
            if self._access_token is None or self._clock() >= self._expires_at - REFRESH_MARGIN_SECONDS:
                self._refresh()
            return self._access_token

    def _forget_token(self, token: str | None) -> None:
        with self._lock:
            if self._access_token == token:  # another thread may have refreshed already
                self._access_token = None

    def _refresh(self) -> None:
        """Trade the refresh token for an access token (HubSpot OAuth access tokens last 30 minutes)."""
        assert isinstance(self.auth, HubSpotOAuth)
        what = "refreshing the OAuth access token"
        try:
            data, _, _ = self.api("oauth.tokens").create_with_http_info(
                grant_type="refresh_token", client_id=self.auth.client_id,
                client_secret=self.auth.client_secret.get_secret_value(), refresh_token=self._refresh_token,
                _request_timeout=self._timeout)
        except Exception as exc:  # noqa: BLE001
            status, headers, body = _error_parts(exc)
            if status in (400, 401, 403):
                raise AuthError(f"hubspot: the OAuth token refresh was refused ({_reason(body)}); "
                                f"{self.auth_hint}") from None
            raise self._translate(exc, what, status, headers, body) from None
        token = getattr(data, "access_token", None)
        if not token:
            raise RetryableError("hubspot: the OAuth token endpoint answered without an access_token")
        lifetime = getattr(data, "expires_in", None) or 1800
        self._refresh_token = getattr(data, "refresh_token", None) or self._refresh_token
        self._access_token = token
        self._expires_at = self._clock() + float(lifetime)
        self._hs.access_token = token
        for api in self._apis.values():
            api.api_client.configuration.access_token = token
        self.token_refreshes += 1

    # ------------------------------------------------------------------------------------------ errors
    def _translate(self, exc: BaseException, what: str, status: int | None, headers: Mapping[str, str],
                   body: str) -> HealthsyncError:
        if isinstance(exc, HealthsyncError):
            return exc
        if status:
            error = classify_http(status, headers, body, source=SOURCE)
            if status == 401:
                return AuthError(f"hubspot: {what} was refused (HTTP 401: {_reason(body)}); {self.auth_hint}")
            if status == 403 and isinstance(error, AuthError):
                scope = missing_scope(body)
                detail = f"the app lacks the {scope} scope" if scope else "the app lacks a scope this call needs"
                return AuthError(f"hubspot: {what} was refused (HTTP 403): {detail}; add it to the app "
                                 "in HubSpot and re-issue the token")
            return _in_context(error, what)
        return _transport_error(exc, what)


def _in_context(error: HealthsyncError, what: str) -> HealthsyncError:
    """A copy of `error` whose message says what we were doing (keeping Retry-After and status)."""
    message = str(error).replace("hubspot: ", f"hubspot: {what}: ", 1)
    if isinstance(error, RetryableError):
        return type(error)(message, retry_after=error.retry_after, status=error.status)
    return type(error)(message)


def _error_parts(exc: BaseException) -> tuple[int | None, Mapping[str, str], str]:
    """(status, headers, body text) of an SDK ApiException; (None, {}, "") for anything else."""
    status = getattr(exc, "status", None)
    if not isinstance(status, int) or isinstance(exc, urllib3.exceptions.HTTPError):
        return None, {}, ""
    headers = getattr(exc, "headers", None) or {}
    body = getattr(exc, "body", None) or ""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    return status, headers, str(body)


def _transport_error(exc: BaseException, what: str) -> HealthsyncError:
    reason = getattr(exc, "reason", None)
    if isinstance(exc, urllib3.exceptions.SSLError) or isinstance(reason, urllib3.exceptions.SSLError) or (
            getattr(exc, "status", None) == 0 and "SSLError" in str(reason)):
        return FatalError(f"hubspot: {what}: the TLS certificate was not accepted; check sandbox.ca_file "
                          "(or the system CA bundle)")
    if getattr(exc, "status", None) == 0:  # the SDK could not parse the answer (e.g. a garbled datetime)
        return RetryableError(f"hubspot: {what}: the answer could not be read ({safe_reason(str(reason), 120)})")
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        return RetryableError(f"hubspot: {what}: connection failed ({type(reason or exc).__name__})")
    return FatalError(f"hubspot: {what} failed unexpectedly ({type(exc).__name__})")


def _reason(body: str) -> str:
    try:
        parsed = json.loads(body)
    except ValueError:
        return "no details"
    if isinstance(parsed, Mapping):
        parts = [str(parsed[k]) for k in ("category", "status", "message") if parsed.get(k)]
        return safe_reason(": ".join(dict.fromkeys(parts))) or "no details"
    return "no details"


def missing_scope(body: str) -> str | None:
    """The scope a 403 MISSING_SCOPES answer names (`requiredGranularScopes`), if any."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    for item in (parsed.get("errors") or []) if isinstance(parsed, Mapping) else []:
        context = item.get("context") if isinstance(item, Mapping) else None
        scopes = (context or {}).get("requiredGranularScopes") or (context or {}).get("requiredScopes")
        if scopes:
            return ", ".join(str(s) for s in scopes)
    return None
