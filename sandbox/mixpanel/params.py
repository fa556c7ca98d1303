"""Mixpanel request parsing and identity rendering: the error shape, dates, integers, JSON lists, `where`,
and how an event's neutral account key becomes the group key (or the email domain) a project exposes."""

from __future__ import annotations

import json
import zlib
from datetime import UTC, date, datetime
from typing import Any

from werkzeug.wrappers import Response

from healthsync.sandbox.core import json_response
from healthsync.sandbox.mixpanel.where import Predicate, WhereError, compile_where
from healthsync.sandbox.model import Account

GROUP_KEY = "account_id"  # the event property / group key that names the account
FREE_MAIL_DOMAINS = ("gmail.com", "outlook.com", "yahoo.com")


class MixpanelApiError(Exception):
    """Bad input: answered with Mixpanel's `{"error", "status": "error"}` body."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message, self.status = message, status


def error(message: str, status: int, headers: dict[str, str] | None = None) -> Response:
    """Mixpanel's error JSON, `{"error": "...", "status": "error"}` (Query API responses,
    https://developer.mixpanel.com/reference/query-api)."""
    return json_response({"error": message, "status": "error"}, status, headers)


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def parse_date(name: str, raw: str | None) -> date:
    if not raw:
        raise MixpanelApiError(f"'{name}' is a required parameter (YYYY-MM-DD)")
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise MixpanelApiError(f"'{name}' is invalid: {raw!r} is not a YYYY-MM-DD date") from None


def int_value(values: Any, name: str, default: int | None, low: int, high: int) -> int | None:
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


def json_list(raw: str | None, name: str) -> list[str] | None:
    if raw is None or raw == "":
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        raise MixpanelApiError(f"'{name}' must be a JSON list of strings, got {raw!r}") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MixpanelApiError(f"'{name}' must be a JSON list of strings, got {raw!r}")
    return value


def event_names(raw: str | None) -> set[str] | None:
    names = json_list(raw, "event")
    return None if names is None else set(names)


def where(raw: str | None) -> Predicate | None:
    try:
        return compile_where(raw)
    except WhereError as exc:
        raise MixpanelApiError(f"invalid `where` expression: {exc}") from None


# ----------------------------------------------------------------------------------------------- identity


def free_mail(email: str) -> str:
    local = email.split("@", 1)[0] or "user"
    return f"{local}@{FREE_MAIL_DOMAINS[zlib.crc32(email.encode()) % len(FREE_MAIL_DOMAINS)]}"


def group_value(account: Account, crm: str) -> str | None:
    if account.mixpanel_identity == "group_crm_id":
        return account.sf_id if crm == "salesforce" else account.hs_id
    if account.mixpanel_identity == "group_domain":
        return account.domain
    return None


def render_identity(props: dict, accounts: dict[str, Account], crm: str) -> dict:
    """Turn the neutral `_account_key` into what the account's identity mode exposes, in place."""
    account = accounts.get(props.pop("_account_key", None) or "")
    if account is None:
        return props
    value = group_value(account, crm)
    if value is not None:
        props[GROUP_KEY] = value
    if account.mixpanel_identity == "none" and props.get("$email"):
        props["$email"] = free_mail(props["$email"])
    return props


def event_day(event: dict) -> date:
    return datetime.fromtimestamp(int(event["properties"]["time"]), UTC).date()
