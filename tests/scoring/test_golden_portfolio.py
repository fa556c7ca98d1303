"""Golden digests: a fixed synthetic portfolio scored by every preset (and variants that reach the other
missing-data policies, segment overrides, per-segment percentiles and competitor words) must give exactly
the results recorded before the scoring hot paths were optimised — bit for bit, floats and texts included.

The digests were recorded with the unoptimised code; a change here means results changed, which is a
behaviour change to justify, never a number to refresh casually. The model and playbook YAML are frozen
copies in `golden/` (the presets as of that recording), so editing a preset never moves these digests."""

from __future__ import annotations

import copy
import hashlib
import random
from datetime import timedelta
from functools import cache
from pathlib import Path

import pytest
import yaml

from healthsync.scoring import (
    AccountFacts,
    Activity,
    Contact,
    NpsResponse,
    Opportunity,
    PastResult,
    Ticket,
    UsageDay,
    backfill_history,
    load_model,
    load_playbook,
    score_portfolio,
)
from healthsync.scoring.signals import SignalCalculator
from tests.scoring.scoring_factories import AS_OF, PRESET_NAMES, day, days_ago, random_facts

ACCOUNTS = 160
GOLDEN_INPUTS = Path(__file__).resolve().parent / "golden"


@cache
def _frozen_yaml(name: str) -> dict:
    return yaml.safe_load((GOLDEN_INPUTS / f"{name}.yaml").read_text())


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


def _digest(items) -> str:
    sha = hashlib.sha256()
    for item in items:
        sha.update(repr(item).encode())
        sha.update(b"\n")
    return sha.hexdigest()


# Recorded with the code before optimisation (scoring/ as of the start of the performance work).
GOLDEN = {
    "default": "018ef566c06f47ca26389f654b1103c29df5e3a1f68e12fb7261718b0e7ab2dd",
    "csm-playbook": "231e784fa5dc871b498d283440c34b094f5b5f8b0e119393f436f37970d97d10",
    "points-100": "5f5d7208580b2ad5cf7233b14a6c2f8b29d9cf036c05c0a9e96e2128ef5763c8",
    "ops-thresholds": "f2e5ce50df45ca85bc820d23e690890fe2099eb32dc4f056df3c43c0234e88e0",
    "weighted-five": "87f77ddd33c7606343c3bd2adddaa70f7691c1b42a6d4f880ca2a4e7047b42c8",
    "custom-policies": "67d11fdbc13762db33d185583f4adc41f1b991de803cbde6702edb81f8c2bfcf",
    "csm-by-segment": "537a818d685eea741810d19f28502ebdc8241b33fed05461e0aff3629c9e852c",
}
GOLDEN_SIGNALS = "071eb6ddc55292d08db9e229aaac7dcc984a307a5c76da8207b14f3a02c069b4"
GOLDEN_BACKFILL = "0233395fde3de23c8f96ec8ef006b06f8142eff2e07de332bbd2fba9dc8bf5d4"


@pytest.fixture(scope="module")
def portfolio_and_history():
    facts = _portfolio()
    history = _walk_history(random.Random(11), facts)
    backfilled = backfill_history(facts[1::2], load_model(preset_dict("default")), AS_OF)
    history.update(backfilled)  # odd accounts: past results with measure scores, so "moved" texts appear
    return facts, history, backfilled


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_results_match_the_recorded_digest(name, portfolio_and_history):
    facts, history, _ = portfolio_and_history
    model = load_model(_variants()[name])
    scored = score_portfolio(facts, model, default_playbook(), history, AS_OF)
    assert len(scored) == len(facts)
    assert _digest(scored) == GOLDEN[name]


def test_signals_match_the_recorded_digest(portfolio_and_history):
    facts, _, _ = portfolio_and_history
    calculator = SignalCalculator(load_model(_variants()["custom-policies"]).signal_config, AS_OF)
    signals = [calculator.compute(f) for f in facts]
    # key order is not part of the contract; values and evidence are
    assert _digest((s.account_id, sorted(s.values.items()), sorted(s.evidence.items())) for s in signals) \
        == GOLDEN_SIGNALS


def test_backfill_matches_the_recorded_digest(portfolio_and_history):
    _, _, backfilled = portfolio_and_history
    assert _digest((k, [(p.as_of, p.score, p.band, sorted(p.measures.items()), sorted(p.raw.items()))
                        for p in v]) for k, v in sorted(backfilled.items())) == GOLDEN_BACKFILL


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
