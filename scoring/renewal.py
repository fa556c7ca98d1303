"""Renewal stage from days to renewal (seed 000's 120/90/60/30 ladder, windows per segment) and
customer segment by ACV (seed 001's Enterprise / Mid-Market / SMB / Self-Serve)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from healthsync.scoring.conditions import Problems

STAGES = ("engage", "propose", "negotiate", "escalate", "renewed", "lapsed")
_WINDOW_ORDER = ("engage", "propose", "negotiate", "escalate")


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


def load_windows(node: Any, path: str, problems: Problems, base: RenewalWindows = RenewalWindows()) -> RenewalWindows:
    """Windows from `{engage: 120, propose: 90, ...}`; unspecified stages keep `base`'s value."""
    if node is None:
        return base
    if not isinstance(node, Mapping):
        problems.append((path, "must be a mapping like {engage: 120, propose: 90, negotiate: 60, escalate: 30}"))
        return base
    unknown = sorted(str(k) for k in node if k not in _WINDOW_ORDER)
    if unknown:
        problems.append((path, f"unknown stages {unknown}; windows exist for {list(_WINDOW_ORDER)}"))
    values = {}
    for stage in _WINDOW_ORDER:
        value = node.get(stage, getattr(base, stage))
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            problems.append((f"{path}.{stage}", f"must be a whole number of days >= 0, got {value!r}"))
            return base
        values[stage] = value
    ordered = [values[s] for s in _WINDOW_ORDER]
    if any(b > a for a, b in pairwise(ordered)):
        # equal windows are allowed: the earlier stage is then skipped (e.g. SMB starts at propose)
        problems.append((path, "windows must not grow: engage >= propose >= negotiate >= escalate, got "
                               + ", ".join(f"{s} {values[s]}" for s in _WINDOW_ORDER)))
        return base
    return RenewalWindows(**values)


def load_segments(node: Any, path: str, problems: Problems) -> tuple[SegmentRule, ...]:
    """Segments from `[{name, min_acv, inclusive?}]`, highest first."""
    if node is None:
        return DEFAULT_SEGMENTS
    if not isinstance(node, list) or not node:
        problems.append((path, "must be a non-empty list of {name, min_acv, inclusive}"))
        return DEFAULT_SEGMENTS
    rules = []
    for i, item in enumerate(node):
        where = f"{path}[{i}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            problems.append((where, "must be a mapping with a name and min_acv"))
            continue
        min_acv = item.get("min_acv")
        if not isinstance(min_acv, (int, float)) or isinstance(min_acv, bool) or min_acv < 0:
            problems.append((f"{where}.min_acv", f"must be a number >= 0, got {min_acv!r}"))
            continue
        inclusive = item.get("inclusive", True)
        if not isinstance(inclusive, bool):
            problems.append((f"{where}.inclusive", "must be true or false"))
            continue
        rules.append(SegmentRule(item["name"], float(min_acv), inclusive))
    mins = [r.min_acv for r in rules]
    if any(b > a for a, b in pairwise(mins)):
        problems.append((path, "list segments from the highest min_acv to the lowest"))
    names = [r.name for r in rules]
    if len(set(names)) != len(names):
        problems.append((path, "segment names must be unique"))
    return tuple(rules)
