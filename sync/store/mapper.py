"""Rows ↔ records in one place: a frozen dataclass maps to a table by field and column names.

The mapper only matches names; every value conversion (aware UTC datetimes, JSON with datetimes,
Decimals and sets, tuples, booleans) belongs to the column's type in `columns.py`, declared once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

import sqlalchemy as sa

Record = TypeVar("Record")


class RowMapper(Generic[Record]):
    """Converts between one frozen dataclass and rows of one table; refuses a field the table lacks."""

    def __init__(self, record_type: type[Record], table: sa.Table):
        names = tuple(f.name for f in dataclasses.fields(record_type))  # type: ignore[arg-type]
        unknown = [name for name in names if name not in table.c]
        if unknown:
            raise TypeError(f"{record_type.__name__} fields {unknown} are not columns of table {table.name}")
        self.record_type = record_type
        self.table = table
        self.names = names
        self.columns = tuple(table.c[name] for name in names)

    def to_row(self, record: Record, **columns: Any) -> dict[str, Any]:
        """The record's fields as column values, plus `columns` the record does not carry (keys, timestamps)."""
        return {**{name: getattr(record, name) for name in self.names}, **columns}

    def from_row(self, row: Mapping[str, Any]) -> Record:
        """The record held by a row (columns it has no field for are ignored)."""
        return self.record_type(**{name: row[name] for name in self.names})

    def select(self) -> sa.Select:
        """SELECT of exactly the columns the record needs, for `from_row`."""
        return sa.select(*self.columns)
