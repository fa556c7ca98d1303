"""Read what a cycle needs from the store: CRM records, identity-resolved tickets and usage, CRM users and
the current values of our fields in the CRM — and turn them into scoring facts and planner inputs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime

from healthsync.connectors.records import (
    AccountRecord,
    ActivityRecord,
    ContactRecord,
    DailyUsageRecord,
    OpportunityRecord,
    OrganizationRecord,
    TicketMetricsRecord,
    TicketRecord,
    UserRecord,
)
from healthsync.scoring.base import AccountFacts
from healthsync.sync.facts import CycleRecords, build_facts
from healthsync.sync.identity import (
    AccountIndex,
    AccountKey,
    Resolution,
    resolve_usage_key,
    resolve_zendesk_org,
    summarise,
)
from healthsync.sync.store import Store
from healthsync.sync.store.rows import IdentityLink

# The store names methods by what was compared; both Mixpanel group-key flavours are "group_key" there.
_STORED_METHOD = {"group_crm_id": "group_key", "group_domain": "group_key"}
ZENDESK = "zendesk"
MIXPANEL = "mixpanel"


@dataclass
class Gathered:
    facts: list[AccountFacts]
    identity_counts: dict[str, dict[str, int]]
    crm_current: dict[str, dict] = field(default_factory=dict)
    users_by_email: dict[str, str] = field(default_factory=dict)
    account_names: dict[str, str] = field(default_factory=dict)


def load(store: Store, source: str, stream: str, record_type) -> list:
    return [record_type.from_json(r.data) for r in store.records.iter_stream(source, stream)]


def gather_facts(store: Store, ctx, healthy: set[str], as_of: datetime) -> Gathered:
    crm = ctx.crm
    accounts: list[AccountRecord] = load(store, crm, "accounts", AccountRecord)
    index = AccountIndex(AccountKey(a.id, a.domain) for a in accounts)
    base_config = ctx.facts_config
    resolutions: list[Resolution] = []
    org_accounts = _resolve_orgs(store, index, resolutions, getattr(ctx, "zendesk_order", None))
    tickets = [(org_accounts[t.organization_id], t) for t in load(store, ZENDESK, "tickets", TicketRecord)
               if t.organization_id in org_accounts]
    metrics = {m.ticket_id: m for m in load(store, ZENDESK, "ticket_metrics", TicketMetricsRecord)}
    usage_records: list[DailyUsageRecord] = load(store, MIXPANEL, "usage_daily", DailyUsageRecord)
    usage = _resolve_usage(index, usage_records, resolutions, getattr(ctx, "mixpanel_order", None))
    _save_links(store, resolutions, ctx.now())
    history_start = min((u.day for u in usage_records), default=None)
    config = replace(base_config,
                     support_configured=base_config.support_configured and ZENDESK in healthy,
                     usage_configured=base_config.usage_configured and MIXPANEL in healthy,
                     usage_history_start=history_start)
    records = CycleRecords(
        accounts=accounts,
        contacts=load(store, crm, "contacts", ContactRecord),
        opportunities=load(store, crm, "opportunities", OpportunityRecord),
        activities=load(store, crm, "activities", ActivityRecord),
        tickets=tickets,
        ticket_metrics=metrics,
        usage=usage,
    )
    facts = build_facts(records, config)
    users = load(store, crm, "users", UserRecord)
    return Gathered(
        facts=facts,
        identity_counts={k: dict(v) for k, v in summarise(resolutions).items()},
        crm_current={a.id: dict(a.extra) for a in accounts if not a.deleted},
        users_by_email={u.email.lower(): u.id for u in users if u.email and u.active},
        account_names={a.id: a.name or a.id for a in accounts},
    )


def _resolve_orgs(store: Store, index: AccountIndex, out: list[Resolution], order) -> dict[str, str]:
    found: dict[str, str] = {}
    for org in load(store, ZENDESK, "organizations", OrganizationRecord):
        if getattr(org, "deleted", False):
            continue
        kwargs = {"order": order} if order else {}
        resolution = resolve_zendesk_org(index, org.id, org.external_id, list(org.domains), **kwargs)
        out.append(resolution)
        if resolution.account_id:
            found[org.id] = resolution.account_id
    return found


def _resolve_usage(index: AccountIndex, records: Iterable[DailyUsageRecord], out: list[Resolution], order):
    cache: dict[tuple[str, str], str | None] = {}
    resolved = []
    for record in records:
        key = (str(record.key_kind), record.account_key)
        if key not in cache:
            kwargs = {"order": order} if order else {}
            resolution = resolve_usage_key(index, key[0], key[1], **kwargs)
            out.append(resolution)
            cache[key] = resolution.account_id
        if cache[key]:
            resolved.append((cache[key], record))
    return resolved


def _save_links(store: Store, resolutions: list[Resolution], now: datetime) -> None:
    links = [IdentityLink(source=r.source, external_key=r.external_key, status=r.status, account_id=r.account_id,
                          method=_STORED_METHOD.get(r.method or "", r.method), candidates=r.candidates)
             for r in resolutions]
    if links:
        store.aggregates.upsert_identity_links(links, now=now)

