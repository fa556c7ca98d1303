"""A week in the life of the book: realistic edits applied through the emulators' own helpers, day by day,
while the sandbox clock moves 7 days, so an incremental pull afterwards has real deltas to find."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from healthsync.sandbox.model import Account, Portfolio
from healthsync.sandbox.naming import COMPETITORS, stable_int
from healthsync.sandbox.scenarios import PLANTED

WEEK_DAYS = 7


@dataclass(frozen=True)
class Change:
    day: int  # 1..7: the day of the simulated week it happened
    kind: str  # account_edit | deal_signed | champion_left | ticket_added | ticket_solved | contact_deleted
    # | meeting_logged | events_added
    account_key: str | None
    detail: str


class _Targets:
    """The emulators present, found by name, and the CRM whose records get the edits."""

    def __init__(self, server_or_emulators: Any, crm: str | None):
        emulators = _emulators(server_or_emulators)
        self.by_name = {getattr(e, "name", ""): e for e in emulators}
        self.clock = getattr(server_or_emulators, "clock", None) or next(iter(self.by_name.values())).clock
        zendesk = self.by_name.get("zendesk")
        self.crm = crm or getattr(server_or_emulators, "crm", None) or getattr(zendesk, "crm", None) or "salesforce"
        self.crm_emulator = self.by_name.get(self.crm)

    def get(self, name: str) -> Any:
        return self.by_name.get(name)


def _emulators(value: Any) -> list:
    if hasattr(value, "emulators"):
        return list(value.emulators)
    if isinstance(value, Mapping):
        return list(value.values())
    if isinstance(value, Iterable):
        return list(value)
    raise TypeError("pass a SandboxServer, a {name: emulator} mapping or a list of emulators")


def simulate_week(server_or_emulators: Any, portfolio: Portfolio, seed: int, crm: str | None = None) -> list[Change]:
    """Apply a week of changes and advance the sandbox clock by 7 days; returns what changed, in order.

    Background accounts (not the planted scenarios) receive the edits, so the manifest stays true for
    the scenario accounts; with no background accounts the planted clean controls are used."""
    targets = _Targets(server_or_emulators, crm)
    rng = random.Random(stable_int(seed, "week", portfolio.seed, portfolio.size))
    current = [a for a in portfolio.accounts if a.churned_on is None]  # former customers see no more edits
    pool = current[len(PLANTED):] or current
    plan = _plan_week(portfolio, pool, rng)
    changes: list[Change] = []
    for day in range(1, WEEK_DAYS + 1):
        targets.clock.advance(timedelta(days=1))
        for action in plan.get(day, ()):
            change = action(targets, day)
            if change is not None:
                changes.append(change)
    changes.append(_deliver_events(targets, portfolio))
    return changes


def _plan_week(portfolio: Portfolio, pool: list[Account], rng: random.Random) -> dict[int, list]:
    """Which edit happens on which day, chosen from the portfolio's truth before anything is touched."""
    index = _Index(portfolio)
    picks = rng.sample(pool, min(len(pool), 8))
    plan: dict[int, list] = {}

    def on(day: int, action) -> None:
        plan.setdefault(day, []).append(action)

    for account in picks[:2]:
        on(rng.randint(1, 7), _edit_account(account, rng.choice((3, 6, 8, 9)), "overdue" if rng.random() < 0.5
                                            else "current"))
    renewal = index.open_renewal(pool)
    if renewal is not None:
        on(2, _sign_deal(*renewal))
    champion = index.champion(picks[2:3] or pool)
    if champion is not None:
        on(3, _champion_leaves(*champion))
    for offset, account in enumerate(picks[3:5]):
        org_user = index.requester(account)
        if org_user is not None:
            on(1 + offset, _add_ticket(account, *org_user, "high", "Reports fail to load", "Every report errors out."))
            on(2 + offset, _add_ticket(account, *org_user, "normal", "Follow-up: reports still failing",
                                       f"Still broken; we have started a trial of {rng.choice(COMPETITORS)}."))
    open_ticket = index.open_ticket(pool)
    if open_ticket is not None:
        on(4, _solve_ticket(*open_ticket))
    deletable = index.plain_contact(picks[5:6] or pool)
    if deletable is not None:
        on(5, _delete_contact(*deletable))
    for account in picks[6:8]:
        contact = index.first_contact(account)
        if contact is not None:
            on(rng.randint(1, 7), _log_meeting(account, contact))
    return plan


class _Index:
    """Look-ups over the portfolio truth used to pick realistic targets."""

    def __init__(self, portfolio: Portfolio):
        self.portfolio = portfolio
        self.contacts: dict[str, list] = {}
        for contact in portfolio.contacts:
            self.contacts.setdefault(contact.account_key, []).append(contact)
        self.org_of = {o.account_key: o for o in portfolio.zendesk_orgs if o.account_key}
        self.users_of: dict[int, list] = {}
        for user in portfolio.zendesk_users:
            if user.org_id is not None:
                self.users_of.setdefault(user.org_id, []).append(user)

    def open_renewal(self, pool: list[Account]):
        keys = {a.key: a for a in pool}
        for opp in self.portfolio.opportunities:
            account = keys.get(opp.account_key)
            if account is not None and opp.kind == "renewal" and not opp.is_closed and not opp.deleted \
                    and 0 <= (opp.close_date - self.portfolio.as_of.date()).days <= 90:
                return account, opp
        return None

    def champion(self, accounts: list[Account]):
        for account in accounts:
            for contact in self.contacts.get(account.key, ()):
                if contact.is_champion and contact.left_company_at is None and not contact.deleted:
                    return account, contact
        return None

    def plain_contact(self, accounts: list[Account]):
        for account in accounts:
            for contact in self.contacts.get(account.key, ()):
                if contact.role == "user" and not contact.deleted:
                    return account, contact
        return None

    def first_contact(self, account: Account):
        live = [c for c in self.contacts.get(account.key, ()) if not c.deleted and c.left_company_at is None]
        return live[0] if live else None

    def requester(self, account: Account):
        org = self.org_of.get(account.key)
        users = self.users_of.get(org.id, []) if org is not None else []
        return (org, users[0]) if users else None

    def open_ticket(self, pool: list[Account]):
        keys = {a.key for a in pool}
        by_org = {o.id: o.account_key for o in self.portfolio.zendesk_orgs}
        for ticket in self.portfolio.tickets:
            if ticket.status in ("open", "pending", "new") and by_org.get(ticket.org_id) in keys:
                return by_org[ticket.org_id], ticket
        return None

# ----------------------------------------------------------------------------------------------- actions


def _edit_account(account: Account, nps: int, payment: str):
    def act(t: _Targets, day: int) -> Change | None:
        emu = t.crm_emulator
        if emu is None:
            return None
        if t.crm == "salesforce":
            emu.update("Account", account.sf_id, {"NPS__c": float(nps), "Payment_Status__c": payment.capitalize()})
        else:
            emu.update("companies", account.hs_id, {"nps_score": str(nps), "payment_status": payment})
        return Change(day, "account_edit", account.key, f"NPS set to {nps}, payment status {payment}")
    return act


def _sign_deal(account: Account, opp):
    def act(t: _Targets, day: int) -> Change | None:
        emu = t.crm_emulator
        if emu is None:
            return None
        today = t.clock.now().date()
        if t.crm == "salesforce":
            emu.update("Opportunity", opp.sf_id, {"StageName": "Closed Won", "CloseDate": today.isoformat()})
        else:
            emu.update("deals", opp.hs_id, {"dealstage": "closedwon", "closedate": f"{today.isoformat()}T00:00:00Z"})
        return Change(day, "deal_signed", account.key, f"renewal '{opp.name}' signed (Closed Won on {today})")
    return act


def _champion_leaves(account: Account, contact):
    def act(t: _Targets, day: int) -> Change | None:
        emu = t.crm_emulator
        if emu is None:
            return None
        today = t.clock.now().date().isoformat()
        if t.crm == "salesforce":
            emu.update("Contact", contact.sf_id, {"Left_Company__c": True, "Left_Company_Date__c": today})
        else:
            emu.update("contacts", contact.hs_id, {"left_company": "true", "left_company_date": today})
        return Change(day, "champion_left", account.key, f"champion {contact.email} left the company")
    return act


def _delete_contact(account: Account, contact):
    def act(t: _Targets, day: int) -> Change | None:
        emu = t.crm_emulator
        if emu is None:
            return None
        if t.crm == "salesforce":
            emu.delete("Contact", contact.sf_id)
        else:
            emu.archive("contacts", contact.hs_id)
        return Change(day, "contact_deleted", account.key, f"contact {contact.email} deleted")
    return act


def _log_meeting(account: Account, contact):
    def act(t: _Targets, day: int) -> Change | None:
        emu = t.crm_emulator
        if emu is None:
            return None
        start = t.clock.now().replace(microsecond=0) - timedelta(hours=2)
        owner = _owner_id(account, emu, t.crm)
        if t.crm == "salesforce":
            emu.insert("Event", {
                "Subject": "Weekly sync", "WhatId": account.sf_id, "WhoId": contact.sf_id, "OwnerId": owner,
                "StartDateTime": start.isoformat(), "EndDateTime": (start + timedelta(minutes=30)).isoformat(),
                "DurationInMinutes": 30, "ActivityDate": start.date().isoformat(), "Type": "Meeting",
                "Outcome__c": "Held"})
        else:
            emu.create("meetings", {
                "hs_meeting_title": "Weekly sync", "hs_timestamp": start.isoformat(),
                "hs_meeting_start_time": start.isoformat(),
                "hs_meeting_end_time": (start + timedelta(minutes=30)).isoformat(), "hs_meeting_outcome": "COMPLETED",
                "hs_activity_type": "Check-in", "hubspot_owner_id": owner},
                associations={"companies": [account.hs_id], "contacts": [contact.hs_id]})
        return Change(day, "meeting_logged", account.key, f"meeting held with {contact.email}")
    return act


def _owner_id(account: Account, emu: Any, crm: str) -> str | None:
    """The account's owner in the served CRM, read back from the emulator (it may have been reassigned)."""
    if crm == "salesforce":
        return emu.record("Account", account.sf_id)["OwnerId"]
    return (emu.get("companies", account.hs_id) or {}).get("properties", {}).get("hubspot_owner_id")


def _add_ticket(account: Account, org, requester, priority: str, subject: str, description: str):  # noqa: PLR0913 (the ticket's account, org and requester plus its own three fields, captured by the change)
    def act(t: _Targets, day: int) -> Change | None:
        emu = t.get("zendesk")
        if emu is None:
            return None
        ticket_id = emu.add_ticket(subject, organization_id=org.id, requester_id=requester.id, priority=priority,
                                   status="new", tags=["reports"], description=description)
        return Change(day, "ticket_added", account.key, f"ticket #{ticket_id} ({priority}): {subject}")
    return act


def _solve_ticket(account_key: str, ticket):
    def act(t: _Targets, day: int) -> Change | None:
        emu = t.get("zendesk")
        if emu is None:
            return None
        emu.update_ticket(ticket.id, status="solved")
        return Change(day, "ticket_solved", account_key, f"ticket #{ticket.id} solved")
    return act


def _deliver_events(t: _Targets, portfolio: Portfolio) -> Change:
    """Mixpanel events of the simulated week (everything after what the source has already handed out)."""
    source = portfolio.event_source
    emu = t.get("mixpanel")
    end = t.clock.now()
    start = getattr(source, "delivered_until", portfolio.as_of)
    count = 0
    if emu is not None and source is not None and end > start:
        count = emu.add_events(source.events_between(start, end))
        source.delivered_until = end
    return Change(WEEK_DAYS, "events_added", None, f"{count} Mixpanel events between {start.isoformat()} and "
                                                   f"{end.isoformat()}")
