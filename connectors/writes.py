"""Values a CRM writer hands back to writeback: per-record write results, tasks found by dedupe key,
and custom-field specs/outcomes for `setup`.

They live here, not in writeback, because connectors may not import writeback (arrows go one way:
writeback → connectors). writeback re-exports them from `writeback.base`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

WriteStatus = Literal["ok", "failed"]


@dataclass(frozen=True, slots=True)
class WriteResult:
    """The CRM's answer for one record of a batch, in request order."""

    key: str  # account id for field updates, dedupe key for tasks
    status: WriteStatus
    crm_id: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class CrmTaskState:
    """A task as the CRM holds it now, found by our dedupe key."""

    dedupe_key: str
    crm_task_id: str
    completed: bool
    completed_at: datetime | None


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One custom field / property we need in the CRM."""

    object: Literal["account", "task"]
    name: str  # CRM API name (Salesforce `Health_Score__c`, HubSpot `healthsync_score`)
    label: str
    type: Literal["number", "text", "long_text", "datetime"]
    description: str = ""


@dataclass(frozen=True, slots=True)
class SetupOutcome:
    spec: FieldSpec
    status: Literal["existed", "created", "failed"]
    detail: str = ""  # for failures: the permission or edition that is missing
