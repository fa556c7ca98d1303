"""`healthsync fit`: a regularised logistic model of churn on the signals `horizon` days before each renewal,
trained on the older renewals and judged on the newer ones, written as a health model of our own
(`insights.scorecard`) with bands and a score -> renewal probability calibration learnt on the training part.

Each signal is cut at a few of its training quantiles; each cut is a 0/1 feature ("at least this much", a
missing value taken at the training median); an L2-penalised logistic regression (scikit-learn, the penalty
chosen by time-ordered cross-validation on the training renewals) weighs them, and the `max_measures` signals
with the largest effect are kept and refitted. (L2 over L1: on the sandbox's histories its time-ordered
cross-validated AUC was higher, with cuts of one signal strongly correlated.) Needs the `insights` extra
(scikit-learn, numpy); nothing else in healthsync does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from statistics import median, quantiles
from typing import Any

from healthsync.errors import ConfigError, HealthsyncError
from healthsync.insights.backtest import Case, History, Options, replay_cases, scorers
from healthsync.insights.metrics import Interval, Ranked, bootstrap, roc_auc
from healthsync.insights.scorecard import Cut, Scorecard, effects
from healthsync.scoring.base import SignalValue
from healthsync.scoring.calibration import Calibration
from healthsync.scoring.model import Band, HealthModel
from healthsync.scoring.signals import BOOLEAN_SIGNALS, SIGNALS

INSIGHTS_MISSING = "healthsync fit needs scikit-learn and numpy, the `insights` extra: pip install 'healthsync[insights]'"
# Constant by construction when replayed (days to renewal is the horizon; the signed flag and payment fields are
# withheld), about size rather than health (ACV, expansion amounts), or only for onboarding accounts.
EXCLUDED = frozenset({"days_to_renewal", "renewal_signed", "late_payments", "payment_failed", "acv",
                      "expansion_amount_12m", "users_since_start", "has_logged_in", "has_core_action",
                      "has_value_event"})
CANDIDATES = tuple(name for name in SIGNALS if name not in EXCLUDED)
_QUANTILES = (1, 4, 9, 14, 17)  # of 19 cut points at 5 % steps: the 10th, 25th, 50th, 75th and 90th percentiles
_PENALTIES = tuple(10 ** (k / 4) for k in range(-12, 5))  # C from 0.001 to 10
MIN_PRESENT = 0.5  # a signal known for fewer of the training renewals than this is left out


class NotEnoughHistory(HealthsyncError):
    """Too few churned renewals to fit on, or to judge the fit with."""


@dataclass(frozen=True)
class FitOptions:
    horizon_days: int = 90
    holdout_share: float = 0.3  # the newest renewals holding this share of the churned: judged, never trained on
    min_churned: int = 30  # churned renewals in the window needed to fit at all (the holdout needs its share)
    max_measures: int = 12
    folds: int = 4
    bootstrap_rounds: int = 1000


@dataclass(frozen=True)
class Split:
    renewals: int
    churned: int
    first: date | None
    last: date | None


@dataclass(frozen=True)
class Judged:
    model: str
    holdout_auc: float | None
    holdout_auc_ci: Interval | None


@dataclass(frozen=True)
class Fit:
    scorecard: Scorecard
    model: HealthModel
    bands: tuple[Band, ...]
    calibration: Calibration
    calibration_line: tuple[float, float]  # churn log-odds = intercept + slope x score (training renewals)
    penalty_c: float
    train: Split
    holdout: Split
    fitted: Judged
    rivals: tuple[Judged, ...]

    def document(self, name: str, extra: Mapping[str, object]) -> dict:
        return self.scorecard.document(name, self.bands, extra)


def fit_model(history: History, base: tuple[str, HealthModel], rivals: Sequence[tuple[str, HealthModel]],
              options: FitOptions) -> Fit:
    """Fit on the older renewals of `history`, judge the fit and each rival on the newer; `base` gives the signal
    settings (the model the config scores with)."""
    libs = _libraries()
    cases = list(replay_cases(history, Options(horizon_days=options.horizon_days)).cases)
    split = _split(cases, options)
    (_, signal_set), = scorers([base], cases)
    train = [s.values for s in signal_set.at_cases[:split]]
    churned = [c.outcome.churned for c in cases]
    cuts = candidate_cuts(train)
    card, penalty = _scorecard(libs, train, churned[:split], cuts, options)
    provisional = card.model("fitted", (Band("all", 0.0, ""),), base[1].signal_config)
    train_scores = [_score(provisional, s) for s in signal_set.at_cases[:split]]
    line = _calibration_line(libs, train_scores, churned[:split])
    bands = _bands(train_scores, churned[:split], line)
    calibration = Calibration(options.horizon_days, calibration_table(line))
    model = card.model("fitted", bands, base[1].signal_config, calibration)
    judged = _judge([("fitted", model), *rivals], cases, split, options)
    return Fit(card, model, bands, calibration, line, penalty, _summary(cases[:split]), _summary(cases[split:]),
               judged[0], tuple(judged[1:]))


@dataclass(frozen=True)
class _Libraries:
    numpy: Any
    sklearn: Any


def _libraries() -> _Libraries:
    """numpy and scikit-learn, imported only here: a ConfigError naming the extra when they are absent."""
    try:
        import numpy
        import sklearn.linear_model
        import sklearn.model_selection
    except ModuleNotFoundError:
        raise ConfigError(INSIGHTS_MISSING) from None
    return _Libraries(numpy, sklearn)


def _split(cases: Sequence[Case], options: FitOptions) -> int:
    """Where the holdout starts: at the close date from which the newest `holdout_share` of the churned renewals
    fall (every renewal from then on is held out), so its AUC rests on enough churn; one date is never split."""
    churned_at = [i for i, c in enumerate(cases) if c.outcome.churned]
    if len(churned_at) < options.min_churned:
        raise NotEnoughHistory(
            f"fit needs at least {options.min_churned} churned renewals to learn from; the store has "
            f"{len(churned_at)} among {len(cases)} replayable renewals. Pull a longer history (the CRM's closed "
            "renewals and mixpanel.backfill_days), or lower --min-churned knowing the model will be unreliable")
    held = max(1, round(len(churned_at) * options.holdout_share))
    split = churned_at[len(churned_at) - held]
    while 0 < split and cases[split].outcome.anchor == cases[split - 1].outcome.anchor:
        split -= 1
    needed = max(3, round(options.min_churned * options.holdout_share))
    if held < needed:
        raise NotEnoughHistory(
            f"the holdout would hold {held} churned renewals (the newest {options.holdout_share:.0%} of "
            f"{len(churned_at)}): too few to judge the fit (need {needed}); pull a longer history or raise --holdout")
    return split


def _summary(cases: Sequence[Case]) -> Split:
    return Split(len(cases), sum(c.outcome.churned for c in cases),
                 cases[0].outcome.anchor if cases else None, cases[-1].outcome.anchor if cases else None)

# ----------------------------------------------------------------------------------------------- features


def candidate_cuts(rows: Sequence[Mapping[str, SignalValue]]) -> list[Cut]:
    """Per signal known often enough: true (booleans), else at its training quantiles, rounded to 2 digits."""
    cuts = []
    for name in CANDIDATES:
        values = [r[name] for r in rows if r.get(name) is not None]
        if len(values) < MIN_PRESENT * len(rows) or len(set(values)) < 2:
            continue
        if name in BOOLEAN_SIGNALS:
            cuts.append(Cut(name, True))
            continue
        points = quantiles([float(v) for v in values], n=20)
        low, high = min(values), max(values)
        at = sorted({_two_digits(points[i]) for i in _QUANTILES})
        cuts.extend(Cut(name, a) for a in at if low < a <= high)
    return cuts


def _two_digits(value: float) -> float:
    if value == 0:
        return 0.0
    return round(value, 1 - math.floor(math.log10(abs(value))))


def design(numpy, rows: Sequence[Mapping[str, SignalValue]], cuts: Sequence[Cut],
           fill: Mapping[str, SignalValue]):
    """The 0/1 feature matrix; a missing value counts as `fill[signal]` (the training median)."""
    matrix = numpy.zeros((len(rows), len(cuts)))
    for i, row in enumerate(rows):
        for j, cut in enumerate(cuts):
            value = row.get(cut.signal)
            matrix[i, j] = cut.hit(fill.get(cut.signal) if value is None else value)
    return matrix


def fill_values(rows: Sequence[Mapping[str, SignalValue]], cuts: Sequence[Cut]) -> dict[str, SignalValue]:
    out: dict[str, SignalValue] = {}
    for signal in dict.fromkeys(c.signal for c in cuts):
        values = [r[signal] for r in rows if r.get(signal) is not None]
        if signal in BOOLEAN_SIGNALS:
            out[signal] = sum(map(bool, values)) * 2 >= len(values)
        else:
            out[signal] = median(float(v) for v in values)
    return out

# ----------------------------------------------------------------------------------------------- the regression


def _scorecard(libs: _Libraries, rows, churned, cuts: list[Cut], options: FitOptions) -> tuple[Scorecard, float]:
    """The penalty by cross-validation over time, the fit, and at most `max_measures` signals (refit on them)."""
    numpy, sklearn = libs.numpy, libs.sklearn
    fill = fill_values(rows, cuts)
    y = numpy.array(churned, dtype=int)
    search = sklearn.model_selection.GridSearchCV(
        _regression(sklearn, 1.0), {"C": list(_PENALTIES)}, scoring="roc_auc",
        cv=sklearn.model_selection.TimeSeriesSplit(n_splits=options.folds))
    search.fit(design(numpy, rows, cuts, fill), y)
    penalty = float(search.best_params_["C"])
    found = effects(cuts, search.best_estimator_.coef_[0])
    if len(found) > options.max_measures:
        kept = {e.signal for e in found[:options.max_measures]}
        cuts = [c for c in cuts if c.signal in kept]
        refit = _regression(sklearn, penalty).fit(design(numpy, rows, cuts, fill), y)
        found = effects(cuts, refit.coef_[0])
    if not found:
        raise NotEnoughHistory("no signal separated churned from renewed renewals in the training part: nothing to fit")
    return Scorecard(tuple(found)), penalty


def _regression(sklearn, penalty: float):
    # L2 (l1_ratio=0) with liblinear; a large intercept_scaling leaves the intercept all but unpenalised
    return sklearn.linear_model.LogisticRegression(C=penalty, l1_ratio=0.0, solver="liblinear",
                                                   intercept_scaling=100.0, max_iter=10_000)


def _score(model: HealthModel, signals) -> int:
    return model.base.score(signals.values, _NO_POPULATION, None).score


class _NoPopulation:
    def get(self, measure, segment):  # the fitted model has no percentile measure
        return []


_NO_POPULATION = _NoPopulation()

# ----------------------------------------------------------------------------------------------- bands, calibration


def _calibration_line(libs: _Libraries, scores: Sequence[int], churned: Sequence[bool]) -> tuple[float, float]:
    """Churn log-odds as a line in the score, unpenalised, over the training renewals."""
    numpy = libs.numpy
    line = libs.sklearn.linear_model.LogisticRegression(C=math.inf).fit(
        numpy.array(scores, dtype=float).reshape(-1, 1), numpy.array(churned, dtype=int))
    return float(line.intercept_[0]), float(line.coef_[0][0])


def calibration_table(line: tuple[float, float], step: int = 5) -> tuple[tuple[float, float], ...]:
    """(score, renewal probability) every `step` points from 0 to 100."""
    intercept, slope = line
    return tuple((float(s), round(1.0 - _sigmoid(intercept + slope * s), 4)) for s in range(0, 101, step))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _bands(scores: Sequence[int], churned: Sequence[bool], line: tuple[float, float]) -> tuple[Band, ...]:
    """healthy: churn less likely than the book's average; critical: the cut that best separates the churned
    (highest F1 on the training renewals); at-risk: in between."""
    intercept, slope = line
    base = sum(churned) / len(churned)
    average = (math.log(base / (1.0 - base)) - intercept) / slope if slope < 0 else 70.0
    healthy = int(min(max(round(average), 10), 95))
    critical = _best_f1_cut(scores, churned)
    if critical >= healthy:
        critical = max(1, healthy - 10)
    return (Band("healthy", float(healthy), "green"), Band("at-risk", float(critical), "amber"),
            Band("critical", 0.0, "red"))


def _best_f1_cut(scores: Sequence[int], churned: Sequence[bool]) -> int:
    best, best_f1 = 1, -1.0
    total = sum(churned)
    for cut in range(1, 101):
        flagged = [c for s, c in zip(scores, churned, strict=True) if s < cut]
        hits = sum(flagged)
        f1 = 2.0 * hits / (len(flagged) + total) if flagged else 0.0
        if f1 > best_f1 + 1e-12:
            best, best_f1 = cut, f1
    return best

# ----------------------------------------------------------------------------------------------- judging


def _judge(models: Sequence[tuple[str, HealthModel]], cases: Sequence[Case], split: int,
           options: FitOptions) -> list[Judged]:
    """Each model's AUC over the held-out renewals (percentiles ranked within every replayed renewal)."""
    churned = [c.outcome.churned for c in cases[split:]]
    out = []
    for scorer, signal_set in scorers(models, cases):
        ranked = Ranked(scorer.score(signal_set.at_cases[split:]).scores, churned)
        (interval,) = bootstrap(ranked, (roc_auc,), options.bootstrap_rounds, f"fit:{scorer.name}")
        out.append(Judged(scorer.name, roc_auc(ranked.counts()), interval))
    return out
