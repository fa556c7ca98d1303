"""Playbook loading and rule mechanics: validation with key paths, condition forms, actions, windows."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from healthsync.config.documents import DefinitionError
from healthsync.config.playbook import load_playbook, parse_duration
from healthsync.scoring.base import HistoryFacts
from healthsync.scoring.playbook import window_key

from .scoring_factories import AS_OF, account, rule_context


def book(*rules, roles=None, defaults=None) -> dict:
    return {"name": "t", "roles": roles or {"cs_manager": "mgr@example.com"}, "defaults": defaults or {},
            "rules": list(rules)}


def rule(rule_id="r1", when=None, **action):
    spec = {"subject": "Look at {account_name}", **action}
    return {"id": rule_id, "when": when or {"signal": "tickets_7d", "op": ">=", "value": 2}, "action": spec}


def problems(data) -> list[tuple[str, str]]:
    with pytest.raises(DefinitionError) as caught:
        load_playbook(data)
    return caught.value.problems


def fire(data, values=None, **ctx):
    playbook = load_playbook(data)
    return playbook.evaluate(rule_context(values or {}, **ctx), account(), AS_OF)


def test_every_problem_is_reported_with_its_path():
    bad = book(
        rule("Bad Id"),
        rule("r2", when={"signal": "tickets_per_hour", "op": ">", "value": 1}),
        rule("r3", when={"signal": "tickets_7d", "op": "~", "value": 1}),
        rule("r4", owner={"role": "vp_sales"}),
        rule("r5", due_in="soon", priority="asap", window="fortnight"),
        rule("r6", subject="Hi {account.owner.password}"),
        rule("r1"),
        rule("r1"),
    )
    paths = [p for p, _ in problems(bad)]
    for expected in ("playbook.rules[0].id", "playbook.rules[1].when.signal", "playbook.rules[2].when.op",
                     "playbook.rules[3].action.owner.role", "playbook.rules[4].action.due_in",
                     "playbook.rules[4].action.priority", "playbook.rules[4].action.window",
                     "playbook.rules[5].action.subject", "playbook.rules[7].id"):
        assert expected in paths, expected


def test_type_mismatches_are_rejected():
    bad = book(rule("a", when={"signal": "competitor_mentioned", "op": ">", "value": 1}),
               rule("b", when={"signal": "band", "op": "==", "value": 3}),
               rule("c", when={"signal": "tickets_7d", "op": "in", "value": 2}),
               rule("d", when={"crossed": "band", "below": 3}),
               rule("e", when={"changed": "score", "since": "9d", "op": "<", "value": -1}),
               rule("f", when={"all": []}))
    paths = [p for p, _ in problems(bad)]
    assert paths == ["playbook.rules[0].when.value", "playbook.rules[1].when.value", "playbook.rules[2].when.value",
                     "playbook.rules[3].when.crossed", "playbook.rules[4].when.since", "playbook.rules[5].when.all"]


def test_unknown_role_message_says_how_to_fix_it():
    [(path, message)] = problems(book(rule(owner={"role": "vp_sales"})))
    assert "add it under roles:" in message and "cs_manager" in message


def test_missing_values_never_fire_unless_asked_for():
    assert fire(book(rule(when={"signal": "nps", "op": "<", "value": 7})), {"nps": None}) == []
    intents = fire(book(rule(when={"signal": "nps", "op": "is_null"})), {"nps": None})
    assert [i.rule_id for i in intents] == ["r1"]


def test_any_all_not_combine():
    when = {"all": [{"any": [{"signal": "tickets_7d", "op": ">=", "value": 5},
                             {"signal": "high_severity_open", "op": ">=", "value": 1}]},
                    {"not": {"signal": "segment", "op": "in", "value": ["Self-Serve"]}}]}
    data = book(rule(when=when))
    assert fire(data, {"tickets_7d": 1.0, "high_severity_open": 1.0})
    assert not fire(data, {"tickets_7d": 1.0, "high_severity_open": 0.0})
    body = fire(data, {"tickets_7d": 6.0, "high_severity_open": 0.0})[0].body
    assert "tickets_7d = 6 (tickets_7d >= 5)" in body and "high_severity_open" not in body
    assert "not (segment in [Self-Serve]): segment = Mid-Market" in body


def test_band_changed_from_to_and_direction():
    down = HistoryFacts(previous_score=75, previous_band="healthy")
    up = HistoryFacts(previous_score=55, previous_band="critical")
    worse = book(rule(when={"changed": "band", "direction": "worse"}))
    assert fire(worse, score=65, band="at-risk", history=down)
    assert not fire(worse, score=65, band="at-risk", history=up)
    into = book(rule(when={"changed": "band", "from": "healthy", "to": ["at-risk"]}))
    assert fire(into, score=65, band="at-risk", history=down)
    assert not fire(into, score=75, band="healthy", history=down)
    assert not fire(into, score=65, band="at-risk")  # no previous result: no change to see


def test_crossed_score_and_first_score():
    crossed = book(rule(when={"crossed": "score", "above": 90}))
    assert fire(crossed, score=90, history=HistoryFacts(previous_score=89, previous_band="healthy"))
    assert not fire(crossed, score=92, history=HistoryFacts(previous_score=91, previous_band="healthy"))
    assert not fire(crossed, score=95)
    initial = book(rule(when={"crossed": "score", "above": 90, "initial": True}))
    assert fire(initial, score=95)


def test_changed_score_since_previous():
    data = book(rule(when={"changed": "score", "since": "previous", "op": "<=", "value": -3}))
    assert fire(data, score=77, history=HistoryFacts(previous_score=80, previous_band="healthy"))
    assert not fire(data, score=78, history=HistoryFacts(previous_score=80, previous_band="healthy"))


def test_field_flag_action_and_defaults():
    data = book(rule(kind="field_flag", field={"name": "At_Risk__c", "value": "yes"}),
                defaults={"priority": "high", "cooldown_days": 3, "window": "month", "due_in": "2w"})
    [intent] = fire(data, {"tickets_7d": 2.0})
    assert (intent.kind, intent.field_name, intent.field_value) == ("field_flag", "At_Risk__c", "yes")
    assert (intent.priority, intent.cooldown_days, intent.window) == ("high", 3, "2025-06")
    assert intent.due_at == AS_OF + timedelta(weeks=2)
    assert problems(book(rule(kind="field_flag"))) == [
        ("playbook.rules[0].action.field", "a field_flag needs field: {name: ..., value: ...}")]


def test_role_and_direct_email_owners():
    [by_role] = fire(book(rule(owner={"role": "cs_manager"})), {"tickets_7d": 2.0})
    assert (by_role.owner.kind, by_role.owner.email, by_role.owner.role) == ("email", "mgr@example.com", "cs_manager")
    [direct] = fire(book(rule(owner={"email": "cto@cloudscale.io"})), {"tickets_7d": 2.0})
    assert direct.owner.email == "cto@cloudscale.io" and direct.owner.role is None
    assert problems(book(rule(owner={"email": "not-an-email"})))[0][0] == "playbook.rules[0].action.owner.email"


def test_unless_suppresses_and_disabled_rules_are_skipped():
    data = book(rule(when={"signal": "tickets_7d", "op": ">=", "value": 2}) | {
        "unless": {"signal": "segment", "op": "==", "value": "Mid-Market"}})
    assert fire(data, {"tickets_7d": 5.0}) == []
    disabled = book(rule() | {"enabled": False})
    assert load_playbook(disabled).rules == ()


@pytest.mark.parametrize("window, key", [
    ("day", "2025-06-02"), ("iso_week", "2025-W23"), ("month", "2025-06"), ("quarter", "2025-Q2"),
    ("renewal", "renewal-2025-12-19"), ("contract", "contract-2024-04-28"), ("once", "once"),
])
def test_window_keys(window, key):
    assert window_key(window, AS_OF, account()) == key


def test_iso_week_key_at_year_boundary():
    from datetime import UTC, datetime
    assert window_key("iso_week", datetime(2024, 12, 30, tzinfo=UTC), account()) == "2025-W01"
    assert window_key("renewal", AS_OF, account(renewal_date=None)) == "renewal-none"
    assert date(2024, 12, 30).isocalendar()[0] == 2025


@pytest.mark.parametrize("text, expected", [
    ("24h", timedelta(hours=24)), ("3d", timedelta(days=3)), ("2w", timedelta(weeks=2)), (5, timedelta(days=5)),
    ("3 days", None), (-1, None), (True, None),
])
def test_durations(text, expected):
    assert parse_duration(text) == expected
