"""Pacers: rolling windows at a share of the limit, live headers, the daily guard, 429 holds, the registry."""

from __future__ import annotations

import random
import threading
import time

import pytest

from healthsync.connectors.pacing import (
    EXPORT,
    INCREMENTAL_EXPORT,
    SEARCH,
    Pacer,
    PacerConfig,
    PacerRegistry,
    RateLimit,
    hubspot_pacing,
    mixpanel_pacing,
    salesforce_pacing,
    zendesk_pacing,
)
from healthsync.errors import QuotaExhaustedError


class FakeClock:
    """Monotonic time that only moves when someone sleeps on it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def pacer(config: PacerConfig, clock: FakeClock, api: str = "hubspot") -> Pacer:
    return Pacer(api, "portal-1", config, clock=clock, sleep=clock.sleep)


def max_in_any_window(times: list[float], period: float) -> int:
    best, start = 0, 0
    for end in range(len(times)):
        while times[end] - times[start] >= period:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_hubspot_burst_is_paced_at_the_share_of_the_limit() -> None:
    clock = FakeClock()
    p = pacer(hubspot_pacing(share=0.8), clock)
    for _ in range(152):  # floor(190 × 0.8)
        assert p.acquire() == 0
    assert clock.sleeps == []
    assert p.acquire() == pytest.approx(10.0)
    assert p.stats().calls == 153
    assert p.stats().waited_seconds == pytest.approx(10.0)


def test_no_window_ever_holds_more_than_the_capacity() -> None:
    clock, rng = FakeClock(), random.Random(5)
    p = pacer(hubspot_pacing(burst=100, interval_seconds=10, share=0.5), clock)
    times = []
    for _ in range(600):
        clock.now += rng.choice([0.0, 0.0, 0.01, 0.3, 2.5])
        p.acquire()
        times.append(clock.now)
    assert max_in_any_window(times, 10.0) == 50


def test_back_to_back_calls_run_at_exactly_the_allowed_rate() -> None:
    clock = FakeClock()
    p = pacer(hubspot_pacing(burst=100, interval_seconds=10, share=0.5), clock)
    start = clock.now
    for _ in range(600):
        p.acquire()
    # 12 windows of 50 calls: the last window opens 110 s after the first, not a second later
    assert clock.now - start == pytest.approx(110.0)


def test_scoped_limit_only_applies_to_calls_that_name_it() -> None:
    clock = FakeClock()
    p = pacer(zendesk_pacing(per_minute=400, incremental_per_minute=10, share=0.8), clock, api="zendesk")
    for _ in range(8):
        p.acquire(INCREMENTAL_EXPORT)
    for _ in range(100):
        assert p.acquire() == 0  # organizations, users… are not held back by the export limit
    assert p.acquire(INCREMENTAL_EXPORT) == pytest.approx(60.0)
    assert p.stats().calls == 109


def test_mixpanel_export_obeys_both_the_per_second_and_the_hourly_limit() -> None:
    clock = FakeClock()
    p = pacer(mixpanel_pacing(share=0.8), clock, api="mixpanel")
    start = clock.now
    times = []
    for _ in range(49):
        p.acquire(EXPORT)
        times.append(clock.now)
    assert max_in_any_window(times, 1.0) == 2  # floor(3 × 0.8)
    assert max_in_any_window(times[:48], 3600.0) == 48  # floor(60 × 0.8)
    assert times[-1] - start >= 3600  # the 49th export waited for the hour to roll


def test_unknown_scope_is_a_programming_error() -> None:
    p = pacer(hubspot_pacing(), FakeClock())
    with pytest.raises(ValueError, match="no limit with scope"):
        p.acquire("exports")
    p.acquire(SEARCH)
    assert p.stats().calls == 1


def test_hubspot_headers_count_calls_made_by_other_apps_in_the_portal() -> None:
    clock = FakeClock()
    p = pacer(hubspot_pacing(share=0.8), clock)
    p.acquire()
    # the portal has used 180 of 190: other apps are busy; our 80% share is already spent
    p.update_from_headers(
        {
            "X-HubSpot-RateLimit-Max": "190",
            "X-HubSpot-RateLimit-Remaining": "10",
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
        }
    )
    assert p.acquire() == pytest.approx(10.0)


def test_hubspot_headers_adopt_a_larger_limit_and_interval() -> None:
    clock = FakeClock()
    p = pacer(hubspot_pacing(burst=190, share=0.8), clock)
    p.update_from_headers(
        {
            "x-hubspot-ratelimit-max": "250",
            "x-hubspot-ratelimit-remaining": "250",
            "x-hubspot-ratelimit-interval-milliseconds": "2000",
        }
    )
    for _ in range(200):  # floor(250 × 0.8), no longer 152
        assert p.acquire() == 0
    assert p.acquire() == pytest.approx(2.0)


def test_zendesk_headers_adopt_the_plan_limit() -> None:
    clock = FakeClock()
    p = pacer(zendesk_pacing(per_minute=200, share=0.5), clock, api="zendesk")
    p.update_from_headers({"X-Rate-Limit": "700", "X-Rate-Limit-Remaining": "700"})
    for _ in range(350):
        assert p.acquire() == 0
    assert p.acquire() == pytest.approx(60.0)


def test_malformed_headers_are_ignored() -> None:
    clock = FakeClock()
    p = pacer(zendesk_pacing(per_minute=10, share=1.0), clock, api="zendesk")
    p.update_from_headers(
        {"X-Rate-Limit": "lots", "X-Rate-Limit-Remaining": "-1", "Sforce-Limit-Info": "junk"}
    )
    for _ in range(10):
        assert p.acquire() == 0
    assert p.stats().daily_used is None


def test_salesforce_daily_guard_refuses_the_call_that_would_pass_the_share() -> None:
    clock = FakeClock()
    p = pacer(salesforce_pacing(daily_share=0.8), clock, api="salesforce")
    p.acquire()  # nothing known yet: the first call tells us where we stand
    p.update_from_headers({"Sforce-Limit-Info": "api-usage=78/100"})
    p.acquire()
    p.acquire()  # 80 of 100: exactly the share
    with pytest.raises(QuotaExhaustedError) as caught:
        p.acquire()
    message = str(caught.value)
    assert "80 of 100" in message and "allows 80" in message
    stats = p.stats()
    assert stats.calls == 3 and stats.daily_used == 80 and stats.daily_limit == 100


def test_salesforce_header_with_per_app_usage_reads_the_org_figure() -> None:
    p = pacer(salesforce_pacing(daily_share=0.5), FakeClock(), api="salesforce")
    p.update_from_headers({"Sforce-Limit-Info": "per-app-api-usage=5/250(appName=x), api-usage=49/100"})
    p.acquire()
    with pytest.raises(QuotaExhaustedError):
        p.acquire()
    assert p.stats().daily_used == 50


def test_salesforce_configured_daily_limit_guards_before_any_header() -> None:
    p = pacer(salesforce_pacing(daily_share=0.5, daily_limit=4), FakeClock(), api="salesforce")
    p.acquire()
    p.acquire()
    with pytest.raises(QuotaExhaustedError):
        p.acquire()


def test_hubspot_daily_headers_feed_the_guard_when_configured() -> None:
    p = pacer(hubspot_pacing(daily_share=0.9), FakeClock())
    p.update_from_headers({"X-HubSpot-RateLimit-Daily": "1000", "X-HubSpot-RateLimit-Daily-Remaining": "101"})
    p.acquire()  # 900th call of the day
    with pytest.raises(QuotaExhaustedError):
        p.acquire()


def test_a_429_holds_every_stream_of_the_portal_for_retry_after() -> None:
    clock = FakeClock()
    registry = PacerRegistry(clock=clock, sleep=clock.sleep)
    companies = registry.pacer("hubspot", "portal-1", hubspot_pacing())
    contacts = registry.pacer("hubspot", "portal-1", hubspot_pacing())
    assert companies is contacts
    companies.observe(429, {"Retry-After": "5"})
    assert contacts.acquire() == pytest.approx(5.0)
    assert companies.stats().rate_limited == 1


def test_a_429_without_retry_after_holds_one_window() -> None:
    clock = FakeClock()
    p = pacer(hubspot_pacing(interval_seconds=10), clock)
    p.observe(429, {})
    assert p.acquire() == pytest.approx(10.0)
    p.observe(200, {})
    assert p.stats().rate_limited == 1


def test_registry_keys_by_api_and_org_and_reports_stats() -> None:
    clock = FakeClock()
    registry = PacerRegistry(clock=clock, sleep=clock.sleep)
    a = registry.pacer("zendesk", "acme", zendesk_pacing())
    b = registry.pacer("zendesk", "globex", zendesk_pacing())
    c = registry.pacer("hubspot", "acme", hubspot_pacing())
    assert len({id(a), id(b), id(c)}) == 3
    a.acquire()
    a.acquire()
    c.acquire()
    assert [(s.api, s.org_id, s.calls) for s in registry.stats()] == [
        ("hubspot", "acme", 1),
        ("zendesk", "acme", 2),
        ("zendesk", "globex", 0),
    ]
    with pytest.raises(ValueError, match="different configuration"):
        registry.pacer("zendesk", "acme", zendesk_pacing(per_minute=700))


@pytest.mark.parametrize(
    "build",
    [
        lambda: PacerConfig(share=0),
        lambda: PacerConfig(share=1.5),
        lambda: PacerConfig(daily_share=0),
        lambda: RateLimit("x", 0, 1),
        lambda: RateLimit("x", 1, 0),
        lambda: PacerConfig(limits=(RateLimit("a", 1, 1), RateLimit("b", 1, 1))),
    ],
)
def test_invalid_configuration_is_refused(build) -> None:
    with pytest.raises(ValueError):
        build()


def test_threads_share_one_pacer_without_losing_count_or_overrunning() -> None:
    limit = RateLimit("burst", 20, 0.2)
    p = Pacer("hubspot", "p", PacerConfig(limits=(limit,), share=1.0))
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(15):
                p.acquire()
        except BaseException as exc:  # pragma: no cover - reported by the assertion below
            errors.append(exc)

    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    elapsed = time.monotonic() - started
    assert errors == []
    assert p.stats().calls == 60
    assert elapsed >= 0.4  # 60 calls at 20 per 0.2 s cannot finish in less than two extra windows
