"""Mixpanel's segmentation expression language, as the `where` parameter of the export and engage APIs uses it.

Grammar and examples from "Segmentation Expressions" (https://docs.mixpanel.com/reference/segmentation-expressions):
    <expression> ::= properties["name"] | user["name"] | <expression> <binary op> <expression>
                   | <unary op> <expression> | <math op>(<expression>) | <typecast op>(<expression>)
                   | defined(<expression>) | (<expression>) | boolean, numeric, string and [list] literals
    binary ops: + - * / % == != > >= < <= in and or     unary: - not
    math ops: floor round ceil                         typecasts: boolean number string
Truthiness and typecasts follow "Supported Properties Data Type" (https://docs.mixpanel.com/docs/data-structure/property-reference/data-type):
"false", 0, null, undefined and "" are false. `x in <list>` is membership, `x in <string>` a substring test.
Left out (not in that grammar): `datetime()`, relative dates, regex functions and the `on` parameter.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

Scope = dict[str, Any]
Node = Callable[[Scope, Scope], Any]
Predicate = Callable[..., bool]

_TOKEN = re.compile(r"""\s*(?:
      (?P<num>\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
    | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    | (?P<op>==|!=|>=|<=|>|<|\+|-|\*|/|%|\(|\)|\[|\]|,)
    | (?P<word>[A-Za-z_][A-Za-z_0-9]*)
    )""", re.VERBOSE)
_BINARY = {"or": 1, "and": 2, "==": 4, "!=": 4, ">": 4, ">=": 4, "<": 4, "<=": 4, "in": 4,
           "+": 5, "-": 5, "*": 6, "/": 6, "%": 6}
_NOT_PRECEDENCE = 3
_NEG_PRECEDENCE = 7
_FUNCTIONS = ("boolean", "number", "string", "floor", "round", "ceil", "defined")
_ACCESSORS = ("properties", "user")


class WhereError(ValueError):
    """A `where` expression that does not parse: Mixpanel answers 400."""


def compile_where(text: str | None) -> Predicate | None:
    """A predicate over (event or profile properties[, people properties]), or None for no filter."""
    if text is None or not text.strip():
        return None
    tokens = _tokenize(text)
    node = _Parser(tokens).parse()

    def predicate(props: Scope, user: Scope | None = None) -> bool:
        return to_boolean(node(props, props if user is None else user))

    predicate.uses_user = ("word", "user") in tokens  # type: ignore[attr-defined]  # lets callers skip the lookup
    return predicate


def _tokenize(text: str) -> list[tuple[str, Any]]:
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise WhereError(f"cannot read `where` at {text[pos:pos + 20]!r}")
        pos = match.end()
        kind = match.lastgroup
        value = match.group(kind)
        if kind == "num":
            tokens.append(("lit", float(value) if any(c in value for c in ".eE") else int(value)))
        elif kind == "str":
            tokens.append(("lit", _string_literal(value)))
        elif kind == "word" and value in ("true", "false"):
            tokens.append(("lit", value == "true"))
        elif kind == "word" and value in ("null", "undefined"):
            tokens.append(("lit", None))
        else:
            tokens.append((kind, value))
    return tokens


def _string_literal(raw: str) -> str:
    if raw.startswith('"'):
        return json.loads(raw)
    return raw[1:-1].replace("\\'", "'").replace("\\\\", "\\")


class _Parser:
    """Precedence climbing over the tokens: or < and < not < comparison/in < + - < * / % < unary minus."""

    def __init__(self, tokens: list[tuple[str, Any]]):
        self.tokens, self.pos = tokens, 0

    def peek(self) -> tuple[str, Any] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, kind: str, value: Any = None) -> Any:
        token = self.peek()
        if token is None or token[0] != kind or (value is not None and token[1] != value):
            found = token[1] if token else "end of expression"
            raise WhereError(f"expected {value or kind}, found {found!r}")
        self.pos += 1
        return token[1]

    def parse(self) -> Node:
        node = self.expression(0)
        if self.peek() is not None:
            raise WhereError(f"unexpected {self.peek()[1]!r}")  # type: ignore[index]
        return node

    def expression(self, min_precedence: int) -> Node:
        left = self.unary()
        while True:
            token = self.peek()
            op = token[1] if token and token[0] in ("op", "word") else None
            precedence = _BINARY.get(op) if op else None
            if precedence is None or precedence <= min_precedence:
                return left
            self.pos += 1
            left = _binary(op, left, self.expression(precedence))

    def unary(self) -> Node:
        token = self.peek()
        if token == ("word", "not"):
            self.pos += 1
            inner = self.expression(_NOT_PRECEDENCE - 1)
            return lambda p, u: not to_boolean(inner(p, u))
        if token == ("op", "-"):
            self.pos += 1
            inner = self.expression(_NEG_PRECEDENCE)
            return lambda p, u: _arith("-", 0, inner(p, u))
        return self.primary()

    def primary(self) -> Node:
        token = self.peek()
        if token is None:
            raise WhereError("the expression ends too early")
        kind, value = token
        self.pos += 1
        if kind == "lit":
            return lambda p, u: value
        if token == ("op", "("):
            inner = self.expression(0)
            self.take("op", ")")
            return inner
        if token == ("op", "["):
            return self.list_literal()
        if kind == "word" and value in _ACCESSORS:
            return self.accessor(value)
        if kind == "word" and value in _FUNCTIONS:
            return self.call(value)
        raise WhereError(f"unexpected {value!r}")

    def accessor(self, scope: str) -> Node:
        self.take("op", "[")
        name = self.take("lit")
        self.take("op", "]")
        if not isinstance(name, str):
            raise WhereError(f"{scope}[...] needs a quoted property name")
        if scope == "user":
            return lambda p, u: u.get(name)
        return lambda p, u: p.get(name)

    def call(self, name: str) -> Node:
        self.take("op", "(")
        inner = self.expression(0)
        self.take("op", ")")
        fn = _CALLS[name]
        return lambda p, u: fn(inner(p, u))

    def list_literal(self) -> Node:
        items: list[Node] = []
        while self.peek() != ("op", "]"):
            items.append(self.expression(0))
            if self.peek() == ("op", ","):
                self.pos += 1
            elif self.peek() != ("op", "]"):
                raise WhereError("expected , or ] in a list")
        self.pos += 1
        return lambda p, u: [item(p, u) for item in items]


# ----------------------------------------------------------------------------------------------- semantics


def to_boolean(value: Any) -> bool:
    """`boolean()` typecast: "false", 0, null, undefined and "" are false; every other set value is true."""
    if value is None or value is False or value == "" or value == "false":
        return False
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value != 0
    return True


def to_number(value: Any) -> float | int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def to_string(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value if isinstance(value, str) else json.dumps(value) if isinstance(value, list | dict) else str(value)


def _rounding(fn: Callable[[float], Any]) -> Callable[[Any], Any]:
    def apply(value: Any) -> Any:
        number = to_number(value) if not isinstance(value, str) else None
        return None if number is None else fn(number)

    return apply


_CALLS: dict[str, Callable[[Any], Any]] = {
    "boolean": to_boolean, "number": to_number, "string": to_string, "defined": lambda v: v is not None,
    "floor": _rounding(math.floor), "ceil": _rounding(math.ceil), "round": _rounding(round),
}


def _binary(op: str, left: Node, right: Node) -> Node:
    if op == "and":
        return lambda p, u: to_boolean(left(p, u)) and to_boolean(right(p, u))
    if op == "or":
        return lambda p, u: to_boolean(left(p, u)) or to_boolean(right(p, u))
    if op == "in":
        return lambda p, u: _contains(right(p, u), left(p, u))
    if op in ("+", "-", "*", "/", "%"):
        return lambda p, u: _arith(op, left(p, u), right(p, u))
    return lambda p, u: _compare(op, left(p, u), right(p, u))


def _contains(container: Any, item: Any) -> bool:
    if isinstance(container, list):
        return any(_equal(item, element) for element in container)
    if isinstance(container, str) and isinstance(item, str):
        return item in container
    return False


def _equal(left: Any, right: Any) -> bool:
    if _is_number(left) and _is_number(right):
        return left == right
    return type(left) is type(right) and left == right


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _compare(op: str, left: Any, right: Any) -> bool:
    if op == "==":
        return _equal(left, right)
    if op == "!=":
        return not _equal(left, right)
    comparable = (_is_number(left) and _is_number(right)) or (isinstance(left, str) and isinstance(right, str))
    if not comparable:
        return False  # an undefined or mistyped side makes an ordering comparison false
    return {">": left > right, ">=": left >= right, "<": left < right, "<=": left <= right}[op]


def _arith(op: str, left: Any, right: Any) -> Any:
    if op == "+" and isinstance(left, str) and isinstance(right, str):
        return left + right
    if not (_is_number(left) and _is_number(right)):
        return None
    if op in ("/", "%") and right == 0:
        return None
    return {"+": left + right, "-": left - right, "*": left * right, "/": left / right, "%": left % right}[op]
