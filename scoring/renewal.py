"""Renewal stage from days to renewal (seed 000's 120/90/60/30 ladder, windows per segment), customer
segment by ACV (seed 001's Enterprise / Mid-Market / SMB / Self-Serve), and who is a customer at all."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from healthsync.scoring.base import AccountFacts, Opportunity

STAGES = ("engage", "propose", "negotiate", "escalate", "renewed", "lapsed")
WINDOW_STAGES = ("engage", "propose", "negotiate", "escalate")  # the stages a window opens, earliest first


@dataclass(frozen=True, slots=True)
class RenewalWindows:
    """Days before the renewal date at which each stage starts (engage >= propose >= negotiate >= escalate)."""

    engage: int = 120
    propose: int = 90
    negotiate: int = 60
    escalate: int = 30


@dataclass(frozen=True, slots=True)
class SegmentRule:
    name: str
    min_acv: float
    inclusive: bool = True  # False: ACV must be strictly above min_acv (Enterprise is "> $100K")

    def matches(self, acv: float) -> bool:
        return acv >= self.min_acv if self.inclusive else acv > self.min_acv


DEFAULT_SEGMENTS = (
    SegmentRule("Enterprise", 100_000, inclusive=False),
    SegmentRule("Mid-Market", 25_000),
    SegmentRule("SMB", 5_000),
    SegmentRule("Self-Serve", 0),
)


def renewal_stage(days_to_renewal: float | None, signed: bool | None, windows: RenewalWindows) -> str | None:
    """The stage an account is in, or None when no renewal date is known or it is still far off."""
    if signed:
        return "renewed"
    if days_to_renewal is None:
        return None
    if days_to_renewal < 0:
        return "lapsed"
    if days_to_renewal <= windows.escalate:
        return "escalate"
    if days_to_renewal <= windows.negotiate:
        return "negotiate"
    if days_to_renewal <= windows.propose:
        return "propose"
    if days_to_renewal <= windows.engage:
        return "engage"
    return None


def segment_for(acv: float | None, rules: Sequence[SegmentRule]) -> str | None:
    """First rule (highest first) the ACV satisfies; None when ACV is unknown or below every rule."""
    if acv is None:
        return None
    for rule in rules:
        if rule.matches(acv):
            return rule.name
    return None


def is_former_customer(opportunities: Iterable[Opportunity], today: date) -> bool:
    """The latest renewal decided by `today` was lost, and no open renewal follows it: the CRM keeps the
    account (its history is what a backtest replays), but there is no one left to score or task."""
    renewals = [o for o in opportunities if o.kind == "renewal"]
    decided = [o for o in renewals if (o.is_won or o.is_closed) and o.close_date is not None and o.close_date <= today]
    if not decided:
        return False
    last = max(decided, key=lambda o: (o.close_date, o.is_won))  # a win on the same day counts
    return not last.is_won and not any(not (o.is_won or o.is_closed) for o in renewals)


def current_customers(facts: Iterable[AccountFacts], as_of: datetime) -> list[AccountFacts]:
    """The accounts that are customers as of `as_of` (former customers left out), in the given order."""
    today = as_of.date()
    return [f for f in facts if not is_former_customer(f.opportunities, today)]
