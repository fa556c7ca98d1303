"""The Zendesk search query language over the sandbox's tickets, users, organizations and groups.

Syntax from "Zendesk Support search reference" (https://support.zendesk.com/hc/en-us/articles/4408886879258)
and the Search API ("Query basics", https://developer.zendesk.com/api-reference/ticketing/ticket-management/search/):
bare words and "quoted phrases" match an object's text; `keyword:value` tests equality, `>`, `<`, `>=`, `<=`
compare (dates, and the ordered `status` and `priority`); a leading `-` negates; a trailing `*` is a prefix
wildcard; `type:` picks the object kind; dates are `YYYY-MM-DD`, ISO-8601 times, or relative (`4hours`).
Left out: `fieldvalue:`, custom-field keywords, `order_by:` inside the query, and `commenter`/`cc`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from healthsync.sandbox.zendesk.params import ZendeskApiError, utc

KINDS = ("ticket", "user", "organization", "group")
STATUS_ORDER = ("new", "open", "pending", "hold", "solved", "closed")
PRIORITY_ORDER = ("low", "normal", "high", "urgent")
_TERM = re.compile(r'(-)?(?:([A-Za-z_]+)(>=|<=|:|>|<)("[^"]*"|\S+)|("[^"]*"|\S+))')
_RELATIVE = re.compile(r"(\d+)(minute|hour|day|week|month|year)s?")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400, "month": 30 * 86400,
                 "year": 365 * 86400}


@dataclass(frozen=True)
class Term:
    negate: bool
    keyword: str | None  # None: free text
    op: str
    value: str


def parse_query(query: str) -> list[Term]:
    """Split a query into terms; an empty query is Zendesk's 400 (`query` is required)."""
    terms = []
    for match in _TERM.finditer(query or ""):
        negate, keyword, op, value, text = match.groups()
        raw = value if keyword else text
        terms.append(Term(bool(negate), keyword.lower() if keyword else None, op or ":", raw.strip('"')))
    return terms


def kinds_of(terms: list[Term], type_filter: str | None) -> tuple[str, ...]:
    wanted = {t.value.lower() for t in terms if t.keyword == "type" and not t.negate}
    if type_filter:
        wanted.add(type_filter)
    unknown = wanted - set(KINDS)
    if unknown:
        raise ZendeskApiError(f"Invalid search: unknown type {sorted(unknown)[0]!r}", "invalid", 400)
    return tuple(k for k in KINDS if not wanted or k in wanted)


def matches(record: dict, fields: dict[str, Callable[[dict], Any]], text: Callable[[dict], str],
            terms: list[Term], now: datetime) -> bool:
    for term in terms:
        if term.keyword == "type":
            continue
        hit = _term_hits(record, fields, text, term, now)
        if hit == term.negate:
            return False
    return True


def _term_hits(record: dict, fields: dict, text: Callable[[dict], str], term: Term, now: datetime) -> bool:
    if term.keyword is None:
        return _text_hit(text(record), term.value)
    getter = fields.get(term.keyword)
    if getter is None:
        return False  # a keyword this kind does not have matches nothing (Zendesk ignores no keyword)
    value = getter(record)
    values = value if isinstance(value, list | tuple | set) else [value]
    return any(_compare(v, term, now) for v in values)


def _text_hit(haystack: str, needle: str) -> bool:
    needle = needle.lower()
    if needle.endswith("*"):
        return any(word.startswith(needle[:-1]) for word in re.findall(r"[\w@.-]+", haystack.lower()))
    return needle in haystack.lower()


def _compare(actual: Any, term: Term, now: datetime) -> bool:
    if isinstance(actual, datetime):
        return _compare_time(actual, term, now)
    if actual is None:
        return term.op == ":" and term.value.lower() == "none"
    for order in (STATUS_ORDER, PRIORITY_ORDER):
        if str(actual) in order and term.value.lower() in order:
            return _ordered(order.index(str(actual)), order.index(term.value.lower()), term.op)
    text = str(actual).lower()
    if term.op != ":":
        return False
    wanted = term.value.lower()
    return text.startswith(wanted[:-1]) if wanted.endswith("*") else text == wanted


def _ordered(left: Any, right: Any, op: str) -> bool:
    return {":": left == right, ">": left > right, "<": left < right, ">=": left >= right,
            "<=": left <= right}[op]


def _compare_time(actual: datetime, term: Term, now: datetime) -> bool:
    bound = parse_when(term.value, now)
    if isinstance(bound, date) and not isinstance(bound, datetime):
        return _ordered(utc(actual).date(), bound, term.op)
    return _ordered(utc(actual), bound, term.op)


def parse_when(value: str, now: datetime) -> date | datetime:
    """A search date: `2024-05-01`, `2024-05-01T10:00:00Z`, or relative to now (`4hours`, `2days`)."""
    relative = _RELATIVE.fullmatch(value.lower())
    if relative:
        return utc(now) - timedelta(seconds=int(relative.group(1)) * _UNIT_SECONDS[relative.group(2)])
    try:
        if "T" not in value:
            return date.fromisoformat(value)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ZendeskApiError(f"Invalid search: {value!r} is not a date", "invalid", 400) from None
    return utc(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))


def search(kinds: Iterable[str], catalog: dict[str, tuple[Iterable[dict], dict, Callable]], terms: list[Term],
           now: datetime) -> list[tuple[str, dict]]:
    """Every (kind, record) of `kinds` whose record satisfies all `terms`; `catalog` gives each kind's
    records, keyword getters and free-text function."""
    out = []
    for kind in kinds:
        records, fields, text = catalog[kind]
        out += [(kind, r) for r in records if matches(r, fields, text, terms, now)]
    return out
