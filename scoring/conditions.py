"""Structured conditions (`all`/`any`/`not` over `{signal, op, value}`, plus `changed`/`crossed` on score
and band): frozen values (`healthsync.config.conditions` builds them from YAML), each compiling itself into
a closure once — never `eval`.

A comparison against missing data (`None`) is false, so a rule never fires on data we do not have;
use `op: is_null` to act on missing data on purpose.
"""

from __future__ import annotations

import operator
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from healthsync.scoring.base import ContextValue, HistoryFacts

# context names a playbook may use besides signals, with their kind
CONTEXT_KINDS: Mapping[str, str] = {
    "score": "number",
    "band": "text",
    "is_healthy": "bool",
    "previous_score": "number",
    "previous_band": "text",
    "score_delta_7d": "number",
    "score_delta_30d": "number",
    "score_decline_weeks": "number",
    "renewal_stage": "text",
    "segment": "text",
    "insufficient_data": "bool",
    "coverage_pct": "number",
}

ORDERING_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
OPS = ("<", "<=", ">", ">=", "==", "!=", "in", "not_in", "is_null", "not_null")
DeltaSince = Literal["previous", "7d", "30d"]
BandDirection = Literal["worse", "better"]


class Context(Protocol):
    data: Mapping[str, ContextValue]  # signals and rule context names, merged
    history: HistoryFacts
    score: int
    band: str
    band_ranks: Mapping[str, int]
    evidence: Mapping[str, str]

    def get(self, name: str) -> ContextValue: ...


def format_value(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.1f}"
    if isinstance(value, (list, tuple, set, frozenset)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return str(value)


class Condition(ABC):
    """A condition value. `fn(ctx)` is the hot path: a closure built once, cheap to call per account."""

    fn: Callable[[Context], bool]

    def _compile(self, fn: Callable[[Context], bool]) -> None:
        object.__setattr__(self, "fn", fn)  # derived from the fields, so not a field itself

    def test(self, ctx: Context) -> bool:
        return self.fn(ctx)

    @abstractmethod
    def reasons(self, ctx: Context) -> list[str]:
        """Why the condition holds, with the values that made it hold (called only when it does)."""

    @abstractmethod
    def describe(self) -> str: ...


@dataclass(frozen=True)
class Compare(Condition):
    """`name op value` over a signal or rule context name; `value` is a tuple for in / not_in."""

    name: str
    op: str  # one of OPS
    value: Any = None

    def __post_init__(self) -> None:
        name, op, value = self.name, self.op, self.value
        object.__setattr__(self, "check", _predicate(op, value))
        self._compile(_leaf(name, op, value))
        if op in ("is_null", "not_null"):
            description = f"{name} {'is missing' if op == 'is_null' else 'is present'}"
        else:
            description = f"{name} {op} {format_value(value)}"
        object.__setattr__(self, "_description", description)

    def describe(self) -> str:
        return self._description

    def reasons(self, ctx: Context) -> list[str]:
        name = self.name
        text = f"{name} = {format_value(ctx.get(name))} ({self._description})"
        note = ctx.evidence.get(name)
        return [f"{text} [{note}]" if note else text]


def _leaf(name: str, op: str, expected: Any) -> Callable[[Context], bool]:
    """The same test as `_predicate`, reading the value itself: one call per leaf instead of three."""
    if op == "<":
        return lambda ctx: (v := ctx.data.get(name)) is not None and v < expected
    if op == "<=":
        return lambda ctx: (v := ctx.data.get(name)) is not None and v <= expected
    if op == ">":
        return lambda ctx: (v := ctx.data.get(name)) is not None and v > expected
    if op == ">=":
        return lambda ctx: (v := ctx.data.get(name)) is not None and v >= expected
    if op == "==":
        return lambda ctx: (v := ctx.data.get(name)) is not None and v == expected
    check = _predicate(op, expected)
    return lambda ctx: check(ctx.data.get(name))


def _predicate(op: str, expected: Any) -> Callable[[Any], bool]:
    if op in ORDERING_OPS:
        compare = ORDERING_OPS[op]
        return lambda v: v is not None and compare(v, expected)
    if op == "==":
        return lambda v: v is not None and v == expected
    if op == "!=":
        return lambda v: v is not None and v != expected
    if op == "in":
        choices = frozenset(expected)
        return lambda v: v is not None and v in choices
    if op == "not_in":
        choices = frozenset(expected)
        return lambda v: v is not None and v not in choices
    if op == "is_null":
        return lambda v: v is None
    return lambda v: v is not None


@dataclass(frozen=True)
class All(Condition):
    children: tuple[Condition, ...]

    def __post_init__(self) -> None:
        fns = tuple(child.fn for child in self.children)
        if len(fns) == 1:
            self._compile(fns[0])
        elif len(fns) == 2:
            first, second = fns
            self._compile(lambda ctx: first(ctx) and second(ctx))
        else:
            def every(ctx: Context) -> bool:
                for fn in fns:
                    if not fn(ctx):
                        return False
                return True
            self._compile(every)

    def reasons(self, ctx: Context) -> list[str]:
        return [r for child in self.children for r in child.reasons(ctx)]

    def describe(self) -> str:
        return " and ".join(c.describe() for c in self.children)


@dataclass(frozen=True)
class Any_(Condition):
    children: tuple[Condition, ...]

    def __post_init__(self) -> None:
        fns = tuple(child.fn for child in self.children)

        def some(ctx: Context) -> bool:
            for fn in fns:
                if fn(ctx):
                    return True
            return False
        self._compile(some)

    def reasons(self, ctx: Context) -> list[str]:
        return [r for child in self.children if child.test(ctx) for r in child.reasons(ctx)]

    def describe(self) -> str:
        return "(" + " or ".join(c.describe() for c in self.children) + ")"


@dataclass(frozen=True)
class Not(Condition):
    child: Condition

    def __post_init__(self) -> None:
        inner = self.child.fn
        self._compile(lambda ctx: not inner(ctx))

    def reasons(self, ctx: Context) -> list[str]:
        names = _names(self.child)
        values = ", ".join(f"{n} = {format_value(ctx.get(n))}" for n in names)
        return [f"not ({self.child.describe()})" + (f": {values}" if values else "")]

    def describe(self) -> str:
        return f"not ({self.child.describe()})"


def _names(condition: Condition) -> list[str]:
    if isinstance(condition, Compare):
        return [condition.name]
    if isinstance(condition, (All, Any_)):
        return [n for child in condition.children for n in _names(child)]
    if isinstance(condition, Not):
        return _names(condition.child)
    return []


@dataclass(frozen=True)
class BandChanged(Condition):
    """The band differs from the previous result's; optionally from / to given bands, or worse / better."""

    from_bands: frozenset[str] | None = None
    to_bands: frozenset[str] | None = None
    direction: BandDirection | None = None

    def __post_init__(self) -> None:
        self._compile(self._changed)

    def _changed(self, ctx: Context) -> bool:
        previous = ctx.history.previous_band
        band = ctx.band
        if previous is None or previous == band:
            return False
        if self.from_bands is not None and previous not in self.from_bands:
            return False
        if self.to_bands is not None and band not in self.to_bands:
            return False
        if self.direction is not None:
            ranks = ctx.band_ranks
            if previous not in ranks:
                return False
            worse = ranks[band] > ranks[previous]  # rank 0 is the best band
            return worse if self.direction == "worse" else not worse
        return True

    def reasons(self, ctx: Context) -> list[str]:
        return [f"band changed {ctx.history.previous_band} -> {ctx.band} (score {ctx.score})"]

    def describe(self) -> str:
        parts = ["band changed"]
        if self.from_bands:
            parts.append("from " + "/".join(sorted(self.from_bands)))
        if self.to_bands:
            parts.append("to " + "/".join(sorted(self.to_bands)))
        if self.direction:
            parts.append(f"({self.direction})")
        return " ".join(parts)


@dataclass(frozen=True)
class ScoreChanged(Condition):
    """`score change since {previous, 7d, 30d} op value` (points; negative = a drop)."""

    since: DeltaSince
    op: str  # a comparison: one of ORDERING_OPS, == or !=
    value: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "check", _predicate(self.op, self.value))
        self._compile(lambda ctx: self.check(self.delta(ctx)))

    def delta(self, ctx: Context) -> int | None:
        history = ctx.history
        if self.since == "7d":
            return history.delta_7d
        if self.since == "30d":
            return history.delta_30d
        return None if history.previous_score is None else ctx.score - history.previous_score

    def reasons(self, ctx: Context) -> list[str]:
        delta = self.delta(ctx)
        return [f"score changed {delta:+d} since {self.since} (now {ctx.score}; {self.describe()})"]

    def describe(self) -> str:
        return f"score change since {self.since} {self.op} {format_value(self.value)}"


@dataclass(frozen=True)
class ScoreCrossed(Condition):
    """The score went below (or to/above) `threshold` since the previous result; `initial`: a first
    score already beyond it counts too."""

    below: bool
    threshold: float
    initial: bool = False

    def __post_init__(self) -> None:
        self._compile(self._crossed)

    def _beyond(self, score: float) -> bool:
        return score < self.threshold if self.below else score >= self.threshold

    def _crossed(self, ctx: Context) -> bool:
        if not self._beyond(ctx.score):
            return False
        previous = ctx.history.previous_score
        if previous is None:
            return self.initial
        return not self._beyond(previous)

    def reasons(self, ctx: Context) -> list[str]:
        previous = ctx.history.previous_score
        was = "first score" if previous is None else f"was {previous}"
        return [f"score crossed {'below' if self.below else 'above'} {format_value(self.threshold)} "
                f"(now {ctx.score}, {was})"]

    def describe(self) -> str:
        return f"score crossed {'below' if self.below else 'above'} {format_value(self.threshold)}"
