"""Mixpanel's `where` expressions against "Segmentation Expressions" (grammar, operators, typecasts, examples)
and "Supported Properties Data Type" (truthiness), both directly and through the export and engage APIs."""

from __future__ import annotations

import pytest

from healthsync.sandbox.mixpanel import WhereError, compile_where

from .. import zm_fixtures as fx
from .conftest import MP, mixpanel_sa, mp_get


def day(**extra) -> dict:
    """A fresh one-day export request: mixpanel-utils writes `project_id` into the dict it is given."""
    return {"from_date": "2024-04-30", "to_date": "2024-04-30", **extra}
EVENT = {"account_id": 3, "$os": "Mac OS X", "plan": "pro", "seats": 12, "ratio": 2.5, "flag": False,
         "tags": ["a", "b"], "empty": "", "zero": 0, "word_false": "false", "n_text": "42"}


@pytest.mark.parametrize("expression, expected", [
    # the reference's examples
    ('properties["account_id"] in [1,2,3,4]', True),
    ('properties["account_id"] in [5, 6]', False),
    ('user["$email"] == "someone@acme.test"', True),
    ('defined(properties["$os"])', True),
    ('not defined(properties["missing"])', True),
    # comparison operators on numbers and strings; an undefined side is false
    ('properties["seats"] > 10 and properties["seats"] <= 12', True),
    ('properties["seats"] >= 13 or properties["seats"] < 12', False),
    ('properties["plan"] != "free"', True),
    ('properties["missing"] > 1', False),
    ('properties["missing"] != "x"', True),
    ('properties["plan"] < "q"', True),
    # arithmetic, unary minus, math and typecasts
    ('properties["seats"] * 2 + 1 == 25', True),
    ('properties["seats"] % 5 == 2 and properties["seats"] / 4 == 3', True),
    ('-properties["seats"] < 0', True),
    ('floor(properties["ratio"]) == 2 and ceil(properties["ratio"]) == 3 and round(properties["ratio"]) == 2', True),
    ('number(properties["n_text"]) == 42', True),
    ('string(properties["seats"]) == "12"', True),
    ('boolean(properties["flag"]) == false', True),
    # `in`: list membership and substring
    ('"a" in properties["tags"]', True),
    ('"Mac" in properties["$os"]', True),
    ('"Linux" in properties["$os"]', False),
    # truthiness from "Supported Properties Data Type": "false", 0, null, undefined and "" are false
    ('properties["empty"] or properties["zero"] or properties["word_false"] or properties["missing"]', False),
    ('properties["plan"] and properties["seats"]', True),
    # precedence: not binds looser than comparisons, and before or
    ('not properties["plan"] == "free" and properties["seats"] == 12', True),
    ('properties["plan"] == "x" or properties["plan"] == "pro" and properties["seats"] == 12', True),
    ("(properties['plan'] == 'pro')", True),
])
def test_documented_operators_and_examples(expression, expected):
    assert compile_where(expression)(EVENT, {"$email": "someone@acme.test"}) is expected


@pytest.mark.parametrize("malformed", [
    'properties["a"] ==', 'properties[a] == 1', '(properties["a"] == 1', 'properties["a"] = 1',
    'regex(properties["a"], "x")', 'properties["a"] in [1, 2', '"x" "y"',
])
def test_malformed_expressions_are_rejected(malformed):
    with pytest.raises(WhereError):
        compile_where(malformed)


def test_where_filters_the_export_with_event_and_user_properties(mp_server):
    mp = mixpanel_sa(mp_server)
    acme = mp.query_export(day(where=f'properties["account_id"] in ["{fx.sf_id(1)}", "globex.test"]'))
    assert len(acme) == 2 * 2 * fx.PROFILES_PER_ACCOUNT  # Acme and Globex users, login + feature_used
    by_user = mp.query_export(day(where='user["$name"] == "Acme user 1"'))
    assert {e["properties"]["distinct_id"] for e in by_user} == {"u-A1-1"}
    by_email = mp.query_export(day(where='"@initech.test" in properties["$email"]'))
    assert len(by_email) == 2 * fx.PROFILES_PER_ACCOUNT
    late = mp.query_export(day(where='properties["time"] >= 1714467600 and properties["time"] % 60 == 0'))
    assert late and all(e["properties"]["time"] >= 1714467600 for e in late)


def test_where_filters_engage_profiles(mp_server):
    mp = mixpanel_sa(mp_server)
    profiles = mp.query_engage({"where": '"@acme.test" in properties["$email"] and not properties["$name"] == "x"'})
    assert sorted(p["$distinct_id"] for p in profiles) == [f"u-A1-{k}" for k in range(fx.PROFILES_PER_ACCOUNT)]
    status, body = mp_get(mp_server, "/api/2.0/engage", project_id=MP.project_id, where='properties["$email"] ==')
    assert status == 400 and body["status"] == "error" and "where" in body["error"]
