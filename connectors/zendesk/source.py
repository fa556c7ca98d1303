"""The Zendesk source: tickets and their metrics, users and organizations from Zendesk's incremental exports,
and satisfaction ratings, as canonical records with their stream state.

Cost per cycle, and why each stream is read the way it is:
* tickets — the cursor export (`/incremental/tickets/cursor.json`, 1,000 per page), resumed from the stored
  `after_cursor`: no duplicates (unlike the time-based export), deletes arrive as `status: deleted`, and a
  cycle with no changes costs one call. The 10-per-minute export limit is a Pacer scope.
* ticket_metrics — the same export with `include=metric_sets`, on its own cursor. Reopens, replies and
  resolution times only change when the ticket changes (a reply, a reopen, a solve all update the ticket), so
  the export carries every metric change; re-reading `/ticket_metrics.json` would cost ⌈tickets/100⌉ calls
  every cycle instead of one, and it has no `updated_at` filter. Deleted tickets come back as `deleted_ids`.
* satisfaction_ratings — `start_time` (the rating's creation) with a 10-minute overlap and a (created_at, id)
  keyset: new ratings cost one call. A rating changed later (bad → good) is also a ticket update, so the
  ticket's own `satisfaction` is always current; the weekly full resync refreshes the ratings themselves.
* users — the cursor export (`/incremental/users/cursor.json`, 1,000 per page), like tickets: deleted users
  come with `active: false` and become tombstones. Users are end-users only (agents belong to no customer);
  on an incremental read a user who stopped being an end-user is removed by id.
* organizations — Zendesk has only the time-based export for them (`/incremental/organizations.json`): each
  page repeats the items of its `end_time` second, so the position is a (updated_at, id) keyset with the
  boundary ids (connectors/cursor.py) and re-read items are dropped; deleted ones carry `deleted_at` and
  become tombstones. We request each page ourselves with `start_time=end_time` (the same URL as `next_page`)
  rather than through zenpy's paging, which silently stops when `end_time` is within five minutes of the
  machine's clock even though `end_of_stream` is false.
An idle cycle therefore costs one call per stream, five in all (organizations: as long as what changed in
the overlap window before the stored position fits one page).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import tenacity

from healthsync.connectors.base import CheckResult, Page, StreamSpec
from healthsync.connectors.cursor import (
    ApiCursorPosition,
    StreamState,
    advance,
    is_new,
    new_only,
    window_query_bounds,
)
from healthsync.connectors.pacing import Pacer, PacerRegistry, zendesk_pacing
from healthsync.connectors.records import (
    OrganizationRecord,
    SatisfactionRatingRecord,
    SkippedRecord,
    TicketMetricsRecord,
    TicketRecord,
    TicketStatus,
    ZendeskUserRecord,
)
from healthsync.connectors.retry import retry_policy
from healthsync.connectors.zendesk import translate
from healthsync.connectors.zendesk.client import (
    END,
    CursorRefusedError,
    PacedSession,
    ZendeskCaller,
    build_zenpy,
)
from healthsync.errors import (
    AuthError,
    ConfigError,
    FatalError,
    HealthsyncError,
    RetryableError,
    SkippableRecordError,
)

SOURCE = "zendesk"
EXPORT_MAX_PAGE = 1000
LIST_PAGE = 100
DEFAULT_OVERLAP = timedelta(minutes=10)
_DELETED = TicketStatus.DELETED.value
T = TypeVar("T")

_log = logging.getLogger("healthsync.connectors.zendesk")


class ZendeskSource:
    """Reads one Zendesk account through zenpy; see the module docstring for each stream's strategy."""

    name = SOURCE

    def __init__(  # noqa: PLR0913 (base URL and pacer, then keyword-only credentials and tuning, each defaulted)
        self,
        base_url: str,
        pacer: Pacer,
        *,
        email: str | None = None,
        token: str | None = None,
        oauth_token: str | None = None,
        ca_file: str | Path | None = None,
        retry: tenacity.Retrying | None = None,
        export_page_size: int = EXPORT_MAX_PAGE,
        overlap: timedelta = DEFAULT_OVERLAP,
    ):
        if not 1 <= export_page_size <= EXPORT_MAX_PAGE:
            raise ValueError(f"export_page_size must be 1..{EXPORT_MAX_PAGE}, got {export_page_size}")
        self.base_url = base_url.rstrip("/")
        self.pacer = pacer
        self._oauth = oauth_token is not None
        self._zd = build_zenpy(
            self.base_url, PacedSession(pacer, ca_file=ca_file), email=email, token=token, oauth_token=oauth_token
        )
        self._caller = ZendeskCaller(retry or retry_policy())
        self._export_page_size = export_page_size
        self._overlap = overlap

    @classmethod
    def from_settings(cls, settings: Any, pacers: PacerRegistry, **options: Any) -> ZendeskSource:
        """Build from `Settings` (its `zendesk`, `limits.zendesk` and optional `sandbox` sections)."""
        zendesk = settings.zendesk
        if zendesk is None:
            raise ConfigError("zendesk: the config has no `zendesk:` section; add one or disable the source")
        limits = settings.limits.zendesk
        pacer = pacers.pacer(
            SOURCE,
            zendesk.subdomain,
            zendesk_pacing(per_minute=limits.requests_per_minute, incremental_per_minute=limits.incremental_per_minute),
        )
        sandbox = settings.sandbox
        base_url = (sandbox.zendesk_url if sandbox else None) or f"https://{zendesk.subdomain}.zendesk.com"
        auth = zendesk.auth
        credentials: dict[str, str] = (
            {"oauth_token": auth.token.get_secret_value()}
            if auth.mode == "oauth"
            else {"email": auth.email, "token": auth.token.get_secret_value()}
        )
        ca_file = sandbox.ca_file if sandbox else None
        return cls(base_url, pacer, ca_file=ca_file, **credentials, **options)

    # -- Source protocol -------------------------------------------------------------------------------------

    def streams(self) -> list[StreamSpec]:
        return [
            StreamSpec("tickets", TicketRecord, "id", "updated_at", True, EXPORT_MAX_PAGE),
            StreamSpec("ticket_metrics", TicketMetricsRecord, "ticket_id", "updated_at", True, EXPORT_MAX_PAGE),
            StreamSpec("satisfaction_ratings", SatisfactionRatingRecord, "id", "created_at", False, LIST_PAGE),
            StreamSpec("organizations", OrganizationRecord, "id", "updated_at", True, EXPORT_MAX_PAGE),
            StreamSpec("users", ZendeskUserRecord, "id", "updated_at", True, EXPORT_MAX_PAGE),
        ]

    def check(self) -> CheckResult:
        """One call (the first page of organizations), no retries: are the credentials and host right?"""
        caller = ZendeskCaller(retry_policy(max_attempts=1))
        try:
            caller.call(lambda: self._zd.organizations())
        except AuthError as exc:
            return CheckResult(False, f"Zendesk at {self.base_url} rejected the credentials: {exc}", self._auth_hint())
        except RetryableError as exc:
            return CheckResult(
                False,
                f"Zendesk at {self.base_url} did not answer usefully: {exc}",
                "check zendesk.subdomain and the network path to Zendesk, then try again",
            )
        except HealthsyncError as exc:
            return CheckResult(False, f"Zendesk at {self.base_url}: {exc}", "check zendesk.subdomain")
        return CheckResult(True, f"Zendesk at {self.base_url}: credentials accepted")

    def read(
        self, stream: str, state: StreamState | None, *, as_of: datetime, full: bool = False
    ) -> Iterator[Page]:
        if as_of.tzinfo is None:
            raise ValueError("as_of must be timezone-aware")
        readers: dict[str, Callable[[], Iterator[Page]]] = {
            "tickets": lambda: self._read_export(state, as_of, full, self._ticket_export, self._ticket_page),
            "ticket_metrics": lambda: self._read_export(state, as_of, full, self._ticket_export, self._metrics_page),
            "satisfaction_ratings": lambda: self._read_ratings(state, as_of, full),
            "organizations": lambda: self._read_organizations(state, as_of, full),
            "users": lambda: self._read_export(
                state, as_of, full, self._user_export,
                functools.partial(self._user_page, remove_staff=state is not None and not full),
            ),
        }
        reader = readers.get(stream)
        if reader is None:
            raise ConfigError(f"zendesk has no stream {stream!r}; streams: {', '.join(sorted(readers))}")
        return reader()

    # -- the incremental cursor exports (tickets, ticket_metrics, users) -------------------------------------

    def _read_export(
        self,
        state: StreamState | None,
        as_of: datetime,
        full: bool,
        open_at: Callable[..., Any],
        build: Callable[[Any, StreamState | None, datetime], Page],
    ) -> Iterator[Page]:
        state = None if full else state
        generator = self._open_export(state, as_of, open_at)
        while True:
            page = build(generator, state, as_of)
            state = page.state
            yield page
            if getattr(generator, "end_of_stream", True) or self._caller.call(generator.handle_pagination) is END:
                return

    def _open_export(self, state: StreamState | None, as_of: datetime, open_at: Callable[..., Any]) -> Any:
        position = state.position if state else None
        if isinstance(position, ApiCursorPosition):
            try:
                return self._caller.call(lambda: open_at(cursor=position.cursor))
            except CursorRefusedError:
                if position.high_water is None:
                    raise FatalError(
                        "zendesk: the export refused the stored cursor and no restart time is known; "
                        "reset the stream with a full pull"
                    ) from None
                _log.warning("zendesk export refused the stored cursor; restarting from %s", position.high_water)
        lower, _ = window_query_bounds(state, self._overlap, as_of)
        start_time = 0 if lower is None else max(0, int(lower.timestamp()))
        return self._caller.call(lambda: open_at(start_time=start_time))

    def _ticket_export(self, **position: Any) -> Any:
        return self._zd.tickets.incremental(per_page=self._export_page_size, include="metric_sets", **position)

    def _user_export(self, **position: Any) -> Any:
        return self._zd.users.incremental(per_page=self._export_page_size, **position)

    def _ticket_page(self, generator: Any, state: StreamState | None, as_of: datetime) -> Page:
        raws = _raw_values(generator)
        metrics = _metric_sets(generator, raws)
        records: list[TicketRecord] = []
        skipped: list[SkippedRecord] = []
        for raw in raws:
            try:
                records.append(translate.ticket(raw, metrics.get(raw.get("id"))))
            except SkippableRecordError as exc:
                skipped.append(_skipped("tickets", translate.record_id(raw), exc, raw))
        keys = [(r.updated_at, r.id) for r in records]
        return Page(records=records, skipped=skipped, state=self._advance_export(state, keys, generator, as_of))

    def _metrics_page(self, generator: Any, state: StreamState | None, as_of: datetime) -> Page:
        raws = _raw_values(generator)
        metrics = _metric_sets(generator, raws)
        records: list[TicketMetricsRecord] = []
        deleted: list[str] = []
        skipped: list[SkippedRecord] = []
        keys: list[tuple[datetime, str]] = []
        for raw in raws:
            ticket_id = translate.record_id(raw)
            try:
                updated_at = translate.when(raw, "updated_at", "TicketRecord")
                if ticket_id is None:
                    raise SkippableRecordError("TicketRecord.id: is required")
                if raw.get("status") == _DELETED:
                    deleted.append(ticket_id)
                elif raw.get("id") in metrics:
                    records.append(translate.ticket_metrics(metrics[raw.get("id")]))
            except SkippableRecordError as exc:
                skipped.append(_skipped("ticket_metrics", ticket_id, exc, raw))
                continue
            if updated_at is not None:
                keys.append((updated_at, ticket_id))
        state = self._advance_export(state, keys, generator, as_of)
        return Page(records=records, deleted_ids=deleted, skipped=skipped, state=state)

    def _user_page(
        self, generator: Any, state: StreamState | None, as_of: datetime, *, remove_staff: bool
    ) -> Page:
        """End-users (deleted ones as tombstones); with `remove_staff`, the ids of users who are not end-users,
        so one promoted to agent since the last read leaves the store."""
        records: list[ZendeskUserRecord] = []
        not_customers: list[str] = []
        skipped: list[SkippedRecord] = []
        keys: list[tuple[datetime, str]] = []
        for raw in _raw_values(generator):
            try:
                record = _stamped(translate.user(raw))
            except SkippableRecordError as exc:
                skipped.append(_skipped("users", translate.record_id(raw), exc, raw))
                continue
            keys.append((record.updated_at, record.id))
            if record.deleted or _is_end_user(record):
                records.append(record)
            elif remove_staff:
                not_customers.append(record.id)
        state = self._advance_export(state, keys, generator, as_of)
        return Page(records=records, deleted_ids=not_customers, skipped=skipped, state=state)

    def _advance_export(
        self, state: StreamState | None, keys: list[tuple[datetime, str]], generator: Any, as_of: datetime
    ) -> StreamState | None:
        cursor = getattr(generator, "after_cursor", None)
        if not cursor:  # the API always sends one; without it the old state is still the truth
            return state
        return advance(state, keys, cycle_started_at=as_of, overlap=self._overlap, api_cursor=str(cursor))

    # -- satisfaction ratings: start_time + (created_at, id) keyset ----------------------------------------

    def _read_ratings(self, state: StreamState | None, as_of: datetime, full: bool) -> Iterator[Page]:
        state = None if full else state
        lower, _ = window_query_bounds(state, self._overlap, as_of)
        start_time = None if lower is None else max(1, int(lower.timestamp()))
        generator = self._caller.call(lambda: self._zd.satisfaction_ratings(sort_order="asc", start_time=start_time))
        while True:
            records: list[SatisfactionRatingRecord] = []
            skipped: list[SkippedRecord] = []
            for raw in _raw_values(generator):
                try:
                    record = translate.satisfaction_rating(raw)
                    if record.created_at is None:
                        raise SkippableRecordError("SatisfactionRatingRecord.created_at: is required")
                    records.append(record)
                except SkippableRecordError as exc:
                    skipped.append(_skipped("satisfaction_ratings", translate.record_id(raw), exc, raw))
            fresh = [r for r in records if is_new(state, r.created_at, r.id)]  # type: ignore[arg-type]
            keys = [(r.created_at, r.id) for r in records]
            state = advance(state, keys, cycle_started_at=as_of, overlap=self._overlap)  # type: ignore[arg-type]
            yield Page(records=fresh, skipped=skipped, state=state)
            if self._caller.call(generator.handle_pagination) is END:
                return

    # -- organizations: the time-based export, (updated_at, id) keyset with boundary dedupe -----------------

    def _read_organizations(self, state: StreamState | None, as_of: datetime, full: bool) -> Iterator[Page]:
        state = None if full else state
        lower, _ = window_query_bounds(state, self._overlap, as_of)
        start_time = 0 if lower is None else max(0, int(lower.timestamp()))  # 0: the whole history
        while True:
            generator = self._caller.call(functools.partial(
                self._zd.organizations.incremental, start_time=start_time, per_page=self._export_page_size))
            page = self._organization_page(generator, state, as_of)
            state = page.state
            yield page
            if getattr(generator, "end_of_stream", True) is True:
                return
            start_time = _next_start_time(generator, start_time)

    def _organization_page(self, generator: Any, state: StreamState | None, as_of: datetime) -> Page:
        records: list[OrganizationRecord] = []
        skipped: list[SkippedRecord] = []
        for raw in _raw_values(generator):
            try:
                records.append(_stamped(translate.organization(raw)))
            except SkippableRecordError as exc:
                skipped.append(_skipped("organizations", translate.record_id(raw), exc, raw))
        fresh = new_only(state, records, key=lambda r: (r.updated_at, r.id))  # page boundaries repeat items
        keys = [(r.updated_at, r.id) for r in records]
        state = advance(state, keys, cycle_started_at=as_of, overlap=self._overlap)  # type: ignore[arg-type]
        return Page(records=fresh, skipped=skipped, state=state)

    def _auth_hint(self) -> str:
        if self._oauth:
            return "check zendesk.auth.token: the OAuth access token may be revoked or expired"
        return (
            "check zendesk.auth.email and zendesk.auth.token (Admin Center → Apps and integrations → Zendesk API); "
            "the token must be active and the email an agent or admin of this account, and zendesk.subdomain right"
        )


def _raw_values(generator: Any) -> Iterable[dict[str, Any]]:
    """The current page's objects as plain dicts (zenpy's `to_dict()`; no lazy attribute fetches)."""
    return [obj.to_dict() for obj in (getattr(generator, "values", None) or ())]


def _metric_sets(generator: Any, raw_tickets: Iterable[Mapping[str, Any]]) -> dict[Any, Mapping[str, Any]]:
    """Each ticket's metric set, by ticket id, from whichever shape the export used.

    Zendesk documents `include=metric_sets` two ways: a top-level `metric_sets` array (the generic side-loading
    page) and an object nested in each ticket as `metric_set` (Zendesk's answer for the incremental export,
    and what production clients read). Either, or both, may arrive; a nested one belongs to its ticket even
    when it lacks `ticket_id`, and wins when both are present.
    """
    # zenpy keeps sideloads only in the page JSON: `metric_sets` is not one of its object types
    page = getattr(generator, "_response_json", None) or {}
    found: dict[Any, Mapping[str, Any]] = {
        m.get("ticket_id"): m for m in page.get("metric_sets") or () if isinstance(m, Mapping)}
    for raw in raw_tickets:
        nested = raw.get("metric_set")
        if isinstance(nested, Mapping):
            found[raw.get("id")] = nested if nested.get("ticket_id") is not None else {**nested, "ticket_id": raw.get("id")}
    return found


def _next_start_time(generator: Any, start_time: int) -> int:
    """The next time-based page starts at this page's `end_time`; one that does not move on would loop."""
    end_time = getattr(generator, "end_time", None)
    if isinstance(end_time, bool) or not isinstance(end_time, int) or end_time <= start_time:
        raise FatalError(
            f"zendesk: the organization export did not move past start_time={start_time} "
            f"(end_time={end_time!r}, end_of_stream false); reset the organizations stream with a full pull"
        )
    return end_time


def _stamped(record: T) -> T:
    """Export records place the stream's position, so one without `updated_at` cannot be kept."""
    if getattr(record, "updated_at", None) is None:
        raise SkippableRecordError(f"{type(record).__name__}.updated_at: is required")
    return record


def _is_end_user(record: ZendeskUserRecord) -> bool:
    return record.role in (None, "end-user")


def _skipped(stream: str, record_id: str | None, exc: Exception, raw: Any) -> SkippedRecord:
    return SkippedRecord.from_raw(source=SOURCE, stream=stream, record_id=record_id, reason=str(exc), raw=raw)
