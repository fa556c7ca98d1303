"""Zendesk's list, show-many, single-read and search endpoints, with cursor and offset pagination.

Pagination (https://developer.zendesk.com/api-reference/introduction/pagination/): cursor paging when any
`page[...]` parameter is sent (`meta.has_more/after_cursor/before_cursor`, `links.next/prev`, page[size] ≤ 100),
offset paging otherwise (`count`, `next_page`, `previous_page`, per_page ≤ 100).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote, urlencode

from werkzeug.wrappers import Request, Response

from healthsync.sandbox.core import json_response
from healthsync.sandbox.zendesk import resources as res
from healthsync.sandbox.zendesk import search as zsearch
from healthsync.sandbox.zendesk.params import (
    ZendeskApiError,
    csv_ids,
    decode_cursor,
    encode_cursor,
    include_set,
    int_arg,
    ts,
    unix_time_arg,
    window,
)

LIST_MAX_PAGE = 100
LIST_DEFAULT_PAGE = 100
SEARCH_MAX_RESULTS = 1000  # "Search API returns up to 1,000 results per query" (Search reference, Results limit)
SEARCH_EXPORT_MAX_PAGE = 1000
SEARCH_SORTS = ("updated_at", "created_at", "priority", "status", "ticket_type")
SCORE_FILTERS = frozenset({
    "offered", "unoffered", "received", "received_with_comment", "received_without_comment",
    "good", "good_with_comment", "good_without_comment", "bad", "bad_with_comment", "bad_without_comment",
})
Key = tuple[int, int]


class ListsMixin:
    """List-type endpoints of ZendeskEmulator (state lives on the emulator)."""

    def _renderers(self, base: str) -> dict[str, Callable[[dict], dict]]:
        return {
            "organizations": lambda o: res.render(o, f"{base}/api/v2/organizations/{o['id']}.json"),
            "users": lambda u: res.render_user(u, base),
            "tickets": lambda t: res.render_ticket(t, base),
            "ticket_metrics": lambda m: res.render_metric(m, self._tickets.get(m["ticket_id"]), base),
            "satisfaction_ratings": lambda r: res.render(r, f"{base}/api/v2/satisfaction_ratings/{r['id']}.json"),
            "groups": lambda g: res.render(g, f"{base}/api/v2/groups/{g['id']}.json"),
            "organization_fields": lambda f: res.render(f, f"{base}/api/v2/organization_fields/{f['id']}.json"),
            "user_fields": lambda f: res.render(f, f"{base}/api/v2/user_fields/{f['id']}.json"),
        }

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
        """List Tickets: sorted by id, deleted ones gone; ticket sideloads as on the exports (top-level)."""
        with self.lock:
            rows = [((0, i), t) for i, t in sorted(self._tickets.items()) if t["status"] != "deleted"]
            return self._list(request, "tickets", rows, "updated_at")

    def on_ticket_metrics(self, request: Request) -> Response:
        with self.lock:
            rows = [((0, m["id"]), m) for tid, m in sorted(self._metrics.items())
                    if self._tickets.get(tid, {}).get("status") != "deleted"]
            return self._list(request, "ticket_metrics", rows, "ticket_id")

    def on_groups(self, request: Request) -> Response:
        """List Groups (https://developer.zendesk.com/api-reference/ticketing/groups/groups/#list-groups)."""
        return self._list(request, "groups", [((0, g["id"]), g) for g in res.groups()], "id")

    def on_organization_fields(self, request: Request) -> Response:
        return self._list(request, "organization_fields",
                          [((0, f["id"]), f) for f in res.organization_fields()], "key")

    def on_user_fields(self, request: Request) -> Response:
        return self._list(request, "user_fields", [((0, f["id"]), f) for f in res.user_fields()], "key")

    def on_satisfaction_ratings(self, request: Request) -> Response:
        """List Satisfaction Ratings: `score` filters, `start_time`/`end_time` on creation, `sort_order`
        (https://developer.zendesk.com/api-reference/ticketing/ticket-management/satisfaction_ratings/)."""
        args = request.args
        score = args.get("score")
        if score and score not in SCORE_FILTERS:
            raise ZendeskApiError(f"score must be one of {sorted(SCORE_FILTERS)}, got {score!r}")
        start, end = unix_time_arg(args, "start_time"), unix_time_arg(args, "end_time")
        sort_order = args.get("sort_order", "asc")
        if sort_order not in ("asc", "desc"):
            raise ZendeskApiError(f"sort_order must be asc or desc, got {sort_order!r}")
        sign = 1 if sort_order == "asc" else -1
        with self.lock:
            chosen = [r for r in self._ratings.values() if _rating_matches(r, score, start, end)]
            rows = sorted((((sign * ts(r["created_at"]), sign * r["id"]), r) for r in chosen), key=lambda x: x[0])
            return self._list(request, "satisfaction_ratings", rows, "score")

    def _list(self, request: Request, plural: str, rows: list[tuple[Key, dict]], odd_field: str) -> Response:
        args = request.args
        if any(k in args for k in ("page[size]", "page[after]", "page[before]")):
            body, chosen = self._cursor_page(request, rows, LIST_MAX_PAGE)
        else:
            body, chosen = self._offset_page(request, rows)
        payload = self._list_payload(request, plural, chosen)
        self._corrupt_if_asked(request, payload[plural], odd_field)
        return json_response({**payload, **body})

    def _list_payload(self, request: Request, plural: str, chosen: list[dict]) -> dict:
        base = self.base_url(request)
        if plural == "tickets":
            return self._render_tickets(chosen, include_set(request.args), base, incremental=False)
        render = self._renderers(base)[plural]
        return {plural: [render(record) for record in chosen]}

    def _cursor_page(self, request: Request, rows: list[tuple[Key, dict]], max_size: int) -> tuple[dict, list[dict]]:
        args = request.args
        size = int_arg(args, "page[size]", min(LIST_DEFAULT_PAGE, max_size), 1, max_size)
        keys = [key for key, _ in rows]
        direction, position = "a", (-(2**62), -(2**62))
        if args.get("page[after]"):
            direction, position = "a", decode_cursor(args["page[after]"])[1]
        elif args.get("page[before]"):
            direction, position = "b", decode_cursor(args["page[before]"])[1]
        lo, hi = window(keys, direction, position, size, None)
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

    def _offset_page(self, request: Request, rows: list, limit: int | None = None) -> tuple[dict, list]:
        page = int_arg(request.args, "page", 1, 1, 10**6)
        per_page = int_arg(request.args, "per_page", LIST_DEFAULT_PAGE, 1, LIST_MAX_PAGE)
        if limit is not None and page * per_page > limit:
            # Search results limit: 422 "invalid" (zenpy's SearchResponseLimitExceeded is keyed on exactly this)
            raise ZendeskApiError("Invalid search: Requested response size was greater than Search Response Limits",
                                  "invalid", 422)
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

    # ------------------------------------------------------------------------------------------ show many
    def on_users_many(self, request: Request) -> Response:
        """Show Many Users: `ids` or `external_ids`, up to 100 (Users reference)."""
        with self.lock:
            live = {i: u for i, u in self._users.items() if u["active"]}
            return self._many(request, "users", live)

    def on_organizations_many(self, request: Request) -> Response:
        """Show Many Organizations: `ids` or `external_ids`, up to 100 (Organizations reference)."""
        with self.lock:
            live = {i: o for i, o in self._orgs.items() if o["deleted_at"] is None}
            return self._many(request, "organizations", live)

    def on_tickets_many(self, request: Request) -> Response:
        """Show Multiple Tickets: `ids`, up to 100, with the ticket sideloads (Tickets reference)."""
        with self.lock:
            live = {i: t for i, t in self._tickets.items() if t["status"] != "deleted"}
            return self._many(request, "tickets", live)

    def _many(self, request: Request, plural: str, records: dict[int, dict]) -> Response:
        ids = csv_ids(request.args, "ids")
        if ids:
            chosen = [records[int(i)] for i in ids if i.isdigit() and int(i) in records]
        else:
            external = set(csv_ids(request.args, "external_ids"))
            if not external and plural != "tickets":
                raise ZendeskApiError("ids or external_ids is required")
            chosen = [r for _, r in sorted(records.items()) if r.get("external_id") in external]
        return json_response({**self._list_payload(request, plural, chosen), "count": len(chosen),
                              "next_page": None, "previous_page": None})

    # ------------------------------------------------------------------------------------------ single reads
    def _single(self, request: Request, plural: str, singular: str, record: dict | None) -> Response:
        if record is None:
            return json_response({"error": "RecordNotFound", "description": "Not found"}, 404)
        if plural == "tickets":
            body = self._render_tickets([record], include_set(request.args), self.base_url(request), incremental=False)
            return json_response({"ticket": body.pop("tickets")[0], **body})
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

    def on_group(self, request: Request, record_id: int) -> Response:
        return self._single(request, "groups", "group", next((g for g in res.groups() if g["id"] == record_id), None))

    # ------------------------------------------------------------------------------------------ search
    def on_search(self, request: Request) -> Response:
        """Search (offset paging only, at most 1,000 results, `sort_by`/`sort_order`) — Search reference."""
        found = self._search(request)
        body, chosen = self._offset_page(request, [(None, hit) for hit in found], SEARCH_MAX_RESULTS)
        return json_response({"results": self._render_hits(request, chosen), "facets": None, **body})

    def on_search_count(self, request: Request) -> Response:
        return json_response({"count": len(self._search(request))})

    def on_search_export(self, request: Request) -> Response:
        """Export Search Results: cursor paging, `filter[type]` required, page[size] ≤ 1000 (Search reference)."""
        if not request.args.get("filter[type]"):
            raise ZendeskApiError("filter[type] is required for search export")
        found = self._search(request)
        rows = [((n, n), hit) for n, hit in enumerate(found)]
        body, chosen = self._cursor_page(request, rows, SEARCH_EXPORT_MAX_PAGE)
        return json_response({"results": self._render_hits(request, chosen), "facets": None, **body})

    def _search(self, request: Request) -> list[tuple[str, dict]]:
        raw = request.args.get("query")
        if not raw:
            raise ZendeskApiError("query is required", "invalid")
        query = unquote(raw) if "%" in raw else raw  # zenpy percent-encodes the query before requests does
        terms = zsearch.parse_query(query)
        kinds = zsearch.kinds_of(terms, request.args.get("filter[type]"))
        with self.lock:
            found = zsearch.search(kinds, self._search_catalog(), terms, self.clock.now())
        return _sorted_hits(found, request.args.get("sort_by"), request.args.get("sort_order", "desc"))

    def _render_hits(self, request: Request, hits: list[tuple[str, dict]]) -> list[dict]:
        render = self._renderers(self.base_url(request))
        plural = {"ticket": "tickets", "user": "users", "organization": "organizations", "group": "groups"}
        with self.lock:
            return [{**render[plural[kind]](record), "result_type": kind} for kind, record in hits]

    def _search_catalog(self) -> dict[str, tuple[list[dict], dict, Callable[[dict], str]]]:
        users, orgs = self._users, self._orgs
        ticket_fields: dict[str, Callable[[dict], Any]] = {
            "status": lambda t: t["status"], "priority": lambda t: t["priority"],
            "ticket_type": lambda t: t["type"], "tags": lambda t: t["tags"], "tag": lambda t: t["tags"],
            "subject": lambda t: t["subject"].split(), "description": lambda t: t["description"].split(),
            "created": lambda t: t["created_at"], "updated": lambda t: t["updated_at"],
            "solved": lambda t: (self._metrics.get(t["id"]) or {}).get("solved_at"),
            "organization": lambda t: _id_and(t["organization_id"], orgs, "name"),
            "requester": lambda t: _id_and(t["requester_id"], users, "email"),
            "assignee": lambda t: _id_and(t["assignee_id"], users, "email"),
            "group": lambda t: [t["group_id"]], "brand": lambda t: t["brand_id"],
            "external_id": lambda t: t["external_id"], "via": lambda t: t["via"]["channel"],
        }
        user_fields: dict[str, Callable[[dict], Any]] = {
            "name": lambda u: u["name"].split() + [u["name"]], "email": lambda u: u["email"],
            "role": lambda u: u["role"], "organization": lambda u: _id_and(u["organization_id"], orgs, "name"),
            "created": lambda u: u["created_at"], "updated": lambda u: u["updated_at"],
        }
        org_fields: dict[str, Callable[[dict], Any]] = {
            "name": lambda o: o["name"].split() + [o["name"]], "external_id": lambda o: o["external_id"],
            "tags": lambda o: o["tags"], "created": lambda o: o["created_at"], "updated": lambda o: o["updated_at"],
            "domain": lambda o: o["domain_names"],
        }
        group_fields = {"name": lambda g: g["name"], "created": lambda g: g["created_at"],
                        "updated": lambda g: g["updated_at"]}
        return {
            "ticket": ([t for t in self._tickets.values() if t["status"] != "deleted"], ticket_fields,
                       lambda t: " ".join([t["subject"], t["description"], *t["tags"]])),
            "user": ([u for u in users.values() if u["active"]], user_fields, lambda u: f"{u['name']} {u['email']}"),
            "organization": ([o for o in orgs.values() if o["deleted_at"] is None], org_fields,
                             lambda o: " ".join([o["name"], *o["domain_names"]])),
            "group": (res.groups(), group_fields, lambda g: g["name"]),
        }


def _id_and(record_id: int | None, records: dict[int, dict], name: str) -> list:
    """A reference keyword matches the referenced record's id or its name/email (`organization:Acme`)."""
    if record_id is None:
        return [None]
    other = records.get(record_id) or {}
    return [record_id, other.get(name)]


def _sorted_hits(found: list[tuple[str, dict]], sort_by: str | None, order: str) -> list[tuple[str, dict]]:
    """`sort_by` one of updated_at, created_at, priority, status, ticket_type; without it "relevance",
    which the sandbox takes as kind then id."""
    if order not in ("asc", "desc"):
        raise ZendeskApiError(f"sort_order must be asc or desc, got {order!r}")
    if sort_by is None:
        return sorted(found, key=lambda hit: (zsearch.KINDS.index(hit[0]), hit[1]["id"]))
    if sort_by not in SEARCH_SORTS:
        raise ZendeskApiError(f"sort_by must be one of {', '.join(SEARCH_SORTS)}, got {sort_by!r}")
    field = {"ticket_type": "type"}.get(sort_by, sort_by)
    ranked = sorted(found, key=lambda hit: (_sort_value(hit[1].get(field)), hit[1]["id"]))
    return ranked if order == "asc" else ranked[::-1]


def _sort_value(value: Any) -> Any:
    for order in (zsearch.STATUS_ORDER, zsearch.PRIORITY_ORDER):
        if value in order:
            return (0, order.index(value), "")
    return (1, 0, "" if value is None else str(value))


def _rating_matches(rating: dict, score: str | None, start: int | None, end: int | None) -> bool:
    """Zendesk's score filters; start_time/end_time bound the rating's creation time."""
    created = ts(rating["created_at"])
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
