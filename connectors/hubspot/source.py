"""The HubSpot Source: companies, contacts, deals, engagements, owners and our own tasks, read incrementally by a
`(hs_lastmodifieddate, hs_object_id)` keyset over CRM search, with archived records swept into tombstones.

Streams (names the sync layer relies on): accounts (companies), contacts, opportunities (deals), activities
(meetings + calls + emails), users (owners), tasks (tasks carrying our dedupe-key property).

Why search for full reads too, not the list endpoint: search returns 200 records per call against list's 100,
so even with the v4 association reads it needs (one call per 1,000 records per association type, which list
could have inlined) it makes fewer calls — 0.006·N for contacts vs 0.01·N — and it gives every page a
resumable keyset position. The price is wall time: search is paced at a few calls per second.

Archived records: search never returns them, and the list endpoint (`archived=true`) cannot filter by time, so
a sweep costs ceil(archived / 100) calls per object type. It runs on every full read and at most once per
`archived_sweep_every` (default 1 h) on incremental reads, emitting tombstones only for records archived since
the previous sweep (minus the overlap). Deletes therefore land within that interval, and an incremental read
with no changes costs one search per object type: 1 call per stream (3 for activities, one per engagement
type); users cost ceil(owners / 500) calls (archived owners are read on full reads only).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hubspot.crm.associations.v4 import (
    BatchInputPublicFetchAssociationsBatchRequest,
    PublicFetchAssociationsBatchRequest,
)

from healthsync.config.settings import FieldMap, Settings
from healthsync.connectors.base import CheckResult, Page, StreamSpec
from healthsync.connectors.cursor import StreamState, advance, window_query_bounds
from healthsync.connectors.hubspot.client import HubSpotClient
from healthsync.connectors.hubspot.mapping import ENGAGEMENT_TYPES, MODSTAMP, RecordMapper, primary_target
from healthsync.connectors.hubspot.scan import (
    SEARCH_PAGE,
    Row,
    freshness,
    keyset_search,
    remember,
    sub_state,
    sweep_due,
    swept_at,
    with_sub_state,
)
from healthsync.connectors.pacing import PacerRegistry
from healthsync.connectors.records import (
    AccountRecord,
    ActivityRecord,
    ContactRecord,
    CrmTask,
    OpportunityRecord,
    SkippedRecord,
    UserRecord,
)
from healthsync.errors import (
    AuthError,
    ConfigError,
    HealthsyncError,
    QuotaExhaustedError,
    SkippableRecordError,
)

DEFAULT_OVERLAP = timedelta(minutes=10)
DEFAULT_SWEEP_EVERY = timedelta(hours=1)
CHUNK_ROWS = 1_000  # rows per yielded page: one v4 association read (≤ 1,000 ids) per target covers a chunk
ASSOCIATION_BATCH = 1_000
LIST_PAGE = 100
OWNERS_PAGE = 500


@dataclass(frozen=True, slots=True)
class _StreamDef:
    record_type: type
    object_types: tuple[str, ...]
    links: tuple[str, ...] = ()  # association targets read for each record
    archivable: bool = True


STREAMS: dict[str, _StreamDef] = {
    "accounts": _StreamDef(AccountRecord, ("companies",)),
    "contacts": _StreamDef(ContactRecord, ("contacts",), ("companies",)),
    "opportunities": _StreamDef(OpportunityRecord, ("deals",), ("companies",)),
    "activities": _StreamDef(ActivityRecord, ENGAGEMENT_TYPES, ("companies", "contacts")),
    "users": _StreamDef(UserRecord, (), archivable=False),
    "tasks": _StreamDef(CrmTask, ("tasks",), ("companies",), archivable=False),
}


class HubSpotSource:
    """Reads the CRM side of healthsync from one HubSpot portal (see the module docstring for the call budget)."""

    name = "hubspot"

    def __init__(
        self,
        client: HubSpotClient,
        field_map: FieldMap,
        *,
        overlap: timedelta = DEFAULT_OVERLAP,
        archived_sweep_every: timedelta = DEFAULT_SWEEP_EVERY,
        start: datetime | None = None,
    ):
        self.client = client
        self.field_map = field_map
        self.mapper = RecordMapper(field_map)
        self.overlap = overlap
        self.sweep_every = archived_sweep_every
        self.start = start

    @classmethod
    def from_settings(
        cls, settings: Settings, pacers: PacerRegistry, *, sleep: Callable[[float], None] = time.sleep,
        client: HubSpotClient | None = None, **options: Any,
    ) -> HubSpotSource:
        """Build from config; pass `client` to share one token and pacer with the writer."""
        return cls(client or HubSpotClient.from_settings(settings, pacers, sleep=sleep), settings.crm.field_map,
                   **options)

    # ------------------------------------------------------------------------------------------ contract
    def streams(self) -> list[StreamSpec]:
        specs = []
        for name, d in STREAMS.items():
            keyed = bool(d.object_types)
            specs.append(StreamSpec(name, d.record_type, "id", MODSTAMP if keyed else None, d.archivable,
                                    SEARCH_PAGE if keyed else OWNERS_PAGE))
        return specs

    def check(self) -> CheckResult:
        """One call (the company property list): proves the token and that the account field map exists."""
        try:
            answer = self.client.call("reading company properties", "properties.core", "get_all", "companies",
                                      expect="results")
        except AuthError as exc:
            return CheckResult(False, f"HubSpot rejected the credentials: {exc}", self.client.auth_hint)
        except QuotaExhaustedError as exc:
            return CheckResult(False, str(exc), "wait for the portal's daily API limit to reset")
        except HealthsyncError as exc:
            return CheckResult(False, f"HubSpot could not be reached: {exc}",
                               "check the network path to api.hubapi.com (proxy, firewall, DNS) and try again")
        names = {getattr(p, "name", None) for p in answer.data.results}
        wanted = [n for n in self.mapper.properties("companies") if n not in self.mapper.written_properties()]
        missing = [n for n in wanted if n not in names]
        if missing:
            return CheckResult(False, f"HubSpot: company properties {', '.join(missing)} do not exist",
                               "set crm.field_map.account to the properties' internal names "
                               "(Settings → Properties → Companies → the property → internal name)")
        message = "HubSpot: token accepted; the company properties of the field map exist"
        ours = [n for n in self.mapper.written_properties() if n not in names]
        if ours:
            message += f"; {len(ours)} healthsync properties do not exist yet (run `healthsync setup`)"
        return CheckResult(True, message)

    def read(self, stream: str, state: StreamState | None, *, as_of: datetime,
             full: bool = False) -> Iterator[Page]:
        if stream not in STREAMS:
            raise ConfigError(f"hubspot has no stream {stream!r}; streams: {', '.join(STREAMS)}")
        if as_of.tzinfo is None:
            raise ValueError("as_of must be timezone-aware")
        as_of = as_of.astimezone(UTC)
        if stream == "users":
            yield from self._read_users(full)
            return
        spec = STREAMS[stream]
        state = None if full else state
        extra_filters: list[dict[str, Any]] = []
        if stream == "tasks":
            state, ready = self._task_key_ready(state)
            if not ready:  # setup has not created the key property yet: no task of ours can exist
                yield Page(state=advance(state, [], cycle_started_at=as_of, overlap=self.overlap))
                return
            extra_filters.append({"propertyName": self.field_map.write.task_key, "operator": "HAS_PROPERTY"})
        for object_type in spec.object_types:
            start = sub_state(state, object_type, multi=len(spec.object_types) > 1)
            for records, skipped, sub, raw in self._scan(stream, object_type, start, as_of, extra_filters):
                state = with_sub_state(state, object_type, sub, spec.object_types)
                yield Page(records=records, skipped=skipped, state=state, raw=raw)
        if spec.archivable and (full or sweep_due(state, as_of, self.sweep_every)):
            assert state is not None  # every object type yielded at least one page above
            yield from self._sweep(stream, spec, state, as_of, full)

    # ------------------------------------------------------------------------------------------ search
    def _scan(self, stream: str, object_type: str, sub: StreamState | None, as_of: datetime,
              extra_filters: Sequence[Mapping[str, Any]]) -> Iterator[tuple[list[Any], list[SkippedRecord],
                                                                             StreamState, dict]]:
        """(records, skipped, cursor, raw payloads) per chunk of ≤ CHUNK_ROWS rows; at least one chunk, even an empty one."""
        lower, upper = window_query_bounds(sub, self.overlap, as_of, start=self.start)
        pages = keyset_search(self.client, object_type, self.mapper.properties(object_type), lower=lower,
                              upper=upper, extra_filters=extra_filters)
        buffer: list[Row] = []
        emitted = False
        for rows in pages:
            buffer.extend(rows)
            if len(buffer) >= CHUNK_ROWS:
                records, skipped, sub, raw = self._chunk(stream, object_type, buffer, sub, as_of)
                buffer, emitted = [], True
                yield records, skipped, sub, raw
        if buffer or not emitted:
            yield self._chunk(stream, object_type, buffer, sub, as_of)

    def _chunk(self, stream: str, object_type: str, rows: list[Row], sub: StreamState | None,
               as_of: datetime) -> tuple[list[Any], list[SkippedRecord], StreamState, dict]:
        is_fresh = freshness(sub)
        keyed = [r for r in rows if r.key is not None]
        skipped = [self._skip(stream, r, "hs_lastmodifieddate or the properties are missing or unreadable")
                   for r in rows if r.key is None]
        new = [r for r in keyed if is_fresh(r.key)]  # type: ignore[arg-type]
        links = {target: self._associations(object_type, target, [r.id for r in new])  # type: ignore[misc]
                 for target in STREAMS[stream].links} if new else {}
        records, raw = [], {}
        for row in new:
            try:
                record = self._build(stream, row, links)
            except SkippableRecordError as exc:
                skipped.append(self._skip(stream, row, str(exc)))
                continue
            records.append(record)
            raw[record.primary_key] = {"id": row.id, "properties": dict(row.properties or {})}
        keys = [r.key for r in keyed]
        advanced = advance(sub, keys, cycle_started_at=as_of, overlap=self.overlap)  # type: ignore[arg-type]
        return records, skipped, remember(sub, advanced, keys), raw  # type: ignore[arg-type]

    def _build(self, stream: str, row: Row, links: Mapping[str, Mapping[str, str]]) -> Any:
        assert row.key is not None and row.properties is not None
        ts, object_id = row.key
        props = row.properties
        company = links.get("companies", {}).get(object_id)
        if stream == "accounts":
            return self.mapper.account(object_id, props, ts)
        if stream == "contacts":
            return self.mapper.contact(object_id, props, ts, company)
        if stream == "opportunities":
            return self.mapper.opportunity(object_id, props, ts, company)
        if stream == "activities":
            contact = links.get("contacts", {}).get(object_id)
            return self.mapper.activity(row.object_type, object_id, props, ts, company, contact)
        return self.mapper.crm_task(object_id, props, ts, company)

    def _associations(self, from_type: str, to_type: str, ids: Sequence[str]) -> dict[str, str]:
        """Record id → associated record id (the Primary one when labelled), ≤ 1,000 ids per v4 batch read.

        Records with no association come back in the 207's errors; they simply have no entry here.
        """
        linked: dict[str, str] = {}
        for start in range(0, len(ids), ASSOCIATION_BATCH):
            request = BatchInputPublicFetchAssociationsBatchRequest(
                inputs=[PublicFetchAssociationsBatchRequest(id=i) for i in ids[start:start + ASSOCIATION_BATCH]])
            answer = self.client.call(f"reading {from_type} → {to_type} associations", "associations.batch",
                                      "get_page", from_type, to_type,
                                      batch_input_public_fetch_associations_batch_request=request, expect="results")
            for item in answer.data.results:
                source = getattr(getattr(item, "_from", None), "id", None)
                target = primary_target(getattr(item, "to", None) or [])
                if source is not None and target is not None:
                    linked[str(source)] = target
        return linked

    def _skip(self, stream: str, row: Row, reason: str) -> SkippedRecord:
        raw = {"id": row.id, "properties": dict(row.properties) if row.properties else None}
        return SkippedRecord.from_raw(source=self.name, stream=stream, record_id=row.id, reason=reason, raw=raw)

    # ------------------------------------------------------------------------------------------ tasks
    def _task_key_ready(self, state: StreamState | None) -> tuple[StreamState | None, bool]:
        """Whether our dedupe-key task property exists (looked up once, then remembered in the state)."""
        if state is not None and state.extra.get("key_property"):
            return state, True
        key = self.field_map.write.task_key
        answer = self.client.call(f"looking up the task property {key}", "properties.core", "get_by_name",
                                  "tasks", key, accept=(404,))
        if answer.status == 404:
            return state, False
        return (state or StreamState()).with_extra(key_property=True), True

    # ------------------------------------------------------------------------------------------ archived
    def _sweep(self, stream: str, spec: _StreamDef, state: StreamState, as_of: datetime,
               full: bool) -> Iterator[Page]:
        """Tombstones for records archived since the last sweep (all of them on a full read)."""
        last = None if full else swept_at(state)
        since = last - self.overlap if last is not None else None
        for object_type in spec.object_types:
            after: str | None = None
            while True:
                answer = self.client.call(f"listing archived {object_type}", "objects.basic", "get_page",
                                          object_type, limit=LIST_PAGE, after=after, archived=True,
                                          properties=[MODSTAMP], expect="results")
                tombstones = []
                for obj in answer.data.results:
                    when = getattr(obj, "archived_at", None) or getattr(obj, "updated_at", None)
                    if getattr(obj, "id", None) and isinstance(when, datetime) and when.tzinfo is not None and (
                            since is None or when >= since):
                        tombstones.append(self.mapper.tombstone(stream, object_type, str(obj.id), when))
                if tombstones:
                    yield Page(records=tombstones, state=state)
                after = _next_after(answer.data)
                if after is None:
                    break
        yield Page(state=state.with_extra(archived_swept_at=as_of.isoformat()))

    # ------------------------------------------------------------------------------------------ owners
    def _read_users(self, full: bool) -> Iterator[Page]:
        """Active owners every cycle; archived (deactivated) ones on full reads only, to keep cycles cheap."""
        for archived in (False, True) if full else (False,):
            after: str | None = None
            while True:
                answer = self.client.call("listing owners", "owners", "get_page", limit=OWNERS_PAGE, after=after,
                                          archived=archived, expect="results")
                records, skipped = [], []
                for owner in answer.data.results:
                    try:
                        records.append(self.mapper.user(owner))
                    except SkippableRecordError as exc:
                        skipped.append(SkippedRecord.from_raw(source=self.name, stream="users", record_id=None,
                                                              reason=str(exc), raw=str(owner)[:200]))
                yield Page(records=records, skipped=skipped)
                after = _next_after(answer.data)
                if after is None:
                    break


def _next_after(data: Any) -> str | None:
    after = getattr(getattr(getattr(data, "paging", None), "next", None), "after", None)
    return str(after) if after else None
