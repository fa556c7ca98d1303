"""Keyset search over `(hs_lastmodifieddate, hs_object_id)` that never hits the 10,000-result cap, plus the
per-stream state bookkeeping the HubSpot source keeps on top of `connectors.cursor`.

Why a keyset and not plain `after` paging: one search query can page through at most 10,000 results (the
next page is a 400). When a query would pass the cap, we restart it from the last key read:

    (ts > T  AND ts <= upper)  OR  (ts == T  AND hs_object_id > last_id)      sorted by ts, then id

so a month-end mass update of 10k+ records sharing one timestamp is walked by id, never looping and never
asking for result 10,001. Each restart costs nothing extra: it is the call that would have been made anyway.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from hubspot.crm.objects import PublicObjectSearchRequest

from healthsync.connectors.cursor import KeysetPosition, StreamState, id_sort_key, is_new
from healthsync.connectors.hubspot.client import HubSpotClient
from healthsync.connectors.hubspot.mapping import MODSTAMP, OBJECT_ID, epoch_ms, parse_datetime
from healthsync.errors import FatalError

SEARCH_PAGE = 200
MAX_SEARCH_RESULTS = 10_000
RECENT_CAP = 1_000  # (ms, id) pairs remembered inside the overlap window; older ones are simply re-read
_SORTS = [{"propertyName": MODSTAMP, "direction": "ASCENDING"}, {"propertyName": OBJECT_ID, "direction": "ASCENDING"}]

Key = tuple[datetime, str]


@dataclass(frozen=True, slots=True)
class Row:
    """One search result: its cursor key (None when its modstamp is unreadable) and its properties."""

    object_type: str
    id: str | None
    key: Key | None
    properties: Mapping[str, Any] | None
    raw: Any


def keyset_search(  # noqa: PLR0913 (what to search, then the keyword-only modstamp window, filters and page size)
    client: HubSpotClient, object_type: str, properties: Sequence[str], *, lower: datetime | None,
    upper: datetime, extra_filters: Sequence[Mapping[str, Any]] = (), page_size: int = SEARCH_PAGE,
) -> Iterator[list[Row]]:
    """Pages of `object_type` with `lower <= modstamp <= upper` in (modstamp, id) order, past any 10k cap."""
    restart: tuple[int, str] | None = None  # (ms, id) the current query continues after
    offset: str | None = None
    last: tuple[int, str] | None = None
    while True:
        groups = _filter_groups(lower, upper, restart, extra_filters)
        request = PublicObjectSearchRequest(filter_groups=groups, sorts=_SORTS, properties=list(properties),
                                            limit=page_size, after=offset)
        answer = client.call(f"searching {object_type}", "objects.search", "do_search", object_type,
                             public_object_search_request=request, search=True, expect="results")
        rows = [_row(object_type, obj) for obj in answer.data.results]
        for row in rows:
            if row.key is not None:
                last = (epoch_ms(row.key[0]), row.key[1])
        yield rows
        paging = getattr(answer.data, "paging", None)
        next_after = getattr(getattr(paging, "next", None), "after", None)
        if not next_after or not rows:
            return
        if _passes_cap(next_after, page_size):
            if last is None or last == restart:
                raise FatalError(f"hubspot: searching {object_type}: no readable hs_lastmodifieddate in 10,000 "
                                 "results, so the query cannot be continued past the search cap")
            restart, offset = last, None
        else:
            offset = str(next_after)


def _passes_cap(next_after: Any, page_size: int) -> bool:
    """True when asking for the next page would go past result 10,000 (HubSpot answers that with a 400)."""
    text = str(next_after)
    return text.isdecimal() and int(text) + page_size > MAX_SEARCH_RESULTS


def _filter_groups(lower: datetime | None, upper: datetime, restart: tuple[int, str] | None,
                   extra: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    upper_filter = {"propertyName": MODSTAMP, "operator": "LTE", "value": str(epoch_ms(upper))}
    if restart is None:
        filters = [upper_filter, *extra]
        if lower is not None:
            filters.insert(0, {"propertyName": MODSTAMP, "operator": "GTE", "value": str(epoch_ms(lower))})
        return [{"filters": filters}]
    ms, last_id = restart
    later = [{"propertyName": MODSTAMP, "operator": "GT", "value": str(ms)}, upper_filter, *extra]
    same = [{"propertyName": MODSTAMP, "operator": "EQ", "value": str(ms)},
            {"propertyName": OBJECT_ID, "operator": "GT", "value": str(last_id)}, *extra]
    return [{"filters": same}, {"filters": later}]


def _row(object_type: str, obj: Any) -> Row:
    object_id = getattr(obj, "id", None)
    props = getattr(obj, "properties", None)
    if not isinstance(props, Mapping):
        props = None
    stamp = parse_datetime(props.get(MODSTAMP)) if props else None
    key = (stamp, str(object_id)) if stamp is not None and object_id else None
    return Row(object_type, str(object_id) if object_id else None, key, props, obj)


# ---------------------------------------------------------------------------------------------- state


def freshness(state: StreamState | None) -> Callable[[Key], bool]:
    """A test for "not emitted yet": neither at the boundary stamp nor remembered inside the overlap window."""
    recent = _recent(state)
    return lambda key: is_new(state, *key) and f"{epoch_ms(key[0])}:{key[1]}" not in recent


def remember(previous: StreamState | None, advanced: StreamState, keys: Sequence[Key]) -> StreamState:
    """`advanced` plus the (ms, id) pairs read inside its overlap window, so a quiet re-read emits nothing."""
    position = advanced.position
    if not isinstance(position, KeysetPosition):
        return advanced
    floor = epoch_ms(position.ts - timedelta(seconds=advanced.overlap_seconds))
    entries = {e for e in _recent(previous) if int(e.split(":", 1)[0]) >= floor}
    entries.update(f"{epoch_ms(ts)}:{rid}" for ts, rid in keys if epoch_ms(ts) >= floor)
    newest = sorted(entries, key=_entry_order)[-RECENT_CAP:]
    return advanced.with_extra(recent=" ".join(newest))


def _entry_order(entry: str) -> tuple[int, tuple[int, int, str]]:
    ms, rid = entry.split(":", 1)
    return int(ms), id_sort_key(rid)


def _recent(state: StreamState | None) -> set[str]:
    raw = state.extra.get("recent") if state else None
    return set(str(raw).split()) if raw else set()


def sub_state(state: StreamState | None, object_type: str, multi: bool) -> StreamState | None:
    """The cursor of one object type: the stream's own state, or (activities) its part kept in `extra`."""
    if not multi:
        return state
    raw = state.extra.get(f"sub.{object_type}") if state else None
    if not raw:
        return None
    try:
        return StreamState.from_json(json.loads(str(raw)))
    except ValueError:
        raise FatalError(f"hubspot: the stored {object_type} cursor is unreadable; "
                         "reset the activities stream with a full pull") from None


def with_sub_state(state: StreamState | None, object_type: str, sub: StreamState,
                   types: Sequence[str]) -> StreamState:
    """The stream state after one of its object `types` moved to `sub` (stream-level extras are kept)."""
    if len(types) == 1:
        kept = {k: v for k, v in (state.extra.items() if state else ()) if k not in sub.extra}
        return sub.with_extra(**kept) if kept else sub
    base = state or StreamState(overlap_seconds=sub.overlap_seconds)
    merged = base.with_extra(**{f"sub.{object_type}": json.dumps(sub.to_json(), separators=(",", ":"))})
    return replace(merged, position=_earliest(merged, types), boundary_ids=frozenset(),
                   overlap_seconds=sub.overlap_seconds)


def _earliest(state: StreamState, types: Sequence[str]) -> KeysetPosition | None:
    """The least advanced sub-cursor: what the stream as a whole is known to cover (informational only)."""
    positions = []
    for object_type in types:
        sub = sub_state(state, object_type, multi=True)
        if sub is None or not isinstance(sub.position, KeysetPosition):
            return None
        positions.append(sub.position)
    return min(positions, key=lambda p: (p.ts, id_sort_key(p.id)))


def sweep_due(state: StreamState | None, as_of: datetime, every: timedelta) -> bool:
    swept = swept_at(state)
    return swept is None or as_of - swept >= every


def swept_at(state: StreamState | None) -> datetime | None:
    raw = state.extra.get("archived_swept_at") if state else None
    return parse_datetime(raw) if raw else None
