"""A SOQL engine for the emulated org: binds a parsed query (soql_parse) to the schema with the real
INVALID_FIELD / MALFORMED_QUERY messages; evaluation and rendering live in soql_eval.

What binding enforces follows the SOQL and SOSL Reference (developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta):
"GROUP BY" (fields must be grouped or aggregated; groupable types only), "Aggregate Functions" (SUM/AVG on
numbers), "Using Aliases with GROUP BY" (aliases only in aggregate queries; unaliased expressions are expr0,
expr1, ...), "Relationship Queries" (one level of parent-to-child subqueries), "Semi-Joins with IN and Anti-Joins
with NOT IN" (an Id or reference field on both sides), "TYPEOF" (polymorphic relationships), "FIELDS()" (ALL and
CUSTOM need LIMIT 200 or less), "toLabel()" (picklists) and "Date Functions" (date and dateTime fields).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from healthsync.sandbox.salesforce import ids
from healthsync.sandbox.salesforce.errors import SfError
from healthsync.sandbox.salesforce.schema import ID_TYPES, NUMBER_TYPES, TEXT_TYPES, FieldDef, SObjectSchema
from healthsync.sandbox.salesforce.soql_dates import returns_date
from healthsync.sandbox.salesforce.soql_eval import aggregate, column_names, execute, render_row, resolve
from healthsync.sandbox.salesforce.soql_parse import (
    Aggregate,
    FieldExpr,
    FieldsCall,
    InList,
    Junction,
    Like,
    Literal,
    Not,
    Parser,
    Path,
    Query,
    SemiJoin,
    Subquery,
    Typeof,
    located,
    malformed,
)
from healthsync.sandbox.salesforce.store import OrgStore

FIELDS_LIMIT = 200
_GROUPABLE_EXCLUDED = {"textarea", "double", "currency", "percent", "datetime"}
__all__ = ["Path", "Query", "aggregate", "column_names", "compile_soql", "execute", "render_row", "resolve"]


def compile_soql(text: str, store: OrgStore) -> Query:
    """Parse and resolve a query against the store's schema; raises SfError with the real error shapes."""
    if not text or not text.strip():
        raise SfError(400, "MALFORMED_QUERY", "A query string has to be specified")
    query = Parser(text).parse()
    _bind_from(query, store)
    _bind_query(query, store, nested=False)
    return query


def _bind_from(query: Query, store: OrgStore) -> None:
    if not store.has(query.sobject):
        raise SfError(400, "INVALID_TYPE", located(
            query.text, query.from_pos,
            f"sObject type '{query.sobject}' is not supported. If you are attempting to use a custom object, be "
            "sure to append the '__c' after the entity name. Please reference your WSDL or the describe call "
            "for the appropriate names."))
    query.schema = store.schema(query.sobject)
    query.sobject = query.schema.name


def _bind_query(query: Query, store: OrgStore, nested: bool) -> None:
    _expand_fields(query)
    seen: set[tuple[str, str]] = set()
    for item in query.items:
        _bind_item(query, item, store, nested)
        key = getattr(item, "key", None)
        if isinstance(item, FieldExpr) and key in seen:
            raise malformed(query.text, item.pos, f"duplicate field selected: {item.path.text}")
        if key is not None:
            seen.add(key)
    for expr in query.group_by:
        _bind_expr(query, expr, store)
        if expr.function is None and expr.result.type in _GROUPABLE_EXCLUDED:
            raise SfError(400, "INVALID_FIELD", located(
                query.text, expr.pos, f"field '{expr.result.name}' can not be grouped in a query call"))
    if query.is_aggregate:
        _check_grouping(query)
    elif any(getattr(i, "alias", None) for i in query.items):
        alias = next(i for i in query.items if getattr(i, "alias", None))
        raise malformed(query.text, alias.pos, "Only aggregate expressions use field aliasing")
    for item in query.order:
        _bind_expr(query, item.expr, store)
    _bind_condition(query, query.where, store, having=False)
    _bind_condition(query, query.having, store, having=True)
    if query.having is not None and not query.is_aggregate:
        raise malformed(query.text, query.from_pos, "HAVING is only allowed with GROUP BY or aggregate functions")


def _expand_fields(query: Query) -> None:
    """FIELDS(ALL|STANDARD|CUSTOM) stands for those fields; ALL and CUSTOM are bounded to LIMIT 200."""
    expanded: list[Any] = []
    present = {i.path.text.lower() for i in query.items if isinstance(i, FieldExpr) and i.function is None}
    for item in query.items:
        if not isinstance(item, FieldsCall):
            expanded.append(item)
            continue
        if item.kind in ("all", "custom") and (query.limit is None or query.limit > FIELDS_LIMIT):
            raise malformed(query.text, item.pos, f"The SOQL FIELDS function must have a LIMIT of at most "
                                                  f"{FIELDS_LIMIT}")
        for definition in query.schema.fields.values():
            wanted = {"all": True, "standard": not definition.custom, "custom": definition.custom}[item.kind]
            if wanted and definition.name.lower() not in present:
                present.add(definition.name.lower())
                expanded.append(FieldExpr(Path((definition.name,), item.pos)))
    query.items = expanded


def _bind_item(query: Query, item: Any, store: OrgStore, nested: bool) -> None:
    if isinstance(item, Subquery):
        _bind_subquery(query, item, store, nested)
    elif isinstance(item, Typeof):
        _bind_typeof(query, item, store)
    else:
        _bind_expr(query, item, store)


def _bind_subquery(query: Query, item: Subquery, store: OrgStore, nested: bool) -> None:
    relation = query.schema.child_relationship(item.query.sobject)
    if nested or relation is None:
        raise SfError(400, "INVALID_TYPE", located(
            query.text, item.query.from_pos,
            f"Didn't understand relationship '{item.query.sobject}' in FROM part of query call. If you are "
            "attempting to use a custom relationship, be sure to append the '__r' after the custom relationship "
            "name. Please reference your WSDL or the describe call for the appropriate names."))
    item.relation = relation
    item.query.schema = store.schema(relation.child)
    item.query.sobject = relation.child
    _bind_query(item.query, store, nested=True)
    if item.query.is_aggregate:
        raise malformed(query.text, item.pos, "Aggregate functions are not allowed in a relationship subquery")


def _bind_typeof(query: Query, item: Typeof, store: OrgStore) -> None:
    relation = query.schema.relationship(item.relation.text)
    if relation is None or len(relation.reference_to) < 2:
        raise malformed(query.text, item.pos, f"TYPEOF needs a polymorphic relationship; "
                                              f"'{item.relation.text}' is not one")
    item.relation.leaf = relation
    for when in item.whens:
        target = next((t for t in relation.reference_to if t.lower() == when.sobject.lower()), None)
        if target is None:
            raise SfError(400, "INVALID_TYPE", located(
                query.text, when.pos, f"'{when.sobject}' is not a valid type for the '{relation.relationship_name}' "
                                      f"relationship"))
        when.sobject = target
        for path in when.paths:
            _bind_path(query, path, store, [store.schema(target)])
    for path in item.otherwise or ():
        _bind_path(query, path, store, [store.schema(t) for t in relation.reference_to])


def _bind_expr(query: Query, expr: Any, store: OrgStore) -> None:
    if isinstance(expr, Aggregate):
        _bind_aggregate(query, expr, store)
        return
    _bind_path(query, expr.path, store)
    leaf = expr.path.leaf
    if expr.function == "tolabel":
        if leaf.type not in {"picklist", "combobox"}:
            raise malformed(query.text, expr.pos, f"toLabel() can only be used on picklist fields: {leaf.name}")
        expr.result = leaf
    elif expr.function is not None:
        if leaf.type not in {"date", "datetime"}:
            raise malformed(query.text, expr.pos, f"{expr.function.upper()} can only be used on date and "
                                                  f"dateTime fields: {leaf.name}")
        kind = "date" if returns_date(expr.function) else "int"
        expr.result = replace(leaf, name=expr.text, type=kind)
    else:
        expr.result = leaf


def _bind_aggregate(query: Query, expr: Aggregate, store: OrgStore) -> None:
    if expr.path is None:
        if expr.function != "count":
            raise malformed(query.text, expr.pos, f"{expr.function.upper()}() needs a field")
        expr.result = FieldDef(name="expr", type="int", label="COUNT()")
        return
    _bind_path(query, expr.path, store)
    leaf = expr.path.leaf
    if expr.function in ("sum", "avg") and leaf.type not in NUMBER_TYPES:
        raise SfError(400, "INVALID_FIELD", located(
            query.text, expr.pos, f"field {leaf.name} does not support aggregate operator {expr.function.upper()}"))
    if expr.function in ("count", "count_distinct"):
        expr.result = replace(leaf, type="int")
    elif expr.function == "avg":
        expr.result = replace(leaf, type="double")
    else:
        expr.result = leaf


def _check_grouping(query: Query) -> None:
    """Every selected field is grouped; COUNT() stands alone; aggregate queries carry no subqueries."""
    grouped = {e.key for e in query.group_by}
    if query.is_count and (len(query.items) > 1 or query.group_by):
        other = next(i for i in query.items if not (isinstance(i, Aggregate) and i.path is None))
        raise malformed(query.text, getattr(other, "pos", 0),
                        f"Field must be grouped or aggregated: {getattr(other, 'text', 'COUNT()')}")
    for item in query.items:
        if isinstance(item, Subquery | Typeof):
            raise malformed(query.text, item.pos, "Nested queries and TYPEOF are not allowed in aggregate queries")
        if isinstance(item, FieldExpr) and item.key not in grouped:
            raise malformed(query.text, item.pos, f"Field must be grouped or aggregated: {item.path.text}")
    for order in query.order:
        if isinstance(order.expr, FieldExpr) and order.expr.key not in grouped:
            raise malformed(query.text, order.expr.pos, f"Ordered field must be grouped or aggregated: "
                                                        f"{order.expr.path.text}")


def _bind_path(query: Query, path: Path, store: OrgStore, roots: list[SObjectSchema] | None = None) -> None:
    schema = query.schema
    parts = list(path.parts)
    if roots is None and len(parts) > 1 and parts[0].lower() == schema.name.lower() \
            and schema.relationship(parts[0]) is None:
        parts = parts[1:]
    steps: list[FieldDef] = []
    current: list[SObjectSchema] = roots or [schema]
    for part in parts[:-1]:
        relation = _common(current, lambda s, p=part: s.relationship(p))
        if relation is None:
            raise SfError(400, "INVALID_FIELD", located(
                query.text, path.pos,
                f"Didn't understand relationship '{part}' in field path. If you are attempting to use a custom "
                "relationship, be sure to append the '__r' after the custom relationship name. Please reference "
                "your WSDL or the describe call for the appropriate names."))
        steps.append(relation)
        current = [store.schema(target) for target in relation.reference_to]
    leaf = _common(current, lambda s: s.field(parts[-1]))
    if leaf is None:
        entity = current[0].name if len(current) == 1 else "Name"
        raise SfError(400, "INVALID_FIELD", located(
            query.text, path.pos,
            f"No such column '{parts[-1]}' on entity '{entity}'. If you are attempting to use a custom field, be "
            "sure to append the '__c' after the custom field name. Please reference your WSDL or the describe "
            "call for the appropriate names."))
    path.steps, path.leaf = tuple(steps), leaf


def _common(schemas: list[SObjectSchema], pick: Any) -> FieldDef | None:
    """A field (or relationship) every possible target has — polymorphic What/Who allow only those."""
    found = [pick(s) for s in schemas]
    return found[0] if all(f is not None and f.type == found[0].type for f in found) else None


def _bind_condition(query: Query, node: Any, store: OrgStore, having: bool) -> None:
    if node is None:
        return
    if isinstance(node, Junction):
        for item in node.items:
            _bind_condition(query, item, store, having)
        return
    if isinstance(node, Not):
        _bind_condition(query, node.inner, store, having)
        return
    _bind_expr(query, node.expr, store)
    if isinstance(node.expr, Aggregate) and not having:
        raise malformed(query.text, node.expr.pos, "Aggregate functions are only allowed in HAVING")
    if having and isinstance(node.expr, FieldExpr) and node.expr.key not in {e.key for e in query.group_by}:
        raise malformed(query.text, node.expr.pos, f"Field must be grouped or aggregated: {node.expr.path.text}")
    leaf = node.expr.result
    if isinstance(node, SemiJoin):
        _bind_semi_join(query, node, store)
    elif isinstance(node, Like):
        if leaf.type not in TEXT_TYPES:
            raise SfError(400, "INVALID_FIELD", located(
                query.text, node.expr.pos, f"invalid operator on {leaf.type} field: LIKE"))
    elif isinstance(node, InList):
        for value in node.values:
            _check_literal(query, leaf, value, "=")
    else:
        _check_literal(query, leaf, node.value, node.op)


def _bind_semi_join(query: Query, node: SemiJoin, store: OrgStore) -> None:
    inner = node.query
    _bind_from(inner, store)
    _bind_query(inner, store, nested=True)
    selected = inner.items[0] if len(inner.items) == 1 else None
    if not isinstance(selected, FieldExpr) or selected.function or inner.is_aggregate:
        raise malformed(query.text, inner.from_pos, "The inner select field of a semi join or anti join must be "
                                                    "a single Id or reference field")
    for side in (node.expr.result, selected.result):
        if side.type not in ID_TYPES:
            raise SfError(400, "INVALID_FIELD", located(
                query.text, node.expr.pos, f"The selected field '{side.name}' in the subquery and the left operand "
                                           "field in the where expression in the outer query must point to the "
                                           "same object type"))


def _check_literal(query: Query, leaf: FieldDef, value: Literal, op: str) -> None:
    kind = leaf.type
    if value.kind == "null":
        if op not in {"=", "!="}:
            raise malformed(query.text, value.pos, f"unexpected token: '{value.text}'")
        return
    expected = {"boolean": ("boolean",), "date": ("date", "relative"), "datetime": ("datetime", "relative")}
    if kind in ID_TYPES or kind in TEXT_TYPES:
        if value.kind != "string":
            raise _filter_type(query, leaf, value, "string", quoted=True)
        if kind in ID_TYPES and not ids.is_well_formed(value.value):
            raise SfError(400, "INVALID_QUERY_FILTER_OPERATOR",
                          located(query.text, value.pos, f"invalid ID field: {value.value}"))
    elif kind in NUMBER_TYPES:
        if value.kind != "number":
            raise _filter_type(query, leaf, value, "double" if kind != "int" else "int", quoted=False)
    elif value.kind not in expected.get(kind, ()):
        label = {"datetime": "dateTime"}.get(kind, kind)
        raise _filter_type(query, leaf, value, label, quoted=False)
    if kind == "boolean" and op not in {"=", "!="}:
        raise SfError(400, "INVALID_QUERY_FILTER_OPERATOR",
                      located(query.text, value.pos, f"invalid operator on boolean field: {op}"))


def _filter_type(query: Query, leaf: FieldDef, value: Literal, expected: str, quoted: bool) -> SfError:
    advice = "should be enclosed in quotes" if quoted else "should not be enclosed in quotes"
    return SfError(400, "INVALID_FIELD", located(
        query.text, value.pos,
        f"value of filter criterion for field '{leaf.name}' must be of type {expected} and {advice}"))
