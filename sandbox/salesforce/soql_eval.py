"""Evaluating a bound SOQL query over the in-memory org, and printing rows as the REST API does.

Shapes follow the REST API Developer Guide ("Execute a SOQL Query", resources_query.htm) and the SOQL and SOSL
Reference: plain rows carry `attributes {type, url}` and nest parent relationships as objects; a parent-to-child
subquery is a nested `{totalSize, done, records}` (null when there are no children: "Relationship Queries");
an aggregate query answers `AggregateResult` rows keyed by field name, alias or `exprN` ("Aggregate Functions",
"Using Aliases with GROUP BY"); TYPEOF prints the matched type's fields under the relationship ("TYPEOF").
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time
from typing import Any

from healthsync.sandbox.salesforce import ids
from healthsync.sandbox.salesforce.schema import ID_TYPES, NUMBER_TYPES, TEXT_TYPES, FieldDef
from healthsync.sandbox.salesforce.soql_dates import apply_function, literal_range
from healthsync.sandbox.salesforce.soql_parse import (
    Aggregate,
    FieldExpr,
    InList,
    Junction,
    Like,
    Literal,
    Not,
    OrderItem,
    Path,
    Query,
    SemiJoin,
    Subquery,
    Typeof,
)
from healthsync.sandbox.salesforce.store import OrgStore, Record, render_value

Value = Callable[[Any], Any]  # evaluates an expression in one context (a record, or a group of records)


def execute(query: Query, store: OrgStore, *, include_deleted: bool, now: datetime) -> list[Record]:
    """The matching rows; for a plain query in result order after OFFSET and LIMIT, for an aggregate query
    unordered (`aggregate` groups, orders and limits them)."""
    _prepare_semi_joins(query.where, store, now)
    rows = [r for r in store.rows(query.sobject, include_deleted=include_deleted)
            if query.where is None or matches(query.where, _record_value(r, store), now)]
    if query.is_aggregate and not query.is_count:
        return rows
    return _order_and_slice(query, rows, lambda row: _record_value(row, store))


def _order_and_slice(query: Query, rows: list[Any], context: Callable[[Any], Value]) -> list[Any]:
    for item in reversed(query.order):
        rows.sort(key=_order_key(item, context), reverse=item.descending)
    rows = rows[query.offset:]
    return rows if query.limit is None else rows[:query.limit]


def _prepare_semi_joins(node: Any, store: OrgStore, now: datetime) -> None:
    """Run each semi-/anti-join subquery once; its ids are what `IN (SELECT ...)` tests against."""
    if isinstance(node, Junction):
        for item in node.items:
            _prepare_semi_joins(item, store, now)
    elif isinstance(node, Not):
        _prepare_semi_joins(node.inner, store, now)
    elif isinstance(node, SemiJoin):
        selected = node.query.items[0]
        rows = execute(node.query, store, include_deleted=False, now=now)
        node.matched = {ids.key15(v) for r in rows if (v := resolve(selected.path, r, store))}


def resolve(path: Path, record: Record, store: OrgStore) -> Any:
    current: Record | None = record
    for step in path.steps:
        target = current.get(step.name) if current is not None else None
        found = store.find(target) if target else None
        current = found[1] if found else None
    if current is None or path.leaf is None:
        return None
    return current.get(path.leaf.name)


def _record_value(record: Record, store: OrgStore) -> Value:
    def value(expr: Any) -> Any:
        raw = resolve(expr.path, record, store)
        if expr.function and expr.function != "tolabel":
            return apply_function(expr.function, raw)
        return raw
    return value


# ------------------------------------------------------------------------------------------------ conditions


def matches(node: Any, value: Value, now: datetime) -> bool:
    if isinstance(node, Junction):
        test = all if node.kind == "and" else any
        return test(matches(item, value, now) for item in node.items)
    if isinstance(node, Not):
        return not matches(node.inner, value, now)
    actual = value(node.expr)
    leaf = node.expr.result
    if isinstance(node, SemiJoin):
        hit = actual is not None and ids.key15(actual) in node.matched
        return hit != node.negated
    if isinstance(node, Like):
        return actual is not None and node.pattern.match(str(actual)) is not None
    if isinstance(node, InList):
        hit = any(_compare(leaf, actual, "=", v, now) for v in node.values)
        return hit != node.negated if actual is not None else node.negated
    return _compare(leaf, actual, node.op, node.value, now)


def _compare(leaf: FieldDef, actual: Any, op: str, literal: Literal, now: datetime) -> bool:
    if literal.kind == "null":
        return (actual is None) == (op == "=")
    if actual is None:
        return op == "!="
    if literal.kind == "relative":
        return _compare_range(leaf, actual, op, literal_range(*literal.value, now))
    left, right = normalise(leaf, actual), normalise(leaf, literal.value)
    if leaf.type == "datetime" and isinstance(right, date) and not isinstance(right, datetime):
        right = datetime.combine(right, time(), UTC)
    return {
        "=": left == right, "!=": left != right, "<": left < right, "<=": left <= right,
        ">": left > right, ">=": left >= right,
    }[op]


def normalise(leaf: FieldDef, value: Any) -> Any:
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


def _order_key(item: OrderItem, context: Callable[[Any], Value]) -> Any:
    null_rank = (1 if item.descending else 0) if item.nulls_first else (0 if item.descending else 1)

    def key(row: Any) -> tuple[int, Any]:
        value = context(row)(item.expr)
        if value is None:
            return (null_rank, 0)
        return (1 - null_rank, normalise(item.expr.result, value))

    return key


# ------------------------------------------------------------------------------------------------ aggregates


def aggregate(query: Query, rows: list[Record], store: OrgStore, now: datetime) -> dict[str, Any]:
    """The answer to an aggregate query: COUNT() is totalSize alone; otherwise one AggregateResult per group."""
    if query.is_count:
        return {"totalSize": len(rows), "done": True, "records": []}
    groups: dict[tuple, list[Record]] = {}
    for row in rows:
        value = _record_value(row, store)
        key = tuple(_group_key(e, value(e)) for e in query.group_by)
        groups.setdefault(key, []).append(row)
    if not query.group_by and not groups:
        groups[()] = []  # aggregates without GROUP BY answer one row even over no records
    contexts = [_group_value(members, store) for members in groups.values()]
    if query.having is not None:
        contexts = [c for c in contexts if matches(query.having, c, now)]
    contexts = _order_and_slice(query, contexts, lambda c: c)
    records = [_aggregate_record(query, context) for context in contexts]
    return {"totalSize": len(records), "done": True, "records": records}


def _group_key(expr: FieldExpr, value: Any) -> Any:
    return normalise(expr.result, value) if value is not None else None


def _group_value(members: list[Record], store: OrgStore) -> Value:
    def value(expr: Any) -> Any:
        if isinstance(expr, Aggregate):
            return _aggregate_of(expr, members, store)
        return _record_value(members[0], store)(expr) if members else None
    return value


def _aggregate_of(expr: Aggregate, members: list[Record], store: OrgStore) -> Any:
    if expr.path is None:
        return len(members)
    values = [v for r in members if (v := resolve(expr.path, r, store)) is not None]
    if expr.function == "count":
        return len(values)
    if expr.function == "count_distinct":
        return len({normalise(expr.path.leaf, v) for v in values})
    if not values:
        return None
    if expr.function == "sum":
        return float(sum(float(v) for v in values))
    if expr.function == "avg":
        return sum(float(v) for v in values) / len(values)
    pick = min if expr.function == "min" else max
    return pick(values, key=lambda v: normalise(expr.path.leaf, v))


def _aggregate_record(query: Query, value: Value) -> dict[str, Any]:
    record: dict[str, Any] = {"attributes": {"type": "AggregateResult"}}
    unnamed = 0
    for item in query.items:
        if item.alias:
            name = item.alias
        elif isinstance(item, FieldExpr) and item.function is None:
            name = item.path.leaf.name
        else:
            name, unnamed = f"expr{unnamed}", unnamed + 1
        raw = value(item)
        record[name] = raw if isinstance(raw, int | float) and not isinstance(raw, bool) else render_value(
            item.result, raw)
    return record


# ------------------------------------------------------------------------------------------------ rendering


def render_row(query: Query, record: Record, store: OrgStore, version: str,
               now: datetime | None = None) -> dict[str, Any]:
    """One row as the REST API prints it: attributes first, relationship fields as nested objects."""
    out = _with_attributes(query.sobject, record, version)
    for item in query.items:
        if isinstance(item, Subquery):
            out[item.relation.name] = _children(item, record, store, version, now or datetime.now(UTC))
        elif isinstance(item, Typeof):
            _place_typeof(out, item, record, store, version)
        else:
            _place(out, item.path, record, store, version, label=item.function == "tolabel")
    return out


def _with_attributes(sobject: str, record: Record, version: str) -> dict[str, Any]:
    return {"attributes": {"type": sobject, "url": f"/services/data/v{version}/sobjects/{sobject}/{record['Id']}"}}


def _place(out: dict[str, Any], path: Path, record: Record, store: OrgStore, version: str,  # noqa: PLR0913 (one recursive step: where to write, the field path, the record, and the org and API version it is read from)
           label: bool = False) -> None:
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
    value = render_value(path.leaf, current.get(path.leaf.name))
    node[path.leaf.name] = _label(path.leaf, value) if label else value


def _label(leaf: FieldDef, value: Any) -> Any:
    """toLabel(): the picklist value's label in the user's language; this org labels values as themselves."""
    return value


def _children(item: Subquery, parent: Record, store: OrgStore, version: str,
              now: datetime) -> dict[str, Any] | None:
    sub, via = item.query, item.relation.field
    key = ids.key15(parent["Id"])
    _prepare_semi_joins(sub.where, store, now)
    rows = [r for r in store.rows(sub.sobject) if r.get(via) and ids.key15(r[via]) == key
            and (sub.where is None or matches(sub.where, _record_value(r, store), now))]
    rows = _order_and_slice(sub, rows, lambda row: _record_value(row, store))
    if not rows:
        return None
    records = [render_row(sub, r, store, version, now) for r in rows]
    return {"totalSize": len(records), "done": True, "records": records}


def _place_typeof(out: dict[str, Any], item: Typeof, record: Record, store: OrgStore, version: str) -> None:
    relation = item.relation.leaf
    target = record.get(relation.name)
    found = store.find(target) if target else None
    if found is None:
        out[relation.relationship_name] = None
        return
    sobject, related = found
    node = _with_attributes(sobject, related, version)
    when = next((w for w in item.whens if w.sobject == sobject), None)
    for path in (when.paths if when else item.otherwise or []):
        _place(node, path, related, store, version)
    out[relation.relationship_name] = node


def column_names(query: Query) -> list[str]:
    """CSV header names for Bulk API results: dotted relationship paths, canonical case."""
    return [".".join([s.relationship_name or s.name for s in path.steps] + [path.leaf.name]) for path in query.paths]
