"""The synthetic portfolio's neutral data model: one truth that every emulator renders in its own API's shape.

The generator (`portfolio.py`) fills these; each emulator loads them into its own native, in-memory state
(Salesforce sObjects, HubSpot objects, Zendesk resources, Mixpanel events). Nothing here knows an API.
Each account carries both a Salesforce-style and a HubSpot-style id, so the same book can be served as
either CRM; which one Zendesk `external_id` and Mixpanel group keys point at is decided when serving.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

OwnerRole = Literal["csm", "cs_manager", "cs_leadership", "executive", "product"]
ContactRole = Literal["champion", "exec_sponsor", "admin", "user"]
OppKind = Literal["renewal", "expansion", "new_business"]
ActivityKind = Literal["meeting", "call", "email", "qbr"]
ActivityOutcome = Literal["held", "no_show", "cancelled"]
Direction = Literal["inbound", "outbound"]
TicketPriority = Literal["low", "normal", "high", "urgent"]
TicketStatus = Literal["new", "open", "pending", "hold", "solved", "closed", "deleted"]
Satisfaction = Literal["good", "bad", "offered", "unoffered"]
# How an account's Zendesk organization can be matched to the CRM account.
ZendeskIdentity = Literal["external_id", "domain", "none"]
# How an account's Mixpanel events can be matched: group key holding the CRM id, or the domain,
# or only the users' email domains, or nothing at all (counted as unmatched).
MixpanelIdentity = Literal["group_crm_id", "group_domain", "email_domain", "none"]


@dataclass
class Owner:
    key: str  # neutral key, e.g. "U001"
    sf_id: str
    hs_id: str  # HubSpot owner id (numeric string)
    first_name: str
    last_name: str
    email: str
    role: OwnerRole
    active: bool = True


@dataclass
class Account:
    key: str  # neutral key, e.g. "A000042"
    sf_id: str  # 18-char Salesforce Account id
    hs_id: str  # HubSpot company id (numeric string)
    name: str
    domain: str
    owner_key: str
    segment: str  # enterprise | mid_market | smb | self_serve (truth, for tests)
    acv: float
    arr: float
    plan_tier: str  # starter | growth | business | enterprise
    seats_purchased: int
    capacity_limit: int  # plan usage capacity (e.g. monthly core actions)
    contract_start: date
    renewal_date: date
    payment_status: str  # current | overdue | failed
    nps: int | None
    industry: str
    zendesk_identity: ZendeskIdentity
    mixpanel_identity: MixpanelIdentity
    created_at: datetime
    modified_at: datetime
    deleted: bool = False
    churned_on: date | None = None  # a former customer: its last renewal was lost and its term ended that day


@dataclass
class Contact:
    key: str
    sf_id: str
    hs_id: str
    account_key: str
    first_name: str
    last_name: str
    email: str
    title: str
    role: ContactRole
    is_champion: bool
    left_company_at: datetime | None
    role_changed_at: datetime | None
    created_at: datetime
    modified_at: datetime
    deleted: bool = False


@dataclass
class Opportunity:
    key: str
    sf_id: str
    hs_id: str
    account_key: str
    name: str
    kind: OppKind
    amount: float
    stage: str  # Salesforce-style stage names; HubSpot maps them onto its pipeline stages
    is_closed: bool
    is_won: bool
    close_date: date
    created_at: datetime
    modified_at: datetime
    deleted: bool = False
    loss_reason: str | None = None  # closed-lost only: the CRM's loss-reason picklist value


@dataclass
class Activity:
    key: str
    sf_id: str
    hs_id: str
    account_key: str
    contact_key: str | None
    owner_key: str
    kind: ActivityKind
    subject: str
    occurred_at: datetime
    outcome: ActivityOutcome | None  # meetings/QBRs only
    direction: Direction
    created_at: datetime
    modified_at: datetime
    deleted: bool = False


@dataclass
class ZendeskOrg:
    id: int
    account_key: str | None  # None for orgs that match no account (planted unmatched)
    name: str
    external_id: str | None  # filled at serve time from the CRM id when zendesk_identity == "external_id"
    domain_names: list[str]
    created_at: datetime
    updated_at: datetime


@dataclass
class ZendeskUser:
    id: int
    org_id: int | None
    name: str
    email: str
    role: Literal["end-user", "agent", "admin"]
    created_at: datetime
    updated_at: datetime


@dataclass
class Ticket:
    id: int
    org_id: int | None
    requester_id: int
    subject: str
    description: str
    priority: TicketPriority
    status: TicketStatus
    tags: list[str]
    satisfaction: Satisfaction
    created_at: datetime
    updated_at: datetime
    solved_at: datetime | None
    reopens: int
    replies: int
    first_resolution_minutes: int | None
    full_resolution_minutes: int | None


@dataclass
class SatisfactionRating:
    id: int
    ticket_id: int
    org_id: int | None
    requester_id: int
    score: Literal["good", "bad"]
    comment: str
    created_at: datetime
    updated_at: datetime


@dataclass
class MixpanelProfile:
    distinct_id: str
    email: str
    account_key: str | None
    name: str
    created_at: datetime


@dataclass
class Portfolio:
    """Everything the four emulators serve, generated deterministically from (seed, size, as_of)."""

    seed: int
    size: int
    as_of: datetime  # the generator's "now": every timestamp is at or before it
    owners: list[Owner]
    accounts: list[Account]
    contacts: list[Contact]
    opportunities: list[Opportunity]
    activities: list[Activity]
    zendesk_orgs: list[ZendeskOrg]
    zendesk_users: list[ZendeskUser]
    tickets: list[Ticket]
    satisfaction_ratings: list[SatisfactionRating]
    mixpanel_profiles: list[MixpanelProfile]
    # Planted scenarios: rule id -> account keys that must fire it; plus control accounts that must fire nothing.
    scenarios: dict[str, list[str]] = field(default_factory=dict)
    controls: dict[str, list[str]] = field(default_factory=dict)
    # Mixpanel raw events are produced lazily per day (90 days x 10k accounts would not fit comfortably).
    # Set by the generator; the Mixpanel emulator calls it for each day of an export range.
    event_source: object = None
    # The churn history (`sandbox.history.ChurnHistory`) when the book was generated with one: its past
    # renewals with their true outcome, reason and lead time, for tests and notes; None without history.
    history: object = None

    def events_for_day(self, day: date) -> Iterator[dict]:
        """Raw Mixpanel events of one project-timezone (UTC) day, in Mixpanel's export shape
        `{"event": name, "properties": {"time": unix_s, "distinct_id": ..., "$insert_id": ..., ...}}`.

        Each event also carries `properties["_account_key"]` (the neutral account key, or None) and
        `properties["$email"]`; the Mixpanel emulator renders the group key from it per the account's
        `mixpanel_identity` (CRM id of the served CRM, or the domain, or nothing) and strips `_account_key`."""
        if self.event_source is None:
            return iter(())
        return self.event_source(day)  # type: ignore[operator]
