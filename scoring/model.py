"""The health model: components of measures with weights summing to 100, ordered bands, per-segment
overrides, a missing-data policy and a coverage floor — frozen values (`healthsync.config.health_model`
validates the YAML and builds them), compiled once into a plan the hot loop applies to every account.

Missing-data policies (a measure is missing when its signal is `None`):
  reweight   leave missing measures out and re-weight over what has data, first inside a component,
             then over the components that have any data;
  default    score a missing measure as `default` (e.g. 50);
  ignore     leave missing measures out without re-weighting, so they add nothing (count as 0).
Coverage is the share of the configured weight whose signal had data; below `min_coverage_pct` the
result is flagged `insufficient_data` (the score is still computed from what there is).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from healthsync.scoring.base import Signals, SignalValue
from healthsync.scoring.calibration import Calibration
from healthsync.scoring.conditions import Compare
from healthsync.scoring.measures import Measure
from healthsync.scoring.renewal import DEFAULT_SEGMENTS, RenewalWindows, SegmentRule
from healthsync.scoring.signals import SignalConfig

Policy = Literal["reweight", "default", "ignore"]
Flag = tuple[str, Compare]  # (name reported in active_signals, the comparison that turns it on)

# risk/expansion flags reported as a result's active signals unless the model lists its own
DEFAULT_FLAGS: tuple[Flag, ...] = (
    ("competitor_mentioned", Compare("competitor_mentioned", "==", True)),
    ("champion_left", Compare("champion_left_90d", "==", True)),
    ("payment_failed", Compare("payment_failed", "==", True)),
    ("high_severity_open", Compare("high_severity_open", ">=", 1)),
    ("ticket_burst", Compare("tickets_7d", ">=", 2)),
    ("usage_drop", Compare("usage_wow_change_pct", "<", -30)),
    ("declining_logins", Compare("login_decline_weeks", ">=", 3)),
    ("silent", Compare("days_since_two_way_touch", ">=", 30)),
    ("no_champion", Compare("champion_present", "==", False)),
    ("near_capacity", Compare("capacity_use_pct", ">", 80)),
    ("seats_nearly_full", Compare("seat_utilisation_pct", ">", 80)),
)


@dataclass(frozen=True)
class Band:
    name: str
    min: float
    colour: str


@dataclass(frozen=True)
class MissingData:
    policy: Policy = "reweight"
    default: float = 50.0
    min_coverage: float = 0.5  # 0..1


@dataclass(frozen=True)
class Component:
    name: str
    weight: float
    measures: tuple[Measure, ...]


@dataclass(frozen=True, slots=True)
class ScoreCore:
    """What the model alone decides for one account (history, renewal and explanation come later).
    Rows follow `ComponentScore` / `MeasureDetail` field order."""

    score: int
    band: str
    colour: str
    is_healthy: bool
    component_rows: tuple[tuple, ...]
    measure_rows: tuple[tuple, ...]
    coverage: float
    insufficient_data: bool
    policy: str = "reweight"


class ModelVariant:
    """One compiled model (the base, or a segment's override)."""

    def __init__(self, components: Sequence[Component], bands: Sequence[Band], healthy: frozenset[str],
                 missing: MissingData):
        self.components = tuple(components)
        self.bands = tuple(bands)
        self.healthy = healthy
        self.missing = missing
        self.band_ranks = {band.name: i for i, band in enumerate(self.bands)}
        # per component: its name and weight, then per measure everything the hot loop needs, precomputed
        self._plan = []
        for component in self.components:
            total = sum(m.weight for m in component.measures)
            self._plan.append((
                component.name,
                component.weight,
                tuple(
                    (m, m.signal, m.name, m.weight / total, component.weight / 100.0 * m.weight / total,
                     m.needs_population, None if m.needs_population else m.scorer())
                    for m in component.measures
                ),
            ))

    def band_for(self, score: int) -> Band:
        for band in self.bands:
            if score >= band.min:
                return band
        return self.bands[-1]

    def score(self, values: Mapping[str, SignalValue], populations: Populations, segment: str | None) -> ScoreCore:
        policy = self.missing.policy
        missing_value = self.missing.default if policy == "default" else 0.0
        reweight = policy == "reweight"
        measure_rows: list[tuple] = []
        component_rows: list[tuple] = []
        total = total_weight = coverage = 0.0
        for component_name, component_weight, planned in self._plan:
            acc = used_share = 0.0
            for measure, signal, name, share, global_share, needs_population, scorer in planned:
                raw = values.get(signal)
                if raw is None:
                    if reweight:
                        measure_rows.append((name, component_name, signal, None, None, global_share, False))
                        continue
                    value = missing_value
                    measure_rows.append((name, component_name, signal, None,
                                         value if policy == "default" else None, global_share, True))
                else:
                    if needs_population:
                        value = measure.score(raw, populations.get(measure, segment))
                    else:
                        value = scorer(raw)
                    coverage += global_share
                    measure_rows.append((name, component_name, signal, raw, value, global_share, False))
                acc += value * share
                used_share += share
            if used_share == 0.0:
                component_rows.append((component_name, None, component_weight, None, False))
                continue
            unclamped = acc / used_share
            clamped = 100.0 if unclamped > 100.0 else (0.0 if unclamped < 0.0 else unclamped)
            component_rows.append((component_name, clamped, component_weight, unclamped, clamped != unclamped))
            total += clamped * component_weight
            total_weight += component_weight
        if total_weight == 0.0:
            raw_score = self.missing.default  # nothing known at all: the configured default, flagged below
        elif policy == "ignore":
            raw_score = total / 100.0
        else:
            raw_score = total / total_weight
        score = min(100, max(0, math.floor(raw_score + 0.5)))
        band = self.band_for(score)
        coverage = round(coverage, 9)
        return ScoreCore(
            score=score,
            band=band.name,
            colour=band.colour,
            is_healthy=band.name in self.healthy,
            component_rows=tuple(component_rows),
            measure_rows=tuple(measure_rows),
            coverage=coverage,
            insufficient_data=coverage < self.missing.min_coverage,
            policy=policy,
        )

    def percentile_measures(self) -> list[Measure]:
        return [m for c in self.components for m in c.measures if m.needs_population]


class Populations:
    """Sorted values of each percentile-scored signal over the portfolio and per segment."""

    def __init__(self) -> None:
        self._sorted: dict[tuple[str, str | None], list[float]] = {}

    @classmethod
    def build(cls, measures: Sequence[Measure], signals: Sequence[Signals], segments: Sequence[str | None]):
        names = sorted({m.signal for m in measures})
        return cls.from_columns({name: [s.values.get(name) for s in signals] for name in names}, segments)

    @classmethod
    def from_columns(cls, columns: Mapping[str, Sequence[SignalValue]], segments: Sequence[str | None]):
        """From each signal's raw values in account order (aligned with `segments`); `None` is left out."""
        populations = cls()
        for name in sorted(columns):
            whole: list[float] = []
            by_segment: dict[str | None, list[float]] = {}
            for raw, segment in zip(columns[name], segments, strict=True):
                if raw is None:
                    continue
                whole.append(float(raw))
                by_segment.setdefault(segment, []).append(float(raw))
            whole.sort()
            populations._sorted[(name, None)] = whole
            for segment, values in by_segment.items():
                if segment is not None:
                    values.sort()
                    populations._sorted[(name, segment)] = values
        return populations

    def get(self, measure: Measure, segment: str | None) -> list[float]:
        if measure.within == "segment" and segment is not None:
            found = self._sorted.get((measure.signal, segment))
            if found is not None:
                return found
        return self._sorted.get((measure.signal, None), [])


@dataclass(frozen=True, eq=False)  # compared by identity: it holds mappings
class HealthModel:
    name: str
    base: ModelVariant
    overrides: Mapping[str, ModelVariant] = field(default_factory=dict)  # segment name -> its variant
    segments: tuple[SegmentRule, ...] = DEFAULT_SEGMENTS
    renewal_windows: RenewalWindows = RenewalWindows()
    segment_windows: Mapping[str, RenewalWindows] = field(default_factory=dict)
    signal_config: SignalConfig = SignalConfig()
    flags: tuple[Flag, ...] = DEFAULT_FLAGS
    calibration: Calibration | None = None  # a fitted model's score -> renewal probability (`healthsync fit`)

    def variant_for(self, segment: str | None) -> ModelVariant:
        return self.overrides.get(segment, self.base) if segment is not None else self.base

    def windows_for(self, segment: str | None) -> RenewalWindows:
        return self.segment_windows.get(segment, self.renewal_windows) if segment else self.renewal_windows

    def percentile_measures(self) -> list[Measure]:
        found = self.base.percentile_measures()
        for variant in self.overrides.values():
            found.extend(variant.percentile_measures())
        return found

    def active_flags(self, signals: Signals) -> tuple[str, ...]:
        values = signals.values
        return tuple(name for name, condition in self.flags if condition.check(values.get(condition.name)))

    @property
    def band_names(self) -> tuple[str, ...]:
        names = [b.name for b in self.base.bands]
        for variant in self.overrides.values():
            names.extend(b.name for b in variant.bands if b.name not in names)
        return tuple(names)
