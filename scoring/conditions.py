"""Structured conditions (`all`/`any`/`not` over `{signal, op, value}`, plus `changed`/`crossed` on score
and band), compiled once from YAML into small objects — never `eval`.

A comparison against missing data (`None`) is false, so a rule never fires on data we do not have;
use `op: is_null` to act on missing data on purpose.
"""

from __future__ import annotations

import operator
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from healthsync.scoring.base import ContextValue, HistoryFacts

Problems = list[tuple[str, str]]

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

_ORDERING = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_OP_ALIASES = {
    "lt": "<", "lte": "<=", "le": "<=", "gt": ">", "gte": ">=", "ge": ">=", "eq": "==", "=": "==", "ne": "!=",
}
_OPS = ("<", "<=", ">", ">=", "==", "!=", "in", "not_in", "is_null", "not_null")


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


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class Condition(ABC):
    """A compiled condition. `fn(ctx)` is the hot path: a closure built once, cheap to call per account."""

    __slots__ = ("fn",)
    fn: Callable[[Context], bool]

    def test(self, ctx: Context) -> bool:
        return self.fn(ctx)

    @abstractmethod
    def reasons(self, ctx: Context) -> list[str]:
        """Why the condition holds, with the values that made it hold (called only when it does)."""

    @abstractmethod
    def describe(self) -> str: ...


class Compare(Condition):
    __slots__ = ("name", "op", "value", "check", "_description")

    def __init__(self, name: str, op: str, value: Any):
        self.name, self.op, self.value = name, op, value
        self.check = _predicate(op, value)
        self.fn = _leaf(name, op, value)
        if op in ("is_null", "not_null"):
            self._description = f"{name} {'is missing' if op == 'is_null' else 'is present'}"
        else:
            self._description = f"{name} {op} {format_value(value)}"

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
    if op in _ORDERING:
        compare = _ORDERING[op]
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


class All(Condition):
    __slots__ = ("children",)

    def __init__(self, children: list[Condition]):
        self.children = tuple(children)
        fns = tuple(child.fn for child in self.children)
        if len(fns) == 1:
            self.fn = fns[0]
        elif len(fns) == 2:
            first, second = fns
            self.fn = lambda ctx: first(ctx) and second(ctx)
        else:
            def every(ctx: Context) -> bool:
                for fn in fns:
                    if not fn(ctx):
                        return False
                return True
            self.fn = every

    def reasons(self, ctx: Context) -> list[str]:
        return [r for child in self.children for r in child.reasons(ctx)]

    def describe(self) -> str:
        return " and ".join(c.describe() for c in self.children)


class Any_(Condition):
    __slots__ = ("children",)

    def __init__(self, children: list[Condition]):
        self.children = tuple(children)
        fns = tuple(child.fn for child in self.children)

        def some(ctx: Context) -> bool:
            for fn in fns:
                if fn(ctx):
                    return True
            return False
        self.fn = some

    def reasons(self, ctx: Context) -> list[str]:
        return [r for child in self.children if child.test(ctx) for r in child.reasons(ctx)]

    def describe(self) -> str:
        return "(" + " or ".join(c.describe() for c in self.children) + ")"


class Not(Condition):
    __slots__ = ("child",)

    def __init__(self, child: Condition):
        self.child = child
        inner = child.fn
        self.fn = lambda ctx: not inner(ctx)

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


class BandChanged(Condition):
    __slots__ = ("from_bands", "to_bands", "direction")

    def __init__(self, from_bands: frozenset[str] | None, to_bands: frozenset[str] | None, direction: str | None):
        self.from_bands, self.to_bands, self.direction = from_bands, to_bands, direction
        self.fn = self._changed

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


_DELTA_SOURCES = {"previous", "7d", "30d"}


class ScoreChanged(Condition):
    __slots__ = ("since", "op", "value", "check")

    def __init__(self, since: str, op: str, value: float):
        self.since, self.op, self.value = since, op, value
        self.check = _predicate(op, value)
        self.fn = lambda ctx: self.check(self.delta(ctx))

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


class ScoreCrossed(Condition):
    __slots__ = ("below", "threshold", "initial")

    def __init__(self, below: bool, threshold: float, initial: bool):
        self.below, self.threshold, self.initial = below, threshold, initial
        self.fn = self._crossed

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


# ------------------------------------------------------------------------------------------ compile


def compile_condition(node: Any, path: str, problems: Problems, kinds: Mapping[str, str]) -> Condition | None:
    """Build a condition from parsed YAML; every problem found is appended to `problems` with its path.
    `kinds` maps each name the condition may use to "number", "bool" or "text"."""
    if not isinstance(node, Mapping) or not node:
        problems.append((path, "must be a mapping: {all: [...]}, {any: [...]}, {not: ...}, "
                               "{signal, op, value}, {changed: ...} or {crossed: ...}"))
        return None
    for key in ("all", "any"):
        if key in node:
            return _compile_group(key, node, path, problems, kinds)
    if "not" in node:
        _only(node, {"not"}, path, problems)
        child = compile_condition(node["not"], f"{path}.not", problems, kinds)
        return Not(child) if child else None
    if "changed" in node:
        return _compile_changed(node, path, problems)
    if "crossed" in node:
        return _compile_crossed(node, path, problems)
    if "signal" in node:
        return _compile_compare(node, path, problems, kinds)
    problems.append((path, f"unknown condition keys {sorted(map(str, node))}; expected one of "
                           "all, any, not, signal, changed, crossed"))
    return None


def _only(node: Mapping, allowed: set[str], path: str, problems: Problems) -> None:
    extra = sorted(str(k) for k in node if k not in allowed)
    if extra:
        problems.append((path, f"unexpected keys {extra}; allowed: {sorted(allowed)}"))


def _compile_group(key: str, node: Mapping, path: str, problems: Problems, kinds: Mapping[str, str]):
    _only(node, {key}, path, problems)
    items = node[key]
    if not isinstance(items, list) or not items:
        problems.append((f"{path}.{key}", "must be a non-empty list of conditions"))
        return None
    children = [compile_condition(item, f"{path}.{key}[{i}]", problems, kinds) for i, item in enumerate(items)]
    if any(child is None for child in children):
        return None
    return All(children) if key == "all" else Any_(children)


def normalise_op(op: Any) -> str | None:
    if not isinstance(op, str):
        return None
    op = _OP_ALIASES.get(op.strip().lower(), op.strip())
    return op if op in _OPS else None


def _compile_compare(node: Mapping, path: str, problems: Problems, kinds: Mapping[str, str]):
    _only(node, {"signal", "op", "value"}, path, problems)
    name = node.get("signal")
    kind = kinds.get(name) if isinstance(name, str) else None
    if kind is None:
        problems.append((f"{path}.signal", f"unknown signal {name!r}; see scoring.signals.SIGNALS "
                                           f"or the rule context names {sorted(CONTEXT_KINDS)}"))
    op = normalise_op(node.get("op"))
    if op is None:
        problems.append((f"{path}.op", f"{node.get('op')!r} is not an operator; use one of {list(_OPS)}"))
    if kind is None or op is None:
        return None
    if op in ("is_null", "not_null"):
        return Compare(name, op, None)
    if "value" not in node:
        problems.append((path, f"op {op!r} needs a value"))
        return None
    value = node["value"]
    if not _value_fits(kind, op, value, f"{path}.value", problems):
        return None
    if op in ("in", "not_in"):
        value = tuple(value)
    return Compare(name, op, value)


def _value_fits(kind: str, op: str, value: Any, path: str, problems: Problems) -> bool:
    if op in _ORDERING and kind != "number":
        problems.append((path, f"{op} needs a numeric signal; this one is {kind}"))
        return False
    values = value if op in ("in", "not_in") else [value]
    if op in ("in", "not_in") and (not isinstance(value, list) or not value):
        problems.append((path, f"{op} needs a non-empty list"))
        return False
    check = {"number": _is_number, "bool": lambda v: isinstance(v, bool), "text": lambda v: isinstance(v, str)}[kind]
    bad = [v for v in values if not check(v)]
    if bad:
        problems.append((path, f"expected a {kind} value, got {format_value(bad[0])!s} "
                               f"({type(bad[0]).__name__})"))
        return False
    return True


def _band_set(value: Any, path: str, problems: Problems) -> frozenset[str] | None:
    if value is None:
        return None
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        problems.append((path, "must be a band name or a list of band names"))
        return None
    return frozenset(names)


def _compile_changed(node: Mapping, path: str, problems: Problems):
    what = node.get("changed")
    if what == "band":
        _only(node, {"changed", "from", "to", "direction"}, path, problems)
        direction = node.get("direction")
        if direction not in (None, "worse", "better"):
            problems.append((f"{path}.direction", "must be worse or better"))
            return None
        before = len(problems)
        from_bands = _band_set(node.get("from"), f"{path}.from", problems)
        to_bands = _band_set(node.get("to"), f"{path}.to", problems)
        return None if len(problems) > before else BandChanged(from_bands, to_bands, direction)
    if what == "score":
        _only(node, {"changed", "since", "op", "value"}, path, problems)
        since = str(node.get("since", "previous"))
        op = normalise_op(node.get("op"))
        value = node.get("value")
        ok = True
        if since not in _DELTA_SOURCES:
            problems.append((f"{path}.since", f"must be one of {sorted(_DELTA_SOURCES)}"))
            ok = False
        if op not in _ORDERING and op not in ("==", "!="):
            problems.append((f"{path}.op", "must be a comparison: <, <=, >, >=, ==, !="))
            ok = False
        if not _is_number(value):
            problems.append((f"{path}.value", "must be a number (points of score change, negative = drop)"))
            ok = False
        return ScoreChanged(since, op, value) if ok else None
    problems.append((f"{path}.changed", "must be score or band"))
    return None


def _compile_crossed(node: Mapping, path: str, problems: Problems):
    _only(node, {"crossed", "below", "above", "initial"}, path, problems)
    if node.get("crossed") != "score":
        problems.append((f"{path}.crossed", "only score can be crossed (use changed: band for bands)"))
        return None
    has_below, has_above = "below" in node, "above" in node
    if has_below == has_above:
        problems.append((path, "give exactly one of below: N or above: N"))
        return None
    threshold = node["below"] if has_below else node["above"]
    if not _is_number(threshold):
        problems.append((f"{path}.{'below' if has_below else 'above'}", "must be a number"))
        return None
    initial = node.get("initial", False)
    if not isinstance(initial, bool):
        problems.append((f"{path}.initial", "must be true or false"))
        return None
    return ScoreCrossed(has_below, threshold, initial)
