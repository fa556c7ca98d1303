"""The health model: components of measures with weights summing to 100, ordered bands, per-segment
overrides, a missing-data policy and a coverage floor — validated from a parsed YAML dict once, then
applied to every account.

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
from itertools import pairwise
from typing import Any

from healthsync.scoring.base import ModelError, Signals, SignalValue
from healthsync.scoring.conditions import Compare, Problems, compile_condition
from healthsync.scoring.measures import Measure, build_measure
from healthsync.scoring.renewal import (
    DEFAULT_SEGMENTS,
    RenewalWindows,
    SegmentRule,
    load_segments,
    load_windows,
)
from healthsync.scoring.signals import BOOLEAN_SIGNALS, SIGNALS, SignalConfig

SIGNAL_KINDS: Mapping[str, str] = {n: ("bool" if n in BOOLEAN_SIGNALS else "number") for n in SIGNALS}
POLICIES = ("reweight", "default", "ignore")
_TOP_KEYS = {
    "name", "description", "source", "components", "bands", "healthy_bands", "missing_data", "segments",
    "renewal", "segment_overrides", "signals", "flags",
}
_OVERRIDE_KEYS = {"components", "bands", "healthy_bands", "missing_data"}

# risk/expansion flags reported as a result's active signals unless the model lists its own
DEFAULT_FLAGS = (
    {"name": "competitor_mentioned", "signal": "competitor_mentioned", "op": "==", "value": True},
    {"name": "champion_left", "signal": "champion_left_90d", "op": "==", "value": True},
    {"name": "payment_failed", "signal": "payment_failed", "op": "==", "value": True},
    {"name": "high_severity_open", "signal": "high_severity_open", "op": ">=", "value": 1},
    {"name": "ticket_burst", "signal": "tickets_7d", "op": ">=", "value": 2},
    {"name": "usage_drop", "signal": "usage_wow_change_pct", "op": "<", "value": -30},
    {"name": "declining_logins", "signal": "login_decline_weeks", "op": ">=", "value": 3},
    {"name": "silent", "signal": "days_since_two_way_touch", "op": ">=", "value": 30},
    {"name": "no_champion", "signal": "champion_present", "op": "==", "value": False},
    {"name": "near_capacity", "signal": "capacity_use_pct", "op": ">", "value": 80},
    {"name": "seats_nearly_full", "signal": "seat_utilisation_pct", "op": ">", "value": 80},
)


@dataclass(frozen=True)
class Band:
    name: str
    min: float
    colour: str


@dataclass(frozen=True)
class MissingData:
    policy: str = "reweight"
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
    overrides: Mapping[str, ModelVariant]
    segments: tuple[SegmentRule, ...]
    renewal_windows: RenewalWindows
    segment_windows: Mapping[str, RenewalWindows]
    signal_config: SignalConfig
    flags: tuple[tuple[str, Compare], ...]
    source: Mapping[str, Any] = field(default_factory=dict, repr=False)

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


# ------------------------------------------------------------------------------------------- load


def load_model(data: Any, where: str = "health") -> HealthModel:
    """Validate a parsed health-model dict and compile it; raises ModelError listing every problem."""
    problems: Problems = []
    if not isinstance(data, Mapping):
        raise ModelError([(where, "must be a mapping (the parsed health model YAML)")])
    unknown = sorted(str(k) for k in data if k not in _TOP_KEYS)
    if unknown:
        problems.append((where, f"unexpected keys {unknown}; allowed: {sorted(_TOP_KEYS)}"))
    base = _load_variant(data, where, problems, inherit=None)
    segments = load_segments(data.get("segments"), f"{where}.segments", problems)
    segment_names = {s.name for s in segments} if segments else {s.name for s in DEFAULT_SEGMENTS}
    overrides = _load_overrides(data.get("segment_overrides"), where, problems, base, segment_names)
    windows, segment_windows = _load_renewal(data.get("renewal"), f"{where}.renewal", problems, segment_names)
    signal_config = _load_signal_config(data.get("signals"), f"{where}.signals", problems)
    flags = _load_flags(data.get("flags"), f"{where}.flags", problems)
    if problems or base is None:
        raise ModelError(problems)
    return HealthModel(
        name=str(data.get("name", "custom")),
        base=base,
        overrides=overrides,
        segments=segments,
        renewal_windows=windows,
        segment_windows=segment_windows,
        signal_config=signal_config,
        flags=flags,
        source=data,
    )


def _load_variant(data: Mapping, where: str, problems: Problems, inherit: ModelVariant | None) -> ModelVariant | None:
    before = len(problems)
    if "components" in data or inherit is None:
        components = _load_components(data.get("components"), f"{where}.components", problems)
    else:
        components = list(inherit.components)
    if "bands" in data or inherit is None:
        bands = _load_bands(data.get("bands"), f"{where}.bands", problems)
    else:
        bands = list(inherit.bands)
    if "missing_data" in data or inherit is None:
        missing = _load_missing(data.get("missing_data"), f"{where}.missing_data", problems)
    else:
        missing = inherit.missing
    healthy = _load_healthy(data, where, problems, bands, inherit)
    if len(problems) > before:
        return None
    return ModelVariant(components, bands, healthy, missing)


def _load_components(node: Any, path: str, problems: Problems) -> list[Component]:
    if not isinstance(node, list) or not node:
        problems.append((path, "must be a non-empty list of {name, weight, measures}"))
        return []
    components = []
    names = set()
    for i, item in enumerate(node):
        where = f"{path}[{i}]"
        if not isinstance(item, Mapping):
            problems.append((where, "must be a mapping with name, weight and measures"))
            continue
        name = item.get("name")
        if not isinstance(name, str) or not name:
            problems.append((f"{where}.name", "must be a non-empty string"))
            continue
        if name in names:
            problems.append((f"{where}.name", f"duplicate component {name!r}"))
        names.add(name)
        unknown = sorted(str(k) for k in item if k not in {"name", "weight", "measures", "note"})
        if unknown:
            problems.append((where, f"unexpected keys {unknown}; allowed: name, weight, measures, note"))
        weight = item.get("weight")
        if not isinstance(weight, (int, float)) or isinstance(weight, bool) or weight <= 0:
            problems.append((f"{where}.weight", f"must be a positive number, got {weight!r}"))
            weight = None
        measures = _load_measures(item.get("measures"), f"{where}.measures", problems)
        if weight is not None and measures:
            components.append(Component(name, float(weight), tuple(measures)))
    weights = [item.get("weight") for item in node if isinstance(item, Mapping)]
    if all(isinstance(w, (int, float)) and not isinstance(w, bool) for w in weights):
        total = sum(weights)
        if abs(total - 100) > 1e-6:
            problems.append((path, f"weights sum to {total:g}, must be 100"))
    return components


def _load_measures(node: Any, path: str, problems: Problems) -> list[Measure]:
    if not isinstance(node, list) or not node:
        problems.append((path, "must be a non-empty list of measures"))
        return []
    measures = []
    for i, item in enumerate(node):
        measure = build_measure(item, f"{path}[{i}]", problems, SIGNAL_KINDS)
        if measure is not None:
            measures.append(measure)
    names = [m.name for m in measures]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append((path, f"duplicate measure name {name!r}; give each measure a distinct name"))
    return measures


def _load_bands(node: Any, path: str, problems: Problems) -> list[Band]:
    if not isinstance(node, list) or not node:
        problems.append((path, "must be a non-empty list of {name, min, colour}, highest min first"))
        return []
    bands = []
    for i, item in enumerate(node):
        where = f"{path}[{i}]"
        if not isinstance(item, Mapping):
            problems.append((where, "must be a mapping {name, min, colour}"))
            continue
        name, low, colour = item.get("name"), item.get("min"), item.get("colour", "")
        if not isinstance(name, str) or not name:
            problems.append((f"{where}.name", "must be a non-empty string"))
            continue
        if not isinstance(low, (int, float)) or isinstance(low, bool) or not 0 <= low <= 100:
            problems.append((f"{where}.min", f"must be a number from 0 to 100, got {low!r}"))
            continue
        if not isinstance(colour, str):
            problems.append((f"{where}.colour", "must be a string"))
            continue
        bands.append(Band(name, float(low), colour))
    if len(bands) != len(node):
        return bands
    mins = [b.min for b in bands]
    if any(b >= a for a, b in pairwise(mins)):
        problems.append((path, "list bands from the highest min to the lowest, each min strictly lower"))
    if mins and mins[-1] != 0:
        problems.append((f"{path}[{len(bands) - 1}].min", "the last band must start at 0 so every score has a band"))
    names = [b.name for b in bands]
    if len(set(names)) != len(names):
        problems.append((path, "band names must be unique"))
    return bands


def _load_healthy(data: Mapping, where: str, problems: Problems, bands: list[Band],
                  inherit: ModelVariant | None) -> frozenset[str]:
    node = data.get("healthy_bands")
    if node is None:
        if inherit is not None and "bands" not in data:
            return inherit.healthy
        return frozenset({bands[0].name}) if bands else frozenset()  # by default only the top band is healthy
    names = {b.name for b in bands}
    if not isinstance(node, list) or not all(isinstance(n, str) for n in node):
        problems.append((f"{where}.healthy_bands", "must be a list of band names"))
        return frozenset()
    unknown = sorted(set(node) - names)
    if unknown:
        problems.append((f"{where}.healthy_bands", f"unknown bands {unknown}; bands are {sorted(names)}"))
    return frozenset(node)


def _load_missing(node: Any, path: str, problems: Problems) -> MissingData:
    if node is None:
        return MissingData()
    if not isinstance(node, Mapping):
        problems.append((path, "must be a mapping {policy, default, min_coverage_pct}"))
        return MissingData()
    unknown = sorted(str(k) for k in node if k not in {"policy", "default", "min_coverage_pct"})
    if unknown:
        problems.append((path, f"unexpected keys {unknown}; allowed: policy, default, min_coverage_pct"))
    policy = node.get("policy", "reweight")
    if policy not in POLICIES:
        problems.append((f"{path}.policy", f"must be one of {list(POLICIES)}, got {policy!r}"))
    default = node.get("default", 50)
    if not isinstance(default, (int, float)) or isinstance(default, bool) or not 0 <= default <= 100:
        problems.append((f"{path}.default", f"must be a score from 0 to 100, got {default!r}"))
        default = 50
    coverage = node.get("min_coverage_pct", 50)
    if not isinstance(coverage, (int, float)) or isinstance(coverage, bool) or not 0 <= coverage <= 100:
        problems.append((f"{path}.min_coverage_pct", f"must be a percentage from 0 to 100, got {coverage!r}"))
        coverage = 50
    return MissingData(str(policy), float(default), coverage / 100.0)


def _load_overrides(node: Any, where: str, problems: Problems, base: ModelVariant | None,
                    segment_names: set[str]) -> dict[str, ModelVariant]:
    path = f"{where}.segment_overrides"
    if node is None or base is None:
        return {}
    if not isinstance(node, Mapping):
        problems.append((path, "must map a segment name to {components, bands, healthy_bands, missing_data}"))
        return {}
    overrides = {}
    for segment, override in node.items():
        at = f"{path}.{segment}"
        if segment not in segment_names:
            problems.append((at, f"unknown segment; segments are {sorted(segment_names)}"))
            continue
        if not isinstance(override, Mapping) or not override:
            problems.append((at, "must be a mapping with any of components, bands, healthy_bands, missing_data"))
            continue
        unknown = sorted(str(k) for k in override if k not in _OVERRIDE_KEYS)
        if unknown:
            problems.append((at, f"unexpected keys {unknown}; allowed: {sorted(_OVERRIDE_KEYS)}"))
        variant = _load_variant(override, at, problems, inherit=base)
        if variant is not None:
            overrides[segment] = variant
    return overrides


def _load_renewal(node: Any, path: str, problems: Problems,
                  segment_names: set[str]) -> tuple[RenewalWindows, dict[str, RenewalWindows]]:
    if node is None:
        return RenewalWindows(), {}
    if not isinstance(node, Mapping):
        problems.append((path, "must be a mapping {windows: {...}, segments: {SEGMENT: {...}}}"))
        return RenewalWindows(), {}
    unknown = sorted(str(k) for k in node if k not in {"windows", "segments"})
    if unknown:
        problems.append((path, f"unexpected keys {unknown}; allowed: windows, segments"))
    windows = load_windows(node.get("windows"), f"{path}.windows", problems)
    per_segment = {}
    segments = node.get("segments") or {}
    if not isinstance(segments, Mapping):
        problems.append((f"{path}.segments", "must map a segment name to its windows"))
        return windows, {}
    for segment, seg_node in segments.items():
        if segment not in segment_names:
            problems.append((f"{path}.segments.{segment}", f"unknown segment; segments are {sorted(segment_names)}"))
            continue
        per_segment[segment] = load_windows(seg_node, f"{path}.segments.{segment}", problems, base=windows)
    return windows, per_segment


def _string_list(node: Any, path: str, problems: Problems) -> tuple[str, ...]:
    if node is None:
        return ()
    if not isinstance(node, list) or not all(isinstance(x, str) for x in node):
        problems.append((path, "must be a list of strings"))
        return ()
    return tuple(node)


def _load_signal_config(node: Any, path: str, problems: Problems) -> SignalConfig:
    if node is None:
        return SignalConfig()
    if not isinstance(node, Mapping):
        problems.append((path, "must be a mapping of signal settings"))
        return SignalConfig()
    allowed = {"competitor_words", "features_by_plan", "core_action_events", "value_events", "qbr_window_days",
               "ignored_topic_tags"}
    unknown = sorted(str(k) for k in node if k not in allowed)
    if unknown:
        problems.append((path, f"unexpected keys {unknown}; allowed: {sorted(allowed)}"))
    plans = node.get("features_by_plan") or {}
    features: dict[str, tuple[str, ...]] = {}
    if not isinstance(plans, Mapping):
        problems.append((f"{path}.features_by_plan", "must map a plan tier to its list of features"))
    else:
        for plan, names in plans.items():
            features[str(plan)] = _string_list(names, f"{path}.features_by_plan.{plan}", problems)
    qbr_days = node.get("qbr_window_days", 120)
    if not isinstance(qbr_days, int) or isinstance(qbr_days, bool) or qbr_days <= 0:
        problems.append((f"{path}.qbr_window_days", f"must be a positive whole number of days, got {qbr_days!r}"))
        qbr_days = 120
    return SignalConfig(
        competitor_words=_string_list(node.get("competitor_words"), f"{path}.competitor_words", problems),
        features_by_plan=features,
        core_action_events=_string_list(node.get("core_action_events"), f"{path}.core_action_events", problems),
        value_events=_string_list(node.get("value_events"), f"{path}.value_events", problems),
        qbr_window_days=qbr_days,
        ignored_topic_tags=_string_list(node.get("ignored_topic_tags"), f"{path}.ignored_topic_tags", problems),
    )


def _load_flags(node: Any, path: str, problems: Problems) -> tuple[tuple[str, Compare], ...]:
    items = DEFAULT_FLAGS if node is None else node
    if not isinstance(items, (list, tuple)):
        problems.append((path, "must be a list of {name, signal, op, value}"))
        return ()
    flags = []
    for i, item in enumerate(items):
        where = f"{path}[{i}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            problems.append((where, "must be a mapping with a name, signal, op and value"))
            continue
        body = {k: v for k, v in item.items() if k != "name"}
        condition = compile_condition(body, where, problems, SIGNAL_KINDS)
        if isinstance(condition, Compare):
            flags.append((item["name"], condition))
        elif condition is not None:
            problems.append((where, "a flag is a single {signal, op, value} comparison"))
    return tuple(flags)
