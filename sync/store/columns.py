"""The store's column types: every Python ↔ database conversion, declared once per type, the same on both backends."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

# NUL (\u0000) preceded by an even number of backslashes, i.e. a real escaped NUL.
_ESCAPED_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


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


def dumps_json(value: Any) -> str:
    """JSON for the store: aware datetimes as UTC ISO strings, Decimal as strings, NUL replaced (JSONB refuses it)."""
    text = json.dumps(value, default=_json_default, ensure_ascii=False, separators=(",", ":"))
    if "\\u0000" in text:
        text = _ESCAPED_NUL.sub(r"\1\\ufffd", text)
    return text


class UtcDateTime(sa.TypeDecorator):
    """Timezone-aware UTC in, timezone-aware UTC out, on every backend.

    PostgreSQL keeps `timestamptz`; SQLite has no time zone type, so values are stored as naive UTC
    text and re-labelled UTC on read. Naive datetimes are refused: their meaning depends on the host.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"naive datetime {value.isoformat()} refused: pass a timezone-aware (UTC) datetime"
            )
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Json(sa.TypeDecorator):
    """JSON (JSONB on PostgreSQL) of plain values plus aware datetimes, dates, Decimals and sets (`dumps_json`).

    Encoding here rather than in the driver means a value that cannot be stored fails the same way
    (sqlalchemy StatementError, before anything is sent) on both backends.
    """

    impl = sa.JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.JSONB())
        return dialect.type_descriptor(sa.JSON())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else json.loads(dumps_json(value))


class JsonTuple(Json):
    """A JSON array read back as a tuple (records are frozen, so their sequences are tuples); order is kept."""

    cache_ok = True

    def process_bind_param(self, value: Iterable[Any] | None, dialect: Dialect) -> Any:
        return None if value is None else super().process_bind_param(list(value), dialect)

    def process_result_value(self, value: list[Any] | None, dialect: Dialect) -> tuple[Any, ...] | None:
        return None if value is None else tuple(value)


class JsonSet(JsonTuple):
    """A set of strings as a sorted JSON array without duplicates, read back as a tuple in that order."""

    cache_ok = True

    def process_bind_param(self, value: Iterable[str] | None, dialect: Dialect) -> Any:
        return None if value is None else super().process_bind_param(sorted(set(value)), dialect)
