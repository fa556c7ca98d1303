"""Build scoring's `AccountFacts` from what the store holds: CRM records, Zendesk tickets and Mixpanel usage,
joined through the identity links. This is where the store's canonical records meet the pure scoring model.

Nothing here reads the clock: facts are raw and dated, and scoring decides what counts as of `as_of`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time

from healthsync.connectors.records import (
    AccountRecord,
    ActivityRecord,
    ContactRecord,
    DailyUsageRecord,
    OpportunityRecord,
    TicketMetricsRecord,
    TicketRecord,
)
from healthsync.scoring.base import (
    Account,
    AccountFacts,
    Activity,
    Contact,
    NpsResponse,
    Opportunity,
    Ticket,
    UsageDay,
)

PAYMENT_STATUS = {"current": "current", "paid": "current", "overdue": "late", "late": "late", "failed": "failed"}
SCORED_ACTIVITY_KINDS = frozenset({"meeting", "call", "email", "qbr"})
SCORED_OPPORTUNITY_KINDS = frozenset({"renewal", "expansion"})


@dataclass(frozen=True, slots=True)
class FactsConfig:
    """The parts of config that shape facts (not the model: those live in the health model)."""

    champion_roles: frozenset[str] = frozenset({"champion"})
    executive_sponsor_roles: frozenset[str] = frozenset({"executive sponsor", "exec_sponsor"})
    plan_features: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    support_configured: bool = True
    usage_configured: bool = True
    usage_history_start: date | None = None  # first day of the Mixpanel export history


@dataclass
class _Bucket:
    contacts: list[Contact] = field(default_factory=list)
    opportunities: list[Opportunity] = field(default_factory=list)
    activities: list[Activity] = field(default_factory=list)
    tickets: list[Ticket] = field(default_factory=list)
    usage: dict[date, UsageDay] = field(default_factory=dict)
    nps: list[NpsResponse] = field(default_factory=list)


@dataclass(frozen=True)
class CycleRecords:
    """The stored records a cycle's facts are built from, tickets and usage already matched to accounts."""

    accounts: Iterable[AccountRecord]
    contacts: Iterable[ContactRecord]
    opportunities: Iterable[OpportunityRecord]
    activities: Iterable[ActivityRecord]
    tickets: Iterable[tuple[str, TicketRecord]]  # (account id, ticket) after identity resolution
    ticket_metrics: Mapping[str, TicketMetricsRecord]
    usage: Iterable[tuple[str, DailyUsageRecord]]  # (account id, usage day) after identity resolution


def build_facts(records: CycleRecords, config: FactsConfig) -> list[AccountFacts]:
    """One AccountFacts per live account, in account-id order."""
    live = sorted((a for a in records.accounts if not a.deleted), key=lambda a: a.id)
    buckets: dict[str, _Bucket] = {a.id: _Bucket() for a in live}
    _add_contacts(buckets, records.contacts, config)
    _add_opportunities(buckets, records.opportunities)
    _add_activities(buckets, records.activities)
    _add_tickets(buckets, records.tickets, records.ticket_metrics)
    _add_usage(buckets, records.usage)
    return [_facts_for(record, buckets[record.id], config) for record in live]


def _facts_for(record: AccountRecord, bucket: _Bucket, config: FactsConfig) -> AccountFacts:
    # A configured, healthy source covers every account: no tickets or no events is itself a fact (zero),
    # while a source that is not configured, or failing this cycle, leaves its signals unknown (None).
    covered = {"crm"}
    if config.support_configured:
        covered.add("support")
    if config.usage_configured:
        covered.add("usage")
    account = Account(
        id=record.id,
        name=record.name or "",
        domain=record.domain,
        owner_id=record.owner_id,
        acv=record.acv if record.acv is not None else record.arr,
        arr=record.arr,
        plan_tier=record.plan_tier.lower() if record.plan_tier else None,
        seats_purchased=record.seats_purchased,
        plan_capacity=record.usage_capacity,
        contract_start=record.contract_start,
        renewal_date=record.renewal_date,
        renewal_signed=None,  # scoring decides from the dated renewal opportunities
        payment_status=PAYMENT_STATUS.get((record.payment_status or "").lower()),  # type: ignore[arg-type]
        nps=record.nps,
        plan_features=tuple(config.plan_features.get((record.plan_tier or "").lower(), ())),
    )
    return AccountFacts(
        account=account,
        contacts=tuple(bucket.contacts),
        opportunities=tuple(bucket.opportunities),
        activities=tuple(bucket.activities),
        tickets=tuple(bucket.tickets),
        usage=tuple(bucket.usage[d] for d in sorted(bucket.usage)),
        nps_responses=tuple(sorted(bucket.nps, key=lambda r: r.at)),
        covered=frozenset(covered),
        usage_since=_usage_since(record.contract_start, config.usage_history_start),
    )


def _usage_since(contract_start: date | None, history_start: date | None) -> date | None:
    """Usage is complete from the later of the contract start and the first day we have exported."""
    if contract_start is None or history_start is None:
        return contract_start or history_start
    return max(contract_start, history_start)


def _add_contacts(buckets, contacts, config: FactsConfig) -> None:
    for c in contacts:
        bucket = buckets.get(c.account_id or "")
        if bucket is None or c.deleted:
            continue
        role = (c.role or "").strip().lower()
        bucket.contacts.append(Contact(
            id=c.id,
            email=c.email,
            role=c.role,
            is_champion=c.is_champion or role in config.champion_roles,
            is_exec_sponsor=role in config.executive_sponsor_roles,
            active=not c.left_company,
            left_at=c.left_company_at,
            role_changed_at=c.role_changed_at,
            created_at=c.created_at,
        ))


def _add_opportunities(buckets, opportunities) -> None:
    for o in opportunities:
        bucket = buckets.get(o.account_id or "")
        kind = str(o.kind)
        if bucket is None or o.deleted or kind not in SCORED_OPPORTUNITY_KINDS:
            continue
        bucket.opportunities.append(Opportunity(
            id=o.id, kind=kind, amount=o.amount, stage=o.stage, is_won=o.is_won,  # type: ignore[arg-type]
            close_date=o.close_date, is_closed=o.is_closed,
        ))


def _add_activities(buckets, activities) -> None:
    for a in activities:
        bucket = buckets.get(a.account_id or "")
        kind = str(a.kind)
        if bucket is None or a.deleted or kind not in SCORED_ACTIVITY_KINDS or a.occurred_at is None:
            continue
        bucket.activities.append(Activity(
            id=a.id, kind=kind, occurred_at=a.occurred_at,  # type: ignore[arg-type]
            outcome=str(a.outcome) if a.outcome else None,  # type: ignore[arg-type]
            direction=str(a.direction) if a.direction else None,  # type: ignore[arg-type]
            contact_id=a.contact_id,
        ))


def _add_tickets(buckets, tickets, metrics: Mapping[str, TicketMetricsRecord]) -> None:
    for account_id, t in tickets:
        bucket = buckets.get(account_id)
        if bucket is None or t.deleted or str(t.status) == "deleted":
            continue
        metric = metrics.get(t.id)
        satisfaction = str(t.satisfaction) if t.satisfaction else None
        bucket.tickets.append(Ticket(
            id=t.id,
            created_at=t.created_at,
            updated_at=t.updated_at,
            solved_at=t.solved_at,
            priority=str(t.priority) if t.priority else None,  # type: ignore[arg-type]
            status=str(t.status),
            reopens=metric.reopens if metric and metric.reopens is not None else 0,
            satisfaction=satisfaction if satisfaction in ("good", "bad") else None,  # type: ignore[arg-type]
            subject=t.subject or "",
            description=t.description or "",
            tags=tuple(t.tags),
        ))


def _add_usage(buckets, usage) -> None:
    """Several keys (group key, email domains) may resolve to one account: their days are merged."""
    merged: dict[tuple[str, date], list[DailyUsageRecord]] = defaultdict(list)
    for account_id, day in usage:
        if account_id in buckets:
            merged[(account_id, day.day)].append(day)
    for (account_id, day), parts in merged.items():
        bucket = buckets[account_id]
        bucket.usage[day] = UsageDay(
            day=day,
            active_user_ids=frozenset().union(*(p.active_user_ids for p in parts)),
            login_user_ids=frozenset().union(*(p.login_user_ids for p in parts)),
            events=sum(p.events for p in parts),
            core_actions=sum(p.core_actions for p in parts),
            features_used=frozenset().union(*(p.features_used for p in parts)),
            value_events=sum(p.value_events for p in parts),
        )
        at = datetime.combine(day, time(12), tzinfo=UTC)
        for part in parts:
            bucket.nps.extend(NpsResponse(at=at, score=float(s)) for s in part.nps_scores)
