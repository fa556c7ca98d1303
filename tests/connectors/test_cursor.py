"""Stream state and `advance()`: the cursor rules, JSON versions, and property tests that nothing is lost."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from healthsync.connectors.cursor import (
    _MIGRATIONS,
    STATE_VERSION,
    ApiCursorPosition,
    KeysetPosition,
    StreamState,
    advance,
    id_sort_key,
    is_new,
    new_only,
    query_lower_bound,
    window_query_bounds,
)
from healthsync.errors import FatalError

T0 = datetime(2024, 5, 1, tzinfo=UTC)
OVERLAP = timedelta(minutes=10)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


# --- the rules, one example each -----------------------------------------------------------------------


def test_first_page_sets_a_compound_position_and_boundary() -> None:
    state = advance(
        None, [(at(5), "b"), (at(7), "a"), (at(7), "c")], cycle_started_at=at(100), overlap=OVERLAP
    )
    assert state.position == KeysetPosition(at(7), "c")
    assert state.boundary_ids == frozenset({"a", "c"})
    assert state.overlap_seconds == 600


def test_same_timestamp_on_a_later_page_extends_the_boundary() -> None:
    s1 = advance(None, [(at(7), "a")], cycle_started_at=at(100), overlap=OVERLAP)
    s2 = advance(s1, [(at(7), "b"), (at(3), "z")], cycle_started_at=at(100), overlap=OVERLAP)
    assert s2.position == KeysetPosition(at(7), "b")
    assert s2.boundary_ids == {"a", "b"}
    s3 = advance(s2, [(at(8), "0")], cycle_started_at=at(100), overlap=OVERLAP)
    assert s3.position == KeysetPosition(at(8), "0") and s3.boundary_ids == {"0"}


def test_position_never_moves_backwards() -> None:
    s1 = advance(None, [(at(50), "x")], cycle_started_at=at(100), overlap=OVERLAP)
    s2 = advance(s1, [(at(10), "late"), (at(49), "y")], cycle_started_at=at(100), overlap=OVERLAP)
    assert s2.position == s1.position and s2.boundary_ids == s1.boundary_ids


def test_records_at_or_after_the_cycle_start_do_not_move_the_position() -> None:
    state = advance(
        None, [(at(98), "a"), (at(100), "b"), (at(150), "c")], cycle_started_at=at(100), overlap=OVERLAP
    )
    assert state.position == KeysetPosition(at(98), "a")
    only_future = advance(None, [(at(100), "b")], cycle_started_at=at(100), overlap=OVERLAP)
    assert only_future.position is None  # re-read from the start next cycle


def test_query_bounds_are_inclusive_lower_minus_overlap_and_exclusive_cycle_start() -> None:
    state = advance(None, [(at(3600), "a")], cycle_started_at=at(7200), overlap=OVERLAP)
    assert window_query_bounds(state, OVERLAP, at(7200)) == (at(3000), at(7200))
    # config may change the overlap: the bound follows what the caller passes now
    assert window_query_bounds(state, timedelta(0), at(7200)) == (at(3600), at(7200))
    assert query_lower_bound(state) == at(3000)


def test_query_bounds_without_state_start_from_the_configured_start_or_the_beginning() -> None:
    assert window_query_bounds(None, OVERLAP, at(10)) == (None, at(10))
    assert window_query_bounds(StreamState(), OVERLAP, at(10), start=at(-5)) == (at(-5), at(10))
    assert query_lower_bound(None) is None and query_lower_bound(StreamState()) is None


def test_is_new_drops_only_exact_boundary_duplicates() -> None:
    state = advance(None, [(at(7), "a"), (at(7), "b")], cycle_started_at=at(100), overlap=OVERLAP)
    assert not is_new(state, at(7), "a")
    assert is_new(state, at(7), "c")  # a late commit at the boundary second is still delivered
    assert is_new(state, at(6), "a")  # re-read in the overlap window: an idempotent upsert downstream
    assert is_new(state, at(8), "a")  # updated since
    assert is_new(None, at(7), "a")
    rows = [{"t": at(7), "id": "a"}, {"t": at(7), "id": "z"}, {"t": at(9), "id": "b"}]
    assert new_only(state, rows, key=lambda r: (r["t"], r["id"])) == rows[1:]


def test_rereading_an_unchanged_boundary_emits_nothing() -> None:
    page = [(at(7), "a"), (at(7), "b")]
    state = advance(None, page, cycle_started_at=at(100), overlap=timedelta(0))
    lower, _ = window_query_bounds(state, timedelta(0), at(200))
    reread = [(ts, rid) for ts, rid in page if ts >= lower]
    assert reread == page
    assert [rid for ts, rid in reread if is_new(state, ts, rid)] == []


def test_numeric_ids_order_by_value() -> None:
    state = advance(None, [(at(1), "9"), (at(1), "10")], cycle_started_at=at(100), overlap=OVERLAP)
    assert state.position == KeysetPosition(at(1), "10")
    assert sorted(["10", "9", "b", "A"], key=id_sort_key) == ["9", "10", "A", "b"]


def test_timezones_are_normalised_and_naive_times_refused() -> None:
    plus_one = timezone(timedelta(hours=1))
    state = advance(
        None,
        [(datetime(2024, 5, 1, 1, 0, 5, tzinfo=plus_one), "a")],
        cycle_started_at=at(100),
        overlap=OVERLAP,
    )
    assert state.position == KeysetPosition(at(5), "a")
    assert not is_new(state, at(5), "a")
    with pytest.raises(ValueError, match="naive"):
        advance(None, [(datetime(2024, 5, 1), "a")], cycle_started_at=at(100), overlap=OVERLAP)
    with pytest.raises(ValueError, match="naive"):
        advance(None, [], cycle_started_at=datetime(2024, 5, 1), overlap=OVERLAP)
    with pytest.raises(ValueError, match="negative"):
        advance(None, [], cycle_started_at=at(1), overlap=timedelta(seconds=-1))


def test_api_cursor_position_tracks_high_water_below_cycle_start() -> None:
    s1 = advance(
        None, [(at(5), "1"), (at(200), "2")], cycle_started_at=at(100), overlap=OVERLAP, api_cursor="C1"
    )
    assert s1.position == ApiCursorPosition("C1", at(5))
    s2 = advance(s1, [], cycle_started_at=at(100), overlap=OVERLAP, api_cursor="C2")
    assert s2.position == ApiCursorPosition("C2", at(5))
    assert is_new(s2, at(5), "1")
    # if the API ever refuses the cursor, the stream restarts from its high-water mark minus the overlap
    assert window_query_bounds(s2, OVERLAP, at(100)) == (at(5) - OVERLAP, at(100))
    with pytest.raises(ValueError, match="api_cursor"):
        advance(s2, [(at(6), "3")], cycle_started_at=at(100), overlap=OVERLAP)


def test_switching_a_stream_to_an_api_cursor_keeps_its_progress() -> None:
    keyset = advance(None, [(at(40), "a")], cycle_started_at=at(100), overlap=OVERLAP)
    switched = advance(keyset, [], cycle_started_at=at(100), overlap=OVERLAP, api_cursor="C")
    assert switched.position == ApiCursorPosition("C", at(40)) and switched.boundary_ids == frozenset()


def test_stream_state_validation() -> None:
    with pytest.raises(ValueError, match="boundary_ids"):
        StreamState(boundary_ids=frozenset({"a"}))
    with pytest.raises(ValueError, match="negative"):
        StreamState(overlap_seconds=-1)
    with pytest.raises(ValueError, match="version"):
        StreamState(version=STATE_VERSION + 1)
    with pytest.raises(ValueError, match="empty"):
        ApiCursorPosition("")


def test_with_extra_merges_connector_bookkeeping() -> None:
    state = StreamState().with_extra(id_window_after="1500", mass_update=True)
    again = state.with_extra(id_window_after="3000")
    assert dict(again.extra) == {"id_window_after": "3000", "mass_update": True}
    assert dict(state.extra)["id_window_after"] == "1500"


# --- JSON and versions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "state",
    [
        StreamState(),
        advance(None, [(at(7), "b"), (at(7), "a")], cycle_started_at=at(100), overlap=OVERLAP).with_extra(
            k=1
        ),
        advance(
            None,
            [(at(7), "1")],
            cycle_started_at=at(100),
            overlap=OVERLAP,
            api_cursor="MTU3NjYxMzUzOS4wfHw0Njd8",
        ),
        StreamState(position=ApiCursorPosition("C")),
    ],
)
def test_state_json_round_trip(state: StreamState) -> None:
    data = state.to_json()
    assert data["version"] == STATE_VERSION
    assert StreamState.from_json(data) == state
    assert StreamState.from_json(data).to_json() == data


def test_state_json_is_deterministic() -> None:
    a = advance(None, [(at(7), "b"), (at(7), "a")], cycle_started_at=at(100), overlap=OVERLAP)
    b = advance(None, [(at(7), "a"), (at(7), "b")], cycle_started_at=at(100), overlap=OVERLAP)
    assert a.to_json() == b.to_json()
    assert a.to_json()["boundary_ids"] == ["a", "b"]


def test_newer_state_versions_are_refused_with_advice() -> None:
    data = StreamState().to_json() | {"version": STATE_VERSION + 1}
    with pytest.raises(
        FatalError, match="newer than this healthsync understands.*upgrade healthsync or reset"
    ):
        StreamState.from_json(data)


@pytest.mark.parametrize("version", [None, 0, "1", True])
def test_missing_or_invalid_versions_are_refused(version) -> None:
    data = StreamState().to_json()
    data["version"] = version
    with pytest.raises(FatalError, match="no valid version"):
        StreamState.from_json(data)


def test_corrupt_state_is_refused_clearly() -> None:
    data = StreamState().to_json() | {"position": {"kind": "keyset", "ts": "not a time", "id": "a"}}
    with pytest.raises(FatalError, match="unreadable.*full pull"):
        StreamState.from_json(data)
    with pytest.raises(FatalError, match="unreadable"):
        StreamState.from_json(StreamState().to_json() | {"position": {"kind": "page_number"}})


def test_older_versions_are_migrated_step_by_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulate the day v2 renames a field: a stored v1 state is migrated, then read as v2."""

    def v1_to_v2(data: dict) -> dict:
        migrated = {k: v for k, v in data.items() if k != "overlap_minutes"}
        migrated["overlap_seconds"] = data["overlap_minutes"] * 60
        return migrated

    monkeypatch.setattr("healthsync.connectors.cursor.STATE_VERSION", 2)
    monkeypatch.setitem(_MIGRATIONS, 1, v1_to_v2)
    state = StreamState.from_json({"version": 1, "position": None, "overlap_minutes": 10})
    assert state.overlap_seconds == 600
    assert state.version == 2 and state.to_json()["version"] == 2


def test_a_gap_in_the_migration_chain_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("healthsync.connectors.cursor.STATE_VERSION", 3)
    monkeypatch.setitem(_MIGRATIONS, 1, lambda d: d)
    with pytest.raises(FatalError, match="version 2 cannot be migrated to 3"):
        StreamState.from_json({"version": 1, "position": None})


# --- properties ----------------------------------------------------------------------------------------

IDS = ["1", "2", "10", "a", "b", "B"]
page_records = st.lists(st.tuples(st.integers(0, 30).map(at), st.sampled_from(IDS)), max_size=12)


@given(records=page_records, cut=st.integers(0, 12), cycle=st.integers(1, 40), seed=st.integers(0, 1000))
def test_advance_is_pure_order_insensitive_and_composes(records, cut, cycle, seed) -> None:
    base = advance(None, [(at(3), "a")], cycle_started_at=at(cycle + 3), overlap=OVERLAP)
    before = base.to_json()
    kwargs = {"cycle_started_at": at(cycle + 3), "overlap": OVERLAP}
    once = advance(base, records, **kwargs)
    assert advance(base, records, **kwargs) == once  # same input, same state
    assert base.to_json() == before  # the input state is untouched
    shuffled = list(records)
    random.Random(seed).shuffle(shuffled)
    assert advance(base, shuffled, **kwargs) == once  # order within a page does not matter
    stepwise = advance(advance(base, records[:cut], **kwargs), records[cut:], **kwargs)
    assert stepwise == once  # one page of n records == two pages of the same records
    assert once.position is not None and once.position.ts < at(cycle + 3)


@st.composite
def scenarios(draw):
    ordered = draw(st.booleans())
    cycles = []
    for _ in range(draw(st.integers(1, 6))):
        events = draw(
            st.lists(
                st.tuples(
                    st.sampled_from(IDS), st.sampled_from(["normal", "late", "future"]), st.integers(0, 6)
                ),
                max_size=8,
            )
        )
        crash_after_pages = draw(st.none() | st.integers(0, 4)) if ordered else None
        cycles.append((draw(st.integers(1, 6)), events, crash_after_pages, draw(st.integers(0, 2**16))))
    return {
        "overlap": draw(st.integers(0, 5)),
        "ordered": ordered,
        "use_upper_bound": draw(st.booleans()),
        "page_size": draw(st.integers(1, 4)),
        "cycles": cycles,
    }


def _commit(db: dict[str, int], previous_start: int | None, overlap: int, cycle_start: int, event) -> None:
    """Apply one source-side change made visible since the previous read (which began at `previous_start`).

    The contract the overlap window buys: a change becomes visible at most `overlap` seconds after the time
    it is stamped with, so it is stamped no earlier than `previous_start - overlap`. Changes may also be
    stamped after this cycle's start (server clock ahead of ours, or committed while we read)."""
    rid, kind, k = event
    if kind == "late" and previous_start is not None:
        ts = previous_start - min(k, overlap)
    elif kind == "future":
        ts = cycle_start + k
    else:
        ts = cycle_start - 1 - k
    floor = previous_start - overlap if previous_start is not None else -(10**6)
    if rid in db:
        floor = max(floor, db[rid] + 1)  # a record's modstamp only moves forward
    db[rid] = max(ts, floor)


def _run_cycle(db, store, seen, state, scenario, cycle_start, crash_after_pages, seed):  # noqa: PLR0913 (one simulated cycle's state and scenario, threaded through the property test)
    overlap = timedelta(seconds=scenario["overlap"])
    lower, upper = window_query_bounds(state, overlap, at(cycle_start))
    rows = [(at(ts), rid) for rid, ts in db.items() if (lower is None or at(ts) >= lower)]
    if scenario["use_upper_bound"]:
        rows = [(ts, rid) for ts, rid in rows if ts < upper]
    if scenario["ordered"]:
        rows.sort(key=lambda r: (r[0], id_sort_key(r[1])))
    else:
        random.Random(seed).shuffle(rows)
    size = scenario["page_size"]
    pages = [rows[i : i + size] for i in range(0, len(rows), size)]
    if crash_after_pages is not None:
        pages = pages[:crash_after_pages]  # the process dies; what was committed with its state stays
    for page in pages:
        for ts, rid in page:
            at_boundary = state is not None and state.position is not None and ts == state.position.ts
            if at_boundary and (rid, ts) in seen:
                assert not is_new(state, ts, rid), "a record already covered at the boundary came back"
            if is_new(state, ts, rid):
                store[rid] = ts
        seen.update((rid, ts) for ts, rid in page if ts < at(cycle_start))
        new_state = advance(state, page, cycle_started_at=at(cycle_start), overlap=overlap)
        if state is not None and state.position is not None:
            old = state.position
            assert (new_state.position.ts, id_sort_key(new_state.position.id)) >= (
                old.ts,
                id_sort_key(old.id),
            )
        assert new_state.position is None or new_state.position.ts < at(cycle_start)
        state = new_state
    return state


@settings(max_examples=300, deadline=None)
@given(scenario=scenarios())
def test_read_advance_loop_never_loses_a_record(scenario) -> None:
    """Whatever the interleaving of pages, duplicate timestamps, late commits inside the overlap window,
    records stamped after the cycle start and crashes between ordered pages: once the source goes quiet,
    one clean cycle leaves the downstream store equal to the source; and a version already covered at the
    boundary is never emitted again."""
    db: dict[str, int] = {}
    store: dict[str, datetime] = {}
    seen: set[tuple[str, datetime]] = set()  # versions covered by a saved state (below their cycle start)
    state: StreamState | None = None
    cycle_start, previous_start = 0, None
    for gap, events, crash_after_pages, seed in scenario["cycles"]:
        cycle_start += gap
        for event in events:
            _commit(db, previous_start, scenario["overlap"], cycle_start, event)
        state = _run_cycle(db, store, seen, state, scenario, cycle_start, crash_after_pages, seed)
        previous_start = cycle_start
    final_start = max([cycle_start, *db.values()]) + 1
    state = _run_cycle(db, store, seen, state, scenario, final_start, None, 0)
    assert store == {rid: at(ts) for rid, ts in db.items()}
    if state is not None:  # the saved state survives a round trip through the store
        assert StreamState.from_json(state.to_json()) == state
