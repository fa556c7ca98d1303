"""Data derived per account from pulled records: daily product usage and how external keys map to CRM accounts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

import sqlalchemy as sa

from healthsync.sync.store import schema as t
from healthsync.sync.store.base import Repository
from healthsync.sync.store.engine import dialect_insert
from healthsync.sync.store.mapper import RowMapper
from healthsync.sync.store.rows import IdentityLink, UsageDay

_USAGE = RowMapper(UsageDay, t.usage_daily)
_LINKS = RowMapper(IdentityLink, t.identity_links)
_USAGE_KEY = ("source", "account_key", "day")
_LINK_KEY = ("source", "external_key")


class AggregateRepository(Repository):
    """Usage days keyed (source, account_key, day) and identity links keyed (source, external_key)."""

    # ---- usage -----------------------------------------------------------------------------

    def upsert_usage_days(self, source: str, days: Sequence[UsageDay], *, now: datetime) -> int:
        """Insert or replace whole (account_key, day) rows: a re-aggregated day replaces the old one."""
        latest = {(d.account_key, d.day): d for d in days}  # a day twice in one call: the last one wins
        values = [_USAGE.to_row(d, source=source, updated_at=now) for d in latest.values()]
        if not values:
            return 0
        with self._db.write() as conn:
            _upsert_replacing(conn, t.usage_daily, _USAGE_KEY, values)
        return len(values)

    def replace_usage_window(
        self, source: str, first_day: date, last_day: date, days: Sequence[UsageDay], *, now: datetime
    ) -> int:
        """Replace every row of `source` from first_day to last_day (inclusive) with `days`, atomically.

        For the late-event lookback: an account with no events left in a re-read day loses that day.
        """
        if first_day > last_day:
            raise ValueError(f"usage window starts {first_day} after it ends {last_day}")
        outside = sorted({d.day for d in days if not first_day <= d.day <= last_day})
        if outside:
            raise ValueError(f"usage days {outside[0]}.. fall outside the window {first_day}..{last_day}")
        c = t.usage_daily.c
        with self.transaction() as tx:
            with tx._db.write() as conn:
                conn.execute(
                    sa.delete(t.usage_daily).where(c.source == source, c.day.between(first_day, last_day))
                )
            return tx.upsert_usage_days(source, days, now=now)

    def usage_days(
        self,
        source: str,
        *,
        account_key: str | None = None,
        start: date | None = None,
        end: date | None = None,
    ) -> list[UsageDay]:
        """Usage rows ordered by account and day; `start`/`end` are inclusive."""
        c = t.usage_daily.c
        query = _USAGE.select().where(c.source == source)
        if account_key is not None:
            query = query.where(c.account_key == account_key)
        if start is not None:
            query = query.where(c.day >= start)
        if end is not None:
            query = query.where(c.day <= end)
        query = query.order_by(c.account_key, c.day)
        with self._db.read() as conn:
            return [_USAGE.from_row(row) for row in conn.execute(query).mappings()]

    # ---- identity --------------------------------------------------------------------------

    def upsert_identity_links(self, links: Sequence[IdentityLink], *, now: datetime) -> int:
        for link in links:
            _check_link(link)
        latest = {(link.source, link.external_key): link for link in links}
        values = [_LINKS.to_row(link, updated_at=now) for link in latest.values()]
        if not values:
            return 0
        with self._db.write() as conn:
            _upsert_replacing(conn, t.identity_links, _LINK_KEY, values)
        return len(values)

    def get_identity_link(self, source: str, external_key: str) -> IdentityLink | None:
        c = t.identity_links.c
        query = _LINKS.select().where(c.source == source, c.external_key == external_key)
        with self._db.read() as conn:
            row = conn.execute(query).mappings().first()
        return _LINKS.from_row(row) if row else None

    def identity_links(self, source: str | None = None, *, status: str | None = None) -> list[IdentityLink]:
        c = t.identity_links.c
        query = _LINKS.select()
        if source is not None:
            query = query.where(c.source == source)
        if status is not None:
            query = query.where(c.status == status)
        query = query.order_by(c.source, c.external_key)
        with self._db.read() as conn:
            return [_LINKS.from_row(row) for row in conn.execute(query).mappings()]


def _upsert_replacing(conn: sa.Connection, table: sa.Table, key: tuple[str, ...], values: list[dict]) -> None:
    """INSERT, or on a key conflict replace every non-key column with the new row's."""
    stmt = dialect_insert(conn, table)
    replaced = {name: stmt.excluded[name] for name in values[0] if name not in key}
    stmt = stmt.on_conflict_do_update(index_elements=[table.c[name] for name in key], set_=replaced)
    conn.execute(stmt, values)


def _check_link(link: IdentityLink) -> None:
    if link.status not in t.IDENTITY_STATUSES:
        raise ValueError(f"identity status {link.status!r} is not one of {', '.join(t.IDENTITY_STATUSES)}")
    if link.method is not None and link.method not in t.IDENTITY_METHODS:
        raise ValueError(f"identity method {link.method!r} is not one of {', '.join(t.IDENTITY_METHODS)}")
    if (link.status == "matched") != (link.account_id is not None):
        raise ValueError(
            f"identity link {link.source}/{link.external_key}: an account_id is set exactly when matched"
        )
