"""Contracts of writeback: the Plan (a printable value), and the Ledger and CrmWriter it needs.

Writeback is a plan, then an executor. `plan.py` is pure: desired state (health results + playbook
intents) against the ledger of what we last wrote and what the CRM holds now → a `Plan`. `apply.py`
executes a Plan through a `CrmWriter`, in batches, recording every confirmed write in the `Ledger`.
`sync.store` implements the Ledger; the CRM connectors implement the CrmWriter.

Crash safety rests on two rules: nothing is marked written until the CRM confirmed it, and every task
carries its dedupe key in a CRM field that the writer searches before it creates (so a crash between
the CRM write and the ledger write is healed on restart by `reconcile`, never duplicated).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Literal, Protocol

from healthsync.connectors.writes import CrmTaskState, FieldSpec, SetupOutcome, WriteResult

__all__ = ["CrmTaskState", "FieldSpec", "SetupOutcome", "WriteResult"]

FieldValue = str | int | float | bool | None
TaskKind = Literal["task", "escalation"]


# ----------------------------------------------------------------------------------------- plan values


@dataclass(frozen=True, slots=True)
class FieldUpdate:
    """The owned fields of one CRM account that differ from what we last wrote."""

    account_id: str
    fields: Mapping[str, FieldValue]
    previous: Mapping[str, FieldValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TaskUpsert:
    """A task (or an escalation, which is a task routed to a role) to create once per dedupe key."""

    dedupe_key: str
    account_id: str
    rule_id: str
    kind: TaskKind
    subject: str
    body: str
    owner_id: str | None  # CRM user id; None only when unresolved (then it is in Plan.unresolved)
    owner_email: str | None
    due_date: date
    priority: Literal["low", "normal", "high", "urgent"]
    cooldown_days: int


@dataclass(frozen=True, slots=True)
class Conflict:
    """A human changed a field we own: the CRM value differs from what we last wrote."""

    account_id: str
    field: str
    ours: FieldValue
    theirs: FieldValue
    action: Literal["kept_theirs", "overwrote"]


@dataclass(frozen=True, slots=True)
class Unresolved:
    """An intent we could not turn into a write (e.g. no CRM user has the escalation email)."""

    dedupe_key: str
    account_id: str
    rule_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Suppressed:
    dedupe_key: str
    reason: str


@dataclass(frozen=True, slots=True)
class Plan:
    crm: str
    as_of: datetime
    field_updates: tuple[FieldUpdate, ...] = ()
    tasks: tuple[TaskUpsert, ...] = ()
    conflicts: tuple[Conflict, ...] = ()
    unresolved: tuple[Unresolved, ...] = ()
    suppressed: tuple[Suppressed, ...] = ()  # intents skipped: a task already open, or in cooldown
    adopted: tuple[FieldUpdate, ...] = ()  # values the CRM already holds (e.g. written before a crash): ledger only

    @property
    def escalations(self) -> tuple[TaskUpsert, ...]:
        return tuple(t for t in self.tasks if t.kind == "escalation")

    @property
    def is_empty(self) -> bool:
        return not self.field_updates and not self.tasks

    def to_json(self) -> dict:
        payload = asdict(self)
        payload["as_of"] = self.as_of.isoformat()
        for task in payload["tasks"]:
            task["due_date"] = task["due_date"].isoformat()
        return payload


# ----------------------------------------------------------------------------------------- ledger


@dataclass(frozen=True, slots=True)
class TaskEntry:
    """What the ledger knows of one dedupe key."""

    dedupe_key: str
    status: Literal["pending", "open", "completed", "failed"]
    crm_task_id: str | None
    cooldown_until: datetime | None
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class RuleTaskState:
    """Per (account, rule): a task still open (whatever its window), and the cooldown after the last one closed."""

    open_dedupe_key: str | None = None
    cooldown_until: datetime | None = None


class Ledger(Protocol):
    """What we wrote, as confirmed by the CRM. Implemented by `sync.store`.

    Optional: `transaction()`, a context manager yielding a Ledger whose calls commit together; `apply` uses it,
    when present, to record each batch in one commit."""

    def last_written(self, crm: str, account_ids: Sequence[str]) -> Mapping[str, Mapping[str, FieldValue]]: ...

    def task_entries(self, crm: str, dedupe_keys: Sequence[str]) -> Mapping[str, TaskEntry]: ...

    def rule_states(self, crm: str, pairs: Sequence[tuple[str, str]]) -> Mapping[tuple[str, str], RuleTaskState]: ...

    def record_field_writes(self, crm: str, writes: Sequence[FieldUpdate], *, at: datetime, run_id: str) -> None: ...

    def record_field_failure(self, crm: str, account_id: str, error: str, *, at: datetime, run_id: str) -> None: ...

    def record_task(self, crm: str, task: TaskUpsert, *, crm_task_id: str | None, status: str,  # noqa: PLR0913 (a task ledger row's columns, keyword-only)
                    at: datetime, run_id: str, error: str | None = None) -> None: ...

    def record_task_state(self, crm: str, dedupe_key: str, *, status: str, closed_at: datetime | None,
                          cooldown_until: datetime | None) -> None: ...


# ----------------------------------------------------------------------------------------- CRM writer








class CrmWriter(Protocol):
    """The CRM side of writeback. One implementation per CRM lives in `connectors/`."""

    crm: str
    max_update_batch: int  # Salesforce collections 200, HubSpot batch 100
    max_create_batch: int

    def update_accounts(self, updates: Sequence[FieldUpdate]) -> list[WriteResult]:
        """One batch (≤ max_update_batch): per-record results in request order."""
        ...

    def find_tasks(self, dedupe_keys: Sequence[str]) -> Mapping[str, CrmTaskState]:
        """Tasks already in the CRM carrying these dedupe keys (the crash-safety lookup)."""
        ...

    def create_tasks(self, tasks: Sequence[TaskUpsert]) -> list[WriteResult]:
        """One batch (≤ max_create_batch), each task associated with its account."""
        ...

    def resolve_users(self, emails: Sequence[str]) -> Mapping[str, str]:
        """Active CRM users by email (lower-cased) → user id."""
        ...


# ----------------------------------------------------------------------------------------- setup (custom fields)








class SchemaWriter(Protocol):
    """The CRM's metadata side, used only by `healthsync setup`."""

    crm: str

    def existing_fields(self, object: str) -> set[str]: ...

    def create_field(self, spec: FieldSpec) -> SetupOutcome: ...
