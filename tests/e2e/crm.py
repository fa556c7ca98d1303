"""Read what a cycle left in the emulated CRM, in CRM-neutral terms, straight from the emulator's own tables —
so end-to-end tests judge the CRM, not healthsync's reports about it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

# Changes with every cycle's as_of, so two runs that did the same work still differ here.
AS_OF_FIELDS = ("last_scored_at",)


@dataclass(frozen=True)
class CrmTask:
    key: str
    id: str
    account: str | tuple[str, ...]
    owner: str | None
    completed: bool
    subject: str
    due: str | None


def account_id(portfolio, neutral_key: str, crm: str) -> str:
    account = next(a for a in portfolio.accounts if a.key == neutral_key)
    return account.sf_id if crm == "salesforce" else account.hs_id


def user_id_by_email(portfolio, email: str, crm: str) -> str:
    owner = next(o for o in portfolio.owners if o.email.lower() == email.lower())
    return owner.sf_id if crm == "salesforce" else owner.hs_id


def account_owner_id(portfolio, crm_account_id: str, crm: str) -> str:
    account = next(a for a in portfolio.accounts if crm_account_id in (a.sf_id, a.hs_id))
    owner = next(o for o in portfolio.owners if o.key == account.owner_key)
    return owner.sf_id if crm == "salesforce" else owner.hs_id


def account_fields(server, crm: str, crm_account_id: str, names) -> dict[str, Any]:
    emulator = server.emulator(crm)
    if crm == "salesforce":
        record = emulator.record("Account", crm_account_id)
    else:
        found = emulator.get("companies", crm_account_id)
        assert found is not None, f"no company {crm_account_id} in the HubSpot emulator"
        record = found["properties"]
    return {name: record.get(name) for name in names}


def our_tasks(server, crm: str, key_field: str) -> list[CrmTask]:
    """Every task in the CRM that carries one of our dedupe keys."""
    emulator = server.emulator(crm)
    found = []
    if crm == "salesforce":
        for row in emulator.records("Task"):
            if row.get(key_field):
                found.append(CrmTask(row[key_field], row["Id"], row["WhatId"], row.get("OwnerId"),
                                     row.get("Status") == "Completed", row.get("Subject") or "",
                                     str(row.get("ActivityDate") or "") or None))
        return found
    for obj in emulator.objects("tasks"):
        props = obj["properties"]
        if props.get(key_field):
            companies = emulator.associations("tasks", obj["id"], "companies")
            found.append(CrmTask(props[key_field], obj["id"], companies[0] if len(companies) == 1 else tuple(companies),
                                 props.get("hubspot_owner_id"), str(props.get("hs_task_status")).upper() == "COMPLETED",
                                 props.get("hs_task_subject") or "", (props.get("hs_timestamp") or "")[:10] or None))
    return found


def duplicated_keys(tasks: list[CrmTask]) -> dict[str, int]:
    counts = Counter(t.key for t in tasks)
    return {key: n for key, n in counts.items() if n > 1}


def crm_state(env) -> dict[str, Any]:
    """Our owned fields on every account (minus the as_of stamp) and our tasks by dedupe key: the state two
    runs that should end alike are compared on."""
    settings = env.settings
    names = {k: v for k, v in settings.owned_write_fields.items() if k != "task_key" and k not in AS_OF_FIELDS}
    crm = settings.crm.kind
    portfolio = env.server.portfolio
    ids = [a.sf_id if crm == "salesforce" else a.hs_id for a in portfolio.accounts]
    fields = {aid: account_fields(env.server, crm, aid, sorted(names.values())) for aid in ids}
    tasks = our_tasks(env.server, crm, settings.crm.field_map.write.task_key)
    return {
        "fields": {aid: {k: _normal(v) for k, v in values.items()} for aid, values in fields.items()},
        "tasks": sorted((t.key, str(t.account), t.owner, t.subject, t.due, t.completed) for t in tasks),
        "duplicates": duplicated_keys(tasks),
    }


def _normal(value: Any) -> Any:
    """HubSpot holds every property as text; Salesforce numbers as numbers: compare them as text."""
    if value is None or value == "":
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value)
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else text
