"""How the store turns Python values into JSON text: one encoder for every JSON column and backend."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise TypeError(f"naive datetime {value.isoformat()} in JSON: pass a timezone-aware datetime")
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)  # exact; readers convert back
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable in the store")


# NUL (\u0000) preceded by an even number of backslashes, i.e. a real escaped NUL.
_ESCAPED_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def dumps_json(value: Any) -> str:
    """JSON for the store: aware datetimes as UTC ISO strings, Decimal as strings, NUL replaced (JSONB refuses it)."""
    text = json.dumps(value, default=_json_default, ensure_ascii=False, separators=(",", ":"))
    if "\\u0000" in text:
        text = _ESCAPED_NUL.sub(r"\1\\ufffd", text)
    return text
