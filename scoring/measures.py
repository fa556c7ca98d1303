"""Measures: each maps one signal to a 0-100 score (more allowed, e.g. seed 003's 110; the component
clamps). Built once from config into a small callable object, then applied to every account.

Types: `thresholds` (ordered steps, first match wins), `percentile` (steps over the account's
percentile rank within the population or its segment), `linear` (piecewise-linear points, clamped at
the ends) and `inverse` (linear from `best` = 100 down to `worst` = 0, for "more is worse" signals).
"""

from __future__ import annotations

import operator
from abc import ABC, abstractmethod
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping, Sequence
from itertools import pairwise
from typing import Any

from healthsync.scoring.conditions import Problems, format_value

MEASURE_TYPES = ("thresholds", "percentile", "linear", "inverse")
_STEP_TESTS: Mapping[str, Callable[[float, float], bool]] = {
    "min": operator.ge, "above": operator.gt, "max": operator.le, "below": operator.lt,
}
_COMMON_KEYS = {"name", "signal", "type", "weight", "note"}
_MAX_SCORE = 1000.0  # anything larger is surely a typo; >100 is allowed and clamped per component


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class Measure(ABC):
    """One signal -> score. `weight` is relative to the other measures of the same component."""

    needs_population = False
    within = "population"

    def __init__(self, name: str, signal: str, weight: float):
        self.name, self.signal, self.weight = name, signal, weight

    @abstractmethod
    def score(self, raw: float | bool, population: Sequence[float] | None = None) -> float: ...

    @abstractmethod
    def describe(self) -> str: ...

    def scorer(self) -> Callable[[float | bool], float]:
        """`score` for measures that need no population, as the cheapest callable that gives exactly
        the same result (the model's hot loop calls it 16 times per account)."""
        return self.score


class Step:
    __slots__ = ("tests", "equals", "has_equals", "score", "text")

    def __init__(self, tests: list[tuple[Callable[[float, float], bool], float]], equals: Any, has_equals: bool,
                 score: float, text: str):
        self.tests, self.equals, self.has_equals, self.score, self.text = tests, equals, has_equals, score, text

    def matches(self, value: float | bool) -> bool:
        if self.has_equals and value != self.equals:
            return False
        for test, bound in self.tests:
            if not test(value, bound):
                return False
        return True


class ThresholdMeasure(Measure):
    def __init__(self, name: str, signal: str, weight: float, steps: list[Step], otherwise: float):
        super().__init__(name, signal, weight)
        self.steps, self.otherwise = tuple(steps), otherwise

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


class PercentileMeasure(ThresholdMeasure):
    needs_population = True

    def __init__(self, name: str, signal: str, weight: float, steps: list[Step], otherwise: float,
                 within: str, higher_is_better: bool):
        super().__init__(name, signal, weight, steps, otherwise)
        self.within, self.higher_is_better = within, higher_is_better

    def rank(self, raw: float | bool, population: Sequence[float] | None) -> float:
        rank = percentile_rank(float(raw), population or ())
        return rank if self.higher_is_better else 100.0 - rank

    def score(self, raw: float | bool, population: Sequence[float] | None = None) -> float:
        return super().score(self.rank(raw, population))

    def describe(self) -> str:
        return f"percentile within {self.within}: " + super().describe()


class LinearMeasure(Measure):
    def __init__(self, name: str, signal: str, weight: float, points: list[tuple[float, float]]):
        super().__init__(name, signal, weight)
        self.xs = tuple(p[0] for p in points)
        self.ys = tuple(p[1] for p in points)
        self._interpolate = self.scorer()

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


class InverseMeasure(LinearMeasure):
    def __init__(self, name: str, signal: str, weight: float, best: float, worst: float):
        super().__init__(name, signal, weight, [(best, 100.0), (worst, 0.0)])
        self.best, self.worst = best, worst

    def describe(self) -> str:
        return f"inverse: {format_value(self.best)} or less -> 100, {format_value(self.worst)} or more -> 0"


# ------------------------------------------------------------------------------------------- build


def build_measure(node: Any, path: str, problems: Problems, signal_kinds: Mapping[str, str]) -> Measure | None:
    """Validate one measure's config and build it; problems are appended with their key paths."""
    if not isinstance(node, Mapping):
        problems.append((path, "must be a mapping with signal, type and the type's settings"))
        return None
    before = len(problems)
    signal = node.get("signal")
    if not isinstance(signal, str) or signal not in signal_kinds:
        problems.append((f"{path}.signal", f"unknown signal {signal!r}; see scoring.signals.SIGNALS"))
    name = node.get("name", signal)
    if not isinstance(name, str) or not name:
        problems.append((f"{path}.name", "must be a non-empty string"))
    weight = node.get("weight", 1)
    if not _is_number(weight) or weight <= 0:
        problems.append((f"{path}.weight", f"must be a positive number, got {weight!r}"))
    kind = node.get("type")
    if kind not in MEASURE_TYPES:
        problems.append((f"{path}.type", f"must be one of {list(MEASURE_TYPES)}, got {kind!r}"))
        return None
    builder = _BUILDERS[kind]
    measure = builder(node, path, problems, name, signal, weight)
    return measure if len(problems) == before else None


def _allowed(node: Mapping, extra: set[str], path: str, problems: Problems) -> None:
    unknown = sorted(str(k) for k in node if k not in _COMMON_KEYS | extra)
    if unknown:
        problems.append((path, f"unexpected keys {unknown} for type {node.get('type')}; "
                               f"allowed: {sorted(_COMMON_KEYS | extra)}"))


def _score_value(value: Any, path: str, problems: Problems) -> float | None:
    if not _is_number(value) or not 0 <= value <= _MAX_SCORE:
        problems.append((path, f"must be a score from 0 (values above 100 are clamped per component), got {value!r}"))
        return None
    return float(value)


def _build_steps(node: Mapping, path: str, problems: Problems) -> tuple[list[Step], float | None]:
    steps_node = node.get("steps")
    steps: list[Step] = []
    if not isinstance(steps_node, list) or not steps_node:
        problems.append((f"{path}.steps", "must be a non-empty list like [{min: 25, score: 100}, ...]"))
    else:
        for i, step in enumerate(steps_node):
            built = _build_step(step, f"{path}.steps[{i}]", problems)
            if built:
                steps.append(built)
    if "else" not in node:
        problems.append((f"{path}.else", "is required: the score when no step matches"))
        return steps, None
    return steps, _score_value(node["else"], f"{path}.else", problems)


def _build_step(step: Any, path: str, problems: Problems) -> Step | None:
    if not isinstance(step, Mapping) or "score" not in step:
        problems.append((path, "must be a mapping with score and at least one of min/above/max/below/equals"))
        return None
    unknown = sorted(str(k) for k in step if k not in {*_STEP_TESTS, "equals", "score"})
    if unknown:
        problems.append((path, f"unexpected keys {unknown}; allowed: min, above, max, below, equals, score"))
        return None
    tests = []
    text = []
    for key, test in _STEP_TESTS.items():
        if key in step:
            if not _is_number(step[key]):
                problems.append((f"{path}.{key}", f"must be a number, got {step[key]!r}"))
                return None
            tests.append((test, float(step[key])))
            text.append(f"{key} {format_value(step[key])}")
    has_equals = "equals" in step
    if has_equals:
        text.append(f"= {format_value(step['equals'])}")
    if not tests and not has_equals:
        problems.append((path, "needs at least one of min, above, max, below, equals"))
        return None
    score = _score_value(step["score"], f"{path}.score", problems)
    if score is None:
        return None
    return Step(tests, step.get("equals"), has_equals, score, " ".join(text) + f" -> {format_value(score)}")


def _thresholds(node, path, problems, name, signal, weight):
    _allowed(node, {"steps", "else"}, path, problems)
    steps, otherwise = _build_steps(node, path, problems)
    return ThresholdMeasure(name, signal, weight, steps, otherwise) if otherwise is not None else None


def _percentile(node, path, problems, name, signal, weight):
    _allowed(node, {"steps", "else", "within", "higher_is_better"}, path, problems)
    within = node.get("within", "population")
    if within not in ("population", "segment"):
        problems.append((f"{path}.within", f"must be population or segment, got {within!r}"))
    higher = node.get("higher_is_better", True)
    if not isinstance(higher, bool):
        problems.append((f"{path}.higher_is_better", "must be true or false"))
    steps, otherwise = _build_steps(node, path, problems)
    for i, step in enumerate(steps):
        if any(not 0 <= bound <= 100 for _, bound in step.tests):
            problems.append((f"{path}.steps[{i}]", "percentile bounds must be within 0..100"))
    if otherwise is None:
        return None
    return PercentileMeasure(name, signal, weight, steps, otherwise, within, higher)


def _linear(node, path, problems, name, signal, weight):
    _allowed(node, {"points"}, path, problems)
    points = node.get("points")
    if not isinstance(points, list) or len(points) < 2:
        problems.append((f"{path}.points", "must list at least two [value, score] pairs"))
        return None
    parsed = []
    for i, point in enumerate(points):
        if (not isinstance(point, list) or len(point) != 2 or not _is_number(point[0])):
            problems.append((f"{path}.points[{i}]", f"must be a [value, score] pair of numbers, got {point!r}"))
            return None
        score = _score_value(point[1], f"{path}.points[{i}][1]", problems)
        if score is None:
            return None
        parsed.append((float(point[0]), score))
    xs = [p[0] for p in parsed]
    if any(b <= a for a, b in pairwise(xs)):
        problems.append((f"{path}.points", "values must be strictly increasing"))
        return None
    return LinearMeasure(name, signal, weight, parsed)


def _inverse(node, path, problems, name, signal, weight):
    _allowed(node, {"best", "worst"}, path, problems)
    best, worst = node.get("best"), node.get("worst")
    if not _is_number(best) or not _is_number(worst):
        problems.append((path, "inverse needs numeric best (scores 100) and worst (scores 0)"))
        return None
    if worst <= best:
        problems.append((f"{path}.worst", f"must be greater than best ({best}): more of this signal is worse"))
        return None
    return InverseMeasure(name, signal, weight, float(best), float(worst))


_BUILDERS = {"thresholds": _thresholds, "percentile": _percentile, "linear": _linear, "inverse": _inverse}
