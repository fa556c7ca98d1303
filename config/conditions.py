"""Conditions as they are written in YAML (`all`/`any`/`not`, `{signal, op, value}`, `changed`, `crossed`),
validated against the names they may use and built into scoring's condition values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from healthsync.config.documents import Document, KeyPath, Name, at_path, known_name, number, tagged_union
from healthsync.scoring import conditions as scoring
from healthsync.scoring.conditions import CONTEXT_KINDS, OPS, ORDERING_OPS, format_value
from healthsync.scoring.playbook import RULE_KINDS
from healthsync.scoring.signals import SIGNAL_KINDS

# other spellings of the operators, as people type them
OP_ALIASES = {
    "lt": "<", "lte": "<=", "le": "<=", "gt": ">", "gte": ">=", "ge": ">=", "eq": "==", "=": "==", "ne": "!=",
}
_VALUE_CHECKS = {
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "text": lambda v: isinstance(v, str),
}
_FORMS = "{all: [...]}, {any: [...]}, {not: ...}, {signal, op, value}, {changed: ...} or {crossed: ...}"
_FORM_KEYS = ("all", "any", "not", "changed", "crossed", "signal")

SignalName = known_name(SIGNAL_KINDS, "signal", "see scoring.signals.SIGNALS")
RuleName = known_name(RULE_KINDS, "signal", f"see scoring.signals.SIGNALS or the rule context names {sorted(CONTEXT_KINDS)}")


def normalise_op(value: Any) -> str | None:
    """The canonical operator for `value` (`GTE` -> `>=`), or None when it is not one."""
    if not isinstance(value, str):
        return None
    op = OP_ALIASES.get(value.strip().lower(), value.strip())
    return op if op in OPS else None


def _operator(value: Any) -> str:
    op = normalise_op(value)
    if op is None:
        raise PydanticCustomError("operator", "{op} is not an operator; use one of {ops}",
                                  {"op": repr(value), "ops": str(list(OPS))})
    return op


def _comparison_operator(value: Any) -> str:
    op = normalise_op(value)
    if op not in ORDERING_OPS and op not in ("==", "!="):
        raise PydanticCustomError("operator", "must be a comparison: <, <=, >, >=, ==, !=")
    return op


def _one_of(*allowed: str, message: str) -> BeforeValidator:
    def check(value: Any) -> Any:
        if value not in allowed:
            raise PydanticCustomError("choice", message)
        return value
    return BeforeValidator(check)


def _band_set(value: Any) -> Any:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise PydanticCustomError("bands", "must be a band name or a list of band names")
    return frozenset(names)


Operator = Annotated[str, BeforeValidator(_operator)]
ComparisonOperator = Annotated[str, BeforeValidator(_comparison_operator)]
BandNames = Annotated[frozenset[str], BeforeValidator(_band_set)]


class Comparison(Document):
    """`{signal, op, value}`: the value must suit the signal's kind (a number for `<`, a list for `in`)."""

    expected: ClassVar[str] = "a mapping {signal, op, value}"
    kinds: ClassVar[Mapping[str, str]] = RULE_KINDS
    signal: RuleName = Field(description="a signal or rule context name")
    op: Operator = Field(description=f"an operator: one of {list(OPS)}")
    value: Any = None

    @model_validator(mode="after")
    def _value_fits(self) -> Comparison:
        op, kind = self.op, self.kinds[self.signal]
        if op in ("is_null", "not_null"):
            return self
        if "value" not in self.model_fields_set:
            raise PydanticCustomError("needs_value", "op {op} needs a value", {"op": repr(op)})
        problem = _value_problem(kind, op, self.value)
        if problem:
            raise at_path("value", problem)
        return self

    def condition(self) -> scoring.Compare:
        if self.op in ("is_null", "not_null"):
            return scoring.Compare(self.signal, self.op, None)
        value = tuple(self.value) if self.op in ("in", "not_in") else self.value
        return scoring.Compare(self.signal, self.op, value)


def _value_problem(kind: str, op: str, value: Any) -> str | None:
    if op in ORDERING_OPS and kind != "number":
        return f"{op} needs a numeric signal; this one is {kind}"
    if op in ("in", "not_in") and (not isinstance(value, list) or not value):
        return f"{op} needs a non-empty list"
    values = value if op in ("in", "not_in") else [value]
    bad = [v for v in values if not _VALUE_CHECKS[kind](v)]
    if bad:
        return f"expected a {kind} value, got {format_value(bad[0])!s} ({type(bad[0]).__name__})"
    return None


class Flag(Comparison):
    """A named comparison over a signal, reported among a result's active signals when it holds."""

    expected: ClassVar[str] = "a mapping with a name, signal, op and value"
    kinds: ClassVar[Mapping[str, str]] = SIGNAL_KINDS
    name: Name = Field(description="the name reported among a result's active signals")
    signal: SignalName = Field(description="a signal name (see scoring.signals.SIGNALS)")

    @model_validator(mode="before")
    @classmethod
    def _single_comparison(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(key in data for key in ("all", "any", "not", "changed", "crossed")):
            raise PydanticCustomError("flag_form", "a flag is a single {signal, op, value} comparison")
        return data

    def flag(self) -> tuple[str, scoring.Compare]:
        return self.name, self.condition()


class AllOf(Document):
    all: list[Condition] = Field(min_length=1, description="a non-empty list of conditions")

    def condition(self) -> scoring.All:
        return scoring.All(tuple(c.condition() for c in self.all))


class AnyOf(Document):
    any: list[Condition] = Field(min_length=1, description="a non-empty list of conditions")

    def condition(self) -> scoring.Any_:
        return scoring.Any_(tuple(c.condition() for c in self.any))


class NotOf(Document):
    not_: Condition = Field(alias="not", description="a condition")

    def condition(self) -> scoring.Not:
        return scoring.Not(self.not_.condition())


class ScoreChange(Document):
    """`{changed: score, since: 7d, op: "<", value: -10}`: points of change since an earlier score."""

    changed: Literal["score"]
    since: scoring.DeltaSince = "previous"
    op: ComparisonOperator = Field(description="a comparison: <, <=, >, >=, ==, !=")
    value: number("a number (points of score change, negative = drop)") = Field(
        description="a number (points of score change, negative = drop)")

    def condition(self) -> scoring.ScoreChanged:
        return scoring.ScoreChanged(self.since, self.op, self.value)


class BandChange(Document):
    """`{changed: band, from: ..., to: ..., direction: worse}`."""

    changed: Literal["band"]
    from_: BandNames | None = Field(default=None, alias="from")
    to: BandNames | None = None
    direction: scoring.BandDirection | None = None

    def condition(self) -> scoring.BandChanged:
        return scoring.BandChanged(self.from_, self.to, self.direction)


class Crossing(Document):
    """`{crossed: score, below: 70, initial: true}` (or `above:`)."""

    crossed: Annotated[str, _one_of("score", message="only score can be crossed (use changed: band for bands)")]
    below: float | None = None
    above: float | None = None
    initial: bool = False

    @model_validator(mode="after")
    def _one_threshold(self) -> Crossing:
        if (self.below is None) == (self.above is None):
            raise PydanticCustomError("threshold", "give exactly one of below: N or above: N")
        return self

    def condition(self) -> scoring.ScoreCrossed:
        below = self.below is not None
        return scoring.ScoreCrossed(below, self.below if below else self.above, self.initial)


def _form(value: Any) -> str | None:
    """Which condition form a mapping is, by the first form key it has."""
    if not isinstance(value, dict):
        return None
    for key in _FORM_KEYS:
        if key in value:
            if key == "changed":
                return f"changed {value['changed']}" if value["changed"] in ("score", "band") else None
            return key
    return None


def _why_no_form(value: Any) -> tuple[KeyPath, str]:
    if not isinstance(value, dict) or not value:
        return (), f"must be a mapping: {_FORMS}"
    if "changed" in value:
        return ("changed",), "must be score or band"
    return (), (f"unknown condition keys {sorted(map(str, value))}; expected one of "
                "all, any, not, signal, changed, crossed")


Condition = tagged_union(
    "condition_form",
    {"all": AllOf, "any": AnyOf, "not": NotOf, "changed score": ScoreChange, "changed band": BandChange,
     "crossed": Crossing, "signal": Comparison},
    _form, _why_no_form,
)

for _model in (AllOf, AnyOf, NotOf):
    _model.model_rebuild()
