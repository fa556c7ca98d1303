"""Stream state as data: one typed, versioned `StreamState` per stream and the one pure `advance()` that moves it.

The rules, in one place:

* **Compound position.** A timestamp alone is not unique (`SystemModstamp`, `hs_lastmodifieddate`: a
  month-end mass update gives thousands of rows one stamp), so the position is `(timestamp, id)`.
* **Inclusive lower bound with an overlap window.** The next incremental query reads
  `cursor_field >= position.ts - overlap` (see `window_query_bounds`). Rows can commit with a timestamp
  below a position already saved (long transactions, replication lag, API-side clock skew); re-reading the
  overlap window catches them. Records re-read inside the window are upserted again downstream — harmless.
* **Dedupe at the boundary.** The ids already seen at exactly `position.ts` are kept in `boundary_ids`;
  `is_new()` drops those on the re-read so a page that returns only boundary rows makes no writes.
* **Never past the cycle start.** Records stamped at or after the cycle's start (`as_of`) are emitted, but
  the position is clamped below it: whatever was still committing when the cycle began, and whatever the
  server stamped with a clock ahead of ours, is therefore re-read next cycle instead of being jumped over.
* **Opaque API cursors** (Zendesk's incremental export) are stored as given, with a `high_water` timestamp
  so the stream can restart from a time if the API ever refuses the cursor.

Connector idiom (pages read in ascending `(ts, id)` order, so the state after each page is safe to save):

    lower, upper = window_query_bounds(state, overlap, as_of, start=config_start)
    for raw_page in query(lower, upper):            # ORDER BY ts, id
        records = [to_record(raw) for raw in raw_page]
        fresh = [r for r in records if is_new(state, r.updated_at, r.id)]
        state = advance(state, [(r.updated_at, r.id) for r in records], cycle_started_at=as_of, overlap=overlap)
        yield Page(records=tuple(fresh), ..., state=state)

If a source cannot return rows in that order, yield the state only with the last page.

Guarantee (property-tested in tests/connectors/test_cursor.py): a change that becomes visible at most
`overlap` after the time it is stamped with is delivered, across crashes between pages and restarts.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from healthsync.errors import FatalError

STATE_VERSION = 1
"""Version written by this code. Bump it and add a `_MIGRATIONS` entry when the JSON shape changes."""

_MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}
"""`_MIGRATIONS[n]` turns a version-n JSON dict into a version-(n+1) dict. Empty while only v1 exists."""

StateExtraValue = str | int | float | bool | None
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class KeysetPosition:
    """Last record covered, as a compound `(ts, id)`: the largest seen below the cycle start."""

    ts: datetime
    id: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "ts", _utc(self.ts, "KeysetPosition.ts"))


@dataclass(frozen=True, slots=True)
class ApiCursorPosition:
    """An opaque cursor the API handed us (Zendesk `after_cursor`), plus the newest record time seen."""

    cursor: str
    high_water: datetime | None = None

    def __post_init__(self) -> None:
        if not self.cursor:
            raise ValueError("ApiCursorPosition.cursor must not be empty")
        if self.high_water is not None:
            object.__setattr__(self, "high_water", _utc(self.high_water, "ApiCursorPosition.high_water"))


Position = KeysetPosition | ApiCursorPosition


@dataclass(frozen=True, slots=True)
class StreamState:
    """Where a stream stands. `position` None means "never read": the next read starts from the beginning."""

    position: Position | None = None
    overlap_seconds: int = 0
    boundary_ids: frozenset[str] = frozenset()
    extra: Mapping[str, StateExtraValue] = field(default_factory=dict, hash=False)
    version: int = STATE_VERSION

    def __post_init__(self) -> None:
        if self.version != STATE_VERSION:
            raise ValueError(f"StreamState version {self.version} is not the current {STATE_VERSION}")
        if self.overlap_seconds < 0:
            raise ValueError(f"StreamState.overlap_seconds must not be negative, got {self.overlap_seconds}")
        if self.boundary_ids and not isinstance(self.position, KeysetPosition):
            raise ValueError("StreamState.boundary_ids only make sense with a (timestamp, id) position")
        object.__setattr__(self, "boundary_ids", frozenset(self.boundary_ids))
        object.__setattr__(self, "extra", types.MappingProxyType(dict(self.extra)))

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict; identical states serialise identically (ids sorted, keys ordered)."""
        return {
            "version": self.version,
            "position": _position_to_json(self.position),
            "overlap_seconds": self.overlap_seconds,
            "boundary_ids": sorted(self.boundary_ids),
            "extra": dict(sorted(self.extra.items())),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StreamState:
        """Read a stored state, migrating older versions; a newer or unknown version is refused clearly."""
        try:
            migrated = _migrate(dict(data))
            return cls(
                position=_position_from_json(migrated.get("position")),
                overlap_seconds=int(migrated.get("overlap_seconds", 0)),
                boundary_ids=frozenset(str(i) for i in migrated.get("boundary_ids", ())),
                extra=dict(migrated.get("extra", {})),
                version=STATE_VERSION,
            )
        except FatalError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise FatalError(
                f"stored stream state is unreadable ({exc}); reset the stream with a full pull"
            ) from None

    def with_extra(self, **values: StateExtraValue) -> StreamState:
        """A copy with connector-specific bookkeeping merged into `extra` (e.g. HubSpot's id window)."""
        return replace(self, extra={**self.extra, **values})


def advance(
    state: StreamState | None,
    page_records: Sequence[tuple[datetime, str]],
    *,
    cycle_started_at: datetime,
    overlap: timedelta,
    api_cursor: str | None = None,
) -> StreamState:
    """The state after a page: pure, deterministic, never moving backwards, never reaching `cycle_started_at`.

    `page_records` are `(cursor timestamp, primary key)` of every record in the page — new, re-read or
    deleted alike. Records at or after `cycle_started_at` do not move the position (see module docstring).
    With `api_cursor`, the position becomes that opaque cursor and only its `high_water` follows the records.
    """
    cycle_start = _utc(cycle_started_at, "cycle_started_at")
    if overlap < timedelta(0):
        raise ValueError(f"overlap must not be negative, got {overlap}")
    previous = state or StreamState()
    settled = [(_utc(ts, "record timestamp"), str(rid)) for ts, rid in page_records]
    settled = [(ts, rid) for ts, rid in settled if ts < cycle_start]
    overlap_seconds = int(overlap.total_seconds())
    if api_cursor is not None:
        return _advance_api_cursor(previous, settled, api_cursor, overlap_seconds)
    if isinstance(previous.position, ApiCursorPosition):
        raise ValueError("advance: this stream is read with an API cursor; pass api_cursor=")
    return _advance_keyset(previous, settled, overlap_seconds)


def _advance_keyset(
    previous: StreamState, settled: list[tuple[datetime, str]], overlap_seconds: int
) -> StreamState:
    position = previous.position
    assert position is None or isinstance(position, KeysetPosition)
    boundary = set(previous.boundary_ids)
    for ts, rid in settled:
        if position is None or ts > position.ts:
            position, boundary = KeysetPosition(ts, rid), {rid}
        elif ts == position.ts:
            boundary.add(rid)
            if id_sort_key(rid) > id_sort_key(position.id):
                position = KeysetPosition(ts, rid)
    return replace(
        previous, position=position, boundary_ids=frozenset(boundary), overlap_seconds=overlap_seconds
    )


def _advance_api_cursor(
    previous: StreamState, settled: list[tuple[datetime, str]], api_cursor: str, overlap_seconds: int
) -> StreamState:
    old = previous.position
    high_water = old.high_water if isinstance(old, ApiCursorPosition) else None
    if isinstance(old, KeysetPosition):
        high_water = old.ts  # switching a stream from timestamps to an API cursor keeps its progress
    newest = max((ts for ts, _ in settled), default=None)
    if newest is not None and (high_water is None or newest > high_water):
        high_water = newest
    return replace(
        previous,
        position=ApiCursorPosition(api_cursor, high_water),
        boundary_ids=frozenset(),
        overlap_seconds=overlap_seconds,
    )


def window_query_bounds(
    state: StreamState | None,
    overlap: timedelta,
    cycle_started_at: datetime,
    *,
    start: datetime | None = None,
) -> tuple[datetime | None, datetime]:
    """`(inclusive lower, exclusive upper)` for the incremental query's WHERE clause.

    lower = position timestamp − overlap (for an API cursor: its high-water mark − overlap, the time to
    restart from if the cursor is refused); with no position, `start` (None = from the beginning).
    upper = `cycle_started_at`. A source that cannot filter on an upper bound may omit it: `advance` clamps.
    The window is empty (lower ≥ upper) only when a stored position is newer than this cycle (a replay).
    """
    upper = _utc(cycle_started_at, "cycle_started_at")
    anchor = _position_time(state.position) if state else None
    if anchor is None:
        return (_utc(start, "start") if start is not None else None), upper
    return anchor - overlap, upper


def query_lower_bound(state: StreamState | None) -> datetime | None:
    """The inclusive lower bound using the overlap stored with the state (None: read from the beginning)."""
    if state is None:
        return None
    anchor = _position_time(state.position)
    return None if anchor is None else anchor - timedelta(seconds=state.overlap_seconds)


def is_new(state: StreamState | None, ts: datetime, record_id: str) -> bool:
    """False only for a record already emitted at exactly the boundary timestamp; everything else is new."""
    if state is None or not isinstance(state.position, KeysetPosition):
        return True
    return not (_utc(ts, "record timestamp") == state.position.ts and str(record_id) in state.boundary_ids)


def new_only(
    state: StreamState | None, items: Iterable[T], key: Callable[[T], tuple[datetime, str]]
) -> list[T]:
    """The items `is_new` keeps, in their original order; `key` gives an item's `(timestamp, id)`."""
    return [item for item in items if is_new(state, *key(item))]


def id_sort_key(record_id: str) -> tuple[int, int, str]:
    """Order ids the way the APIs do: numeric ids (HubSpot, Zendesk) by value, others as text."""
    if record_id.isdecimal():
        return (0, int(record_id), record_id)
    return (1, 0, record_id)


def _position_time(position: Position | None) -> datetime | None:
    if isinstance(position, KeysetPosition):
        return position.ts
    if isinstance(position, ApiCursorPosition):
        return position.high_water
    return None


def _utc(value: datetime, what: str) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{what} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} is a naive datetime; cursors compare UTC times, give it a timezone")
    return value.astimezone(UTC)


def _position_to_json(position: Position | None) -> dict[str, Any] | None:
    if isinstance(position, KeysetPosition):
        return {"kind": "keyset", "ts": position.ts.isoformat(), "id": position.id}
    if isinstance(position, ApiCursorPosition):
        high_water = position.high_water.isoformat() if position.high_water else None
        return {"kind": "api_cursor", "cursor": position.cursor, "high_water": high_water}
    return None


def _position_from_json(data: Mapping[str, Any] | None) -> Position | None:
    if data is None:
        return None
    kind = data["kind"]
    if kind == "keyset":
        return KeysetPosition(datetime.fromisoformat(data["ts"]), str(data["id"]))
    if kind == "api_cursor":
        high_water = data.get("high_water")
        return ApiCursorPosition(
            str(data["cursor"]), datetime.fromisoformat(high_water) if high_water else None
        )
    raise ValueError(f"unknown position kind {kind!r}")


def _migrate(data: dict[str, Any]) -> dict[str, Any]:
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise FatalError(
            f"stored stream state has no valid version ({version!r}); reset the stream with a full pull"
        )
    if version > STATE_VERSION:
        raise FatalError(
            f"stored stream state is version {version}, newer than this healthsync understands "
            f"({STATE_VERSION}); upgrade healthsync or reset the stream with a full pull"
        )
    while version < STATE_VERSION:
        step = _MIGRATIONS.get(version)
        if step is None:
            raise FatalError(
                f"stored stream state version {version} cannot be migrated to {STATE_VERSION}; "
                "reset the stream with a full pull"
            )
        data = step(data)
        version += 1
        data["version"] = version
    return data
