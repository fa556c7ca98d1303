"""CRM side of one synthetic account: contacts with roles and departures, renewal/expansion opportunities,
and 120 days of CS activity (meetings, QBRs, calls, emails) that follows the account's behaviour."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta

from healthsync.sandbox.behaviour import SEGMENTS, Behaviour
from healthsync.sandbox.book import Book, at
from healthsync.sandbox.model import Account, Activity, Contact, Opportunity
from healthsync.sandbox.naming import TITLES, email_local, hs_id, person, sf_id

ACTIVITY_WINDOW_DAYS = 120
_MEETING_SUBJECTS = ("Weekly sync", "Success plan review", "Adoption workshop", "Roadmap preview",
                     "Integration check-in", "Training session")
_CALL_SUBJECTS = ("Check-in call", "Renewal prep call", "Escalation follow-up", "Usage review call")
_OUT_MAIL = ("Following up on our last meeting", "Your monthly usage summary", "Invitation: customer webinar",
             "Quick check-in", "Renewal timeline", "New feature: scheduled reports")
_IN_MAIL = ("Re: Following up on our last meeting", "Re: Quick check-in", "Question about our plan",
            "Re: Your monthly usage summary", "Re: Renewal timeline")

# ----------------------------------------------------------------------------------------------- contacts


def add_contacts(book: Book, account: Account, b: Behaviour, rng: random.Random) -> list[Contact]:
    """Contact 0 is the champion; an executive sponsor for larger accounts; then admins and users."""
    seg = SEGMENTS[account.segment]
    count = rng.randint(*seg.contacts)
    if b.archetype == "planted":
        count = max(count, 4)
    roles = ["champion"]
    if account.segment in ("enterprise", "mid_market") or (account.segment == "smb" and rng.random() < 0.5) \
            or b.archetype == "planted":
        roles.append("exec_sponsor")
    roles += ["admin"] * min(2, max(0, count - len(roles) - 1)) + ["user"] * count
    roles = roles[:max(count, 1)]
    taken: set[str] = set()
    start = at(account.contract_start, 9)
    contacts = [_contact(book, account, role, rng, taken, book.clamp(start - timedelta(days=rng.randint(0, 30))))
                for role in roles]
    _apply_champion_change(book, account, b, contacts, rng, taken)
    if b.sponsor_left_days is not None:
        sponsor = next(c for c in contacts if c.role == "exec_sponsor")
        sponsor.left_company_at = book.ago(b.sponsor_left_days) - timedelta(hours=3)
        sponsor.modified_at = sponsor.left_company_at
    for contact in contacts[1:] if b.archetype != "planted" else ():
        if rng.random() < 0.03 and contact.role == "user":  # ordinary turnover
            contact.left_company_at = book.ago(rng.uniform(5, 200))
            contact.modified_at = max(contact.modified_at, contact.left_company_at)
        elif rng.random() < 0.01 and contact.role == "user":
            contact.deleted = True
    book.contacts.extend(contacts)
    return contacts


def _contact(book: Book, account: Account, role: str, rng: random.Random, taken: set[str],
             created: datetime) -> Contact:
    n = book.next_id("contact")
    first, last = person(rng)
    local = email_local(first, last, taken)
    return Contact(
        key=f"C{n:07d}", sf_id=sf_id("Contact", n), hs_id=hs_id("contact", n), account_key=account.key,
        first_name=first, last_name=last, email=f"{local}@{account.domain}", title=rng.choice(TITLES[role]),
        role=role, is_champion=role == "champion", left_company_at=None, role_changed_at=None,
        created_at=created, modified_at=book.stamp(rng, created),
    )


def _apply_champion_change(book: Book, account: Account, b: Behaviour, contacts: list[Contact],
                           rng: random.Random, taken: set[str]) -> None:
    if b.champion_change is None:
        return
    kind, days_ago = b.champion_change
    champion = contacts[0]
    moment = book.ago(days_ago) - timedelta(hours=rng.randint(1, 8))
    champion.created_at = min(champion.created_at, moment - timedelta(days=30))
    if kind == "left":
        champion.left_company_at = moment
    else:
        champion.role_changed_at = moment
        champion.title = "VP Strategy (moved from " + champion.title + ")"
    champion.modified_at = moment
    if kind == "left" and b.replace_champion and days_ago > 60:
        successor = _contact(book, account, "champion", rng, taken, moment + timedelta(days=10))
        contacts.append(successor)

# ----------------------------------------------------------------------------------------------- opportunities


def add_opportunities(book: Book, account: Account, b: Behaviour, rng: random.Random) -> list[Opportunity]:
    today = book.today
    opps = [_new_business(book, account, rng)]
    previous = account.renewal_date - timedelta(days=365)
    if previous - timedelta(days=365) >= account.contract_start:
        opps.append(_opp(book, account, rng, "renewal", f"Renewal {previous.year}", account.acv * 0.95,
                         "Closed Won", previous - timedelta(days=rng.randint(5, 40)), won=True))
    opps.append(_current_renewal(book, account, b, rng))
    won = b.expansion_won if b.expansion_won is not None else rng.random() < 0.2
    if won and account.contract_start < today - timedelta(days=60):
        close = today - timedelta(days=rng.randint(20, min(330, (today - account.contract_start).days - 10)))
        opps.append(_opp(book, account, rng, "expansion", "Expansion: additional seats",
                         account.acv * rng.uniform(0.12, 0.3), "Closed Won", close, won=True))
    if b.expansion_won is None and rng.random() < 0.1:
        opps.append(_opp(book, account, rng, "expansion", "Expansion: tier upgrade", account.acv * 0.25,
                         "Proposal/Price Quote", today + timedelta(days=rng.randint(20, 120))))
    book.opportunities.extend(opps)
    return opps


def renewal_signed(b: Behaviour, days_to_renewal: int, rng: random.Random) -> bool:
    if b.renewal_signed is not None:
        return b.renewal_signed
    if days_to_renewal < 0:
        return False  # lapsed: past the date, unsigned
    for limit, chance in ((30, 0.7), (60, 0.45), (90, 0.25), (120, 0.1)):
        if days_to_renewal <= limit:
            return rng.random() < chance
    return rng.random() < 0.02


def open_renewal_stage(days_to_renewal: int) -> str:
    for limit, stage in ((60, "Negotiation/Review"), (90, "Proposal/Price Quote"), (120, "Qualification")):
        if days_to_renewal <= limit:
            return stage
    return "Prospecting"


def _current_renewal(book: Book, account: Account, b: Behaviour, rng: random.Random) -> Opportunity:
    days = (account.renewal_date - book.today).days
    name = f"Renewal {account.renewal_date.year}"
    amount = account.acv * rng.uniform(1.0, 1.08)
    created = max(at(account.contract_start, 10), book.ago(min(300, max(days, 0) + 150)))
    if renewal_signed(b, days, rng):
        signed_ago = b.signed_days_ago if b.renewal_signed else rng.randint(1, 40)
        close = book.today - timedelta(days=signed_ago)
        return _opp(book, account, rng, "renewal", name, amount, "Closed Won", close, won=True, created=created)
    return _opp(book, account, rng, "renewal", name, amount, open_renewal_stage(days), account.renewal_date,
                created=created)


def _new_business(book: Book, account: Account, rng: random.Random) -> Opportunity:
    close = account.contract_start - timedelta(days=rng.randint(2, 20))
    return _opp(book, account, rng, "new_business", "New business", account.acv * 0.9, "Closed Won", close,
                won=True, created=at(close - timedelta(days=rng.randint(30, 90)), 11))


def _opp(book: Book, account: Account, rng: random.Random, kind: str, label: str, amount: float, stage: str,
         close: date, *, won: bool = False, created: datetime | None = None) -> Opportunity:
    n = book.next_id("opportunity")
    closed = stage.startswith("Closed")
    created = book.clamp(created or at(close - timedelta(days=rng.randint(30, 120)), 10))
    touched = book.clamp(at(close, 16)) if closed else created
    return Opportunity(
        key=f"O{n:07d}", sf_id=sf_id("Opportunity", n), hs_id=hs_id("deal", n), account_key=account.key,
        name=f"{account.name} - {label}", kind=kind, amount=round(amount, -2), stage=stage, is_closed=closed,
        is_won=won, close_date=close, created_at=created, modified_at=book.stamp(rng, max(created, touched)),
    )

# ----------------------------------------------------------------------------------------------- activities


def add_activities(book: Book, account: Account, b: Behaviour, contacts: list[Contact], rng: random.Random) -> None:
    seg = SEGMENTS[account.segment]
    start_day = max(book.today - timedelta(days=ACTIVITY_WINDOW_DAYS), account.contract_start)
    span = (book.today - start_day).days
    present = [c for c in contacts if c.left_company_at is None] or contacts
    champion = contacts[0]
    sponsor = next((c for c in contacts if c.role == "exec_sponsor"), champion)
    silent_after = book.ago(b.silent_days) if b.silent_days is not None else None
    planned: list[tuple[str, float, Contact, str | None, str]] = []  # kind, days ago, contact, outcome, direction

    def cadence(every: int | None, kind: str) -> None:
        if not every:
            return
        age = span - rng.uniform(0, every)
        while age > 0.2:
            who = champion if champion.left_company_at is None and rng.random() < 0.6 else rng.choice(present)
            planned.append((kind, age, who, None, "outbound"))
            age -= every * rng.uniform(0.8, 1.2)

    cadence(seg.meeting_every_days, "meeting")
    cadence(seg.call_every_days, "call")
    cadence(seg.email_every_days, "email")
    planted = b.archetype == "planted"  # planted accounts get exactly the QBRs their behaviour names
    if seg.qbr_every_days and not planted and rng.random() < min(1.0, ACTIVITY_WINDOW_DAYS / seg.qbr_every_days):
        planned.append(("qbr", rng.uniform(5, min(span, seg.qbr_every_days) or 5), sponsor, None, "outbound"))
    if b.qbr_days_ago is not None and b.qbr_days_ago <= span:
        planned.append(("qbr", b.qbr_days_ago, sponsor, "held", "outbound"))
    last_touch = b.last_touch_days if b.last_touch_days is not None else (
        b.silent_days + 2 if b.silent_days is not None else None)
    if last_touch is not None and last_touch <= span:
        planned.append(("meeting", last_touch, champion, "held", "outbound"))
    if b.contract_age_days is not None:
        planned += _onboarding_touches(b, champion, span)
    for kind, age, who, outcome, direction in planned:
        _emit(book, account, b, rng, kind, age, who, outcome, direction, silent_after)


def _onboarding_touches(b: Behaviour, champion: Contact, span: int) -> list:
    touches = [("email", span - 0.1, champion, None, "outbound"), ("email", max(span - 0.6, 0.05), champion,
                                                                     None, "inbound")]
    if span >= 1:
        touches.append(("meeting", span - 1, champion, "held", "outbound"))
    return touches


def _emit(book: Book, account: Account, b: Behaviour, rng: random.Random, kind: str, age: float, who: Contact,
          outcome: str | None, direction: str, silent_after: datetime | None) -> None:
    if age <= 0.01:
        return  # never in the future
    when = book.ago(age)
    if who.left_company_at is not None and who.left_company_at <= when:
        return
    silent = silent_after is not None and when > silent_after and outcome != "held"
    if kind in ("meeting", "qbr") and outcome is None:
        outcome = _meeting_outcome(b, rng, silent)
    if kind == "call" and silent:
        kind, direction = "email", "outbound"  # the CSM's calls go unanswered; they fall back to mail
    removable = b.archetype != "planted"
    _activity(book, account, rng, kind, when, who, outcome, direction, removable)
    if kind == "email" and direction == "outbound" and not silent and rng.random() < b.reply_share:
        reply = when + timedelta(hours=rng.uniform(2, 40))
        if reply < book.as_of and (silent_after is None or reply <= silent_after):
            _activity(book, account, rng, "email", reply, who, None, "inbound", removable)


def _meeting_outcome(b: Behaviour, rng: random.Random, silent: bool) -> str:
    if silent:
        return "no_show" if rng.random() < 0.5 else "cancelled"
    roll = rng.random()
    if roll < b.no_show_share:
        return "no_show"
    if roll < b.no_show_share + b.cancel_share:
        return "cancelled"
    return "held"


def _activity(book: Book, account: Account, rng: random.Random, kind: str, when: datetime, who: Contact,
              outcome: str | None, direction: str, removable: bool) -> None:
    n = book.next_id("activity")
    sobject = "Event" if kind in ("meeting", "qbr") else "Task"
    if kind == "qbr":
        subject = f"QBR Q{(when.month - 1) // 3 + 1} {when.year}"
    elif kind == "meeting":
        subject = rng.choice(_MEETING_SUBJECTS)
    elif kind == "call":
        subject = rng.choice(_CALL_SUBJECTS)
    else:
        subject = rng.choice(_OUT_MAIL if direction == "outbound" else _IN_MAIL)
    created = when - timedelta(days=rng.uniform(3, 14)) if kind in ("meeting", "qbr") else when
    book.activities.append(Activity(
        key=f"E{n:08d}", sf_id=sf_id(sobject, n), hs_id=hs_id("engagement", n), account_key=account.key,
        contact_key=who.key, owner_key=account.owner_key, kind=kind, subject=subject, occurred_at=when,
        outcome=outcome if kind in ("meeting", "qbr") else None, direction=direction, created_at=created,
        modified_at=book.stamp(rng, when), deleted=removable and rng.random() < 0.003,
    ))
