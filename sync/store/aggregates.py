"""Store operations for derived data: per-account daily usage, identity links and score history."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from healthsync.sync.store import schema as t
from healthsync.sync.store.base import StoreOps
from healthsync.sync.store.engine import dialect_insert
from healthsync.sync.store.rows import IdentityLink, ScoreRow, UsageDay


class AggregateOps(StoreOps):
    """Mixed into Store."""

    # ---- usage -----------------------------------------------------------------------------

    def upsert_usage_days(self, source: str, days: Sequence[UsageDay], *, now: datetime) -> int:
        """Insert or replace whole (account_key, day) rows: a re-aggregated day replaces the old one."""
        values = list({(d.account_key, d.day): _usage_values(source, d, now) for d in days}.values())
        if not values:
            return 0
        with self._write() as conn:
            stmt = dialect_insert(conn, t.usage_daily)
            replaced = {
                name: stmt.excluded[name]
                for name in values[0]
                if name not in ("source", "account_key", "day")
            }
            stmt = stmt.on_conflict_do_update(
                index_elements=[t.usage_daily.c.source, t.usage_daily.c.account_key, t.usage_daily.c.day],
                set_=replaced,
            )
            conn.execute(stmt, values)
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
        with self.transaction() as tx, tx._write() as conn:
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
        query = sa.select(t.usage_daily).where(c.source == source)
        if account_key is not None:
            query = query.where(c.account_key == account_key)
        if start is not None:
            query = query.where(c.day >= start)
        if end is not None:
            query = query.where(c.day <= end)
        query = query.order_by(c.account_key, c.day)
        with self._read() as conn:
            return [_usage_day(row) for row in conn.execute(query).mappings()]

    # ---- identity --------------------------------------------------------------------------

    def upsert_identity_links(self, links: Sequence[IdentityLink], *, now: datetime) -> int:
        values = list({(link.source, link.external_key): _link_values(link, now) for link in links}.values())
        if not values:
            return 0
        with self._write() as conn:
            stmt = dialect_insert(conn, t.identity_links)
            c = t.identity_links.c
            stmt = stmt.on_conflict_do_update(
                index_elements=[c.source, c.external_key],
                set_={
                    name: stmt.excluded[name]
                    for name in ("account_id", "method", "status", "candidates", "updated_at")
                },
            )
            conn.execute(stmt, values)
        return len(values)

    def get_identity_link(self, source: str, external_key: str) -> IdentityLink | None:
        c = t.identity_links.c
        query = sa.select(t.identity_links).where(c.source == source, c.external_key == external_key)
        with self._read() as conn:
            row = conn.execute(query).mappings().first()
        return _identity_link(row) if row else None

    def identity_links(self, source: str | None = None, *, status: str | None = None) -> list[IdentityLink]:
        c = t.identity_links.c
        query = sa.select(t.identity_links)
        if source is not None:
            query = query.where(c.source == source)
        if status is not None:
            query = query.where(c.status == status)
        query = query.order_by(c.source, c.external_key)
        with self._read() as conn:
            return [_identity_link(row) for row in conn.execute(query).mappings()]

    # ---- scores ----------------------------------------------------------------------------

    def record_scores(self, rows: Sequence[ScoreRow]) -> int:
        """Save scores; scoring the same account at the same `as_of` again replaces the earlier row."""
        values = list({(r.account_id, r.as_of): _score_values(r) for r in rows}.values())
        if not values:
            return 0
        with self._write() as conn:
            stmt = dialect_insert(conn, t.score_history)
            c = t.score_history.c
            stmt = stmt.on_conflict_do_update(
                index_elements=[c.account_id, c.as_of],
                set_={
                    n: stmt.excluded[n] for n in ("score", "band", "components", "result", "model", "run_id")
                },
            )
            conn.execute(stmt, values)
        return len(values)

    def score_history(
        self, account_id: str, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[ScoreRow]:
        """One account's scores, oldest first; `since`/`until` are inclusive."""
        c = t.score_history.c
        query = sa.select(t.score_history).where(c.account_id == account_id)
        if since is not None:
            query = query.where(c.as_of >= since)
        if until is not None:
            query = query.where(c.as_of <= until)
        with self._read() as conn:
            return [ScoreRow(**row) for row in conn.execute(query.order_by(c.as_of)).mappings()]

    def score_histories(self, *, since: datetime, until: datetime) -> dict[str, list[ScoreRow]]:
        """Every account's scores in [since, until], oldest first: one query for a whole cycle's trends."""
        c = t.score_history.c
        query = sa.select(t.score_history).where(c.as_of >= since, c.as_of <= until).order_by(c.account_id, c.as_of)
        out: dict[str, list[ScoreRow]] = {}
        with self._read() as conn:
            for row in conn.execute(query).mappings():
                out.setdefault(row["account_id"], []).append(ScoreRow(**row))
        return out

    def scores_at(self, when: datetime, account_ids: Sequence[str] | None = None) -> dict[str, ScoreRow]:
        """Each account's latest score at or before `when` (the baseline for 7/30-day trends)."""
        c = t.score_history.c
        latest = sa.select(c.account_id, sa.func.max(c.as_of).label("as_of")).where(c.as_of <= when)
        if account_ids is not None:
            if not account_ids:
                return {}
            latest = latest.where(c.account_id.in_(list(account_ids)))
        latest = latest.group_by(c.account_id).subquery()
        query = sa.select(t.score_history).join(
            latest, sa.and_(c.account_id == latest.c.account_id, c.as_of == latest.c.as_of)
        )
        with self._read() as conn:
            return {row["account_id"]: ScoreRow(**row) for row in conn.execute(query).mappings()}


def _usage_values(source: str, day: UsageDay, now: datetime) -> dict[str, Any]:
    return {
        "source": source,
        "account_key": day.account_key,
        "day": day.day,
        "active_users": day.active_users,
        "events": day.events,
        "core_actions": day.core_actions,
        "login_users": day.login_users,
        "value_events": day.value_events,
        "features_used": sorted(set(day.features_used)),
        "user_ids": sorted(set(day.user_ids)),
        "updated_at": now,
    }


def _usage_day(row: Mapping[str, Any]) -> UsageDay:
    return UsageDay(
        account_key=row["account_key"],
        day=row["day"],
        active_users=row["active_users"],
        events=row["events"],
        core_actions=row["core_actions"],
        login_users=row["login_users"],
        value_events=row["value_events"],
        features_used=tuple(row["features_used"]),
        user_ids=tuple(row["user_ids"]),
    )


def _link_values(link: IdentityLink, now: datetime) -> dict[str, Any]:
    if link.status not in t.IDENTITY_STATUSES:
        raise ValueError(f"identity status {link.status!r} is not one of {', '.join(t.IDENTITY_STATUSES)}")
    if link.method is not None and link.method not in t.IDENTITY_METHODS:
        raise ValueError(f"identity method {link.method!r} is not one of {', '.join(t.IDENTITY_METHODS)}")
    if (link.status == "matched") != (link.account_id is not None):
        raise ValueError(
            f"identity link {link.source}/{link.external_key}: an account_id is set exactly when matched"
        )
    return {
        "source": link.source,
        "external_key": link.external_key,
        "account_id": link.account_id,
        "method": link.method,
        "status": link.status,
        "candidates": list(link.candidates),
        "updated_at": now,
    }


def _identity_link(row: Mapping[str, Any]) -> IdentityLink:
    return IdentityLink(
        source=row["source"],
        external_key=row["external_key"],
        status=row["status"],
        account_id=row["account_id"],
        method=row["method"],
        candidates=tuple(row["candidates"]),
    )


def _score_values(row: ScoreRow) -> dict[str, Any]:
    return {
        "account_id": row.account_id,
        "as_of": row.as_of,
        "score": row.score,
        "band": row.band,
        "components": row.components,
        "result": row.result,
        "model": row.model,
        "run_id": row.run_id,
    }
