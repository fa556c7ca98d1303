"""The HubSpot CRM v3/v4 emulator: auth, the portal's rate limits, state loading and test helpers.

Endpoints live in `objects_api` (objects, search, batch) and `portal_api` (properties, owners, v4
associations, OAuth). Knobs tests and the demo may set on an instance:

    burst_limit (190)             requests per 10 s window per portal (window scaled by time_scale)
    search_limit_per_second (5)   CRM search requests per second per portal (scaled likewise)
    daily_limit (650_000)         requests per sandbox-clock UTC day
    send_retry_after (False)      whether a 429 carries an integer Retry-After. The real API often omits
                                  it; with it, the SDK's urllib3 silently retries GET/PUT/DELETE itself
    allow_schema_writes (True)    False: property/group writes get 403 MISSING_SCOPES
    batch_limit (100)             inputs per v3 batch call; association_batch_limit (1000) for v4 reads
    token_lifetime (30 min)       OAuth access token lifetime on the sandbox clock
    odd_record_mode ("alternate") odd_record fault: "bad_timestamp", "missing_properties" or alternate

Rate-limit headers (`X-HubSpot-RateLimit-*`) are sent on every answer, search included (the real
search endpoints omit them); Interval-Milliseconds reports the scaled window.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any

from werkzeug.routing import Map
from werkzeug.wrappers import Request, Response

from healthsync.sandbox.core import CallLog, Emulator, FaultInjector, SandboxClock, SlidingWindowLimit
from healthsync.sandbox.credentials import DEMO
from healthsync.sandbox.hubspot import errors
from healthsync.sandbox.hubspot.legacy_api import (
    LEGACY_PREFIXES,
    LEGACY_RULES,
    OTHER_HUBSPOT_ROOTS,
    LegacyApi,
)
from healthsync.sandbox.hubspot.load import load_portfolio, owner_json
from healthsync.sandbox.hubspot.objects_api import OBJECT_RULES, ObjectsApi
from healthsync.sandbox.hubspot.portal_api import PORTAL_RULES, PortalApi
from healthsync.sandbox.hubspot.schema import Schema, make_property, validate_properties
from healthsync.sandbox.hubspot.store import ObjectStore
from healthsync.sandbox.hubspot.types import ENGAGEMENT_TYPES, default_type_id, normalize_type
from healthsync.sandbox.model import Owner, Portfolio

BURST_WINDOW_SECONDS = 10


class HubSpotEmulator(ObjectsApi, PortalApi, LegacyApi, Emulator):
    name = "hubspot"
    prefixes = ("/crm/", "/oauth/v1/", *LEGACY_PREFIXES, *OTHER_HUBSPOT_ROOTS)
    url_map = Map(OBJECT_RULES + PORTAL_RULES + LEGACY_RULES, strict_slashes=False)

    def __init__(self, clock: SandboxClock, calls: CallLog, faults: FaultInjector, time_scale: float = 1.0):
        super().__init__(clock, calls, faults, time_scale)
        self.credentials = DEMO.hubspot
        self.send_retry_after = False
        self.allow_schema_writes = True
        self.batch_limit = 100
        self.association_batch_limit = 1000
        self.daily_limit = 650_000
        self.token_lifetime = timedelta(minutes=30)
        self.odd_record_mode = "alternate"
        self._odd_records_served = 0
        self._burst = SlidingWindowLimit(190, BURST_WINDOW_SECONDS, time_scale)
        self._search = SlidingWindowLimit(5, 1, time_scale)
        self._daily: tuple[date | None, int] = (None, 0)
        self._last_remaining = self._burst.limit
        self._tokens: dict[str, datetime] = {}
        self.schema = Schema()
        self.store = ObjectStore()
        self._owners: list[dict] = []

    # ------------------------------------------------------------------------------------------ knobs
    @property
    def burst_limit(self) -> int:
        return self._burst.limit

    @burst_limit.setter
    def burst_limit(self, limit: int) -> None:
        self._burst = SlidingWindowLimit(limit, BURST_WINDOW_SECONDS, self.time_scale)
        self._last_remaining = limit

    @property
    def search_limit_per_second(self) -> int:
        return self._search.limit

    @search_limit_per_second.setter
    def search_limit_per_second(self, limit: int) -> None:
        self._search = SlidingWindowLimit(limit, 1, self.time_scale)

    # ------------------------------------------------------------------------------------------ state
    def load(self, portfolio: Portfolio, crm: str = "hubspot") -> None:
        """Rebuild the portal from `portfolio`: a fresh portal, so properties created through the API (by
        `setup`) are gone too. With crm="salesforce" HubSpot is not the deployment's CRM: the portal keeps
        its users (owners) but no CRM records."""
        if crm not in ("hubspot", "salesforce"):
            raise ValueError(f"crm must be 'hubspot' or 'salesforce', not {crm!r}")
        with self.lock:
            self.schema, self.store = Schema(), ObjectStore()
            if crm == "hubspot":
                self._owners = load_portfolio(self.store, portfolio)
            else:
                self._owners = [owner_json(o, portfolio.as_of) for o in portfolio.owners]

    def owner_ids(self) -> set[str]:
        return {str(o["id"]) for o in self._owners}

    def owner_options(self) -> list[dict]:
        return [{"label": f"{o['firstName']} {o['lastName']} ({o['email']})", "value": str(o["id"]),
                 "displayOrder": i, "hidden": o["archived"]} for i, o in enumerate(self._owners)]

    # ------------------------------------------------------------------------------------------ auth
    def check_auth(self, request: Request) -> Response | None:
        if request.path.startswith("/oauth/"):
            return None
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return errors.unauthorized()
        if token == self.credentials.access_token:  # private-app token: never expires
            return None
        with self.lock:
            expires_at = self._tokens.get(token)
        if expires_at is None:
            return errors.unauthorized()
        now = self.clock.now()
        return errors.expired(expires_at, now) if expires_at <= now else None

    def expired_session_response(self) -> Response:
        now = self.clock.now()
        return errors.expired(now - timedelta(minutes=1), now)

    def error_response(self, status: int, message: str) -> Response:
        # "Error handling" (developers.hubspot.com/docs/api/error-handling): every error is
        # {status: "error", message, correlationId, category}, unknown paths included
        category = "OBJECT_NOT_FOUND" if status == 404 else "VALIDATION_ERROR"
        return errors.error(status, category, message)

    def claims(self, request: Request) -> bool:
        """An unrouted request carrying this portal's token (or the SDK's User-Agent) is a HubSpot call."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and (token == self.credentials.access_token or token in self._tokens):
            return True
        return (request.headers.get("User-Agent") or "").startswith("hubspot-api-client")

    def call_object(self, request: Request, endpoint: str, values: dict) -> str | None:
        """Object types by their plural API name, whichever spelling the path used; legacy paths by family."""
        raw = values.get("object_type") or values.get("from_type")
        if raw:
            return normalize_type(str(raw)) or str(raw)
        family = request.path.strip("/").split("/", 1)[0]
        return {"companies": "companies", "contacts": "contacts", "deals": "deals",
                "engagements": "engagements"}.get(family)

    # ------------------------------------------------------------------------------------------ limits
    def rate_limit(self, request: Request, endpoint: str) -> Response | None:
        if endpoint == "oauth_token":
            return None
        today = self.clock.now().date()
        with self.lock:
            day, used = self._daily
            used = used if day == today else 0
            if used >= self.daily_limit:
                return self._too_many("You have reached your daily limit.", "DAILY", _seconds_to_midnight(self.clock.now()))
            if endpoint == "search":
                allowed, _, wait = self._search.hit()
                if not allowed:
                    return self._too_many("You have reached your secondly limit.", "SECONDLY", wait)
            allowed, remaining, wait = self._burst.hit()
            if not allowed:
                self._last_remaining = 0
                return self._too_many("You have reached your ten_secondly_rolling limit.",
                                      "TEN_SECONDLY_ROLLING", wait)
            self._daily = (today, used + 1)
            self._last_remaining = remaining
        return None

    def _too_many(self, message: str, policy: str, wait: float) -> Response:
        retry_after = max(1, math.ceil(wait)) if self.send_retry_after else None
        return errors.rate_limited(message, policy, self.credentials.portal_id, retry_after)

    def decorate(self, request: Request, response: Response, endpoint: str) -> Response:
        if endpoint == "oauth_token":
            return response
        day, used = self._daily
        used = used if day == self.clock.now().date() else 0
        response.headers["X-HubSpot-RateLimit-Max"] = str(self._burst.limit)
        response.headers["X-HubSpot-RateLimit-Remaining"] = str(self._last_remaining)
        response.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] = str(
            max(1, round(self._burst.effective_window * 1000)))
        response.headers["X-HubSpot-RateLimit-Daily"] = str(self.daily_limit)
        response.headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(max(self.daily_limit - used, 0))
        return response

    # ------------------------------------------------------------------------------------------ test helpers
    def expire_tokens(self) -> None:
        """Every OAuth access token minted so far expires now (the private-app token never does)."""
        with self.lock:
            past = self.clock.now() - timedelta(seconds=1)
            self._tokens = {token: past for token in self._tokens}

    def create(self, object_type: str, properties: Mapping[str, Any],
               associations: Iterable[tuple[str, str]] | Mapping[str, Iterable[str]] = (),
               at: datetime | None = None) -> str:
        """Create a record as a HubSpot user would (values validated), associated with default types to
        `associations` ((to_type, id) pairs or {to_type: [ids]}); returns its id."""
        t = self._require_type(object_type)
        with self.lock:
            clean = self._checked(t, properties, creating=True)
            moment = at or self.clock.now()
            obj = self.store.put(t, self.store.mint_id(), clean, moment, moment)
            for to_type, to_id in _pairs(associations):
                self.associate(t, obj.id, to_type, to_id)
            return obj.id

    def bulk_create(self, object_type: str, count: int,
                    properties: Mapping[str, Any] | Callable[[int], Mapping[str, Any]] | None = None,
                    at: datetime | None = None) -> list[str]:
        """`count` records sharing one hs_lastmodifieddate (a month-end import): the >10k-same-timestamp case."""
        t = self._require_type(object_type)
        moment = at or self.clock.now()
        with self.lock:
            ids = []
            for index in range(count):
                values = properties(index) if callable(properties) else (properties or {})
                if t in ENGAGEMENT_TYPES and "hs_timestamp" not in values:
                    values = {**values, "hs_timestamp": moment.isoformat()}
                clean = self._checked(t, values, creating=True)
                ids.append(self.store.put(t, self.store.mint_id(), clean, moment, moment).id)
            return ids

    def update(self, object_type: str, object_id: str, properties: Mapping[str, Any],
               at: datetime | None = None) -> None:
        """Edit a live record as a user would; its hs_lastmodifieddate moves to `at` (default: now)."""
        t = self._require_type(object_type)
        with self.lock:
            obj = self._require_live(t, object_id)
            self.store.write(obj, self._checked(t, properties, creating=False), at or self.clock.now(), force=True)

    def archive(self, object_type: str, object_id: str, at: datetime | None = None) -> None:
        t = self._require_type(object_type)
        with self.lock:
            obj = self._require_live(t, object_id)
            self.store.archive(obj, at or self.clock.now())

    def touch_all(self, object_type: str, at: datetime | None = None) -> int:
        """Give every live record of a type the same hs_lastmodifieddate (a mass update); returns how many."""
        t = self._require_type(object_type)
        moment = at or self.clock.now()
        with self.lock:
            live = [o for o in self.store.objects[t].values() if not o.archived]
            for obj in live:
                self.store.touch(obj, moment)
            return len(live)

    def objects(self, object_type: str, archived: bool = False) -> list[dict]:
        """Snapshots (SimplePublicObject dicts with every set property) in id order."""
        t = self._require_type(object_type)
        with self.lock:
            return [o.to_json(None) for o in self.store.sorted_objects(t, archived)]

    def get(self, object_type: str, object_id: str) -> dict | None:
        t = self._require_type(object_type)
        with self.lock:
            obj = self.store.objects[t].get(str(object_id))
            return obj.to_json(None) if obj is not None else None

    def associations(self, from_type: str, object_id: str, to_type: str) -> list[str]:
        source, target = self._require_type(from_type), self._require_type(to_type)
        with self.lock:
            return list(self.store.associated(source, str(object_id), target))

    def associate(self, from_type: str, object_id: str, to_type: str, to_id: str) -> None:
        source, target = self._require_type(from_type), self._require_type(to_type)
        type_number = default_type_id(source, target)
        if type_number is None:
            raise ValueError(f"HubSpot has no default association between {source} and {target}")
        with self.lock:
            self._require_live(source, object_id)
            self._require_live(target, to_id)
            self.store.associate(source, str(object_id), target, str(to_id), "HUBSPOT_DEFINED", type_number)

    def define_property(self, object_type: str, name: str, property_type: str = "string",
                        options: Iterable[str] = (), unique: bool = False) -> None:
        """Add a custom property without the API (for tests that do not exercise `setup`)."""
        t = self._require_type(object_type)
        prop = make_property(name, property_type, options=tuple(options), custom=True, unique=unique)
        prop.group_name = next(iter(self.schema.groups[t]))
        with self.lock:
            self.schema.properties[t][name] = prop

    def add_owner(self, owner: Owner) -> None:
        with self.lock:
            self._owners.append(owner_json(owner, self.clock.now()))

    def _require_type(self, name: str) -> str:
        object_type = normalize_type(name)
        if object_type is None:
            raise ValueError(f"unknown HubSpot object type {name!r}")
        return object_type

    def _require_live(self, object_type: str, object_id: str):
        obj = self.store.live(object_type, str(object_id))
        if obj is None:
            raise KeyError(f"no live {object_type} record with id {object_id}")
        return obj

    def _checked(self, object_type: str, properties: Mapping[str, Any], *, creating: bool) -> dict:
        clean, problems = validate_properties(self.schema, object_type, dict(properties), self.owner_ids(),
                                              creating=creating)
        if problems:
            raise ValueError(errors.property_values_message(problems))
        return clean


def _seconds_to_midnight(now: datetime) -> float:
    """The daily bucket resets at midnight (UTC on the sandbox clock)."""
    tomorrow = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=now.tzinfo)
    return (tomorrow - now).total_seconds()


def _pairs(associations: Iterable[tuple[str, str]] | Mapping[str, Iterable[str]]) -> list[tuple[str, str]]:
    if isinstance(associations, Mapping):
        return [(to_type, str(i)) for to_type, ids in associations.items() for i in ids]
    return [(to_type, str(i)) for to_type, i in associations]
