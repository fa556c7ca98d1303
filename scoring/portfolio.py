"""The one entry point the sync layer calls: facts for a whole portfolio -> health results + intents,
as of one instant. Also backfills history by scoring the same facts as of earlier instants."""

from __future__ import annotations

import gc
from collections.abc import Iterable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from healthsync.scoring.base import AccountFacts, HealthResult, PastResult, ScoredAccount, Signals
from healthsync.scoring.explain import explain
from healthsync.scoring.history import HistoryClock, ScoreHistory
from healthsync.scoring.model import HealthModel, Populations
from healthsync.scoring.playbook import Playbook, RuleContext
from healthsync.scoring.renewal import renewal_stage, segment_for
from healthsync.scoring.signals import SignalCalculator

_NO_HISTORY: tuple[PastResult, ...] = ()


def _require_aware(as_of: datetime) -> None:
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware (UTC)")


def score_portfolio(
    facts: Sequence[AccountFacts],
    model: HealthModel,
    playbook: Playbook | None,
    history: Mapping[str, Sequence[PastResult]],
    as_of: datetime,
) -> list[ScoredAccount]:
    """Score every account as of `as_of` and run the playbook (if any) on each result.

    Results come back in the order of `facts`. Nothing but percentile measures looks across accounts,
    so without them each result depends only on its own facts and history. The three steps below are
    public so a caller can run them on parts of a portfolio (e.g. in several processes) and get exactly
    these results: signals per part, populations over every part, then scoring per part."""
    _require_aware(as_of)
    with collector_paused():
        signals, segments = portfolio_signals(facts, model, as_of)
        populations = portfolio_populations(model, signals, segments)
        scoring = PortfolioScoring(model, playbook, populations, as_of)
        return scoring.score(facts, signals, segments, history)


@contextmanager
def collector_paused():
    """Scoring allocates millions of short-lived acyclic objects next to a large heap of facts; the cyclic
    collector would rescan that heap again and again for nothing, so it is paused for the run."""
    collector_was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collector_was_on:
            gc.enable()


def portfolio_signals(facts: Sequence[AccountFacts], model: HealthModel,
                      as_of: datetime) -> tuple[list[Signals], list[str | None]]:
    """Each account's signals and segment, in the order of `facts`."""
    _require_aware(as_of)
    compute = SignalCalculator(model.signal_config, as_of).compute
    signals = [compute(f) for f in facts]
    rules = model.segments
    segments = [segment_for(s.values["acv"], rules) for s in signals]
    return signals, segments


def percentile_columns(model: HealthModel, signals: Sequence[Signals]) -> dict[str, list]:
    """The raw values percentile measures rank, per signal name, in account order (empty without any)."""
    names = sorted({m.signal for m in model.percentile_measures()})
    return {name: [s.values.get(name) for s in signals] for name in names}


def portfolio_populations(model: HealthModel, signals: Sequence[Signals],
                          segments: Sequence[str | None]) -> Populations:
    if not model.percentile_measures():
        return Populations()
    return Populations.from_columns(percentile_columns(model, signals), segments)


@dataclass(frozen=True, eq=False)  # compared by identity: it holds the model and the populations
class PortfolioScoring:
    """What scoring any one account takes from the run around it: the model, the playbook (None: no rules),
    the percentile populations (spanning the whole portfolio when the model has percentile measures) and
    the instant. Built once per run; `score` may then be called on each part of the portfolio."""

    model: HealthModel
    playbook: Playbook | None
    populations: Populations
    as_of: datetime
    clock: HistoryClock = field(init=False, repr=False)

    def __post_init__(self) -> None:
        _require_aware(self.as_of)
        object.__setattr__(self, "clock", HistoryClock(self.as_of))

    def score(
        self,
        facts: Sequence[AccountFacts],
        signals: Sequence[Signals],
        segments: Sequence[str | None],
        history: Mapping[str, Sequence[PastResult]],
    ) -> list[ScoredAccount]:
        """Results and intents for accounts whose signals (and segments) are known, in the order of `facts`."""
        no_history = _NO_HISTORY
        past_of = history.get
        return [
            _score_one(self, f, s, segment, past_of(f.account.id, no_history))
            for f, s, segment in zip(facts, signals, segments, strict=True)
        ]


def _score_one(
    scoring: PortfolioScoring,
    facts: AccountFacts,
    signals: Signals,
    segment: str | None,
    past: Sequence[PastResult],
) -> ScoredAccount:
    model, playbook, populations, clock = scoring.model, scoring.playbook, scoring.populations, scoring.clock
    as_of = clock.as_of
    values = signals.values
    variant = model.variant_for(segment)
    core = variant.score(values, populations, segment)
    score_history = ScoreHistory(past, clock)
    facts_of_history = score_history.summarise(core.score, core.band)
    days_to_renewal = values["days_to_renewal"]
    stage = renewal_stage(days_to_renewal, values["renewal_signed"], model.windows_for(segment))
    result = HealthResult(
        account_id=facts.account.id,
        as_of=as_of,
        score=core.score,
        band=core.band,
        band_colour=core.colour,
        component_rows=core.component_rows,
        measure_rows=core.measure_rows,
        trend_7d=facts_of_history.delta_7d,
        trend_30d=facts_of_history.delta_30d,
        renewal_stage=stage,
        days_to_renewal=None if days_to_renewal is None else int(days_to_renewal),
        segment=segment,
        insufficient_data=core.insufficient_data,
        coverage=core.coverage,
        active_signals=model.active_flags(signals),
        explanation=explain(core, facts_of_history, score_history.previous),
        history=facts_of_history,
    )
    if playbook is None:
        return ScoredAccount(result)
    context = RuleContext(
        values,
        signals.evidence,
        facts_of_history,
        core.score,
        core.band,
        variant.band_ranks,
        {
            "score": core.score,
            "band": core.band,
            "is_healthy": core.is_healthy,
            "previous_score": facts_of_history.previous_score,
            "previous_band": facts_of_history.previous_band,
            "score_delta_7d": facts_of_history.delta_7d,
            "score_delta_30d": facts_of_history.delta_30d,
            "score_decline_weeks": facts_of_history.decline_weeks,
            "renewal_stage": stage,
            "segment": segment,
            "insufficient_data": core.insufficient_data,
            "coverage_pct": round(core.coverage * 100.0, 1),
        },
    )
    return ScoredAccount(result, tuple(playbook.evaluate(context, facts.account, as_of)))


def backfill_history(
    facts: Sequence[AccountFacts],
    model: HealthModel,
    as_of: datetime,
    days_back: Iterable[int] = (30, 7),
) -> dict[str, list[PastResult]]:
    """Past results for a first run: the same facts scored as of `as_of - N days` for each N (oldest
    first, each seeing the ones before it), so trend and band-change rules work from day one."""
    _require_aware(as_of)
    history: dict[str, list[PastResult]] = {f.account.id: [] for f in facts}
    for days in sorted(set(days_back), reverse=True):
        if days <= 0:
            raise ValueError("days_back must be positive numbers of days")
        moment = as_of - timedelta(days=days)
        for scored in score_portfolio(facts, model, None, history, moment):
            history[scored.result.account_id].append(scored.result.to_past())
    return history


def results_only(scored: Iterable[ScoredAccount]) -> list[HealthResult]:
    return [s.result for s in scored]
