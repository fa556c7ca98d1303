"""The one exception the Salesforce emulator raises internally, rendered in the real API's error shapes."""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Response

from healthsync.sandbox.core import json_response


class SfError(Exception):
    """An API error: HTTP status, Salesforce errorCode, message and the fields it concerns."""

    def __init__(self, status: int, code: str, message: str, fields: list[str] | None = None):
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.fields = list(fields or [])

    def rest_body(self) -> list[dict[str, Any]]:
        """REST resources answer a JSON list of {message, errorCode, fields}."""
        body: dict[str, Any] = {"message": self.message, "errorCode": self.code}
        if self.fields:
            body["fields"] = self.fields
        return [body]

    def collection_error(self) -> dict[str, Any]:
        """sObject Collections put per-record errors as {statusCode, message, fields}."""
        return {"statusCode": self.code, "message": self.message, "fields": self.fields}

    def response(self) -> Response:
        return json_response(self.rest_body(), self.status)
