"""What one cycle did, as one type: the pipeline and the pull loop fill it in, the daemon times it, and /healthz,
/metrics and the CLI (run, pull, demo) read it as it is.

    CycleReport             status, as_of, what was scored, planned and written, the run record's steps
    └── SourceReport        per source: ok or why not, paused, what its API calls cost
        └── StreamReport    per stream: records, deletions, skipped records, pages
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from healthsync.connectors.pacing import PacerRegistry

if TYPE_CHECKING:
    from healthsync.scoring.base import ScoredAccount
    from healthsync.writeback.apply import ApplyReport
    from healthsync.writeback.base import Plan

CycleStatus = Literal["ok", "partial", "failed"]
CYCLE_STATUSES: tuple[str, ...] = ("ok", "partial", "failed")


@dataclass(frozen=True)
class ApiUse:
    """What a source's API calls cost: calls made, 429s answered, seconds waited, and the daily allocation."""

    calls: int = 0
    rate_limited: int = 0
    waited: float = 0.0
    daily_used: int | None = None
    daily_limit: int | None = None

    def minus(self, before: ApiUse) -> ApiUse:
        """The cost since `before` (the daily figures stay as they are now)."""
        return ApiUse(self.calls - before.calls, self.rate_limited - before.rate_limited,
                      self.waited - before.waited, self.daily_used, self.daily_limit)


def api_use(pacers: PacerRegistry, api: str) -> ApiUse:
    """Totals so far over every pacer of `api` (one per org/portal/project; normally exactly one)."""
    mine = [s for s in pacers.stats() if s.api == api]
    daily = [s for s in mine if s.daily_limit]
    return ApiUse(
        calls=sum(s.calls for s in mine),
        rate_limited=sum(s.rate_limited for s in mine),
        waited=sum(s.waited_seconds for s in mine),
        daily_used=sum(s.daily_used or 0 for s in daily) if daily else None,
        daily_limit=sum(s.daily_limit or 0 for s in daily) if daily else None,
    )


@dataclass
class StreamReport:
    records: int = 0
    deleted: int = 0
    skipped: int = 0
    pages: int = 0


@dataclass
class SourceReport:
    source: str
    ok: bool = True
    error: str | None = None  # redacted where the exception became text
    error_kind: str | None = None  # auth | quota | retryable | fatal
    paused: bool = False  # paused (credentials rejected) and therefore not pulled
    streams: dict[str, StreamReport] = field(default_factory=dict)
    skipped_examples: list[str] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False
    api: ApiUse = field(default_factory=ApiUse)

    @property
    def records(self) -> int:
        return sum(s.records for s in self.streams.values())


@dataclass
class CycleReport:
    """One cycle. `as_of` is when it started; `duration_s` is measured by whoever ran it (the daemon)."""

    as_of: datetime
    full: bool = False
    status: CycleStatus = "ok"
    run_id: str | None = None
    sources: dict[str, SourceReport] = field(default_factory=dict)
    identity: dict[str, dict[str, int]] = field(default_factory=dict)
    scored: list[ScoredAccount] = field(default_factory=list)
    accounts_by_band: dict[str, int] = field(default_factory=dict)
    plan: Plan | None = None
    applied: ApplyReport | None = None
    writes: dict[str, int] = field(default_factory=dict)  # kind ("fields", "tasks") -> count
    steps: dict[str, dict] = field(default_factory=dict)  # what the run record says of each step
    error: str | None = None  # why the cycle failed as a whole (redacted)
    duration_s: float = 0.0

    def __post_init__(self) -> None:
        if self.status not in CYCLE_STATUSES:
            raise ValueError(f"cycle status must be one of {', '.join(CYCLE_STATUSES)}, not {self.status!r}")
        if self.as_of.tzinfo is None:
            raise ValueError("CycleReport.as_of must be timezone-aware")

    @property
    def kind(self) -> str:
        return "full" if self.full else "incremental"

    @property
    def finished_at(self) -> datetime:
        return self.as_of + timedelta(seconds=self.duration_s)

    def without_accounts(self) -> CycleReport:
        """This report without its per-account parts (scores, plan): what a daemon keeps until the next cycle."""
        return replace(self, scored=[], plan=None)


def count_bands(scored: list[ScoredAccount]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for account in scored:
        counts[account.result.band] = counts.get(account.result.band, 0) + 1
    return counts
