"""The one retry policy: which errors it retries, how long it waits, when it gives up, what it reports."""

from __future__ import annotations

import logging
import random
import time

import pytest

from healthsync.connectors.retry import BackoffWait, RetryEvent, retry_policy
from healthsync.errors import AuthError, FatalError, QuotaExhaustedError, RateLimitedError, RetryableError


class FakeSleep:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


class Flaky:
    """Raises the given errors in order, then returns 'ok'."""

    def __init__(self, *errors: Exception):
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def make(sleep: FakeSleep, events: list[RetryEvent] | None = None, **kwargs):
    hook = events.append if events is not None else (lambda e: None)
    return retry_policy(sleep=sleep, on_retry=hook, rng=random.Random(7), **kwargs)


def test_retries_retryable_errors_then_returns_the_result() -> None:
    sleep, events = FakeSleep(), []
    fn = Flaky(RetryableError("503"), RateLimitedError("429"))
    assert make(sleep, events)(fn) == "ok"
    assert fn.calls == 3
    assert len(sleep.waits) == 2
    assert [e.attempt for e in events] == [1, 2]
    assert [e.wait_seconds for e in events] == sleep.waits
    assert isinstance(events[1].error, RateLimitedError)


@pytest.mark.parametrize(
    "error", [AuthError("401"), FatalError("404"), QuotaExhaustedError("daily"), ValueError("bug")]
)
def test_non_retryable_errors_are_raised_at_once(error) -> None:
    sleep, events = FakeSleep(), []
    fn = Flaky(error)
    with pytest.raises(type(error)) as caught:
        make(sleep, events)(fn)
    assert caught.value is error
    assert fn.calls == 1 and sleep.waits == [] and events == []


def test_jittered_exponential_waits_stay_within_bounds() -> None:
    sleep = FakeSleep()
    errors = [RetryableError(f"e{i}") for i in range(9)]
    fn = Flaky(*errors)
    assert make(sleep, max_attempts=10, max_total_seconds=10_000, base=0.5, cap=30)(fn) == "ok"
    assert len(sleep.waits) == 9
    for attempt, wait in enumerate(sleep.waits, start=1):
        ceiling = min(30, 0.5 * 2 ** (attempt - 1))
        assert ceiling / 2 <= wait <= ceiling, (attempt, wait)
    assert max(sleep.waits) <= 30
    assert sleep.waits[-1] >= 15  # the cap is reached, not stuck at the base


def test_jitter_actually_varies_between_runs() -> None:
    rng = random.Random(3)
    wait = BackoffWait(base=1, cap=60, rng=rng)
    samples = {round(wait.backoff(4), 6) for _ in range(20)}
    assert len(samples) > 10
    assert all(4 <= s <= 8 for s in samples)


def test_retry_after_is_honoured_even_above_the_backoff() -> None:
    sleep = FakeSleep()
    fn = Flaky(RateLimitedError("429", retry_after=7), RateLimitedError("429", retry_after=0))
    assert make(sleep, base=0.5, cap=30)(fn) == "ok"
    assert sleep.waits[0] == 7
    assert 0.25 <= sleep.waits[1] <= 1.0  # a zero hint does not shorten the backoff


def test_last_error_is_re_raised_after_max_attempts() -> None:
    sleep = FakeSleep()
    errors = [RetryableError(f"attempt {i}") for i in range(1, 6)]
    fn = Flaky(*errors, RetryableError("never reached"))
    with pytest.raises(RetryableError) as caught:
        make(sleep, max_attempts=5)(fn)
    assert caught.value is errors[-1]
    assert fn.calls == 5 and len(sleep.waits) == 4


def test_total_time_cap_stops_before_a_wait_that_would_pass_it() -> None:
    sleep = FakeSleep()
    errors = [RateLimitedError(f"429 #{i}", retry_after=4) for i in range(1, 10)]
    fn = Flaky(*errors)
    with pytest.raises(RateLimitedError) as caught:
        make(sleep, max_attempts=10, max_total_seconds=10)(fn)
    assert sleep.waits == [4, 4]  # a third 4 s wait would make 12 s > 10 s
    assert sum(sleep.waits) <= 10
    assert caught.value is errors[2]


def test_retry_after_longer_than_the_budget_gives_up_immediately() -> None:
    sleep = FakeSleep()
    error = RateLimitedError("429", retry_after=3600)
    fn = Flaky(error)
    with pytest.raises(RateLimitedError) as caught:
        make(sleep, max_total_seconds=120)(fn)
    assert caught.value is error and caught.value.retry_after == 3600
    assert sleep.waits == [] and fn.calls == 1


def test_slow_calls_count_against_the_total_time() -> None:
    sleep = FakeSleep()

    def slow_failure() -> None:
        time.sleep(0.06)
        raise RetryableError("timeout")

    calls = []
    with pytest.raises(RetryableError):
        make(sleep, max_attempts=10, max_total_seconds=0.1, base=0.01, cap=0.01)(
            lambda: calls.append(1) or slow_failure()
        )
    assert len(calls) == 2  # ~0.12 s of wall time after the second call: no third attempt


def test_policy_is_reusable_and_supports_the_attempt_loop() -> None:
    sleep = FakeSleep()
    policy = make(sleep, max_attempts=3)
    assert policy(Flaky(RetryableError("a"), RetryableError("b"))) == "ok"
    fn = Flaky(RetryableError("c"), RetryableError("d"))
    for attempt in policy:
        with attempt:
            result = fn()
    assert result == "ok" and fn.calls == 3
    assert len(sleep.waits) == 4


def test_default_hook_logs_each_retry_once(caplog: pytest.LogCaptureFixture) -> None:
    sleep = FakeSleep()
    policy = retry_policy(sleep=sleep, rng=random.Random(1))
    with caplog.at_level(logging.WARNING, logger="healthsync.connectors.retry"):
        policy(
            Flaky(RateLimitedError("hubspot: HTTP 429", retry_after=2), RetryableError("hubspot: HTTP 503"))
        )
    messages = [r.getMessage() for r in caplog.records if r.name == "healthsync.connectors.retry"]
    assert len(messages) == 2
    assert "RateLimitedError" in messages[0] and "attempt 1" in messages[0] and "2.0s" in messages[0]
    assert "hubspot: HTTP 503" in messages[1]


@pytest.mark.parametrize(
    "kwargs", [{"max_attempts": 0}, {"base": 0}, {"base": 5, "cap": 1}, {"max_total_seconds": -1}]
)
def test_invalid_parameters_are_refused(kwargs) -> None:
    with pytest.raises(ValueError):
        retry_policy(**kwargs)
