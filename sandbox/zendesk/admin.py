"""What an agent or admin does in Zendesk, for tests and the demo: edit, add and delete tickets, ratings,
organizations and users, each stamped with the sandbox clock so the exports see the change."""

from __future__ import annotations

import bisect
import copy
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from healthsync.sandbox.zendesk import resources as res
from healthsync.sandbox.zendesk.params import ts, utc

RATING_SCORES = ("good", "bad")
USER_ROLES = ("end-user", "agent", "admin")
TICKET_FIELDS = frozenset({
    "subject", "raw_subject", "description", "priority", "status", "type", "tags", "requester_id",
    "submitter_id", "assignee_id", "organization_id", "group_id", "external_id", "updated_at",
})
ORGANIZATION_FIELDS = frozenset({
    "name", "external_id", "domain_names", "details", "notes", "tags", "group_id", "updated_at",
})
USER_FIELDS = frozenset({"name", "email", "role", "organization_id", "time_zone", "updated_at"})
METRIC_FIELDS = frozenset({
    "reopens", "replies", "solved_at", "first_resolution_time_in_minutes", "full_resolution_time_in_minutes",
})


class AdminMixin:
    """Test helpers of ZendeskEmulator (state lives on the emulator)."""

    # ------------------------------------------------------------------------------------------ tickets
    def tickets(self) -> list[dict]:
        """Every ticket (deleted included) as the API renders it, ordered by id."""
        base = self.base_urls.get("https", "")
        with self.lock:
            return [res.render_ticket(t, base) for _, t in sorted(self._tickets.items())]

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
            updated_at = utc(fields.pop("updated_at", None) or self.clock.now())
            rating = fields.pop("satisfaction_rating", None)
            if rating is not None:
                ticket["satisfaction_rating"] = {"score": rating} if isinstance(rating, str) else dict(rating)
            metrics = self._metrics.setdefault(ticket_id, res.new_metric(ticket))
            for name, value in fields.items():
                value = utc(value) if isinstance(value, datetime) else value
                (metrics if name in METRIC_FIELDS else ticket)[name] = value
            self._touch("tickets", ticket, updated_at)
            metrics["updated_at"] = updated_at
            return copy.deepcopy(ticket)

    def add_ticket(self, subject: str, *, organization_id: int | None = None, requester_id: int | None = None,  # noqa: PLR0913 (a ticket's fields, all but the subject keyword-only)
                   priority: str = "normal", status: str = "new", tags: Iterable[str] = (),
                   description: str = "", satisfaction: str = "unoffered",
                   created_at: datetime | None = None) -> int:
        """Create a ticket stamped with the sandbox clock (or `created_at`); returns its id."""
        with self.lock:
            ticket_id = self._take_id("ticket")
            stamp = utc(created_at or self.clock.now())
            requester = self._users.get(requester_id) if requester_id else None
            ticket = res.new_ticket(
                ticket_id, subject=subject, description=description, priority=priority, status=status,
                tags=list(tags), requester_id=requester_id, organization_id=organization_id, assignee_id=None,
                satisfaction={"score": satisfaction}, created_at=stamp, updated_at=stamp,
                requester_email=requester["email"] if requester else None)
            self._tickets[ticket_id] = ticket
            self._metrics[ticket_id] = res.new_metric(ticket)
            bisect.insort(self._timelines["tickets"], (ts(stamp), ticket_id))
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
            rating_id = self._take_id("rating")
            stamp = utc(created_at or self.clock.now())
            self._ratings[rating_id] = res.new_rating(rating_id, ticket, score, comment, stamp, stamp)
            ticket["satisfaction_rating"] = {"score": score, "id": rating_id, "comment": comment}
            self._touch("tickets", ticket, stamp)
            return rating_id

    def _touch(self, kind: str, record: dict, updated_at: datetime) -> None:
        """Move `record` to its new place in the export order of `kind` and stamp it."""
        timeline = self._timelines[kind]
        old_key = (ts(record["updated_at"]), record["id"])
        index = bisect.bisect_left(timeline, old_key)
        if index < len(timeline) and timeline[index] == old_key:
            del timeline[index]
        record["updated_at"] = updated_at
        bisect.insort(timeline, (ts(updated_at), record["id"]))

    # ------------------------------------------------------------------------------------------ organizations, users
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
            stamp = utc(created_at or self.clock.now())
            self._orgs[org_id] = res.new_organization(org_id, name, external_id, list(domain_names), stamp, stamp)
            bisect.insort(self._timelines["organizations"], (ts(stamp), org_id))
            return org_id

    def update_organization(self, org_id: int, **fields: Any) -> dict:
        """Edit an organization (API field names) and bump `updated_at` to the sandbox clock (or the given one)."""
        return self._edit("organizations", org_id, ORGANIZATION_FIELDS, fields)

    def delete_organization(self, org_id: int) -> None:
        """Delete: gone from lists and single reads; the export carries it with `deleted_at` set."""
        with self.lock:
            org = self._live(self._orgs, org_id, "organization")
            stamp = utc(self.clock.now())
            org["deleted_at"] = stamp
            self._touch("organizations", org, stamp)

    def add_user(self, name: str, email: str, *, organization_id: int | None = None, role: str = "end-user",
                 created_at: datetime | None = None) -> int:
        """Create a user stamped with the sandbox clock (or `created_at`); returns its id."""
        if role not in USER_ROLES:
            raise ValueError(f"role must be one of {USER_ROLES}, got {role!r}")
        with self.lock:
            user_id = self._take_id("user")
            stamp = utc(created_at or self.clock.now())
            self._users[user_id] = res.new_user(user_id, name, email, role, organization_id, stamp, stamp)
            bisect.insort(self._timelines["users"], (ts(stamp), user_id))
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
            self._touch("users", user, utc(self.clock.now()))

    def _edit(self, kind: str, record_id: int, allowed: frozenset[str], fields: dict[str, Any]) -> dict:
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown {kind} fields {sorted(unknown)}; known: {sorted(allowed)}")
        with self.lock:
            record = self._live(self._stores()[kind], record_id, kind.rstrip("s"))
            updated_at = utc(fields.pop("updated_at", None) or self.clock.now())
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
