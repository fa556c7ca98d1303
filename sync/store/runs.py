"""What the daemon did and how each source is doing: run history with per-step figures, and source status."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from healthsync.sync.store import schema as t
from healthsync.sync.store.base import Repository, clip
from healthsync.sync.store.engine import dialect_insert
from healthsync.sync.store.mapper import RowMapper
from healthsync.sync.store.rows import RunRow, SourceStatus

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_FINISHED = ("ok", "partial", "failed")
_RUNS = RowMapper(RunRow, t.runs)
_SOURCES = RowMapper(SourceStatus, t.source_status)


class RunRepository(Repository):
    """Runs keyed by id; one status row per source."""

    # ---- runs ------------------------------------------------------------------------------

    def start(self, kind: str, *, started_at: datetime, run_id: str | None = None) -> str:
        """Record a run as running; returns its id (a new uuid4 hex unless given)."""
        run = RunRow(id=run_id or uuid.uuid4().hex, kind=kind, status="running", started_at=started_at,
                     finished_at=None)
        with self._db.write() as conn:
            conn.execute(sa.insert(t.runs).values(_RUNS.to_row(run)))
        return run.id

    def record_step(self, run_id: str, step: str, metrics: Mapping[str, Any]) -> None:
        """Set one step's figures (counts, duration_s, api_calls, errors...) on a run."""
        with self._db.write() as conn:
            steps = _locked_steps(conn, run_id)
            steps[step] = dict(metrics)
            conn.execute(sa.update(t.runs).where(t.runs.c.id == run_id).values(steps=steps))

    def finish(self, run_id: str, *, status: str, finished_at: datetime, error: str | None = None) -> None:
        if status not in _FINISHED:
            raise ValueError(f"a run finishes as one of {', '.join(_FINISHED)}, not {status!r}")
        stmt = (
            sa.update(t.runs)
            .where(t.runs.c.id == run_id)
            .values(status=status, finished_at=finished_at, error=clip(error) if error else None)
        )
        with self._db.write() as conn:
            if conn.execute(stmt).rowcount != 1:
                raise KeyError(f"no run with id {run_id!r}")

    def abandon_running(self, *, now: datetime, reason: str) -> int:
        """Mark runs a crashed process left 'running' as failed. Call at startup, under the daemon lock."""
        stmt = (
            sa.update(t.runs)
            .where(t.runs.c.status == "running")
            .values(status="failed", finished_at=now, error=clip(reason))
        )
        with self._db.write() as conn:
            return conn.execute(stmt).rowcount

    def get(self, run_id: str) -> RunRow | None:
        with self._db.read() as conn:
            row = conn.execute(_RUNS.select().where(t.runs.c.id == run_id)).mappings().first()
        return _RUNS.from_row(row) if row else None

    def recent(self, limit: int = 20, *, kind: str | None = None) -> list[RunRow]:
        """Newest first."""
        query = _RUNS.select()
        if kind is not None:
            query = query.where(t.runs.c.kind == kind)
        query = query.order_by(t.runs.c.started_at.desc(), t.runs.c.id.desc()).limit(limit)
        with self._db.read() as conn:
            return [_RUNS.from_row(row) for row in conn.execute(query).mappings()]

    # ---- source status ---------------------------------------------------------------------

    def record_source_success(self, source: str, *, now: datetime) -> None:
        self._touch_source(source, now, last_success_at=now)

    def record_source_error(self, source: str, error: str, *, now: datetime) -> None:
        """Keep the latest error; the message must already be free of secrets (connectors redact)."""
        self._touch_source(source, now, last_error_at=now, last_error=clip(error))

    def pause_source(self, source: str, reason: str, *, now: datetime) -> None:
        """Stop pulling a source (e.g. its credentials were rejected) until resumed."""
        self._touch_source(source, now, paused=True, paused_reason=clip(reason))

    def resume_source(self, source: str, *, now: datetime) -> None:
        self._touch_source(source, now, paused=False, paused_reason=None)

    def set_credentials_fingerprint(self, source: str, fingerprint: str, *, now: datetime) -> None:
        """Store a sha256 hex digest from `credentials_fingerprint()`; anything else is refused."""
        if not _SHA256_HEX.match(fingerprint):
            # The value is not echoed: it may be the secret itself.
            raise ValueError(
                "credentials fingerprint must be a 64-character sha256 hex digest "
                "(build it with sync.store.credentials_fingerprint); refusing to store what may be a secret"
            )
        self._touch_source(source, now, credentials_fingerprint=fingerprint)

    def source_status(self, source: str) -> SourceStatus | None:
        return next(iter(self._source_statuses(t.source_status.c.source == source)), None)

    def source_statuses(self) -> list[SourceStatus]:
        return self._source_statuses()

    def _source_statuses(self, *filters: Any) -> list[SourceStatus]:
        query = _SOURCES.select().where(*filters).order_by(t.source_status.c.source)
        with self._db.read() as conn:
            return [_SOURCES.from_row(row) for row in conn.execute(query).mappings()]

    def _touch_source(self, source: str, now: datetime, **changes: Any) -> None:
        """Create the source's row or change only `changes` (and updated_at) on the existing one."""
        values = {"source": source, "paused": False, "updated_at": now, **changes}
        with self._db.write() as conn:
            stmt = dialect_insert(conn, t.source_status).values(values)
            stmt = stmt.on_conflict_do_update(
                index_elements=[t.source_status.c.source], set_={**changes, "updated_at": now}
            )
            conn.execute(stmt)


def _locked_steps(conn: Connection, run_id: str) -> dict[str, Any]:
    """The run's steps, row-locked on PostgreSQL so two step writers cannot lose each other's update."""
    query = sa.select(t.runs.c.steps).where(t.runs.c.id == run_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    steps = conn.execute(query).scalar_one_or_none()
    if steps is None:
        raise KeyError(f"no run with id {run_id!r}")
    return dict(steps)
