"""Request parsing shared by the Zendesk endpoints: the error shape, cursors, integer and time arguments and the
page windows of the cursor- and time-based exports."""

from __future__ import annotations

import base64
import binascii
import bisect
import math
import re
from datetime import UTC, datetime
from typing import Any

EXPORT_DELAY_SECONDS = 60  # the export never shows what changed in the last minute
MAX_UNIX_TIME = 2**40

Key = tuple[int, int]  # (sort timestamp or 0, id): the position a cursor encodes


class ZendeskApiError(Exception):
    """Bad input: answered with Zendesk's `{"error", "description"}` body.

    Errors JSON format: https://developer.zendesk.com/api-reference/introduction/requests/#errors
    """

    def __init__(self, description: str, error: str = "InvalidValue", status: int = 400):
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


def utc(value: datetime) -> datetime:
    """Zendesk timestamps have whole seconds; naive values from the model are UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(microsecond=0)


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a `Z`, as every Zendesk sample shows (`2011-05-05T10:38:52Z`)."""
    return None if value is None else utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def ts(value: datetime) -> int:
    return int(utc(value).timestamp())


def encode_cursor(direction: str, key: Key) -> str:
    """Opaque, URL-safe and alphanumeric (zenpy does not escape cursors it puts in URLs)."""
    raw = f"{direction}{key[0]}x{key[1]}".encode()
    return base64.b32encode(raw).decode().rstrip("=").lower()


def decode_cursor(token: str) -> tuple[str, Key]:
    try:
        raw = base64.b32decode(token.upper() + "=" * (-len(token) % 8)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    match = re.fullmatch(r"([ab])(-?\d+)x(-?\d+)", raw)
    if match is None:
        raise ZendeskApiError(f"cursor {token!r} is not a cursor this API issued", "InvalidPaginationParameter")
    return match.group(1), (int(match.group(2)), int(match.group(3)))


def int_arg(args: Any, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ZendeskApiError(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ZendeskApiError(f"{name} must be between {low} and {high}, got {value}")
    return value


def unix_time_arg(args: Any, name: str) -> int | None:
    """A Unix time parameter (`start_time`, `end_time`), floored to whole seconds.

    The docs type it as an integer ("The Unix UTC epoch time", Incremental Exports,
    https://developer.zendesk.com/api-reference/ticketing/ticket-management/incremental_exports/), yet widely
    used clients send `1420070400.0` (a Python float) or an ISO-8601 string and Zendesk serves them; the
    export's own cursors carry the same `1576613539.0` form (the cursor example on that page decodes to it).
    So decimals and ISO-8601 UTC timestamps are accepted too; anything else is the documented 400.
    """
    raw = args.get(name)
    if raw is None or raw == "":
        return None
    value = _parse_unix_time(raw.strip())
    if value is None:
        raise ZendeskApiError(f"{name} must be a Unix epoch time in seconds, got {raw!r}")
    if not 0 <= value <= MAX_UNIX_TIME:
        raise ZendeskApiError(f"{name} must be between 0 and {MAX_UNIX_TIME}, got {raw!r}")
    return value


def _parse_unix_time(text: str) -> int | None:
    try:
        number = float(text)
    except ValueError:
        number = None
    if number is not None:
        return math.floor(number) if math.isfinite(number) else None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return int((parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp())


def export_start_time(args: Any, cutoff: int) -> int:
    """`start_time` of an export request: required, and not within the last minute (Zendesk answers 400).

    "Using the Incremental Export API": items changed in the minute before the request are excluded, and a
    start_time in that minute is refused (https://developer.zendesk.com/documentation/ticketing/managing-tickets/using-the-incremental-export-api).
    """
    start_time = unix_time_arg(args, "start_time")
    if start_time is None:
        raise ZendeskApiError("start_time or cursor is required")
    if start_time > cutoff:
        raise ZendeskApiError(f"Parameter start_time ({start_time}) is too recent: start_time must be more "
                              f"than {EXPORT_DELAY_SECONDS} seconds in the past")
    return start_time


def csv_ids(args: Any, name: str, limit: int = 100) -> list[str]:
    """A comma-separated `ids`/`external_ids` list; over 100 values is Zendesk's TooManyValues error
    (Show Many Users: "Accepts a comma-separated list of up to 100 user ids",
    https://developer.zendesk.com/api-reference/ticketing/users/users/#show-many-users)."""
    values = [part.strip() for part in (args.get(name) or "").split(",") if part.strip()]
    if len(values) > limit:
        raise ZendeskApiError(f"Too many values specified for parameter '{name}'. Maximum allowed is {limit}",
                              "TooManyValues")
    return values


def include_set(args: Any) -> set[str]:
    """The comma-separated `include` sideloads (Side-loading related records,
    https://developer.zendesk.com/documentation/ticketing/using-the-zendesk-api/side_loading/)."""
    return {part.strip() for part in (args.get("include") or "").split(",") if part.strip()}


def flag_arg(args: Any, name: str) -> bool:
    return (args.get(name) or "").strip().lower() in ("true", "1")


def time_window(keys: list[Key], start_time: int, cutoff: int, size: int) -> tuple[int, int, int]:
    """`(lo, hi, end)`: the time-based page `keys[lo:hi]` of the exportable `keys[lo:end]` (start_time..cutoff).

    The page ends on a timestamp boundary so the next one (starting at its last second) loses nothing; when
    the page would hold nothing newer than `start_time` — a crowd sharing that second — it runs on through
    the next second, so the export always moves forward. ("Time-based incremental exports": a page can
    exceed `per_page` when items share a timestamp, and the next page repeats `end_time`'s items.)
    """
    lo = bisect.bisect_left(keys, (start_time, -(2**62)))
    end = bisect.bisect_right(keys, (cutoff, 2**62))
    hi = min(lo + size, end)
    if lo < hi < end:
        last_second = keys[hi - 1][0]
        if last_second <= start_time:
            after_crowd = bisect.bisect_right(keys, (start_time, 2**62), lo, end)
            last_second = keys[after_crowd][0] if after_crowd < end else start_time
        hi = bisect.bisect_right(keys, (last_second, 2**62), lo, end)
    return lo, hi, end


def window(keys: list[Key], direction: str, position: Key, size: int, last_allowed: Key | None) -> tuple[int, int]:
    """Index range [lo, hi) of the page after (or before) `position` in the sorted `keys`."""
    if direction == "a":
        lo = bisect.bisect_right(keys, position)
        end = len(keys) if last_allowed is None else bisect.bisect_right(keys, last_allowed)
        return lo, max(lo, min(lo + size, end))
    hi = bisect.bisect_left(keys, position)
    return max(0, hi - size), hi
