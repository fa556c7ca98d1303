"""Response shapes as the vendors document them (keys and JSON types, taken from the docs, not from the
emulators), and one checker. `N(t)` marks a key whose documented value may be null; a nested dict is a
nested shape; `[shape]` is a list whose items have that shape."""

from __future__ import annotations

from typing import Any

STR, INT, BOOL, NUM = str, int, bool, (int, float)


class N:
    """Nullable: the documented samples show null for this key (or the docs say `nullable`)."""

    def __init__(self, inner: Any):
        self.inner = inner


def check(value: Any, shape: Any, where: str = "$") -> list[str]:
    """Every mismatch between `value` and `shape`, as readable paths; [] when it conforms."""
    if isinstance(shape, N):
        return [] if value is None else check(value, shape.inner, where)
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return [f"{where}: expected an object, got {type(value).__name__}"]
        problems = [f"{where}.{key}: missing" for key in shape if key not in value]
        for key, inner in shape.items():
            if key in value:
                problems += check(value[key], inner, f"{where}.{key}")
        return problems
    if isinstance(shape, list):
        if not isinstance(value, list):
            return [f"{where}: expected a list, got {type(value).__name__}"]
        return [p for n, item in enumerate(value) for p in check(item, shape[0], f"{where}[{n}]")] if shape else []
    expected = shape if isinstance(shape, tuple) else (shape,)
    if isinstance(value, bool) and bool not in expected:
        return [f"{where}: expected {shape}, got bool"]
    if not isinstance(value, expected):
        return [f"{where}: expected {shape}, got {type(value).__name__} {value!r:.40}"]
    return []


def assert_shape(value: Any, shape: Any) -> None:
    problems = check(value, shape)
    assert not problems, "not the documented shape:\n  " + "\n  ".join(problems[:20])


# ----------------------------------------------------------------------------------------------- Zendesk

# Tickets → JSON format, https://developer.zendesk.com/api-reference/ticketing/tickets/tickets/#json-format
# (read-only and read-write properties; nullability from the Show Ticket sample and the table's comments).
ZD_VIA = {"channel": STR, "source": {"from": dict, "to": dict, "rel": N(STR)}}
ZD_TICKET = {
    "allow_attachments": BOOL, "allow_channelback": BOOL, "assignee_id": N(INT), "brand_id": N(INT),
    "collaborator_ids": [INT], "created_at": STR, "custom_fields": [{"id": INT, "value": N((STR, INT, BOOL, list))}],
    "custom_status_id": N(INT), "description": STR, "due_at": N(STR), "email_cc_ids": [INT], "external_id": N(STR),
    "fields": [{"id": INT, "value": N((STR, INT, BOOL, list))}], "follower_ids": [INT], "followup_ids": [INT],
    "forum_topic_id": N(INT), "from_messaging_channel": BOOL, "generated_timestamp": INT, "group_id": N(INT),
    "has_incidents": BOOL, "id": INT, "is_public": BOOL, "organization_id": N(INT), "priority": N(STR),
    "problem_id": N(INT), "raw_subject": STR, "recipient": N(STR), "requester_id": INT,
    "satisfaction_rating": N({"score": STR}), "sharing_agreement_ids": [INT], "status": STR, "subject": STR,
    "submitter_id": INT, "tags": [STR], "ticket_form_id": N(INT), "type": N(STR), "updated_at": STR, "url": STR,
    "via": ZD_VIA,
}
ZD_TICKET_STATUSES = {"new", "open", "pending", "hold", "solved", "closed", "deleted"}
ZD_TICKET_PRIORITIES = {"urgent", "high", "normal", "low", None}
ZD_TICKET_TYPES = {"problem", "incident", "question", "task", None}

# Ticket Metrics → JSON format, https://developer.zendesk.com/api-reference/ticketing/tickets/ticket_metrics/
ZD_MINUTES = {"calendar": N(INT), "business": N(INT)}
ZD_METRIC = {
    "agent_wait_time_in_minutes": ZD_MINUTES, "assigned_at": N(STR), "assignee_stations": INT,
    "assignee_updated_at": N(STR), "created_at": STR, "custom_status_updated_at": N(STR),
    "first_resolution_time_in_minutes": ZD_MINUTES, "full_resolution_time_in_minutes": ZD_MINUTES,
    "group_stations": INT, "id": INT, "initially_assigned_at": N(STR), "latest_comment_added_at": N(STR),
    "on_hold_time_in_minutes": ZD_MINUTES, "reopens": INT, "replies": INT, "reply_time_in_minutes": ZD_MINUTES,
    "reply_time_in_seconds": {"calendar": N(INT)}, "requester_updated_at": N(STR),
    "requester_wait_time_in_minutes": ZD_MINUTES, "solved_at": N(STR), "status_updated_at": N(STR),
    "ticket_id": INT, "updated_at": STR, "url": STR,
}

# Side-loading → Special sideloads (Dates), https://developer.zendesk.com/documentation/ticketing/using-the-zendesk-api/side_loading/
ZD_DATES = {key: N(STR) for key in ("assignee_updated_at", "requester_updated_at", "status_updated_at",
                                    "initially_assigned_at", "assigned_at", "solved_at", "latest_comment_added_at")}

# Users → JSON format, https://developer.zendesk.com/api-reference/ticketing/users/users/#json-format
ZD_USER = {
    "active": BOOL, "alias": N(STR), "chat_only": BOOL, "created_at": STR, "custom_role_id": N(INT),
    "default_group_id": N(INT), "details": N(STR), "email": N(STR), "external_id": N(STR), "iana_time_zone": STR,
    "id": INT, "last_login_at": N(STR), "locale": STR, "locale_id": INT, "moderator": BOOL, "name": STR,
    "notes": N(STR), "only_private_comments": BOOL, "organization_id": N(INT), "phone": N(STR), "photo": N(dict),
    "remote_photo_url": N(STR), "report_csv": BOOL, "restricted_agent": BOOL, "role": STR, "role_type": N(INT),
    "shared": BOOL, "shared_agent": BOOL, "shared_phone_number": N(BOOL), "signature": N(STR), "suspended": BOOL,
    "tags": [STR], "ticket_restriction": N(STR), "time_zone": STR, "two_factor_auth_enabled": N(BOOL),
    "updated_at": STR, "url": STR, "user_fields": dict, "verified": BOOL,
}

# Organizations → JSON format, https://developer.zendesk.com/api-reference/ticketing/organizations/organizations/
ZD_ORGANIZATION = {
    "created_at": STR, "details": N(STR), "domain_names": [STR], "external_id": N(STR), "group_id": N(INT),
    "id": INT, "name": STR, "notes": N(STR), "organization_fields": dict, "shared_comments": BOOL,
    "shared_tickets": BOOL, "tags": [STR], "updated_at": STR, "url": STR,
}

# Groups → JSON format, https://developer.zendesk.com/api-reference/ticketing/groups/groups/
ZD_GROUP = {"created_at": STR, "default": BOOL, "deleted": BOOL, "description": STR, "id": INT, "is_public": BOOL,
            "name": STR, "updated_at": STR, "url": STR}

# Organization Fields / User Fields → JSON format,
# https://developer.zendesk.com/api-reference/ticketing/organizations/organization_fields/ and .../users/user_fields/
ZD_CUSTOM_FIELD = {
    "active": BOOL, "created_at": STR, "description": STR, "id": INT, "key": STR, "position": INT,
    "raw_description": STR, "raw_title": STR, "regexp_for_validation": N(STR), "system": BOOL, "title": STR,
    "type": STR, "updated_at": STR, "url": STR,
}
ZD_FIELD_OPTION = {"id": INT, "name": STR, "raw_name": STR, "value": STR}

# Satisfaction Ratings → JSON format, https://developer.zendesk.com/api-reference/ticketing/ticket-management/satisfaction_ratings/
ZD_RATING = {"assignee_id": N(INT), "comment": N(STR), "created_at": STR, "group_id": N(INT), "id": INT,
             "reason_id": N(INT), "requester_id": INT, "score": STR, "ticket_id": INT, "updated_at": STR, "url": STR}

# Incremental Exports → JSON format, https://developer.zendesk.com/api-reference/ticketing/ticket-management/incremental_exports/
ZD_CURSOR_EXPORT = {"after_cursor": N(STR), "after_url": N(STR), "before_cursor": N(STR), "before_url": N(STR),
                    "end_of_stream": BOOL}
ZD_TIME_EXPORT = {"count": INT, "end_of_stream": BOOL, "end_time": INT, "next_page": N(STR)}
# "Exporting ticket events" (Using the Incremental Export API): an audit with its child events
ZD_TICKET_EVENT = {"id": INT, "ticket_id": INT, "timestamp": INT, "created_at": STR, "updater_id": INT, "via": STR,
                   "system": dict, "event_type": STR, "merged_ticket_ids": [INT], "child_events": [{"id": INT}]}
ZD_COMMENT_EVENT = {"id": INT, "via": dict, "via_reference_id": N(INT), "type": STR, "author_id": INT, "body": STR,
                    "html_body": STR, "public": BOOL, "attachments": list, "audit_id": INT, "created_at": STR,
                    "event_type": STR}

# Pagination, https://developer.zendesk.com/api-reference/introduction/pagination/
ZD_CURSOR_PAGE = {"meta": {"has_more": BOOL, "after_cursor": N(STR), "before_cursor": N(STR)},
                  "links": {"next": N(STR), "prev": N(STR)}}
ZD_OFFSET_PAGE = {"count": INT, "next_page": N(STR), "previous_page": N(STR)}

# Search → SearchResponse / SearchExportResponse, https://developer.zendesk.com/api-reference/ticketing/ticket-management/search/
ZD_SEARCH = {"count": INT, "facets": N(STR), "next_page": N(STR), "previous_page": N(STR), "results": [{"result_type": STR}]}
ZD_SEARCH_EXPORT = {"facets": N(STR), "links": {"next": N(STR), "prev": N(STR)},
                    "meta": {"after_cursor": N(STR), "before_cursor": N(STR), "has_more": BOOL}, "results": list}

# Errors, https://developer.zendesk.com/api-reference/introduction/requests/#errors
ZD_ERROR = {"error": STR, "description": STR}

# ----------------------------------------------------------------------------------------------- Mixpanel

# Raw Event Export, https://developer.mixpanel.com/reference/raw-event-export: one JSON object per line
MP_EVENT = {"event": STR, "properties": {"time": INT, "distinct_id": STR, "$insert_id": STR}}
# Query Profiles, https://developer.mixpanel.com/reference/engage-query
MP_ENGAGE_FIRST_PAGE = {"page": INT, "page_size": INT, "session_id": STR, "status": STR, "total": INT,
                        "results": [{"$distinct_id": STR, "$properties": dict}]}
# Top Event Properties, https://developer.mixpanel.com/reference/list-top-event-properties
MP_PROPERTY_COUNT = {"count": INT}
# Query API errors, https://developer.mixpanel.com/reference/query-api
MP_ERROR = {"error": STR, "status": STR}
