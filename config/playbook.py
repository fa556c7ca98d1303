"""The playbook document (roles, action defaults, rules of a condition plus an action) validated with pydantic
and built into scoring's frozen Playbook."""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field, TypeAdapter, ValidationError, ValidationInfo, model_validator

from healthsync.config.conditions import Condition
from healthsync.config.documents import (
    Document,
    KeyPath,
    NonNegativeDays,
    at_path,
    problem,
    tagged_union,
    validate_document,
)
from healthsync.scoring.base import IntentKind, Priority
from healthsync.scoring.playbook import TEMPLATE_NAMES, Action, Owner, Playbook, Rule, Template, Window

__all__ = ["PlaybookDocument", "load_playbook", "parse_duration"]

_RULE_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_DURATION = re.compile(r"^\s*(\d+)\s*([hdw])\s*$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


def load_playbook(data: Any, where: str = "playbook", *, roles: Mapping[str, str] | None = None) -> Playbook:
    """The playbook a parsed YAML document describes; DefinitionError lists every problem in it. `roles`
    (role -> email, e.g. the config's writeback.escalations) win over the document's own `roles:`."""
    document = validate_document(PlaybookDocument, data, where, _declared(data, roles or {}))
    return document.playbook(roles or {})


def parse_duration(value: Any) -> timedelta | None:
    """`24h`, `3d`, `2w`, or a whole number of days."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return timedelta(days=value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    return None


# --- field types ----------------------------------------------------------------------------------


def _email(value: Any) -> Any:
    if not isinstance(value, str) or not _EMAIL.match(value):
        raise problem("email", f"must be an email address, got {value!r}")
    return value


def _role_email(value: Any) -> Any:
    return _email(value.get("email") if isinstance(value, dict) else value)  # `role: {email: ...}` reads the same


def _duration(value: Any) -> Any:
    duration = parse_duration(value)
    if duration is None:
        raise problem("duration", "must be like 24h, 3d or 2w (or a number of days)")
    return duration


def _template(value: Any) -> Any:
    """Placeholders are checked here, so a typo fails the load rather than writing `n/a` into every task."""
    if not isinstance(value, str):
        raise problem("template", f"must be text, got {value!r}")
    try:
        parsed = list(string.Formatter().parse(value))
    except ValueError as exc:
        raise problem("template", f"bad template: {exc}") from None
    for _, name, spec, conversion in parsed:
        if name is not None and (spec or conversion or name not in TEMPLATE_NAMES):
            raise problem("template", f"unknown placeholder {{{name}}}; use plain {{name}} with a signal or context "
                                      "name (score, band, account_name, ...)")
    return value


_SUBJECT = "a short task subject (may use {placeholders})"


def _subject(value: Any) -> Any:
    if not isinstance(value, str) or not value.strip():
        raise problem("subject", f"is required: {_SUBJECT}")
    return _template(value)


def _rule_id(value: Any, info: ValidationInfo) -> Any:
    if not isinstance(value, str) or not _RULE_ID.match(value):
        raise problem("rule_id", f"must be a lower_snake_case id, got {value!r}")
    seen = (info.context or {}).get("rule_ids")  # ids of the rules before this one (rules validate in order)
    if seen is not None:
        if value in seen:
            raise problem("rule_id", f"duplicate rule id {value!r}")
        seen.add(value)
    return value


Email = Annotated[str, BeforeValidator(_email)]
RoleEmail = Annotated[str, BeforeValidator(_role_email)]
Duration = Annotated[timedelta, BeforeValidator(_duration)]
Subject = Annotated[str, BeforeValidator(_subject)]
Body = Annotated[str, BeforeValidator(_template)]
RuleId = Annotated[str, BeforeValidator(_rule_id)]


# --- owners ---------------------------------------------------------------------------------------


class RoleOwner(Document):
    """`{role: cs_manager}`: the CRM user the playbook's (or the config's) roles name."""

    role: str

    @model_validator(mode="after")
    def _role_is_known(self, info: ValidationInfo) -> RoleOwner:
        roles = (info.context or {}).get("roles")
        if roles is not None and self.role not in roles:
            raise at_path("role", f"unknown role {self.role!r}; add it under roles: with the email of the CRM user "
                                  f"who holds it (known: {sorted(roles)})")
        return self

    def owner(self, roles: Mapping[str, str]) -> Owner:
        return Owner("email", email=roles[self.role], role=self.role)


class EmailOwner(Document):
    email: Email

    def owner(self, roles: Mapping[str, str]) -> Owner:
        return Owner("email", email=self.email)


def _owner_form(value: Any) -> str | None:
    if value == "account_owner":
        return "account_owner"
    if isinstance(value, dict):
        return "role" if "role" in value else ("email" if "email" in value else None)
    return None


def _why_no_owner(value: Any) -> tuple[KeyPath, str]:
    return (), "must be account_owner, {role: NAME} or {email: ADDRESS}"


OwnerRef = tagged_union("owner_form", {"account_owner": Literal["account_owner"], "role": RoleOwner,
                                       "email": EmailOwner}, _owner_form, _why_no_owner)


# --- actions and rules ----------------------------------------------------------------------------


class DefaultsDocument(Document):
    """Action settings every rule gets unless its action says otherwise."""

    expected: ClassVar[str] = "a mapping of action settings"
    kind: IntentKind | None = None
    owner: OwnerRef | None = None
    due_in: Duration | None = None
    priority: Priority | None = None
    cooldown_days: NonNegativeDays | None = None
    window: Window | None = None


# when neither the action nor the defaults say
_BUILT_IN = DefaultsDocument.model_construct(kind="task", owner="account_owner", due_in=timedelta(days=3), priority="normal",
                             cooldown_days=7, window="iso_week")


class FieldFlag(Document):
    expected: ClassVar[str] = "a mapping {name: ..., value: ...}"
    name: str = Field(description="the CRM field the flag sets")
    value: Any = "true"


class ActionDocument(DefaultsDocument):
    expected: ClassVar[str] = "a mapping with kind, subject and owner"
    subject: Subject = Field(description=_SUBJECT)
    body: Body | None = None
    field: FieldFlag | None = None

    @model_validator(mode="after")
    def _field_flag_names_its_field(self, info: ValidationInfo) -> ActionDocument:
        defaults = (info.context or {}).get("defaults") or _BUILT_IN
        if _first(self.kind, defaults.kind, _BUILT_IN.kind) == "field_flag" and self.field is None:
            raise at_path("field", "a field_flag needs field: {name: ..., value: ...}")
        return self

    def action(self, defaults: DefaultsDocument, roles: Mapping[str, str]) -> Action:
        def setting(key: str) -> Any:
            return _first(getattr(self, key), getattr(defaults, key), getattr(_BUILT_IN, key))

        kind = setting("kind")
        flag = self.field if kind == "field_flag" else None
        owner = setting("owner")
        return Action(
            kind=kind,
            subject=Template(self.subject),
            body=Template(self.body) if self.body is not None else None,
            owner=Owner("account_owner") if owner == "account_owner" else owner.owner(roles),
            due_in=setting("due_in"),
            priority=setting("priority"),
            cooldown_days=setting("cooldown_days"),
            window=setting("window"),
            field_name=flag.name if flag else None,
            field_value=str(flag.value) if flag else None,
        )


def _first(*values: Any) -> Any:
    """The first value that is set (0 days and 0-day cooldowns count as set)."""
    return next(value for value in values if value is not None)


class RuleDocument(Document):
    expected: ClassVar[str] = "a mapping with id, when and action"
    id: RuleId = Field(description="a lower_snake_case id")
    description: str | None = None
    source: str = ""  # where the rule comes from (a seed line), for people
    when: Condition = Field(description="the condition that fires the rule")
    unless: Condition | None = None
    action: ActionDocument = Field(description=ActionDocument.expected)
    enabled: bool = True

    def rule(self, defaults: DefaultsDocument, roles: Mapping[str, str]) -> Rule:
        unless = self.unless.condition() if self.unless is not None else None
        description = self.description if self.description is not None else self.id
        return Rule(self.id, description, self.when.condition(), unless,
                    self.action.action(defaults, roles), self.source)


class PlaybookDocument(Document):
    """A playbook as written in YAML (a preset, a file, or inline in the config)."""

    expected: ClassVar[str] = "a mapping (the parsed playbook YAML)"
    name: str = "custom"
    description: Any = None
    roles: dict[str, RoleEmail] | None = Field(
        default=None, description="a mapping of role name to the email of the CRM user who holds it")
    defaults: DefaultsDocument | None = None
    rules: list[RuleDocument] = Field(description="a list of rules")

    def playbook(self, extra_roles: Mapping[str, str]) -> Playbook:
        roles = {**(self.roles or {}), **extra_roles}
        defaults = self.defaults or _BUILT_IN
        rules = tuple(r.rule(defaults, roles) for r in self.rules if r.enabled)
        return Playbook(self.name, rules, roles)


def _declared(data: Any, extra_roles: Mapping[str, str]) -> dict[str, Any]:
    """The roles and defaults the rules refer to, read first so each rule can be checked against them."""
    document = data if isinstance(data, dict) else {}
    roles = document.get("roles")
    valid_roles = {}
    for role, email in roles.items() if isinstance(roles, dict) else ():
        address = _valid(RoleEmail, email)
        if address is not None:
            valid_roles[role] = address
    defaults = _valid(DefaultsDocument, document.get("defaults") or {}, {"roles": None})
    return {"roles": {**valid_roles, **extra_roles}, "defaults": defaults, "rule_ids": set()}


def _valid(kind: Any, value: Any, context: dict | None = None) -> Any:
    try:
        return TypeAdapter(kind).validate_python(value, context=context or {})
    except ValidationError:
        return None
