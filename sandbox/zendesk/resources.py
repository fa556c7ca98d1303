"""Zendesk resources with every documented key: tickets, users, organizations, groups, ticket metrics, ratings,
custom field definitions and ticket events, built from the neutral model and rendered as the API does."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from healthsync.sandbox.portfolio_support import TOPICS
from healthsync.sandbox.zendesk.params import iso, ts, utc

SUPPORT_GROUP_ID = 360000000001
ESCALATIONS_GROUP_ID = 360000000002
BRAND_ID = 360000000101
TICKET_FORM_ID = 360000000201
TOPIC_FIELD_ID = 360000000301
PLAN_FIELD_ID = 360000000401
CUSTOMER_SINCE_FIELD_ID = 360000000501
SUPPORT_ADDRESS = "support@healthsync-demo.zendesk.com"
ACCOUNT_CREATED = datetime(2019, 1, 1)  # when the sandbox's Zendesk account, its groups and fields were set up
PLAN_TIERS = ("starter", "growth", "business", "enterprise")
# Standard statuses map onto the account's default custom statuses (Custom Ticket Statuses,
# https://developer.zendesk.com/api-reference/ticketing/tickets/custom_ticket_statuses/).
CUSTOM_STATUS_IDS = {"new": 360000001001, "open": 360000001002, "pending": 360000001003, "hold": 360000001004,
                     "solved": 360000001005, "closed": 360000001006, "deleted": None}


# ----------------------------------------------------------------------------------------------- tickets


def new_ticket(ticket_id: int, *, subject: str, description: str, priority: str, status: str, tags: list[str],
               requester_id: int | None, organization_id: int | None, assignee_id: int | None,
               satisfaction: dict, created_at: datetime, updated_at: datetime,
               requester_email: str | None = None) -> dict:
    """A stored ticket holding every key of Tickets → JSON format
    (https://developer.zendesk.com/api-reference/ticketing/tickets/tickets/#json-format); values follow the
    Show Ticket sample, with nulls and empty lists where that sample has them."""
    urgent = priority in ("high", "urgent")
    topic = next((tag for tag in tags if tag in TOPICS), None)
    custom_fields = [{"id": TOPIC_FIELD_ID, "value": topic}]
    return {
        "id": ticket_id, "external_id": None, "type": "incident" if urgent else "question",
        "subject": subject, "raw_subject": subject, "description": description, "priority": priority,
        "status": status, "recipient": SUPPORT_ADDRESS, "requester_id": requester_id,
        "submitter_id": requester_id, "assignee_id": assignee_id, "organization_id": organization_id,
        "group_id": ESCALATIONS_GROUP_ID if priority == "urgent" else SUPPORT_GROUP_ID,
        "collaborator_ids": [], "follower_ids": [], "email_cc_ids": [], "forum_topic_id": None,
        "problem_id": None, "has_incidents": False, "is_public": True, "due_at": None, "tags": list(tags),
        "custom_fields": custom_fields, "fields": [dict(f) for f in custom_fields],
        "satisfaction_rating": satisfaction, "sharing_agreement_ids": [], "followup_ids": [],
        "ticket_form_id": TICKET_FORM_ID, "brand_id": BRAND_ID, "allow_channelback": False,
        "allow_attachments": True, "from_messaging_channel": False,
        "via": _via(ticket_id, requester_email),
        "created_at": utc(created_at), "updated_at": utc(updated_at),
    }


def _via(ticket_id: int, requester_email: str | None) -> dict:
    """The Via object (https://developer.zendesk.com/documentation/ticketing/reference-guides/via-object-reference/):
    most tickets arrive by email (from the requester to the support address), a third through the web form."""
    if ticket_id % 3 == 0 or not requester_email:
        return {"channel": "web", "source": {"from": {}, "to": {}, "rel": None}}
    return {"channel": "email", "source": {
        "from": {"address": requester_email, "name": requester_email.split("@", 1)[0]},
        "to": {"address": SUPPORT_ADDRESS, "name": "Support"}, "rel": None}}


def render_ticket(ticket: dict, base: str) -> dict:
    out = render(ticket, f"{base}/api/v2/tickets/{ticket['id']}.json")
    out["custom_status_id"] = CUSTOM_STATUS_IDS.get(ticket["status"])
    out["generated_timestamp"] = ts(ticket["updated_at"])
    return out


def ticket_dates(ticket: dict, metric: dict | None) -> dict:
    """The `dates` sideload, embedded in each ticket (Side-loading → Special sideloads: Dates)."""
    assigned = ticket["created_at"] if ticket["assignee_id"] else None
    return {
        "assignee_updated_at": iso(assigned), "requester_updated_at": iso(ticket["updated_at"]),
        "status_updated_at": iso(ticket["updated_at"]), "initially_assigned_at": iso(assigned),
        "assigned_at": iso(assigned), "solved_at": iso(metric["solved_at"]) if metric else None,
        "latest_comment_added_at": iso(ticket["updated_at"]),
    }


def comment_count(metric: dict | None) -> int:
    """The first comment is the description; every reply adds one (Side-loading → Special sideloads)."""
    return 1 + (metric["replies"] if metric else 0)


# ----------------------------------------------------------------------------------------------- metrics


def new_metric(ticket: dict, *, reopens: int = 0, replies: int = 0, solved_at: datetime | None = None,
               first_resolution: int | None = None, full_resolution: int | None = None) -> dict:
    return {
        "id": 10_000_000 + ticket["id"], "ticket_id": ticket["id"], "reopens": reopens, "replies": replies,
        "first_resolution_time_in_minutes": first_resolution, "full_resolution_time_in_minutes": full_resolution,
        "solved_at": utc(solved_at) if solved_at else None,
        "created_at": ticket["created_at"], "updated_at": ticket["updated_at"],
    }


def render_metric(metric: dict, ticket: dict | None, base: str) -> dict:
    """Ticket Metrics → JSON format (https://developer.zendesk.com/api-reference/ticketing/tickets/ticket_metrics/):
    durations are `{"calendar", "business"}` minutes, null while the ticket has not reached that point."""
    out = render(metric, f"{base}/api/v2/ticket_metrics/{metric['id']}.json")
    for name in ("first_resolution_time_in_minutes", "full_resolution_time_in_minutes"):
        out[name] = _duration(metric[name])
    first_reply = None if not metric["replies"] else max(1, (metric["first_resolution_time_in_minutes"] or 90) // 3)
    dates = ticket_dates(ticket, metric) if ticket else {}
    out.update({
        "group_stations": 1, "assignee_stations": 1 if ticket and ticket["assignee_id"] else 0,
        "reply_time_in_minutes": _duration(first_reply),
        "reply_time_in_seconds": {"calendar": None if first_reply is None else first_reply * 60},
        "agent_wait_time_in_minutes": _duration(metric["full_resolution_time_in_minutes"] and
                                                metric["full_resolution_time_in_minutes"] // 2),
        "requester_wait_time_in_minutes": _duration(first_reply),
        "on_hold_time_in_minutes": _duration(0 if metric["solved_at"] else None),
        "custom_status_updated_at": dates.get("status_updated_at"),
        **{k: dates.get(k) for k in ("assignee_updated_at", "requester_updated_at", "status_updated_at",
                                     "initially_assigned_at", "assigned_at", "latest_comment_added_at")},
    })
    return out


def _duration(minutes: int | None) -> dict:
    # business hours are roughly a third of calendar time (8 h of 24)
    return {"calendar": minutes, "business": None if minutes is None else round(minutes / 3)}


# ----------------------------------------------------------------------------------------------- ratings


def new_rating(rating_id: int, ticket: dict, score: str, comment: str, created_at: datetime, updated_at: datetime,
               *, requester_id: int | None = None, organization_id: int | None = None) -> dict:
    """Satisfaction Ratings → JSON format
    (https://developer.zendesk.com/api-reference/ticketing/ticket-management/satisfaction_ratings/): the rated
    ticket's assignee and group; no reason, as the sandbox's surveys ask for none."""
    return {
        "id": rating_id, "ticket_id": ticket.get("id"), "score": score, "comment": comment,
        "requester_id": requester_id if requester_id is not None else ticket.get("requester_id"),
        "organization_id": organization_id if organization_id is not None else ticket.get("organization_id"),
        "assignee_id": ticket.get("assignee_id"), "group_id": ticket.get("group_id", SUPPORT_GROUP_ID),
        "reason_id": None, "created_at": utc(created_at), "updated_at": utc(updated_at),
    }


# ----------------------------------------------------------------------------------------------- people


def new_organization(org_id: int, name: str, external_id: str | None, domain_names: list[str],
                     created_at: datetime, updated_at: datetime, plan_tier: str | None = None) -> dict:
    """Organizations → JSON format (https://developer.zendesk.com/api-reference/ticketing/organizations/organizations/)."""
    return {
        "id": org_id, "name": name, "external_id": external_id, "domain_names": list(domain_names),
        "details": "", "notes": "", "group_id": None, "shared_tickets": False, "shared_comments": False,
        "tags": [], "organization_fields": {"plan_tier": plan_tier}, "created_at": utc(created_at),
        "updated_at": utc(updated_at), "deleted_at": None,
    }


def new_user(user_id: int, name: str, email: str, role: str, organization_id: int | None,
             created_at: datetime, updated_at: datetime) -> dict:
    return {
        "id": user_id, "name": name, "email": email, "role": role, "organization_id": organization_id,
        "active": True, "verified": True, "time_zone": "UTC", "created_at": utc(created_at),
        "updated_at": utc(updated_at),
    }


def render_user(user: dict, base: str) -> dict:
    """Users → JSON format (https://developer.zendesk.com/api-reference/ticketing/users/users/#json-format), with
    the sample's values for what the sandbox does not model (no photo, no phone, never suspended)."""
    out = render(user, f"{base}/api/v2/users/{user['id']}.json")
    staff = user["role"] != "end-user"
    out.update({
        "alias": None, "chat_only": False, "custom_role_id": None,
        "default_group_id": SUPPORT_GROUP_ID if staff else None, "details": "", "external_id": None,
        "iana_time_zone": "Etc/UTC", "last_login_at": iso(user["updated_at"]) if staff else None,
        "locale": "en-US", "locale_id": 1, "moderator": staff, "notes": "", "only_private_comments": False,
        "phone": None, "photo": None, "remote_photo_url": None, "report_csv": staff, "restricted_agent": False,
        "role_type": None, "shared": False, "shared_agent": False, "shared_phone_number": None, "signature": None,
        "suspended": False, "tags": [], "ticket_restriction": None if staff else "requested",
        "two_factor_auth_enabled": None, "user_fields": {"customer_since": iso(_day(user["created_at"]))},
    })
    return out


def _day(value: datetime) -> datetime:
    return utc(value).replace(hour=0, minute=0, second=0)


# ----------------------------------------------------------------------------------------------- account setup


def groups() -> list[dict]:
    """Groups → JSON format (https://developer.zendesk.com/api-reference/ticketing/groups/groups/)."""
    made = utc(ACCOUNT_CREATED)
    return [
        {"id": SUPPORT_GROUP_ID, "name": "Support", "description": "First-line support", "default": True,
         "deleted": False, "is_public": True, "created_at": made, "updated_at": made},
        {"id": ESCALATIONS_GROUP_ID, "name": "Escalations", "description": "Urgent tickets", "default": False,
         "deleted": False, "is_public": True, "created_at": made, "updated_at": made},
    ]


def organization_fields() -> list[dict]:
    """Organization Fields → JSON format (https://developer.zendesk.com/api-reference/ticketing/organizations/organization_fields/)."""
    options = [{"id": PLAN_FIELD_ID + n, "name": tier.title(), "raw_name": tier.title(), "value": tier,
                "position": n, "default": False} for n, tier in enumerate(PLAN_TIERS, start=1)]
    return [_field(PLAN_FIELD_ID, "plan_tier", "dropdown", "Plan tier", "The account's plan", options)]


def user_fields() -> list[dict]:
    """User Fields → JSON format (https://developer.zendesk.com/api-reference/ticketing/users/user_fields/)."""
    return [_field(CUSTOMER_SINCE_FIELD_ID, "customer_since", "date", "Customer since",
                   "First contact with support", None)]


def _field(field_id: int, key: str, kind: str, title: str, description: str, options: list | None) -> dict:
    made = utc(ACCOUNT_CREATED)
    field = {
        "id": field_id, "key": key, "type": kind, "title": title, "raw_title": title,
        "description": description, "raw_description": description, "position": 0, "active": True,
        "system": False, "regexp_for_validation": None, "created_at": made, "updated_at": made,
    }
    if options is not None:
        field["custom_field_options"] = options
    return field


# ----------------------------------------------------------------------------------------------- events


def ticket_events(ticket: dict, metric: dict | None) -> list[dict]:
    """The audit events a ticket's history implies: its creation and, if it changed since, its latest update.

    Incremental Ticket Event Export ("Exporting ticket events",
    https://developer.zendesk.com/documentation/ticketing/managing-tickets/using-the-incremental-export-api#exporting-ticket-events):
    each event is an update with `child_events` listing the changed fields; with the `comment_events`
    sideload the comment is a child event of type Comment.
    """
    created, updated = ticket["created_at"], ticket["updated_at"]
    first = _event(ticket, 1, created, "Create", [
        {"event_type": "Create", "field_name": name, "value": _value(ticket, name)}
        for name in ("subject", "status", "priority", "requester_id", "organization_id")])
    events = [first]
    if updated > created:
        events.append(_event(ticket, 2, updated, "Change", [
            {"event_type": "Change", "field_name": "status", "value": ticket["status"], "previous_value": "new"}]))
    return events


def _event(ticket: dict, seq: int, when: datetime, kind: str, children: list[dict]) -> dict:
    event_id = ticket["id"] * 10 + seq
    for n, child in enumerate(children, start=1):
        child["id"] = event_id * 100 + n
        child["via"] = ticket["via"]
    return {
        "id": event_id, "ticket_id": ticket["id"], "timestamp": ts(when), "created_at": when,
        "updater_id": ticket["requester_id"] if kind == "Create" else (ticket["assignee_id"] or -1),
        "via": ticket["via"]["channel"], "system": {"client": "healthsync-sandbox", "location": None},
        "event_type": "Audit", "merged_ticket_ids": [], "child_events": children, "_kind": kind,
    }


def _value(ticket: dict, name: str) -> Any:
    value = ticket.get(name)
    return None if value is None else str(value)


def comment_event(ticket: dict, event: dict) -> dict:
    """A Comment child event, as the `comment_events` sideload adds (sample in the Incremental Ticket Event Export)."""
    creating = event["_kind"] == "Create"
    body = ticket["description"] if creating else f"Update on: {ticket['subject']}"
    return {
        "id": event["id"] * 100 + 99, "via": {"channel": ticket["via"]["channel"],
                                              "source": {"from": {}, "to": {}, "rel": None}},
        "via_reference_id": None, "type": "Comment", "author_id": event["updater_id"], "body": body,
        "html_body": f'<div class="zd-comment"><p dir="auto">{body}</p></div>', "public": True,
        "attachments": [], "audit_id": event["id"], "created_at": event["created_at"], "event_type": "Comment",
    }


def render_event(event: dict, ticket: dict, with_comments: bool) -> dict:
    children = [dict(c) for c in event["child_events"]]
    if with_comments:
        children.append(comment_event(ticket, event))
    else:
        # without the sideload a comment is described only by these two flags (Incremental Ticket Event Export)
        children.append({"id": event["id"] * 100 + 99, "event_type": "Comment", "comment_present": True,
                         "comment_public": True})
    out = {k: v for k, v in event.items() if k != "_kind"}
    out["child_events"] = [render(c, None) for c in children]
    return render(out, None)


# ----------------------------------------------------------------------------------------------- rendering


def render(record: dict, url: str | None) -> dict:
    """JSON-ready copy: datetimes as ISO strings, nested lists/dicts copied; `url` first when given."""
    out: dict[str, Any] = {} if url is None else {"url": url}
    for name, value in record.items():
        out[name] = _plain(value)
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
