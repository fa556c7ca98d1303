"""Builders for scoring tests: small, explicit facts as of one fixed instant."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path

import yaml

from healthsync.config.health_model import load_model
from healthsync.config.playbook import load_playbook
from healthsync.scoring import Account, AccountFacts, UsageDay
from healthsync.scoring.base import HistoryFacts
from healthsync.scoring.playbook import RuleContext

AS_OF = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
TODAY = AS_OF.date()
PRESETS = Path(__file__).resolve().parents[2] / "config" / "presets"
PRESET_NAMES = ("default", "csm-playbook", "points-100", "ops-thresholds", "weighted-five")


@cache
def preset_dict(name: str) -> dict:
    return yaml.safe_load((PRESETS / f"{name}.yaml").read_text())


@cache
def preset(name: str):
    return load_model(preset_dict(name))


@cache
def default_playbook():
    return load_playbook(yaml.safe_load((PRESETS / "playbook-default.yaml").read_text()))


def days_ago(n: float) -> datetime:
    return AS_OF - timedelta(days=n)


def day(n: int) -> date:
    """The calendar day n days before AS_OF's day."""
    return TODAY - timedelta(days=n)


def account(**overrides) -> Account:
    fields = dict(id="001A", name="Acme", owner_id="005OWNER", acv=50_000.0, contract_start=day(400),
                  renewal_date=day(-200), seats_purchased=10)
    fields.update(overrides)
    return Account(**fields)


def usage_rows(days: range | list[int], users: int = 3, events: int = 100, core: int = 10, value: int = 1,  # noqa: PLR0913 (test factory: one keyword per usage-day column)
               features: tuple[str, ...] = ("reports",)) -> tuple[UsageDay, ...]:
    ids = frozenset(f"u{i}" for i in range(users))
    return tuple(UsageDay(day(n), ids, ids, events, core, frozenset(features), value) for n in days)


def facts(acct: Account | None = None, **parts) -> AccountFacts:
    return AccountFacts(acct or account(), **parts)


def rule_context(values: dict | None = None, *, score: int = 80, band: str = "healthy",  # noqa: PLR0913 (test factory mirroring RuleContext's fields, keyword-only)
                 history: HistoryFacts = HistoryFacts(), is_healthy: bool | None = None,
                 renewal_stage: str | None = None, evidence: dict | None = None) -> RuleContext:
    """A rule context from plain values; context names default from score/band/history."""
    ranks = {"healthy": 0, "at-risk": 1, "critical": 2}
    extras = {
        "score": score,
        "band": band,
        "is_healthy": band == "healthy" if is_healthy is None else is_healthy,
        "previous_score": history.previous_score,
        "previous_band": history.previous_band,
        "score_delta_7d": history.delta_7d,
        "score_delta_30d": history.delta_30d,
        "score_decline_weeks": history.decline_weeks,
        "renewal_stage": renewal_stage,
        "segment": "Mid-Market",
        "insufficient_data": False,
        "coverage_pct": 100.0,
    }
    return RuleContext(values or {}, evidence or {}, history, score, band, ranks, extras)


def random_facts(rng, n: int) -> list[AccountFacts]:
    """A small varied portfolio for property tests (deterministic for a given `rng`)."""
    from healthsync.scoring import Activity, Contact, NpsResponse, Opportunity, Ticket

    portfolio = []
    for i in range(n):
        start = day(rng.randint(1, 500))
        acct = Account(
            id=f"A{i:03d}", name=f"Account {i}", owner_id="005X", acv=rng.choice([None, 3e3, 2e4, 6e4, 2e5]),
            seats_purchased=rng.choice([None, 5, 20]), plan_capacity=rng.choice([None, 5000]),
            contract_start=start, renewal_date=rng.choice([None, day(-rng.randint(-20, 300))]),
            renewal_signed=rng.choice([None, True, False]), payment_status=rng.choice([None, "current", "late"]),
            nps=rng.choice([None, 2, 8, 10]), plan_features=("reports", "api", "sso"),
        )
        usage = tuple(
            UsageDay(day(d), frozenset(f"u{u}" for u in range(rng.randint(0, 6))),
                     frozenset(f"u{u}" for u in range(rng.randint(0, 3))), rng.randint(0, 300), rng.randint(0, 30),
                     frozenset(rng.sample(["reports", "api", "sso", "x"], rng.randint(0, 3))), rng.randint(0, 2))
            for d in range(rng.randint(0, 70)) if rng.random() < 0.8
        )
        tickets = tuple(
            Ticket(f"T{i}-{t}", days_ago(rng.randint(0, 100)), priority=rng.choice(["low", "high", "urgent"]),
                   satisfaction=rng.choice([None, "good", "bad"]), status=rng.choice(["open", "solved"]),
                   tags=(rng.choice(["a", "b"]),))
            for t in range(rng.randint(0, 5))
        )
        contacts = tuple(Contact(f"C{i}-{c}", is_champion=c == 0, is_exec_sponsor=c == 1,
                                 left_at=rng.choice([None, None, days_ago(rng.randint(1, 200))]))
                         for c in range(rng.randint(0, 3)))
        activities = tuple(
            Activity(f"E{i}-{a}", rng.choice(["meeting", "email", "call", "qbr"]), days_ago(rng.randint(0, 150)),
                     outcome=rng.choice([None, "held", "no_show", "cancelled"]),
                     direction=rng.choice(["inbound", "outbound"]), contact_id=f"C{i}-{a % 3}")
            for a in range(rng.randint(0, 6))
        )
        opps = (Opportunity(f"O{i}", "expansion", 1000.0, "Closed Won", True, day(rng.randint(0, 400))),) \
            if rng.random() < 0.3 else ()
        nps = (NpsResponse(days_ago(rng.randint(1, 300)), rng.randint(0, 10)),) if rng.random() < 0.3 else ()
        covered = rng.choice([frozenset({"crm", "support", "usage"}), frozenset({"crm"}), frozenset({"crm", "usage"})])
        portfolio.append(AccountFacts(acct, contacts, opps, activities, tickets, usage, nps, covered))
    return portfolio
