"""The Salesforce Source: accounts, contacts, opportunities, activities (Task + Event), users and our own tasks,
read incrementally on (SystemModstamp, Id) through `queryAll`, so one query per object returns changes and
deletes alike; initial loads of big objects switch to Bulk API 2.0.

Call budget, per stream and cycle: an incremental read with no changes is one `queryAll` per object (activities
read Task and Event, so two); a read of R rows costs ceil(R / 2000) REST calls, or — for an initial load whose
first page reports more than `bulk_threshold` rows — that first page plus ~3 Bulk calls (create, poll, results).
Describes are cached for `schema_ttl` seconds on the connection, so they cost nothing on most cycles.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from healthsync.config.settings import FieldMap, Settings
from healthsync.connectors.base import CheckResult, Page, StreamSpec
from healthsync.connectors.cursor import StreamState, advance, id_sort_key, is_new, window_query_bounds
from healthsync.connectors.pacing import PacerRegistry
from healthsync.connectors.records import (
    AccountRecord,
    ActivityKind,
    ActivityRecord,
    ContactRecord,
    CrmTask,
    OpportunityRecord,
    SkippedRecord,
    UserRecord,
)
from healthsync.connectors.salesforce import mapping
from healthsync.connectors.salesforce.client import LocatorExpiredError, SalesforceConnection, error_code
from healthsync.connectors.salesforce.mapping import ObjectFields, RecordMapper
from healthsync.connectors.salesforce.soql import Window, select
from healthsync.errors import (
    AuthError,
    ConfigError,
    FatalError,
    HealthsyncError,
    QuotaExhaustedError,
    SkippableRecordError,
)

SOQL_PAGE = 2000
DEFAULT_OVERLAP = timedelta(minutes=10)
DEFAULT_BULK_THRESHOLD = 10_000
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_log = logging.getLogger("healthsync.connectors.salesforce")

Key = tuple[datetime, str]


@dataclass(frozen=True, slots=True)
class _StreamDef:
    record_type: type
    sobjects: tuple[str, ...]
    supports_deletes: bool = True


STREAMS: dict[str, _StreamDef] = {
    "accounts": _StreamDef(AccountRecord, ("Account",)),
    "contacts": _StreamDef(ContactRecord, ("Contact",)),
    "opportunities": _StreamDef(OpportunityRecord, ("Opportunity",)),
    "activities": _StreamDef(ActivityRecord, ("Task", "Event")),
    "users": _StreamDef(UserRecord, ("User",), supports_deletes=False),
    "tasks": _StreamDef(CrmTask, ("Task",)),
}
OBJECTS = ("Account", "Contact", "Opportunity", "Task", "Event", "User")


@dataclass(frozen=True, slots=True)
class _Row:
    """A row with its cursor position (`key` None: no readable stamp) and the merge order it sorts by."""

    order: tuple[datetime, tuple[int, int, str]]
    key: Key | None
    row: Mapping[str, Any]
    fields: ObjectFields


class SalesforceSource:
    """Reads the CRM side of healthsync from one Salesforce org (see the module docstring for the call budget)."""

    name = "salesforce"

    def __init__(  # noqa: PLR0913 (connection and field map, then keyword-only tuning, each defaulted)
        self,
        connection: SalesforceConnection,
        field_map: FieldMap,
        *,
        overlap: timedelta = DEFAULT_OVERLAP,
        bulk_threshold: int = DEFAULT_BULK_THRESHOLD,
        batch_size: int = SOQL_PAGE,
        bulk_page_size: int = 50_000,
        bulk_wait_seconds: int = 2,
        start: datetime | None = None,
    ):
        if not 200 <= batch_size <= SOQL_PAGE:
            raise ValueError(f"batch_size must be between 200 and {SOQL_PAGE}, got {batch_size}")
        self.conn = connection
        self.field_map = field_map
        self.mapper = RecordMapper(field_map)
        self.overlap = overlap
        self.bulk_threshold = bulk_threshold
        self.batch_size = batch_size
        self.bulk_page_size = bulk_page_size
        self.bulk_wait_seconds = bulk_wait_seconds
        self.start = start
        self._wants: dict[str, Callable[[], list[mapping.Want]]] = {
            "Account": lambda: mapping.account_wants(field_map),
            "Contact": lambda: mapping.contact_wants(field_map),
            "Opportunity": lambda: mapping.opportunity_wants(field_map),
            "Task": lambda: mapping.task_wants(field_map),
            "Event": mapping.event_wants,
            "User": mapping.user_wants,
        }

    @classmethod
    def from_settings(
        cls, settings: Settings, pacers: PacerRegistry, *, sleep: Callable[[float], None] = time.sleep,
        connection: SalesforceConnection | None = None, **options: Any,
    ) -> SalesforceSource:
        """Build from config; pass `connection` to share one login and describe cache with the writer."""
        conn = connection or SalesforceConnection.from_settings(settings, pacers, sleep=sleep)
        return cls(conn, settings.crm.field_map, **options)

    # ------------------------------------------------------------------------------------------ contract
    def streams(self) -> list[StreamSpec]:
        return [StreamSpec(name, d.record_type, "id", "SystemModstamp", d.supports_deletes, SOQL_PAGE)
                for name, d in STREAMS.items()]

    def check(self) -> CheckResult:
        """Log in and describe every object we read: credentials and the field map are both verified."""
        self.conn.forget_schema()
        try:
            fields = {sobject: self.object_fields(sobject) for sobject in OBJECTS}
        except ConfigError as exc:
            return CheckResult(False, str(exc), "set crm.field_map to the API names in your org "
                                                "(Setup → Object Manager → <object> → Fields & Relationships)")
        except AuthError as exc:
            return CheckResult(False, f"Salesforce rejected the credentials: {exc}", self.conn.auth_hint)
        except QuotaExhaustedError as exc:
            return CheckResult(False, str(exc), "raise limits.salesforce.daily_share, or wait for calls to free up")
        except HealthsyncError as exc:
            return CheckResult(False, f"Salesforce could not be reached: {exc}",
                               "check the network path to Salesforce (proxy, firewall, DNS) and try again")
        message = f"Salesforce: logged in to {self.conn.instance}; {', '.join(OBJECTS)} readable with the field map"
        stats = self.conn.pacer.stats()
        if stats.daily_used is not None and stats.daily_limit:
            message += f"; API usage {stats.daily_used:,} of {stats.daily_limit:,} in the last 24 h"
        if not fields["Task"].has("task_key"):
            message += (f"; the Task field {self.field_map.write.task_key} does not exist yet "
                        "(run `healthsync setup` before writing tasks)")
        return CheckResult(True, message)

    def read(self, stream: str, state: StreamState | None, *, as_of: datetime, full: bool = False) -> Iterator[Page]:
        if stream not in STREAMS:
            raise ConfigError(f"salesforce has no stream {stream!r}; streams: {', '.join(STREAMS)}")
        state = None if full else state
        lower, upper = window_query_bounds(state, self.overlap, as_of, start=self.start)
        window = Window(upper=upper, lower=lower)
        readers = self._readers(stream, window, initial_load=lower is None)
        emitted = False
        for batch in _merge([r.pages() for r in readers]):
            page, state = self._page(stream, batch, state, as_of)
            emitted = True
            yield page
        if not emitted:
            yield Page(state=advance(state, [], cycle_started_at=as_of, overlap=self.overlap))

    # ------------------------------------------------------------------------------------------ fields
    def object_fields(self, sobject: str) -> ObjectFields:
        """The fields `sobject` is read with (one describe per `schema_ttl`); ConfigError on a bad field map."""
        return mapping.resolve_fields(sobject, self.conn.describe(sobject), self._wants[sobject]())

    def _readers(self, stream: str, window: Window, *, initial_load: bool) -> list[_ObjectReader]:
        readers = []
        for sobject in STREAMS[stream].sobjects:
            fields = self.object_fields(sobject)
            extra = ""
            if stream == "tasks":
                if not fields.has("task_key"):
                    return []  # setup has not created the key field yet: no task of ours can exist
                extra = f"{fields.names['task_key']} != null"
            readers.append(_ObjectReader(self, fields, window, extra, allow_bulk=initial_load))
        return readers

    # ------------------------------------------------------------------------------------------ pages
    def _page(self, stream: str, batch: Sequence[_Row], state: StreamState | None,
              as_of: datetime) -> tuple[Page, StreamState]:
        records, deleted_ids, skipped, stamps, raw = [], [], [], [], {}
        for item in batch:
            rid = item.row.get("Id") if isinstance(item.row.get("Id"), str) else None
            if item.key is None:
                skipped.append(self._skip(stream, rid, "SystemModstamp or Id is missing or unreadable", item.row))
                continue
            stamps.append(item.key)
            if not is_new(state, *item.key):
                continue  # already emitted at exactly the stored boundary stamp
            try:
                built = self._build(stream, item)
            except SkippableRecordError as exc:
                skipped.append(self._skip(stream, rid, str(exc), item.row))
                continue
            (deleted_ids if isinstance(built, str) else records).append(built)
            if not isinstance(built, str):
                raw[built.primary_key] = {k: v for k, v in item.row.items() if k != "attributes"}
        new_state = advance(state, stamps, cycle_started_at=as_of, overlap=self.overlap)
        page = Page(records=records, deleted_ids=deleted_ids, skipped=skipped, state=new_state, raw=raw)
        return page, new_state

    def _build(self, stream: str, item: _Row) -> Any:
        row, fields = item.row, item.fields
        ts, rid = item.key  # type: ignore[misc]
        deleted = row.get("IsDeleted") is True
        if stream == "tasks":
            return rid if deleted else self.mapper.crm_task(row, fields)
        if stream == "users":
            return self.mapper.user(row, fields)
        build = {"accounts": self.mapper.account, "contacts": self.mapper.contact,
                 "opportunities": self.mapper.opportunity, "activities": self.mapper.activity}[stream]
        try:
            return build(row, fields, ts)
        except SkippableRecordError:
            if not deleted:
                raise
            return _tombstone(stream, rid, ts, fields.sobject)  # a deletion must land even if its data is odd

    def _skip(self, stream: str, rid: str | None, reason: str, row: Mapping[str, Any]) -> SkippedRecord:
        raw = {k: v for k, v in row.items() if k != "attributes"}
        return SkippedRecord.from_raw(source=self.name, stream=stream, record_id=rid, reason=reason, raw=raw)


def _tombstone(stream: str, rid: str, ts: datetime, sobject: str) -> Any:
    if stream == "activities":
        kind = ActivityKind.MEETING if sobject == "Event" else ActivityKind.TASK
        return ActivityRecord(id=rid, kind=kind, updated_at=ts, deleted=True)
    record_type = STREAMS[stream].record_type
    return record_type(id=rid, updated_at=ts, deleted=True)


class _ObjectReader:
    """Pages of one sObject in (SystemModstamp, Id) order: REST `queryAll` + `nextRecordsUrl`, a keyset
    re-query when a locator expires, and Bulk API 2.0 for the rest of a big initial load."""

    def __init__(self, source: SalesforceSource, fields: ObjectFields, window: Window, extra_where: str,
                 *, allow_bulk: bool):
        self.source, self.conn, self.fields = source, source.conn, fields
        self.window, self.extra_where = window, extra_where
        self.allow_bulk = allow_bulk
        self.last: Key | None = None  # the largest position handed out so far: where a re-query resumes
        self._last_order: tuple[datetime, tuple[int, int, str]] = (_EARLIEST, id_sort_key(""))
        headers = {"Sforce-Query-Options": f"batchSize={source.batch_size}"} if source.batch_size != SOQL_PAGE else {}
        self._query_options: dict[str, Any] = {"headers": headers} if headers else {}

    def pages(self) -> Iterator[list[_Row]]:
        answer = self._query(self.window)
        while True:
            yield self._keyed(answer.get("records") or [])
            if answer.get("done", True):
                return
            if self.allow_bulk and int(answer.get("totalSize") or 0) > self.source.bulk_threshold:
                self.allow_bulk = False
                try:
                    yield from self._bulk_pages()
                    return
                except QuotaExhaustedError:
                    raise
                except HealthsyncError as exc:
                    _log.warning("Bulk API read of %s failed (%s); continuing with REST", self.fields.sobject, exc)
                    answer = self._query(self._resume_window())
                    continue
            answer = self._more(str(answer.get("nextRecordsUrl") or ""))

    # -- REST ---------------------------------------------------------------------------------------
    def _soql(self, window: Window) -> str:
        return select(self.fields.sobject, self.fields.select, [window.where(), self.extra_where])

    def _query(self, window: Window) -> Mapping[str, Any]:
        soql, deleted = self._soql(window), self.fields.deletable
        what = f"querying {self.fields.sobject}"
        try:
            answer = self.conn.call(what, lambda sf: sf.query(soql, include_deleted=deleted, **self._query_options))
        except FatalError as exc:
            if error_code(exc) in ("INVALID_FIELD", "INVALID_TYPE"):
                self.conn.forget_schema(self.fields.sobject)  # the org changed under us: describe again next time
            raise
        return _answer(answer, what)

    def _more(self, next_url: str) -> Mapping[str, Any]:
        if not next_url:
            raise FatalError(f"salesforce: a {self.fields.sobject} page said more rows follow but gave no nextRecordsUrl")
        what = f"paging {self.fields.sobject}"
        try:
            answer = self.conn.call(what, lambda sf: sf.query_more(next_url, identifier_is_url=True,
                                                                   **self._query_options))
        except LocatorExpiredError:
            return self._query(self._resume_window())  # the keyset makes a lost locator cost one call, not a restart
        return _answer(answer, what)

    def _resume_window(self) -> Window:
        if self.last is None:
            return self.window
        return Window(upper=self.window.upper, after=self.last)

    # -- Bulk 2.0 -----------------------------------------------------------------------------------
    def _bulk_pages(self) -> Iterator[list[_Row]]:
        soql = self._soql(self._resume_window())
        sobject, source = self.fields.sobject, self.source
        operation = "query_all" if self.fields.deletable else "query"
        results = self.conn.once(f"starting a Bulk API query of {sobject}", lambda sf: getattr(
            getattr(sf.bulk2, sobject), operation)(soql, max_records=source.bulk_page_size,
                                                   wait=source.bulk_wait_seconds))
        end = object()
        while True:
            text = self.conn.once(f"reading Bulk API results of {sobject}", lambda sf: next(results, end))
            if text is end:
                return
            rows = [mapping.coerce_csv_row(row, self.fields.types) for row in csv.DictReader(io.StringIO(str(text)))]
            for start in range(0, len(rows), source.batch_size):
                yield self._keyed(rows[start:start + source.batch_size])

    # -- ordering -----------------------------------------------------------------------------------
    def _keyed(self, records: Sequence[Any]) -> list[_Row]:
        out = []
        for raw in records:
            row = raw if isinstance(raw, Mapping) else {"value": raw}
            ts, rid = mapping.stamp_and_id(row)
            key = (ts, rid) if ts is not None and rid is not None else None
            if key is not None:
                order = (ts, id_sort_key(rid))
                if order >= self._last_order:
                    self._last_order, self.last = order, key
            out.append(_Row(self._last_order, key, row, self.fields))
        return out


def _answer(answer: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(answer, Mapping) or not isinstance(answer.get("records", []), list):
        raise FatalError(f"salesforce: unexpected answer shape while {what}")
    return answer


def _merge(producers: Sequence[Iterator[list[_Row]]]) -> Iterator[list[_Row]]:
    """Merge page streams that are each in ascending order into pages in ascending order.

    A row is released only once every unfinished producer has fetched past it, so a page's state
    (the largest position in it) never jumps over a row another object has yet to deliver.
    """
    if len(producers) == 1:
        yield from producers[0]
        return
    buffers: list[deque[_Row]] = [deque() for _ in producers]
    frontier: list[tuple[datetime, tuple[int, int, str]] | None] = [None] * len(producers)
    done = [False] * len(producers)
    while True:
        for i, producer in enumerate(producers):
            while not done[i] and not buffers[i]:
                page = next(producer, None)
                if page is None:
                    done[i] = True
                elif page:
                    buffers[i].extend(page)
                    frontier[i] = page[-1].order
        if all(done[i] and not buffers[i] for i in range(len(producers))):
            return
        open_frontiers = [frontier[i] for i in range(len(producers)) if not done[i]]
        limit = min(f for f in open_frontiers if f is not None) if open_frontiers else None
        batch = []
        for buffer in buffers:
            while buffer and (limit is None or buffer[0].order <= limit):
                batch.append(buffer.popleft())
        batch.sort(key=lambda r: r.order)
        yield batch
