"""The values the store takes and returns: frozen dataclasses, one per table, so callers never see SQL rows."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class RecordRow:
    """One canonical record as a connector hands it to `commit_page`."""

    record_id: str
    data: dict[str, Any]
    updated_at: datetime | None = None
    raw: dict[str, Any] | None = None
    account_id: str | None = None


@dataclass(frozen=True, slots=True)
class StoredRecord:
    source: str
    stream: str
    record_id: str
    account_id: str | None
    updated_at: datetime | None
    deleted: bool
    deleted_at: datetime | None
    data: dict[str, Any]
    raw: dict[str, Any] | None
    first_seen_run: str | None
    first_seen_at: datetime
    last_seen_at: datetime


@dataclass(frozen=True, slots=True)
class StreamStateRow:
    source: str
    stream: str
    state: dict[str, Any]
    version: int  # the caller's state format version
    revision: int  # how many times this state was written
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class UsageDay:
    """One account's product usage on one day, aggregated from raw events."""

    account_key: str
    day: date
    active_users: int
    events: int
    core_actions: int
    login_users: int
    value_events: int
    features_used: tuple[str, ...] = ()
    user_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class IdentityLink:
    """How one external key (Zendesk org, Mixpanel group...) maps to a CRM account, and how we know."""

    source: str
    external_key: str
    status: str  # matched | unmatched | ambiguous
    account_id: str | None = None
    method: str | None = None  # external_id | domain | group_key | email_domain
    candidates: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ScoreRow:
    account_id: str
    as_of: datetime
    score: int
    band: str
    components: dict[str, Any]
    result: dict[str, Any]
    model: str
    run_id: str | None = None


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """The value the CRM last confirmed for one field we own."""

    crm: str
    object: str
    record_id: str
    field: str
    value: Any
    written_at: datetime
    run_id: str | None


@dataclass(frozen=True, slots=True)
class WriteStatusRow:
    """How the last write attempt to one CRM record went; failures are retried next cycle."""

    crm: str
    object: str
    record_id: str
    status: str  # ok | failed
    attempts: int  # failures since the last success
    last_error: str | None
    last_attempt_at: datetime
    last_success_at: datetime | None
    run_id: str | None


@dataclass(frozen=True, slots=True)
class TaskRow:
    dedupe_key: str
    crm: str
    account_id: str
    rule_id: str
    status: str  # pending | open | completed | failed
    payload: dict[str, Any]
    crm_task_id: str | None
    attempts: int
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    cooldown_until: datetime | None
    run_id: str | None


@dataclass(frozen=True, slots=True)
class RunRow:
    id: str
    kind: str
    status: str  # running | ok | partial | failed
    started_at: datetime
    finished_at: datetime | None
    steps: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True, slots=True)
class SourceStatus:
    source: str
    last_success_at: datetime | None
    last_error_at: datetime | None
    last_error: str | None
    paused: bool
    paused_reason: str | None
    credentials_fingerprint: str | None
    updated_at: datetime


def credentials_fingerprint(*secret_parts: str) -> str:
    """A sha256 hex digest of the credentials, so a change can be noticed without storing them."""
    digest = hashlib.sha256()
    for part in secret_parts:
        encoded = part.encode("utf-8")
        digest.update(len(encoded).to_bytes(8, "big"))  # length-prefix so ("ab","c") != ("a","bc")
        digest.update(encoded)
    return digest.hexdigest()
