"""The pull loop against a scripted source and a real store: pages and cursors land together, raw payloads are
kept, a usage window replaces its days, errors stop only their source and are reported, never raised."""

from datetime import UTC, date, datetime

import pytest

from healthsync.connectors.base import Page, StreamSpec
from healthsync.connectors.cursor import KeysetPosition, StreamState
from healthsync.connectors.records import AccountRecord, DailyUsageRecord, SkippedRecord
from healthsync.errors import AuthError, QuotaExhaustedError
from healthsync.sync.pull import pull_source
from healthsync.sync.store import Store

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


def account(i: int, deleted: bool = False) -> AccountRecord:
    return AccountRecord(id=f"001{i}", name=f"Acme {i}", updated_at=NOW, deleted=deleted)


def state_at(i: int) -> StreamState:
    return StreamState(position=KeysetPosition(NOW, f"001{i}"), overlap_seconds=600)


class ScriptedSource:
    """Yields the pages it was given, then raises what it was told to; records what state it was asked with."""

    name = "crm"

    def __init__(self, pages, error=None, stream="accounts"):
        self.pages, self.error, self.stream, self.asked = pages, error, stream, []

    def streams(self):
        return [StreamSpec(self.stream, AccountRecord, "id", "SystemModstamp", True, 2000)]

    def check(self):
        raise AssertionError("not used")

    def read(self, stream, state, *, as_of, full=False):
        self.asked.append(state)
        yield from self.pages
        if self.error:
            raise self.error


@pytest.fixture()
def store(tmp_path):
    s = Store.open(f"sqlite:///{tmp_path / 'h.db'}")
    yield s
    s.close()


def test_pages_records_raw_payloads_deletes_and_cursor_land(store):
    pages = [
        Page(records=[account(1), account(2)], state=state_at(2), raw={"0011": {"Id": "0011", "Custom__c": 7}}),
        Page(records=[account(1, deleted=True)], skipped=[SkippedRecord(source="crm", stream="accounts",
                                                                        record_id="0019", reason="bad date")],
             state=state_at(3)),
    ]
    report = pull_source(store, ScriptedSource(pages), as_of=NOW, now=lambda: NOW)
    assert report.ok and report.streams["accounts"].records == 2 and report.streams["accounts"].deleted == 1
    assert report.streams["accounts"].skipped == 1 and "0019" in report.skipped_examples[0]
    assert [r.record_id for r in store.records.iter_stream("crm", "accounts")] == ["0012"]
    assert store.records.get("crm", "accounts", "0011").deleted
    assert store.records.get("crm", "accounts", "0012").data["name"] == "Acme 2"
    assert StreamState.from_json(store.records.get_state("crm", "accounts")).position.id == "0013"


def test_raw_payload_is_kept_beside_the_record(store):
    pull_source(store, ScriptedSource([Page(records=[account(5)], state=state_at(5),
                                            raw={"0015": {"Id": "0015", "Custom__c": 7}})]), as_of=NOW, now=lambda: NOW)
    assert store.records.get("crm", "accounts", "0015").raw == {"Id": "0015", "Custom__c": 7}


def test_the_next_pull_resumes_from_the_stored_cursor(store):
    pull_source(store, ScriptedSource([Page(records=[account(1)], state=state_at(1))]), as_of=NOW, now=lambda: NOW)
    again = ScriptedSource([])
    pull_source(store, again, as_of=NOW, now=lambda: NOW)
    assert again.asked[0].position.id == "0011"
    full = ScriptedSource([])
    pull_source(store, full, as_of=NOW, now=lambda: NOW, full=True)
    assert full.asked == [None]


@pytest.mark.parametrize(("error", "kind"), [(AuthError("bad token"), "auth"),
                                             (QuotaExhaustedError("daily share used"), "quota")])
def test_an_error_after_a_page_keeps_the_page_and_reports_failure(store, error, kind):
    report = pull_source(store, ScriptedSource([Page(records=[account(1)], state=state_at(1))], error=error),
                         as_of=NOW, now=lambda: NOW)
    assert not report.ok and report.error_kind == kind and report.error == str(error)
    assert store.records.count("crm", "accounts") == 1  # committed before the failure


def test_a_usage_window_replaces_its_days(store):
    def usage(key, day, events):
        return DailyUsageRecord(account_key=key, key_kind="group_crm_id", day=day, events=events)

    def window(first, last, records):
        st = StreamState(position=None, overlap_seconds=0).with_extra(window_first_day=first, window_last_day=last)
        return Page(records=records, state=st)

    first = [window("2026-11-01", "2026-11-03", [usage("A", date(2026, 11, d), 5) for d in (1, 2, 3)]
                    + [usage("B", date(2026, 11, 2), 1)])]
    pull_source(store, ScriptedSource(first, stream="usage_daily"), as_of=NOW, now=lambda: NOW)
    # a late re-read of days 2..3: B's day 2 is gone (its events were re-attributed), A's day 3 changed
    second = [window("2026-11-02", "2026-11-03", [usage("A", date(2026, 11, 2), 5), usage("A", date(2026, 11, 3), 9)])]
    pull_source(store, ScriptedSource(second, stream="usage_daily"), as_of=NOW, now=lambda: NOW)
    kept = {r.record_id: r.data["events"] for r in store.records.iter_stream("crm", "usage_daily")}
    assert kept == {"group_crm_id:A:2026-11-01": 5, "group_crm_id:A:2026-11-02": 5, "group_crm_id:A:2026-11-03": 9}


def test_the_reported_error_is_redacted_as_it_becomes_data(store):
    # The report's error goes on to the run record, the source status, /healthz and the CLI.
    error = AuthError("401 for https://x.example/api?key=k1&page=2 with password=hunter2-pw")
    report = pull_source(store, ScriptedSource([], error=error), as_of=NOW, now=lambda: NOW)
    assert report.error == "401 for https://x.example/api?… with password=[REDACTED]"
