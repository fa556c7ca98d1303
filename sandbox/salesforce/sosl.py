"""A subset of SOSL for `/search/?q=`: `FIND {term}` or `FIND 'term'`, with `*` / `?` wildcards and quoted
phrases; `IN ALL|NAME|EMAIL|PHONE FIELDS`; `RETURNING Object[(fields [WHERE ...] [ORDER BY ...] [LIMIT n])], ...`;
and an overall `LIMIT n`. Not covered: AND/OR/NOT between terms, WITH clauses, snippets, spell correction.

Follows "SOSL Syntax", "FIND {SearchQuery}", "IN SearchGroup", "RETURNING FieldSpec" and "LIMIT n" in the SOQL
and SOSL Reference (developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_sosl.htm)
and the REST API's "Search" resource (resources_search.htm), which answers `{"searchRecords": [...]}`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from healthsync.sandbox.salesforce.errors import SfError
from healthsync.sandbox.salesforce.soql import compile_soql, execute, render_row
from healthsync.sandbox.salesforce.store import OrgStore, Record

SEARCHABLE = ("Account", "Contact", "Opportunity", "Case", "User")  # objects a default search covers
MAX_LIMIT = 2000
_FIND = re.compile(r"^\s*FIND\s+(\{(?P<braced>(?:[^}\\]|\\.)*)\}|'(?P<quoted>(?:[^'\\]|\\.)*)')\s*(?P<rest>.*)$",
                   re.IGNORECASE | re.DOTALL)
_GROUP = re.compile(r"^IN\s+(ALL|NAME|EMAIL|PHONE)\s+FIELDS\s*", re.IGNORECASE)
_GROUP_TYPES = {"all": {"string", "textarea", "email", "phone", "url", "picklist", "combobox"},
                "email": {"email"}, "phone": {"phone"}}  # NAME FIELDS: the object's name field(s)


@dataclass
class Returning:
    sobject: str
    clause: str  # what follows the field list inside the parentheses, as SOQL


def search(text: str, store: OrgStore, version: str, now: datetime) -> dict[str, Any]:
    match = _FIND.match(text or "")
    if match is None:
        raise SfError(400, "MALFORMED_SEARCH", "search string must start with FIND {term} or FIND 'term'")
    term = match.group("braced") if match.group("braced") is not None else match.group("quoted")
    pattern = _term_pattern(term)
    rest = match.group("rest").strip()
    group = "all"
    found = _GROUP.match(rest)
    if found:
        group, rest = found.group(1).lower(), rest[found.end():]
    returning, limit = _returning(rest, store)
    hits: list[dict[str, Any]] = []
    for spec in returning:
        hits.extend(_search_object(spec, pattern, group, store, version, now))
    return {"searchRecords": hits[:limit]}


def _term_pattern(term: str) -> re.Pattern[str]:
    """Terms match whole words, case-insensitively; `*` is any run of characters, `?` one character; a term
    needs two characters besides wildcards."""
    raw = term.strip().strip('"')
    if len(re.sub(r"[*?\s]", "", raw)) < 2:
        raise SfError(400, "MALFORMED_SEARCH", "search term must be longer than one character")
    words = [re.escape(w).replace(r"\*", r"\w*").replace(r"\?", r"\w") for w in raw.split()]
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", re.IGNORECASE)


def _returning(rest: str, store: OrgStore) -> tuple[list[Returning], int]:
    limit = MAX_LIMIT
    tail = re.search(r"\bLIMIT\s+(\d+)\s*$", rest, re.IGNORECASE)
    if tail and rest[:tail.start()].count("(") == rest[:tail.start()].count(")"):
        limit, rest = min(int(tail.group(1)), MAX_LIMIT), rest[:tail.start()].strip()
    if not rest:
        return [Returning(name, "Id") for name in SEARCHABLE if store.has(name)], limit
    head = re.match(r"^RETURNING\s+", rest, re.IGNORECASE)
    if head is None:
        raise SfError(400, "MALFORMED_SEARCH", f"unexpected token: '{rest.split()[0]}'")
    specs = []
    for part in _split_objects(rest[head.end():]):
        name, _, inner = part.partition("(")
        name = name.strip()
        if not store.has(name):
            raise SfError(400, "INVALID_TYPE", f"sObject type '{name}' is not supported.")
        specs.append(Returning(store.schema(name).name, inner.rstrip().removesuffix(")").strip() or "Id"))
    return specs, limit


def _split_objects(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return [p for p in (*parts, current) if p.strip()]


def _search_object(spec: Returning, pattern: re.Pattern[str], group: str, store: OrgStore, version: str,  # noqa: PLR0913 (one RETURNING clause, the search pattern and scope, and the org, API version and clock it runs against)
                   now: datetime) -> list[dict[str, Any]]:
    fields, clause = _fields_and_clause(spec.clause)
    query = compile_soql(f"SELECT {fields} FROM {spec.sobject} {clause}", store)
    schema = store.schema(spec.sobject)
    wanted = [d for d in schema.fields.values()
              if (d.name_field if group == "name" else d.type in _GROUP_TYPES[group])]
    rows = [r for r in execute(query, store, include_deleted=False, now=now) if _hit(r, wanted, pattern)]
    return [render_row(query, row, store, version, now) for row in rows]


def _fields_and_clause(inner: str) -> tuple[str, str]:
    keyword = re.search(r"\b(WHERE|ORDER\s+BY|LIMIT|OFFSET)\b", inner, re.IGNORECASE)
    if keyword is None:
        return inner, ""
    return inner[:keyword.start()].strip() or "Id", inner[keyword.start():]


def _hit(record: Record, fields: list[Any], pattern: re.Pattern[str]) -> bool:
    return any(isinstance(record.get(d.name), str) and pattern.search(record[d.name]) for d in fields)
