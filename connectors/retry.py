"""The one retry policy every connector uses: back off on `RetryableError` only, honour `Retry-After`, stop in time.

Connectors translate SDK exceptions into our error tree *inside* the retried callable, and switch off the
SDKs' own hidden retries (urllib3 `Retry`, zenpy's unbounded 429 loop, mixpanel-utils' immediate 5xx
retries; see reference/sdk-notes.md §5), so attempts are counted and paced in exactly one place.

    policy = retry_policy(sleep=stop_event_aware_sleep)
    accounts = policy(fetch_accounts_page, cursor)       # or: for attempt in policy: with attempt: ...
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import tenacity

from healthsync.errors import RetryableError

_log = logging.getLogger("healthsync.connectors.retry")


@dataclass(frozen=True, slots=True)
class RetryEvent:
    """One retry about to happen: the attempt that failed (1-based), why, and how long we will wait."""

    attempt: int
    wait_seconds: float
    elapsed_seconds: float
    error: RetryableError


def log_retry(event: RetryEvent) -> None:
    """Default hook: one WARNING per retry through stdlib logging (the daemon routes it into structlog)."""
    _log.warning(
        "retrying after %s (attempt %d failed, waiting %.1fs): %s",
        type(event.error).__name__,
        event.attempt,
        event.wait_seconds,
        event.error,  # our error messages are built secret-free (see classify_http)
    )


class BackoffWait:
    """Jittered exponential backoff, never shorter than the server's `retry_after` hint.

    attempt n waits uniformly in [c/2, c] with c = min(cap, base·2^(n−1)): jitter spreads retries of
    parallel streams apart, and the lower half-bound keeps a retry from firing immediately.
    """

    def __init__(self, *, base: float, cap: float, rng: random.Random):
        self.base, self.cap, self.rng = base, cap, rng

    def backoff(self, attempt: int) -> float:
        ceiling = min(self.cap, self.base * 2 ** min(attempt - 1, 60))
        return self.rng.uniform(ceiling / 2, ceiling)

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        wait = self.backoff(retry_state.attempt_number)
        error = retry_state.outcome.exception() if retry_state.outcome else None
        hint = getattr(error, "retry_after", None)
        if hint is not None and hint > wait:
            wait = float(hint)
        return wait


class BudgetStop:
    """Stop after `max_attempts`, or when the next wait would carry us past `max_total_seconds`.

    Time spent is the larger of wall time since the first attempt and the sum of waits so far, so the cap
    holds with a real clock (slow calls count) and with an injected sleep (tests, cancellable sleeps).
    A `Retry-After` longer than the remaining budget stops at once and re-raises that error rather than
    retrying early and being refused again.
    """

    def __init__(self, *, max_attempts: int, max_total_seconds: float):
        self.max_attempts, self.max_total_seconds = max_attempts, max_total_seconds

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        if retry_state.attempt_number >= self.max_attempts:
            return True
        spent = max(retry_state.seconds_since_start or 0.0, retry_state.idle_for)
        return spent + retry_state.upcoming_sleep > self.max_total_seconds


def retry_policy(  # noqa: PLR0913 (the policy's independent knobs, each defaulted)
    max_attempts: int = 5,
    max_total_seconds: float = 120,
    base: float = 0.5,
    cap: float = 30,
    sleep: Callable[[float], None] = time.sleep,
    *,
    on_retry: Callable[[RetryEvent], None] = log_retry,
    rng: random.Random | None = None,
) -> tenacity.Retrying:
    """A `tenacity.Retrying` that retries only `RetryableError` and re-raises the last error itself.

    Non-retryable errors (AuthError, SkippableRecordError, QuotaExhaustedError, FatalError, and anything
    that is not ours) propagate on the first attempt. The object is reusable and thread-safe.
    """
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
    if max_total_seconds < 0 or base <= 0 or cap < base:
        raise ValueError(
            f"need max_total_seconds ≥ 0 and 0 < base ≤ cap (got {max_total_seconds}, {base}, {cap})"
        )

    def before_sleep(retry_state: tenacity.RetryCallState) -> None:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        assert isinstance(error, RetryableError)  # the retry predicate lets nothing else through
        elapsed = max(
            retry_state.seconds_since_start or 0.0, retry_state.idle_for - retry_state.upcoming_sleep
        )
        on_retry(RetryEvent(retry_state.attempt_number, retry_state.upcoming_sleep, elapsed, error))

    return tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(RetryableError),
        wait=BackoffWait(base=base, cap=cap, rng=rng or random.Random()),
        stop=BudgetStop(max_attempts=max_attempts, max_total_seconds=max_total_seconds),
        sleep=sleep,
        reraise=True,
        before_sleep=before_sleep,
    )
