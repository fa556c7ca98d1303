"""CRM search semantics: filterGroups (OR of ANDs), typed comparisons, sorts and the request's own limits."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any

from healthsync.sandbox.hubspot.schema import Schema, parse_datetime_ms
from healthsync.sandbox.hubspot.store import HsObject, ObjectStore
from healthsync.sandbox.hubspot.types import normalize_type

MAX_FILTER_GROUPS = 5
MAX_FILTERS_PER_GROUP = 6
MAX_FILTERS_TOTAL = 18
MAX_SEARCH_LIMIT = 200
MAX_SEARCH_RESULTS = 10_000
OPERATORS = {"EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN", "HAS_PROPERTY",
             "NOT_HAS_PROPERTY", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"}
_QUERY_PROPERTIES = {
    "companies": ("name", "domain"), "contacts": ("email", "firstname", "lastname"), "deals": ("dealname",),
    "tasks": ("hs_task_subject",), "meetings": ("hs_meeting_title",), "calls": ("hs_call_title",),
    "emails": ("hs_email_subject",), "notes": ("hs_note_body",),
}


class SearchError(ValueError):
    """The search request is invalid: the emulator answers 400 VALIDATION_ERROR with this message."""


@dataclass(frozen=True)
class Filter:
    property_name: str
    operator: str
    kind: str  # number | datetime | date | text | association
    value: Any = None
    high_value: Any = None
    values: tuple = ()
    association_type: str | None = None


@lru_cache(maxsize=200_000)
def _datetime_ms(text: str) -> int | None:
    return parse_datetime_ms(text)


def _date_ms(text: str) -> int | None:
    try:
        return _datetime_ms(date.fromisoformat(text.strip()).isoformat())
    except ValueError:
        return _datetime_ms(text)


def typed(kind: str, raw: Any) -> Any:
    """A comparable value of `raw` for a property kind, or None when it has none (or cannot be read)."""
    if raw is None or raw == "":
        return None
    text = str(raw)
    if kind == "number":
        try:
            return float(text)
        except ValueError:
            return None
    if kind == "datetime":
        return _datetime_ms(text)
    if kind == "date":
        return _date_ms(text)
    return text.lower()


def _kind_of(prop_type: str) -> str:
    return {"number": "number", "datetime": "datetime", "date": "date"}.get(prop_type, "text")


def compile_filter_groups(groups: Any, schema: Schema, object_type: str) -> list[list[Filter]]:
    if groups is None:
        return []
    if not isinstance(groups, list):
        raise SearchError("filterGroups must be a list.")
    if len(groups) > MAX_FILTER_GROUPS:
        raise SearchError(f"Too many filter groups: {len(groups)}. The maximum is {MAX_FILTER_GROUPS}.")
    compiled, total = [], 0
    for group in groups:
        filters = (group or {}).get("filters") or []
        if len(filters) > MAX_FILTERS_PER_GROUP:
            raise SearchError(f"Too many filters in a filter group: {len(filters)}. "
                              f"The maximum is {MAX_FILTERS_PER_GROUP}.")
        total += len(filters)
        compiled.append([compile_filter(f, schema, object_type) for f in filters])
    if total > MAX_FILTERS_TOTAL:
        raise SearchError(f"Too many filters: {total}. The maximum across all groups is {MAX_FILTERS_TOTAL}.")
    return compiled


def compile_filter(raw: Any, schema: Schema, object_type: str) -> Filter:
    if not isinstance(raw, dict):
        raise SearchError("Each filter must be an object with propertyName and operator.")
    name, operator = raw.get("propertyName"), str(raw.get("operator") or "").upper()
    if not name:
        raise SearchError("A filter is missing propertyName.")
    if operator not in OPERATORS:
        raise SearchError(f"Invalid operator {raw.get('operator')!r} for property {name}.")
    if name.startswith("associations."):
        target = normalize_type(name.split(".", 1)[1])
        if target is None or operator not in ("EQ", "IN"):
            raise SearchError(f"Unsupported association filter {name} {operator}.")
        ids = tuple(str(v) for v in (raw.get("values") or [raw.get("value")]) if v is not None)
        return Filter(name, operator, "association", values=ids, association_type=target)
    prop = schema.get(object_type, name)
    if prop is None:
        raise SearchError(f"Property '{name}' does not exist on {object_type}.")
    kind = _kind_of(prop.type)
    return Filter(name, operator, kind, value=_operand(kind, raw.get("value"), name, operator),
                  high_value=_operand(kind, raw.get("highValue"), name, operator),
                  values=tuple(_operand(kind, v, name, operator) for v in (raw.get("values") or [])))


def _operand(kind: str, raw: Any, name: str, operator: str) -> Any:
    if raw is None:
        return None
    if operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        return str(raw).lower()
    value = typed(kind, raw)
    if value is None and kind != "text":
        raise SearchError(f"{raw!r} is not a valid {kind} value for filter {name} {operator}.")
    return value


def _tokens(text: str) -> list[str]:
    return [text, *re.split(r"\s+", text), *[t for t in re.split(r"[^0-9a-z]+", text) if t]]


def _contains_token(text: str | None, pattern: str) -> bool:
    if text is None:
        return False
    candidates = _tokens(text.lower())
    if "*" in pattern:
        return any(fnmatch.fnmatchcase(c, pattern) for c in candidates)
    return pattern in candidates


def matches(obj: HsObject, flt: Filter, store: ObjectStore) -> bool:
    if flt.kind == "association":
        linked = store.associated(obj.object_type, obj.id, flt.association_type or "")
        return any(v in linked for v in flt.values)
    raw = obj.properties.get(flt.property_name)
    op = flt.operator
    if op == "HAS_PROPERTY":
        return raw not in (None, "")
    if op == "NOT_HAS_PROPERTY":
        return raw in (None, "")
    if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        found = _contains_token(raw, flt.value or "")
        return found if op == "CONTAINS_TOKEN" else not found
    value = typed(flt.kind, raw)
    if op == "NEQ":
        return value != flt.value
    if op == "NOT_IN":
        return value not in flt.values
    if value is None:
        return False
    return _compare(op, value, flt)


def _compare(op: str, value: Any, flt: Filter) -> bool:
    if op == "IN":
        return value in flt.values
    if flt.value is None:
        return False
    try:
        if op == "EQ":
            return value == flt.value
        if op == "LT":
            return value < flt.value
        if op == "LTE":
            return value <= flt.value
        if op == "GT":
            return value > flt.value
        if op == "GTE":
            return value >= flt.value
        if op == "BETWEEN":
            return flt.high_value is not None and flt.value <= value <= flt.high_value
    except TypeError:
        return False
    return False


def matches_query(obj: HsObject, query: str | None) -> bool:
    if not query:
        return True
    words = query.lower().split()
    haystack = " ".join(obj.properties.get(p) or "" for p in _QUERY_PROPERTIES[obj.object_type]).lower()
    tokens = set(_tokens(haystack))
    return all(any(t.startswith(w) for t in tokens) for w in words)


def parse_sorts(raw: Any, schema: Schema, object_type: str) -> list[tuple[str, str, bool]]:
    """[(property, kind, descending)] from `"prop"`, `"-prop"` or `{propertyName, direction}` entries."""
    sorts = []
    for entry in raw or []:
        if isinstance(entry, str):
            name, descending = entry.lstrip("-"), entry.startswith("-")
        elif isinstance(entry, dict) and entry.get("propertyName"):
            direction = str(entry.get("direction") or "ASCENDING").upper()
            if direction not in ("ASCENDING", "DESCENDING"):
                raise SearchError(f"Invalid sort direction {entry.get('direction')!r}; use ASCENDING or DESCENDING.")
            name, descending = entry["propertyName"], direction == "DESCENDING"
        else:
            raise SearchError(f"Invalid sort {entry!r}.")
        prop = schema.get(object_type, name)
        if prop is None:
            raise SearchError(f"Cannot sort by '{name}': no such property on {object_type}.")
        sorts.append((name, _kind_of(prop.type), descending))
    return sorts


def order(objects: list[HsObject], sorts: list[tuple[str, str, bool]]) -> list[HsObject]:
    """Sorted by the given sorts; ties (and no sorts) by id ascending; records without a value last."""
    ordered = sorted(objects, key=lambda o: o.numeric_id)
    for name, kind, descending in reversed(sorts):
        keyed = [(typed(kind, o.properties.get(name)), o) for o in ordered]
        present = [pair for pair in keyed if pair[0] is not None]
        present.sort(key=lambda pair: pair[0], reverse=descending)  # stable: id order survives ties
        ordered = [o for _, o in present] + [o for value, o in keyed if value is None]
    return ordered
