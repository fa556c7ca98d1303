"""zenpy, pointed and guarded: one paced requests Session per client, and every zenpy failure mapped to our errors.

Who retries what (sdk-notes §3.3, §5):
* zenpy sleeps and re-sends on a 429 that carries `Retry-After`, without bound unless `ratelimit_budget` is
  set — and that budget is spent cumulatively over the client's life (it never refills), so a long-running
  daemon would eventually fail every rate limit at once. We therefore take the 429 away from zenpy: the
  session moves `Retry-After` to a private header before zenpy sees the response, zenpy raises at once, and
  the hint goes to the Pacer (which holds every call of this account) and to our one retry policy.
  `ratelimit_budget` is still set, as a bound should a 429 ever reach zenpy's loop some other way.
* Our own session means zenpy mounts no urllib3 retry adapter, so transport errors surface once.
* Every request — first pages, `after_url`/`links.next` pages and re-sends alike — passes `Pacer.acquire`,
  incremental exports in the 10-per-minute scope as well.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
import tenacity
from zenpy import Zenpy
from zenpy.lib.api import BaseApi
from zenpy.lib.exception import APIException, RatelimitBudgetExceeded, ZenpyException

from healthsync.connectors.base import classify_http
from healthsync.connectors.pacing import INCREMENTAL_EXPORT, Pacer
from healthsync.errors import (
    AuthError,
    ConfigError,
    FatalError,
    HealthsyncError,
    RateLimitedError,
    RetryableError,
)

SOURCE = "zendesk"
_HINT_HEADER = "X-Healthsync-Retry-After"  # where the session parks a 429's Retry-After, out of zenpy's sight
_ZENPY_RATELIMIT_BUDGET = 5  # seconds; never reached while the session hides Retry-After (see module docstring)
_TIMEOUT_SECONDS = 60

T = TypeVar("T")
END: Any = object()
"""What `ZendeskCaller.call` returns when zenpy signals the end of pagination (StopIteration)."""

_log = logging.getLogger("healthsync.connectors.zendesk")


class CursorRefusedError(FatalError):
    """The export refused a stored cursor (HTTP 400 InvalidPaginationParameter); restart from a time."""


class PacedSession(requests.Session):
    """A requests Session that paces every call and keeps 429 hints away from zenpy's own sleep loop."""

    def __init__(self, pacer: Pacer, *, ca_file: str | Path | None = None):
        super().__init__()
        self.trust_env = False  # REQUESTS_CA_BUNDLE and proxies from the environment would override us (sdk-notes 0.1)
        if ca_file is not None:
            self.verify = str(ca_file)
        self.pacer = pacer

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        scopes = (INCREMENTAL_EXPORT,) if "/incremental/" in str(url) else ()
        self.pacer.acquire(*scopes)
        response = super().request(method, url, *args, **kwargs)
        self.pacer.observe(response.status_code, response.headers)
        if response.status_code == 429:
            hint = response.headers.pop("Retry-After", None)
            if hint is not None:
                response.headers[_HINT_HEADER] = hint
        return response


def build_zenpy(
    base_url: str,
    session: PacedSession,
    *,
    email: str | None = None,
    token: str | None = None,
    oauth_token: str | None = None,
) -> Zenpy:
    """A zenpy client for `base_url` (`https://acme.zendesk.com`, or a sandbox `http://127.0.0.1:PORT`).

    zenpy builds URLs as `{protocol}://{subdomain}.{domain}`; splitting the host at its first dot and setting
    `protocol` on each API object points one client at any host without process-wide environment variables.
    """
    parts = urlsplit(base_url)
    subdomain, dot, domain = parts.netloc.partition(".")
    if parts.scheme not in ("http", "https") or not dot or not subdomain or not domain:
        raise ConfigError(
            f"zendesk: cannot use {base_url!r} as the API host; give an http(s) URL whose host has a dot, "
            "e.g. https://acme.zendesk.com or http://127.0.0.1:18080"
        )
    credentials: dict[str, str] = {"oauth_token": oauth_token} if oauth_token else {}
    if not credentials:
        if not (email and token):
            raise ConfigError("zendesk: set zendesk.auth.email and zendesk.auth.token (or use auth.mode: oauth)")
        credentials = {"email": email, "token": token}
    client = Zenpy(
        subdomain=subdomain,
        domain=domain,
        session=session,
        disable_cache=True,  # zenpy's id caches have no TTL: we would never see an edit (sdk-notes §3.4)
        timeout=_TIMEOUT_SECONDS,
        ratelimit_budget=_ZENPY_RATELIMIT_BUDGET,
        **credentials,
    )
    for api in vars(client).values():
        if isinstance(api, BaseApi):
            api.protocol = parts.scheme
    return client


class ZendeskCaller:
    """Runs one zenpy call under the retry policy, translating whatever zenpy raises into our error tree.

    A 401 after this client has already succeeded is retried once (an OAuth token rotated under us, a
    transient auth hiccup); a 401 before any success, or twice in a row, is an AuthError.
    """

    def __init__(self, retry: tenacity.Retrying):
        self._retry = retry
        self._authenticated = False
        self._auth_retry_spent = False

    def call(self, fn: Callable[[], T]) -> T:
        return self._retry(self._once, fn)

    def _once(self, fn: Callable[[], T]) -> T:
        try:
            result = fn()
        except StopIteration:
            return END
        except HealthsyncError:
            raise  # the pacer's QuotaExhaustedError, passed through zenpy untouched
        except Exception as exc:  # noqa: BLE001 - every SDK failure is translated, none escapes
            raise self._on_failure(translate(exc)) from None
        if isinstance(result, requests.Response):
            # zenpy hands back the raw Response when a 200 body is not JSON (first page only)
            raise RetryableError(f"{SOURCE}: HTTP {result.status_code} with a body that is not valid JSON")
        self._authenticated, self._auth_retry_spent = True, False
        return result

    def _on_failure(self, error: HealthsyncError) -> HealthsyncError:
        if isinstance(error, AuthError) and "HTTP 401" in str(error):
            if self._authenticated and not self._auth_retry_spent:
                self._auth_retry_spent = True
                return RetryableError(f"{error} (retrying once: it worked a moment ago)", status=401)
        return error


def translate(exc: Exception) -> HealthsyncError:
    """Map one exception raised inside zenpy/requests to the error that says what the daemon does next."""
    if isinstance(exc, RatelimitBudgetExceeded):
        return RateLimitedError(f"{SOURCE}: rate limited for longer than zenpy's budget")
    response = getattr(exc, "response", None)
    if isinstance(exc, APIException | requests.HTTPError) and isinstance(response, requests.Response):
        return _from_response(response)
    if isinstance(exc, requests.JSONDecodeError | ValueError):
        return RetryableError(f"{SOURCE}: a page's body is not valid JSON ({type(exc).__name__})")
    if isinstance(exc, requests.RequestException):
        return RetryableError(f"{SOURCE}: transport error ({type(exc).__name__})")
    if isinstance(exc, ZenpyException):
        return FatalError(f"{SOURCE}: zenpy refused the call: {str(exc)[:200]}")
    return FatalError(f"{SOURCE}: unexpected {type(exc).__name__} from zenpy: {str(exc)[:200]}")


def _from_response(response: requests.Response) -> HealthsyncError:
    headers = dict(response.headers)
    hint = headers.pop(_HINT_HEADER, None)
    if hint is not None:
        headers["Retry-After"] = hint
    body = response.text
    if response.status_code == 400 and "InvalidPaginationParameter" in body:
        return CursorRefusedError(f"{SOURCE}: the export refused the stored cursor")
    return classify_http(response.status_code, headers, body, source=SOURCE)
