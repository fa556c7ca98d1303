"""Mixpanel emulator: the streamed NDJSON raw export and the paged engage (people/group profiles) query,
with service-account auth, per-project rate limits and late-arriving events — enough for mixpanel-utils.

What it serves:
    GET /api/2.0/export?from_date=&to_date=[&event=["a","b"]][&where=…][&limit=N]   NDJSON, streamed
    GET|POST /api/2.0/engage (also /api/query/engage)  where, output_properties, page_size<=1000,
        session_id + page, data_group_id (group profiles of the `account_id` group key)
Events come lazily from `portfolio.events_for_day(day)`; each carries `_account_key`, which is rendered into
the group key `account_id` (the served CRM's id, or the account's domain) per `account.mixpanel_identity`
and then stripped. `where` understands `properties["x"] == "y"`, `!=`, `defined(properties["x"])` combined
with and/or/not and parentheses; anything else is answered 400 (the sandbox says it does not support it).
"""

from __future__ import annotations

import base64
import binascii
import copy
import itertools
import json
import math
import re
import threading
import uuid
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from healthsync.sandbox.core import Emulator, SlidingWindowLimit, json_response
from healthsync.sandbox.credentials import DEMO
from healthsync.sandbox.model import Account, Portfolio

GROUP_KEY = "account_id"  # the event property / group key that names the account
DATA_GROUP_ID = "1"  # engage's id for the `account_id` group
ENGAGE_MAX_PAGE = 1000
EXPORT_MAX_LIMIT = 100_000
FREE_MAIL_DOMAINS = ("gmail.com", "outlook.com", "yahoo.com")
CRMS = ("salesforce", "hubspot")
SESSIONS_KEPT = 64
STREAM_CHUNK_BYTES = 64 * 1024
_UNSET: Any = object()

Predicate = Callable[[dict], bool]


class MixpanelApiError(Exception):
    """Bad input: answered with Mixpanel's `{"error", "status": "error"}` body."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message, self.status = message, status


def _error(message: str, status: int, headers: dict[str, str] | None = None) -> Response:
    return json_response({"error": message, "status": "error"}, status, headers)


# ----------------------------------------------------------------------------------------------- where


class WhereError(ValueError):
    """A `where` expression outside the subset the sandbox understands."""


_WHERE_TOKEN = re.compile(r"""\s*(?:
      (?P<prop>properties\s*\[\s*(?P<q>["'])(?P<pname>.*?)(?P=q)\s*\])
    | (?P<str>"(?:[^"\\]|\\.)*"|'[^']*')
    | (?P<num>-?\d+(?:\.\d+)?)
    | (?P<op>==|!=|\(|\))
    | (?P<word>[A-Za-z_]+)
    )""", re.VERBOSE)


def _tokenize(text: str) -> list[tuple[str, Any]]:
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        match = _WHERE_TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise WhereError(f"cannot read `where` at {text[pos:pos + 20]!r}")
        pos = match.end()
        if match.group("prop") is not None:
            tokens.append(("prop", match.group("pname")))
        elif match.group("str") is not None:
            raw = match.group("str")
            tokens.append(("lit", json.loads(raw) if raw.startswith('"') else raw[1:-1]))
        elif match.group("num") is not None:
            tokens.append(("lit", float(match.group("num")) if "." in match.group("num") else int(match.group("num"))))
        elif match.group("op") is not None:
            tokens.append(("op", match.group("op")))
        else:
            word = match.group("word")
            tokens.append(("lit", word == "true") if word in ("true", "false") else ("word", word))
    return tokens


class _WhereParser:
    """Recursive descent over: or_expr := and_expr (or and_expr)*; and_expr := unary (and unary)*;
    unary := not unary | ( or_expr ) | defined(prop) | prop ==|!= literal | literal ==|!= prop."""

    def __init__(self, tokens: list[tuple[str, Any]]):
        self.tokens, self.pos = tokens, 0

    def peek(self) -> tuple[str, Any] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, kind: str, value: Any = _UNSET) -> Any:
        token = self.peek()
        if token is None or token[0] != kind or (value is not _UNSET and token[1] != value):
            raise WhereError(f"expected {value if value is not _UNSET else kind}, found {token[1] if token else 'end'}")
        self.pos += 1
        return token[1]

    def parse(self) -> Predicate:
        predicate = self.or_expr()
        if self.peek() is not None:
            raise WhereError(f"unexpected {self.peek()[1]!r}")  # type: ignore[index]
        return predicate

    def or_expr(self) -> Predicate:
        parts = [self.and_expr()]
        while self.peek() == ("word", "or"):
            self.pos += 1
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else (lambda props: any(p(props) for p in parts))

    def and_expr(self) -> Predicate:
        parts = [self.unary()]
        while self.peek() == ("word", "and"):
            self.pos += 1
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else (lambda props: all(p(props) for p in parts))

    def unary(self) -> Predicate:
        token = self.peek()
        if token == ("word", "not"):
            self.pos += 1
            inner = self.unary()
            return lambda props: not inner(props)
        if token == ("op", "("):
            self.pos += 1
            inner = self.or_expr()
            self.take("op", ")")
            return inner
        if token == ("word", "defined"):
            self.pos += 1
            self.take("op", "(")
            name = self.take("prop")
            self.take("op", ")")
            return lambda props: props.get(name) is not None
        return self.comparison()

    def comparison(self) -> Predicate:
        token = self.peek()
        if token is not None and token[0] == "lit":
            literal = self.take("lit")
            op = self.take("op")
            name = self.take("prop")
        else:
            name = self.take("prop")
            op = self.take("op")
            literal = self.take("lit")
        if op == "==":
            return lambda props: props.get(name) == literal
        if op == "!=":
            return lambda props: props.get(name) != literal
        raise WhereError(f"operator {op!r} is not supported")


def compile_where(text: str | None) -> Predicate | None:
    """A predicate over a properties dict, or None for no filter; WhereError for what we don't support."""
    if text is None or not text.strip():
        return None
    return _WhereParser(_tokenize(text)).parse()


# ----------------------------------------------------------------------------------------------- identity


def _free_mail(email: str) -> str:
    local = email.split("@", 1)[0] or "user"
    return f"{local}@{FREE_MAIL_DOMAINS[zlib.crc32(email.encode()) % len(FREE_MAIL_DOMAINS)]}"


def _group_value(account: Account, crm: str) -> str | None:
    if account.mixpanel_identity == "group_crm_id":
        return account.sf_id if crm == "salesforce" else account.hs_id
    if account.mixpanel_identity == "group_domain":
        return account.domain
    return None


def _render_identity(props: dict, accounts: dict[str, Account], crm: str) -> dict:
    """Turn the neutral `_account_key` into what the account's identity mode exposes, in place."""
    account = accounts.get(props.pop("_account_key", None) or "")
    if account is None:
        return props
    value = _group_value(account, crm)
    if value is not None:
        props[GROUP_KEY] = value
    if account.mixpanel_identity == "none" and props.get("$email"):
        props["$email"] = _free_mail(props["$email"])
    return props


def _event_day(event: dict) -> date:
    return datetime.fromtimestamp(int(event["properties"]["time"]), UTC).date()


# ----------------------------------------------------------------------------------------------- emulator


class MixpanelEmulator(Emulator):
    """One Mixpanel project (DEMO.mixpanel.project_id) built from a Portfolio."""

    name = "mixpanel"
    prefixes = ("/api/2.0/", "/api/query/")
    url_map = Map([
        Rule("/api/2.0/export", endpoint="export", methods=["GET", "POST"]),
        Rule("/api/2.0/engage", endpoint="engage", methods=["GET", "POST"]),
        Rule("/api/query/engage", endpoint="engage", methods=["GET", "POST"]),
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
                p.distinct_id: {"$email": p.email, "$name": p.name, "$created": _iso(p.created_at),
                                "_account_key": p.account_key}
                for p in portfolio.mixpanel_profiles
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
        creds = DEMO.mixpanel
        auth = request.headers.get("Authorization", "")
        decoded = ""
        if auth.startswith("Basic "):
            try:
                decoded = base64.b64decode(auth[6:], validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
        if decoded != f"{creds.service_account_username}:{creds.service_account_secret}":
            return _error("Unauthorized, invalid service account credentials", 401)
        project_id = request.values.get("project_id")
        if not project_id:
            return _error("project_id is required when authenticating with a service account", 400)
        if project_id != str(creds.project_id):
            return _error(f"service account has no access to project {project_id}", 403)
        return None

    def rate_limit(self, request: Request, endpoint: str) -> Response | None:
        limits = (self._export_hourly, self._export_per_second) if endpoint == "export" else (self._query_hourly,)
        for limit in limits:
            allowed, _, wait = limit.hit()
            if not allowed:
                return _error("rate limit exceeded", 429, {"Retry-After": str(max(1, math.ceil(wait)))})
        return None

    def expired_session_response(self) -> Response:
        return _error("Unauthorized, invalid service account credentials", 401)

    def error_response(self, status: int, message: str) -> Response:
        return _error(message, status)

    def dispatch(self, request: Request) -> Response:
        try:
            return super().dispatch(request)
        except MixpanelApiError as exc:
            return _error(exc.message, exc.status)

    # ------------------------------------------------------------------------------------------ export
    def on_export(self, request: Request) -> Response:
        values = request.values
        days = self._export_days(values.get("from_date"), values.get("to_date"))
        names = _event_names(values.get("event"))
        predicate = _where(values.get("where"))
        limit = _int_value(values, "limit", None, 1, EXPORT_MAX_LIMIT)
        now = self.clock.now()
        with self.lock:
            late = [e for arrive_at, e in self._late if arrive_at is None or arrive_at <= now]
            snapshot = (self._portfolio, dict(self._accounts), self.crm)
        late_by_day: dict[date, list[dict]] = {}
        for event in late:
            late_by_day.setdefault(_event_day(event), []).append(event)
        lines = self._export_lines(snapshot, days, late_by_day, names, predicate, now.timestamp(),
                                   bool(request.environ.get("sandbox.odd_record")))
        body = _chunked(itertools.islice(lines, limit) if limit else lines)
        return Response(body, status=200, content_type="text/plain; charset=utf-8")

    def _export_days(self, from_raw: str | None, to_raw: str | None) -> list[date]:
        from_date, to_date = _parse_date("from_date", from_raw), _parse_date("to_date", to_raw)
        today = self.clock.now().astimezone(UTC).date()
        if from_date > to_date:
            raise MixpanelApiError(f"from_date {from_date} is after to_date {to_date}")
        if to_date > today:
            raise MixpanelApiError(f"to_date {to_date} cannot be later than today ({today}, project timezone UTC)")
        return [from_date + timedelta(days=n) for n in range((to_date - from_date).days + 1)]

    @staticmethod
    def _export_lines(snapshot: tuple, days: list[date], late_by_day: dict[date, list[dict]],
                      names: set[str] | None, predicate: Predicate | None, now_ts: float,
                      corrupt_one: bool) -> Iterator[str]:
        """Rendered NDJSON lines, produced lazily day by day so a long range never sits in memory."""
        portfolio, accounts, crm = snapshot
        for day in days:
            source = portfolio.events_for_day(day) if portfolio is not None else iter(())
            for raw in itertools.chain(source, late_by_day.get(day, ())):
                if names is not None and raw.get("event") not in names:
                    continue
                props = _render_identity(dict(raw.get("properties") or {}), accounts, crm)
                stamp = props.get("time")
                if isinstance(stamp, (int, float)) and stamp > now_ts:
                    continue  # not happened yet on the sandbox clock
                if predicate is not None and not predicate(props):
                    continue
                if corrupt_one:
                    props.pop("time", None)  # the `odd_record` fault: one event without a timestamp
                    corrupt_one = False
                yield json.dumps({"event": raw.get("event"), "properties": props}, separators=(",", ":")) + "\n"

    # ------------------------------------------------------------------------------------------ engage
    def on_engage(self, request: Request) -> Response:
        with self._slots:
            if self._running_queries >= self.query_concurrency:
                return _error("too many concurrent queries for this project", 429, {"Retry-After": "1"})
            self._running_queries += 1
        try:
            return self._engage(request)
        finally:
            with self._slots:
                self._running_queries -= 1

    def _engage(self, request: Request) -> Response:
        values = request.values
        page = _int_value(values, "page", 0, 0, 10**6)
        page_size = _int_value(values, "page_size", ENGAGE_MAX_PAGE, 1, ENGAGE_MAX_PAGE)
        output = _json_list(values.get("output_properties"), "output_properties")
        session_id = values.get("session_id")
        if session_id:
            with self.lock:
                session = self._sessions.get(session_id)
            if session is None:
                raise MixpanelApiError(f"session_id {session_id!r} is unknown or expired; start again at page 0")
        elif page > 0:
            raise MixpanelApiError("session_id is required for page > 0 (take it from page 0)")
        else:
            session_id, session = self._new_session(values)
        rows = session["rows"][page * page_size:(page + 1) * page_size]
        results = [_select(row, output) for row in rows]
        body: dict[str, Any] = {"page": page, "page_size": page_size, "session_id": session_id,
                                "status": "ok", "results": results}
        if page == 0:
            body["total"] = len(session["rows"])
            body["computed_at"] = _iso(self.clock.now())
        return json_response(body)

    def _new_session(self, values: Any) -> tuple[str, dict]:
        predicate = _where(values.get("where"))
        group = values.get("data_group_id")
        if group not in (None, "", DATA_GROUP_ID):
            raise MixpanelApiError(f"data_group_id {group!r} is unknown; this project has group {DATA_GROUP_ID} "
                                   f"({GROUP_KEY})")
        with self.lock:
            rows = self._group_profiles() if group else self._people_profiles()
            rows = [r for r in rows if predicate is None or predicate(r["$properties"])]
            session_id = uuid.uuid4().hex
            self._sessions[session_id] = {"rows": rows}
            while len(self._sessions) > SESSIONS_KEPT:
                self._sessions.popitem(last=False)
        return session_id, self._sessions.get(session_id, {"rows": rows})

    def _people_profiles(self) -> list[dict]:
        return [
            {"$distinct_id": distinct_id,
             "$properties": _render_identity(dict(props), self._accounts, self.crm)}
            for distinct_id, props in sorted(self._profiles.items())
        ]

    def _group_profiles(self) -> list[dict]:
        rows = []
        for account in sorted(self._accounts.values(), key=lambda a: a.key):
            value = _group_value(account, self.crm)
            if value is None:
                continue
            rows.append({"$distinct_id": value, "$group_key": GROUP_KEY, "$group_id": value, "$properties": {
                "$name": account.name, GROUP_KEY: value, "plan": account.plan_tier,
                "seats": account.seats_purchased, "$created": _iso(account.created_at)}})
        return rows


# ----------------------------------------------------------------------------------------------- parsing


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _parse_date(name: str, raw: str | None) -> date:
    if not raw:
        raise MixpanelApiError(f"'{name}' is a required parameter (YYYY-MM-DD)")
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise MixpanelApiError(f"'{name}' is invalid: {raw!r} is not a YYYY-MM-DD date") from None


def _int_value(values: Any, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = values.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise MixpanelApiError(f"'{name}' must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise MixpanelApiError(f"'{name}' must be between {low} and {high}, got {value}")
    return value


def _json_list(raw: str | None, name: str) -> list[str] | None:
    if raw is None or raw == "":
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        raise MixpanelApiError(f"'{name}' must be a JSON list of strings, got {raw!r}") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MixpanelApiError(f"'{name}' must be a JSON list of strings, got {raw!r}")
    return value


def _event_names(raw: str | None) -> set[str] | None:
    names = _json_list(raw, "event")
    return None if names is None else set(names)


def _where(raw: str | None) -> Predicate | None:
    try:
        return compile_where(raw)
    except WhereError as exc:
        raise MixpanelApiError(
            f"unsupported `where` in the sandbox ({exc}); supported: properties[\"x\"] == \"y\", !=, "
            "defined(properties[\"x\"]), joined with and/or/not and parentheses") from None


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
