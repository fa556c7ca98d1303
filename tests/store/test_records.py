"""Records and cursors: commit_page atomicity, upserts, deletes, JSON and datetime round-trips."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import sqlalchemy as sa

from healthsync.sync.store import RecordRow, StateConflictError, Store
from healthsync.sync.store import records as store_module

T0 = datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)
T2 = T0 + timedelta(hours=2)


def row(record_id: str, updated_at: datetime | None = T0, **data: object) -> RecordRow:
    return RecordRow(record_id, dict(data), updated_at, raw={"Id": record_id, **data})


def test_commit_page_writes_records_deletes_and_state_together(store: Store) -> None:
    store.records.commit_page(
        "salesforce", "Account", [row("A1", name="Acme"), row("A2", name="Beta")], [], {"pos": 1}, now=T0
    )
    revision = store.records.commit_page(
        "salesforce", "Account", [row("A3", T1, name="Gamma")], ["A1"], {"pos": 2}, now=T1, run_id="run-2"
    )
    assert revision == 2
    assert store.records.get_state("salesforce", "Account") == {"pos": 2}
    assert store.records.count("salesforce", "Account") == 2
    assert store.records.count("salesforce", "Account", include_deleted=True) == 3
    gone = store.records.get("salesforce", "Account", "A1")
    assert gone.deleted and gone.deleted_at == T1
    assert store.records.get("salesforce", "Account", "A3").first_seen_run == "run-2"


def test_commit_page_failing_midway_leaves_neither_records_nor_state(store: Store) -> None:
    # The records are written first; the state cannot be serialised, so the whole page must roll back.
    with pytest.raises(sa.exc.StatementError):
        store.records.commit_page("zendesk", "tickets", [row("1", subject="x")], [], {"bad": object()}, now=T0)
    assert store.records.get("zendesk", "tickets", "1") is None
    assert store.records.get_state("zendesk", "tickets") is None


def test_failed_page_keeps_the_previous_page_and_state_intact(store: Store) -> None:
    store.records.commit_page("zendesk", "tickets", [row("1", status="open")], [], {"cursor": "c1"}, now=T0)
    with pytest.raises(sa.exc.StatementError):
        store.records.commit_page(
            "zendesk", "tickets", [row("1", T1, status="solved")], ["1"], {"x": object()}, now=T1
        )
    kept = store.records.get("zendesk", "tickets", "1")
    assert kept.data == {"status": "open"} and not kept.deleted
    assert store.records.get_state_row("zendesk", "tickets").revision == 1
    assert store.records.get_state("zendesk", "tickets") == {"cursor": "c1"}


def test_transaction_rolls_back_every_call_on_error(store: Store) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with store.transaction() as tx:
            tx.records.upsert("hubspot", "companies", [row("9", name="Nine")], now=T0)
            tx.records.set_state("hubspot", "companies", {"after": "9"}, now=T0)
            tx.runs.record_source_success("hubspot", now=T0)
            raise RuntimeError("boom")
    assert store.records.get("hubspot", "companies", "9") is None
    assert store.records.get_state("hubspot", "companies") is None
    assert store.runs.source_status("hubspot") is None


def test_upsert_updates_in_place_and_keeps_first_seen(store: Store) -> None:
    store.records.upsert("salesforce", "Account", [row("A1", T0, name="Old")], now=T0, run_id="r1")
    store.records.upsert("salesforce", "Account", [row("A1", T1, name="New")], now=T2, run_id="r2")
    stored = store.records.get("salesforce", "Account", "A1")
    assert stored.data == {"name": "New"}
    assert stored.raw == {"Id": "A1", "name": "New"}
    assert (stored.updated_at, stored.first_seen_at, stored.last_seen_at) == (T1, T0, T2)
    assert stored.first_seen_run == "r1"
    assert store.records.count("salesforce") == 1


def test_an_older_version_never_overwrites_a_newer_one(store: Store) -> None:
    # An overlap window re-reads records; a stale copy must not win.
    store.records.upsert("salesforce", "Account", [row("A1", T1, name="Newer")], now=T1)
    store.records.upsert("salesforce", "Account", [row("A1", T0, name="Older")], now=T2)
    assert store.records.get("salesforce", "Account", "A1").data == {"name": "Newer"}
    store.records.upsert("salesforce", "Account", [row("A1", T1, name="Same stamp, new field map")], now=T2)
    assert store.records.get("salesforce", "Account", "A1").data == {"name": "Same stamp, new field map"}


def test_duplicates_within_a_page_keep_the_last(store: Store) -> None:
    count = store.records.upsert(
        "zendesk", "tickets", [row("7", status="new"), row("7", status="open")], now=T0
    )
    assert count == 1
    assert store.records.get("zendesk", "tickets", "7").data == {"status": "open"}


def test_a_deleted_record_comes_back_when_seen_again(store: Store) -> None:
    store.records.upsert("salesforce", "Contact", [row("C1", T0, name="Ann")], now=T0)
    assert store.records.mark_deleted("salesforce", "Contact", ["C1", "unknown"], now=T1) == 1
    assert (
        store.records.mark_deleted("salesforce", "Contact", ["C1"], now=T2) == 0
    )  # already deleted: deleted_at kept
    assert store.records.get("salesforce", "Contact", "C1").deleted_at == T1
    store.records.upsert("salesforce", "Contact", [row("C1", T2, name="Ann")], now=T2)
    back = store.records.get("salesforce", "Contact", "C1")
    assert not back.deleted and back.deleted_at is None


def test_json_round_trips_nested_values_exactly(store: Store) -> None:
    data = {
        "name": "Zürich AG ✓",
        "nested": {"list": [1, 2.5, None, True, "x"], "empty": {}},
        "acv": Decimal("120000.50"),
        "closed_at": datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2))),
        "renewal": T0.date(),
        "tags": {"b", "a"},
        "nul": "a\u0000b",
        "backslash_u": "\\u0000 stays text",
    }
    store.records.upsert("hubspot", "companies", [RecordRow("1", data, T0, raw={"properties": data})], now=T0)
    stored = store.records.get("hubspot", "companies", "1")
    assert stored.data == {
        "name": "Zürich AG ✓",
        "nested": {"list": [1, 2.5, None, True, "x"], "empty": {}},
        "acv": "120000.50",
        "closed_at": "2024-01-02T01:04:05+00:00",
        "renewal": "2024-03-01",
        "tags": ["a", "b"],
        "nul": "a\ufffdb",
        "backslash_u": "\\u0000 stays text",
    }
    assert stored.raw == {"properties": stored.data}


def test_datetimes_come_back_aware_utc_whatever_zone_went_in(store: Store) -> None:
    tokyo = datetime(2024, 3, 1, 18, 30, tzinfo=timezone(timedelta(hours=9)))
    store.records.upsert("salesforce", "Account", [row("A1", tokyo)], now=tokyo)
    stored = store.records.get("salesforce", "Account", "A1")
    assert stored.updated_at == T0
    assert stored.updated_at.utcoffset() == timedelta(0)
    assert stored.first_seen_at.tzinfo is not None


def test_naive_datetimes_are_refused(store: Store) -> None:
    with pytest.raises(sa.exc.StatementError, match="naive datetime"):
        store.records.upsert("salesforce", "Account", [row("A1", datetime(2024, 1, 1))], now=T0)
    with pytest.raises(sa.exc.StatementError, match="naive datetime"):
        store.records.upsert("salesforce", "Account", [row("A1", T0, when=datetime(2024, 1, 1))], now=T0)
    assert store.records.get("salesforce", "Account", "A1") is None


def test_account_ids_are_attached_later_and_kept_by_upserts(store: Store) -> None:
    store.records.upsert("zendesk", "organizations", [row("o1"), row("o2")], now=T0)
    assert store.records.set_account_ids("zendesk", "organizations", {"o1": "001A", "o2": None, "missing": "x"}) == 2
    store.records.upsert("zendesk", "organizations", [row("o1", T1, name="renamed")], now=T1)
    assert store.records.get("zendesk", "organizations", "o1").account_id == "001A"
    assert [r.record_id for r in store.records.for_account("001A")] == ["o1"]
    assert store.records.for_account("001A", source="salesforce") == []


def test_iter_records_pages_through_everything_in_order(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "_ITER_BATCH", 3)
    store.records.upsert("mixpanel", "profiles", [row(f"u{i:02d}") for i in range(10)], now=T0)
    store.records.mark_deleted("mixpanel", "profiles", ["u04"], now=T1)
    ids = [r.record_id for r in store.records.iter_stream("mixpanel", "profiles")]
    assert ids == [f"u{i:02d}" for i in range(10) if i != 4]
    assert len(list(store.records.iter_stream("mixpanel", "profiles", include_deleted=True))) == 10


def test_state_revisions_count_writes_and_guard_against_other_writers(store: Store) -> None:
    assert store.records.set_state("salesforce", "Account", {"ts": "a"}, now=T0, version=2, expected_revision=0) == 1
    assert store.records.set_state("salesforce", "Account", {"ts": "b"}, now=T1, expected_revision=1) == 2
    with pytest.raises(StateConflictError, match="revision 2, expected 1"):
        store.records.commit_page("salesforce", "Account", [row("A9")], [], {"ts": "c"}, now=T2, expected_revision=1)
    assert store.records.get("salesforce", "Account", "A9") is None
    state = store.records.get_state_row("salesforce", "Account")
    assert (state.state, state.version, state.revision, state.updated_at) == ({"ts": "b"}, 1, 2, T1)


def test_reset_state_forgets_cursors_of_one_source(store: Store) -> None:
    for stream in ("Account", "Contact"):
        store.records.set_state("salesforce", stream, {"ts": stream}, now=T0)
    store.records.set_state("zendesk", "tickets", {"cursor": "z"}, now=T0)
    assert store.records.reset_state("salesforce", "Contact") == 1
    assert store.records.get_state("salesforce", "Contact") is None
    assert store.records.reset_state("salesforce") == 1
    assert store.records.get_state("salesforce", "Account") is None
    assert store.records.get_state("zendesk", "tickets") == {"cursor": "z"}


def test_a_large_page_commits_in_one_go(store: Store) -> None:
    rows = [row(f"T{i:05d}", T0, subject=f"ticket {i}", body="x" * 200) for i in range(3000)]
    deletes = [f"T{i:05d}" for i in range(0, 3000, 3)]
    store.records.commit_page("zendesk", "tickets", rows, deletes, {"cursor": "end"}, now=T1)
    assert store.records.count("zendesk", "tickets") == 2000
    assert store.records.count("zendesk", "tickets", include_deleted=True) == 3000


def test_commit_page_inside_a_transaction_joins_it(store: Store) -> None:
    # A caller's transaction takes the page with it when it rolls back (commit_page does not commit on its own).
    with pytest.raises(RuntimeError, match="later step failed"), store.transaction() as tx:
        assert tx.records.commit_page("zendesk", "tickets", [row("1", status="new")], [], {"c": 1}, now=T0) == 1
        assert tx.records.get_state("zendesk", "tickets") == {"c": 1}  # visible inside
        raise RuntimeError("later step failed")
    assert store.records.get("zendesk", "tickets", "1") is None
    assert store.records.get_state("zendesk", "tickets") is None
