"""SOQL text built safely: literals, the (SystemModstamp, Id) keyset window, and IN-lists chunked to short URLs."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

CURSOR_FIELD = "SystemModstamp"
MAX_URL_CHARS = 7000  # the REST query URL must stay under ~8k characters; leave room for host and path
_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
_ESCAPES = {"\\": "\\\\", "'": "\\'", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def string(value: str) -> str:
    """A quoted SOQL string literal; quotes, backslashes and control characters escaped."""
    return "'" + "".join(_ESCAPES.get(ch, ch) for ch in value) + "'"


def timestamp(value: datetime) -> str:
    """A SOQL datetime literal in UTC with milliseconds (Salesforce's precision; sub-ms is truncated)."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S") + f".{utc.microsecond // 1000:03d}Z"


def record_id(value: str) -> str:
    """A quoted Salesforce id; anything that is not 15/18 alphanumerics is refused (it would be injected)."""
    if not _ID.match(value):
        raise ValueError(f"not a Salesforce id: {value!r}")
    return f"'{value}'"


@dataclass(frozen=True, slots=True)
class Window:
    """Which rows an incremental query reads: `lower` inclusive (None: from the start), `after` a keyset
    position to continue strictly after, `upper` exclusive (the cycle start)."""

    upper: datetime
    lower: datetime | None = None
    after: tuple[datetime, str] | None = None

    def where(self) -> str:
        parts = []
        if self.after is not None:
            ts, rid = self.after
            parts.append(f"({CURSOR_FIELD} > {timestamp(ts)} OR "
                         f"({CURSOR_FIELD} = {timestamp(ts)} AND Id > {record_id(rid)}))")
        elif self.lower is not None:
            parts.append(f"{CURSOR_FIELD} >= {timestamp(self.lower)}")
        parts.append(f"{CURSOR_FIELD} < {timestamp(self.upper)}")
        return " AND ".join(parts)


def select(sobject: str, fields: Sequence[str], where: Sequence[str] = (), order_by_cursor: bool = True) -> str:
    text = f"SELECT {', '.join(fields)} FROM {sobject}"
    conditions = [w for w in where if w]
    if conditions:
        text += " WHERE " + " AND ".join(conditions)
    if order_by_cursor:
        text += f" ORDER BY {CURSOR_FIELD} ASC, Id ASC"
    return text


def in_chunks(build: Callable[[str], str], values: Sequence[str], max_url_chars: int = MAX_URL_CHARS) -> Iterator[str]:
    """Queries `build(literal_list)` over `values`, each URL-encoded query shorter than `max_url_chars`."""
    chunk: list[str] = []
    for value in values:
        candidate = [*chunk, string(value)]
        if chunk and len(urllib.parse.quote(build(", ".join(candidate)), safe="")) > max_url_chars:
            yield build(", ".join(chunk))
            candidate = [string(value)]
        chunk = candidate
    if chunk:
        yield build(", ".join(chunk))
