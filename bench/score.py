"""Benchmark: 100k synthetic accounts through signals -> score -> playbook rules, as of one instant.

Prints accounts/s for each stage and for the whole pipeline on the production path (`score_portfolio`, one
process, as the daemon scores), peak RSS, and a digest of all results that must equal the one recorded before
optimisation. Target (issue "Scoring"): the whole pipeline under 10 s.
Run: .venv/bin/python bench/score.py [--accounts N] [--preset NAME] [--seed N]
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import random
import resource
import time
from datetime import UTC, date, datetime, timedelta

import yaml

from healthsync.config.catalog import resolve_preset_path
from healthsync.config.health_model import load_model
from healthsync.config.playbook import load_playbook
from healthsync.scoring import (
    Account,
    AccountFacts,
    Activity,
    Contact,
    NpsResponse,
    Opportunity,
    PastResult,
    Ticket,
    UsageDay,
    score_portfolio,
)
from healthsync.scoring.portfolio import portfolio_populations, portfolio_signals

AS_OF = datetime(2025, 6, 2, 6, 0, tzinfo=UTC)
USAGE_DAYS = 63  # nine weeks: enough for week-over-week, 30-vs-30-day trend and decline streaks
FEATURES = ("reports", "alerts", "api", "sso", "dashboards", "exports", "workflows", "audit")
PLANS = {"starter": FEATURES[:3], "pro": FEATURES[:6], "enterprise": FEATURES}
TICKET_SUBJECTS = ("Login fails", "Export broken", "Slow dashboard", "We are evaluating Acme instead", "API 500s")


def _usage(rng: random.Random, days: list[date], users: list[str], start_index: int) -> tuple[UsageDay, ...]:
    # a handful of shared user sets per account keeps 6M rows within memory
    pools = [frozenset(rng.sample(users, rng.randint(1, len(users)))) for _ in range(4)]
    feature_sets = [frozenset(rng.sample(FEATURES, rng.randint(1, 5))) for _ in range(3)]
    trend = rng.uniform(0.97, 1.02)
    base = rng.randint(20, 400)
    rows = []
    for i in range(start_index, len(days)):
        active = pools[i % 4]
        if rng.random() < 0.15:
            continue  # quiet day, no row
        events = int(base * trend ** i)
        rows.append(UsageDay(days[i], active, active, events, events // 5, feature_sets[i % 3], events // 50))
    return tuple(rows)


def synth_account(n: int, rng: random.Random, days: list[date]) -> AccountFacts:
    account_id = f"001{n:012d}"
    plan = rng.choice(tuple(PLANS))
    new_customer = rng.random() < 0.03
    start = AS_OF.date() - timedelta(days=rng.randint(0, 30) if new_customer else rng.randint(60, 900))
    seats = rng.randint(3, 60)
    users = [f"u{n}-{i}" for i in range(max(2, min(seats, 25)))]
    account = Account(
        id=account_id, name=f"Account {n}", domain=f"a{n}.example.com", owner_id="005OWNER",
        acv=rng.choice((2_000, 12_000, 40_000, 150_000)) * rng.uniform(0.5, 1.5), plan_tier=plan,
        seats_purchased=seats, plan_capacity=rng.randint(2_000, 20_000), contract_start=start,
        renewal_date=AS_OF.date() + timedelta(days=rng.randint(-10, 365)),
        renewal_signed=rng.random() < 0.2, payment_status=rng.choice(("current", "current", "current", "late")),
        nps=rng.choice((None, 3, 7, 9, 10)),
    )
    contacts = tuple(
        Contact(f"003{n}{i}", f"c{i}@a{n}.example.com", "user", is_champion=i == 0, is_exec_sponsor=i == 1,
                left_at=(AS_OF - timedelta(days=rng.randint(1, 200))) if rng.random() < 0.05 else None)
        for i in range(rng.randint(2, 5))
    )
    activities = tuple(
        Activity(f"00T{n}{i}", rng.choice(("meeting", "call", "email", "email", "qbr")),
                 AS_OF - timedelta(days=rng.randint(0, 120), hours=rng.randint(0, 23)),
                 outcome=rng.choice(("held", "held", "no_show", "cancelled", None)),
                 direction=rng.choice(("inbound", "outbound")), contact_id=contacts[i % len(contacts)].id)
        for i in range(rng.randint(2, 10))
    )
    tickets = tuple(
        Ticket(f"{n}-{i}", AS_OF - timedelta(days=rng.randint(0, 120)),
               priority=rng.choice(("low", "normal", "normal", "high", "urgent")),
               status=rng.choice(("open", "solved", "solved")), reopens=rng.choice((0, 0, 1)),
               satisfaction=rng.choice((None, "good", "good", "bad")), subject=rng.choice(TICKET_SUBJECTS),
               tags=(rng.choice(("billing", "login", "export")),))
        for i in range(rng.randint(0, 6))
    )
    opportunities = (
        Opportunity(f"006{n}", "expansion", 5_000.0, "Closed Won", True, AS_OF.date() - timedelta(days=100)),
    ) if rng.random() < 0.2 else ()
    nps = (NpsResponse(AS_OF - timedelta(days=20), rng.randint(0, 10)),) if rng.random() < 0.3 else ()
    start_index = max(0, USAGE_DAYS - (AS_OF.date() - start).days - 1)
    return AccountFacts(account, contacts, opportunities, activities, tickets,
                        _usage(rng, days, users, start_index), nps)


def synth_history(facts: list[AccountFacts], model, rng: random.Random) -> dict[str, list[PastResult]]:
    """Daily past scores for five weeks ending near each account's real current score: a gentle random
    walk, with one account in five sliding (so trend and band-change rules have work to do)."""
    current = {s.result.account_id: s.result.score
               for s in score_portfolio(facts, model, None, {}, AS_OF)}
    history = {}
    for f in facts:
        score = float(current[f.account.id])
        drift = rng.choice((0.0, 0.0, 0.0, 0.0, rng.uniform(0.3, 1.0)))  # points lost per day, walking back
        past = []
        for days_ago in range(1, 36):
            score = max(0.0, min(100.0, score + drift + rng.uniform(-1.0, 1.0)))
            rounded = round(score)
            past.append(PastResult(AS_OF - timedelta(days=days_ago), rounded, model.base.band_for(rounded).name))
        history[f.account.id] = past[::-1]
    return history


def results_digest(scored) -> str:
    """sha256 over the repr of every result and intent: floats and texts bit for bit."""
    sha = hashlib.sha256()
    for item in scored:
        sha.update(repr(item).encode())
        sha.update(b"\n")
    return sha.hexdigest()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


# sha256 of every result and intent (repr: floats and texts bit for bit), keyed by (preset, accounts, seed,
# a hash of the model + playbook YAML), computed with the scoring code as it was before the performance work.
# db252739c510: the presets of commit ca39768 (recorded by running the unoptimised code);
# 964b40cba820: after e0c201d reworded one playbook subject (the unoptimised scoring/ re-run on those inputs).
RECORDED_DIGESTS = {
    ("default", 100_000, 7, "db252739c510"): "f9fdb249346268942cf0c0b79e142d4db9e950887d8a449f6bf475a3e5659e18",
    ("default", 100_000, 7, "964b40cba820"): "bf0c969e82aacb41c31fd48812f7bbaac50badd3421b25fedc1c8f4b2ac4bf39",
}


def inputs_hash(model_text: str, playbook_text: str) -> str:
    return hashlib.sha256(f"{model_text}\n---\n{playbook_text}".encode()).hexdigest()[:12]


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    value = fn()
    return value, time.perf_counter() - wall, time.process_time() - cpu


def stage_rows(facts: list[AccountFacts], model) -> list[tuple[str, float, None]]:
    """Signals alone, then the model alone on those signals (informative; not part of the target)."""
    (signals, segments), signals_wall, _ = timed(lambda: portfolio_signals(facts, model, AS_OF))
    populations = portfolio_populations(model, signals, segments)
    _, model_wall, _ = timed(lambda: [model.variant_for(g).score(s.values, populations, g)
                                      for s, g in zip(signals, segments, strict=True)])
    return [("signals only", signals_wall, None), ("model score only", model_wall, None)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    model_text = resolve_preset_path(args.preset).read_text()
    playbook_text = resolve_preset_path("default", "playbook").read_text()
    model = load_model(yaml.safe_load(model_text))
    playbook = load_playbook(yaml.safe_load(playbook_text))
    rng = random.Random(args.seed)
    days = [AS_OF.date() - timedelta(days=USAGE_DAYS - 1 - i) for i in range(USAGE_DAYS)]

    t0 = time.perf_counter()
    facts = [synth_account(n, rng, days) for n in range(args.accounts)]
    generated = time.perf_counter() - t0
    history = synth_history(facts, model, rng)
    gc.collect()
    gc.freeze()  # the facts are long-lived: keep the cyclic collector from rescanning them (as the daemon would)
    usage_rows = sum(len(f.usage) for f in facts)
    rss_after_generation = peak_rss_mb()
    n = len(facts)

    rows = stage_rows(facts, model)
    scored, wall, cpu = timed(lambda: score_portfolio(facts, model, playbook, history, AS_OF))
    rows.append(("score_portfolio (signals, model, rules)", wall, cpu))
    digest = results_digest(scored)

    intents = sum(len(s.intents) for s in scored)
    print(f"preset {args.preset}, {n:,} accounts, {usage_rows:,} usage rows, "
          f"{sum(len(f.tickets) for f in facts):,} tickets, {sum(len(f.activities) for f in facts):,} activities")
    print(f"{'stage':<44}{'seconds':>9}{'accounts/s':>13}{'CPU s':>16}")
    print(f"{'generate facts (not timed in target)':<44}{generated:>9.2f}{n / generated:>13,.0f}")
    for label, wall, cpu in rows:
        print(f"{label:<44}{wall:>9.2f}{n / wall:>13,.0f}" + (f"{cpu:>16.2f}" if cpu is not None else ""))
    print(f"intents: {intents:,}  ({intents / n:.2f} per account)")
    print(f"peak RSS: {peak_rss_mb():,.0f} MB (after generating facts: {rss_after_generation:,.0f} MB)")
    recorded = RECORDED_DIGESTS.get((args.preset, n, args.seed, inputs_hash(model_text, playbook_text)))
    same = recorded is None or recorded == digest
    print(f"results digest: {digest[:16]}"
          + (f"; recorded before optimisation {recorded[:16]}" if recorded
             else "; none recorded for this preset, size, seed and YAML (the golden test in tests/scoring checks equality)")
          + ("" if recorded is None else " -> identical" if same else " -> MISMATCH"))
    target = 10.0 * n / 100_000
    print(f"target: < {target:.1f} s for {n:,} accounts -> {'PASS' if wall < target else 'FAIL'}")
    return 0 if wall < target and same else 1


if __name__ == "__main__":
    raise SystemExit(main())
