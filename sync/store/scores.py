"""Score history: every account's health result per `as_of`, the baseline for trends and edge-triggered rules."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from healthsync.sync.store import schema as t
from healthsync.sync.store.base import Repository
from healthsync.sync.store.engine import dialect_insert
from healthsync.sync.store.mapper import RowMapper
from healthsync.sync.store.rows import ScoreRow

_SCORES = RowMapper(ScoreRow, t.score_history)
_REPLACED = ("score", "band", "components", "result", "model", "run_id")


class ScoreRepository(Repository):
    """Scores keyed (account_id, as_of)."""

    def record(self, rows: Sequence[ScoreRow]) -> int:
        """Save scores; scoring the same account at the same `as_of` again replaces the earlier row."""
        latest = {(r.account_id, r.as_of): r for r in rows}
        values = [_SCORES.to_row(r) for r in latest.values()]
        if not values:
            return 0
        with self._db.write() as conn:
            stmt = dialect_insert(conn, t.score_history)
            c = t.score_history.c
            stmt = stmt.on_conflict_do_update(
                index_elements=[c.account_id, c.as_of], set_={n: stmt.excluded[n] for n in _REPLACED}
            )
            conn.execute(stmt, values)
        return len(values)

    def history(
        self, account_id: str, *, since: datetime | None = None, until: datetime | None = None
    ) -> list[ScoreRow]:
        """One account's scores, oldest first; `since`/`until` are inclusive."""
        c = t.score_history.c
        query = _SCORES.select().where(c.account_id == account_id)
        if since is not None:
            query = query.where(c.as_of >= since)
        if until is not None:
            query = query.where(c.as_of <= until)
        with self._db.read() as conn:
            return [_SCORES.from_row(row) for row in conn.execute(query.order_by(c.as_of)).mappings()]

    def histories(self, *, since: datetime, until: datetime) -> dict[str, list[ScoreRow]]:
        """Every account's scores in [since, until], oldest first: one query for a whole cycle's trends."""
        c = t.score_history.c
        query = _SCORES.select().where(c.as_of >= since, c.as_of <= until).order_by(c.account_id, c.as_of)
        out: dict[str, list[ScoreRow]] = {}
        with self._db.read() as conn:
            for row in conn.execute(query).mappings():
                out.setdefault(row["account_id"], []).append(_SCORES.from_row(row))
        return out

    def latest_at(self, when: datetime, account_ids: Sequence[str] | None = None) -> dict[str, ScoreRow]:
        """Each account's latest score at or before `when` (the baseline for 7/30-day trends)."""
        c = t.score_history.c
        latest = sa.select(c.account_id, sa.func.max(c.as_of).label("as_of")).where(c.as_of <= when)
        if account_ids is not None:
            if not account_ids:
                return {}
            latest = latest.where(c.account_id.in_(list(account_ids)))
        latest = latest.group_by(c.account_id).subquery()
        query = _SCORES.select().join(
            latest, sa.and_(c.account_id == latest.c.account_id, c.as_of == latest.c.as_of)
        )
        with self._db.read() as conn:
            return {row["account_id"]: _SCORES.from_row(row) for row in conn.execute(query).mappings()}
