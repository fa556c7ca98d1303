"""SOQL's syntax: the tokens, the parsed query (select items, conditions, grouping, ordering) and a
recursive-descent parser with the real MALFORMED_QUERY messages ("SOQL SELECT Syntax", SOQL and SOSL Reference:
developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select.htm).

Grammar (keywords case-insensitive):
    query   := SELECT items FROM name [WHERE or] [GROUP BY expr (, expr)*] [HAVING or]
               [ORDER BY order (, order)*] [LIMIT int] [OFFSET int]
    items   := item (, item)*
    item    := ( query ) | TYPEOF rel (WHEN type THEN paths)+ [ELSE paths] END | FIELDS ( ALL|STANDARD|CUSTOM )
             | agg ( [path] ) [alias] | func ( path ) [alias] | path [alias]
    or      := and (OR and)*           and  := not (AND not)*        -- mixing AND/OR needs parentheses
    not     := NOT not | ( or ) | expr op value | expr [NOT] IN ( values | query ) | expr LIKE 'pattern'
    expr    := path | func ( path ) | agg ( [path] )        order := expr [ASC|DESC] [NULLS FIRST|LAST]
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from healthsync.sandbox.salesforce.errors import SfError
from healthsync.sandbox.salesforce.schema import FieldDef, SObjectSchema
from healthsync.sandbox.salesforce.soql_dates import DATE_FUNCTIONS, DATE_LITERALS, N_LITERALS
from healthsync.sandbox.salesforce.store import parse_datetime_value

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^'\\]|\\.)*')
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))
  | (?P<date>\d{4}-\d{2}-\d{2})
  | (?P<number>[+-]?\d+(?:\.\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),.:])
""", re.VERBOSE)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "'": "'", '"': '"', "\\": "\\",
            "_": "\\_", "%": "\\%"}
RESERVED = {"select", "from", "where", "and", "or", "not", "in", "like", "order", "by", "limit", "offset",
            "asc", "desc", "nulls", "first", "last", "null", "true", "false", "group", "having", "includes",
            "excludes", "with", "for", "using", "typeof", "when", "then", "else", "end"}
AGGREGATES = {"count", "count_distinct", "sum", "avg", "min", "max"}
FUNCTIONS = DATE_FUNCTIONS | {"tolabel"}
MAX_OFFSET = 2000


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    pos: int

    def is_word(self, *words: str) -> bool:
        return self.kind == "ident" and self.text.lower() in words


@dataclass
class Path:
    parts: tuple[str, ...]
    pos: int
    steps: tuple[FieldDef, ...] = ()  # reference fields walked (set when bound)
    leaf: FieldDef | None = None

    @property
    def text(self) -> str:
        return ".".join(self.parts)


@dataclass
class FieldExpr:
    """A field, optionally wrapped in a date function or toLabel(); `result` is the type it evaluates to."""

    path: Path
    function: str | None = None
    alias: str | None = None
    result: FieldDef | None = None  # set when bound: the leaf, or a synthetic definition of the function's value

    @property
    def pos(self) -> int:
        return self.path.pos

    @property
    def key(self) -> tuple[str, str]:
        return (self.function or "", self.path.text.lower())

    @property
    def text(self) -> str:
        return f"{self.function.upper()}({self.path.text})" if self.function else self.path.text


@dataclass
class Aggregate:
    function: str
    path: Path | None
    pos: int
    alias: str | None = None
    result: FieldDef | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.function, self.path.text.lower() if self.path else "")

    @property
    def text(self) -> str:
        return f"{self.function.upper()}({self.path.text if self.path else ''})"


@dataclass
class FieldsCall:
    kind: str  # all | standard | custom
    pos: int


@dataclass
class Subquery:
    query: Query
    pos: int
    relation: Any = None  # the ChildRelationship, once bound


@dataclass
class TypeofWhen:
    sobject: str
    paths: list[Path]
    pos: int


@dataclass
class Typeof:
    relation: Path
    whens: list[TypeofWhen]
    otherwise: list[Path] | None
    pos: int


@dataclass
class Literal:
    kind: str  # string | number | datetime | date | boolean | null | relative
    value: Any
    text: str
    pos: int


@dataclass
class Compare:
    expr: Any
    op: str
    value: Literal


@dataclass
class InList:
    expr: Any
    values: list[Literal]
    negated: bool


@dataclass
class SemiJoin:
    """`Id IN (SELECT AccountId FROM Opportunity ...)`, or NOT IN for an anti-join."""

    expr: Any
    query: Query
    negated: bool
    matched: set[str] = field(default_factory=set)  # the subquery's ids, filled in before each evaluation


@dataclass
class Like:
    expr: Any
    pattern: re.Pattern[str]


@dataclass
class Not:
    inner: Any


@dataclass
class Junction:
    kind: str  # and | or
    items: list[Any]


@dataclass
class OrderItem:
    expr: Any
    descending: bool
    nulls_first: bool


@dataclass
class Query:
    text: str
    sobject: str
    items: list[Any] = field(default_factory=list)
    where: Any = None
    group_by: list[FieldExpr] = field(default_factory=list)
    having: Any = None
    order: list[OrderItem] = field(default_factory=list)
    limit: int | None = None
    offset: int = 0
    schema: SObjectSchema | None = None
    from_pos: int = 0

    @property
    def paths(self) -> list[Path]:
        """The plain fields selected (what Bulk API columns and Tooling checks look at)."""
        return [i.path for i in self.items if isinstance(i, FieldExpr) and i.function is None]

    @property
    def is_count(self) -> bool:
        """`SELECT COUNT() FROM ...`: the answer is totalSize alone."""
        return any(isinstance(i, Aggregate) and i.function == "count" and i.path is None for i in self.items)

    @property
    def is_aggregate(self) -> bool:
        return bool(self.group_by) or any(isinstance(i, Aggregate) for i in self.items)


# ------------------------------------------------------------------------------------------------ errors


def malformed(text: str, pos: int, message: str) -> SfError:
    return SfError(400, "MALFORMED_QUERY", located(text, pos, message))


def located(text: str, pos: int, message: str) -> str:
    line_start = text.rfind("\n", 0, pos) + 1
    row = text.count("\n", 0, pos) + 1
    column = pos - line_start + 1
    line = text[line_start:].split("\n", 1)[0]
    return f"\n{line}\n{' ' * (column - 1)}^\nERROR at Row:{row}:Column:{column}\n{message}"


def _tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise malformed(text, pos, f"unexpected token: '{text[pos:].split()[0][:20]}'")
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(Token(kind, match.group(), pos))
        pos = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


# ------------------------------------------------------------------------------------------------ parser


class Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, ahead: int = 1) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def fail(self, token: Token | None = None) -> SfError:
        token = token or self.tok
        if token.kind == "end":
            return malformed(self.text, token.pos, "unexpected token: '<EOF>'")
        return malformed(self.text, token.pos, f"unexpected token: '{token.text}'")

    def expect_word(self, *words: str) -> Token:
        if not self.tok.is_word(*words):
            raise self.fail()
        return self.advance()

    def expect_punct(self, char: str) -> Token:
        if self.tok.text != char or self.tok.kind != "punct":
            raise self.fail()
        return self.advance()

    def at_punct(self, char: str) -> bool:
        return self.tok.kind == "punct" and self.tok.text == char

    # ---------------------------------------------------------------------------------------- query
    def parse(self) -> Query:
        query = self.query()
        if self.tok.kind != "end":
            raise self.fail()
        return query

    def query(self) -> Query:
        self.expect_word("select")
        query = Query(text=self.text, sobject="")
        self.select_items(query)
        self.expect_word("from")
        name = self.advance()
        if name.kind != "ident" or name.text.lower() in RESERVED:
            raise self.fail(name)
        query.sobject, query.from_pos = name.text, name.pos
        if self.tok.is_word("where"):
            self.advance()
            query.where = self.junction()
        if self.tok.is_word("group"):
            self.advance()
            self.expect_word("by")
            query.group_by = self.comma_list(self.group_expr)
        if self.tok.is_word("having"):
            self.advance()
            query.having = self.junction()
        if self.tok.is_word("order"):
            self.advance()
            self.expect_word("by")
            query.order = self.comma_list(self.order_item)
        if self.tok.is_word("limit"):
            self.advance()
            query.limit = self.integer()
        if self.tok.is_word("offset"):
            offset_token = self.advance()
            query.offset = self.integer()
            if query.offset > MAX_OFFSET:
                raise SfError(400, "NUMBER_OUTSIDE_VALID_RANGE",
                              located(self.text, offset_token.pos, f"Maximum SOQL offset allowed is {MAX_OFFSET}"))
        return query

    def comma_list(self, parse_one: Any) -> list[Any]:
        items = [parse_one()]
        while self.at_punct(","):
            self.advance()
            items.append(parse_one())
        return items

    def select_items(self, query: Query) -> None:
        query.items = self.comma_list(self.select_item)

    def select_item(self) -> Any:
        token = self.tok
        if self.at_punct("("):
            self.advance()
            inner = self.query()
            self.expect_punct(")")
            return Subquery(inner, token.pos)
        if token.is_word("typeof"):
            return self.typeof()
        if token.is_word("fields") and self.peek().text == "(":
            self.advance()
            self.advance()
            kind = self.expect_word("all", "standard", "custom").text.lower()
            self.expect_punct(")")
            return FieldsCall(kind, token.pos)
        expr = self.expr(allow_aggregate=True)
        if self.tok.kind == "ident" and self.tok.text.lower() not in RESERVED:
            expr.alias = self.advance().text
        return expr

    def typeof(self) -> Typeof:
        start = self.expect_word("typeof")
        relation = self.path()
        whens = []
        while self.tok.is_word("when"):
            when = self.advance()
            sobject = self.advance()
            if sobject.kind != "ident":
                raise self.fail(sobject)
            self.expect_word("then")
            whens.append(TypeofWhen(sobject.text, self.comma_list(self.path), when.pos))
        if not whens:
            raise self.fail()
        otherwise = None
        if self.tok.is_word("else"):
            self.advance()
            otherwise = self.comma_list(self.path)
        self.expect_word("end")
        return Typeof(relation, whens, otherwise, start.pos)

    def expr(self, allow_aggregate: bool) -> Any:
        """A path, `func(path)` (date functions, toLabel, convertTimezone inside them), or an aggregate."""
        token = self.tok
        name = token.text.lower() if token.kind == "ident" else ""
        if self.peek().text != "(" or self.peek().kind != "punct":
            return FieldExpr(self.path())
        if name in AGGREGATES and allow_aggregate:
            self.advance()
            self.advance()
            path = None if self.at_punct(")") else self.path()
            self.expect_punct(")")
            return Aggregate(name, path, token.pos)
        if name in FUNCTIONS:
            self.advance()
            self.advance()
            path = self.timezone_path() if name in DATE_FUNCTIONS else self.path()
            self.expect_punct(")")
            return FieldExpr(path, function=name)
        raise self.fail(token)

    def timezone_path(self) -> Path:
        """convertTimezone(field) inside a date function: the org's time zone, which is UTC here."""
        if self.tok.is_word("converttimezone") and self.peek().text == "(":
            self.advance()
            self.advance()
            path = self.path()
            self.expect_punct(")")
            return path
        return self.path()

    def group_expr(self) -> FieldExpr:
        if self.tok.is_word("rollup", "cube") and self.peek().text == "(":
            raise malformed(self.text, self.tok.pos, f"GROUP BY {self.tok.text.upper()} is not supported by "
                                                     "the healthsync sandbox")
        expr = self.expr(allow_aggregate=False)
        return expr

    def path(self) -> Path:
        first = self.advance()
        if first.kind != "ident" or first.text.lower() in RESERVED:
            raise self.fail(first)
        parts = [first.text]
        while self.at_punct("."):
            self.advance()
            part = self.advance()
            if part.kind != "ident":
                raise self.fail(part)
            parts.append(part.text)
        return Path(tuple(parts), first.pos)

    def integer(self) -> int:
        token = self.advance()
        if token.kind != "number" or not token.text.lstrip("+").isdigit():
            raise self.fail(token)
        return int(token.text)

    def order_item(self) -> OrderItem:
        expr = self.expr(allow_aggregate=True)
        descending = False
        if self.tok.is_word("asc", "desc"):
            descending = self.advance().text.lower() == "desc"
        nulls_first = not descending
        if self.tok.is_word("nulls"):
            self.advance()
            nulls_first = self.expect_word("first", "last").text.lower() == "first"
        return OrderItem(expr, descending, nulls_first)

    # ---------------------------------------------------------------------------------------- conditions
    def junction(self) -> Any:
        items = [self.negation()]
        kind = None
        while self.tok.is_word("and", "or"):
            word = self.tok.text.lower()
            if kind is not None and word != kind:
                raise self.fail()  # SOQL has no AND/OR precedence: mixing them needs parentheses
            kind = word
            self.advance()
            items.append(self.negation())
        return items[0] if kind is None else Junction(kind, items)

    def negation(self) -> Any:
        if self.tok.is_word("not"):
            self.advance()
            return Not(self.negation())
        if self.at_punct("("):
            self.advance()
            inner = self.junction()
            self.expect_punct(")")
            return inner
        return self.condition()

    def condition(self) -> Any:
        expr = self.expr(allow_aggregate=True)
        if self.tok.kind == "op":
            op = self.advance().text
            return Compare(expr, "!=" if op == "<>" else op, self.literal())
        negated = False
        if self.tok.is_word("not"):
            self.advance()
            negated = True
            if not self.tok.is_word("in"):
                raise self.fail()
        if self.tok.is_word("in"):
            self.advance()
            self.expect_punct("(")
            if self.tok.is_word("select"):
                inner = self.query()
                self.expect_punct(")")
                return SemiJoin(expr, inner, negated)
            values = self.comma_list(self.literal)
            self.expect_punct(")")
            return InList(expr, values, negated)
        if self.tok.is_word("like"):
            self.advance()
            pattern = self.literal()
            if pattern.kind != "string":
                raise self.fail(self.tokens[self.i - 1])
            return Like(expr, like_regex(pattern.value))
        raise self.fail()

    def literal(self) -> Literal:
        token = self.advance()
        kind = token.kind
        if kind == "string":
            return Literal("string", _unescape(token.text[1:-1]), token.text, token.pos)
        if kind == "number":
            return Literal("number", float(token.text), token.text, token.pos)
        if kind == "datetime":
            return Literal("datetime", parse_datetime_value(token.text), token.text, token.pos)
        if kind == "date":
            try:
                return Literal("date", date.fromisoformat(token.text), token.text, token.pos)
            except ValueError:
                raise self.fail(token) from None
        if token.is_word("true", "false"):
            return Literal("boolean", token.text.lower() == "true", token.text, token.pos)
        if token.is_word("null"):
            return Literal("null", None, token.text, token.pos)
        if kind == "ident" and token.text.lower() in DATE_LITERALS:
            amount = 0
            if token.text.lower() in N_LITERALS:
                self.expect_punct(":")
                amount = self.integer()
            return Literal("relative", (token.text.lower(), amount), token.text, token.pos)
        raise self.fail(token)


def _unescape(body: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)


def like_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out += re.escape(pattern[i + 1])
            i += 2
            continue
        out += ".*" if ch == "%" else "." if ch == "_" else re.escape(ch)
        i += 1
    return re.compile(f"^{out}$", re.IGNORECASE | re.DOTALL)
