"""Replay health models over past renewals: score each account as it stood `horizon` days before each renewal
(its facts seen through `replay`, never anything later) and measure how well low scores warned of churn.

Percentile measures rank an account among all the replayed renewals (the renewal cohort), not among the
whole book of that day. Lead time: how long before a lost renewal the account first stood in the model's
bottom band, looking back week by week over `lead_weeks`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from statistics import median

from healthsync.insights.metrics import (
    Interval,
    Ranked,
    average_precision,
    bootstrap,
    lift_top_decile,
    precision_recall,
    roc_auc,
)
from healthsync.insights.outcomes import OUTCOMES, ClosedRenewal, RenewalOutcome, outcomes_between
from healthsync.insights.replay import Replay, end_of_day
from healthsync.scoring.base import AccountFacts, Signals
from healthsync.scoring.model import HealthModel, Populations
from healthsync.scoring.portfolio import portfolio_populations
from healthsync.scoring.renewal import segment_for
from healthsync.scoring.signals import SignalCalculator

DEFAULT_HORIZON_DAYS = 90
DEFAULT_MIN_CHURNED = 30
USAGE_WARMUP_DAYS = 60  # an instant needs this much usage history behind it (30-day windows and their trend)


@dataclass(frozen=True)
class History:
    """What the store hands over: every account's facts, the closed renewals, and the first day of the usage
    history (None when no usage source is configured)."""

    facts: Sequence[AccountFacts]
    renewals: Sequence[ClosedRenewal]
    usage_start: date | None = None


@dataclass(frozen=True)
class Options:
    horizon_days: int = DEFAULT_HORIZON_DAYS
    first: date | None = None  # renewals closed from this day (None: the oldest)
    last: date | None = None  # to this day, inclusive (None: the newest)
    min_churned: int = DEFAULT_MIN_CHURNED  # fewer churned renewals than this: the estimate is unreliable
    bootstrap_rounds: int = 1000
    lead_weeks: int = 26


@dataclass(frozen=True)
class Case:
    """One renewal outcome and the instant its account is replayed at."""

    outcome: RenewalOutcome
    as_of: datetime
    replay: Replay

    def facts(self, as_of: datetime | None = None) -> AccountFacts:
        return self.replay.as_of(as_of or self.as_of, self.outcome.anchor)


@dataclass(frozen=True)
class Cases:
    cases: tuple[Case, ...]
    skipped: dict[str, int] = field(default_factory=dict)  # why renewals of the window were not replayed


def replay_cases(history: History, options: Options) -> Cases:
    """Every renewal of the window whose account is known and whose instant has usage history behind it."""
    replays = {f.account.id: Replay(f) for f in history.facts}
    skipped: Counter[str] = Counter()
    cases = []
    earliest = history.usage_start + timedelta(days=USAGE_WARMUP_DAYS) if history.usage_start else None
    for outcome in outcomes_between(history.renewals, options.first, options.last):
        day = outcome.anchor - timedelta(days=options.horizon_days)
        replay = replays.get(outcome.account_id)
        if replay is None:
            skipped["account not in the store"] += 1
        elif earliest is not None and day < earliest:
            skipped["before the usage history"] += 1
        else:
            cases.append(Case(outcome, end_of_day(day), replay))
    return Cases(tuple(cases), dict(skipped))

# ----------------------------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class Scored:
    """One model's verdict on each case, in case order."""

    model: str
    scores: tuple[int, ...]
    bands: tuple[str, ...]
    red: tuple[bool, ...]  # in the model's bottom band
    at_risk: tuple[bool, ...]  # in any band the model does not call healthy


class ModelScorer:
    """Scores signals with one model, percentile measures ranked within `population` (the replayed cohort)."""

    def __init__(self, name: str, model: HealthModel, population: Sequence[Signals]):
        self.name, self.model = name, model
        segments = [segment_for(s.values["acv"], model.segments) for s in population]
        self.populations: Populations = portfolio_populations(model, population, segments)

    def verdict(self, signals: Signals) -> tuple[int, str, bool, bool]:
        segment = segment_for(signals.values["acv"], self.model.segments)
        variant = self.model.variant_for(segment)
        core = variant.score(signals.values, self.populations, segment)
        return core.score, core.band, core.band == variant.bands[-1].name, not core.is_healthy

    def score(self, signals: Sequence[Signals]) -> Scored:
        verdicts = [self.verdict(s) for s in signals]
        return Scored(self.name, *(tuple(column) for column in zip(*verdicts, strict=True))) if verdicts else \
            Scored(self.name, (), (), (), ())


class SignalSet:
    """Signals computed once for every model that computes them alike (the same signal settings): at each
    case's instant, and week by week before each lost renewal for the lead time."""

    def __init__(self, model: HealthModel, cases: Sequence[Case], earliest: date | None, lead_weeks: int):
        self.config = model.signal_config
        self.earliest, self.lead_weeks = earliest, lead_weeks
        self.at_cases = [self.compute(case, case.as_of) for case in cases]
        self._lead: dict[int, list[tuple[int, Signals]]] = {}

    def compute(self, case: Case, instant: datetime) -> Signals:
        return SignalCalculator(self.config, instant).compute(case.facts(instant))

    def lead_points(self, index: int, case: Case) -> list[tuple[int, Signals]]:
        """(days before the renewal, signals) weekly over the lookback, oldest first, inside the usage history."""
        if index not in self._lead:
            points = []
            for week in range(self.lead_weeks, -1, -1):
                day = case.outcome.anchor - timedelta(days=7 * week)
                if self.earliest is None or day >= self.earliest:
                    points.append((7 * week, self.compute(case, end_of_day(day))))
            self._lead[index] = points
        return self._lead[index]


def scorers(models: Sequence[tuple[str, HealthModel]], cases: Sequence[Case], earliest: date | None = None,
            lead_weeks: int = 26) -> list[tuple[ModelScorer, SignalSet]]:
    """A scorer per model with the cases' signals; models that compute signals alike share one SignalSet."""
    sets: list[SignalSet] = []
    out = []
    for name, model in models:
        found = next((s for s in sets if s.config == model.signal_config), None)
        if found is None:
            found = SignalSet(model, cases, earliest, lead_weeks)
            sets.append(found)
        out.append((ModelScorer(name, model, found.at_cases), found))
    return out


# ----------------------------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class BandRow:
    band: str
    min: float
    accounts: int
    churned: int
    churn_rate: float | None


@dataclass(frozen=True)
class ModelReport:
    model: str
    accounts: int  # renewal outcomes replayed (one account renewing twice counts twice)
    churned: int
    auc: float | None
    auc_ci: Interval | None
    pr_auc: float | None
    pr_auc_ci: Interval | None
    red_band: str
    precision_at_red: float | None
    recall_at_red: float | None
    precision_at_risk: float | None  # every band the model does not call healthy
    recall_at_risk: float | None
    lift_top_decile: float | None
    by_band: tuple[BandRow, ...]
    median_lead_days: float | None  # over churned renewals that reached the bottom band within the lookback
    churned_reaching_red: int
    reliable: bool


@dataclass(frozen=True)
class Backtest:
    options: Options
    first: date | None  # the oldest and newest renewal replayed
    last: date | None
    outcomes: dict[str, int]
    loss_reasons: dict[str, int]
    skipped: dict[str, int]
    models: tuple[ModelReport, ...]
    warnings: tuple[str, ...] = ()


def run_backtest(history: History, models: Sequence[tuple[str, HealthModel]], options: Options) -> Backtest:
    found = replay_cases(history, options)
    cases = found.cases
    earliest = history.usage_start + timedelta(days=USAGE_WARMUP_DAYS) if history.usage_start else None
    reports = []
    for scorer, signal_set in scorers(models, cases, earliest, options.lead_weeks):
        scored = scorer.score(signal_set.at_cases)
        reports.append(_report(scorer, scored, signal_set, cases, options))
    return Backtest(
        options=options,
        first=cases[0].outcome.anchor if cases else None,
        last=cases[-1].outcome.anchor if cases else None,
        outcomes={kind: sum(1 for c in cases if c.outcome.kind == kind) for kind in OUTCOMES},
        loss_reasons=dict(Counter(c.outcome.loss_reason or "(none given)" for c in cases if c.outcome.churned)),
        skipped=found.skipped,
        models=tuple(reports),
        warnings=_warnings(cases, options),
    )


def _warnings(cases: Sequence[Case], options: Options) -> tuple[str, ...]:
    churned = sum(1 for c in cases if c.outcome.churned)
    if not cases:
        return ("no renewal outcome to replay in this window: pull the CRM's closed renewals (and enough usage "
                "history, mixpanel.backfill_days) first",)
    if churned < options.min_churned:
        return (f"only {churned} churned renewal{'s' if churned != 1 else ''} (fewer than {options.min_churned}): "
                "the estimate is unreliable; read the 95 % intervals",)
    return ()


def _report(scorer: ModelScorer, scored: Scored, signal_set: SignalSet, cases: Sequence[Case],
            options: Options) -> ModelReport:
    churned = [c.outcome.churned for c in cases]
    ranked = Ranked(scored.scores, churned)
    counts = ranked.counts()
    auc_ci, pr_ci = bootstrap(ranked, (roc_auc, average_precision), options.bootstrap_rounds,
                              f"backtest:{scorer.name}:{options.horizon_days}")
    precision_red, recall_red = precision_recall(scored.red, churned)
    precision_risk, recall_risk = precision_recall(scored.at_risk, churned)
    leads = lead_days(scorer, signal_set, cases)
    n_churned = sum(churned)
    return ModelReport(
        model=scorer.name, accounts=len(cases), churned=n_churned, auc=roc_auc(counts), auc_ci=auc_ci,
        pr_auc=average_precision(counts), pr_auc_ci=pr_ci, red_band=scorer.model.base.bands[-1].name,
        precision_at_red=precision_red, recall_at_red=recall_red, precision_at_risk=precision_risk,
        recall_at_risk=recall_risk, lift_top_decile=lift_top_decile(counts),
        by_band=_by_band(scorer.model, scored, churned), median_lead_days=median(leads) if leads else None,
        churned_reaching_red=len(leads), reliable=n_churned >= options.min_churned,
    )


def _by_band(model: HealthModel, scored: Scored, churned: list[bool]) -> tuple[BandRow, ...]:
    mins = {b.name: b.min for b in model.base.bands}
    rows = []
    for name in model.band_names:
        members = [c for band, c in zip(scored.bands, churned, strict=True) if band == name]
        n, lost = len(members), sum(members)
        rows.append(BandRow(name, mins.get(name, 0.0), n, lost, lost / n if n else None))
    return tuple(rows)


def lead_days(scorer: ModelScorer, signal_set: SignalSet, cases: Sequence[Case]) -> list[int]:
    """Days before each lost renewal at which its account first stood in the bottom band (looking back week
    by week from the renewal); churned renewals never seen there are left out."""
    leads = []
    for index, case in enumerate(cases):
        if not case.outcome.churned:
            continue
        first_red = next((days for days, signals in signal_set.lead_points(index, case) if scorer.verdict(signals)[2]),
                         None)
        if first_red is not None:
            leads.append(first_red)
    return leads
