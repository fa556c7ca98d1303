"""HubSpot's error bodies, word for word where we know them (the SDK only reads the status; connectors read these)."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Callable
from datetime import datetime

from werkzeug.wrappers import Response

from healthsync.sandbox.core import json_response

AUTH_MISSING_MESSAGE = ("Authentication credentials not found. This API supports OAuth 2.0 authentication and "
                        "you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview")
GENERIC_BAD_REQUEST = "There was a problem with the request."
MISSING_SCOPES_MESSAGE = ("This app hasn't been granted all required scopes to make this call. Read more about "
                          "required scopes here: https://developers.hubspot.com/scopes.")


def correlation_id() -> str:
    return str(uuid.uuid4())


def error(status: int, category: str, message: str, **extra: object) -> Response:
    body = {"status": "error", "message": message, "correlationId": correlation_id(), "category": category}
    body.update(extra)
    return json_response(body, status)


def validation_error(message: str, **extra: object) -> Response:
    return error(400, "VALIDATION_ERROR", message, **extra)


def property_values_invalid(problems: list[dict]) -> Response:
    return validation_error(property_values_message(problems))


def property_values_message(problems: list[dict]) -> str:
    return "Property values were not valid: " + json.dumps(problems)


def not_found(message: str = "Object not found.  objectId are usually numeric.") -> Response:
    return error(404, "OBJECT_NOT_FOUND", message)


def unknown_object_type(name: str) -> Response:
    return validation_error(f"Unable to infer object type from: {name}")


def unauthorized() -> Response:
    return error(401, "INVALID_AUTHENTICATION", AUTH_MISSING_MESSAGE)


def expired(expired_at: datetime | None, now: datetime) -> Response:
    hours = max(int((now - expired_at).total_seconds() // 3600), 0) if expired_at else 0
    when = expired_at.isoformat() if expired_at else "unknown"
    return error(401, "EXPIRED_AUTHENTICATION", f"The OAuth token used to make this call expired {hours} hour(s) ago.",
                 context={"expired at": [when]})


def missing_scopes(scope: str) -> Response:
    return error(403, "MISSING_SCOPES", MISSING_SCOPES_MESSAGE,
                 errors=[{"message": "One or more of the following scopes are required.",
                          "context": {"requiredGranularScopes": [scope]}}],
                 links={"scopes": "https://developers.hubspot.com/scopes"})


def rate_limited(message: str, policy: str, portal_id: int, retry_after: int | None) -> Response:
    body = {"status": "error", "message": message, "errorType": "RATE_LIMIT", "correlationId": correlation_id(),
            "policyName": policy, "groupName": f"publicapi:private-app:{portal_id}"}
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return json_response(body, 429, headers)


def oauth_error(status_code: str, message: str) -> Response:
    """The OAuth token endpoint's own shape: `status` carries the error code, not "error"."""
    return json_response({"status": status_code, "message": message, "correlationId": correlation_id()}, 400)


def batch_error(category: str, message: str, context: dict[str, list[str]], details: list[dict] | None = None) -> dict:
    """One entry of a 207 answer's `errors`."""
    return {"status": "error", "category": category, "message": message, "context": context,
            "errors": details or [], "links": {}}


class BadRequest(ValueError):
    """Raised by a handler for invalid input: answered as 400 VALIDATION_ERROR with this message."""


class UnknownObjectType(LookupError):
    """Raised by a handler for an object type HubSpot would not recognise."""


def answers_bad_input(handler: Callable[..., Response]) -> Callable[..., Response]:
    """Turn BadRequest / UnknownObjectType raised anywhere in a handler into HubSpot's 400 answers."""

    @functools.wraps(handler)
    def guarded(self: object, request: object, **values: object) -> Response:
        try:
            return handler(self, request, **values)
        except UnknownObjectType as exc:
            return unknown_object_type(str(exc.args[0]))
        except BadRequest as exc:
            return validation_error(str(exc))

    return guarded
