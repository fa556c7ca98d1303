"""One cycle of the daemon: pull → identity → facts → score → rules → plan → apply, with `as_of` injected.

Each step records its counts and duration in the run record. A failing source does not stop the others:
the cycle scores with what it has (a stale source's signals become unknown, and the explanation says so).
An auth failure pauses that source until its credentials change; it is logged once when it starts failing
and once when it recovers, not every cycle.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from healthsync.connectors.base import Source
from healthsync.connectors.pacing import PacerRegistry
from healthsync.redaction import redact
from healthsync.scoring.base import PastResult, ScoredAccount
from healthsync.scoring.model import HealthModel
from healthsync.scoring.playbook import Playbook
from healthsync.scoring.portfolio import score_portfolio
from healthsync.scoring.renewal import current_customers
from healthsync.sync import state_sync
from healthsync.sync.cycle import ApiUse, CycleReport, SourceReport, api_use, count_bands
from healthsync.sync.facts import FactsConfig
from healthsync.sync.gather import gather_facts
from healthsync.sync.pull import pull_source
from healthsync.sync.store import Store
from healthsync.sync.store.rows import ScoreRow
from healthsync.writeback.apply import BatchHook, apply_plan
from healthsync.writeback.base import CrmWriter, Plan
from healthsync.writeback.plan import PlanInputs, WritebackPolicy, build_plan

log = structlog.get_logger("healthsync.cycle")

HISTORY_DAYS = 40  # enough history for 30-day trends and four weeks of decline
BACKFILL_DAYS = (35, 28, 21, 14, 7)  # first run: score the same dated facts at these offsets for trends


@dataclass
class CycleContext:
    """Everything a cycle needs, built once by the daemon (or a test) from config."""

    store: Store
    crm: str
    sources: Mapping[str, Source]
    writer: CrmWriter | None
    model: HealthModel
    model_name: str
    playbook: Playbook | None
    policy: WritebackPolicy
    facts_config: FactsConfig
    pacers: PacerRegistry
    dry_run: bool = True
    credentials: Mapping[str, str] = field(default_factory=dict)  # source -> credentials fingerprint
    now: Callable[[], datetime] = field(default=lambda: datetime.now().astimezone())
    after_apply_batch: BatchHook | None = None  # tests inject crashes here


def run_cycle(ctx: CycleContext, *, as_of: datetime, full: bool = False,
              stop: threading.Event | None = None) -> CycleReport:
    store = ctx.store
    run_id = store.runs.start("full" if full else "cycle", started_at=ctx.now())
    report = CycleReport(as_of=as_of, full=full, run_id=run_id)
    api_before = {name: api_use(ctx.pacers, name) for name in ctx.sources}
    try:
        _step(ctx, report, "pull", lambda: _pull_all(ctx, report, stop))
        if stop is not None and stop.is_set():
            report.status = "partial"
            return report
        healthy = {name for name, r in report.sources.items() if r.ok}
        state_sync.sync_task_states(store, ctx.crm, now=ctx.now())
        gathered = _step(ctx, report, "identity_and_facts", lambda: gather_facts(store, ctx, healthy, as_of))
        report.identity = gathered.identity_counts
        score_rows: list[ScoreRow] = []
        report.scored = _step(ctx, report, "score", lambda: score_accounts(
            ctx, gathered.facts, as_of, run_id, rows=score_rows))
        report.accounts_by_band = count_bands(report.scored)
        report.plan = _step(ctx, report, "plan", lambda: plan_writeback(ctx, report.scored, gathered, as_of))
        writing = ctx.writer is not None and not ctx.dry_run
        if writing and ctx.crm in healthy:
            report.applied = _step(ctx, report, "apply", lambda: apply_plan(
                report.plan, ctx.writer, store.ledger, now=ctx.now(), run_id=run_id, after_batch=ctx.after_apply_batch))
            report.writes = {"fields": report.applied.fields_written, "tasks": report.applied.tasks_created}
        if not writing or report.applied is not None:
            # Scores enter history only once what they asked for is written: recorded before a crash (or a
            # cycle whose CRM was down), they would hide the transition from the next cycle, and the tasks of
            # edge-triggered rules ("newly" below 70, band changes) would never be created.
            store.scores.record(score_rows)
        report.status = _overall_status(report, ctx)
    except Exception as exc:  # the run record must say it failed; the daemon decides what next
        report.status = "failed"
        report.error = redact(f"{type(exc).__name__}: {exc}")  # the run record keeps it, /healthz shows it
        log.error("cycle failed", run_id=run_id, error=report.error)
        raise
    finally:
        _charge_api_use(ctx, report, api_before)
        store.runs.finish(run_id, status=report.status, finished_at=ctx.now(), error=report.error)
    return report


def _charge_api_use(ctx: CycleContext, report: CycleReport, before: dict[str, ApiUse]) -> None:
    """Each source's API calls during this cycle, its writes included (the pacers count from process start)."""
    for name, source in report.sources.items():
        source.api = api_use(ctx.pacers, name).minus(before.get(name, ApiUse()))


def _step(ctx: CycleContext, report: CycleReport, name: str, fn: Callable):
    """Run one step; its duration and counts go to the report and to the run record in the store."""
    started = time.monotonic()
    result = fn()
    metrics = {"seconds": round(time.monotonic() - started, 3)}
    metrics.update(_step_counts(name, result, report))
    report.steps[name] = metrics
    ctx.store.runs.record_step(report.run_id, name, metrics)
    return result


def _step_counts(name: str, result, report: CycleReport) -> dict:
    if name == "pull":
        return {src: {"ok": r.ok, "records": r.records, "error": r.error} for src, r in report.sources.items()}
    if name == "score":
        return {"accounts": len(result), "bands": count_bands(result)}
    if name == "plan" and result is not None:
        return {"field_updates": len(result.field_updates), "tasks": len(result.tasks),
                "conflicts": len(result.conflicts), "unresolved": len(result.unresolved)}
    if name == "apply" and result is not None:
        return {"fields_written": result.fields_written, "tasks_created": result.tasks_created,
                "failed": result.fields_failed + result.tasks_failed, "write_calls": result.write_calls}
    if name == "identity_and_facts":
        return {"accounts": len(result.facts), "identity": result.identity_counts}
    return {}


# ------------------------------------------------------------------------------------------ pull


def _pull_all(ctx: CycleContext, report: CycleReport, stop: threading.Event | None) -> None:
    """Pull every source as of the report's instant, into the report."""
    as_of, full, run_id = report.as_of, report.full, report.run_id
    for name, source in ctx.sources.items():
        if stop is not None and stop.is_set():
            return
        status = ctx.store.runs.source_status(name)
        fingerprint = ctx.credentials.get(name)
        if status is not None and status.paused:
            if fingerprint is None or status.credentials_fingerprint == fingerprint:
                report.sources[name] = SourceReport(source=name, ok=False, error=status.paused_reason,
                                                    error_kind="auth", paused=True)
                continue
            ctx.store.runs.resume_source(name, now=ctx.now())
            log.info("source credentials changed: retrying", source=name)
        result = pull_source(ctx.store, source, as_of=as_of, now=ctx.now, full=full, run_id=run_id, stop=stop)
        report.sources[name] = result
        _record_source_outcome(ctx, name, result, status, fingerprint)


def _record_source_outcome(ctx: CycleContext, name: str, result: SourceReport, previous, fingerprint) -> None:
    store, now = ctx.store, ctx.now()
    was_failing = previous is not None and previous.last_error_at is not None and (
        previous.last_success_at is None or previous.last_error_at > previous.last_success_at)
    if result.ok:
        store.runs.record_source_success(name, now=now)
        if was_failing:
            log.info("source recovered", source=name)
        return
    store.runs.record_source_error(name, result.error or "failed", now=now)
    if not was_failing:  # log once when it starts failing, not every cycle
        log.warning("source failing", source=name, kind=result.error_kind, error=result.error)
    if result.error_kind == "auth":
        store.runs.pause_source(name, reason=f"credentials rejected: {result.error}", now=now)
        if fingerprint:
            store.runs.set_credentials_fingerprint(name, fingerprint, now=now)


def _overall_status(report: CycleReport, ctx: CycleContext) -> str:
    if not report.sources:
        return "ok"
    failed = [n for n, r in report.sources.items() if not r.ok]
    if ctx.crm in failed and len(failed) == len(report.sources):
        return "failed"
    applied_failures = report.applied is not None and not report.applied.ok
    return "partial" if failed or applied_failures else "ok"


# ------------------------------------------------------------------------------------------ score


def score_accounts(ctx: CycleContext, facts, as_of: datetime, run_id: str | None,
                   rows: list[ScoreRow] | None = None) -> list[ScoredAccount]:
    """Score with stored history (backfilled for accounts seen for the first time); saves nothing.
    `rows`, when given, receives the rows that record them (backfilled ones first), for the caller to save later.
    Former customers (their last renewal lost) are not scored: their facts are there for `healthsync backtest`."""
    facts = current_customers(facts, as_of)
    stored = ctx.store.scores.histories(since=as_of - timedelta(days=HISTORY_DAYS),
                                       until=as_of - timedelta(seconds=1))
    history: dict[str, list[PastResult]] = {aid: [_past(row) for row in past] for aid, past in stored.items()}
    missing = [f for f in facts if f.account.id not in history]
    new_rows = _backfill(ctx, missing, history, as_of, run_id) if missing else []
    scored = score_portfolio(facts, ctx.model, ctx.playbook, history, as_of)
    new_rows += [_score_row(s, ctx.model_name, run_id) for s in scored]
    if rows is not None:
        rows.extend(new_rows)
    return scored


def _backfill(ctx: CycleContext, facts, history: dict[str, list[PastResult]], as_of: datetime,
              run_id: str | None) -> list[ScoreRow]:
    """First sight of an account: score its dated facts as of earlier days, so trends and 'newly' rules work
    from the first cycle instead of a month later. Backfilled rows are marked as such in the store."""
    rows = []
    for days in BACKFILL_DAYS:
        at = as_of - timedelta(days=days)
        for scored in score_portfolio(facts, ctx.model, None, history, at):
            history.setdefault(scored.result.account_id, []).append(scored.result.to_past())
            rows.append(_score_row(scored, ctx.model_name, run_id, backfilled=True))
    return rows


def _past(row: ScoreRow) -> PastResult:
    """A stored result as history; its raw values too, so an explanation can say what moved from what."""
    stored = row.result if isinstance(row.result, dict) else {}
    measures, raw = stored.get("measures") or {}, stored.get("raw") or {}
    return PastResult(as_of=row.as_of, score=row.score, band=row.band,
                      measures={k: v for k, v in measures.items() if isinstance(v, int | float)},
                      raw=dict(raw) if isinstance(raw, dict) else {})


def _score_row(scored: ScoredAccount, model_name: str, run_id: str | None, backfilled: bool = False) -> ScoreRow:
    r = scored.result
    return ScoreRow(
        account_id=r.account_id, as_of=r.as_of, score=r.score, band=r.band,
        components={c.name: c.score for c in r.components},
        result={
            "measures": {m.name: m.score for m in r.measures if m.score is not None},
            "raw": {m.name: m.raw for m in r.measures},
            "trend_7d": r.trend_7d, "trend_30d": r.trend_30d, "renewal_stage": r.renewal_stage,
            "days_to_renewal": r.days_to_renewal, "segment": r.segment,
            "insufficient_data": r.insufficient_data, "coverage": r.coverage,
            "active_signals": list(r.active_signals), "explanation": r.explanation,
            "rules": [i.rule_id for i in scored.intents], "backfilled": backfilled,
        },
        model=model_name, run_id=run_id,
    )


# ------------------------------------------------------------------------------------------ plan


def plan_writeback(ctx: CycleContext, scored: list[ScoredAccount], gathered, as_of: datetime) -> Plan:
    store = ctx.store
    results = [s.result for s in scored]
    intents = [i for s in scored for i in s.intents]
    account_ids = [r.account_id for r in results]
    keys = sorted({i.dedupe_key for i in intents})
    pairs = sorted({(i.account_id, i.rule_id) for i in intents})
    inputs = PlanInputs(
        crm=ctx.crm,
        as_of=as_of,
        results=results,
        intents=intents,
        last_written=store.ledger.last_written(ctx.crm, account_ids),
        crm_current=gathered.crm_current,
        task_entries=store.ledger.task_entries(ctx.crm, keys),
        rule_states=store.ledger.rule_states(ctx.crm, pairs),
        users_by_email=gathered.users_by_email,
    )
    return build_plan(inputs, ctx.policy)


# ------------------------------------------------------------------------------------------ daemon adapter


def build_cycle(settings, store: Store):
    """The daemon's CycleFn: builds the context once, then each call runs one cycle as of `as_of`."""
    from healthsync.sync.runtime import build_context  # runtime imports this module for CycleContext

    ctx = build_context(settings, store)

    def cycle(as_of: datetime, full: bool, stop: threading.Event) -> CycleReport:
        return run_cycle(ctx, as_of=as_of, full=full, stop=stop).without_accounts()

    return cycle
