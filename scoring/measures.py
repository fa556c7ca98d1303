"""Measures: each maps one signal to a 0-100 score (more allowed, e.g. seed 003's 110; the component
clamps). Each is a frozen value built once from config (`healthsync.config.measures` validates it), and
compiles itself into the cheapest callable that scores every account.

Types: `thresholds` (ordered steps, first match wins), `percentile` (steps over the account's
percentile rank within the population or its segment), `linear` (piecewise-linear points, clamped at
the ends) and `inverse` (linear from `best` = 100 down to `worst` = 0, for "more is worse" signals).
"""

from __future__ import annotations

import operator
from abc import ABC, abstractmethod
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from healthsync.scoring.conditions import format_value

Within = Literal["population", "segment"]
# a step's bounds, in the order its text lists them
STEP_TESTS: Mapping[str, Callable[[float, float], bool]] = {
    "min": operator.ge, "above": operator.gt, "max": operator.le, "below": operator.lt,
}


@dataclass(frozen=True)
class Measure(ABC):
    """One signal -> score. `weight` is relative to the other measures of the same component."""

    name: str
    signal: str
    weight: float
    needs_population = False  # class attributes, not fields: what the model's hot loop asks of a measure
    within = "population"

    @abstractmethod
    def score(self, raw: float | bool, population: Sequence[float] | None = None) -> float: ...

    @abstractmethod
    def describe(self) -> str: ...

    def scorer(self) -> Callable[[float | bool], float]:
        """`score` for measures that need no population, as the cheapest callable that gives exactly
        the same result (the model's hot loop calls it 16 times per account)."""
        return self.score


@dataclass(frozen=True)
class Step:
    """One threshold step: every bound given (and `equals`, when not None) must hold for `score` to apply."""

    score: float
    min: float | None = None
    above: float | None = None
    max: float | None = None
    below: float | None = None
    equals: bool | float | str | None = None
    tests: tuple[tuple[Callable[[float, float], bool], float], ...] = field(init=False, repr=False, compare=False)
    text: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        bounds = [(key, getattr(self, key)) for key in STEP_TESTS if getattr(self, key) is not None]
        object.__setattr__(self, "tests", tuple((STEP_TESTS[key], bound) for key, bound in bounds))
        text = [f"{key} {format_value(bound)}" for key, bound in bounds]
        if self.has_equals:
            text.append(f"= {format_value(self.equals)}")
        object.__setattr__(self, "text", " ".join(text) + f" -> {format_value(self.score)}")

    @property
    def has_equals(self) -> bool:
        return self.equals is not None

    def matches(self, value: float | bool) -> bool:
        if self.equals is not None and value != self.equals:
            return False
        for test, bound in self.tests:
            if not test(value, bound):
                return False
        return True


@dataclass(frozen=True)
class ThresholdMeasure(Measure):
    steps: tuple[Step, ...]
    otherwise: float  # the score when no step matches (`else:` in YAML)

    def score(self, raw: float | bool, population: Sequence[float] | None = None) -> float:
        for step in self.steps:
            if step.matches(raw):
                return step.score
        return self.otherwise

    def describe(self) -> str:
        return "; ".join(s.text for s in self.steps) + f"; else {format_value(self.otherwise)}"

    def scorer(self) -> Callable[[float | bool], float]:
        if type(self) is not ThresholdMeasure:
            return self.score
        otherwise = self.otherwise
        # one (test, bound) and no equals is the common step; `Step.matches` keeps the general case
        if all(len(step.tests) == 1 and not step.has_equals for step in self.steps):
            simple = tuple((step.tests[0][0], step.tests[0][1], step.score) for step in self.steps)

            def first_match(raw: float | bool) -> float:
                for test, bound, score in simple:
                    if test(raw, bound):
                        return score
                return otherwise
            return first_match
        if len(self.steps) == 1 and self.steps[0].has_equals and not self.steps[0].tests:
            equals, score = self.steps[0].equals, self.steps[0].score
            return lambda raw: otherwise if raw != equals else score
        return self.score


def percentile_rank(value: float, ordered: Sequence[float]) -> float:
    """Mid-rank percentile (0..100) of `value` in the sorted population: ties share their middle rank,
    so the result does not depend on account order."""
    if not ordered:
        return 50.0
    below = bisect_left(ordered, value)
    through = bisect_right(ordered, value)
    return 100.0 * (below + through) / (2.0 * len(ordered))


@dataclass(frozen=True)
class PercentileMeasure(ThresholdMeasure):
    """Steps over the account's percentile rank (0..100) rather than over the raw value."""

    within: Within = "population"
    higher_is_better: bool = True
    needs_population = True

    def rank(self, raw: float | bool, population: Sequence[float] | None) -> float:
        rank = percentile_rank(float(raw), population or ())
        return rank if self.higher_is_better else 100.0 - rank

    def score(self, raw: float | bool, population: Sequence[float] | None = None) -> float:
        return super().score(self.rank(raw, population))

    def describe(self) -> str:
        return f"percentile within {self.within}: " + super().describe()


@dataclass(frozen=True)
class LinearMeasure(Measure):
    points: tuple[tuple[float, float], ...]  # (value, score), values strictly increasing

    def __post_init__(self) -> None:
        object.__setattr__(self, "xs", tuple(p[0] for p in self.points))
        object.__setattr__(self, "ys", tuple(p[1] for p in self.points))
        object.__setattr__(self, "_interpolate", self.scorer())

    def score(self, raw: float | bool, population: Sequence[float] | None = None) -> float:
        return self._interpolate(raw)

    def scorer(self) -> Callable[[float | bool], float]:
        xs, ys = self.xs, self.ys
        first_x, last_x, first_y, last_y = xs[0], xs[-1], ys[0], ys[-1]

        def interpolate(raw: float | bool) -> float:
            value = float(raw)
            if value <= first_x:
                return first_y
            if value >= last_x:
                return last_y
            i = bisect_right(xs, value)
            x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
            return y0 + (y1 - y0) * (value - x0) / (x1 - x0)
        return interpolate

    def describe(self) -> str:
        return "linear " + ", ".join(f"{format_value(x)}->{format_value(y)}" for x, y in zip(self.xs, self.ys, strict=True))


@dataclass(frozen=True)
class InverseMeasure(LinearMeasure):
    """Linear from `best` (scores 100) down to `worst` (scores 0), for "more is worse" signals."""

    points: tuple[tuple[float, float], ...] = field(init=False)
    best: float
    worst: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "points", ((self.best, 100.0), (self.worst, 0.0)))
        super().__post_init__()

    def describe(self) -> str:
        return f"inverse: {format_value(self.best)} or less -> 100, {format_value(self.worst)} or more -> 0"
