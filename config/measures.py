"""Measures as they are written in a health model's YAML, one model per `type:`, each built into the frozen
measure scoring applies."""

from __future__ import annotations

from itertools import pairwise
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from healthsync.config.conditions import SignalName
from healthsync.config.documents import (
    Document,
    KeyPath,
    Name,
    PositiveNumber,
    StepScore,
    at_path,
    closest,
    tagged_union,
)
from healthsync.scoring import measures as scoring
from healthsync.scoring.measures import STEP_TESTS

TYPES = ("thresholds", "percentile", "linear", "inverse")


class Step(Document):
    """`{min: 25, score: 100}`: every bound given (min, above, max, below, equals) must hold."""

    expected: ClassVar[str] = "a mapping with score and at least one of min/above/max/below/equals"
    min: float | None = None
    above: float | None = None
    max: float | None = None
    below: float | None = None
    equals: bool | float | str | None = None
    score: StepScore = Field(description="the score this step gives")

    @model_validator(mode="after")
    def _has_a_test(self) -> Step:
        if "equals" in self.model_fields_set and self.equals is None:
            raise at_path("equals", "null never matches: a measure is not scored when its signal has no data")
        if self.equals is None and all(getattr(self, key) is None for key in STEP_TESTS):
            raise PydanticCustomError("step_test", "needs at least one of min, above, max, below, equals")
        return self

    def step(self) -> scoring.Step:
        return scoring.Step(self.score, self.min, self.above, self.max, self.below, self.equals)


class _Measure(Document):
    """What every measure has: the signal it scores, its name and its weight within the component."""

    expected: ClassVar[str] = "a mapping with signal, type and the type's settings"
    name: Name | None = None  # defaults to the signal's name
    signal: SignalName = Field(description="a signal name (see scoring.signals.SIGNALS)")
    weight: PositiveNumber = 1.0
    note: Any = None  # free text for whoever reads the YAML

    @property
    def label(self) -> str:
        return self.name or self.signal


class Thresholds(_Measure):
    type: Literal["thresholds"]
    steps: list[Step] = Field(min_length=1, description="a non-empty list like [{min: 25, score: 100}, ...]")
    otherwise: StepScore = Field(alias="else", description="the score when no step matches")

    def measure(self) -> scoring.Measure:
        steps = tuple(s.step() for s in self.steps)
        return scoring.ThresholdMeasure(self.label, self.signal, self.weight, steps, self.otherwise)


class Percentile(Thresholds):
    """Steps over the account's percentile rank within the population (or its segment)."""

    type: Literal["percentile"]
    within: scoring.Within = "population"
    higher_is_better: bool = True

    @model_validator(mode="after")
    def _bounds_are_percentiles(self) -> Percentile:
        for index, step in enumerate(self.steps):
            if any(not 0 <= getattr(step, key) <= 100 for key in STEP_TESTS if getattr(step, key) is not None):
                raise at_path(f"steps.{index}", "percentile bounds must be within 0..100")
        return self

    def measure(self) -> scoring.Measure:
        steps = tuple(s.step() for s in self.steps)
        return scoring.PercentileMeasure(self.label, self.signal, self.weight, steps, self.otherwise,
                                         self.within, self.higher_is_better)


def _pair(value: Any) -> Any:
    if not isinstance(value, list) or len(value) != 2:
        raise PydanticCustomError("point", "must be a [value, score] pair of numbers, got {got}", {"got": repr(value)})
    return tuple(value)


Point = Annotated[tuple[float, StepScore], BeforeValidator(_pair)]


class Linear(_Measure):
    type: Literal["linear"]
    points: list[Point] = Field(min_length=2, description="a list of at least two [value, score] pairs")

    @model_validator(mode="after")
    def _increasing(self) -> Linear:
        if any(b[0] <= a[0] for a, b in pairwise(self.points)):
            raise at_path("points", "values must be strictly increasing")
        return self

    def measure(self) -> scoring.Measure:
        return scoring.LinearMeasure(self.label, self.signal, self.weight, tuple(self.points))


class Inverse(_Measure):
    """Linear from `best` (scores 100) to `worst` (scores 0), for signals where more is worse."""

    type: Literal["inverse"]
    best: float = Field(description="the value that scores 100")
    worst: float = Field(description="the value that scores 0 (greater than best)")

    @model_validator(mode="after")
    def _worse_is_more(self) -> Inverse:
        if self.worst <= self.best:
            raise at_path("worst", f"must be greater than best ({self.best:g}): more of this signal is worse")
        return self

    def measure(self) -> scoring.Measure:
        return scoring.InverseMeasure(self.label, self.signal, self.weight, self.best, self.worst)


def _type_of(value: Any) -> str | None:
    return value.get("type") if isinstance(value, dict) and value.get("type") in TYPES else None


def _why_no_type(value: Any) -> tuple[KeyPath, str]:
    if not isinstance(value, dict):
        return (), f"must be {_Measure.expected}"
    kind = value.get("type")
    hint = closest(kind, TYPES) if isinstance(kind, str) else ""
    return ("type",), f"must be one of {list(TYPES)}, got {kind!r}{hint}"


Measure = tagged_union(
    "measure_type", {"thresholds": Thresholds, "percentile": Percentile, "linear": Linear, "inverse": Inverse},
    _type_of, _why_no_type,
)
