"""One paced, retried, error-mapped connection to a Salesforce org, built from Settings for every auth mode.

Every HTTP request to the org goes through `SalesforceHttp` (a requests.Session): it counts the call against
the org's pacer *before* sending it (so the daily-share guard stops us before the org's own 403), reads
`Sforce-Limit-Info` and `Retry-After` from every answer (errors and Bulk 2.0 included, which the SDK's
`api_usage` misses), puts a timeout on every request, and — in the sandbox — sends the SDK's hard-coded
`login.salesforce.com` / `test.salesforce.com` URLs to the emulator.

`SalesforceConnection.call` runs one SDK call under the one retry policy and translates every SDK or
transport exception into our error tree. Only Salesforce-level SDK methods are used (`query`,
`query_more`, `restful`): with credential-based auth the SDK re-logs in on INVALID_SESSION_ID at most three
times there, whereas SFType calls re-login without bound (sdk-notes §1.3).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceError,
    SalesforceExpiredSession,
    SalesforceOperationError,
)

from healthsync.config.secrets import register_secret
from healthsync.config.settings import (
    SalesforceClientCredentialsAuth,
    SalesforceJwtAuth,
    SalesforcePasswordAuth,
    SalesforceRefreshTokenAuth,
    Settings,
)
from healthsync.connectors.base import classify_http, safe_reason
from healthsync.connectors.pacing import Pacer, PacerRegistry, salesforce_pacing
from healthsync.connectors.retry import retry_policy
from healthsync.errors import (
    AuthError,
    ConfigError,
    FatalError,
    HealthsyncError,
    RateLimitedError,
    RetryableError,
)

SOURCE = "salesforce"
DEFAULT_TIMEOUT = (10.0, 120.0)  # connect, read: a SOQL page or describe answers well within two minutes
DEFAULT_SCHEMA_TTL = 3600.0
LOGIN_HOST_SUFFIX = ".salesforce.com"
T = TypeVar("T")
_log = logging.getLogger("healthsync.connectors.salesforce")


class LocatorExpiredError(FatalError):
    """A `nextRecordsUrl` query locator is gone (idle > 15 min, or evicted): re-query from the keyset instead."""


class SalesforceHttp(requests.Session):
    """The requests.Session the SDK uses: pacing, limit headers, timeouts and (sandbox) login-host rewriting."""

    def __init__(self, *, login_netloc: str | None = None, timeout: Any = DEFAULT_TIMEOUT):
        super().__init__()
        self.login_netloc = login_netloc
        self.timeout = timeout
        self.pacer: Pacer | None = None
        self._last = threading.local()

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        url = self._rewrite(str(url))
        kwargs.setdefault("timeout", self.timeout)
        is_api = "/services/data/" in urllib.parse.urlsplit(url).path
        if is_api and self.pacer is not None:
            self.pacer.acquire()  # raises QuotaExhaustedError before a call that would pass the daily share
        self._last.headers = {}
        response = super().request(method, url, *args, **kwargs)
        self._last.headers = dict(response.headers)
        if is_api and self.pacer is not None:
            self.pacer.observe(response.status_code, response.headers)
        return response

    @property
    def last_headers(self) -> Mapping[str, str]:
        """Headers of this thread's latest answer: the SDK's exceptions drop them, Retry-After included."""
        return getattr(self._last, "headers", {}) or {}

    def _rewrite(self, url: str) -> str:
        if not self.login_netloc:
            return url
        parts = urllib.parse.urlsplit(url)
        if parts.hostname and parts.hostname.endswith(LOGIN_HOST_SUFFIX):
            return parts._replace(netloc=self.login_netloc).geturl()
        return url


SdkFactory = Callable[[SalesforceHttp], Salesforce]


class SalesforceConnection:
    """A lazily logged-in SDK client plus the pacer, the retry policy, error mapping and a describe cache."""

    def __init__(  # noqa: PLR0913 (its collaborators, then keyword-only tuning and test seams, each defaulted)
        self,
        factory: SdkFactory,
        http: SalesforceHttp,
        pacer: Pacer,
        *,
        auth_hint: str = "check crm.salesforce.auth",
        sleep: Callable[[float], None] = time.sleep,
        schema_ttl: float = DEFAULT_SCHEMA_TTL,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self._factory = factory
        self.http = http
        self.pacer = pacer
        http.pacer = pacer
        self.auth_hint = auth_hint
        self._retry = retry_policy(sleep=sleep)
        self._sf: Salesforce | None = None
        self._lock = threading.Lock()
        self._schema_ttl = schema_ttl
        self._monotonic = monotonic
        self._schemas: dict[str, tuple[float, dict[str, dict[str, Any]]]] = {}
        # A session built from an exchanged token (refresh-token mode) is not renewed by the SDK itself
        self.renew_expired = getattr(factory, "renews_by_login", False)

    @classmethod
    def from_settings(
        cls, settings: Settings, pacers: PacerRegistry, *, sleep: Callable[[float], None] = time.sleep,
        schema_ttl: float = DEFAULT_SCHEMA_TTL,
    ) -> SalesforceConnection:
        sf_settings = settings.crm.salesforce
        if sf_settings is None:
            raise ConfigError("crm.salesforce is missing: the Salesforce connector needs its auth settings")
        limits = settings.limits.salesforce
        pacer = pacers.pacer(
            "salesforce",
            org_key(settings),
            salesforce_pacing(daily_share=limits.daily_share, daily_limit=limits.daily_allocation),
        )
        return cls(sdk_factory(settings), build_http(settings), pacer, auth_hint=auth_fix_hint(settings),
                   sleep=sleep, schema_ttl=schema_ttl)

    # ------------------------------------------------------------------------------------------ calls
    @property
    def sf(self) -> Salesforce:
        """The SDK client, logging in on first use (login errors are translated like any other)."""
        with self._lock:
            if self._sf is None:
                try:
                    self._sf = self._factory(self.http)
                except HealthsyncError:
                    raise
                except Exception as exc:  # noqa: BLE001 - every SDK/transport failure is translated
                    raise self.translate(exc, "logging in") from None
            return self._sf

    def call(self, what: str, fn: Callable[[Salesforce], T], *, per_record: bool = False) -> T:
        """Run `fn(sf)` under the retry policy; any failure surfaces as one of our errors."""
        return self._retry(self.once, what, fn, per_record=per_record)

    def retry(self, fn: Callable[[], T]) -> T:
        """Run `fn` (built from `once` calls) under the retry policy."""
        return self._retry(fn)

    def once(self, what: str, fn: Callable[[Salesforce], T], *, per_record: bool = False) -> T:
        """One attempt, translated but not retried (for callers that must decide what a retry means)."""
        sf = self.sf
        try:
            return fn(sf)
        except HealthsyncError:
            raise
        except SalesforceExpiredSession as exc:
            if not self.renew_expired:
                raise self.translate(exc, what, per_record=per_record) from None
        except Exception as exc:  # noqa: BLE001 - every SDK/transport failure is translated
            raise self.translate(exc, what, per_record=per_record) from None
        return self._after_new_login(what, fn, per_record)

    def _after_new_login(self, what: str, fn: Callable[[Salesforce], T], per_record: bool) -> T:
        """The session expired: exchange the refresh token again and retry the call once on the new session."""
        with self._lock:
            self._sf = None
        sf = self.sf
        try:
            return fn(sf)
        except HealthsyncError:
            raise
        except Exception as exc:  # noqa: BLE001 - every SDK/transport failure is translated
            raise self.translate(exc, what, per_record=per_record) from None

    def translate(self, exc: BaseException, what: str, *, per_record: bool = False) -> HealthsyncError:
        error = _translate(exc, what, self.http.last_headers, per_record=per_record, auth_hint=self.auth_hint)
        if isinstance(exc, SalesforceError) and not isinstance(exc, SalesforceAuthenticationFailed):
            error.sf_error_code = sf_error_code(exc.content)  # type: ignore[attr-defined]
        return error

    # ------------------------------------------------------------------------------------------ schema
    def describe(self, sobject: str) -> dict[str, dict[str, Any]]:
        """Field describes of `sobject` by lower-cased API name, cached for `schema_ttl` seconds."""
        cached = self._schemas.get(sobject)
        now = self._monotonic()
        if cached is not None and now - cached[0] < self._schema_ttl:
            return cached[1]
        answer = self.call(f"describing {sobject}", lambda sf: sf.restful(f"sobjects/{sobject}/describe"))
        if not isinstance(answer, Mapping) or not isinstance(answer.get("fields"), list):
            raise FatalError(f"salesforce: the describe of {sobject} has no field list")
        fields = {str(f["name"]).lower(): dict(f) for f in answer["fields"] if isinstance(f, Mapping) and f.get("name")}
        self._schemas[sobject] = (now, fields)
        return fields

    def forget_schema(self, sobject: str | None = None) -> None:
        """Drop cached describes (after `setup` created a field, or when a query names a vanished field)."""
        if sobject is None:
            self._schemas.clear()
        else:
            self._schemas.pop(sobject, None)

    @property
    def instance(self) -> str | None:
        return self._sf.sf_instance if self._sf is not None else None


# ---------------------------------------------------------------------------------------------- errors


def sf_error_code(content: Any) -> str | None:
    """The `errorCode` of a Salesforce error body (a list of {message, errorCode}), if any."""
    if isinstance(content, list) and content and isinstance(content[0], Mapping):
        code = content[0].get("errorCode")
        return str(code) if code else None
    if isinstance(content, Mapping) and content.get("errorCode"):
        return str(content["errorCode"])
    return None


def error_code(error: BaseException) -> str | None:
    """The Salesforce errorCode a translated error came from (None for transport errors)."""
    return getattr(error, "sf_error_code", None)


def _translate(exc: BaseException, what: str, headers: Mapping[str, str], *, per_record: bool,
               auth_hint: str) -> HealthsyncError:
    if isinstance(exc, SalesforceAuthenticationFailed):
        return _login_error(exc, auth_hint)
    if isinstance(exc, SalesforceExpiredSession):
        return AuthError(f"salesforce: the session expired and could not be renewed while {what}; {auth_hint}")
    if isinstance(exc, SalesforceError):
        if sf_error_code(exc.content) == "INVALID_QUERY_LOCATOR":
            return LocatorExpiredError(f"salesforce: the query locator expired while {what}")
        if int(exc.status) < 400:  # 300 (external id matched several records): not retryable, not transient
            return FatalError(f"salesforce: HTTP {exc.status} while {what}")
        body = exc.content if isinstance(exc.content, str) else json.dumps(exc.content, default=str)
        error = classify_http(int(exc.status), headers, body, source=SOURCE, per_record=per_record)
        if isinstance(error, FatalError) and not per_record:
            return type(error)(f"{error} while {what}")
        return error
    if isinstance(exc, SalesforceOperationError):
        return FatalError(f"salesforce: a Bulk API job failed while {what}: {safe_reason(str(exc))}")
    if isinstance(exc, requests.exceptions.SSLError) and "CERTIFICATE_VERIFY_FAILED" in str(exc):
        return FatalError(f"salesforce: TLS certificate verification failed while {what}; if this is the "
                          "sandbox, point sandbox.ca_file at the emulator's CA")
    if isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.Timeout
                  | requests.exceptions.ChunkedEncodingError):
        return RetryableError(f"salesforce: connection failed while {what} ({type(exc).__name__})")
    if isinstance(exc, ValueError | KeyError):  # JSON that does not parse, a missing Bulk header: garbage
        return RetryableError(f"salesforce: malformed answer while {what} ({type(exc).__name__})")
    if isinstance(exc, requests.exceptions.RequestException):
        return FatalError(f"salesforce: request failed while {what} ({type(exc).__name__})")
    return FatalError(f"salesforce: unexpected {type(exc).__name__} while {what}: {safe_reason(str(exc))}")


def _login_error(exc: SalesforceAuthenticationFailed, auth_hint: str) -> HealthsyncError:
    code = exc.code
    message = safe_reason(str(exc.auth_message or ""))
    if code is None or (isinstance(code, int) and code >= 500):
        return RetryableError(f"salesforce: the login endpoint failed ({code or 'no error code'})")
    if code == 429 or code in ("LOGIN_RATE_EXCEEDED", "REQUEST_LIMIT_EXCEEDED"):
        return RateLimitedError(f"salesforce: login throttled ({code})")
    return AuthError(f"salesforce: login rejected ({code}: {message}); {auth_hint}")


# ---------------------------------------------------------------------------------------------- settings


def build_http(settings: Settings) -> SalesforceHttp:
    """The session; with `sandbox.salesforce_url` it trusts only the sandbox CA and logs in at the emulator."""
    sandbox = settings.sandbox
    if sandbox is None or not sandbox.salesforce_url:
        return SalesforceHttp()
    netloc = urllib.parse.urlsplit(sandbox.salesforce_url).netloc
    http = SalesforceHttp(login_netloc=netloc)
    http.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise replace `verify` (sdk-notes §0.1)
    if sandbox.ca_file is not None:
        http.verify = str(sandbox.ca_file)
    return http


def sdk_factory(settings: Settings) -> SdkFactory:
    """A function that logs in with the configured auth mode on the given session."""
    sf_settings = settings.crm.salesforce
    assert sf_settings is not None
    auth, version = sf_settings.auth, sf_settings.api_version
    if isinstance(auth, SalesforceJwtAuth):
        def jwt_login(http: SalesforceHttp) -> Salesforce:
            return Salesforce(username=auth.username, consumer_key=auth.consumer_key,
                              privatekey=auth.read_private_key().get_secret_value(), domain=auth.domain,
                              session=http, version=version)
        return jwt_login
    if isinstance(auth, SalesforceRefreshTokenAuth):
        def refresh_token_login(http: SalesforceHttp) -> Salesforce:
            session_id, instance_url = exchange_refresh_token(http, auth)
            return Salesforce(instance_url=instance_url, session_id=session_id, session=http, version=version)
        refresh_token_login.renews_by_login = True  # type: ignore[attr-defined]
        return refresh_token_login
    if isinstance(auth, SalesforceClientCredentialsAuth):
        domain = auth.domain or _domain_of(auth.instance_url)

        def client_credentials_login(http: SalesforceHttp) -> Salesforce:
            return Salesforce(consumer_key=auth.consumer_key,
                              consumer_secret=auth.consumer_secret.get_secret_value(), domain=domain,
                              session=http, version=version)
        return client_credentials_login
    assert isinstance(auth, SalesforcePasswordAuth)
    token = auth.security_token.get_secret_value() if auth.security_token is not None else ""

    def password_login(http: SalesforceHttp) -> Salesforce:
        return Salesforce(username=auth.username, password=auth.password.get_secret_value(),
                          security_token=token, domain=auth.domain, session=http, version=version)
    return password_login


def exchange_refresh_token(http: requests.Session, auth: SalesforceRefreshTokenAuth) -> tuple[str, str]:
    """POST grant_type=refresh_token to the token URL; returns (access token, instance URL). simple-salesforce
    has no refresh-token login, so we exchange the token ourselves and hand the SDK a session id ("OAuth 2.0
    Refresh Token Flow" on help.salesforce.com). Neither token is ever put in an error or a log line."""
    form = {"grant_type": "refresh_token", "client_id": auth.client_id,
            "refresh_token": auth.refresh_token.get_secret_value()}
    if auth.client_secret is not None:
        form["client_secret"] = auth.client_secret.get_secret_value()
    try:
        answer = http.post(auth.token_url, data=form, headers={"Accept": "application/json"})
    except requests.exceptions.RequestException as exc:
        raise RetryableError(f"salesforce: the token endpoint is unreachable ({type(exc).__name__})") from None
    body = _json_or_none(answer)
    if answer.status_code >= 500 or answer.status_code == 429:
        raise RetryableError(f"salesforce: the token endpoint failed (HTTP {answer.status_code})")
    if answer.status_code != 200 or not isinstance(body, Mapping) or not body.get("access_token"):
        code = body.get("error") if isinstance(body, Mapping) else None
        text = safe_reason(str(body.get("error_description") or ""), 120) if isinstance(body, Mapping) else ""
        raise AuthError(f"salesforce: the refresh token was not accepted (HTTP {answer.status_code}: "
                        f"{code or 'no error code'}{': ' + text if text else ''}); "
                        "check crm.salesforce.auth.client_id, client_secret and refresh_token")
    register_secret(str(body["access_token"]))
    return str(body["access_token"]), str(body.get("instance_url") or "")


def _json_or_none(answer: requests.Response) -> Any:
    try:
        return answer.json()
    except ValueError:
        return None


def _domain_of(instance_url: str | None) -> str:
    host = urllib.parse.urlsplit(instance_url or "").hostname or ""
    if not host.endswith(LOGIN_HOST_SUFFIX):
        raise ConfigError(
            f"crm.salesforce.auth.instance_url {instance_url!r} is not a *.salesforce.com My Domain URL; "
            "set crm.salesforce.auth.domain to your My Domain (e.g. acme.my) instead")
    return host.removesuffix(LOGIN_HOST_SUFFIX)


def auth_fix_hint(settings: Settings) -> str:
    """Which settings to fix when Salesforce rejects the login (never their values)."""
    auth = settings.crm.salesforce.auth if settings.crm.salesforce else None
    if isinstance(auth, SalesforceJwtAuth):
        return ("check crm.salesforce.auth.consumer_key, username and private_key_file (the key of the certificate "
                "uploaded to the connected app), and that the user is pre-authorized for the app")
    if isinstance(auth, SalesforceRefreshTokenAuth):
        return ("check crm.salesforce.auth.client_id, client_secret and refresh_token (revoked tokens must be "
                "obtained again through the connected app's web-server flow), and the domain or instance_url")
    if isinstance(auth, SalesforceClientCredentialsAuth):
        return ("check crm.salesforce.auth.consumer_key and consumer_secret, the domain (your My Domain), and "
                "that the connected app has a run-as user for the client credentials flow")
    return ("check crm.salesforce.auth.username, password and security_token (reset the token in Salesforce "
            "if the password changed)")


def org_key(settings: Settings) -> str:
    """Which org's allocation a pacer guards: the login host plus the integration identity."""
    sf_settings = settings.crm.salesforce
    assert sf_settings is not None
    auth = sf_settings.auth
    host = (settings.sandbox.salesforce_url if settings.sandbox and settings.sandbox.salesforce_url else None)
    domain = getattr(auth, "domain", None) or getattr(auth, "instance_url", None) or "login"
    who = getattr(auth, "username", None) or getattr(auth, "consumer_key", None) or getattr(auth, "client_id", "")
    return f"{host or domain}/{who}"
