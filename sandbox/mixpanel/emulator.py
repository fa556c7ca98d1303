"""Mixpanel emulator: the streamed NDJSON raw export, the paged engage query and the discovery endpoints, with
service-account and project-secret auth, per-project rate limits and late-arriving events.

What it serves (each under `/api/2.0/` and the Query API's `/api/query/` prefix):
    GET|POST export?from_date=&to_date=[&event=["a","b"]][&where=…][&limit=N]      NDJSON, streamed
    GET|POST engage   where, output_properties, page_size<=1000, session_id + page, data_group_id
    GET events/properties/top, events/names, engage/properties                         (discovery.py)
Events come lazily from `portfolio.events_for_day(day)`; each carries `_account_key`, which is rendered into
the group key `account_id` (the served CRM's id, or the account's domain) per `account.mixpanel_identity`
and then stripped. `where` is the documented segmentation expression language (where.py).
"""

from __future__ import annotations

import base64
import binascii
import copy
import itertools
import json
import math
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from healthsync.sandbox.core import Emulator, SlidingWindowLimit, json_response
from healthsync.sandbox.credentials import DEMO
from healthsync.sandbox.mixpanel import params as p
from healthsync.sandbox.mixpanel.discovery import DiscoveryMixin
from healthsync.sandbox.mixpanel.where import Predicate
from healthsync.sandbox.model import Account, Portfolio

DATA_GROUP_ID = "1"  # engage's id for the `account_id` group
ENGAGE_MAX_PAGE = 1000
EXPORT_MAX_LIMIT = 100_000
CRMS = ("salesforce", "hubspot")
SESSIONS_KEPT = 64
STREAM_CHUNK_BYTES = 64 * 1024
_UNSET: Any = object()


def _rules(path: str, endpoint: str) -> list[Rule]:
    # The Query API lives under /api/query/ today and under /api/2.0/ for older clients (Query API overview,
    # https://developer.mixpanel.com/reference/query-api); both reach the same endpoint.
    methods = ["GET", "POST"]
    return [Rule(f"/api/2.0/{path}", endpoint=endpoint, methods=methods),
            Rule(f"/api/query/{path}", endpoint=endpoint, methods=methods)]


class MixpanelEmulator(DiscoveryMixin, Emulator):
    """One Mixpanel project (DEMO.mixpanel.project_id) built from a Portfolio."""

    name = "mixpanel"
    prefixes = ("/api/2.0/", "/api/query/")
    url_map = Map([
        Rule("/api/2.0/export", endpoint="export", methods=["GET", "POST"]),
        *_rules("engage", "engage"),
        *_rules("engage/properties", "engage_properties"),
        *_rules("events/properties/top", "event_properties_top"),
        *_rules("events/names", "event_names"),
    ])

    def __init__(self, clock, calls, faults, time_scale: float = 1.0):
        super().__init__(clock, calls, faults, time_scale)
        self._export_hourly = SlidingWindowLimit(60, 3600, time_scale)
        self._export_per_second = SlidingWindowLimit(3, 1, time_scale)
        self._query_hourly = SlidingWindowLimit(60, 3600, time_scale)
        self.query_concurrency = 5
        self._running_queries = 0
        self._slots = threading.Lock()
        self.crm = "salesforce"
        self._portfolio: Portfolio | None = None
        self._accounts: dict[str, Account] = {}
        self._profiles: dict[str, dict] = {}
        self._late: list[tuple[datetime | None, dict]] = []
        self._sessions: OrderedDict[str, dict] = OrderedDict()

    # ------------------------------------------------------------------------------------------ knobs
    @property
    def export_per_hour(self) -> int:
        return self._export_hourly.limit

    @export_per_hour.setter
    def export_per_hour(self, value: int) -> None:
        self._export_hourly.limit = int(value)

    @property
    def export_per_second(self) -> int:
        return self._export_per_second.limit

    @export_per_second.setter
    def export_per_second(self, value: int) -> None:
        self._export_per_second.limit = int(value)

    @property
    def query_per_hour(self) -> int:
        return self._query_hourly.limit

    @query_per_hour.setter
    def query_per_hour(self, value: int) -> None:
        self._query_hourly.limit = int(value)

    # ------------------------------------------------------------------------------------------ loading
    def load(self, portfolio: Portfolio, crm: str = "salesforce") -> None:
        """(Re)build the project from `portfolio`; group keys carry `crm`'s account ids. Drops late events."""
        if crm not in CRMS:
            raise ValueError(f"crm must be one of {CRMS}, got {crm!r}")
        with self.lock:
            self.crm = crm
            self._portfolio = portfolio
            self._accounts = {a.key: a for a in portfolio.accounts}
            self._profiles = {
                pr.distinct_id: {"$email": pr.email, "$name": pr.name, "$created": p.iso(pr.created_at),
                                 "_account_key": pr.account_key}
                for pr in portfolio.mixpanel_profiles
            }
            self._late = []
            self._sessions.clear()

    # ------------------------------------------------------------------------------------------ test helpers
    def add_events(self, events: Iterable[dict], arrive_at: datetime | None = None) -> int:
        """Ingest extra raw events (export shape, may carry `_account_key`). With `arrive_at`, they stay
        invisible to exports until the sandbox clock reaches it: a late batch for a lookback test."""
        added = [copy.deepcopy(e) for e in events]
        for event in added:
            props = event.get("properties") or {}
            if "time" not in props or "event" not in event:
                raise ValueError(f"an event needs `event` and `properties.time`: {event!r}")
        with self.lock:
            self._late.extend((arrive_at, e) for e in added)
        return len(added)

    def set_profile(self, distinct_id: str, account_key: str | None = _UNSET, **properties: Any) -> dict:
        """Create or update a people profile (`$email`, `$name`, any property); returns its raw properties."""
        with self.lock:
            profile = self._profiles.setdefault(distinct_id, {"_account_key": None})
            profile.update(properties)
            if account_key is not _UNSET:
                profile["_account_key"] = account_key
            return dict(profile)

    # ------------------------------------------------------------------------------------------ hooks
    def check_auth(self, request: Request) -> Response | None:
        """Service account (`username:secret`, with `project_id`) or the project secret (`secret:` with an
        empty password) — Authentication, https://developer.mixpanel.com/reference/authentication. The
        secret is also accepted without the colon, as some long-lived clients encode it."""
        creds = DEMO.mixpanel
        decoded = _basic_credentials(request.headers.get("Authorization", ""))
        project_id = request.values.get("project_id")
        if decoded in (f"{creds.api_secret}:", creds.api_secret):
            if project_id and project_id != str(creds.project_id):
                return p.error(f"project secret does not belong to project {project_id}", 403)
            return None
        if decoded != f"{creds.service_account_username}:{creds.service_account_secret}":
            return p.error("Unauthorized, invalid service account credentials or project secret", 401)
        if not project_id:
            return p.error("project_id is required when authenticating with a service account", 400)
        if project_id != str(creds.project_id):
            return p.error(f"service account has no access to project {project_id}", 403)
        return None

    def rate_limit(self, request: Request, endpoint: str) -> Response | None:
        """Raw export: 60 queries/hour and 3/second; Query API: 60/hour and 5 concurrent (Rate Limits,
        https://developer.mixpanel.com/reference/rate-limits)."""
        limits = (self._export_hourly, self._export_per_second) if endpoint == "export" else (self._query_hourly,)
        for limit in limits:
            allowed, _, wait = limit.hit()
            if not allowed:
                return p.error("rate limit exceeded", 429, {"Retry-After": str(max(1, math.ceil(wait)))})
        return None

    def expired_session_response(self) -> Response:
        return p.error("Unauthorized, invalid service account credentials", 401)

    def error_response(self, status: int, message: str) -> Response:
        return p.error(message, status)

    def dispatch(self, request: Request) -> Response:
        try:
            return super().dispatch(request)
        except p.MixpanelApiError as exc:
            return p.error(exc.message, exc.status)

    # ------------------------------------------------------------------------------------------ export
    def on_export(self, request: Request) -> Response:
        """Raw Event Export (https://developer.mixpanel.com/reference/raw-event-export): NDJSON, one event
        per line, inclusive `from_date`/`to_date` in the project timezone, optional `event`, `where`, `limit`."""
        values = request.values
        days = self._export_days(values.get("from_date"), values.get("to_date"))
        names = p.event_names(values.get("event"))
        predicate = p.where(values.get("where"))
        limit = p.int_value(values, "limit", None, 1, EXPORT_MAX_LIMIT)
        lines = (json.dumps(e, separators=(",", ":")) + "\n" for e in
                 self.rendered_events(days, names, predicate, bool(request.environ.get("sandbox.odd_record"))))
        body = _chunked(itertools.islice(lines, limit) if limit else lines)
        return Response(body, status=200, content_type="text/plain; charset=utf-8")

    def _export_days(self, from_raw: str | None, to_raw: str | None) -> list[date]:
        from_date, to_date = p.parse_date("from_date", from_raw), p.parse_date("to_date", to_raw)
        today = self.clock.now().astimezone(UTC).date()
        if from_date > to_date:
            raise p.MixpanelApiError(f"from_date {from_date} is after to_date {to_date}")
        if to_date > today:
            raise p.MixpanelApiError(f"to_date {to_date} cannot be later than today ({today}, project timezone UTC)")
        return [from_date + timedelta(days=n) for n in range((to_date - from_date).days + 1)]

    def rendered_events(self, days: list[date], names: set[str] | None = None, predicate: Predicate | None = None,
                        corrupt_one: bool = False) -> Iterator[dict]:
        """Events of `days` as the export renders them, produced lazily day by day so a long range never sits in
        memory; `where` sees event properties and, through `user[...]`, the sender's people profile."""
        now = self.clock.now()
        with self.lock:
            late = [e for arrive_at, e in self._late if arrive_at is None or arrive_at <= now]
            portfolio, accounts, crm = self._portfolio, dict(self._accounts), self.crm
            profiles = dict(self._profiles)
        late_by_day: dict[date, list[dict]] = {}
        for event in late:
            late_by_day.setdefault(p.event_day(event), []).append(event)
        now_ts = now.timestamp()
        for day in days:
            source = portfolio.events_for_day(day) if portfolio is not None else iter(())
            for raw in itertools.chain(source, late_by_day.get(day, ())):
                if names is not None and raw.get("event") not in names:
                    continue
                props = p.render_identity(dict(raw.get("properties") or {}), accounts, crm)
                stamp = props.get("time")
                if isinstance(stamp, int | float) and stamp > now_ts:
                    continue  # not happened yet on the sandbox clock
                if predicate is not None and not predicate(props, self._people_of(profiles, props, accounts)
                                                           if getattr(predicate, "uses_user", False) else None):
                    continue
                if corrupt_one:
                    props.pop("time", None)  # the `odd_record` fault: one event without a timestamp
                    corrupt_one = False
                yield {"event": raw.get("event"), "properties": props}

    def _people_of(self, profiles: dict[str, dict], props: dict, accounts: dict[str, Account]) -> dict:
        profile = profiles.get(props.get("distinct_id") or "")
        return {} if profile is None else p.render_identity(dict(profile), accounts, self.crm)

    # ------------------------------------------------------------------------------------------ engage
    def on_engage(self, request: Request) -> Response:
        """Query Profiles (https://developer.mixpanel.com/reference/engage-query): `where`, `output_properties`,
        `session_id` + `page`, `total` on page 0 only; at most 5 concurrent queries per project."""
        with self._slots:
            if self._running_queries >= self.query_concurrency:
                return p.error("too many concurrent queries for this project", 429, {"Retry-After": "1"})
            self._running_queries += 1
        try:
            return self._engage(request)
        finally:
            with self._slots:
                self._running_queries -= 1

    def _engage(self, request: Request) -> Response:
        values = request.values
        page = p.int_value(values, "page", 0, 0, 10**6)
        page_size = p.int_value(values, "page_size", ENGAGE_MAX_PAGE, 1, ENGAGE_MAX_PAGE)
        output = p.json_list(values.get("output_properties"), "output_properties")
        session_id = values.get("session_id")
        if session_id:
            with self.lock:
                session = self._sessions.get(session_id)
            if session is None:
                raise p.MixpanelApiError(f"session_id {session_id!r} is unknown or expired; start again at page 0")
        elif page > 0:
            raise p.MixpanelApiError("session_id is required for page > 0 (take it from page 0)")
        else:
            session_id, session = self._new_session(values)
        rows = session["rows"][page * page_size:(page + 1) * page_size]
        results = [_select(row, output) for row in rows]
        body: dict[str, Any] = {"page": page, "page_size": page_size, "session_id": session_id,
                                "status": "ok", "results": results}
        if page == 0:
            body["total"] = len(session["rows"])
            body["computed_at"] = p.iso(self.clock.now())
        return json_response(body)

    def _new_session(self, values: Any) -> tuple[str, dict]:
        predicate = p.where(values.get("where"))
        group = values.get("data_group_id")
        with self.lock:
            rows = self.profile_rows(group)
            rows = [r for r in rows if predicate is None or predicate(r["$properties"])]
            session_id = uuid.uuid4().hex
            self._sessions[session_id] = {"rows": rows}
            while len(self._sessions) > SESSIONS_KEPT:
                self._sessions.popitem(last=False)
        return session_id, self._sessions.get(session_id, {"rows": rows})

    def profile_rows(self, group: str | None) -> list[dict]:
        """People profiles, or with `data_group_id` the `account_id` group's profiles."""
        if group not in (None, "", DATA_GROUP_ID):
            raise p.MixpanelApiError(f"data_group_id {group!r} is unknown; this project has group {DATA_GROUP_ID} "
                                     f"({p.GROUP_KEY})")
        with self.lock:
            return self._group_profiles() if group else self._people_profiles()

    def _people_profiles(self) -> list[dict]:
        return [
            {"$distinct_id": distinct_id,
             "$properties": p.render_identity(dict(props), self._accounts, self.crm)}
            for distinct_id, props in sorted(self._profiles.items())
        ]

    def _group_profiles(self) -> list[dict]:
        rows = []
        for account in sorted(self._accounts.values(), key=lambda a: a.key):
            value = p.group_value(account, self.crm)
            if value is None:
                continue
            rows.append({"$distinct_id": value, "$group_key": p.GROUP_KEY, "$group_id": value, "$properties": {
                "$name": account.name, p.GROUP_KEY: value, "plan": account.plan_tier,
                "seats": account.seats_purchased, "$created": p.iso(account.created_at)}})
        return rows


def _basic_credentials(header: str) -> str:
    if not header.startswith("Basic "):
        return ""
    token = header[6:].strip()
    try:
        # urlsafe too: some clients encode the secret with base64.urlsafe_b64encode
        return base64.b64decode(token.replace("-", "+").replace("_", "/") + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return ""


def _select(row: dict, output: list[str] | None) -> dict:
    if output is None:
        return row
    return {**row, "$properties": {k: v for k, v in row["$properties"].items() if k in output}}


def _chunked(lines: Iterable[str]) -> Iterator[bytes]:
    """Group lines into ~64 KiB writes: one socket write per event would crawl."""
    buffer: list[str] = []
    size = 0
    for line in lines:
        buffer.append(line)
        size += len(line)
        if size >= STREAM_CHUNK_BYTES:
            yield "".join(buffer).encode()
            buffer, size = [], 0
    if buffer:
        yield "".join(buffer).encode()
