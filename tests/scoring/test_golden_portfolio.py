"""Golden results: a fixed synthetic portfolio scored by every preset (and variants that reach the other
missing-data policies, segment overrides, per-segment percentiles and competitor words) must give the
results recorded in `golden/*.json`, compared field by field so a failure shows what moved.

A difference is a behaviour change to justify, never a number to refresh casually. After an intended
scoring change, re-record and review the diff before committing it:

    make golden    # = HEALTHSYNC_RECORD_GOLDEN=1 .venv/bin/python -m pytest tests/scoring/test_golden_portfolio.py

Floats are rounded to 6 decimals, so only real changes show. Every account's score, band and fired rules
are kept; every DETAIL_EVERY-th account in full (components, measures, trends, stage, segment, flags,
history, intents), and the long texts (explanation, task bodies) of every TEXT_EVERY-th, which keeps the
files small. The model and playbook YAML are frozen copies in `golden/` (the presets as of the
recording), so editing a preset never moves these results."""

from __future__ import annotations

import copy
import json
import os
import random
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path

import pytest
import yaml

from healthsync.config.health_model import load_model
from healthsync.config.playbook import load_playbook
from healthsync.scoring import (
    AccountFacts,
    Activity,
    Contact,
    Intent,
    NpsResponse,
    Opportunity,
    PastResult,
    ScoredAccount,
    Ticket,
    UsageDay,
    backfill_history,
    score_portfolio,
)
from healthsync.scoring.signals import SignalCalculator
from tests.scoring.scoring_factories import AS_OF, PRESET_NAMES, day, days_ago, random_facts

ACCOUNTS = 160
DETAIL_EVERY = 8  # accounts recorded in full (every account's score, band and fired rules are kept)
TEXT_EVERY = 16  # of those, the accounts whose explanation and task bodies are kept too
DECIMALS = 6
GOLDEN = Path(__file__).resolve().parent / "golden"
RECORD = os.environ.get("HEALTHSYNC_RECORD_GOLDEN") == "1"
ABSENT = "<absent>"
SHOWN = 12  # differing values listed in a failure


@cache
def _frozen_yaml(name: str) -> dict:
    return yaml.safe_load((GOLDEN / f"{name}.yaml").read_text())


def preset_dict(name: str) -> dict:
    return copy.deepcopy(_frozen_yaml(name))


@cache
def default_playbook():
    return load_playbook(_frozen_yaml("playbook-default"))


def _enrich(rng: random.Random, base: AccountFacts) -> AccountFacts:
    """Adds what `random_facts` leaves out: renewal opportunities, role changes, facts dated after AS_OF,
    competitor names in tickets, unsorted usage rows and a later `usage_since`."""
    account_id = base.account.id
    extra_tickets = tuple(
        Ticket(f"{account_id}-x{t}", days_ago(rng.randint(-5, 95)), updated_at=days_ago(rng.randint(-3, 10)),
               solved_at=rng.choice([None, days_ago(rng.randint(-2, 5))]),
               priority=rng.choice([None, "normal", "urgent"]), status=rng.choice(["open", "solved", "closed"]),
               reopens=rng.choice([0, 2]), subject=rng.choice(["Login fails!", "We compare with Gainsight", ""]),
               description=rng.choice(["", "totango is cheaper", "nothing"]),
               tags=rng.choice([(), ("Billing",), ("noise",)]))
        for t in range(rng.randint(0, 3))
    )
    extra_contacts = tuple(
        Contact(f"{account_id}-k{c}", email=rng.choice([None, f"k{c}@x.io"]), is_champion=rng.random() < 0.5,
                is_exec_sponsor=rng.random() < 0.5, active=rng.random() < 0.8,
                role_changed_at=rng.choice([None, days_ago(rng.randint(-10, 400))]))
        for c in range(rng.randint(0, 2))
    )
    renewals = tuple(
        Opportunity(f"{account_id}-r{o}", "renewal", 9000.0, rng.choice(["Negotiation", "Closed Won"]),
                    rng.random() < 0.5, rng.choice([None, day(rng.randint(-30, 200))]),
                    created_at=rng.choice([None, days_ago(rng.randint(-5, 300))]))
        for o in range(rng.randint(0, 2))
    )
    usage = list(base.usage)
    if usage and rng.random() < 0.3:
        rng.shuffle(usage)
    if rng.random() < 0.2:
        usage.append(UsageDay(day(-2), frozenset({"future"}), frozenset(), 999, 9, frozenset({"api"}), 1))
    activities = base.activities + (
        (Activity(f"{account_id}-f", "meeting", days_ago(-1), outcome="held", contact_id="later"),)
        if rng.random() < 0.2 else ()
    )
    nps = base.nps_responses + ((NpsResponse(days_ago(-3), 1),) if rng.random() < 0.1 else ())
    return AccountFacts(
        base.account, base.contacts + extra_contacts, base.opportunities + renewals, activities,
        base.tickets + extra_tickets, tuple(usage), nps, base.covered,
        usage_since=rng.choice([None, None, day(rng.randint(0, 40))]),
    )


def _portfolio() -> list[AccountFacts]:
    rng = random.Random(20250602)
    return [_enrich(rng, f) for f in random_facts(rng, ACCOUNTS)]


def _walk_history(rng: random.Random, facts: list[AccountFacts]) -> dict[str, list[PastResult]]:
    history = {}
    for f in facts[::2]:
        score = rng.randint(20, 95)
        past = []
        for days in range(1, rng.randint(2, 60)):
            score = max(0, min(100, score + rng.randint(-6, 5)))
            band = "healthy" if score >= 70 else ("at-risk" if score >= 60 else "critical")
            past.append(PastResult(AS_OF - timedelta(days=days, hours=rng.randint(0, 5)), score, band))
        history[f.account.id] = past  # newest first on purpose: scoring must sort
    return history


def _variants() -> dict[str, dict]:
    """Presets plus variants reaching the `default`/`ignore` policies, overrides and segment percentiles."""
    models = {name: preset_dict(name) for name in PRESET_NAMES}
    custom = copy.deepcopy(preset_dict("default"))
    custom["missing_data"] = {"policy": "default", "default": 45, "min_coverage_pct": 70}
    custom["signals"] = {"competitor_words": ["Gainsight", "Totango"], "ignored_topic_tags": ["noise"],
                         "features_by_plan": {"pro": ["reports", "api"]}}
    custom["segment_overrides"] = {"Enterprise": {"missing_data": {"policy": "ignore"},
                                                  "bands": [{"name": "green", "min": 80, "colour": "g"},
                                                            {"name": "red", "min": 0, "colour": "r"}]}}
    custom["renewal"] = {"windows": {"engage": 150}, "segments": {"SMB": {"engage": 90}}}
    models["custom-policies"] = custom
    by_segment = copy.deepcopy(preset_dict("csm-playbook"))
    for component in by_segment["components"]:
        for measure in component["measures"]:
            if measure.get("type") == "percentile":
                measure["within"] = "segment"
    models["csm-by-segment"] = by_segment
    return models


# ------------------------------------------------------------------------------------ readable records


def _plain(value):
    """JSON-ready: floats rounded, datetimes and dates as ISO text, tuples and sets as lists."""
    if isinstance(value, float):
        return round(value, DECIMALS)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(_plain(v) for v in value)
    return value


def _action_record(intent: Intent) -> dict:
    """What a rule's intents share whatever the account (the random portfolio has one owner)."""
    owner = intent.owner
    record = {
        "kind": intent.kind,
        "priority": intent.priority,
        "owner": owner.owner_id if owner.kind == "account_owner" else f"{owner.email} ({owner.role})",
        "due": intent.due_at,
        "cooldown_days": intent.cooldown_days,
    }
    if intent.field_name is not None:
        record["field"] = [intent.field_name, intent.field_value]
    return _plain(record)


def _intents_record(scored: ScoredAccount, with_text: bool) -> dict:
    """rule id -> [window, subject] (and the task body when texts are kept)."""
    intents = {}
    for intent in scored.intents:
        assert intent.dedupe_key == f"{intent.account_id}|{intent.rule_id}|{intent.window}"
        intents[intent.rule_id] = [intent.window, intent.subject, *([intent.body] if with_text else [])]
    return intents


def _result_record(scored: ScoredAccount, with_text: bool) -> dict:
    result = scored.result
    history = result.history
    record = {
        "score": result.score,
        "band": [result.band, result.band_colour],
        "coverage": result.coverage,
        "insufficient_data": result.insufficient_data,
        "components": {name: score for name, score, _, _, _ in result.component_rows},
        "measures": {name: score for name, _, _, _, score, _, _ in result.measure_rows},
        "trend_7d_30d": [result.trend_7d, result.trend_30d],
        "renewal": [result.renewal_stage, result.days_to_renewal],
        "segment": result.segment,
        "active_signals": result.active_signals,
        "history": [history.previous_score, history.previous_band, history.previous_as_of, history.delta_7d,
                    history.delta_30d, history.decline_weeks, history.band_changed],
        "intents": _intents_record(scored, with_text),
    }
    clamped = {name: unclamped for name, _, _, unclamped, was_clamped in result.component_rows if was_clamped}
    if clamped:
        record["clamped"] = clamped
    defaulted = [name for name, *_, was_defaulted in result.measure_rows if was_defaulted]
    if defaulted:
        record["defaulted"] = defaulted
    if with_text:
        record["explanation"] = result.explanation
    assert len(record["measures"]) == len(result.measure_rows), "measure names must be unique"
    return _plain(record)


def _shared(scored: list[ScoredAccount]) -> tuple[dict, dict]:
    """(measure -> [component, signal, share of the score], rule -> its action): the same for every
    account of one variant, so recorded once."""
    measures: dict[str, list] = {}
    rules: dict[str, dict] = {}
    for item in scored:
        for name, component, signal, _, _, weight, _ in item.result.measure_rows:
            shown = _plain([component, signal, weight])
            assert measures.setdefault(name, shown) == shown, f"measure {name} differs between accounts"
        for intent in item.intents:
            action = _action_record(intent)
            assert rules.setdefault(intent.rule_id, action) == action, f"rule {intent.rule_id} differs"
    return measures, dict(sorted(rules.items()))


def _detailed(index: int) -> bool:
    return index % DETAIL_EVERY == 0


def _results_document(scored: list[ScoredAccount]) -> dict:
    measures, rules = _shared(scored)
    return {
        "measures": measures,
        "rules": rules,
        "all_accounts": {s.result.account_id: [s.result.score, s.result.band, [i.rule_id for i in s.intents]]
                         for s in scored},
        "accounts": {s.result.account_id: _result_record(s, with_text=index % TEXT_EVERY == 0)
                     for index, s in enumerate(scored) if _detailed(index)},
    }


# ------------------------------------------------------------------------------------ files and comparison


def _render(value, indent: int = 0, expand: int = 3) -> str:
    """JSON with the outer levels one key per line (and lists of objects one per line), the rest compact:
    a changed value is a one-line diff."""
    pad = " " * (indent + 1)
    if expand and isinstance(value, dict) and value:
        rows = [f"{pad}{json.dumps(k)}: {_render(v, indent + 1, expand - 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(rows) + "\n" + " " * indent + "}"
    if expand and isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        rows = [pad + _render(v, indent + 1, 0) for v in value]
        return "[\n" + ",\n".join(rows) + "\n" + " " * indent + "]"
    return json.dumps(value, ensure_ascii=False)


def _flat(value, prefix: str = "") -> dict:
    """{"accounts.A000.measures.recent_touch": 39.13, ...}: every leaf under its dotted path."""
    if isinstance(value, dict) and value:
        flat = {}
        for key, item in value.items():
            flat.update(_flat(item, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): value}


def _matches_golden(name: str, actual: dict) -> None:
    """Compare with golden/<name>.json (writing it first when recording); a failure lists the paths of the
    values that differ, with the new value on the left and the recorded one on the right."""
    path = GOLDEN / f"{name}.json"
    actual = json.loads(json.dumps(actual))  # the same types a file read back gives
    if RECORD:
        path.write_text(_render(actual) + "\n", encoding="utf-8")
    assert path.exists(), f"{path.name} is missing: record it with `make golden`"
    expected = json.loads(path.read_text(encoding="utf-8"))
    got, want = _flat(actual), _flat(expected)
    differing = sorted(key for key in got.keys() | want.keys() if got.get(key, ABSENT) != want.get(key, ABSENT))
    shown = differing[:SHOWN]
    assert {key: got.get(key, ABSENT) for key in shown} == {key: want.get(key, ABSENT) for key in shown}, (
        f"{path.name}: {len(differing)} value(s) differ (the first {len(shown)} are shown)")


# ------------------------------------------------------------------------------------ tests


@pytest.fixture(scope="module")
def portfolio_and_history():
    facts = _portfolio()
    history = _walk_history(random.Random(11), facts)
    backfilled = backfill_history(facts[1::2], load_model(preset_dict("default")), AS_OF)
    history.update(backfilled)  # odd accounts: past results with measure scores, so "moved" texts appear
    return facts, history, backfilled


@pytest.mark.parametrize("name", sorted(_variants()))
def test_results_match_the_golden_file(name, portfolio_and_history):
    facts, history, _ = portfolio_and_history
    model = load_model(_variants()[name])
    scored = score_portfolio(facts, model, default_playbook(), history, AS_OF)
    assert len(scored) == len(facts)
    _matches_golden(f"results-{name}", _results_document(scored))


def test_signals_match_the_golden_file(portfolio_and_history):
    facts, _, _ = portfolio_and_history
    calculator = SignalCalculator(load_model(_variants()["custom-policies"]).signal_config, AS_OF)
    accounts = {}
    for index, f in enumerate(facts):
        if _detailed(index):
            signals = calculator.compute(f)
            # key order is not part of the contract; values and evidence are
            accounts[signals.account_id] = {"values": dict(sorted(signals.values.items())),
                                            "evidence": dict(sorted(signals.evidence.items()))}
    _matches_golden("signals", {"accounts": _plain(accounts)})


def test_backfill_matches_the_golden_file(portfolio_and_history):
    facts, _, backfilled = portfolio_and_history
    detailed = {f.account.id for index, f in enumerate(facts) if _detailed(index)}
    accounts = {
        account_id: {"past": [[p.as_of, p.score, p.band] for p in past],
                     **({"measures": [dict(sorted(p.measures.items())) for p in past],
                         "raw": [dict(sorted(p.raw.items())) for p in past]} if account_id in detailed else {})}
        for account_id, past in sorted(backfilled.items())
    }
    _matches_golden("backfill", {"accounts": _plain(accounts)})


def test_compiled_scorers_give_exactly_what_score_gives():
    """The model's hot loop calls `Measure.scorer()`; it must agree with `Measure.score` everywhere,
    bounds included, for numbers and booleans."""
    probes = [True, False, 0, -1, -0.5, 0.0, 1e-9, 1, 3, 14, 20, 29.99, 30, 30.01, 45, 60, 89.5, 90, 90.5, 95, 100,
              101, 365, 1e6, -1e6]
    checked = 0
    for name in _variants():
        model = load_model(_variants()[name])
        for variant in (model.base, *model.overrides.values()):
            for component in variant.components:
                for measure in component.measures:
                    if measure.needs_population:
                        continue
                    scorer = measure.scorer()
                    bounds = [b for step in getattr(measure, "steps", ()) for _, b in step.tests]
                    for raw in probes + bounds + list(getattr(measure, "xs", ())):
                        assert scorer(raw) == measure.score(raw), (name, measure.name, raw)
                        checked += 1
    assert checked > 1000
