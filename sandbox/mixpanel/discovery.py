"""The endpoints extractors call first to learn a project's shape: top event properties, event names and the
people-profile properties (what tap-mixpanel and Airbyte's source build their schemas from)."""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, timedelta
from typing import Any

from werkzeug.wrappers import Request, Response

from healthsync.sandbox.core import json_response
from healthsync.sandbox.mixpanel import params as p

RECENT_DAYS = 31  # "Top Events"/"Event Names": the most common events over the last 31 days
SAMPLE_EVENTS = 50_000  # counts come from the newest events up to this many, as a sampled estimate
EVENT_TYPES = ("general", "unique", "average")
_ISO_DATETIME = re.compile(r"\d{4}-\d\d-\d\d(T\d\d:\d\d:\d\d)?$")


class DiscoveryMixin:
    """Schema-discovery endpoints of MixpanelEmulator (events come from its `rendered_events`)."""

    def on_event_properties_top(self, request: Request) -> Response:
        """Top Event Properties (https://developer.mixpanel.com/reference/list-top-event-properties):
        `{"<property>": {"count": n}}` for `event`, most common first, `limit` default 10.

        The reference marks `event` required, yet widely used extractors call it without one to learn every
        event property; the sandbox then counts over all events rather than refuse them."""
        values = request.values
        limit = p.int_value(values, "limit", 10, 1, 10_000)
        event = values.get("event")
        counts: Counter[str] = Counter()
        for rendered in self._recent_events({event} if event else None):
            counts.update(rendered["properties"].keys())
        return json_response({name: {"count": n} for name, n in _most_common(counts, limit)})

    def on_event_names(self, request: Request) -> Response:
        """Top Event Names (https://developer.mixpanel.com/reference/list-event-names): a JSON list of the
        most common event names of the last 31 days; `type` is one of general, unique, average."""
        values = request.values
        kind = values.get("type") or "general"
        if kind not in EVENT_TYPES:
            raise p.MixpanelApiError(f"'type' must be one of {', '.join(EVENT_TYPES)}, got {kind!r}")
        limit = p.int_value(values, "limit", 255, 1, 10_000)
        counts = Counter(rendered["event"] for rendered in self._recent_events(None))
        return json_response([name for name, _ in _most_common(counts, limit)])

    def on_engage_properties(self, request: Request) -> Response:
        """People (or, with `data_group_id`, group) profile properties with their counts and data types, as
        `{"status": "ok", "results": {"<property>": {"count": n, "type": t}}}`.

        Not in the current reference, but still served and read by tap-mixpanel's discovery; the types are the
        ones of "Supported Properties Data Type" (string, number, boolean, datetime, list, object)."""
        values = request.values
        limit = p.int_value(values, "limit", 2000, 1, 10_000)
        counts: Counter[str] = Counter()
        types: dict[str, str] = {}
        for row in self.profile_rows(values.get("data_group_id")):
            for name, value in row["$properties"].items():
                if value is None:
                    continue
                counts[name] += 1
                types.setdefault(name, _data_type(value))
        results = {name: {"count": n, "type": types[name]} for name, n in _most_common(counts, limit)}
        return json_response({"status": "ok", "results": results})

    def _recent_events(self, names: set[str] | None) -> Iterator[dict]:
        today = self.clock.now().astimezone(UTC).date()
        days: list[date] = [today - timedelta(days=n) for n in range(RECENT_DAYS)]
        return itertools.islice(self.rendered_events(days, names), SAMPLE_EVENTS)


def _most_common(counts: Counter[str], limit: int) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]


def _data_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, str) and _ISO_DATETIME.match(value):
        return "datetime"
    return "string"
