"""The health-model document (components, bands, missing data, segments, overrides, renewal windows, signal
settings, flags) validated with pydantic and built into scoring's frozen HealthModel."""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from healthsync.config.conditions import Flag
from healthsync.config.documents import (
    Document,
    Name,
    NonNegativeDays,
    Percentage,
    PositiveDays,
    PositiveNumber,
    Score,
    at_path,
    closest,
    number,
    validate_document,
)
from healthsync.config.measures import Measure
from healthsync.scoring.calibration import Calibration
from healthsync.scoring.model import (
    DEFAULT_FLAGS,
    Band,
    Component,
    HealthModel,
    MissingData,
    ModelVariant,
    Policy,
)
from healthsync.scoring.renewal import DEFAULT_SEGMENTS, WINDOW_STAGES, RenewalWindows, SegmentRule
from healthsync.scoring.signals import SignalConfig

__all__ = ["HealthModelDocument", "load_model"]


def load_model(data: Any, where: str = "health") -> HealthModel:
    """The health model a parsed YAML document describes; DefinitionError lists every problem in it."""
    document = validate_document(HealthModelDocument, data, where, _declared(data))
    return document.model()


# --- components and bands -----------------------------------------------------------------------------


class ComponentDocument(Document):
    expected: ClassVar[str] = "a mapping with name, weight and measures"
    name: Name = Field(description="the component's name")
    weight: PositiveNumber = Field(description="its share of the score (the weights sum to 100)")
    measures: list[Measure] = Field(min_length=1, description="a non-empty list of measures")
    note: Any = None

    @field_validator("measures")
    @classmethod
    def _distinct_names(cls, measures: list) -> list:
        names = [m.label for m in measures]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise PydanticCustomError("duplicate", "duplicate measure name {name}; give each measure a distinct name",
                                      {"name": repr(repeated[0])})
        return measures

    def component(self) -> Component:
        return Component(self.name, self.weight, tuple(m.measure() for m in self.measures))


def _components_add_up(components: list[ComponentDocument]) -> list[ComponentDocument]:
    if not components:  # the field says it must not be empty
        return components
    names = [c.name for c in components]
    for index, name in enumerate(names):
        if name in names[:index]:
            raise at_path(f"{index}.name", f"duplicate component {name!r}")
    total = sum(c.weight for c in components)
    if abs(total - 100) > 1e-6:
        raise PydanticCustomError("weights", "weights sum to {total}, must be 100", {"total": f"{total:g}"})
    return components


BandMin = number("a number from 0 to 100", lambda v: 0 <= v <= 100)
Acv = number("a number >= 0", lambda v: v >= 0)


class BandDocument(Document):
    expected: ClassVar[str] = "a mapping {name, min, colour}"
    name: Name = Field(description="the band's name")
    min: BandMin = Field(description="the lowest score in this band")
    colour: str = ""

    def band(self) -> Band:
        return Band(self.name, self.min, self.colour)


def _bands_cover_every_score(bands: list[BandDocument]) -> list[BandDocument]:
    if not bands:  # the field says it must not be empty
        return bands
    mins = [b.min for b in bands]
    if any(b >= a for a, b in pairwise(mins)):
        raise PydanticCustomError("band_order", "list bands from the highest min to the lowest, each min strictly lower")
    if mins[-1] != 0:
        raise at_path(f"{len(bands) - 1}.min", "the last band must start at 0 so every score has a band")
    if len({b.name for b in bands}) != len(bands):
        raise PydanticCustomError("band_names", "band names must be unique")
    return bands


Components = Annotated[list[ComponentDocument], AfterValidator(_components_add_up)]
Bands = Annotated[list[BandDocument], AfterValidator(_bands_cover_every_score)]
_COMPONENTS = "a non-empty list of {name, weight, measures}"
_BANDS = "a non-empty list of {name, min, colour}, highest min first"


class MissingDataDocument(Document):
    expected: ClassVar[str] = "a mapping {policy, default, min_coverage_pct}"
    policy: Policy = "reweight"
    default: Score = 50.0
    min_coverage_pct: Percentage = 50.0

    def missing(self) -> MissingData:
        return MissingData(self.policy, self.default, self.min_coverage_pct / 100.0)


def _unknown_bands(healthy: list[str] | None, bands: list[BandDocument] | None) -> list[str] | None:
    """`healthy` when every name is a band's (or the bands are unknown); an error naming the others."""
    if healthy is None or bands is None:
        return healthy
    names = sorted(b.name for b in bands)
    unknown = sorted(set(healthy) - set(names))
    if unknown:
        raise PydanticCustomError("unknown_bands", "unknown bands {unknown}; bands are {names}",
                                  {"unknown": str(unknown), "names": str(names)})
    return healthy


# --- segments, overrides and renewal windows ------------------------------------------------------


class SegmentDocument(Document):
    expected: ClassVar[str] = "a mapping with a name and min_acv"
    name: str = Field(description="the segment's name")
    min_acv: Acv = Field(description="the lowest ACV in this segment")
    inclusive: bool = True  # false: ACV must be strictly above min_acv (Enterprise is "> $100K")

    def rule(self) -> SegmentRule:
        return SegmentRule(self.name, self.min_acv, self.inclusive)


def _segments_in_order(segments: list[SegmentDocument]) -> list[SegmentDocument]:
    if any(b.min_acv > a.min_acv for a, b in pairwise(segments)):
        raise PydanticCustomError("segment_order", "list segments from the highest min_acv to the lowest")
    if len({s.name for s in segments}) != len(segments):
        raise PydanticCustomError("segment_names", "segment names must be unique")
    return segments


Segments = Annotated[list[SegmentDocument], AfterValidator(_segments_in_order)]


def _known_segment(name: Any, info: ValidationInfo) -> Any:
    """A segment named in overrides or renewal windows must be one the model defines (context "segments")."""
    known = (info.context or {}).get("segments")
    if known is not None and name not in known:
        hint = closest(name, known) if isinstance(name, str) else ""
        raise PydanticCustomError("unknown_segment", "unknown segment {name}{hint}; segments are {known}",
                                  {"name": repr(name), "hint": hint, "known": str(sorted(known))})
    return name


SegmentName = Annotated[str, BeforeValidator(_known_segment)]


class OverrideDocument(Document):
    """What a segment changes from the base model; anything left out is inherited."""

    expected: ClassVar[str] = "a mapping with any of components, bands, healthy_bands, missing_data"
    components: Components | None = Field(default=None, min_length=1, description=_COMPONENTS)
    bands: Bands | None = Field(default=None, min_length=1, description=_BANDS)
    healthy_bands: list[str] | None = Field(default=None, description="a list of band names")
    missing_data: MissingDataDocument | None = None

    @field_validator("healthy_bands")
    @classmethod
    def _healthy_bands_exist(cls, healthy: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if "bands" not in info.data:  # given, but invalid: reported there
            return healthy
        bands = info.data["bands"] or (info.context or {}).get("bands")
        return _unknown_bands(healthy, bands)

    def variant(self, base: ModelVariant) -> ModelVariant:
        components = [c.component() for c in self.components] if self.components else base.components
        bands = [b.band() for b in self.bands] if self.bands else base.bands
        missing = self.missing_data.missing() if self.missing_data else base.missing
        if self.healthy_bands is not None:
            healthy = frozenset(self.healthy_bands)
        elif self.bands:
            healthy = frozenset({bands[0].name})  # new bands: only the top one is healthy, as in the base model
        else:
            healthy = base.healthy
        return ModelVariant(components, bands, healthy, missing)


def _overrides_something(override: OverrideDocument) -> OverrideDocument:
    if not override.model_fields_set:
        raise PydanticCustomError("empty_override", "must be {expected}", {"expected": OverrideDocument.expected})
    return override


class WindowsDocument(Document):
    """Days before the renewal date at which each stage starts; stages left out keep the base windows."""

    expected: ClassVar[str] = "a mapping like {engage: 120, propose: 90, negotiate: 60, escalate: 30}"
    engage: NonNegativeDays | None = None
    propose: NonNegativeDays | None = None
    negotiate: NonNegativeDays | None = None
    escalate: NonNegativeDays | None = None

    def over(self, base: RenewalWindows) -> RenewalWindows:
        return replace(base, **{stage: days for stage in WINDOW_STAGES if (days := getattr(self, stage)) is not None})


def _not_growing(windows: WindowsDocument, base: RenewalWindows | None) -> WindowsDocument:
    """Equal windows are allowed (the earlier stage is then skipped, e.g. SMB starts at propose)."""
    if base is None:  # the base windows are invalid: reported there
        return windows
    merged = windows.over(base)
    days = [getattr(merged, stage) for stage in WINDOW_STAGES]
    if any(b > a for a, b in pairwise(days)):
        raise PydanticCustomError(
            "windows_grow", "windows must not grow: engage >= propose >= negotiate >= escalate, got {got}",
            {"got": ", ".join(f"{stage} {getattr(merged, stage)}" for stage in WINDOW_STAGES)})
    return windows


def _base_windows_do_not_grow(windows: WindowsDocument) -> WindowsDocument:
    return _not_growing(windows, RenewalWindows())


BaseWindows = Annotated[WindowsDocument, AfterValidator(_base_windows_do_not_grow)]


def _segment_windows_do_not_grow(windows: WindowsDocument, info: ValidationInfo) -> WindowsDocument:
    return _not_growing(windows, (info.context or {}).get("windows", RenewalWindows()))


class RenewalDocument(Document):
    expected: ClassVar[str] = "a mapping {windows: {...}, segments: {SEGMENT: {...}}}"
    windows: BaseWindows | None = None
    segments: dict[SegmentName, Annotated[WindowsDocument, AfterValidator(_segment_windows_do_not_grow)]] | None = \
        Field(default=None, description="a mapping of segment name to its windows")

    def base_windows(self) -> RenewalWindows:
        return self.windows.over(RenewalWindows()) if self.windows else RenewalWindows()

    def segment_windows(self) -> dict[str, RenewalWindows]:
        base = self.base_windows()
        return {name: windows.over(base) for name, windows in (self.segments or {}).items()}


# --- calibration (written by `healthsync fit`) ---------------------------------------------------


def _calibration_point(value: Any) -> Any:
    if not isinstance(value, list) or len(value) != 2:
        raise PydanticCustomError("point", "must be a [score, renewal %] pair of numbers, got {got}",
                                  {"got": repr(value)})
    return tuple(value)


CalibrationPoint = Annotated[tuple[Score, Percentage], BeforeValidator(_calibration_point)]


class CalibrationDocument(Document):
    """Score -> renewal probability (percent) `horizon_days` before the renewal; the rest is for people."""

    expected: ClassVar[str] = "a mapping {horizon_days, table: [[score, renewal %], ...]}"
    horizon_days: PositiveDays = Field(description="days before the renewal the probabilities hold for")
    table: list[CalibrationPoint] = Field(min_length=2, description="a list of two or more [score, renewal %] pairs")
    method: Any = None
    intercept: Any = None
    slope: Any = None
    fitted_on: Any = None
    note: Any = None

    @field_validator("table")
    @classmethod
    def _scores_increase(cls, table: list[tuple[float, float]]) -> list[tuple[float, float]]:
        if any(b[0] <= a[0] for a, b in pairwise(table)):
            raise PydanticCustomError("calibration_order", "scores must be strictly increasing")
        return table

    def calibration(self) -> Calibration:
        return Calibration(self.horizon_days, tuple((score, pct / 100.0) for score, pct in self.table))


# --- signal settings and the whole document -------------------------------------------------------


class SignalsDocument(Document):
    expected: ClassVar[str] = "a mapping of signal settings"
    competitor_words: list[str] = Field(default=[], description="a list of strings")
    features_by_plan: dict[str, list[str]] = Field(default={}, description="a mapping of plan tier to its features")
    core_action_events: list[str] = Field(default=[], description="a list of strings")
    value_events: list[str] = Field(default=[], description="a list of strings")
    qbr_window_days: PositiveDays = 120
    ignored_topic_tags: list[str] = Field(default=[], description="a list of strings")

    def config(self) -> SignalConfig:
        return SignalConfig(
            competitor_words=tuple(self.competitor_words),
            features_by_plan={plan: tuple(names) for plan, names in self.features_by_plan.items()},
            core_action_events=tuple(self.core_action_events),
            value_events=tuple(self.value_events),
            qbr_window_days=self.qbr_window_days,
            ignored_topic_tags=tuple(self.ignored_topic_tags),
        )


class HealthModelDocument(Document):
    """A health model as written in YAML (a preset, a file, or inline in the config)."""

    expected: ClassVar[str] = "a mapping (the parsed health model YAML)"
    name: str = "custom"
    description: Any = None
    source: Any = None  # where the model comes from (a seed, a team), for people
    components: Components = Field(min_length=1, description=_COMPONENTS)
    bands: Bands = Field(min_length=1, description=_BANDS)
    healthy_bands: list[str] | None = Field(default=None, description="a list of band names")
    missing_data: MissingDataDocument | None = None
    segments: Segments | None = Field(default=None, min_length=1,
                                      description="a non-empty list of {name, min_acv, inclusive}")
    segment_overrides: dict[SegmentName, Annotated[OverrideDocument, AfterValidator(_overrides_something)]] | None = \
        Field(default=None, description="a mapping of segment name to {components, bands, healthy_bands, missing_data}")
    renewal: RenewalDocument | None = None
    signals: SignalsDocument | None = None
    flags: list[Flag] | None = Field(default=None, description="a list of {name, signal, op, value}")
    calibration: CalibrationDocument | None = None

    @field_validator("healthy_bands")
    @classmethod
    def _healthy_bands_exist(cls, healthy: list[str] | None, info: ValidationInfo) -> list[str] | None:
        return _unknown_bands(healthy, info.data.get("bands"))

    def model(self) -> HealthModel:
        base = self.base_variant()
        return HealthModel(
            name=self.name,
            base=base,
            overrides={segment: o.variant(base) for segment, o in (self.segment_overrides or {}).items()},
            segments=tuple(s.rule() for s in self.segments) if self.segments else DEFAULT_SEGMENTS,
            renewal_windows=self.renewal.base_windows() if self.renewal else RenewalWindows(),
            segment_windows=self.renewal.segment_windows() if self.renewal else {},
            signal_config=self.signals.config() if self.signals else SignalConfig(),
            flags=tuple(f.flag() for f in self.flags) if self.flags is not None else DEFAULT_FLAGS,
            calibration=self.calibration.calibration() if self.calibration else None,
        )

    def base_variant(self) -> ModelVariant:
        bands = [b.band() for b in self.bands]
        # by default only the top band is healthy
        healthy = frozenset(self.healthy_bands) if self.healthy_bands is not None else frozenset({bands[0].name})
        missing = self.missing_data.missing() if self.missing_data else MissingData()
        return ModelVariant([c.component() for c in self.components], bands, healthy, missing)


# --- names the document declares, read first so the places that refer to them can be checked ------


def _declared(data: Any) -> dict[str, Any]:
    """Segment names, base band names and base renewal windows, when the document gives them validly
    (None: invalid, so references to them are not checked; the declaration's own problems are reported)."""
    if not isinstance(data, dict):
        return {}
    segments = _valid(Segments, data.get("segments")) if data.get("segments") is not None else DEFAULT_SEGMENTS
    renewal = data.get("renewal")
    windows = renewal.get("windows") if isinstance(renewal, dict) else None
    base_windows = _valid(BaseWindows, windows) if windows is not None else WindowsDocument()
    return {
        "segments": None if segments is None else [s.name for s in segments],
        "bands": _valid(Bands, data.get("bands")),
        "windows": None if base_windows is None else base_windows.over(RenewalWindows()),
    }


def _valid(kind: Any, value: Any) -> Any:
    try:
        return TypeAdapter(kind).validate_python(value, context={})
    except ValidationError:
        return None
