"""What was known about an account on a past day: its facts with everything dated later taken out and the
CRM's undated current-state fields withheld — the one way a backtest or a fit looks at the past.

Dated facts after the instant are dropped, or rolled back where the record is dated (a ticket solved later
is open and unrated, a renewal won later is open, a champion who left later is still there). Undated fields that
describe the account *now* cannot be rolled back, so they are withheld (None): payment status, late
payments and the CRM's NPS field. The renewal date is the one being replayed, not yet signed. Contacts the CRM
added later are left out (a contact without a creation date is kept). What stays:
contract start, plan, seats and ACV, read as they are now (they change at renewals, not between them).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta

from healthsync.scoring.base import Account, AccountFacts, Contact, Opportunity, Ticket

WITHHELD = ("payment_status", "late_payments_12m", "nps")
# A ticket's rating carries no date in the facts; ratings arrive within hours or days of the solve, so one is
# only trusted for tickets solved this long before the instant.
RATING_DELAY = timedelta(days=3)


def end_of_day(day: date) -> datetime:
    """The instant a past day is replayed at: its last second, UTC (the day's usage is complete)."""
    return datetime.combine(day, time(23, 59, 59), tzinfo=UTC)


class Replay:
    """One account's facts, sorted by date once, to be seen as of many past instants."""

    def __init__(self, facts: AccountFacts):
        self.facts = facts
        self.usage = tuple(sorted(facts.usage, key=lambda u: u.day))
        self._usage_days = [u.day for u in self.usage]
        self.tickets = tuple(sorted(facts.tickets, key=lambda t: t.created_at))
        self._ticket_times = [t.created_at for t in self.tickets]
        self.activities = tuple(sorted(facts.activities, key=lambda a: a.occurred_at))
        self._activity_times = [a.occurred_at for a in self.activities]
        self.nps = tuple(sorted(facts.nps_responses, key=lambda r: r.at))
        self._nps_times = [r.at for r in self.nps]

    def as_of(self, as_of: datetime, renewal_date: date | None) -> AccountFacts:
        """The facts as they stood at `as_of`, for the renewal due on `renewal_date`."""
        facts = self.facts
        return replace(
            facts,
            account=_account(facts.account, renewal_date),
            contacts=tuple(_contact(c, as_of) for c in facts.contacts
                           if c.created_at is None or c.created_at <= as_of),
            opportunities=tuple(o for o in (_opportunity(o, as_of.date()) for o in facts.opportunities) if o),
            activities=self.activities[:bisect_right(self._activity_times, as_of)],
            tickets=tuple(_ticket(t, as_of) for t in self.tickets[:bisect_right(self._ticket_times, as_of)]),
            usage=self.usage[:bisect_right(self._usage_days, as_of.date())],
            nps_responses=self.nps[:bisect_right(self._nps_times, as_of)],
        )


def _account(account: Account, renewal_date: date | None) -> Account:
    """The renewal replayed is due on `renewal_date` and was not signed yet (it was decided later)."""
    return replace(account, renewal_date=renewal_date, renewal_signed=False, **dict.fromkeys(WITHHELD))


def _contact(contact: Contact, as_of: datetime) -> Contact:
    """Left or moved later: still there then. Gone with no date written down: taken as still there."""
    left = contact.left_at if contact.left_at is not None and contact.left_at <= as_of else None
    moved = contact.role_changed_at
    return replace(contact, left_at=left, role_changed_at=moved if moved is not None and moved <= as_of else None,
                   active=left is None)


def _opportunity(opp: Opportunity, today: date) -> Opportunity | None:
    """Decided later: not there yet (whether it was open then, the facts do not say: they carry no creation
    date; the renewal replayed is known to be unsigned)."""
    return opp if opp.close_date is not None and opp.close_date <= today else None


def _ticket(ticket: Ticket, as_of: datetime) -> Ticket:
    """Solved later: open at as_of, not rated yet, its reopen count unknown."""
    solved = ticket.solved_at
    if solved is not None and solved <= as_of:
        rated_in_time = ticket.satisfaction is None or solved <= as_of - RATING_DELAY
        return ticket if rated_in_time else replace(ticket, satisfaction=None)
    if solved is None and ticket.status in ("solved", "closed") and ticket.updated_at is not None \
            and ticket.updated_at <= as_of:
        return ticket  # solved without a date, but before its last update, which came before as_of
    return replace(ticket, solved_at=None, updated_at=None, status="open", satisfaction=None, reopens=0)
