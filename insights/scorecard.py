"""A fitted logistic model over "signal at least this much" features, written as a health model of our own:
one thresholds measure per signal (its bins scored 0..100 by their fitted effect), weighted by the range of
that effect and grouped into components by the signal's dimension — so the health score is a linear rescale
of the fitted log-odds and ranks renewals exactly as the regression does (up to rounding)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate

from healthsync.scoring.base import SignalValue
from healthsync.scoring.calibration import Calibration
from healthsync.scoring.measures import Step, ThresholdMeasure
from healthsync.scoring.model import Band, Component, HealthModel, MissingData, ModelVariant
from healthsync.scoring.signals import SIGNALS, SignalConfig

MISSING = MissingData(policy="reweight", default=50.0, min_coverage=0.5)
MIN_SHARE = 0.005  # a signal moving less than 0.5 % of the whole score is left out


@dataclass(frozen=True)
class Cut:
    """One 0/1 feature: a numeric signal at or above `at`, or a boolean signal true (`at` is True)."""

    signal: str
    at: float | bool

    def hit(self, value: SignalValue) -> bool:
        if isinstance(self.at, bool):
            return value is True
        return value is not None and value >= self.at


@dataclass(frozen=True)
class SignalEffect:
    """How one signal moves the health score: `bin_scores[0]` below every cut, `bin_scores[k]` at or above
    `cuts[k - 1]` (ascending); `weight` is the effect's range in log-odds."""

    signal: str
    cuts: tuple[float | bool, ...]
    bin_scores: tuple[int, ...]
    weight: float

    @property
    def dimension(self) -> str:
        return SIGNALS[self.signal][0]

    def steps(self) -> list[Step]:
        """Thresholds steps, highest first; a bin scoring like the one below it needs no step of its own."""
        if self.cuts == (True,):
            return [Step(self.bin_scores[1], equals=True)]
        return [Step(self.bin_scores[k], min=float(self.cuts[k - 1])) for k in range(len(self.cuts), 0, -1)
                if self.bin_scores[k] != self.bin_scores[k - 1]]

    def measure(self, weight: float) -> ThresholdMeasure:
        return ThresholdMeasure(self.signal, self.signal, weight, tuple(self.steps()), float(self.bin_scores[0]))


def effects(cuts: Sequence[Cut], churn_coefficients: Sequence[float]) -> list[SignalEffect]:
    """Per signal, from the fitted churn coefficients of its cuts: the health effect of each bin (a cut that
    raises churn lowers health), scored 0..100 over the signal's own range; signals with no effect dropped."""
    by_signal: dict[str, list[tuple[float | bool, float]]] = {}
    for cut, coefficient in zip(cuts, churn_coefficients, strict=True):
        by_signal.setdefault(cut.signal, []).append((cut.at, -float(coefficient)))
    out = []
    for signal, pairs in by_signal.items():
        pairs.sort(key=lambda p: float(p[0]))
        values = [0.0, *accumulate(effect for _, effect in pairs)]
        low, high = min(values), max(values)
        if high - low < 1e-9:
            continue
        scores = tuple(round(100.0 * (v - low) / (high - low)) for v in values)
        out.append(SignalEffect(signal, tuple(at for at, _ in pairs), scores, high - low))
    total = sum(e.weight for e in out)
    return sorted((e for e in out if e.weight >= MIN_SHARE * total), key=lambda e: (-e.weight, e.signal))


@dataclass(frozen=True)
class Scorecard:
    effects: tuple[SignalEffect, ...]

    def components(self) -> list[tuple[str, float, list[tuple[SignalEffect, float]]]]:
        """(dimension, weight in percent summing to 100, [(effect, its weight within the component)])."""
        total = sum(e.weight for e in self.effects)
        groups: dict[str, list[SignalEffect]] = {}
        for effect in self.effects:
            groups.setdefault(effect.dimension, []).append(effect)
        weights = _percentages({d: sum(e.weight for e in members) / total for d, members in groups.items()})
        return [(d, weights[d], [(e, round(e.weight, 4)) for e in members]) for d, members in groups.items()]

    def variant(self, bands: Sequence[Band]) -> ModelVariant:
        components = [Component(d, w, tuple(e.measure(mw) for e, mw in members)) for d, w, members in self.components()]
        return ModelVariant(components, bands, frozenset({bands[0].name}), MISSING)

    def model(self, name: str, bands: Sequence[Band], signal_config: SignalConfig,
              calibration: Calibration | None = None) -> HealthModel:
        return HealthModel(name=name, base=self.variant(bands), signal_config=signal_config, calibration=calibration)

    def document(self, name: str, bands: Sequence[Band], extra: Mapping[str, object]) -> dict:
        """The health-model YAML document (config/health_model.py reads it back into the same model)."""
        components = [{"name": d, "weight": w, "measures": [_measure_document(e, mw) for e, mw in members]}
                      for d, w, members in self.components()]
        return {
            "name": name, **extra, "components": components,
            "bands": [{"name": b.name, "min": b.min, "colour": b.colour} for b in bands],
            "healthy_bands": [bands[0].name],
            "missing_data": {"policy": MISSING.policy, "default": MISSING.default,
                             "min_coverage_pct": MISSING.min_coverage * 100.0},
        }


def _measure_document(effect: SignalEffect, weight: float) -> dict:
    steps = []
    for step in effect.steps():
        steps.append({"equals": True, "score": step.score} if step.equals is True else {"min": step.min,
                                                                                         "score": step.score})
    return {"name": effect.signal, "signal": effect.signal, "type": "thresholds", "weight": weight, "steps": steps,
            "else": effect.bin_scores[0]}


def _percentages(shares: Mapping[str, float]) -> dict[str, float]:
    """Shares as percentages with one decimal that sum to exactly 100 (the largest takes the rounding)."""
    out = {k: round(100.0 * v, 1) for k, v in shares.items()}
    largest = max(out, key=lambda k: out[k])
    out[largest] = round(100.0 - sum(v for k, v in out.items() if k != largest), 1)
    return out
