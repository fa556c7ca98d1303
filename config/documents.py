"""Groundwork for the health-model and playbook documents: strict frozen pydantic models, field types that
say what they expect, and pydantic's errors turned into key paths (`health.components[0].weight`) with fixes."""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Tag, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from healthsync.config.settings import at_path
from healthsync.errors import ConfigError

__all__ = [
    "DefinitionError", "Document", "Issue", "KeyPath", "Name", "NonNegativeDays", "Percentage", "PositiveDays",
    "PositiveNumber", "Score", "StepScore", "at_path", "closest", "known_name", "number", "problem", "tagged_union",
    "validate_document",
]

KeyPath = tuple[str | int, ...]
D = TypeVar("D", bound="Document")


class Document(BaseModel):
    """A part of a document: immutable; unknown keys are errors; no coercion ("60" is not a number)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    expected: ClassVar[str] = "a mapping"  # what to say when the value is not a mapping at all


# --- field types whose errors say what they expect ------------------------------------------------


def problem(kind: str, message: str) -> PydanticCustomError:
    """A validator's error whose message is taken as written (braces in it are not placeholders)."""
    return PydanticCustomError(kind, "{message}", {"message": message})


def _number_check(meaning: str, accept: Callable[[float], bool], whole: bool) -> BeforeValidator:
    def check(value: Any) -> Any:
        kinds = (int,) if whole else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or not accept(value):
            raise PydanticCustomError("number", "must be {meaning}, got {got}", {"meaning": meaning, "got": repr(value)})
        return value
    return BeforeValidator(check)


def _non_empty(value: Any) -> Any:
    if not isinstance(value, str) or not value:
        raise PydanticCustomError("name", "must be a non-empty string")
    return value


def number(meaning: str, accept: Callable[[float], bool] = lambda v: True, *, whole: bool = False) -> Any:
    """A number field (never a bool or a numeric string) whose error reads `must be {meaning}, got ...`."""
    return Annotated[int if whole else float, _number_check(meaning, accept, whole)]


PositiveNumber = number("a positive number", lambda v: v > 0)
# >100 is allowed (seed 003 scores 110) and clamped per component; anything above 1000 is surely a typo
StepScore = number("a score from 0 (values above 100 are clamped per component)", lambda v: 0 <= v <= 1000)
Score = number("a score from 0 to 100", lambda v: 0 <= v <= 100)
Percentage = number("a percentage from 0 to 100", lambda v: 0 <= v <= 100)
NonNegativeDays = number("a whole number of days >= 0", lambda v: v >= 0, whole=True)
PositiveDays = number("a positive whole number of days", lambda v: v > 0, whole=True)
Name = Annotated[str, BeforeValidator(_non_empty)]


def known_name(names: Collection[str], what: str, see: str) -> Any:
    """A str field that must be one of `names`: `unknown signal 'x' (did you mean 'y'?); see ...`."""
    def check(value: Any) -> Any:
        if not isinstance(value, str) or value not in names:
            hint = closest(value, sorted(names)) if isinstance(value, str) else ""
            raise PydanticCustomError("unknown_name", "unknown {what} {name}{hint}; {see}",
                                      {"what": what, "name": repr(value), "hint": hint, "see": see})
        return value
    return Annotated[str, BeforeValidator(check)]


def tagged_union(error_type: str, members: Mapping[str, Any], choose: Callable[[Any], str | None],
                 explain: Callable[[Any], tuple[KeyPath, str]]) -> Any:
    """A union whose member is picked by `choose(value)` (a tag of `members`); when none is picked,
    `explain(value)` says why: (keys below the value the message is about, message)."""
    _UNION_EXPLAINERS[error_type] = explain
    union = Union[tuple(Annotated[member, Tag(tag)] for tag, member in members.items())]  # noqa: UP007
    return Annotated[union, Discriminator(choose, custom_error_type=error_type, custom_error_message="no form fits")]


_UNION_EXPLAINERS: dict[str, Callable[[Any], tuple[KeyPath, str]]] = {}


def closest(word: str, choices: Sequence[str]) -> str:
    """` (did you mean 'x'?)` for a near miss, else nothing."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


# --- errors ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Issue:
    """One problem: its keys from the document's root, the fix, and where its line is when that is not at
    `keys` (an unknown key is reported on its mapping but found on its own line)."""

    keys: KeyPath
    message: str
    line_keys: KeyPath | None = None

    def path(self, where: str) -> str:
        return where + "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in self.keys)


class DefinitionError(ConfigError):
    """A health model or playbook is invalid; `problems` lists every (key path, message) found."""

    def __init__(self, where: str, issues: Sequence[Issue]):
        self.where = where
        self.issues = tuple(dict.fromkeys(issues))
        self.problems = [(issue.path(where), issue.message) for issue in self.issues]
        super().__init__("\n".join(f"{path}: {message}" for path, message in self.problems))


def validate_document(document: type[D], data: Any, where: str, context: Mapping[str, Any] | None = None) -> D:
    """`document` validated from parsed YAML; DefinitionError lists every problem, each with its key path."""
    try:
        return document.model_validate(data, context=dict(context or {}))
    except ValidationError as exc:
        raise DefinitionError(where, [describe(document, error) for error in exc.errors(include_url=False)]) from None


def describe(document: type[Document], error: Mapping[str, Any]) -> Issue:
    """One pydantic error as an Issue: the YAML keys it is at and a message that says the fix."""
    step = _walk(document, error["loc"])
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    if kind == "at_path":  # a validator above the keys it is about (settings.at_path)
        sub = tuple(int(p) if p.isdigit() else p for p in ctx["subpath"].split(".") if p)
        return Issue((*step.keys, *sub), ctx["message"])
    if kind in _UNION_EXPLAINERS:
        below, message = _UNION_EXPLAINERS[kind](value)
        return Issue((*step.keys, *below), message)
    if kind == "extra_forbidden":
        key = step.keys[-1]
        allowed = _keys_of(step.parent)
        hint = closest(str(key), allowed) or (f"; allowed: {', '.join(allowed)}" if allowed else "")
        return Issue(step.keys[:-1], f"unknown key '{key}'{hint}", line_keys=step.keys)
    return Issue(step.keys, _message(kind, ctx, value, step, str(error["msg"])))


def _message(kind: str, ctx: Mapping[str, Any], value: Any, step: _Step, fallback: str) -> str:
    expected = step.expected()
    if kind == "missing":
        return f"is required: {expected}" if step.field and step.field.description else "is required"
    if kind in ("model_type", "model_attributes_type", "dict_type", "list_type", "too_short"):
        return f"must be {expected}{_got(value, kind)}"
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        hint = closest(value, choices) if isinstance(value, str) else ""
        return f"must be one of {choices}, got {value!r}{hint}"
    plain = _PLAIN.get(kind)
    if plain:
        return f"{plain}, got {value!r}"
    return fallback.removeprefix("Value error, ")


_PLAIN = {
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "int_type": "must be a whole number",
    "float_type": "must be a number",
}


def _got(value: Any, kind: str) -> str:
    """`, got 3` for a scalar in the wrong place; nothing for a mapping or list (their shape says enough)."""
    if kind == "too_short" or isinstance(value, (dict, list)):
        return ""
    return f", got {value!r}"


def _keys_of(model: type[BaseModel] | None) -> list[str]:
    if model is None:
        return []
    return [info.alias or name for name, info in model.model_fields.items()]


# --- following an error's location through the document types -------------------------------------


@dataclass
class _Step:
    keys: KeyPath  # the YAML keys and list indexes of the location (union tags left out)
    parent: type[BaseModel] | None  # the model holding the last key
    field: FieldInfo | None  # that key's field, when the location ends on a model field
    target: Any  # the annotation at the location

    def expected(self) -> str:
        """What belongs here: the field's description, else the model's `expected`, else a shape."""
        if self.field is not None and self.field.description:
            return self.field.description
        target = unwrap_annotation(self.target)
        if isinstance(target, type) and issubclass(target, Document):
            return target.expected
        if get_origin(target) in (list, tuple):
            return "a list"
        return "a mapping"


def _walk(document: type[Document], loc: Sequence[Any]) -> _Step:
    keys: list[Any] = []
    current: Any = document
    parent: type[BaseModel] | None = None
    field: FieldInfo | None = None
    for part in loc:
        current = unwrap_annotation(current)
        member = _tagged(current, part)
        if member is not None:  # pydantic puts a union's tag into the location; it is not a YAML key
            current = member
            continue
        if part == "[key]":  # a mapping's key failed: the location is the key itself
            continue
        keys.append(part)
        field = None
        if isinstance(current, type) and issubclass(current, BaseModel):
            parent = current
            field = _field_named(current, part)
            current = field.annotation if field else None
        elif get_origin(current) in (dict, Mapping):
            current = get_args(current)[1]
        elif get_origin(current) in (list, tuple):
            current = get_args(current)[0]
        else:
            current = None
    return _Step(tuple(keys), parent, field, current)


def _field_named(model: type[BaseModel], key: Any) -> FieldInfo | None:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info
    return None


def unwrap_annotation(annotation: Any) -> Any:
    """Strip Annotated[...] and Optional[...] down to the type (or tagged union) that matters."""
    while True:
        if get_origin(annotation) is typing.Annotated:
            annotation = get_args(annotation)[0]
        elif is_union(annotation):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def _tagged(annotation: Any, part: Any) -> Any:
    """The member of a tagged union whose Tag is `part`, or None."""
    if not is_union(annotation):
        return None
    for member in get_args(annotation):
        if get_origin(member) is typing.Annotated:
            base, *metadata = get_args(member)
            if any(isinstance(m, Tag) and m.tag == part for m in metadata):
                return base
    return None


def is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, types.UnionType)
