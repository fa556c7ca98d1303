"""Renewal stage from days to renewal (seed 000's 120/90/60/30 ladder, windows per segment) and
customer segment by ACV (seed 001's Enterprise / Mid-Market / SMB / Self-Serve)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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
