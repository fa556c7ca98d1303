"""Row ↔ record mapping: one mapper by names, every conversion owned by a column type, on both backends."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from healthsync.sync.store import Store
from healthsync.sync.store.columns import Json, JsonSet, JsonTuple, UtcDateTime
from healthsync.sync.store.mapper import RowMapper

TOKYO = timezone(timedelta(hours=9))


@dataclass(frozen=True, slots=True)
class Probe:
    key: str
    flag: bool
    at: datetime
    doc: dict[str, Any]
    ordered: tuple[str, ...]
    members: tuple[str, ...]


probe_table = sa.Table(
    "mapper_probe",
    sa.MetaData(),
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("flag", sa.Boolean, nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("doc", Json, nullable=False),
    sa.Column("ordered", JsonTuple, nullable=False),
    sa.Column("members", JsonSet, nullable=False),
    sa.Column("note", sa.String, nullable=True),  # a column the record does not carry
)
PROBES = RowMapper(Probe, probe_table)


def test_a_record_field_without_a_column_is_refused_when_the_mapper_is_built() -> None:
    @dataclass(frozen=True)
    class Wider:
        key: str
        colour: str

    with pytest.raises(TypeError, match=r"\['colour'\] are not columns of table mapper_probe"):
        RowMapper(Wider, probe_table)


def test_to_row_adds_the_columns_the_record_does_not_carry() -> None:
    probe = Probe("k", True, datetime(2024, 1, 1, tzinfo=UTC), {}, ("b", "a"), ("x",))
    row = PROBES.to_row(probe, note="extra")
    assert row == {"key": "k", "flag": True, "at": probe.at, "doc": {}, "ordered": ("b", "a"),
                   "members": ("x",), "note": "extra"}
    assert PROBES.from_row(row) == probe  # and from_row ignores it again


def test_column_types_convert_the_same_way_on_both_backends(store: Store) -> None:
    probe_table.create(store.engine)
    written = Probe(
        key="p1",
        flag=True,
        at=datetime(2024, 3, 1, 18, 30, tzinfo=TOKYO),
        doc={"acv": Decimal("10.50"), "day": date(2024, 3, 1), "tags": {"b", "a"}},
        ordered=("z", "a", "z"),
        members=("z", "a", "z"),
    )
    with store.engine.begin() as conn:
        conn.execute(sa.insert(probe_table).values(PROBES.to_row(written, note=None)))
        row = conn.execute(PROBES.select()).mappings().one()
    read = PROBES.from_row(row)
    assert read.flag is True
    assert read.at == datetime(2024, 3, 1, 9, 30, tzinfo=UTC) and read.at.utcoffset() == timedelta(0)
    assert read.doc == {"acv": "10.50", "day": "2024-03-01", "tags": ["a", "b"]}
    assert read.ordered == ("z", "a", "z")  # a tuple again, order and repeats kept
    assert read.members == ("a", "z")  # a set: sorted, each once
