"""Zendesk Support API emulator: routes, loading from the portfolio, auth, rate limits and error shapes.

What it serves (all under `/api/v2/`; `.json` optional where Zendesk documents the path without it):
    incremental/tickets/cursor.json, incremental/users/cursor.json        cursor-based exports
    incremental/tickets.json, incremental/users.json, incremental/organizations.json,
    incremental/ticket_events.json                                       time-based exports
    incremental/{tickets,ticket_events,users,organizations}/sample        50-item samples, 10 per 20 minutes
    tickets, users, organizations, groups, ticket_metrics, satisfaction_ratings, organization_fields,
    user_fields (cursor or offset paging), {tickets,users,organizations}/show_many, single reads,
    search.json, search/count.json, search/export.json
Sideloads, `exclude_deleted`, float/ISO `start_time` and both metric-set shapes are described where they are
handled (exports.py, lists.py). Quirks kept on purpose (sdk-notes §3): absolute `after_url`/`links.next` on the
emulator's own host, URL-safe alphanumeric cursors, no `end_time` in cursor-export pages, integer `Retry-After`.
"""

from __future__ import annotations

import base64
import binascii
import math

from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from healthsync.sandbox.core import Emulator, SlidingWindowLimit, json_response
from healthsync.sandbox.credentials import DEMO
from healthsync.sandbox.model import Portfolio
from healthsync.sandbox.zendesk import resources as res
from healthsync.sandbox.zendesk.admin import AdminMixin
from healthsync.sandbox.zendesk.exports import ExportsMixin
from healthsync.sandbox.zendesk.lists import ListsMixin
from healthsync.sandbox.zendesk.params import ZendeskApiError, ts

CRMS = ("salesforce", "hubspot")
METRIC_SET_SHAPES = ("both", "nested", "sideload")
INCREMENTAL_ENDPOINTS = frozenset({"ticket_export", "user_export", "organization_export", "ticket_export_time",
                                   "user_export_time", "ticket_event_export"})


def _rules(path: str, endpoint: str, json_optional: bool = True) -> list[Rule]:
    """One rule per spelling: Zendesk's reference lists paths without `.json`; clients send both."""
    rules = [Rule(f"/api/v2/{path}.json", endpoint=endpoint)]
    if json_optional:
        rules.append(Rule(f"/api/v2/{path}", endpoint=endpoint))
    return rules


URL_MAP = Map([
    *_rules("incremental/tickets/cursor", "ticket_export"),
    *_rules("incremental/users/cursor", "user_export"),
    *_rules("incremental/organizations", "organization_export"),
    *_rules("incremental/tickets", "ticket_export_time"),
    *_rules("incremental/users", "user_export_time"),
    *_rules("incremental/ticket_events", "ticket_event_export"),
    *_rules("incremental/<any(tickets, ticket_events, users, organizations):resource>/sample", "sample"),
    *_rules("organizations", "organizations"),
    *_rules("organizations/show_many", "organizations_many"),
    *_rules("organizations/<int:record_id>", "organization"),
    *_rules("users", "users"),
    *_rules("users/show_many", "users_many"),
    *_rules("users/<int:record_id>", "user"),
    *_rules("tickets", "tickets"),
    *_rules("tickets/show_many", "tickets_many"),
    *_rules("tickets/<int:record_id>", "ticket"),
    *_rules("tickets/<int:record_id>/metrics", "ticket_metrics_of"),
    *_rules("ticket_metrics", "ticket_metrics"),
    *_rules("ticket_metrics/<int:record_id>", "ticket_metric"),
    *_rules("satisfaction_ratings", "satisfaction_ratings"),
    *_rules("satisfaction_ratings/<int:record_id>", "satisfaction_rating"),
    *_rules("groups", "groups"),
    *_rules("groups/<int:record_id>", "group"),
    *_rules("organization_fields", "organization_fields"),
    *_rules("user_fields", "user_fields"),
    *_rules("search", "search"),
    *_rules("search/count", "search_count"),
    *_rules("search/export", "search_export"),
])


class ZendeskEmulator(ExportsMixin, ListsMixin, AdminMixin, Emulator):
    """In-memory Zendesk account built from a Portfolio; see the module docstring for the surface."""

    name = "zendesk"
    prefixes = ("/api/v2/",)
    url_map = URL_MAP

    def __init__(self, clock, calls, faults, time_scale: float = 1.0):
        super().__init__(clock, calls, faults, time_scale)
        self._account_limit = SlidingWindowLimit(400, 60, time_scale)  # Growth/Professional plan
        self._incremental_limit = SlidingWindowLimit(10, 60, time_scale)
        # Incremental Sample Export: "10 requests per 20 minutes" (Incremental Exports reference)
        self._sample_limit = SlidingWindowLimit(10, 1200, time_scale)
        self.crm = "salesforce"
        # Which shape `include=metric_sets` takes in the incremental ticket exports; the docs show both (see
        # exports.py), so tests can serve either alone to prove a client tolerates each.
        self.metric_set_shape = "both"
        self._orgs: dict[int, dict] = {}
        self._users: dict[int, dict] = {}
        self._tickets: dict[int, dict] = {}
        self._metrics: dict[int, dict] = {}  # by ticket id
        self._ratings: dict[int, dict] = {}
        # per exported kind, the sorted (updated_at, id) of every record, deleted ones included
        self._timelines: dict[str, list[tuple[int, int]]] = {"tickets": [], "users": [], "organizations": []}
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
            self._users = {u.id: res.new_user(u.id, u.name, u.email, u.role, u.org_id, u.created_at, u.updated_at)
                           for u in portfolio.zendesk_users}
            ratings_by_ticket = {r.ticket_id: r for r in portfolio.satisfaction_ratings}
            agents = sorted(uid for uid, u in self._users.items() if u["role"] in ("agent", "admin"))
            self._tickets, self._metrics = {}, {}
            for ticket in portfolio.tickets:
                stored = self._ticket_from_model(ticket, agents, ratings_by_ticket.get(ticket.id))
                self._tickets[ticket.id] = stored
                self._metrics[ticket.id] = res.new_metric(
                    stored, reopens=ticket.reopens, replies=ticket.replies, solved_at=ticket.solved_at,
                    first_resolution=ticket.first_resolution_minutes, full_resolution=ticket.full_resolution_minutes)
            self._ratings = {r.id: self._rating_from_model(r) for r in portfolio.satisfaction_ratings}
            self._timelines = {kind: sorted((ts(r["updated_at"]), r["id"]) for r in records.values())
                               for kind, records in self._stores().items()}
            self._next_id = {"ticket": max(self._tickets, default=0) + 1, "rating": max(self._ratings, default=0) + 1,
                             "organization": max(self._orgs, default=0) + 1, "user": max(self._users, default=0) + 1}

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
        return res.new_organization(org.id, org.name, external_id, org.domain_names, org.created_at, org.updated_at,
                                    account.plan_tier if account else None)

    def _ticket_from_model(self, ticket, agents: list[int], rating) -> dict:
        satisfaction: dict = {"score": ticket.satisfaction}
        if rating is not None:
            satisfaction = {"score": rating.score, "id": rating.id, "comment": rating.comment}
        assignee = agents[ticket.id % len(agents)] if agents and ticket.status != "new" else None
        requester = self._users.get(ticket.requester_id)
        return res.new_ticket(
            ticket.id, subject=ticket.subject, description=ticket.description, priority=ticket.priority,
            status=ticket.status, tags=list(ticket.tags), requester_id=ticket.requester_id,
            organization_id=ticket.org_id, assignee_id=assignee, satisfaction=satisfaction,
            created_at=ticket.created_at, updated_at=ticket.updated_at,
            requester_email=requester["email"] if requester else None)

    def _rating_from_model(self, rating) -> dict:
        ticket = self._tickets.get(rating.ticket_id) or {}
        return res.new_rating(rating.id, ticket, rating.score, rating.comment, rating.created_at,
                              rating.updated_at, requester_id=rating.requester_id, organization_id=rating.org_id)

    # ------------------------------------------------------------------------------------------ hooks
    def check_auth(self, request: Request) -> Response | None:
        """API token (`{email}/token:{token}` Basic) or OAuth Bearer ("Security and authentication",
        https://developer.zendesk.com/api-reference/introduction/security-and-auth/)."""
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
        """Account-wide and incremental-export limits ("Rate limits",
        https://developer.zendesk.com/api-reference/introduction/rate-limits/)."""
        allowed, remaining, wait = self._account_limit.hit()
        request.environ["zendesk.remaining"] = remaining
        if not allowed:
            return self._too_many(wait, "Number of allowed API requests per minute exceeded")
        if endpoint == "sample":
            allowed, _, wait = self._sample_limit.hit()
            if not allowed:
                return self._too_many(wait, "Number of allowed incremental sample export requests exceeded")
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
