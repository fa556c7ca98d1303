"""Calibration check of the planted scenarios against the scoring engine, without any emulator or connector:
the portfolio's truth is turned straight into scoring facts, scored with a health model and the default
playbook (history back-filled at -30 d and -7 d), and every planted account's fired rules are compared with
the manifest. Run: `.venv/bin/python bench/sandbox_scenarios.py [--model default] [--size 120] [--seed 7]`.

This is a tuning aid for the lead (either side may move); end-to-end tests go through the real connectors.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import yaml

from healthsync.config.catalog import resolve_preset_path
from healthsync.config.health_model import load_model
from healthsync.config.playbook import load_playbook
from healthsync.sandbox.behaviour import CORE_ACTION_EVENTS, PLAN_FEATURES, VALUE_EVENTS
from healthsync.sandbox.naming import COMPETITORS
from healthsync.sandbox.portfolio import generate_portfolio
from healthsync.sandbox.scenarios import CLEAN_KEY, PLANTED, RULE_IDS
from healthsync.scoring import base as sb
from healthsync.scoring.portfolio import backfill_history, score_portfolio

_PAYMENT = {"current": "current", "overdue": "late", "failed": "failed"}


def _usage(portfolio, days: int):
    rows: dict[str, dict] = defaultdict(dict)
    nps: dict[str, list] = defaultdict(list)
    core, value = set(CORE_ACTION_EVENTS), set(VALUE_EVENTS)
    for back in range(days):
        day = portfolio.as_of.date() - timedelta(days=back)
        for event in portfolio.events_for_day(day):
            props = event["properties"]
            key = props["_account_key"]
            if key is None:
                continue
            row = rows[key].setdefault(day, {"active": set(), "login": set(), "events": 0, "core": 0,
                                             "features": set(), "value": 0})
            row["active"].add(props["distinct_id"])
            row["events"] += 1
            name = event["event"]
            if name == "login":
                row["login"].add(props["distinct_id"])
            elif name in core:
                row["core"] += 1
            elif name in value:
                row["value"] += 1
            elif name == "feature_used":
                row["features"].add(props["feature"])
            elif name == "nps_survey_submitted":
                nps[key].append(sb.NpsResponse(datetime.fromtimestamp(props["time"], UTC), props["score"]))
    usage = {
        key: tuple(sb.UsageDay(day, frozenset(r["active"]), frozenset(r["login"]), r["events"], r["core"],
                               frozenset(r["features"]), r["value"]) for day, r in by_day.items())
        for key, by_day in rows.items()
    }
    return usage, nps


def to_facts(portfolio, days: int = 90) -> list[sb.AccountFacts]:
    usage, nps = _usage(portfolio, days)
    by_account: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for c in portfolio.contacts:
        if not c.deleted:
            by_account[c.account_key]["contacts"].append(sb.Contact(
                c.key, c.email, c.role, c.is_champion, c.role == "exec_sponsor", True, c.left_company_at,
                c.role_changed_at))
    for o in portfolio.opportunities:
        if not o.deleted and o.kind in ("renewal", "expansion"):
            by_account[o.account_key]["opps"].append(sb.Opportunity(
                o.key, o.kind, o.amount, o.stage, o.is_won, o.close_date, o.created_at))
    for a in portfolio.activities:
        if not a.deleted:
            by_account[a.account_key]["activities"].append(sb.Activity(
                a.key, a.kind, a.occurred_at, a.outcome, a.direction, a.contact_key))
    org_account = {o.id: o.account_key for o in portfolio.zendesk_orgs}
    for t in portfolio.tickets:
        key = org_account.get(t.org_id)
        if key is not None:
            sat = t.satisfaction if t.satisfaction in ("good", "bad") else None
            by_account[key]["tickets"].append(sb.Ticket(
                str(t.id), t.created_at, t.updated_at, t.solved_at, t.priority, t.status, t.reopens, sat,
                t.subject, t.description, tuple(t.tags)))
    facts = []
    for a in portfolio.accounts:
        parts = by_account[a.key]
        account = sb.Account(a.key, a.name, a.domain, a.owner_key, a.acv, a.arr, a.plan_tier, a.seats_purchased,
                             float(a.capacity_limit), a.contract_start, a.renewal_date, None,
                             _PAYMENT[a.payment_status], None, a.nps, PLAN_FEATURES[a.plan_tier])
        facts.append(sb.AccountFacts(account, tuple(parts["contacts"]), tuple(parts["opps"]),
                                     tuple(parts["activities"]), tuple(parts["tickets"]),
                                     usage.get(a.key, ()), tuple(nps.get(a.key, ())),
                                     usage_since=max(a.contract_start, portfolio.as_of.date() - timedelta(days=days - 1))))
    return facts


def main_for(seed: int, size: int, model: str = "default", quiet: bool = False) -> list[str]:
    """Score the book and return one line per planted account that disagrees with the manifest."""
    as_of = datetime(2025, 6, 4, 10, tzinfo=UTC)
    portfolio = generate_portfolio(seed, size, as_of)
    data = yaml.safe_load(resolve_preset_path(model).read_text())
    data.setdefault("signals", {}).update({
        "competitor_words": list(COMPETITORS), "features_by_plan": {k: list(v) for k, v in PLAN_FEATURES.items()},
        "core_action_events": list(CORE_ACTION_EVENTS), "value_events": list(VALUE_EVENTS)})
    health = load_model(data)
    playbook = load_playbook(yaml.safe_load(resolve_preset_path("default", "playbook").read_text()))
    facts = to_facts(portfolio)
    history = backfill_history(facts, health, as_of)
    scored = {s.result.account_id: s for s in score_portfolio(facts, health, playbook, history, as_of)}
    fired = {key: {i.rule_id for i in s.intents} for key, s in scored.items()}
    problems = []
    if not quiet:
        print(f"{'key':8} {'score':>5} {'7d':>5} {'30d':>5}  fired")
    for spec, account in zip(PLANTED, portfolio.accounts, strict=False):
        result = scored[account.key].result
        got = fired[account.key]
        missing = [r for r in spec.fires if r not in got]
        wrong = sorted({r for r in spec.control_for if r in got} | (got if spec.clean else set()))
        if missing or wrong:
            problems.append(f"{account.key} score {result.score}: missing {missing}, must not fire {wrong}")
        if not quiet:
            print(f"{account.key:8} {result.score:>5} {result.trend_7d!s:>5} {result.trend_30d!s:>5}  "
                  f"{'BAD' if missing or wrong else 'OK '} want={','.join(spec.fires) or ('clean' if spec.clean else '-')} "
                  f"got={','.join(sorted(got))}")
    if not quiet:
        counts = defaultdict(int)
        for rules in fired.values():
            for rule in rules:
                counts[rule] += 1
        print("\nbook-wide firing counts:", dict(sorted(counts.items())))
        uncovered = [r for r in RULE_IDS if not portfolio.scenarios.get(r)]
        print(f"clean controls: {len(portfolio.controls.get(CLEAN_KEY, []))}; rules without a scenario: {uncovered or 'none'}")
        print("\n".join(problems) or "every planted account agrees with the manifest")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="default")
    parser.add_argument("--size", type=int, default=len(PLANTED) + 20)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    return 1 if main_for(args.seed, args.size, args.model) else 0


if __name__ == "__main__":
    sys.exit(main())
