"""Renders the neutral Portfolio as a Salesforce org: Users, Accounts, Contacts, Opportunities, and
activities as Tasks (calls, emails) or Events (meetings, QBRs), with the field names of our field_map defaults."""

from __future__ import annotations

import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

from healthsync.sandbox.salesforce import ids
from healthsync.sandbox.salesforce.store import DELETED_AT, OrgStore, Record

INTEGRATION_USER_ID = ids.to18("005Hs0INTEGRATN")
_TITLES = {"csm": "Customer Success Manager", "cs_manager": "Customer Success Director",
           "cs_leadership": "VP Customer Success", "executive": "Chief Technology Officer",
           "product": "Product Manager"}
_CONTACT_ROLES = {"champion": "Champion", "exec_sponsor": "Executive Sponsor", "admin": "Admin", "user": "User"}
_OPP_TYPES = {"renewal": "Renewal", "expansion": "Expansion", "new_business": "New Business"}
_OUTCOMES = {"held": "Held", "no_show": "No Show", "cancelled": "Cancelled"}
_MEETING_MINUTES = {"meeting": 30, "qbr": 60}


def reset_org(store: OrgStore, username: str, now: datetime) -> None:
    """Empty every table and seed the API integration user the demo credentials log in as."""
    for table in store.tables.values():
        table.clear()
    store.acting_user_id = INTEGRATION_USER_ID
    _put(store, "User", {
        "Id": INTEGRATION_USER_ID, "Username": username, "FirstName": "Healthsync", "LastName": "Integration",
        "Email": username, "Alias": "hsync", "IsActive": True, "Title": "Integration User",
        "Department": "Systems", "CreatedDate": now, "LastModifiedDate": now, "SystemModstamp": now,
    }, created_by=INTEGRATION_USER_ID)


def load_portfolio(store: OrgStore, portfolio: Any, now: datetime) -> None:
    """Add every Portfolio record to the (freshly reset) store."""
    owners = {o.key: o for o in portfolio.owners}
    accounts = {a.key: a for a in portfolio.accounts}
    contacts = {c.key: c for c in portfolio.contacts}
    org_birth = _utc(portfolio.as_of) - timedelta(days=3 * 365)
    blank = {name: _defaults(store, name) for name in store.schemas}
    for owner in portfolio.owners:
        _put(store, "User", _user(owner, org_birth), defaults=blank["User"])
    for account in portfolio.accounts:
        _put(store, "Account", _account(account, owners[account.owner_key].sf_id), now, account.deleted,
             defaults=blank["Account"])
    for contact in portfolio.contacts:
        owner_id = owners[accounts[contact.account_key].owner_key].sf_id
        _put(store, "Contact", _contact(contact, accounts[contact.account_key].sf_id, owner_id), now,
             contact.deleted, defaults=blank["Contact"])
    for opp in portfolio.opportunities:
        owner_id = owners[accounts[opp.account_key].owner_key].sf_id
        _put(store, "Opportunity", _opportunity(opp, accounts[opp.account_key].sf_id, owner_id), now,
             opp.deleted, defaults=blank["Opportunity"])
    for activity in portfolio.activities:
        account_id = accounts[activity.account_key].sf_id
        who = contacts[activity.contact_key].sf_id if activity.contact_key in contacts else None
        sobject, fields = _activity(activity, account_id, who, owners[activity.owner_key].sf_id)
        _put(store, sobject, fields, now, activity.deleted, defaults=blank[sobject])


def _put(store: OrgStore, sobject: str, fields: Record, now: datetime | None = None, deleted: bool = False,  # noqa: PLR0913 (a stored row's columns, with their defaults)
         created_by: str | None = None, defaults: Record | None = None) -> None:
    """Insert a loaded record directly (bulk-load semantics: no validation, no triggers). Derived fields
    are filled by the mapping functions, except the few `_derive` computes cheaply."""
    record: Record = dict(defaults) if defaults is not None else _defaults(store, sobject)
    record.update(fields)
    record["Id"] = ids.to18(record["Id"])
    record["IsDeleted"] = deleted
    record["CreatedById"] = record["LastModifiedById"] = created_by or record.get("OwnerId") or INTEGRATION_USER_ID
    if deleted:
        record[DELETED_AT] = now  # loaded deletions count as recent: they sit in the recycle bin
    if sobject not in {"Task", "Event"}:
        store._derive(sobject, record)  # noqa: SLF001 - the loader is part of the store's package
    store.tables[sobject][ids.key15(record["Id"])] = record


def _defaults(store: OrgStore, sobject: str) -> Record:
    return {d.name: d.default for d in store.schema(sobject).fields.values()}


def _stamps(key: str, created: datetime, modified: datetime) -> dict[str, datetime]:
    """Second-precision stamps; a third of the records came in through a bulk load that stamped them on the
    whole minute, so many records share one SystemModstamp (the reason cursors must be (stamp, Id))."""
    created, modified = _utc(created), _utc(modified)
    if zlib.crc32(key.encode()) % 3 == 0:
        modified = max(modified.replace(second=0), created)
    return {"CreatedDate": created, "LastModifiedDate": modified, "SystemModstamp": modified}


def _utc(value: datetime) -> datetime:
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(microsecond=0)


def _user(owner: Any, born: datetime) -> Record:
    return {
        "Id": owner.sf_id, "Username": owner.email, "FirstName": owner.first_name, "LastName": owner.last_name,
        "Email": owner.email, "Alias": (owner.first_name[:1] + owner.last_name)[:8].lower(),
        "IsActive": owner.active, "Title": _TITLES.get(owner.role, owner.role), "Department": "Customer Success",
        "CreatedDate": born, "LastModifiedDate": born, "SystemModstamp": born,
    }


def _website(key: str, domain: str) -> str:
    # Real orgs hold websites in every shape; identity resolution has to normalise them.
    return [f"https://www.{domain}", f"www.{domain}", domain, f"http://{domain}/"][zlib.crc32(key.encode()) % 4]


def _account(account: Any, owner_id: str) -> Record:
    return {
        "Id": account.sf_id, "Name": account.name, "Type": "Customer - Direct", "Industry": account.industry,
        "Website": _website(account.key, account.domain), "OwnerId": owner_id, "AnnualRevenue": None,
        "ARR__c": float(account.arr), "ACV__c": float(account.acv), "Renewal_Date__c": account.renewal_date,
        "Plan_Tier__c": account.plan_tier.capitalize(), "Seats_Purchased__c": float(account.seats_purchased),
        "Usage_Capacity__c": float(account.capacity_limit), "Contract_Start_Date__c": account.contract_start,
        "Payment_Status__c": account.payment_status.capitalize(),
        "NPS__c": float(account.nps) if account.nps is not None else None,
        **_stamps(account.key, account.created_at, account.modified_at),
    }


def _contact(contact: Any, account_id: str, owner_id: str) -> Record:
    left, changed = contact.left_company_at, contact.role_changed_at
    return {
        "Id": contact.sf_id, "AccountId": account_id, "FirstName": contact.first_name,
        "LastName": contact.last_name, "Email": contact.email, "Title": contact.title, "OwnerId": owner_id,
        "Contact_Role__c": _CONTACT_ROLES.get(contact.role), "Is_Champion__c": bool(contact.is_champion),
        "Left_Company__c": left is not None, "Left_Company_Date__c": _utc(left).date() if left else None,
        "Role_Changed_Date__c": _utc(changed).date() if changed else None,
        **_stamps(contact.key, contact.created_at, contact.modified_at),
    }


def _opportunity(opp: Any, account_id: str, owner_id: str) -> Record:
    return {
        "Id": opp.sf_id, "AccountId": account_id, "Name": opp.name, "Type": _OPP_TYPES.get(opp.kind),
        "Amount": float(opp.amount), "StageName": opp.stage, "CloseDate": opp.close_date, "OwnerId": owner_id,
        "Loss_Reason__c": opp.loss_reason, **_stamps(opp.key, opp.created_at, opp.modified_at),
    }


def _activity(activity: Any, account_id: str, who_id: str | None, owner_id: str) -> tuple[str, Record]:
    common = {"Id": activity.sf_id, "WhatId": account_id, "WhoId": who_id, "AccountId": account_id,
              "OwnerId": owner_id, "Subject": activity.subject,
              **_stamps(activity.key, activity.created_at, activity.modified_at)}
    occurred = _utc(activity.occurred_at)
    if activity.kind in _MEETING_MINUTES:
        minutes = _MEETING_MINUTES[activity.kind]
        return "Event", {**common, "StartDateTime": occurred, "ActivityDateTime": occurred,
                         "EndDateTime": occurred + timedelta(minutes=minutes), "DurationInMinutes": minutes,
                         "ActivityDate": occurred.date(), "Type": "QBR" if activity.kind == "qbr" else "Meeting",
                         "Outcome__c": _OUTCOMES.get(activity.outcome or "")}
    direction = activity.direction.capitalize()
    is_call = activity.kind == "call"
    return "Task", {**common, "Status": "Completed", "IsClosed": True, "Priority": "Normal",
                    "ActivityDate": occurred.date(),
                    "TaskSubtype": "Call" if is_call else "Email", "Type": "Call" if is_call else "Email",
                    "CallType": direction if is_call else None, "CallDisposition": "Connected" if is_call else None,
                    "Direction__c": direction}
