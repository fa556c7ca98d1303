"""Zendesk's incremental exports: cursor-based (tickets, users), time-based (tickets, users, organizations,
ticket events), the 50-item samples, ticket sideloads and `exclude_deleted`.

Reference: Incremental Exports (https://developer.zendesk.com/api-reference/ticketing/ticket-management/incremental_exports/)
and "Using the Incremental Export API" (https://developer.zendesk.com/documentation/ticketing/managing-tickets/using-the-incremental-export-api).
Cursor pages carry `after_url`, `after_cursor`, `before_url`, `before_cursor`, `end_of_stream` (and no
`end_time`); time-based pages carry `next_page`, `count`, `end_of_stream`, `end_time`, and the next page starts
at `end_time`, so the items of that second come again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from werkzeug.wrappers import Request, Response

from healthsync.sandbox.core import json_response
from healthsync.sandbox.zendesk import resources as res
from healthsync.sandbox.zendesk.params import (
    EXPORT_DELAY_SECONDS,
    decode_cursor,
    encode_cursor,
    export_start_time,
    flag_arg,
    include_set,
    int_arg,
    time_window,
    ts,
    window,
)

EXPORT_MAX_PAGE = 1000
SAMPLE_MAX = 50  # Incremental Sample Export: "returns only up to 50 results per request"
DELETED = "deleted"


class ExportsMixin:
    """The export endpoints of ZendeskEmulator (state and renderers live on the emulator)."""

    # ------------------------------------------------------------------------------------------ cursor-based
    def on_ticket_export(self, request: Request) -> Response:
        return self._cursor_export(request, "tickets", self._ticket_page_renderer(request))

    def on_user_export(self, request: Request) -> Response:
        return self._cursor_export(request, "users", self._plain_page_renderer(request, "users"))

    def _cursor_export(self, request: Request, kind: str, render_page: Callable[[list[dict]], dict]) -> Response:
        """Zendesk's cursor-based export: ordered by (updated_at, id), no duplicates, no `end_time`."""
        args = request.args
        per_page = int_arg(args, "per_page", EXPORT_MAX_PAGE, 1, EXPORT_MAX_PAGE)
        cutoff = self._export_cutoff()
        direction, position = self._export_position(args, cutoff)
        with self.lock:
            timeline, records = self._timelines[kind], self._stores()[kind]
            lo, hi = window(timeline, direction, position, per_page, (cutoff, 2**62))
            keys = timeline[lo:hi]
            body = render_page([records[record_id] for _, record_id in keys])
            more = lo > 0 if direction == "b" else hi < len(timeline) and timeline[hi][0] <= cutoff
        self._corrupt_if_asked(request, body[kind], "updated_at")
        after_key = keys[-1] if keys else position
        before_key = keys[0] if keys else position
        body.update({"after_cursor": encode_cursor("a", after_key), "before_cursor": encode_cursor("b", before_key),
                     "end_of_stream": not more})
        body["after_url"] = self._export_url(request, body["after_cursor"])
        body["before_url"] = self._export_url(request, body["before_cursor"]) if keys else None
        return json_response(body)

    @staticmethod
    def _export_position(args: Any, cutoff: int) -> tuple[str, tuple[int, int]]:
        if args.get("cursor"):
            return decode_cursor(args["cursor"])
        return "a", (export_start_time(args, cutoff), -1)

    def _export_url(self, request: Request, cursor: str) -> str:
        params = [("cursor", cursor)]
        params += [(k, v) for k, v in request.args.items(multi=True) if k in ("per_page", "include", "exclude_deleted")]
        return f"{self.base_url(request)}{request.path}?{urlencode(params)}"

    def _export_cutoff(self) -> int:
        return ts(self.clock.now()) - EXPORT_DELAY_SECONDS

    # ------------------------------------------------------------------------------------------ time-based
    def on_ticket_export_time(self, request: Request) -> Response:
        return self._time_export(request, "tickets", self._ticket_page_renderer(request), EXPORT_MAX_PAGE)

    def on_user_export_time(self, request: Request) -> Response:
        return self._time_export(request, "users", self._plain_page_renderer(request, "users"), EXPORT_MAX_PAGE)

    def on_organization_export(self, request: Request) -> Response:
        return self._time_export(request, "organizations", self._plain_page_renderer(request, "organizations"),
                                 EXPORT_MAX_PAGE)

    def on_ticket_event_export(self, request: Request) -> Response:
        return self._event_export(request, EXPORT_MAX_PAGE)

    def on_sample(self, request: Request, resource: str) -> Response:
        """Incremental Sample Export: the time-based export of `resource`, at most 50 items."""
        if resource == "ticket_events":
            return self._event_export(request, SAMPLE_MAX)
        render = (self._ticket_page_renderer(request) if resource == "tickets"
                  else self._plain_page_renderer(request, resource))
        return self._time_export(request, resource, render, SAMPLE_MAX)

    def _time_export(self, request: Request, kind: str, render_page: Callable[[list[dict]], dict],
                     max_page: int) -> Response:
        """From `start_time` inclusive, up to `per_page` items, then the rest of the last item's second;
        `end_time` is that second and `next_page` starts there, so its items come again."""
        args = request.args
        per_page = int_arg(args, "per_page", max_page, 1, EXPORT_MAX_PAGE)
        per_page = min(per_page, max_page)
        cutoff = self._export_cutoff()
        start_time = export_start_time(args, cutoff)
        with self.lock:
            timeline, records = self._timelines[kind], self._stores()[kind]
            lo, hi, end = time_window(timeline, start_time, cutoff, per_page)
            body = render_page([records[record_id] for _, record_id in timeline[lo:hi]])
            end_time = timeline[hi - 1][0] if hi > lo else start_time
        self._corrupt_if_asked(request, body[kind], "updated_at")
        body.update(self._time_paging(request, end_time, len(body[kind]), hi >= end))
        return json_response(body)

    def _time_paging(self, request: Request, end_time: int, count: int, done: bool) -> dict:
        keep = ("per_page", "include", "exclude_deleted")
        params = [("start_time", str(end_time))] + [(k, v) for k, v in request.args.items(multi=True) if k in keep]
        return {"next_page": f"{self.base_url(request)}{request.path}?{urlencode(params)}", "count": count,
                "end_of_stream": done, "end_time": end_time}

    def _event_export(self, request: Request, max_page: int) -> Response:
        """Incremental Ticket Event Export: each ticket's audits, ordered by time; `comment_events` adds the
        comment as a child event (otherwise only `comment_present`/`comment_public` flags)."""
        args = request.args
        per_page = min(int_arg(args, "per_page", max_page, 1, EXPORT_MAX_PAGE), max_page)
        cutoff = self._export_cutoff()
        start_time = export_start_time(args, cutoff)
        with_comments = "comment_events" in include_set(args)
        with self.lock:
            events = sorted(((e["timestamp"], e["id"]), e, t) for t in self._tickets.values()
                            for e in res.ticket_events(t, self._metrics.get(t["id"])))
            keys = [key for key, _, _ in events]
            lo, hi, end = time_window(keys, start_time, cutoff, per_page)
            rendered = [res.render_event(e, t, with_comments) for _, e, t in events[lo:hi]]
        end_time = keys[hi - 1][0] if hi > lo else start_time
        return json_response({"ticket_events": rendered, **self._time_paging(request, end_time, len(rendered), hi >= end)})

    # ------------------------------------------------------------------------------------------ page bodies
    def _plain_page_renderer(self, request: Request, kind: str) -> Callable[[list[dict]], dict]:
        render = self._renderers(self.base_url(request))[kind]
        return lambda chosen: {kind: [render(record) for record in chosen]}

    def _ticket_page_renderer(self, request: Request) -> Callable[[list[dict]], dict]:
        """Tickets with their sideloads; `exclude_deleted=true` drops deleted tickets ("Excluding deleted
        tickets" in Using the Incremental Export API) while the position still moves past them."""
        includes = include_set(request.args)
        exclude_deleted = flag_arg(request.args, "exclude_deleted")
        base = self.base_url(request)

        def render_page(chosen: list[dict]) -> dict:
            kept = [t for t in chosen if not (exclude_deleted and t["status"] == DELETED)]
            return self._render_tickets(kept, includes, base, incremental=True)

        return render_page

    def _render_tickets(self, tickets: list[dict], includes: set[str], base: str, *, incremental: bool) -> dict:
        """`{"tickets": [...], <sideloads>}` per "Side-loading related records"
        (https://developer.zendesk.com/documentation/ticketing/using-the-zendesk-api/side_loading/).

        `dates` and `comment_count` are embedded in each ticket (its "Special sideloads"). `metric_sets` is
        documented two ways: that page puts sideloads in a top-level array, while for the incremental ticket
        export Zendesk describes the metrics as "returned in its own object connected to the ticket" (Zendesk
        staff answer, "Ticket metrics incremental", https://support.zendesk.com/hc/en-us/community/posts/4984355661466)
        and production clients read `ticket["metric_set"]`. Incremental exports therefore carry both unless
        `metric_set_shape` asks for one; the other endpoints carry the top-level array.
        """
        rendered = []
        for ticket in tickets:
            metric = self._metrics.get(ticket["id"])
            out = res.render_ticket(ticket, base)
            if "dates" in includes:
                out["dates"] = res.ticket_dates(ticket, metric)
            if "comment_count" in includes:
                out["comment_count"] = res.comment_count(metric)
            if "metric_sets" in includes and incremental and self.metric_set_shape in ("both", "nested"):
                out["metric_set"] = self._render_metric_of(ticket, base) if metric else None
            rendered.append(out)
        body: dict[str, Any] = {"tickets": rendered}
        body.update(self._sideloads(includes, tickets, base, incremental))
        return body

    def _sideloads(self, includes: set[str], tickets: list[dict], base: str, incremental: bool) -> dict:
        render = self._renderers(base)
        out: dict[str, list[dict]] = {}
        if "users" in includes:
            ids = sorted({t[k] for t in tickets for k in ("requester_id", "submitter_id", "assignee_id") if t[k]})
            out["users"] = [render["users"](self._users[i]) for i in ids if i in self._users]
        if "organizations" in includes:
            ids = sorted({t["organization_id"] for t in tickets if t["organization_id"]})
            out["organizations"] = [render["organizations"](self._orgs[i]) for i in ids if i in self._orgs]
        if "groups" in includes:
            ids = {t["group_id"] for t in tickets}
            out["groups"] = [render["groups"](g) for g in res.groups() if g["id"] in ids]
        if "metric_sets" in includes and (not incremental or self.metric_set_shape in ("both", "sideload")):
            out["metric_sets"] = [self._render_metric_of(t, base) for t in tickets if t["id"] in self._metrics]
        return out

    def _render_metric_of(self, ticket: dict, base: str) -> dict:
        return res.render_metric(self._metrics[ticket["id"]], ticket, base)

    @staticmethod
    def _corrupt_if_asked(request: Request, records: list[dict], field: str) -> None:
        """The `odd_record` fault: one record of the page loses a required field."""
        if request.environ.get("sandbox.odd_record") and records:
            records[0].pop(field, None)
