"""Teach the task ledger what CSMs did in the CRM: a healthsync task completed there starts its cooldown,
so the same rule does not re-create it until the cooldown ends (SPEC §5)."""

from __future__ import annotations

from datetime import datetime, timedelta

from healthsync.connectors.records import CrmTask
from healthsync.sync.store import Store


def sync_task_states(store: Store, crm: str, *, now: datetime) -> int:
    """Apply completions seen in the CRM's `tasks` stream to the ledger; returns how many changed."""
    changed = 0
    entries = {}
    crm_tasks = [CrmTask.from_json(r.data) for r in store.records.iter_stream(crm, "tasks")]
    keys = sorted({t.dedupe_key for t in crm_tasks if t.dedupe_key})
    if keys:
        entries = store.ledger.task_entries(crm, keys)
    for task in crm_tasks:
        entry = entries.get(task.dedupe_key or "")
        if entry is None or str(task.status) != "completed" or entry.status == "completed":
            continue
        row = store.ledger.tasks.get(task.dedupe_key)
        cooldown_days = int((row.payload or {}).get("cooldown_days", 0)) if row else 0
        closed = task.completed_at or now
        store.ledger.record_task_state(crm, task.dedupe_key, status="completed", closed_at=closed,
                                cooldown_until=closed + timedelta(days=cooldown_days))
        changed += 1
    return changed
