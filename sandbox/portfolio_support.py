"""Zendesk side of the book: one organization per account (matchable by external id, by domain, or not at
all), end-users from the account's contacts, 180 days of tickets with metrics and satisfaction ratings,
plus a few organizations that belong to no account."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta

from healthsync.sandbox.behaviour import SEGMENTS, TICKET_FACTOR, Behaviour, PlannedTicket
from healthsync.sandbox.book import Book
from healthsync.sandbox.model import Account, Contact, SatisfactionRating, Ticket, ZendeskOrg, ZendeskUser
from healthsync.sandbox.naming import COMPETITORS, FREE_MAIL_DOMAINS, VENDOR_DOMAIN, person

TICKET_HISTORY_DAYS = 180
ORG_ID_BASE = 360_000_000_000
USER_ID_BASE = 380_000_000_000
TICKET_ID_BASE = 10_000
RATING_ID_BASE = 900_000_000

TOPICS = {
    "how_to": ("How do I schedule a report?", "We want a weekly report emailed to the leadership team."),
    "billing": ("Invoice shows the wrong seat count", "Our last invoice lists more seats than we bought."),
    "export": ("CSV export question", "Is there a way to export all dashboards with their filters?"),
    "permissions": ("User cannot see a shared dashboard", "A colleague gets 'access denied' on a shared dashboard."),
    "sso": ("SSO setup with Okta", "Which SAML attributes do you expect for group mapping?"),
    "performance": ("Dashboards are slow", "Loading the main dashboard takes more than 20 seconds."),
    "bug": ("Chart legend overlaps values", "On the trend chart the legend hides the last data points."),
    "data_sync": ("Data not refreshed", "Yesterday's numbers have not appeared in any report yet."),
    "integration": ("Webhook retries", "Our endpoint was down for an hour; will failed webhooks be retried?"),
    "feature_request": ("Feature request: custom fields", "We would like custom fields on the account view."),
    "outage": ("Service unavailable", "The app shows a 503 page for all our users."),
}
_COMPETITOR_LINES = (
    "Our leadership asked us to compare you with {c} before the renewal.",
    "{c} offers this out of the box; we are evaluating whether to switch.",
    "If this is not fixed we will have to look at {c} instead.",
)
_RATING_COMMENTS = {"good": ("Quick and helpful, thanks!", "Solved on the first reply.", ""),
                    "bad": ("Took far too long.", "Still not fixed.", "Had to explain the issue three times.")}


def add_support_agents(book: Book, rng: random.Random) -> None:
    for _ in range(8):
        first, last = person(rng)
        uid = USER_ID_BASE + book.next_id("zendesk_user")
        created = book.migration
        book.zendesk_users.append(ZendeskUser(uid, None, f"{first} {last}", f"{first}.{last}.support@{VENDOR_DOMAIN}"
                                              .lower(), "agent", created, book.stamp(rng, created)))
        book.agent_ids.append(uid)


def add_account_support(book: Book, account: Account, b: Behaviour, contacts: list[Contact],
                        rng: random.Random) -> None:
    org = _org(book, account, rng)
    requesters = [_end_user(book, org, f"{c.first_name} {c.last_name}", c.email, c.created_at, rng)
                  for c in contacts[:4] if not c.deleted]
    if not requesters:
        return
    for planned in b.planted_tickets:
        if planned.days_ago <= (book.today - account.contract_start).days:
            _ticket(book, org.id, rng.choice(requesters), planned, b, rng, exact=True)
    for planned in _background_tickets(book, account, b, rng):
        _ticket(book, org.id, rng.choice(requesters), planned, b, rng, exact=False)


def add_unmatched_orgs(book: Book, count: int, rng: random.Random) -> None:
    """Organizations of trials and former partners: they match no CRM account and must be reported."""
    for n in range(count):
        first, last = person(rng)
        created = book.ago(rng.uniform(30, 400))
        org = ZendeskOrg(ORG_ID_BASE + book.next_id("zendesk_org"), None, f"Trial - {last} Consulting {n + 1}",
                         None, [f"{last.lower()}consulting{n + 1}.biz"], created, book.stamp(rng, created))
        book.zendesk_orgs.append(org)
        user = _end_user(book, org, f"{first} {last}", f"{first}.{last}@{rng.choice(FREE_MAIL_DOMAINS)}".lower(),
                         created, rng)
        base = Behaviour("healthy")
        for _ in range(rng.randint(1, 3)):
            _ticket(book, org.id, user, PlannedTicket(rng.uniform(1, 120), topic=rng.choice(list(TOPICS))), base,
                    rng, exact=False)


def _org(book: Book, account: Account, rng: random.Random) -> ZendeskOrg:
    oid = ORG_ID_BASE + book.next_id("zendesk_org")
    created = account.created_at
    if account.zendesk_identity == "none":
        # created by hand under a regional name and domain: nothing ties it to the CRM account
        word = account.domain.split(".")[0]
        name, domains = f"{account.name.split()[0]} EMEA", [f"{word}-emea.net"]
    else:
        name, domains = account.name, [account.domain]
    org = ZendeskOrg(oid, account.key, name, None, domains, created, book.stamp(rng, created))
    book.zendesk_orgs.append(org)
    return org


def _end_user(book: Book, org: ZendeskOrg, name: str, email: str, created: datetime, rng: random.Random) -> ZendeskUser:  # noqa: PLR0913 (a Zendesk user's fields plus the book and its rng)
    uid = USER_ID_BASE + book.next_id("zendesk_user")
    created = book.clamp(max(created, org.created_at))
    user = ZendeskUser(uid, org.id, name, email, "end-user", created, book.stamp(rng, created))
    book.zendesk_users.append(user)
    return user


def _background_tickets(book: Book, account: Account, b: Behaviour, rng: random.Random) -> list[PlannedTicket]:
    rate = b.tickets_per_90d
    if rate is None:
        rate = SEGMENTS[account.segment].tickets_per_90d * TICKET_FACTOR.get(b.archetype, 1.0)
    history = min(TICKET_HISTORY_DAYS, (book.today - account.contract_start).days)
    if rate <= 0 or history <= b.quiet_ticket_days:
        return []
    count = _poisson(rng, rate * history / 90.0)
    tickets = []
    for index in range(count):
        age = rng.uniform(b.quiet_ticket_days, history)
        prio = "urgent" if rng.random() < b.severe_share * 0.3 else (
            "high" if rng.random() < b.severe_share else rng.choice(("low", "normal", "normal", "normal")))
        text = None
        if index == 0 and rng.random() < b.competitor_chance:
            text = rng.choice(_COMPETITOR_LINES).format(c=rng.choice(COMPETITORS))
        tickets.append(PlannedTicket(age, prio, _status_for_age(age, rng), rng.choice(list(TOPICS)),
                                     description=text, satisfaction="", reopens=_reopens(rng)))
    return tickets


def _poisson(rng: random.Random, lam: float) -> int:
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _reopens(rng: random.Random) -> int:
    roll = rng.random()
    return 2 if roll < 0.02 else 1 if roll < 0.1 else 0


def _status_for_age(age: float, rng: random.Random) -> str:
    if age > 28:
        return "closed"
    roll = rng.random()
    if age > 4:
        return "solved" if roll < 0.85 else "open" if roll < 0.95 else "pending"
    return ("new", "open", "open", "open", "pending", "hold", "solved")[int(roll * 7)]


def _ticket(book: Book, org_id: int, requester: ZendeskUser, planned: PlannedTicket, b: Behaviour,  # noqa: PLR0913 (the planned ticket, where it belongs and how it behaves, plus the book and its rng)
            rng: random.Random, exact: bool) -> None:
    created = book.ago(planned.days_ago)
    if not exact:
        created = max(created, requester.created_at)
    default_subject, default_text = TOPICS.get(planned.topic, TOPICS["how_to"])
    solved = planned.status in ("solved", "closed")
    first_res = rng.randint(20, 2 * 24 * 60) if solved else None
    full_res = first_res + rng.randint(0, 5 * 24 * 60) if first_res is not None else None
    solved_at = book.clamp(created + timedelta(minutes=full_res)) if full_res is not None else None
    updated = _updated_at(book, created, solved_at, planned.status, rng)
    satisfaction = planned.satisfaction or _satisfaction(b, solved, rng)
    ticket = Ticket(
        id=TICKET_ID_BASE + book.next_id("ticket"), org_id=org_id, requester_id=requester.id,
        subject=planned.subject or default_subject,
        description=planned.description or default_text, priority=planned.priority, status=planned.status,
        tags=[planned.topic] + (["vip"] if planned.priority == "urgent" else []), satisfaction=satisfaction,
        created_at=created, updated_at=updated, solved_at=solved_at, reopens=planned.reopens,
        replies=rng.randint(1, 6) if solved else rng.randint(0, 3), first_resolution_minutes=first_res,
        full_resolution_minutes=full_res,
    )
    book.tickets.append(ticket)
    if satisfaction in ("good", "bad"):
        rated = book.clamp((solved_at or created) + timedelta(hours=rng.uniform(1, 30)))
        book.ratings.append(SatisfactionRating(
            RATING_ID_BASE + book.next_id("rating"), ticket.id, org_id, requester.id, satisfaction,
            rng.choice(_RATING_COMMENTS[satisfaction]), rated, rated))


def _updated_at(book: Book, created: datetime, solved_at: datetime | None, status: str,
                rng: random.Random) -> datetime:
    if status == "closed" and solved_at is not None:
        # Zendesk's closing job runs in batches: closed tickets share its stamps
        job = book.clamp(solved_at + timedelta(days=4))
        return max(job.replace(hour=3, minute=0, second=0, microsecond=0), solved_at) if job < book.as_of else job
    if solved_at is not None:
        return solved_at
    return book.clamp(created + timedelta(minutes=rng.randint(5, 600)))


def _satisfaction(b: Behaviour, solved: bool, rng: random.Random) -> str:
    if not solved or rng.random() > 0.55:
        return "unoffered"
    if rng.random() > 0.65:
        return "offered"
    return "good" if rng.random() < b.csat_good else "bad"
