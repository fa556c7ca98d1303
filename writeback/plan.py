"""The pure half of writeback: desired state vs what we last wrote and what the CRM holds → a Plan.

No I/O, no clock: every input is a value, so `healthsync plan` can print exactly what `apply` will do,
and a test can check the plan without a CRM. The rules encoded here are the product's promises:
write only what changed, never write a field we don't own, never silently clobber a human's edit,
one open task per (account, rule), and no re-creation inside a closed task's cooldown.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from healthsync.scoring.base import HealthResult, Intent
from healthsync.writeback.base import (
    Conflict,
    FieldUpdate,
    FieldValue,
    Plan,
    RuleTaskState,
    Suppressed,
    TaskEntry,
    TaskUpsert,
    Unresolved,
)

# Logical names of the account fields healthsync can write; config maps each to a CRM field name.
LOGICAL_FIELDS = (
    "health_score",
    "health_band",
    "component_scores",
    "trend_7d",
    "trend_30d",
    "renewal_stage",
    "days_to_renewal",
    "segment",
    "top_risks",
    "explanation",
    "last_scored_at",
)
# Written only alongside a real change: otherwise every cycle would rewrite every account.
PASSENGER_FIELDS = frozenset({"last_scored_at"})
SHORT_TEXT_LIMIT = 255  # the length `setup` gives text fields
# Written with every change of ours and by nobody else: tells a write of ours the ledger missed from a human edit.
WRITE_MARKER = "last_scored_at"


@dataclass(frozen=True, slots=True)
class WritebackPolicy:
    """The writeback part of config, already resolved: logical field → CRM field, and who wins conflicts."""

    field_names: Mapping[str, str]  # logical -> CRM field name (only fields listed here are written)
    owned: frozenset[str]  # CRM field names we own; anything else is never written
    we_win_conflicts: bool = False
    text_limit: int = 1000

    def crm_field(self, logical: str) -> str | None:
        name = self.field_names.get(logical)
        return name if name and name in self.owned else None


@dataclass(frozen=True, slots=True)
class PlanInputs:
    """Everything the planner reads, gathered by the caller from the store and the ledger."""

    crm: str
    as_of: datetime
    results: Sequence[HealthResult]
    intents: Sequence[Intent]
    last_written: Mapping[str, Mapping[str, FieldValue]]  # account id -> CRM field -> value we wrote
    crm_current: Mapping[str, Mapping[str, FieldValue]]  # account id -> CRM field -> value pulled now
    task_entries: Mapping[str, TaskEntry] = field(default_factory=dict)
    rule_states: Mapping[tuple[str, str], RuleTaskState] = field(default_factory=dict)
    users_by_email: Mapping[str, str] = field(default_factory=dict)


def build_plan(inputs: PlanInputs, policy: WritebackPolicy) -> Plan:
    """The whole diff, deterministic: sorted by account id and dedupe key."""
    field_updates, adopted, conflicts = _plan_fields(inputs, policy)
    tasks, suppressed, unresolved = _plan_tasks(inputs)
    return Plan(
        crm=inputs.crm,
        as_of=inputs.as_of,
        field_updates=tuple(field_updates),
        tasks=tuple(tasks),
        conflicts=tuple(conflicts),
        unresolved=tuple(unresolved),
        suppressed=tuple(suppressed),
        adopted=tuple(adopted),
    )


# ----------------------------------------------------------------------------------------- fields


def desired_fields(result: HealthResult, policy: WritebackPolicy, flags: Iterable[Intent] = ()) -> dict[str, FieldValue]:
    """CRM field name → value we want on the account, for every owned, mapped field."""
    logical: dict[str, FieldValue] = {
        "health_score": result.score,
        "health_band": result.band,
        "component_scores": _components_text(result),
        "trend_7d": result.trend_7d,
        "trend_30d": result.trend_30d,
        "renewal_stage": result.renewal_stage,
        "days_to_renewal": result.days_to_renewal,
        "segment": result.segment,
        "top_risks": _names_within(result.active_signals[:8], SHORT_TEXT_LIMIT) or None,
        "explanation": _truncate(result.explanation, policy.text_limit),
        "last_scored_at": result.as_of.isoformat(timespec="seconds"),
    }
    desired = {}
    for name, value in logical.items():
        crm_name = policy.crm_field(name)
        if crm_name:
            desired[crm_name] = value
    for flag in flags:
        if flag.field_name and flag.field_name in policy.owned:
            desired[flag.field_name] = flag.field_value
    return desired


def _plan_fields(inputs: PlanInputs, policy: WritebackPolicy):
    flags_by_account: dict[str, list[Intent]] = {}
    for intent in inputs.intents:
        if intent.kind == "field_flag":
            flags_by_account.setdefault(intent.account_id, []).append(intent)
    passengers = {policy.crm_field(name) for name in PASSENGER_FIELDS} - {None}
    marker = policy.crm_field(WRITE_MARKER)
    updates, adopted, conflicts = [], [], []
    for result in sorted(inputs.results, key=lambda r: r.account_id):
        account = result.account_id
        desired = desired_fields(result, policy, flags_by_account.get(account, ()))
        last = inputs.last_written.get(account, {})
        current = inputs.crm_current.get(account, {})
        unrecorded = _unrecorded_write(last, current, desired, marker, inputs.as_of)
        if unrecorded:  # the CRM holds a write of ours the ledger missed (a crash): those values are ours
            last = {**last, **{name: current[name] for name in unrecorded}}
        fields = _AccountFields(account, desired, last, current, unrecorded)
        change, adopt, account_conflicts = _diff_account(fields, policy.we_win_conflicts)
        conflicts.extend(account_conflicts)
        if any(name not in passengers for name in change):
            for name in passengers:
                if name in desired and name not in change:
                    change[name] = desired[name]
            updates.append(FieldUpdate(account, dict(sorted(change.items())),
                                       {k: last.get(k) for k in sorted(change)}))
        elif marker in unrecorded:
            adopt[marker] = current[marker]  # nothing else to write: the CRM's marker is the one we wrote last
        if adopt:
            adopted.append(FieldUpdate(account, dict(sorted(adopt.items()))))
    return updates, adopted, conflicts


def _unrecorded_write(last, current, desired, marker, as_of: datetime) -> frozenset[str]:
    """The owned fields a confirmed-but-unrecorded write of ours left in the CRM (empty when there was none).

    Every write of ours carries the marker (`last_scored_at`, a passenger of every change), and nobody else
    has a reason to set it: a CRM marker later than the one in the ledger, and not after this cycle, proves a
    write of ours landed after the ledger's last record (a crash between the CRM's answer and the ledger
    commit). The account's differing values came with it, so they are ours, not a human's: no conflict.
    A human who edits the marker itself as well as another owned field defeats this; that is the trade-off.
    """
    if not marker or marker not in desired:
        return frozenset()
    ours, theirs = _instant(last.get(marker)), _instant(current.get(marker))
    if ours is None or theirs is None or not ours < theirs <= as_of:
        return frozenset()
    return frozenset(name for name in desired if name in current and not same_value(last.get(name), current[name]))


def _instant(value: FieldValue) -> datetime | None:
    text = _datetime_text(str(value)) if value not in (None, "") else None
    return datetime.fromisoformat(text) if text else None


@dataclass(frozen=True)
class _AccountFields:
    """One account's owned fields three ways: what we want now, what we last wrote, what the CRM holds."""

    account_id: str
    desired: Mapping[str, FieldValue]
    last: Mapping[str, FieldValue]
    current: Mapping[str, FieldValue]
    unrecorded: frozenset[str] = frozenset()  # ours in the CRM but not in the ledger (a crash between the two)


def _diff_account(fields: _AccountFields, we_win_conflicts: bool):
    account, last, current, unrecorded = fields.account_id, fields.last, fields.current, fields.unrecorded
    change: dict[str, FieldValue] = {}
    adopt: dict[str, FieldValue] = {}
    conflicts: list[Conflict] = []
    for name, want in fields.desired.items():
        ours = last.get(name, _MISSING)
        theirs = current.get(name, _MISSING)
        human_edited = ours is not _MISSING and theirs is not _MISSING and not same_value(ours, theirs)
        if human_edited:
            if same_value(theirs, want):
                adopt[name] = want  # the human set what we wanted anyway: nothing to write
                continue
            action = "overwrote" if we_win_conflicts else "kept_theirs"
            conflicts.append(Conflict(account, name, ours, theirs, action))
            if we_win_conflicts:
                change[name] = want
            continue
        if ours is not _MISSING and same_value(ours, want):
            if name in unrecorded:
                adopt[name] = want  # ours, already in the CRM; only the ledger needs to learn it
            continue
        if ours is _MISSING and theirs is not _MISSING and same_value(theirs, want):
            adopt[name] = want  # already in the CRM (e.g. written just before a crash): record, don't rewrite
            continue
        change[name] = want
    return change, adopt, conflicts


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()


def same_value(a: FieldValue, b: FieldValue) -> bool:
    """CRMs hand values back in their own types (HubSpot: strings; Salesforce: 72.0 for 72): compare normalised."""
    return normalise(a) == normalise(b)


def normalise(value: FieldValue) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _number_text(float(value))
    text = str(value).strip()
    try:
        return _number_text(float(text))
    except ValueError:
        pass
    return _datetime_text(text) or text


def _datetime_text(text: str) -> str | None:
    """`2026-11-23T12:00:00.000Z` and `2026-11-23T12:00:00+00:00` are the same instant: compare as UTC seconds."""
    if len(text) < 19 or text[4] != "-" or text[10] not in "T ":
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).isoformat(timespec="seconds")


def _number_text(number: float) -> str:
    return str(int(number)) if number.is_integer() else f"{number:.4f}".rstrip("0").rstrip(".")


def _components_text(result: HealthResult) -> str:
    parts = [f"{c.name} {round(c.score)}" for c in result.components if c.score is not None]
    return " · ".join(parts)


def _names_within(names: Sequence[str], limit: int) -> str:
    """As many whole names as fit a short text field (setup makes them 255 long; Salesforce refuses longer)."""
    text = ""
    for name in names:
        joined = f"{text}, {name}" if text else name
        if len(joined) > limit:
            break
        text = joined
    return text


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ----------------------------------------------------------------------------------------- tasks


def _plan_tasks(inputs: PlanInputs):
    tasks, suppressed, unresolved = [], [], []
    seen: set[str] = set()
    for intent in sorted(inputs.intents, key=lambda i: i.dedupe_key):
        if intent.kind == "field_flag" or intent.dedupe_key in seen:
            continue
        seen.add(intent.dedupe_key)
        reason = _suppression(intent, inputs)
        if reason:
            suppressed.append(Suppressed(intent.dedupe_key, reason))
            continue
        owner_id, problem = _resolve_owner(intent, inputs.users_by_email)
        if problem:
            unresolved.append(Unresolved(intent.dedupe_key, intent.account_id, intent.rule_id, problem))
            continue
        tasks.append(_task_from_intent(intent, owner_id))
    return tasks, suppressed, unresolved


def _suppression(intent: Intent, inputs: PlanInputs) -> str | None:
    entry = inputs.task_entries.get(intent.dedupe_key)
    if entry is not None and entry.status in ("open", "completed"):
        return f"task already {entry.status} for this window"
    if entry is not None and entry.status == "pending" and entry.crm_task_id:
        return "task already created"
    state = inputs.rule_states.get((intent.account_id, intent.rule_id))
    if state is None:
        return None
    if state.open_dedupe_key and state.open_dedupe_key != intent.dedupe_key:
        return f"an earlier task for this rule is still open ({state.open_dedupe_key})"
    if state.cooldown_until is not None and state.cooldown_until > inputs.as_of:
        return f"in cooldown until {state.cooldown_until.date().isoformat()}"
    return None


def _resolve_owner(intent: Intent, users_by_email: Mapping[str, str]) -> tuple[str | None, str | None]:
    owner = intent.owner
    if owner.kind == "account_owner":
        if owner.owner_id:
            return owner.owner_id, None
        return None, "the account has no owner in the CRM"
    email = (owner.email or "").lower()
    user_id = users_by_email.get(email)
    if user_id:
        return user_id, None
    return None, f"no active CRM user with email {email or '(none configured)'}"


def _task_from_intent(intent: Intent, owner_id: str | None) -> TaskUpsert:
    return TaskUpsert(
        dedupe_key=intent.dedupe_key,
        account_id=intent.account_id,
        rule_id=intent.rule_id,
        kind="escalation" if intent.kind == "escalation" else "task",
        subject=intent.subject,
        body=intent.body,
        owner_id=owner_id,
        owner_email=intent.owner.email,
        due_date=intent.due_at.date(),
        priority=intent.priority,
        cooldown_days=intent.cooldown_days,
    )
