"""A small SOQL engine: a recursive-descent parser for the SELECT subset a sync connector uses, field
resolution against the org's schema (with the real INVALID_FIELD / MALFORMED_QUERY messages), evaluation
over the in-memory store, and rendering of rows as the REST API prints them (nested relationship objects).

Grammar (keywords case-insensitive):
    query   := SELECT items FROM name [WHERE or] [ORDER BY order (, order)*] [LIMIT int] [OFFSET int]
    items   := item (, item)*          item := COUNT ( [path] ) [alias] | path
    or      := and (OR and)*           and  := not (AND not)*        -- mixing AND/OR needs parentheses
    not     := NOT not | ( or ) | path op value | path [NOT] IN ( value, ... ) | path LIKE 'pattern'
    order   := path [ASC|DESC] [NULLS FIRST|LAST]
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from healthsync.sandbox.salesforce import ids
from healthsync.sandbox.salesforce.errors import SfError
from healthsync.sandbox.salesforce.schema import ID_TYPES, NUMBER_TYPES, TEXT_TYPES, FieldDef, SObjectSchema
from healthsync.sandbox.salesforce.store import OrgStore, Record, parse_datetime_value, render_value

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
_RESERVED = {"select", "from", "where", "and", "or", "not", "in", "like", "order", "by", "limit", "offset",
             "asc", "desc", "nulls", "first", "last", "null", "true", "false", "group", "having", "includes",
             "excludes", "with", "for", "using"}
_DATE_LITERALS = {"today", "yesterday", "tomorrow", "last_n_days", "next_n_days", "n_days_ago", "this_week",
                  "last_week", "this_month", "last_month"}
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
class Literal:
    kind: str  # string | number | datetime | date | boolean | null | relative
    value: Any
    text: str
    pos: int


@dataclass
class Compare:
    path: Path
    op: str
    value: Literal


@dataclass
class InList:
    path: Path
    values: list[Literal]
    negated: bool


@dataclass
class Like:
    path: Path
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
    path: Path
    descending: bool
    nulls_first: bool


@dataclass
class Query:
    text: str
    sobject: str
    paths: list[Path]
    count: Path | None | bool = False  # False: no aggregate; None: COUNT(); Path: COUNT(field)
    count_alias: str = "expr0"
    where: Any = None
    order: list[OrderItem] = field(default_factory=list)
    limit: int | None = None
    offset: int = 0
    schema: SObjectSchema | None = None


# ------------------------------------------------------------------------------------------------ parsing


def _tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise _malformed(text, pos, f"unexpected token: '{text[pos:].split()[0][:20]}'")
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(Token(kind, match.group(), pos))
        pos = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


def _malformed(text: str, pos: int, message: str) -> SfError:
    return SfError(400, "MALFORMED_QUERY", _located(text, pos, message))


def _located(text: str, pos: int, message: str) -> str:
    line_start = text.rfind("\n", 0, pos) + 1
    row = text.count("\n", 0, pos) + 1
    column = pos - line_start + 1
    line = text[line_start:].split("\n", 1)[0]
    return f"\n{line}\n{' ' * (column - 1)}^\nERROR at Row:{row}:Column:{column}\n{message}"


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0

    # helpers
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def fail(self, token: Token | None = None) -> SfError:
        token = token or self.tok
        if token.kind == "end":
            return _malformed(self.text, token.pos, "unexpected token: '<EOF>'")
        return _malformed(self.text, token.pos, f"unexpected token: '{token.text}'")

    def expect_word(self, *words: str) -> Token:
        if not self.tok.is_word(*words):
            raise self.fail()
        return self.advance()

    def expect_punct(self, char: str) -> Token:
        if self.tok.text != char or self.tok.kind != "punct":
            raise self.fail()
        return self.advance()

    # grammar
    def query(self) -> Query:
        self.expect_word("select")
        query = Query(text=self.text, sobject="", paths=[])
        self.select_items(query)
        self.expect_word("from")
        name = self.advance()
        if name.kind != "ident" or name.text.lower() in _RESERVED:
            raise self.fail(name)
        query.sobject = name.text
        if self.tok.is_word("where"):
            self.advance()
            query.where = self.junction()
        if self.tok.is_word("order"):
            self.advance()
            self.expect_word("by")
            query.order.append(self.order_item())
            while self.tok.text == ",":
                self.advance()
                query.order.append(self.order_item())
        if self.tok.is_word("limit"):
            self.advance()
            query.limit = self.integer()
        if self.tok.is_word("offset"):
            offset_token = self.advance()
            query.offset = self.integer()
            if query.offset > MAX_OFFSET:
                raise SfError(400, "NUMBER_OUTSIDE_VALID_RANGE",
                              _located(self.text, offset_token.pos, f"Maximum SOQL offset allowed is {MAX_OFFSET}"))
        if self.tok.kind != "end":
            raise self.fail()
        return query

    def select_items(self, query: Query) -> None:
        while True:
            if self.tok.is_word("count") and self.tokens[self.i + 1].text == "(":
                self.advance()
                self.advance()
                query.count = None if self.tok.text == ")" else self.path()
                self.expect_punct(")")
                if self.tok.kind == "ident" and not self.tok.is_word("from"):
                    query.count_alias = self.advance().text
            else:
                query.paths.append(self.path())
            if self.tok.text != ",":
                return
            self.advance()

    def path(self) -> Path:
        first = self.advance()
        if first.kind != "ident" or first.text.lower() in _RESERVED:
            raise self.fail(first)
        parts = [first.text]
        while self.tok.text == "." and self.tok.kind == "punct":
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
        path = self.path()
        descending = False
        if self.tok.is_word("asc", "desc"):
            descending = self.advance().text.lower() == "desc"
        nulls_first = not descending
        if self.tok.is_word("nulls"):
            self.advance()
            nulls_first = self.expect_word("first", "last").text.lower() == "first"
        return OrderItem(path, descending, nulls_first)

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
        if self.tok.text == "(" and self.tok.kind == "punct":
            self.advance()
            inner = self.junction()
            self.expect_punct(")")
            return inner
        return self.condition()

    def condition(self) -> Any:
        path = self.path()
        if self.tok.kind == "op":
            op = self.advance().text
            return Compare(path, "!=" if op == "<>" else op, self.literal())
        negated = False
        if self.tok.is_word("not"):
            self.advance()
            negated = True
            if not self.tok.is_word("in"):
                raise self.fail()
        if self.tok.is_word("in"):
            self.advance()
            self.expect_punct("(")
            values = [self.literal()]
            while self.tok.text == ",":
                self.advance()
                values.append(self.literal())
            self.expect_punct(")")
            return InList(path, values, negated)
        if self.tok.is_word("like"):
            self.advance()
            pattern = self.literal()
            if pattern.kind != "string":
                raise self.fail(self.tokens[self.i - 1])
            return Like(path, _like_regex(pattern.value))
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
        if kind == "ident" and token.text.lower() in _DATE_LITERALS:
            amount = 0
            if token.text.lower() in {"last_n_days", "next_n_days", "n_days_ago"}:
                self.expect_punct(":")
                amount = self.integer()
            return Literal("relative", (token.text.lower(), amount), token.text, token.pos)
        raise self.fail(token)


def _unescape(body: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)


def _like_regex(pattern: str) -> re.Pattern[str]:
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


# ------------------------------------------------------------------------------------------------ binding


def compile_soql(text: str, store: OrgStore) -> Query:
    """Parse and resolve a query against the store's schema; raises SfError with the real error shapes."""
    if not text or not text.strip():
        raise SfError(400, "MALFORMED_QUERY", "A query string has to be specified")
    query = _Parser(text).query()
    if not store.has(query.sobject):
        raise SfError(400, "INVALID_TYPE", _located(
            text, text.lower().find(query.sobject.lower()),
            f"sObject type '{query.sobject}' is not supported. If you are attempting to use a custom object, be "
            "sure to append the '__c' after the entity name. Please reference your WSDL or the describe call "
            "for the appropriate names."))
    query.schema = store.schema(query.sobject)
    query.sobject = query.schema.name
    seen: set[str] = set()
    for path in query.paths:
        _bind(query, path, store)
        key = path.text.lower()
        if key in seen:
            raise _malformed(text, path.pos, f"duplicate field selected: {path.text}")
        seen.add(key)
    if isinstance(query.count, Path):
        _bind(query, query.count, store)
    if query.count is not False and query.paths:
        raise _malformed(text, query.paths[0].pos, f"Field must be grouped or aggregated: {query.paths[0].text}")
    for item in query.order:
        _bind(query, item.path, store)
    _bind_condition(query, query.where, store)
    return query


def _bind(query: Query, path: Path, store: OrgStore) -> None:
    schema = query.schema
    assert schema is not None
    parts = list(path.parts)
    if len(parts) > 1 and parts[0].lower() == schema.name.lower() and schema.relationship(parts[0]) is None:
        parts = parts[1:]
    steps: list[FieldDef] = []
    current: list[SObjectSchema] = [schema]
    for part in parts[:-1]:
        relation = _common(current, lambda s, p=part: s.relationship(p))
        if relation is None:
            raise SfError(400, "INVALID_FIELD", _located(
                query.text, path.pos,
                f"Didn't understand relationship '{part}' in field path. If you are attempting to use a custom "
                "relationship, be sure to append the '__r' after the custom relationship name. Please reference "
                "your WSDL or the describe call for the appropriate names."))
        steps.append(relation)
        current = [store.schema(target) for target in relation.reference_to]
    leaf = _common(current, lambda s: s.field(parts[-1]))
    if leaf is None:
        entity = current[0].name if len(current) == 1 else "Name"
        raise SfError(400, "INVALID_FIELD", _located(
            query.text, path.pos,
            f"No such column '{parts[-1]}' on entity '{entity}'. If you are attempting to use a custom field, be "
            "sure to append the '__c' after the custom field name. Please reference your WSDL or the describe "
            "call for the appropriate names."))
    path.steps, path.leaf = tuple(steps), leaf


def _common(schemas: list[SObjectSchema], pick: Any) -> FieldDef | None:
    """A field (or relationship) every possible target has — polymorphic What/Who allow only those."""
    found = [pick(s) for s in schemas]
    return found[0] if all(f is not None and f.type == found[0].type for f in found) else None


def _bind_condition(query: Query, node: Any, store: OrgStore) -> None:
    if node is None:
        return
    if isinstance(node, Junction):
        for item in node.items:
            _bind_condition(query, item, store)
    elif isinstance(node, Not):
        _bind_condition(query, node.inner, store)
    else:
        _bind(query, node.path, store)
        leaf = node.path.leaf
        if isinstance(node, Like):
            if leaf.type not in TEXT_TYPES:
                raise SfError(400, "INVALID_FIELD", _located(
                    query.text, node.path.pos, f"invalid operator on {leaf.type} field: LIKE"))
        elif isinstance(node, InList):
            for value in node.values:
                _check_literal(query, leaf, value, "=")
        else:
            _check_literal(query, leaf, node.value, node.op)


def _check_literal(query: Query, leaf: FieldDef, value: Literal, op: str) -> None:
    kind = leaf.type
    if value.kind == "null":
        if op not in {"=", "!="}:
            raise _malformed(query.text, value.pos, f"unexpected token: '{value.text}'")
        return
    expected = {"boolean": ("boolean",), "date": ("date", "relative"), "datetime": ("datetime", "relative")}
    if kind in ID_TYPES or kind in TEXT_TYPES:
        if value.kind != "string":
            raise _filter_type(query, leaf, value, "string", quoted=True)
        if kind in ID_TYPES and not ids.is_well_formed(value.value):
            raise SfError(400, "INVALID_QUERY_FILTER_OPERATOR",
                          _located(query.text, value.pos, f"invalid ID field: {value.value}"))
    elif kind in NUMBER_TYPES:
        if value.kind != "number":
            raise _filter_type(query, leaf, value, "double" if kind != "int" else "int", quoted=False)
    elif value.kind not in expected.get(kind, ()):
        label = {"datetime": "dateTime"}.get(kind, kind)
        raise _filter_type(query, leaf, value, label, quoted=False)
    if kind == "boolean" and op not in {"=", "!="}:
        raise SfError(400, "INVALID_QUERY_FILTER_OPERATOR",
                      _located(query.text, value.pos, f"invalid operator on boolean field: {op}"))


def _filter_type(query: Query, leaf: FieldDef, value: Literal, expected: str, quoted: bool) -> SfError:
    advice = "should be enclosed in quotes" if quoted else "should not be enclosed in quotes"
    return SfError(400, "INVALID_FIELD", _located(
        query.text, value.pos,
        f"value of filter criterion for field '{leaf.name}' must be of type {expected} and {advice}"))


# ------------------------------------------------------------------------------------------------ evaluation


def execute(query: Query, store: OrgStore, *, include_deleted: bool, now: datetime) -> list[Record]:
    """The matching rows in result order, after OFFSET and LIMIT."""
    rows = [r for r in store.rows(query.sobject, include_deleted=include_deleted)
            if query.where is None or _matches(query.where, r, store, now)]
    for item in reversed(query.order):
        rows.sort(key=_order_key(item, store), reverse=item.descending)
    rows = rows[query.offset:]
    return rows if query.limit is None else rows[:query.limit]


def resolve(path: Path, record: Record, store: OrgStore) -> Any:
    current: Record | None = record
    for step in path.steps:
        target = current.get(step.name) if current is not None else None
        found = store.find(target) if target else None
        current = found[1] if found else None
    if current is None or path.leaf is None:
        return None
    return current.get(path.leaf.name)


def _matches(node: Any, record: Record, store: OrgStore, now: datetime) -> bool:
    if isinstance(node, Junction):
        test = all if node.kind == "and" else any
        return test(_matches(item, record, store, now) for item in node.items)
    if isinstance(node, Not):
        return not _matches(node.inner, record, store, now)
    actual = resolve(node.path, record, store)
    if isinstance(node, Like):
        return actual is not None and node.pattern.match(str(actual)) is not None
    if isinstance(node, InList):
        hit = any(_compare(node.path.leaf, actual, "=", v, now) for v in node.values)
        return hit != node.negated if actual is not None else node.negated
    return _compare(node.path.leaf, actual, node.op, node.value, now)


def _compare(leaf: FieldDef, actual: Any, op: str, literal: Literal, now: datetime) -> bool:
    if literal.kind == "null":
        return (actual is None) == (op == "=")
    if actual is None:
        return op == "!="
    if literal.kind == "relative":
        return _compare_range(leaf, actual, op, _relative_range(literal.value, now))
    left, right = _normalise(leaf, actual), _normalise(leaf, literal.value)
    if leaf.type == "datetime" and isinstance(right, date) and not isinstance(right, datetime):
        right = datetime.combine(right, time(), UTC)
    return {
        "=": left == right, "!=": left != right, "<": left < right, "<=": left <= right,
        ">": left > right, ">=": left >= right,
    }[op]


def _normalise(leaf: FieldDef, value: Any) -> Any:
    if leaf.type in ID_TYPES:
        return ids.key15(value)
    if leaf.type in TEXT_TYPES:
        return str(value).casefold()
    if leaf.type in NUMBER_TYPES:
        return float(value)
    return value


def _compare_range(leaf: FieldDef, actual: Any, op: str, span: tuple[datetime, datetime]) -> bool:
    start, end = span
    value = actual if leaf.type == "datetime" else datetime.combine(actual, time(), UTC)
    inside = start <= value < end
    return {"=": inside, "!=": not inside, "<": value < start, "<=": value < end, ">": value >= end,
            ">=": value >= start}[op]


def _relative_range(spec: tuple[str, int], now: datetime) -> tuple[datetime, datetime]:
    name, amount = spec
    today = datetime.combine(now.date(), time(), UTC)
    day = timedelta(days=1)
    week_start = today - timedelta(days=(today.weekday() + 1) % 7)  # Salesforce weeks start on Sunday
    month_start = today.replace(day=1)
    prev_month = (month_start - day).replace(day=1)
    next_month = (month_start + timedelta(days=32)).replace(day=1)
    return {
        "today": (today, today + day), "yesterday": (today - day, today), "tomorrow": (today + day, today + 2 * day),
        "last_n_days": (today - amount * day, today + day), "next_n_days": (today + day, today + (amount + 1) * day),
        "n_days_ago": (today - amount * day, today - (amount - 1) * day),
        "this_week": (week_start, week_start + 7 * day), "last_week": (week_start - 7 * day, week_start),
        "this_month": (month_start, next_month), "last_month": (prev_month, month_start),
    }[name]


def _order_key(item: OrderItem, store: OrgStore) -> Any:
    null_rank = (1 if item.descending else 0) if item.nulls_first else (0 if item.descending else 1)

    def key(record: Record) -> tuple[int, Any]:
        value = resolve(item.path, record, store)
        if value is None:
            return (null_rank, 0)
        return (1 - null_rank, _normalise(item.path.leaf, value))

    return key


# ------------------------------------------------------------------------------------------------ rendering


def render_row(query: Query, record: Record, store: OrgStore, version: str) -> dict[str, Any]:
    """One row as the REST API prints it: attributes first, relationship fields as nested objects."""
    out = _with_attributes(query.sobject, record, version)
    for path in query.paths:
        _place(out, path, record, store, version)
    return out


def _with_attributes(sobject: str, record: Record, version: str) -> dict[str, Any]:
    return {"attributes": {"type": sobject, "url": f"/services/data/v{version}/sobjects/{sobject}/{record['Id']}"}}


def _place(out: dict[str, Any], path: Path, record: Record, store: OrgStore, version: str) -> None:
    node, current = out, record
    for step in path.steps:
        key = step.relationship_name or step.name
        target = current.get(step.name) if current is not None else None
        found = store.find(target) if target else None
        if found is None:
            node[key] = None
            return
        child = node.get(key)
        if not isinstance(child, dict):
            child = _with_attributes(found[0], found[1], version)
            node[key] = child
        node, current = child, found[1]
    node[path.leaf.name] = render_value(path.leaf, current.get(path.leaf.name))


def column_names(query: Query) -> list[str]:
    """CSV header names for Bulk API results: dotted relationship paths, canonical case."""
    names = []
    for path in query.paths:
        names.append(".".join([s.relationship_name or s.name for s in path.steps] + [path.leaf.name]))
    return names
