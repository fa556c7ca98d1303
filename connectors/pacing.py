"""Pace every API call under a configured share of the API's published limits, shared per org/portal.

Why a rolling-window log rather than a classic token bucket: the APIs count calls in rolling windows
(HubSpot 190 per 10 s, Zendesk 400 per minute, Mixpanel 60 per hour). A token bucket of capacity C refilling
C per window admits up to 2C calls in one window (a full bucket plus a window of refill), which at a share of
0.8 is 1.6× the real limit. Keeping the timestamps of the last C calls admits at most C in *any* window.

The live limit headers feed the same windows: when the server says the portal has used more than we counted
(other apps share HubSpot and Zendesk buckets), we count those calls too; when it reports a different limit
(HubSpot capacity pack, Zendesk plan), we adopt it. Salesforce's rolling 24-hour allocation is a guard, not a
wait: the call that would pass the configured share raises `QuotaExhaustedError` before it is sent.

`sleep` is injectable: tests pass a fake clock's advance, the daemon a sleep that wakes up on shutdown.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from healthsync.connectors.base import header_value, parse_retry_after
from healthsync.errors import QuotaExhaustedError

# Scopes: a limit with a scope applies only to calls that name it in `acquire(scope)`.
SEARCH = "search"  # HubSpot CRM search, ~5 requests/s on top of the burst limit
INCREMENTAL_EXPORT = "incremental_export"  # Zendesk incremental exports, 10/min on top of the account limit
EXPORT = "export"  # Mixpanel raw export
QUERY = "query"  # Mixpanel query API (engage)

_MIN_SLEEP = 0.001  # guarantees progress when float rounding leaves a window a hair short of expiring
_SFORCE_USAGE = re.compile(r"(?:^|[\s,;])api-usage=(\d+)/(\d+)")


@dataclass(frozen=True, slots=True)
class RateLimit:
    """`limit` calls per `per_seconds` rolling window; `scope` None applies to every call of the pacer."""

    name: str
    limit: int
    per_seconds: float
    scope: str | None = None

    def __post_init__(self) -> None:
        if self.limit < 1 or self.per_seconds <= 0:
            raise ValueError(f"RateLimit {self.name}: need limit ≥ 1 and per_seconds > 0")


@dataclass(frozen=True, slots=True)
class PacerConfig:
    """What one org/portal may use: its windows at `share` of each limit, and an optional daily guard.

    `daily_share` None means no daily guard. `daily_limit` seeds the guard until a header reports the real one.
    """

    limits: tuple[RateLimit, ...] = ()
    share: float = 0.8
    daily_limit: int | None = None
    daily_share: float | None = None

    def __post_init__(self) -> None:
        for name, value in (("share", self.share), ("daily_share", self.daily_share)):
            if value is not None and not 0 < value <= 1:
                raise ValueError(f"PacerConfig.{name} must be in (0, 1], got {value}")
        unscoped = [limit.name for limit in self.limits if limit.scope is None]
        if len(unscoped) > 1:
            raise ValueError(f"PacerConfig: at most one limit without a scope, got {unscoped}")


def salesforce_pacing(*, daily_share: float = 0.5, daily_limit: int | None = None) -> PacerConfig:
    """Salesforce: no burst limit to pace, only the rolling-24 h allocation (`Sforce-Limit-Info`)."""
    return PacerConfig(limits=(), daily_limit=daily_limit, daily_share=daily_share)


def hubspot_pacing(  # noqa: PLR0913 (keyword-only, one per HubSpot limit setting)
    *,
    burst: int = 190,
    interval_seconds: float = 10,
    search_per_second: int = 5,
    share: float = 0.8,
    daily_limit: int | None = None,
    daily_share: float | None = None,
) -> PacerConfig:
    """HubSpot private app: 190 / 10 s per portal (headers may raise or lower it), search ~5 / s."""
    return PacerConfig(
        limits=(
            RateLimit("burst", burst, interval_seconds),
            RateLimit("search", search_per_second, 1.0, scope=SEARCH),
        ),
        share=share,
        daily_limit=daily_limit,
        daily_share=daily_share,
    )


def zendesk_pacing(
    *, per_minute: int = 400, incremental_per_minute: int = 10, share: float = 0.8
) -> PacerConfig:
    """Zendesk: account-wide requests per minute (plan-dependent), plus 10 / min for incremental exports."""
    return PacerConfig(
        limits=(
            RateLimit("account", per_minute, 60.0),
            RateLimit("incremental_export", incremental_per_minute, 60.0, scope=INCREMENTAL_EXPORT),
        ),
        share=share,
    )


def mixpanel_pacing(
    *, export_per_hour: int = 60, export_per_second: int = 3, query_per_hour: int = 60, share: float = 0.8
) -> PacerConfig:
    """Mixpanel per project: raw export 60 / h and 3 / s; query API (engage) 60 / h."""
    return PacerConfig(
        limits=(
            RateLimit("export_hourly", export_per_hour, 3600.0, scope=EXPORT),
            RateLimit("export_per_second", export_per_second, 1.0, scope=EXPORT),
            RateLimit("query_hourly", query_per_hour, 3600.0, scope=QUERY),
        ),
        share=share,
    )


@dataclass(frozen=True, slots=True)
class PacerStats:
    """Counters for the pull summary and metrics."""

    api: str
    org_id: str
    calls: int
    rate_limited: int
    waited_seconds: float
    daily_used: int | None
    daily_limit: int | None


class _Window:
    """Timestamps of the calls in the last `period` seconds; admits at most `capacity` of them."""

    __slots__ = ("rate", "capacity", "period", "stamps")

    def __init__(self, rate: RateLimit, share: float):
        self.rate = rate
        self.period = rate.per_seconds
        self.capacity = _capacity(rate.limit, share)
        self.stamps: deque[float] = deque()

    def _expire(self, now: float) -> None:
        while self.stamps and self.stamps[0] + self.period <= now:
            self.stamps.popleft()

    def wait_needed(self, now: float) -> float:
        self._expire(now)
        if len(self.stamps) < self.capacity:
            return 0.0
        return max(_MIN_SLEEP, self.stamps[len(self.stamps) - self.capacity] + self.period - now)

    def record(self, now: float, count: int = 1) -> None:
        self.stamps.extend([now] * count)

    def reconcile(self, now: float, server_limit: int, server_remaining: int, share: float) -> None:
        """Adopt the server's limit, and count calls it saw that we did not make (other apps, restarts)."""
        if server_limit >= 1:
            self.capacity = _capacity(server_limit, share)
        self._expire(now)
        server_used = max(0, server_limit - server_remaining)
        if server_used > len(self.stamps):
            self.record(now, server_used - len(self.stamps))


def _capacity(limit: int, share: float) -> int:
    return max(1, math.floor(limit * share))


class Pacer:
    """Blocks each call until every window it belongs to has room; thread-safe, one per (api, org)."""

    def __init__(
        self,
        api: str,
        org_id: str,
        config: PacerConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.api, self.org_id, self.config = api, org_id, config
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._windows = {limit.name: _Window(limit, config.share) for limit in config.limits}
        self._blocked_until = -math.inf
        self._calls = 0
        self._rate_limited = 0
        self._waited = 0.0
        self._daily_limit = config.daily_limit
        self._daily_used = 0 if config.daily_limit is not None else None

    def acquire(self, *scopes: str) -> float:
        """Wait for room, then count one call; returns the seconds waited.

        The call consumes every unscoped limit and each limit whose scope is named. Raises
        `QuotaExhaustedError` instead of waiting when the call would pass the daily share.
        """
        self._check_scopes(scopes)
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                self._check_daily_allowance()
                windows = self._windows_for(scopes)
                wait = max([w.wait_needed(now) for w in windows] + [self._blocked_until - now, 0.0])
                if wait <= 0:
                    for window in windows:
                        window.record(now)
                    self._calls += 1
                    if self._daily_used is not None:
                        self._daily_used += 1
                    self._waited += waited
                    return waited
            self._sleep(wait)  # outside the lock, so other threads can still record headers and 429s
            waited += wait

    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        """Feed one response: its limit headers, and a 429 (with its Retry-After) if that is what it was."""
        self.update_from_headers(headers)
        if status == 429:
            self.record_rate_limited(parse_retry_after(headers))

    def record_rate_limited(self, retry_after: float | None = None) -> None:
        """Count a throttling answer and hold every call of this org until the server's hint has passed.

        Without a hint we hold for one window of the unscoped limit (1 s if there is none), since HubSpot's
        429s do not always carry `Retry-After`.
        """
        with self._lock:
            self._rate_limited += 1
            hold = retry_after if retry_after is not None else self._default_hold()
            self._blocked_until = max(self._blocked_until, self._clock() + hold)

    def update_from_headers(self, headers: Mapping[str, str]) -> None:
        """Read Salesforce, HubSpot and Zendesk limit headers; unknown or malformed headers are ignored."""
        with self._lock:
            now = self._clock()
            self._read_salesforce(headers)
            self._read_hubspot(headers, now)
            self._read_zendesk(headers, now)

    def stats(self) -> PacerStats:
        with self._lock:
            return PacerStats(
                api=self.api,
                org_id=self.org_id,
                calls=self._calls,
                rate_limited=self._rate_limited,
                waited_seconds=self._waited,
                daily_used=self._daily_used,
                daily_limit=self._daily_limit,
            )

    # -- internals (called with the lock held) ------------------------------------------------------------

    def _check_scopes(self, scopes: tuple[str, ...]) -> None:
        known = {limit.scope for limit in self.config.limits if limit.scope}
        unknown = set(scopes) - known
        if unknown:
            raise ValueError(
                f"{self.api} pacer has no limit with scope {sorted(unknown)}; known: {sorted(known)}"
            )

    def _windows_for(self, scopes: tuple[str, ...]) -> list[_Window]:
        return [w for w in self._windows.values() if w.rate.scope is None or w.rate.scope in scopes]

    def _unscoped_window(self) -> _Window | None:
        return next((w for w in self._windows.values() if w.rate.scope is None), None)

    def _default_hold(self) -> float:
        window = self._unscoped_window()
        return window.period if window else 1.0

    def _check_daily_allowance(self) -> None:
        share = self.config.daily_share
        if share is None or self._daily_limit is None or self._daily_used is None:
            return
        allowed = math.floor(self._daily_limit * share)
        if self._daily_used + 1 > allowed:
            raise QuotaExhaustedError(
                f"{self.api} {self.org_id}: {self._daily_used:,} of {self._daily_limit:,} daily API calls used; "
                f"the configured share {share:g} allows {allowed:,}. Stopping before passing it: raise the share "
                "or wait for the rolling 24-hour window to free calls"
            )

    def _set_daily(self, used: int, limit: int) -> None:
        self._daily_used, self._daily_limit = used, limit

    def _read_salesforce(self, headers: Mapping[str, str]) -> None:
        raw = header_value(headers, "Sforce-Limit-Info")
        match = _SFORCE_USAGE.search(raw) if raw else None
        if match:
            self._set_daily(int(match.group(1)), int(match.group(2)))

    def _read_hubspot(self, headers: Mapping[str, str], now: float) -> None:
        limit = _int_header(headers, "X-HubSpot-RateLimit-Max")
        remaining = _int_header(headers, "X-HubSpot-RateLimit-Remaining")
        interval_ms = _int_header(headers, "X-HubSpot-RateLimit-Interval-Milliseconds")
        window = self._unscoped_window()
        if window is not None and limit is not None and remaining is not None:
            if interval_ms is not None and interval_ms > 0:
                window.period = interval_ms / 1000
            window.reconcile(now, limit, remaining, self.config.share)
        daily = _int_header(headers, "X-HubSpot-RateLimit-Daily")
        daily_remaining = _int_header(headers, "X-HubSpot-RateLimit-Daily-Remaining")
        if daily is not None and daily_remaining is not None:
            self._set_daily(max(0, daily - daily_remaining), daily)

    def _read_zendesk(self, headers: Mapping[str, str], now: float) -> None:
        limit = _int_header(headers, "X-Rate-Limit")
        remaining = _int_header(headers, "X-Rate-Limit-Remaining")
        window = self._unscoped_window()
        if window is not None and limit is not None and remaining is not None:
            window.reconcile(now, limit, remaining, self.config.share)


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    raw = header_value(headers, name)
    if raw is None:
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        return None
    return value if value >= 0 else None


class PacerRegistry:
    """One pacer per (api, org/portal id), so every stream of a portal draws from the same windows."""

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep
    ):
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._pacers: dict[tuple[str, str], Pacer] = {}

    def pacer(self, api: str, org_id: str, config: PacerConfig) -> Pacer:
        """The pacer for this org, created on first use; asking again with another config is a bug."""
        key = (api, org_id)
        with self._lock:
            existing = self._pacers.get(key)
            if existing is None:
                existing = Pacer(api, org_id, config, clock=self._clock, sleep=self._sleep)
                self._pacers[key] = existing
            elif existing.config != config:
                raise ValueError(f"{api} {org_id}: a pacer already exists with a different configuration")
            return existing

    def stats(self) -> list[PacerStats]:
        with self._lock:
            pacers = sorted(self._pacers.values(), key=lambda p: (p.api, p.org_id))
        return [p.stats() for p in pacers]
