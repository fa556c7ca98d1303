"""Playbooks: YAML rules (a structured condition plus an action) that turn one scored account into
`Intent` values — tasks, escalations and field flags with an owner, due date, priority, cooldown and a
dedupe key `account|rule|window` so a rule re-firing in the same window is one task, not many."""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

from healthsync.scoring.base import (
    Account,
    ContextValue,
    HistoryFacts,
    Intent,
    ModelError,
    OwnerSpec,
    SignalValue,
)
from healthsync.scoring.conditions import CONTEXT_KINDS, Condition, Problems, compile_condition, format_value
from healthsync.scoring.model import SIGNAL_KINDS

KINDS = ("task", "escalation", "field_flag")
PRIORITIES = ("low", "normal", "high", "urgent")
WINDOWS = ("day", "iso_week", "month", "quarter", "renewal", "contract", "once")
RULE_KINDS: Mapping[str, str] = {**SIGNAL_KINDS, **CONTEXT_KINDS}
TEMPLATE_NAMES = frozenset(RULE_KINDS) | {"account_name", "account_id"}
_RULE_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_DURATION = re.compile(r"^\s*(\d+)\s*([hdw])\s*$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_RULE_KEYS = {"id", "description", "source", "when", "unless", "action", "enabled"}
_ACTION_KEYS = {"kind", "subject", "body", "owner", "due_in", "priority", "cooldown_days", "window", "field"}
_BODY_LIMIT = 4000


class RuleContext:
    """What a rule can see about one account: its signals plus score, band, history and renewal context."""

    __slots__ = ("data", "evidence", "history", "score", "band", "band_ranks")

    def __init__(self, values: Mapping[str, SignalValue], evidence: Mapping[str, str], history: HistoryFacts,
                 score: int, band: str, band_ranks: Mapping[str, int], extras: Mapping[str, ContextValue]):
        data = dict(values)
        data.update(extras)
        self.data, self.evidence, self.history = data, evidence, history
        self.score, self.band, self.band_ranks = score, band, band_ranks

    def get(self, name: str) -> ContextValue:
        return self.data.get(name)


class Template:
    """A `{name}` template over rule context names, checked at load time (no attribute access, no eval)."""

    def __init__(self, text: str, path: str, problems: Problems):
        self.text = text
        self.parts: list[tuple[str, str | None]] = []
        try:
            parsed = list(string.Formatter().parse(text))
        except ValueError as exc:
            problems.append((path, f"bad template: {exc}"))
            return
        for literal, name, spec, conversion in parsed:
            if name is not None and (spec or conversion or name not in TEMPLATE_NAMES):
                problems.append((path, f"unknown placeholder {{{name}}}; use plain {{name}} with a signal or "
                                       "context name (score, band, account_name, ...)"))
                name = None
            self.parts.append((literal, name))

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
    kind: str  # account_owner | email
    email: str | None = None
    role: str | None = None

    def __post_init__(self) -> None:
        fixed = None if self.kind == "account_owner" else OwnerSpec("email", email=self.email, role=self.role)
        object.__setattr__(self, "_fixed", fixed)

    def spec(self, account: Account) -> OwnerSpec:
        return self._fixed or OwnerSpec("account_owner", owner_id=account.owner_id)


@dataclass(frozen=True)
class Action:
    kind: str
    subject: Template
    body: Template | None
    owner: Owner
    due_in: timedelta
    priority: str
    cooldown_days: int
    window: str
    field_name: str | None = None
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


def window_key(window: str, as_of: datetime, account: Account) -> str:
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
                intents.append(self._intent(rule, ctx, account, as_of, windows, self._suppressions.get(rule.id)))
        return intents

    def rule(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)

    @staticmethod
    def _intent(rule: Rule, ctx: RuleContext, account: Account, as_of: datetime,
                windows: dict[str, str] | None = None, suppression: str | None = None) -> Intent:
        action = rule.action
        windows = {} if windows is None else windows
        window = windows.get(action.window)
        if window is None:
            window = windows[action.window] = window_key(action.window, as_of, account)
        reasons = rule.when.reasons(ctx)
        if rule.unless is not None:
            reasons.append(suppression or f"not suppressed: {rule.unless.describe()} is false")
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


# ------------------------------------------------------------------------------------------- load


def parse_duration(value: Any) -> timedelta | None:
    """`24h`, `3d`, `2w`, or a whole number of days."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return timedelta(days=value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            amount, unit = int(match.group(1)), match.group(2)
            return {"h": timedelta(hours=amount), "d": timedelta(days=amount), "w": timedelta(weeks=amount)}[unit]
    return None


def load_playbook(data: Any, where: str = "playbook") -> Playbook:
    """Validate a parsed playbook dict and compile its rules; raises ModelError listing every problem."""
    if not isinstance(data, Mapping):
        raise ModelError([(where, "must be a mapping (the parsed playbook YAML)")])
    problems: Problems = []
    unknown = sorted(str(k) for k in data if k not in {"name", "description", "roles", "defaults", "rules"})
    if unknown:
        problems.append((where, f"unexpected keys {unknown}; allowed: name, description, roles, defaults, rules"))
    roles = _load_roles(data.get("roles"), f"{where}.roles", problems)
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, Mapping):
        problems.append((f"{where}.defaults", "must be a mapping of action settings"))
        defaults = {}
    rules_node = data.get("rules")
    rules: list[Rule] = []
    if not isinstance(rules_node, list):
        problems.append((f"{where}.rules", "must be a list of rules"))
    else:
        seen: set[str] = set()
        for i, node in enumerate(rules_node):
            rule = _load_rule(node, f"{where}.rules[{i}]", problems, roles, defaults, seen)
            if rule is not None:
                rules.append(rule)
    if problems:
        raise ModelError(problems)
    return Playbook(str(data.get("name", "custom")), tuple(rules), roles)


def _load_roles(node: Any, path: str, problems: Problems) -> dict[str, str]:
    if node is None:
        return {}
    if not isinstance(node, Mapping):
        problems.append((path, "must map a role name to the email of the CRM user who holds it"))
        return {}
    roles = {}
    for role, email in node.items():
        if isinstance(email, Mapping):
            email = email.get("email")
        if not isinstance(email, str) or not _EMAIL.match(email):
            problems.append((f"{path}.{role}", f"must be an email address, got {email!r}"))
            continue
        roles[str(role)] = email
    return roles


def _load_rule(node: Any, path: str, problems: Problems, roles: Mapping[str, str], defaults: Mapping,
               seen: set[str]) -> Rule | None:
    if not isinstance(node, Mapping):
        problems.append((path, "must be a mapping with id, when and action"))
        return None
    before = len(problems)
    unknown = sorted(str(k) for k in node if k not in _RULE_KEYS)
    if unknown:
        problems.append((path, f"unexpected keys {unknown}; allowed: {sorted(_RULE_KEYS)}"))
    rule_id = node.get("id")
    if not isinstance(rule_id, str) or not _RULE_ID.match(rule_id):
        problems.append((f"{path}.id", f"must be a lower_snake_case id, got {rule_id!r}"))
    elif rule_id in seen:
        problems.append((f"{path}.id", f"duplicate rule id {rule_id!r}"))
    else:
        seen.add(rule_id)
    if "when" not in node:
        problems.append((f"{path}.when", "is required: the condition that fires the rule"))
        when = None
    else:
        when = compile_condition(node["when"], f"{path}.when", problems, RULE_KINDS)
    unless = None
    if node.get("unless") is not None:
        unless = compile_condition(node["unless"], f"{path}.unless", problems, RULE_KINDS)
    action = _load_action(node.get("action"), f"{path}.action", problems, roles, defaults)
    if len(problems) > before or when is None or action is None:
        return None
    if node.get("enabled", True) is False:
        return None
    return Rule(rule_id, str(node.get("description", rule_id)), when, unless, action, str(node.get("source", "")))


def _load_action(node: Any, path: str, problems: Problems, roles: Mapping[str, str],
                 defaults: Mapping) -> Action | None:
    if not isinstance(node, Mapping):
        problems.append((path, "must be a mapping with kind, subject and owner"))
        return None
    before = len(problems)
    unknown = sorted(str(k) for k in node if k not in _ACTION_KEYS)
    if unknown:
        problems.append((path, f"unexpected keys {unknown}; allowed: {sorted(_ACTION_KEYS)}"))

    def setting(key: str, fallback: Any) -> Any:
        return node.get(key, defaults.get(key, fallback))

    kind = setting("kind", "task")
    if kind not in KINDS:
        problems.append((f"{path}.kind", f"must be one of {list(KINDS)}, got {kind!r}"))
    subject_text = node.get("subject")
    if not isinstance(subject_text, str) or not subject_text.strip():
        problems.append((f"{path}.subject", "is required: a short task subject (may use {placeholders})"))
        subject_text = ""
    subject = Template(subject_text, f"{path}.subject", problems)
    body_text = node.get("body")
    body = Template(body_text, f"{path}.body", problems) if isinstance(body_text, str) else None
    owner = _load_owner(setting("owner", "account_owner"), f"{path}.owner", problems, roles)
    due_in = parse_duration(setting("due_in", "3d"))
    if due_in is None:
        problems.append((f"{path}.due_in", "must be like 24h, 3d or 2w (or a number of days)"))
    priority = setting("priority", "normal")
    if priority not in PRIORITIES:
        problems.append((f"{path}.priority", f"must be one of {list(PRIORITIES)}, got {priority!r}"))
    cooldown = setting("cooldown_days", 7)
    if not isinstance(cooldown, int) or isinstance(cooldown, bool) or cooldown < 0:
        problems.append((f"{path}.cooldown_days", f"must be a whole number of days >= 0, got {cooldown!r}"))
    window = setting("window", "iso_week")
    if window not in WINDOWS:
        problems.append((f"{path}.window", f"must be one of {list(WINDOWS)}, got {window!r}"))
    field_name = field_value = None
    if kind == "field_flag":
        field = node.get("field")
        if not isinstance(field, Mapping) or not isinstance(field.get("name"), str):
            problems.append((f"{path}.field", "a field_flag needs field: {name: ..., value: ...}"))
        else:
            field_name, field_value = field["name"], str(field.get("value", "true"))
    if len(problems) > before:
        return None
    return Action(kind, subject, body, owner, due_in, priority, cooldown, window, field_name, field_value)


def _load_owner(node: Any, path: str, problems: Problems, roles: Mapping[str, str]) -> Owner:
    if node == "account_owner":
        return Owner("account_owner")
    if isinstance(node, Mapping) and "role" in node:
        role = node["role"]
        if role not in roles:
            problems.append((f"{path}.role", f"unknown role {role!r}; add it under roles: with the email of the "
                                             f"CRM user who holds it (known: {sorted(roles)})"))
            return Owner("account_owner")
        return Owner("email", email=roles[role], role=str(role))
    if isinstance(node, Mapping) and "email" in node:
        email = node["email"]
        if not isinstance(email, str) or not _EMAIL.match(email):
            problems.append((f"{path}.email", f"must be an email address, got {email!r}"))
            return Owner("account_owner")
        return Owner("email", email=email)
    problems.append((path, "must be account_owner, {role: NAME} or {email: ADDRESS}"))
    return Owner("account_owner")
