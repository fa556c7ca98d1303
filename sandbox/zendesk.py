"""Zendesk Support API emulator: the incremental exports (cursor-based tickets and users, time-based
organizations), cursor- and offset-paged lists, single reads, token/OAuth auth and the account-wide plus
incremental-export rate limits — faithful enough for zenpy.

What it serves (all under `/api/v2/`):
    GET incremental/tickets/cursor.json   start_time=<unix> | cursor=<C>, per_page<=1000, include=users,organizations,metric_sets
    GET incremental/users/cursor.json     start_time=<unix> | cursor=<C>, per_page<=1000; deleted users have active: false
    GET incremental/organizations.json    start_time=<unix>, per_page<=1000 (time-based: next_page, end_time, count);
                                          deleted organizations carry deleted_at
    GET organizations.json, users.json, ticket_metrics.json, tickets.json, satisfaction_ratings[.json]
        cursor paging (page[size]<=100, page[after], page[before]) or offset paging (page, per_page<=100)
    GET organizations/{id}.json, users/{id}.json, tickets/{id}.json, tickets/{id}/metrics.json,
        ticket_metrics/{id}.json, satisfaction_ratings/{id}[.json]
Quirks kept on purpose (see sdk-notes §3): absolute `after_url`/`links.next` on the emulator's own host,
URL-safe alphanumeric cursors, no `end_time` in cursor-export pages, integer `Retry-After`. The time-based export
repeats the items stamped at a page's `end_time` at the start of the next page (the next page starts there),
as Zendesk's does; a page always ends on a timestamp boundary and always gets past its `start_time`.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import copy
import math
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from healthsync.sandbox.core import Emulator, SlidingWindowLimit, json_response
from healthsync.sandbox.credentials import DEMO
from healthsync.sandbox.model import Portfolio

EXPORT_DELAY_SECONDS = 60  # the export never shows what changed in the last minute
EXPORT_MAX_PAGE = 1000
LIST_MAX_PAGE = 100
LIST_DEFAULT_PAGE = 100
SUPPORT_GROUP_ID = 360000000001
INCREMENTAL_ENDPOINTS = frozenset({"ticket_export", "user_export", "organization_export"})
CRMS = ("salesforce", "hubspot")
RATING_SCORES = ("good", "bad")
SCORE_FILTERS = frozenset({
    "offered", "unoffered", "received", "received_with_comment", "received_without_comment",
    "good", "good_with_comment", "good_without_comment", "bad", "bad_with_comment", "bad_without_comment",
})
TICKET_FIELDS = frozenset({
    "subject", "raw_subject", "description", "priority", "status", "type", "tags", "requester_id",
    "submitter_id", "assignee_id", "organization_id", "group_id", "external_id", "updated_at",
})
ORGANIZATION_FIELDS = frozenset({
    "name", "external_id", "domain_names", "details", "notes", "tags", "group_id", "updated_at",
})
USER_FIELDS = frozenset({"name", "email", "role", "organization_id", "time_zone", "updated_at"})
USER_ROLES = ("end-user", "agent", "admin")
METRIC_FIELDS = frozenset({
    "reopens", "replies", "solved_at", "first_resolution_time_in_minutes", "full_resolution_time_in_minutes",
})

Key = tuple[int, int]  # (sort timestamp or 0, id): the position a cursor encodes


class ZendeskApiError(Exception):
    """Bad input: becomes a 400 with Zendesk's `{"error", "description"}` body."""

    def __init__(self, description: str, error: str = "InvalidValue", status: int = 400):
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


# ----------------------------------------------------------------------------------------------- helpers


def _utc(value: datetime) -> datetime:
    """Zendesk timestamps have whole seconds; naive values from the model are UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(microsecond=0)


def _iso(value: datetime | None) -> str | None:
    """Stored datetimes are already `_utc`-normalised (see `_utc` at every write)."""
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _ts(value: datetime) -> int:
    return int(_utc(value).timestamp())


def encode_cursor(direction: str, key: Key) -> str:
    """Opaque, URL-safe and alphanumeric (zenpy does not escape cursors it puts in URLs)."""
    raw = f"{direction}{key[0]}x{key[1]}".encode()
    return base64.b32encode(raw).decode().rstrip("=").lower()


def decode_cursor(token: str) -> tuple[str, Key]:
    try:
        raw = base64.b32decode(token.upper() + "=" * (-len(token) % 8)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    match = re.fullmatch(r"([ab])(-?\d+)x(-?\d+)", raw)
    if match is None:
        raise ZendeskApiError(f"cursor {token!r} is not a cursor this API issued", "InvalidPaginationParameter")
    return match.group(1), (int(match.group(2)), int(match.group(3)))


def _int_arg(args: Any, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ZendeskApiError(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ZendeskApiError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _export_start_time(args: Any, cutoff: int) -> int:
    """`start_time` of an export request: required, and not within the last minute (Zendesk answers 400)."""
    if args.get("start_time") is None:
        raise ZendeskApiError("start_time or cursor is required")
    start_time = _int_arg(args, "start_time", None, 0, 2**40)
    if start_time > cutoff:
        raise ZendeskApiError(f"Parameter start_time ({start_time}) is too recent: start_time must be more "
                              f"than {EXPORT_DELAY_SECONDS} seconds in the past")
    return start_time


def _time_window(keys: list[Key], start_time: int, cutoff: int, size: int) -> tuple[int, int, int]:
    """`(lo, hi, end)`: the time-based page `keys[lo:hi]` of the exportable `keys[lo:end]` (start_time..cutoff).

    The page ends on a timestamp boundary so the next one (starting at its last second) loses nothing; when
    the page would hold nothing newer than `start_time` — a crowd sharing that second — it runs on through
    the next second, so the export always moves forward.
    """
    lo = bisect.bisect_left(keys, (start_time, -(2**62)))
    end = bisect.bisect_right(keys, (cutoff, 2**62))
    hi = min(lo + size, end)
    if lo < hi < end:
        last_second = keys[hi - 1][0]
        if last_second <= start_time:
            after_crowd = bisect.bisect_right(keys, (start_time, 2**62), lo, end)
            last_second = keys[after_crowd][0] if after_crowd < end else start_time
        hi = bisect.bisect_right(keys, (last_second, 2**62), lo, end)
    return lo, hi, end


def _window(keys: list[Key], direction: str, position: Key, size: int, last_allowed: Key | None) -> tuple[int, int]:
    """Index range [lo, hi) of the page after (or before) `position` in the sorted `keys`."""
    if direction == "a":
        lo = bisect.bisect_right(keys, position)
        end = len(keys) if last_allowed is None else bisect.bisect_right(keys, last_allowed)
        return lo, max(lo, min(lo + size, end))
    hi = bisect.bisect_left(keys, position)
    return max(0, hi - size), hi


class ZendeskEmulator(Emulator):
    """In-memory Zendesk account built from a Portfolio; see the module docstring for the surface."""

    name = "zendesk"
    prefixes = ("/api/v2/",)
    url_map = Map([
        Rule("/api/v2/incremental/tickets/cursor.json", endpoint="ticket_export"),
        Rule("/api/v2/incremental/users/cursor.json", endpoint="user_export"),
        Rule("/api/v2/incremental/organizations.json", endpoint="organization_export"),
        Rule("/api/v2/organizations.json", endpoint="organizations"),
        Rule("/api/v2/organizations/<int:record_id>.json", endpoint="organization"),
        Rule("/api/v2/users.json", endpoint="users"),
        Rule("/api/v2/users/<int:record_id>.json", endpoint="user"),
        Rule("/api/v2/tickets.json", endpoint="tickets"),
        Rule("/api/v2/tickets/<int:record_id>.json", endpoint="ticket"),
        Rule("/api/v2/tickets/<int:record_id>/metrics.json", endpoint="ticket_metrics_of"),
        Rule("/api/v2/ticket_metrics.json", endpoint="ticket_metrics"),
        Rule("/api/v2/ticket_metrics/<int:record_id>.json", endpoint="ticket_metric"),
        Rule("/api/v2/satisfaction_ratings", endpoint="satisfaction_ratings"),
        Rule("/api/v2/satisfaction_ratings.json", endpoint="satisfaction_ratings"),
        Rule("/api/v2/satisfaction_ratings/<int:record_id>", endpoint="satisfaction_rating"),
        Rule("/api/v2/satisfaction_ratings/<int:record_id>.json", endpoint="satisfaction_rating"),
    ])

    def __init__(self, clock, calls, faults, time_scale: float = 1.0):
        super().__init__(clock, calls, faults, time_scale)
        self._account_limit = SlidingWindowLimit(400, 60, time_scale)  # Growth/Professional plan
        self._incremental_limit = SlidingWindowLimit(10, 60, time_scale)
        self.crm = "salesforce"
        self._orgs: dict[int, dict] = {}
        self._users: dict[int, dict] = {}
        self._tickets: dict[int, dict] = {}
        self._metrics: dict[int, dict] = {}  # by ticket id
        self._ratings: dict[int, dict] = {}
        # per exported kind, the sorted (updated_at, id) of every record, deleted ones included
        self._timelines: dict[str, list[Key]] = {"tickets": [], "users": [], "organizations": []}
        self._next_id = {"ticket": 1, "rating": 1, "organization": 1, "user": 1}

    # ------------------------------------------------------------------------------------------ knobs
    @property
    def per_minute(self) -> int:
        return self._account_limit.limit

    @per_minute.setter
    def per_minute(self, value: int) -> None:
        self._account_limit.limit = int(value)

    @property
    def incremental_per_minute(self) -> int:
        return self._incremental_limit.limit

    @incremental_per_minute.setter
    def incremental_per_minute(self, value: int) -> None:
        self._incremental_limit.limit = int(value)

    # ------------------------------------------------------------------------------------------ loading
    def load(self, portfolio: Portfolio, crm: str = "salesforce") -> None:
        """(Re)build the account from `portfolio`; organization `external_id`s carry `crm`'s account ids."""
        if crm not in CRMS:
            raise ValueError(f"crm must be one of {CRMS}, got {crm!r}")
        with self.lock:
            self.crm = crm
            accounts = {a.key: a for a in portfolio.accounts}
            self._orgs = {o.id: self._org_from_model(o, accounts) for o in portfolio.zendesk_orgs}
            self._users = {u.id: self._user_from_model(u) for u in portfolio.zendesk_users}
            ratings_by_ticket = {r.ticket_id: r for r in portfolio.satisfaction_ratings}
            agents = sorted(uid for uid, u in self._users.items() if u["role"] in ("agent", "admin"))
            self._tickets, self._metrics = {}, {}
            for ticket in portfolio.tickets:
                self._tickets[ticket.id] = self._ticket_from_model(ticket, agents, ratings_by_ticket.get(ticket.id))
                self._metrics[ticket.id] = self._metric_from_model(ticket)
            self._ratings = {r.id: self._rating_from_model(r) for r in portfolio.satisfaction_ratings}
            self._timelines = {
                kind: sorted((_ts(r["updated_at"]), r["id"]) for r in records.values())
                for kind, records in self._stores().items()
            }
            self._next_id = {
                "ticket": max(self._tickets, default=0) + 1,
                "rating": max(self._ratings, default=0) + 1,
                "organization": max(self._orgs, default=0) + 1,
                "user": max(self._users, default=0) + 1,
            }

    def _stores(self) -> dict[str, dict[int, dict]]:
        return {"tickets": self._tickets, "users": self._users, "organizations": self._orgs}

    def _org_from_model(self, org, accounts: dict) -> dict:
        account = accounts.get(org.account_key) if org.account_key else None
        if account is None:
            external_id = org.external_id
        elif account.zendesk_identity == "external_id":
            external_id = account.sf_id if self.crm == "salesforce" else account.hs_id
        else:
            external_id = None
        return {
            "id": org.id, "name": org.name, "external_id": external_id, "domain_names": list(org.domain_names),
            "details": "", "notes": "", "group_id": None, "shared_tickets": False, "shared_comments": False,
            "tags": [], "organization_fields": {}, "created_at": _utc(org.created_at),
            "updated_at": _utc(org.updated_at), "deleted_at": None,
        }

    @staticmethod
    def _user_from_model(user) -> dict:
        return {
            "id": user.id, "name": user.name, "email": user.email, "role": user.role,
            "organization_id": user.org_id, "active": True, "verified": True, "time_zone": "UTC",
            "created_at": _utc(user.created_at), "updated_at": _utc(user.updated_at),
        }

    @staticmethod
    def _ticket_from_model(ticket, agents: list[int], rating) -> dict:
        satisfaction: dict[str, Any] = {"score": ticket.satisfaction}
        if rating is not None:
            satisfaction = {"score": rating.score, "id": rating.id, "comment": rating.comment}
        assignee = agents[ticket.id % len(agents)] if agents and ticket.status != "new" else None
        return {
            "id": ticket.id, "external_id": None, "subject": ticket.subject, "raw_subject": ticket.subject,
            "description": ticket.description, "priority": ticket.priority, "status": ticket.status,
            "type": "incident" if ticket.priority in ("high", "urgent") else "question",
            "requester_id": ticket.requester_id, "submitter_id": ticket.requester_id, "assignee_id": assignee,
            "organization_id": ticket.org_id, "group_id": SUPPORT_GROUP_ID, "tags": list(ticket.tags),
            "satisfaction_rating": satisfaction, "created_at": _utc(ticket.created_at),
            "updated_at": _utc(ticket.updated_at),
        }

    @staticmethod
    def _metric_from_model(ticket) -> dict:
        return {
            "id": 10_000_000 + ticket.id, "ticket_id": ticket.id, "reopens": ticket.reopens,
            "replies": ticket.replies, "first_resolution_time_in_minutes": ticket.first_resolution_minutes,
            "full_resolution_time_in_minutes": ticket.full_resolution_minutes,
            "solved_at": _utc(ticket.solved_at) if ticket.solved_at else None,
            "created_at": _utc(ticket.created_at), "updated_at": _utc(ticket.updated_at),
        }

    @staticmethod
    def _rating_from_model(rating) -> dict:
        return {
            "id": rating.id, "ticket_id": rating.ticket_id, "score": rating.score, "comment": rating.comment,
            "requester_id": rating.requester_id, "organization_id": rating.org_id,
            "group_id": SUPPORT_GROUP_ID, "created_at": _utc(rating.created_at),
            "updated_at": _utc(rating.updated_at),
        }

    # ------------------------------------------------------------------------------------------ test helpers
    def tickets(self) -> list[dict]:
        """Every ticket (deleted included) as the API renders it, ordered by id."""
        base = self.base_urls.get("https", "")
        with self.lock:
            return [self._render_ticket(t, base) for _, t in sorted(self._tickets.items())]

    def update_ticket(self, ticket_id: int, **fields: Any) -> dict:
        """Edit a ticket (API field names; metric fields such as `reopens` land in its metrics) and bump
        `updated_at` to the sandbox clock, as an agent's edit would."""
        unknown = set(fields) - TICKET_FIELDS - METRIC_FIELDS - {"satisfaction_rating"}
        if unknown:
            raise ValueError(f"unknown ticket fields {sorted(unknown)}; known: {sorted(TICKET_FIELDS | METRIC_FIELDS)}")
        with self.lock:
            ticket = self._tickets.get(ticket_id)
            if ticket is None:
                raise KeyError(f"no ticket {ticket_id}")
            updated_at = _utc(fields.pop("updated_at", None) or self.clock.now())
            rating = fields.pop("satisfaction_rating", None)
            if rating is not None:
                ticket["satisfaction_rating"] = {"score": rating} if isinstance(rating, str) else dict(rating)
            metrics = self._metrics.setdefault(ticket_id, self._empty_metric(ticket))
            for name, value in fields.items():
                value = _utc(value) if isinstance(value, datetime) else value
                (metrics if name in METRIC_FIELDS else ticket)[name] = value
            self._touch("tickets", ticket, updated_at)
            metrics["updated_at"] = updated_at
            return copy.deepcopy(ticket)

    def add_ticket(self, subject: str, *, organization_id: int | None = None, requester_id: int | None = None,
                   priority: str = "normal", status: str = "new", tags: Iterable[str] = (),
                   description: str = "", satisfaction: str = "unoffered",
                   created_at: datetime | None = None) -> int:
        """Create a ticket stamped with the sandbox clock (or `created_at`); returns its id."""
        with self.lock:
            ticket_id = self._next_id["ticket"]
            self._next_id["ticket"] += 1
            stamp = _utc(created_at or self.clock.now())
            ticket = {
                "id": ticket_id, "external_id": None, "subject": subject, "raw_subject": subject,
                "description": description, "priority": priority, "status": status,
                "type": "incident" if priority in ("high", "urgent") else "question",
                "requester_id": requester_id, "submitter_id": requester_id, "assignee_id": None,
                "organization_id": organization_id, "group_id": SUPPORT_GROUP_ID, "tags": list(tags),
                "satisfaction_rating": {"score": satisfaction}, "created_at": stamp, "updated_at": stamp,
            }
            self._tickets[ticket_id] = ticket
            self._metrics[ticket_id] = self._empty_metric(ticket)
            bisect.insort(self._timelines["tickets"], (_ts(stamp), ticket_id))
            return ticket_id

    def delete_ticket(self, ticket_id: int) -> None:
        """Soft-delete: the export then carries the ticket with `status: "deleted"`."""
        self.update_ticket(ticket_id, status="deleted")

    def add_rating(self, ticket_id: int, score: str, comment: str = "", created_at: datetime | None = None) -> int:
        """Rate a ticket good/bad (stamped with the sandbox clock); the rated ticket is updated too."""
        if score not in RATING_SCORES:
            raise ValueError(f"score must be one of {RATING_SCORES}, got {score!r}")
        with self.lock:
            ticket = self._tickets.get(ticket_id)
            if ticket is None:
                raise KeyError(f"no ticket {ticket_id}")
            rating_id = self._next_id["rating"]
            self._next_id["rating"] += 1
            stamp = _utc(created_at or self.clock.now())
            self._ratings[rating_id] = {
                "id": rating_id, "ticket_id": ticket_id, "score": score, "comment": comment,
                "requester_id": ticket["requester_id"], "organization_id": ticket["organization_id"],
                "group_id": SUPPORT_GROUP_ID, "created_at": stamp, "updated_at": stamp,
            }
            ticket["satisfaction_rating"] = {"score": score, "id": rating_id, "comment": comment}
            self._touch("tickets", ticket, stamp)
            return rating_id

    def _touch(self, kind: str, record: dict, updated_at: datetime) -> None:
        """Move `record` to its new place in the export order of `kind` and stamp it."""
        timeline = self._timelines[kind]
        old_key = (_ts(record["updated_at"]), record["id"])
        index = bisect.bisect_left(timeline, old_key)
        if index < len(timeline) and timeline[index] == old_key:
            del timeline[index]
        record["updated_at"] = updated_at
        bisect.insort(timeline, (_ts(updated_at), record["id"]))

    # organizations and users: what an admin does in Zendesk, stamped with the sandbox clock
    def organizations(self) -> list[dict]:
        """Every organization (deleted included, with `deleted_at`) as the API renders it, ordered by id."""
        base = self.base_urls.get("https", "")
        with self.lock:
            return [self._renderers(base)["organizations"](o) for _, o in sorted(self._orgs.items())]

    def users(self) -> list[dict]:
        """Every user (deleted ones have `active: false`) as the API renders it, ordered by id."""
        base = self.base_urls.get("https", "")
        with self.lock:
            return [self._renderers(base)["users"](u) for _, u in sorted(self._users.items())]

    def add_organization(self, name: str, *, external_id: str | None = None, domain_names: Iterable[str] = (),
                         created_at: datetime | None = None) -> int:
        """Create an organization stamped with the sandbox clock (or `created_at`); returns its id."""
        with self.lock:
            org_id = self._take_id("organization")
            stamp = _utc(created_at or self.clock.now())
            self._orgs[org_id] = {
                "id": org_id, "name": name, "external_id": external_id, "domain_names": list(domain_names),
                "details": "", "notes": "", "group_id": None, "shared_tickets": False, "shared_comments": False,
                "tags": [], "organization_fields": {}, "created_at": stamp, "updated_at": stamp, "deleted_at": None,
            }
            bisect.insort(self._timelines["organizations"], (_ts(stamp), org_id))
            return org_id

    def update_organization(self, org_id: int, **fields: Any) -> dict:
        """Edit an organization (API field names) and bump `updated_at` to the sandbox clock (or the given one)."""
        return self._edit("organizations", org_id, ORGANIZATION_FIELDS, fields)

    def delete_organization(self, org_id: int) -> None:
        """Delete: gone from lists and single reads; the export carries it with `deleted_at` set."""
        with self.lock:
            org = self._live(self._orgs, org_id, "organization")
            stamp = _utc(self.clock.now())
            org["deleted_at"] = stamp
            self._touch("organizations", org, stamp)

    def add_user(self, name: str, email: str, *, organization_id: int | None = None, role: str = "end-user",
                 created_at: datetime | None = None) -> int:
        """Create a user stamped with the sandbox clock (or `created_at`); returns its id."""
        if role not in USER_ROLES:
            raise ValueError(f"role must be one of {USER_ROLES}, got {role!r}")
        with self.lock:
            user_id = self._take_id("user")
            stamp = _utc(created_at or self.clock.now())
            self._users[user_id] = {
                "id": user_id, "name": name, "email": email, "role": role, "organization_id": organization_id,
                "active": True, "verified": True, "time_zone": "UTC", "created_at": stamp, "updated_at": stamp,
            }
            bisect.insort(self._timelines["users"], (_ts(stamp), user_id))
            return user_id

    def update_user(self, user_id: int, **fields: Any) -> dict:
        """Edit a user (API field names) and bump `updated_at` to the sandbox clock (or the given one)."""
        if "role" in fields and fields["role"] not in USER_ROLES:
            raise ValueError(f"role must be one of {USER_ROLES}, got {fields['role']!r}")
        return self._edit("users", user_id, USER_FIELDS, fields)

    def delete_user(self, user_id: int) -> None:
        """Delete: gone from lists; single reads and the export show it with `active: false`."""
        with self.lock:
            user = self._live(self._users, user_id, "user")
            user["active"] = False
            self._touch("users", user, _utc(self.clock.now()))

    def _edit(self, kind: str, record_id: int, allowed: frozenset[str], fields: dict[str, Any]) -> dict:
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown {kind} fields {sorted(unknown)}; known: {sorted(allowed)}")
        with self.lock:
            record = self._live(self._stores()[kind], record_id, kind.rstrip("s"))
            updated_at = _utc(fields.pop("updated_at", None) or self.clock.now())
            for name, value in fields.items():
                record[name] = list(value) if isinstance(value, list | tuple) else value
            self._touch(kind, record, updated_at)
            return copy.deepcopy(record)

    @staticmethod
    def _live(records: dict[int, dict], record_id: int, what: str) -> dict:
        record = records.get(record_id)
        if record is None or record.get("deleted_at") or record.get("active") is False:
            raise KeyError(f"no live {what} {record_id}")
        return record

    def _take_id(self, kind: str) -> int:
        record_id = self._next_id[kind]
        self._next_id[kind] += 1
        return record_id

    @staticmethod
    def _empty_metric(ticket: dict) -> dict:
        return {
            "id": 10_000_000 + ticket["id"], "ticket_id": ticket["id"], "reopens": 0, "replies": 0,
            "first_resolution_time_in_minutes": None, "full_resolution_time_in_minutes": None,
            "solved_at": None, "created_at": ticket["created_at"], "updated_at": ticket["updated_at"],
        }

    # ------------------------------------------------------------------------------------------ hooks
    def check_auth(self, request: Request) -> Response | None:
        auth = request.headers.get("Authorization", "")
        creds = DEMO.zendesk
        if auth == f"Bearer {creds.oauth_token}":
            return None
        if auth.startswith("Basic "):
            try:
                decoded = base64.b64decode(auth[6:], validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            if decoded == f"{creds.email}/token:{creds.token}":
                return None
        return json_response({"error": "Couldn't authenticate you"}, 401)

    def rate_limit(self, request: Request, endpoint: str) -> Response | None:
        allowed, remaining, wait = self._account_limit.hit()
        request.environ["zendesk.remaining"] = remaining
        if not allowed:
            return self._too_many(wait, "Number of allowed API requests per minute exceeded")
        if endpoint in INCREMENTAL_ENDPOINTS:
            allowed, remaining, wait = self._incremental_limit.hit()
            request.environ["zendesk.incremental_remaining"] = remaining
            if not allowed:
                return self._too_many(wait, "Number of allowed incremental export API requests per minute exceeded")
        return None

    @staticmethod
    def _too_many(wait: float, description: str) -> Response:
        retry_after = max(1, math.ceil(wait))  # zenpy int()s it and sleeps whole seconds
        return json_response({"error": "APIRateLimitExceeded", "description": description}, 429,
                             {"Retry-After": str(retry_after)})

    def decorate(self, request: Request, response: Response, endpoint: str) -> Response:
        response.headers["X-Rate-Limit"] = str(self._account_limit.limit)
        if "zendesk.remaining" in request.environ:
            response.headers["X-Rate-Limit-Remaining"] = str(request.environ["zendesk.remaining"])
        if "zendesk.incremental_remaining" in request.environ:
            response.headers["Zendesk-RateLimit-incremental-exports"] = (
                f"total={self._incremental_limit.limit}; remaining={request.environ['zendesk.incremental_remaining']}; "
                f"resets={max(1, math.ceil(self._incremental_limit.effective_window))}"
            )
        return response

    def expired_session_response(self) -> Response:
        return json_response({"error": "invalid_token", "error_description": "The access token provided is "
                              "expired, revoked, malformed or invalid for other reasons."}, 401)

    def error_response(self, status: int, message: str) -> Response:
        if status == 404:
            return json_response({"error": "InvalidEndpoint", "description": message}, 404)
        return json_response({"error": "InvalidValue", "description": message}, status)

    def dispatch(self, request: Request) -> Response:
        try:
            return super().dispatch(request)
        except ZendeskApiError as exc:
            return self.decorate(request, json_response({"error": exc.error, "description": exc.description},
                                                        exc.status), "error")

    # ------------------------------------------------------------------------------------------ rendering
    @staticmethod
    def _render(record: dict, url: str) -> dict:
        out = {"url": url}
        for name, value in record.items():
            if isinstance(value, datetime):
                value = _iso(value)
            elif isinstance(value, list):
                value = list(value)  # lists and dicts in records hold scalars only
            elif isinstance(value, dict):
                value = dict(value)
            out[name] = value
        return out

    def _render_ticket(self, ticket: dict, base: str) -> dict:
        out = self._render(ticket, f"{base}/api/v2/tickets/{ticket['id']}.json")
        out["generated_timestamp"] = _ts(ticket["updated_at"])
        return out

    def _render_metric(self, metric: dict, base: str) -> dict:
        out = self._render(metric, f"{base}/api/v2/ticket_metrics/{metric['id']}.json")
        for name in ("first_resolution_time_in_minutes", "full_resolution_time_in_minutes"):
            minutes = metric[name]
            # business hours are roughly a third of calendar time (8 h of 24)
            out[name] = {"calendar": minutes, "business": None if minutes is None else round(minutes / 3)}
        return out

    def _renderers(self, base: str) -> dict[str, Callable[[dict], dict]]:
        return {
            "organizations": lambda o: self._render(o, f"{base}/api/v2/organizations/{o['id']}.json"),
            "users": lambda u: self._render(u, f"{base}/api/v2/users/{u['id']}.json"),
            "tickets": lambda t: self._render_ticket(t, base),
            "ticket_metrics": lambda m: self._render_metric(m, base),
            "satisfaction_ratings": lambda r: self._render(r, f"{base}/api/v2/satisfaction_ratings/{r['id']}.json"),
        }

    @staticmethod
    def _corrupt_if_asked(request: Request, records: list[dict], field: str) -> None:
        """The `odd_record` fault: one record of the page loses a required field."""
        if request.environ.get("sandbox.odd_record") and records:
            records[0].pop(field, None)

    # ------------------------------------------------------------------------------------------ exports
    def on_ticket_export(self, request: Request) -> Response:
        includes = {part.strip() for part in request.args.get("include", "").split(",") if part.strip()}
        base = self.base_url(request)
        return self._cursor_export(request, "tickets", lambda chosen: self._export_sideloads(includes, chosen, base))

    def on_user_export(self, request: Request) -> Response:
        return self._cursor_export(request, "users", lambda chosen: {})

    def _cursor_export(self, request: Request, kind: str, sideloads: Callable[[list[dict]], dict]) -> Response:
        """Zendesk's cursor-based export: ordered by (updated_at, id), no duplicates, no `end_time`."""
        args = request.args
        per_page = _int_arg(args, "per_page", EXPORT_MAX_PAGE, 1, EXPORT_MAX_PAGE)
        cutoff = _ts(self.clock.now()) - EXPORT_DELAY_SECONDS
        direction, position = self._export_position(args, cutoff)
        render = self._renderers(self.base_url(request))[kind]
        with self.lock:
            timeline, records = self._timelines[kind], self._stores()[kind]
            lo, hi = _window(timeline, direction, position, per_page, (cutoff, 2**62))
            keys = timeline[lo:hi]
            chosen = [records[record_id] for _, record_id in keys]
            rendered = [render(record) for record in chosen]
            more = lo > 0 if direction == "b" else hi < len(timeline) and timeline[hi][0] <= cutoff
            extra = sideloads(chosen)
        self._corrupt_if_asked(request, rendered, "updated_at")
        after_key = keys[-1] if keys else position
        before_key = keys[0] if keys else position
        body = {
            kind: rendered,
            "after_cursor": encode_cursor("a", after_key),
            "before_cursor": encode_cursor("b", before_key),
            "end_of_stream": not more,
            **extra,
        }
        body["after_url"] = self._export_url(request, body["after_cursor"])
        body["before_url"] = self._export_url(request, body["before_cursor"]) if keys else None
        return json_response(body)

    @staticmethod
    def _export_position(args: Any, cutoff: int) -> tuple[str, Key]:
        if args.get("cursor"):
            return decode_cursor(args["cursor"])
        return "a", (_export_start_time(args, cutoff), -1)

    def on_organization_export(self, request: Request) -> Response:
        """Zendesk's time-based export: from `start_time` inclusive, up to `per_page` items, then the rest of the
        last item's second; `end_time` is that second and `next_page` starts there, so its items come again."""
        args = request.args
        per_page = _int_arg(args, "per_page", EXPORT_MAX_PAGE, 1, EXPORT_MAX_PAGE)
        cutoff = _ts(self.clock.now()) - EXPORT_DELAY_SECONDS
        start_time = _export_start_time(args, cutoff)
        render = self._renderers(self.base_url(request))["organizations"]
        with self.lock:
            timeline = self._timelines["organizations"]
            lo, hi, end = _time_window(timeline, start_time, cutoff, per_page)
            rendered = [render(self._orgs[record_id]) for _, record_id in timeline[lo:hi]]
            end_time = timeline[hi - 1][0] if hi > lo else start_time
        self._corrupt_if_asked(request, rendered, "updated_at")
        params = [("start_time", str(end_time))] + [(k, v) for k, v in args.items(multi=True) if k == "per_page"]
        return json_response({
            "organizations": rendered,
            "next_page": f"{self.base_url(request)}{request.path}?{urlencode(params)}",
            "count": len(rendered),
            "end_of_stream": hi >= end,
            "end_time": end_time,
        })

    def _export_sideloads(self, includes: set[str], tickets: list[dict], base: str) -> dict[str, list[dict]]:
        render = self._renderers(base)
        out: dict[str, list[dict]] = {}
        if "users" in includes:
            ids = sorted({t[k] for t in tickets for k in ("requester_id", "submitter_id", "assignee_id") if t[k]})
            out["users"] = [render["users"](self._users[i]) for i in ids if i in self._users]
        if "organizations" in includes:
            ids = sorted({t["organization_id"] for t in tickets if t["organization_id"]})
            out["organizations"] = [render["organizations"](self._orgs[i]) for i in ids if i in self._orgs]
        if "metric_sets" in includes:
            out["metric_sets"] = [render["ticket_metrics"](self._metrics[t["id"]])
                                  for t in tickets if t["id"] in self._metrics]
        return out

    def _export_url(self, request: Request, cursor: str) -> str:
        params = [("cursor", cursor)]
        params += [(k, v) for k, v in request.args.items(multi=True) if k in ("per_page", "include")]
        return f"{self.base_url(request)}{request.path}?{urlencode(params)}"

    # ------------------------------------------------------------------------------------------ lists
    def on_organizations(self, request: Request) -> Response:
        with self.lock:
            rows = [((0, i), o) for i, o in sorted(self._orgs.items()) if o["deleted_at"] is None]
            return self._list(request, "organizations", rows, "id")

    def on_users(self, request: Request) -> Response:
        with self.lock:
            rows = [((0, i), u) for i, u in sorted(self._users.items()) if u["active"]]
            return self._list(request, "users", rows, "id")

    def on_tickets(self, request: Request) -> Response:
        with self.lock:
            rows = [((0, i), t) for i, t in sorted(self._tickets.items()) if t["status"] != "deleted"]
            return self._list(request, "tickets", rows, "updated_at")

    def on_ticket_metrics(self, request: Request) -> Response:
        with self.lock:
            rows = [((0, m["id"]), m) for tid, m in sorted(self._metrics.items())
                    if self._tickets.get(tid, {}).get("status") != "deleted"]
            return self._list(request, "ticket_metrics", rows, "ticket_id")

    def on_satisfaction_ratings(self, request: Request) -> Response:
        args = request.args
        score = args.get("score")
        if score and score not in SCORE_FILTERS:
            raise ZendeskApiError(f"score must be one of {sorted(SCORE_FILTERS)}, got {score!r}")
        start = _int_arg(args, "start_time", None, 0, 2**40)
        end = _int_arg(args, "end_time", None, 0, 2**40)
        sort_order = args.get("sort_order", "asc")
        if sort_order not in ("asc", "desc"):
            raise ZendeskApiError(f"sort_order must be asc or desc, got {sort_order!r}")
        sign = 1 if sort_order == "asc" else -1
        with self.lock:
            chosen = [r for r in self._ratings.values() if _rating_matches(r, score, start, end)]
            rows = sorted((((sign * _ts(r["created_at"]), sign * r["id"]), r) for r in chosen), key=lambda x: x[0])
            return self._list(request, "satisfaction_ratings", rows, "score")

    def _list(self, request: Request, plural: str, rows: list[tuple[Key, dict]], odd_field: str) -> Response:
        render = self._renderers(self.base_url(request))[plural]
        args = request.args
        # like Zendesk: cursor paging when any page[...] parameter is sent, offset paging otherwise
        if any(k in args for k in ("page[size]", "page[after]", "page[before]")):
            body, chosen = self._cursor_page(request, rows)
        else:
            body, chosen = self._offset_page(request, rows)
        records = [render(record) for record in chosen]
        self._corrupt_if_asked(request, records, odd_field)
        return json_response({plural: records, **body})

    def _cursor_page(self, request: Request, rows: list[tuple[Key, dict]]) -> tuple[dict, list[dict]]:
        args = request.args
        size = _int_arg(args, "page[size]", LIST_DEFAULT_PAGE, 1, LIST_MAX_PAGE)
        keys = [key for key, _ in rows]
        direction, position = "a", (-(2**62), -(2**62))
        if args.get("page[after]"):
            direction, position = "a", decode_cursor(args["page[after]"])[1]
        elif args.get("page[before]"):
            direction, position = "b", decode_cursor(args["page[before]"])[1]
        lo, hi = _window(keys, direction, position, size, None)
        has_more = hi < len(keys) if direction == "a" else lo > 0
        after = encode_cursor("a", keys[hi - 1]) if hi > lo else None
        before = encode_cursor("b", keys[lo]) if hi > lo else None
        drop = ("page[after]", "page[before]")
        links = {
            "next": self._list_url(request, drop, {"page[after]": after}) if has_more and after else None,
            "prev": self._list_url(request, drop, {"page[before]": before}) if before else None,
        }
        meta = {"has_more": has_more, "after_cursor": after, "before_cursor": before}
        return {"meta": meta, "links": links}, [record for _, record in rows[lo:hi]]

    def _offset_page(self, request: Request, rows: list[tuple[Key, dict]]) -> tuple[dict, list[dict]]:
        page = _int_arg(request.args, "page", 1, 1, 10**6)
        per_page = _int_arg(request.args, "per_page", LIST_DEFAULT_PAGE, 1, LIST_MAX_PAGE)
        start = (page - 1) * per_page
        chosen = [record for _, record in rows[start:start + per_page]]
        has_next = start + per_page < len(rows)
        body = {
            "count": len(rows),
            "next_page": self._list_url(request, ("page",), {"page": str(page + 1)}) if has_next else None,
            "previous_page": self._list_url(request, ("page",), {"page": str(page - 1)}) if page > 1 else None,
        }
        return body, chosen

    def _list_url(self, request: Request, drop: Iterable[str], extra: dict[str, str | None]) -> str:
        dropped = set(drop) | set(extra)
        params = [(k, v) for k, v in request.args.items(multi=True) if k not in dropped]
        params += [(k, v) for k, v in extra.items() if v is not None]
        return f"{self.base_url(request)}{request.path}?{urlencode(params)}"

    # ------------------------------------------------------------------------------------------ single reads
    def _single(self, request: Request, plural: str, singular: str, record: dict | None) -> Response:
        if record is None:
            return json_response({"error": "RecordNotFound", "description": "Not found"}, 404)
        return json_response({singular: self._renderers(self.base_url(request))[plural](record)})

    def on_organization(self, request: Request, record_id: int) -> Response:
        with self.lock:
            org = self._orgs.get(record_id)
            live = org if org is not None and org["deleted_at"] is None else None
            return self._single(request, "organizations", "organization", live)

    def on_user(self, request: Request, record_id: int) -> Response:
        with self.lock:
            return self._single(request, "users", "user", self._users.get(record_id))

    def on_ticket(self, request: Request, record_id: int) -> Response:
        with self.lock:
            ticket = self._tickets.get(record_id)
            live = ticket if ticket is not None and ticket["status"] != "deleted" else None
            return self._single(request, "tickets", "ticket", live)

    def on_ticket_metrics_of(self, request: Request, record_id: int) -> Response:
        with self.lock:
            ticket = self._tickets.get(record_id)
            metric = self._metrics.get(record_id) if ticket and ticket["status"] != "deleted" else None
            return self._single(request, "ticket_metrics", "ticket_metric", metric)

    def on_ticket_metric(self, request: Request, record_id: int) -> Response:
        with self.lock:
            metric = next((m for m in self._metrics.values() if m["id"] == record_id), None)
            return self._single(request, "ticket_metrics", "ticket_metric", metric)

    def on_satisfaction_rating(self, request: Request, record_id: int) -> Response:
        with self.lock:
            return self._single(request, "satisfaction_ratings", "satisfaction_rating", self._ratings.get(record_id))


def _rating_matches(rating: dict, score: str | None, start: int | None, end: int | None) -> bool:
    """Zendesk's score filters; start_time/end_time bound the rating's creation time."""
    created = _ts(rating["created_at"])
    if (start is not None and created < start) or (end is not None and created > end):
        return False
    if not score or score == "received":
        return True
    if score in ("offered", "unoffered"):
        return False  # the model only holds received (good/bad) ratings
    has_comment = bool(rating["comment"])
    base, _, qualifier = score.partition("_")
    if base != "received" and base != rating["score"]:
        return False
    if qualifier == "with_comment":
        return has_comment
    if qualifier == "without_comment":
        return not has_comment
    return True
