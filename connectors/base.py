"""Contracts every connector honours: what a source and its streams are, what reading yields, the HTTP
status table, and the error tree it raises (`healthsync.errors`)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from healthsync.errors import (
    AuthError,
    FatalError,
    HealthsyncError,
    QuotaExhaustedError,
    RateLimitedError,
    RetryableError,
    SkippableRecordError,
)
from healthsync.redaction import redact

if TYPE_CHECKING:
    from healthsync.connectors.cursor import StreamState
    from healthsync.connectors.records import Record, SkippedRecord


# ---------------------------------------------------------------------------------------------------------
# What a source is, and what reading one yields.


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """One stream a source offers: what it yields and how it is read incrementally.

    `primary_key` names the record attribute that identifies a record (`"id"`, `"ticket_id"`);
    `cursor_field` is the *source-side* field the incremental query filters on (`"SystemModstamp"`,
    `"hs_lastmodifieddate"`), or None for a stream that is re-read in full every cycle.
    """

    name: str
    record_type: type
    primary_key: str
    cursor_field: str | None
    supports_deletes: bool
    max_page_size: int

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("StreamSpec.name must not be empty")
        if self.max_page_size < 1:
            raise ValueError(
                f"StreamSpec {self.name}: max_page_size must be at least 1, got {self.max_page_size}"
            )

    @property
    def incremental(self) -> bool:
        return self.cursor_field is not None


@dataclass(frozen=True, slots=True)
class CheckResult:
    """Outcome of `Source.check()`: `fix_hint` tells the admin what to change when `ok` is False."""

    ok: bool
    message: str
    fix_hint: str | None = None


@dataclass(frozen=True, slots=True)
class Page:
    """One page read from a stream, plus the stream state that covers it.

    The caller stores `records` (a record with `deleted=True` is a tombstone), removes `deleted_ids` (for
    sources that report deletions as bare ids), reports `skipped`, and writes `state` in the same
    transaction: a crash between pages then loses nothing and re-reads only the overlap window.
    `state` is None only for streams without a cursor (re-read in full each cycle).
    """

    records: tuple[Record, ...] = ()
    deleted_ids: tuple[str, ...] = ()
    skipped: tuple[SkippedRecord, ...] = ()
    state: StreamState | None = None
    # The source's own payload per record primary key, kept beside the canonical record so a changed
    # field map can be re-applied without pulling again (optional: aggregated streams have none).
    raw: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # connectors build these from lists; freezing them here keeps a yielded page immutable
        object.__setattr__(self, "records", tuple(self.records))
        object.__setattr__(self, "deleted_ids", tuple(str(i) for i in self.deleted_ids))
        object.__setattr__(self, "skipped", tuple(self.skipped))


@runtime_checkable
class Source(Protocol):
    """A system we pull from. Implementations map SDK objects to records and SDK errors to our error tree.

    `read` yields pages in ascending cursor order (see connectors/cursor.py for why, and what to do when
    an API cannot sort); `as_of` is the cycle's start time (the cursor never passes it);
    `full=True` ignores `state` and re-reads the whole stream (periodic resync, or after a reset).
    Errors: AuthError, RetryableError (after the connector's own retries), QuotaExhaustedError, FatalError;
    a bad single record is a `SkippedRecord` in the page, never an exception.
    """

    @property
    def name(self) -> str: ...

    def streams(self) -> list[StreamSpec]: ...

    def check(self) -> CheckResult: ...

    def read(
        self, stream: str, state: StreamState | None, *, as_of: datetime, full: bool = False
    ) -> Iterator[Page]: ...


# ---------------------------------------------------------------------------------------------------------
# HTTP status → error, as one plain table.
#
# status            single record (per_record=True)        collection / endpoint (per_record=False)
# 400, 422          SkippableRecordError                   FatalError
#                   (body UNABLE_TO_LOCK_ROW → RetryableError, either way)
# 401               AuthError                              AuthError
# 403               AuthError; body REQUEST_LIMIT_EXCEEDED → RateLimitedError
#                   ("TotalRequests Limit exceeded" = the daily allocation → QuotaExhaustedError)
# 404               SkippableRecordError (that record      FatalError (the endpoint or object type is
#                   is gone or never was)                  missing: API version or config, not transient)
# 408, 409, 425     RetryableError                         RetryableError
# 429               RateLimitedError(retry_after)          idem; HubSpot policyName DAILY → QuotaExhaustedError
# 501, 505          FatalError (the server will not grow the feature between two retries)
# other 5xx         RetryableError(retry_after)            RetryableError(retry_after)
# any other 4xx     FatalError                             FatalError

_RETRYABLE_4XX = frozenset({408, 409, 425})
_FATAL_5XX = frozenset({501, 505})
_REASON_KEYS = ("errorCode", "error", "category", "message", "description", "title", "policyName")
_MAX_REASON_CHARS = 200


def classify_http(
    status: int,
    headers: Mapping[str, str],
    body: str | None,
    *,
    source: str,
    per_record: bool = False,
) -> HealthsyncError:
    """Map a failed HTTP response to the error that tells the daemon what to do next.

    `per_record` says the request concerned one record (read or write of a single id, one batch item):
    then 400/404/422 skip that record instead of failing the stream. Messages carry the source, the
    status and a short reason from the body, never headers, URLs or anything that looks like a credential.
    """
    if status < 400:
        raise ValueError(f"classify_http: HTTP {status} is not an error status")
    body_text = body or ""
    reason = _reason_from_body(body_text)
    message = f"{source}: HTTP {status}" + (f" ({reason})" if reason else "")
    retry_after = parse_retry_after(headers)

    if "UNABLE_TO_LOCK_ROW" in body_text:
        return RetryableError(message, retry_after=retry_after, status=status)
    if status == 401:
        return AuthError(message + "; check the credentials for this source")
    if status == 403:
        if "REQUEST_LIMIT_EXCEEDED" in body_text:
            if "TotalRequests" in body_text:
                return QuotaExhaustedError(message + "; the org's daily API allocation is used up")
            return RateLimitedError(message, retry_after=retry_after, status=status)
        return AuthError(message + "; the credentials lack a permission or scope this call needs")
    if status == 429:
        if re.search(r'"policyName"\s*:\s*"DAILY"', body_text):
            return QuotaExhaustedError(message + "; the portal's daily API limit is used up")
        return RateLimitedError(message, retry_after=retry_after, status=status)
    if status in _RETRYABLE_4XX:
        return RetryableError(message, retry_after=retry_after, status=status)
    if status in (400, 404, 422) and per_record:
        return SkippableRecordError(message)
    if status >= 500 and status not in _FATAL_5XX:
        return RetryableError(message, retry_after=retry_after, status=status)
    return FatalError(message)


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from a `Retry-After` header; integers as given, decimals rounded up, dates and junk ignored.

    HTTP-dates are ignored on purpose: turning one into seconds needs the clock, and the APIs we talk to
    send integers. Negative values mean "now" (0).
    """
    raw = header_value(headers, "Retry-After")
    if raw is None:
        return None
    try:
        seconds = float(raw.strip())
    except ValueError:
        return None
    if not math.isfinite(seconds):
        return None
    return float(max(0, math.ceil(seconds)))


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup that works on plain dicts as well as requests/urllib3 headers."""
    direct = headers.get(name)
    if direct is not None:
        return str(direct)
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return str(value)
    return None


def _reason_from_body(body: str) -> str:
    """A short, secret-free reason: the error code/message fields of a JSON body, else its first line."""
    text = body.strip()
    if not text:
        return ""
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, list) and parsed and isinstance(parsed[0], Mapping):
        parsed = parsed[0]  # Salesforce answers with a list of {message, errorCode}
    if isinstance(parsed, Mapping):
        parts = [
            str(parsed[k]) for k in _REASON_KEYS if isinstance(parsed.get(k), str | int) and parsed.get(k)
        ]
        text = ": ".join(dict.fromkeys(parts)) if parts else ""
    elif text.startswith("<"):
        return ""  # an HTML error page says nothing useful
    else:
        text = text.splitlines()[0]
    return safe_reason(text)


def safe_reason(text: str, limit: int = _MAX_REASON_CHARS) -> str:
    """Text a server or an SDK wrote, fit to quote in one of our error messages.

    Redacted here rather than where the message is shown, for two reasons: the message leaves the process in
    more ways than one (run records, the write ledgers, /healthz, the CLI), and it is cut short first, which
    would leave a secret that straddles the cut no longer recognisable.
    """
    return redact(text)[:limit]
