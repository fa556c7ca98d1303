"""Playbooks: rules (a structured condition plus an action) that turn one scored account into `Intent`
values — tasks, escalations and field flags with an owner, due date, priority, cooldown and a dedupe key
`account|rule|window` so a rule re-firing in the same window is one task, not many. The rules are frozen
values; `healthsync.config.playbook` validates the YAML and builds them."""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Literal

from healthsync.scoring.base import (
    Account,
    ContextValue,
    HistoryFacts,
    Intent,
    IntentKind,
    OwnerSpec,
    Priority,
    SignalValue,
)
from healthsync.scoring.conditions import CONTEXT_KINDS, Condition, format_value
from healthsync.scoring.signals import SIGNAL_KINDS

Window = Literal["day", "iso_week", "month", "quarter", "renewal", "contract", "once"]
RULE_KINDS: Mapping[str, str] = {**SIGNAL_KINDS, **CONTEXT_KINDS}  # every name a rule can see, with its kind
TEMPLATE_NAMES = frozenset(RULE_KINDS) | {"account_name", "account_id"}
_BODY_LIMIT = 4000


class RuleContext:
    """What a rule can see about one account: its signals plus score, band, history and renewal context."""

    __slots__ = ("data", "evidence", "history", "score", "band", "band_ranks")

    def __init__(  # noqa: PLR0913 (its slots' values, built once per account on the scoring hot path)
        self, values: Mapping[str, SignalValue], evidence: Mapping[str, str], history: HistoryFacts,
        score: int, band: str, band_ranks: Mapping[str, int], extras: Mapping[str, ContextValue],
    ):
        data = dict(values)
        data.update(extras)
        self.data, self.evidence, self.history = data, evidence, history
        self.score, self.band, self.band_ranks = score, band, band_ranks

    def get(self, name: str) -> ContextValue:
        return self.data.get(name)


@dataclass(frozen=True)
class Template:
    """A `{name}` template over TEMPLATE_NAMES (plain names only: no attribute access, no format specs)."""

    text: str
    parts: tuple[tuple[str, str | None], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parsed = string.Formatter().parse(self.text)
        object.__setattr__(self, "parts", tuple((literal, name) for literal, name, _, _ in parsed))

    def render(self, ctx: RuleContext, account: Account) -> str:
        out = []
        for literal, name in self.parts:
            out.append(literal)
            if name == "account_name":
                out.append(account.name or account.id)
            elif name == "account_id":
                out.append(account.id)
            elif name is not None:
                out.append(format_value(ctx.get(name)))
        return "".join(out)


@dataclass(frozen=True)
class Owner:
    kind: Literal["account_owner", "email"]
    email: str | None = None
    role: str | None = None

    def __post_init__(self) -> None:
        fixed = None if self.kind == "account_owner" else OwnerSpec("email", email=self.email, role=self.role)
        object.__setattr__(self, "_fixed", fixed)

    def spec(self, account: Account) -> OwnerSpec:
        return self._fixed or OwnerSpec("account_owner", owner_id=account.owner_id)


@dataclass(frozen=True)
class Action:
    kind: IntentKind
    subject: Template
    body: Template | None = None
    owner: Owner = Owner("account_owner")
    due_in: timedelta = timedelta(days=3)
    priority: Priority = "normal"
    cooldown_days: int = 7
    window: Window = "iso_week"
    field_name: str | None = None  # field flags only
    field_value: str | None = None


@dataclass(frozen=True)
class Rule:
    id: str
    description: str
    when: Condition
    unless: Condition | None
    action: Action
    source: str = ""

    def fires(self, ctx: RuleContext) -> bool:
        if not self.when.fn(ctx):
            return False
        return self.unless is None or not self.unless.fn(ctx)


def window_key(window: Window, as_of: datetime, account: Account) -> str:
    """The period a rule's task belongs to: firing again inside it maps to the same dedupe key."""
    if window == "renewal":
        return f"renewal-{account.renewal_date.isoformat() if account.renewal_date else 'none'}"
    if window == "contract":
        return f"contract-{account.contract_start.isoformat() if account.contract_start else 'none'}"
    return _time_window(window, as_of.date())


@lru_cache(maxsize=64)
def _time_window(window: str, today: date) -> str:
    """Windows that depend on the (local) day alone: the same for every account of a run, so cached."""
    if window == "day":
        return today.isoformat()
    if window == "iso_week":
        year, week, _ = today.isocalendar()
        return f"{year}-W{week:02d}"
    if window == "month":
        return f"{today.year}-{today.month:02d}"
    if window == "quarter":
        return f"{today.year}-Q{(today.month - 1) // 3 + 1}"
    return "once"



@dataclass(frozen=True, eq=False)  # compared by identity: it holds mappings
class Playbook:
    name: str
    rules: tuple[Rule, ...]
    roles: Mapping[str, str]

    def __post_init__(self) -> None:
        compiled = tuple((rule, rule.when.fn, rule.unless.fn if rule.unless else None) for rule in self.rules)
        object.__setattr__(self, "_compiled", compiled)
        # the "not suppressed" reason depends only on the rule, so it is written once
        suppressions = {rule.id: f"not suppressed: {rule.unless.describe()} is false"
                        for rule in self.rules if rule.unless is not None}
        object.__setattr__(self, "_suppressions", suppressions)

    def evaluate(self, ctx: RuleContext, account: Account, as_of: datetime) -> list[Intent]:
        intents = []
        windows: dict[str, str] = {}
        for rule, when, unless in self._compiled:
            if when(ctx) and (unless is None or not unless(ctx)):
                intents.append(self._intent(rule, ctx, account, as_of, windows))
        return intents

    def rule(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)

    def _intent(self, rule: Rule, ctx: RuleContext, account: Account, as_of: datetime,
                windows: dict[str, str]) -> Intent:
        """The intent a firing rule asks for; `windows` caches this account's window keys across its rules."""
        action = rule.action
        window = windows.get(action.window)
        if window is None:
            window = windows[action.window] = window_key(action.window, as_of, account)
        reasons = rule.when.reasons(ctx)
        if rule.unless is not None:
            reasons.append(self._suppressions[rule.id])
        lead = action.body.render(ctx, account) if action.body else rule.description
        history = ctx.history
        trend = "" if history.delta_7d is None else f", {history.delta_7d:+d} in 7 days"
        body = (
            f"{lead}\n\nWhy (rule {rule.id}): " + "; ".join(reasons) + "."
            f"\nHealth {ctx.score} ({ctx.band}{trend}) as of {as_of.date().isoformat()}."
        )
        return Intent(
            rule_id=rule.id,
            account_id=account.id,
            kind=action.kind,
            subject=action.subject.render(ctx, account)[:255],
            body=body[:_BODY_LIMIT],
            owner=action.owner.spec(account),
            due_at=as_of + action.due_in,
            priority=action.priority,
            dedupe_key=f"{account.id}|{rule.id}|{window}",
            window=window,
            cooldown_days=action.cooldown_days,
            field_name=action.field_name,
            field_value=action.field_value,
        )
