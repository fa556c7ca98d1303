"""Renders the neutral Portfolio as a HubSpot portal: companies, contacts, deals, engagements and owners."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta

from healthsync.sandbox.hubspot.schema import format_datetime
from healthsync.sandbox.hubspot.store import ObjectStore
from healthsync.sandbox.hubspot.types import default_type_id
from healthsync.sandbox.model import Account, Activity, Contact, Opportunity, Owner, Portfolio

# Salesforce-style stage names (the neutral model's) onto HubSpot's default sales pipeline.
_STAGE_KEYWORDS = (
    ("prospect", "appointmentscheduled"), ("qualif", "qualifiedtobuy"), ("needs", "qualifiedtobuy"),
    ("value", "presentationscheduled"), ("decision", "decisionmakerboughtin"),
    ("perception", "decisionmakerboughtin"), ("proposal", "contractsent"), ("negotiat", "contractsent"),
)
_OUTCOMES = {"held": "COMPLETED", "no_show": "NO_SHOW", "cancelled": "CANCELED"}
_DEAL_TYPES = {"renewal": "renewal", "expansion": "expansion", "new_business": "newbusiness"}
_PRIMARY_CONTACT_COMPANY = 1
_PRIMARY_DEAL_COMPANY = 5


def number(value: float | int | None) -> str | None:
    if value is None:
        return None
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def deal_stage(opp: Opportunity) -> str:
    if opp.is_closed:
        return "closedwon" if opp.is_won else "closedlost"
    lowered = opp.stage.lower()
    for keyword, stage in _STAGE_KEYWORDS:
        if keyword in lowered:
            return stage
    return "qualifiedtobuy"


def owner_json(owner: Owner, created: datetime) -> dict:
    stamp = format_datetime(created)
    return {"id": owner.hs_id, "email": owner.email, "firstName": owner.first_name, "lastName": owner.last_name,
            "userId": int(owner.hs_id) + 7_000_000 if owner.hs_id.isdigit() else None,
            "userIdIncludingInactive": int(owner.hs_id) + 7_000_000 if owner.hs_id.isdigit() else None,
            "type": "PERSON", "createdAt": stamp, "updatedAt": stamp, "archived": not owner.active, "teams": []}


def load_portfolio(store: ObjectStore, portfolio: Portfolio) -> list[dict]:
    """Fill `store` from `portfolio`; return the portal's owners (PublicOwner dicts)."""
    with _collector_paused():
        return _load(store, portfolio)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Building ~10^5 small dicts triggers full GC passes over the whole (large) portfolio again and again;
    pausing the cyclic collector halves a 10k-account load. Nothing built here forms reference cycles."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _load(store: ObjectStore, portfolio: Portfolio) -> list[dict]:
    owners = {o.key: o for o in portfolio.owners}
    accounts = {a.key: a for a in portfolio.accounts}
    contacts = {c.key: c for c in portfolio.contacts}
    for account in portfolio.accounts:
        _put_company(store, account, owners)
    for contact in portfolio.contacts:
        _put_contact(store, contact, accounts[contact.account_key], owners)
    for opp in portfolio.opportunities:
        _put_deal(store, opp, accounts[opp.account_key], owners)
    for activity in portfolio.activities:
        _put_activity(store, activity, accounts[activity.account_key], contacts, owners)
    earliest = min((a.created_at for a in portfolio.accounts), default=portfolio.as_of)
    return [owner_json(o, earliest) for o in portfolio.owners]


def _owner_id(owners: dict[str, Owner], key: str) -> str | None:
    owner = owners.get(key)
    return owner.hs_id if owner is not None else None


def _archived_at(deleted: bool, modified: datetime) -> datetime | None:
    return modified if deleted else None


def _put_company(store: ObjectStore, a: Account, owners: dict[str, Owner]) -> None:
    props = {
        "name": a.name, "domain": a.domain, "hubspot_owner_id": _owner_id(owners, a.owner_key),
        "industry": a.industry, "lifecyclestage": "customer", "arr": number(a.arr), "acv": number(a.acv),
        "renewal_date": a.renewal_date.isoformat(), "plan_tier": a.plan_tier,
        "seats_purchased": number(a.seats_purchased), "usage_capacity": number(a.capacity_limit),
        "contract_start_date": a.contract_start.isoformat(), "payment_status": a.payment_status,
        "nps_score": number(a.nps),
    }
    store.put("companies", a.hs_id, props, a.created_at, a.modified_at, _archived_at(a.deleted, a.modified_at))


def _put_contact(store: ObjectStore, c: Contact, account: Account, owners: dict[str, Owner]) -> None:
    props = {
        "email": c.email, "firstname": c.first_name, "lastname": c.last_name, "jobtitle": c.title,
        "hubspot_owner_id": _owner_id(owners, account.owner_key), "lifecyclestage": "customer",
        "associatedcompanyid": account.hs_id, "contact_role": c.role,
        "is_champion": "true" if c.is_champion else "false",
        "left_company": "true" if c.left_company_at is not None else "false",
        "left_company_date": c.left_company_at.date().isoformat() if c.left_company_at else None,
        "role_changed_date": c.role_changed_at.date().isoformat() if c.role_changed_at else None,
    }
    store.put("contacts", c.hs_id, props, c.created_at, c.modified_at, _archived_at(c.deleted, c.modified_at))
    store.associate("contacts", c.hs_id, "companies", account.hs_id, "HUBSPOT_DEFINED",
                    default_type_id("contacts", "companies") or 279)
    store.associate("contacts", c.hs_id, "companies", account.hs_id, "HUBSPOT_DEFINED", _PRIMARY_CONTACT_COMPANY)


def _put_deal(store: ObjectStore, o: Opportunity, account: Account, owners: dict[str, Owner]) -> None:
    props = {
        "dealname": o.name, "amount": number(o.amount), "dealstage": deal_stage(o), "pipeline": "default",
        "closedate": format_datetime(midnight(o.close_date)), "deal_type": _DEAL_TYPES.get(o.kind, "newbusiness"),
        "hubspot_owner_id": _owner_id(owners, account.owner_key),
        "closed_lost_reason": o.loss_reason,
    }
    store.put("deals", o.hs_id, props, o.created_at, o.modified_at, _archived_at(o.deleted, o.modified_at))
    store.associate("deals", o.hs_id, "companies", account.hs_id, "HUBSPOT_DEFINED",
                    default_type_id("deals", "companies") or 341)
    store.associate("deals", o.hs_id, "companies", account.hs_id, "HUBSPOT_DEFINED", _PRIMARY_DEAL_COMPANY)


def _activity_properties(act: Activity) -> tuple[str, dict[str, str | None]]:
    when = format_datetime(act.occurred_at)
    if act.kind in ("meeting", "qbr"):
        outcome = _OUTCOMES.get(act.outcome or "", "SCHEDULED")
        return "meetings", {
            "hs_meeting_title": act.subject, "hs_meeting_start_time": when,
            "hs_meeting_end_time": format_datetime(act.occurred_at + timedelta(minutes=45)),
            "hs_meeting_outcome": outcome, "hs_activity_type": "QBR" if act.kind == "qbr" else "Check-in",
        }
    if act.kind == "call":
        return "calls", {"hs_call_title": act.subject, "hs_call_status": "COMPLETED",
                         "hs_call_direction": "INBOUND" if act.direction == "inbound" else "OUTBOUND"}
    return "emails", {"hs_email_subject": act.subject, "hs_email_status": "SENT",
                      "hs_email_direction": "INCOMING_EMAIL" if act.direction == "inbound" else "EMAIL"}


def _put_activity(store: ObjectStore, act: Activity, account: Account, contacts: dict[str, Contact],
                  owners: dict[str, Owner]) -> None:
    object_type, props = _activity_properties(act)
    props.update(hs_timestamp=format_datetime(act.occurred_at), hubspot_owner_id=_owner_id(owners, act.owner_key))
    store.put(object_type, act.hs_id, props, act.created_at, act.modified_at,
              _archived_at(act.deleted, act.modified_at))
    store.associate(object_type, act.hs_id, "companies", account.hs_id, "HUBSPOT_DEFINED",
                    default_type_id(object_type, "companies") or 0)
    contact = contacts.get(act.contact_key or "")
    if contact is not None:
        store.associate(object_type, act.hs_id, "contacts", contact.hs_id, "HUBSPOT_DEFINED",
                        default_type_id(object_type, "contacts") or 0)
