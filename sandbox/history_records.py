"""The dated facts of an account's past under its latent health — tickets, CS activities, NPS answers and a
departed champion — made with the generator's own record builders, so they look like every other record."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from healthsync.sandbox.behaviour import SEGMENTS, TICKET_FACTOR, Behaviour, PlannedTicket
from healthsync.sandbox.book import Book, at
from healthsync.sandbox.history_model import Trajectory
from healthsync.sandbox.model import Account, Contact, ZendeskUser
from healthsync.sandbox.naming import COMPETITORS
from healthsync.sandbox.portfolio_crm import _activity, _contact
from healthsync.sandbox.portfolio_support import _COMPETITOR_LINES, TOPICS, _poisson, _ticket

SILENT_AT = 0.6  # engagement this much worse than usual: meetings are missed and mail goes unanswered
SURVEY_EVERY_DAYS = 182  # the vendor's NPS survey runs twice a year
SURVEY_ANSWER_SHARE = 0.45
_TROUBLE_TOPICS = ("performance", "outage", "data_sync", "bug")
_USUAL_NPS = {"thriving": 9, "healthy": 8, "watch": 6, "at_risk": 5, "critical": 3, "planted": 8}


@dataclass
class PastLife:
    """One account's past to fill in: who it is, how it behaves, its latent health and the days to cover."""

    account: Account
    behaviour: Behaviour
    trajectory: Trajectory
    contacts: list[Contact]
    first: date
    last: date
    rng: random.Random

    def days(self, step: float, phase: float) -> list[date]:
        """Days from `first` to `last` about `step` apart (each gap 80-120 % of it), starting `phase` x step in."""
        out, offset = [], phase * step
        span = (self.last - self.first).days
        while offset <= span:
            out.append(self.first + timedelta(days=int(offset)))
            offset += step * self.rng.uniform(0.8, 1.2)
        return out

    def present(self, when: datetime) -> list[Contact]:
        return [c for c in self.contacts if not c.deleted and (c.left_company_at is None or c.left_company_at > when)]


def _clip(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)

# ----------------------------------------------------------------------------------------------- tickets


def ticket_rate(account: Account, b: Behaviour) -> float:
    """Background tickets per day, as the generator's recent tickets have them."""
    per_90 = b.tickets_per_90d
    if per_90 is None:
        per_90 = SEGMENTS[account.segment].tickets_per_90d * TICKET_FACTOR.get(b.archetype, 1.0)
    return per_90 / 90.0


def add_past_tickets(book: Book, life: PastLife, org_id: int, requesters: list[ZendeskUser]) -> None:
    """A week at a time: more tickets, more severe ones and worse ratings as support gets worse."""
    rate = ticket_rate(life.account, life.behaviour)
    if rate <= 0 or not requesters:
        return
    rng, trajectory = life.rng, life.trajectory
    reference = 1.0 + 3.0 * trajectory.pressure("support", trajectory.reference)
    week = life.first
    while week <= life.last:
        worse = trajectory.relative("support", week + timedelta(days=3))
        factor = (1.0 + 3.0 * trajectory.pressure("support", week + timedelta(days=3))) / reference
        for _ in range(_poisson(rng, rate * 7.0 * factor)):
            day = week + timedelta(days=rng.randrange(7))
            if day <= life.last:
                planned = _past_ticket(book, life, day, worse)
                _ticket(book, org_id, rng.choice(requesters), planned,
                        life.behaviour.with_(csat_good=_clip(life.behaviour.csat_good - 0.5 * worse, 0.05, 0.98)),
                        rng, exact=False)
        week += timedelta(days=7)


def _past_ticket(book: Book, life: PastLife, day: date, worse: float) -> PlannedTicket:
    rng, b = life.rng, life.behaviour
    severe = _clip(b.severe_share + 0.35 * worse, 0.02, 0.9)
    priority = "urgent" if rng.random() < severe * 0.3 else (
        "high" if rng.random() < severe else rng.choice(("low", "normal", "normal", "normal")))
    topic = rng.choice(_TROUBLE_TOPICS) if worse > 0.3 and rng.random() < worse else rng.choice(list(TOPICS))
    text = None
    if rng.random() < _clip(b.competitor_chance + 0.3 * worse, 0.0, 0.6) * 0.5:
        text = rng.choice(_COMPETITOR_LINES).format(c=rng.choice(COMPETITORS))
    days_ago = (book.today - day).days + rng.uniform(0.05, 0.95)
    reopens = 1 if rng.random() < _clip(0.08 + 0.2 * worse, 0.0, 0.5) else 0
    return PlannedTicket(days_ago, priority, "closed" if days_ago > 28 else "solved", topic, description=text,
                         satisfaction="", reopens=reopens)

# ----------------------------------------------------------------------------------------------- activities


def add_past_activities(book: Book, life: PastLife) -> None:
    """The segment's meeting, call, mail and QBR cadence; missed, cancelled and unanswered as engagement sinks."""
    seg = SEGMENTS[life.account.segment]
    rng = life.rng
    for kind, every in (("meeting", seg.meeting_every_days), ("call", seg.call_every_days),
                        ("email", seg.email_every_days), ("qbr", seg.qbr_every_days)):
        if not every:
            continue
        for day in life.days(every, rng.random()):
            when = at(day, rng.randint(8, 17), rng.randrange(60))
            _past_touch(book, life, kind, when)


def _past_touch(book: Book, life: PastLife, kind: str, when: datetime) -> None:
    rng, b = life.rng, life.behaviour
    present = life.present(when)
    if not present:
        return
    champion = next((c for c in present if c.is_champion), None)
    who = champion if champion is not None and rng.random() < 0.6 else rng.choice(present)
    worse = life.trajectory.relative("engagement", when.date())
    silent = worse >= SILENT_AT
    if kind == "call" and silent:
        kind = "email"  # the CSM's calls go unanswered; they fall back to mail
    outcome = _outcome(b, worse, silent, rng) if kind in ("meeting", "qbr") else None
    _activity(book, life.account, rng, kind, when, who, outcome, "outbound", True)
    reply_share = _clip(b.reply_share - 0.6 * worse, 0.02, 0.95)
    if kind == "email" and not silent and rng.random() < reply_share:
        reply = when + timedelta(hours=rng.uniform(2, 40))
        if reply.date() <= life.last:
            _activity(book, life.account, rng, "email", reply, who, None, "inbound", True)


def _outcome(b: Behaviour, worse: float, silent: bool, rng: random.Random) -> str:
    if silent:
        return "no_show" if rng.random() < 0.5 else "cancelled"
    no_show = _clip(b.no_show_share + 0.35 * worse, 0.0, 0.8)
    cancel = _clip(b.cancel_share + 0.25 * worse, 0.0, 0.6)
    roll = rng.random()
    return "no_show" if roll < no_show else "cancelled" if roll < no_show + cancel else "held"

# ----------------------------------------------------------------------------------------------- sentiment, people


def past_surveys(life: PastLife, not_after: date) -> tuple[tuple[date, int], ...]:
    """NPS answers to the twice-yearly survey (not every customer answers), falling as sentiment sinks."""
    rng, b = life.rng, life.behaviour
    usual = b.nps if b.nps is not None else _USUAL_NPS.get(b.archetype, 7)
    answers = []
    for day in life.days(SURVEY_EVERY_DAYS, rng.random()):
        if day > not_after or rng.random() >= SURVEY_ANSWER_SHARE:
            continue
        worse = life.trajectory.relative("sentiment", day)
        answers.append((day, int(_clip(round(usual - 6.0 * worse + rng.gauss(0.0, 1.2)), 0, 10))))
    return tuple(answers)


def add_champion(book: Book, life: PastLife, joined: datetime, left: datetime | None = None) -> Contact:
    """Another champion contact: one who left on `left` (today's champion is the successor), or a successor."""
    taken = {c.email.split("@")[0] for c in life.contacts}
    champion = _contact(book, life.account, "champion", life.rng, taken, min(joined, book.as_of))
    if left is not None:
        champion.left_company_at = left
        champion.modified_at = left
    book.contacts.append(champion)
    life.contacts.append(champion)
    return champion
