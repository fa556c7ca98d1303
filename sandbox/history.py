"""The sandbox's churn history: 12-18 months of past renewals (renewed, contracted, expanded, or lost with a
reason) and the dated facts leading up to each, so any model can be replayed as of any past day.

Every current account gets a past older than the windows the generator fills for today (usage > 90 days,
tickets > 180, activities > 120, surveys and departures > 365), so today's signals and the planted scenarios
stay as they are. At-risk accounts were often healthier before, and a quarter of all accounts had a bad spell
that passed (some of them renewed while red). Former customers are added after the current book: each
lost its last renewal in the window after an erosion that began a lead time before (median 6 months, a few
within weeks), deepened for two to five months and held, and showed in the channels its reason shows in,
strongly or barely. The process is drawn
from that story, never fitted to a health model: what a model makes of it is what the backtest measures.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, replace
from datetime import date, timedelta
from statistics import fmean

from healthsync.sandbox.behaviour import SEGMENT_BLOCK, SEGMENTS, TIERS, Behaviour, book_behaviour
from healthsync.sandbox.book import Book, at
from healthsync.sandbox.events import UsagePlan
from healthsync.sandbox.history_model import (
    CHANNELS,
    EROSION_DAYS,
    RECOVERY_DAYS,
    Episode,
    Trajectory,
    draw_episode,
    draw_reason,
    lead_days,
    weekly_noise,
)
from healthsync.sandbox.history_records import (
    PastLife,
    add_champion,
    add_past_activities,
    add_past_tickets,
    past_surveys,
)
from healthsync.sandbox.model import Account, MixpanelProfile, Opportunity
from healthsync.sandbox.naming import (
    FREE_MAIL_DOMAINS,
    INDUSTRIES,
    CompanyNamer,
    email_local,
    hs_id,
    keyed_rng,
    person,
    sf_id,
    stable_int,
)
from healthsync.sandbox.portfolio_crm import ACTIVITY_WINDOW_DAYS, _new_business, _opp, add_contacts
from healthsync.sandbox.portfolio_support import TICKET_HISTORY_DAYS, add_account_support

DEFAULT_HISTORY_DAYS = 450  # 15 months of renewals
HISTORY_RANGE = (60, 730)
# Facts go back this far before the first renewal of the window: a 90-day horizon plus the 130 days of
# activity, tickets and usage the signals look back over.
HISTORY_LOOKBACK_DAYS = 220
USAGE_RECENT_DAYS = 90  # today's usage (the Mixpanel backfill of a default config) keeps the generator's level
QUIET_DAYS = 365  # current accounts get no survey answer or departure younger than this: today's signals stand
SEGMENT_CHURN = {"enterprise": 0.05, "mid_market": 0.08, "smb": 0.13, "self_serve": 0.18}  # logos lost a year
FALSE_ALARM_SHARE = 0.25  # accounts that had a bad spell in the past and came through it
DEVELOPING_SHARE = 0.6  # at-risk accounts that were healthier before (the others were always like this)
_FORMER_ARCHETYPES = (("thriving", 8), ("healthy", 40), ("watch", 30), ("at_risk", 15), ("critical", 7))
_FORMER_TERMS = (1, 1, 1, 2, 2, 3, 4)  # new customers churn more often
_ZENDESK_IDENTITY = (("external_id", 16), ("domain", 3), ("none", 1))
_MIXPANEL_IDENTITY = (("group_crm_id", 15), ("group_domain", 2), ("email_domain", 2), ("none", 1))
# The loss-reason picklist as CS teams fill it in: several values per seed-002 category.
LOSS_REASONS = {
    "product_fit": ("Missing features", "Low adoption", "Switched to competitor"),
    "service": ("Poor support experience", "Reliability issues"),
    "pricing": ("Too expensive", "Budget cut"),
    "strategic_shift": ("Acquired / merged", "Strategy change", "Champion left"),
    "other": ("No decision", "Other"),
}


@dataclass(frozen=True, order=True)
class PastRenewal:
    """One renewal of the window as it truly went (the CRM holds the opportunity; this is the answer key)."""

    close_date: date
    account_key: str
    term_end: date
    outcome: str  # renewed | contracted | expanded | churned
    reason: str | None = None  # churned: seed 002's category
    loss_reason: str | None = None  # churned: the CRM picklist value
    lead_days: int | None = None  # churned: days from the first sign of the decline to the term end
    pressure: float = 0.0  # the latent decline (mean over channels, 0..1) 90 days before the term end


@dataclass(frozen=True)
class ChurnHistory:
    days: int
    window_start: date  # the first day of the renewal window
    data_start: date  # the first day of the facts generated for it
    renewals: tuple[PastRenewal, ...]
    former_keys: tuple[str, ...]

    @property
    def churned(self) -> list[PastRenewal]:
        return [r for r in self.renewals if r.outcome == "churned"]


def add_history(book: Book, days: int, namer: CompanyNamer, csm_keys: list[str]) -> ChurnHistory:
    """Give the book's accounts a past and add the former customers; call once the current book is complete."""
    if not HISTORY_RANGE[0] <= days <= HISTORY_RANGE[1]:
        raise ValueError(f"history_days must be within {HISTORY_RANGE[0]}..{HISTORY_RANGE[1]} (got {days})")
    window = _Window(book.today - timedelta(days=days), book.today - timedelta(days=days + HISTORY_LOOKBACK_DAYS))
    index = _Index(book)
    size = len(book.accounts)
    renewals: list[PastRenewal] = []
    for account in list(book.accounts):
        renewals += _current_past(book, index, account, window)
    former: list[str] = []
    rng = keyed_rng(book.seed, "history", "former")
    for offset, (segment, term_end) in enumerate(_former_plan(size, days, window, rng)):
        key, past = _former_customer(book, _Former(size + offset + 1, segment, term_end), namer, csm_keys, window)
        former.append(key)
        renewals += past
    inside = [r for r in renewals if window.start <= r.close_date < book.today]
    return ChurnHistory(days, window.start, window.data_start, tuple(sorted(inside)), tuple(former))


@dataclass(frozen=True)
class _Window:
    start: date
    data_start: date


class _Index:
    """The book's records by account, taken once the current book is complete."""

    def __init__(self, book: Book):
        self.plans = {plan.account_key: n for n, plan in enumerate(book.plans) if plan.account_key}
        self.contacts: dict[str, list] = {}
        for contact in book.contacts:
            self.contacts.setdefault(contact.account_key, []).append(contact)
        self.orgs = {org.account_key: org for org in book.zendesk_orgs if org.account_key}
        self.requesters: dict[int, list] = {}
        for user in book.zendesk_users:
            if user.org_id is not None and user.role == "end-user":
                self.requesters.setdefault(user.org_id, []).append(user)
        self.opportunities: dict[str, list[Opportunity]] = {}
        for opp in book.opportunities:
            self.opportunities.setdefault(opp.account_key, []).append(opp)


def _pressure(trajectory: Trajectory, day: date) -> float:
    return fmean(trajectory.pressure(channel, day) for channel in CHANNELS)

# ----------------------------------------------------------------------------------------------- current accounts


def _current_past(book: Book, index: _Index, account: Account, window: _Window) -> list[PastRenewal]:
    position = index.plans.get(account.key)
    if position is None:
        return []
    plan = book.plans[position]
    b = plan.behaviour
    if b.contract_age_days is not None:
        return []  # still onboarding: no past to speak of
    rng = keyed_rng(book.seed, "history", account.key)
    first = max(window.data_start, account.contract_start)
    trajectory = Trajectory(book.today, book.today, _current_episodes(b, rng, book.today), USAGE_RECENT_DAYS,
                            window.data_start, weekly_noise(rng, (book.today - window.data_start).days // 7 + 1))
    life = PastLife(account, b, trajectory, index.contacts.get(account.key, []), first,
                    book.today - timedelta(days=TICKET_HISTORY_DAYS + 1), rng)
    quiet = book.today - timedelta(days=QUIET_DAYS)
    for episode in trajectory.episodes:
        if episode.champion_left is not None and first <= episode.champion_left <= quiet:
            add_champion(book, life, at(account.contract_start, 9), at(episode.champion_left, rng.randint(9, 17)))
    org = index.orgs.get(account.key)
    if org is not None:
        add_past_tickets(book, life, org.id, index.requesters.get(org.id, []))
    life.last = book.today - timedelta(days=ACTIVITY_WINDOW_DAYS + 1)
    add_past_activities(book, life)
    surveys = past_surveys(life, quiet - timedelta(days=1))
    book.plans[position] = replace(plan, trajectory=trajectory, surveys=tuple(sorted(surveys + plan.surveys)))
    return _current_renewals(book, index, account, trajectory, window, rng)


def _current_episodes(b: Behaviour, rng: random.Random, today: date) -> tuple[Episode, ...]:
    """Nothing may still be changing inside the windows the generator fills for today (the last 180 days)."""
    if b.archetype == "planted":
        return ()  # the planted scenarios had an unremarkable past
    settled = today - timedelta(days=TICKET_HISTORY_DAYS)
    episodes = []
    if (b.archetype in ("at_risk", "critical") or b.shape == "decline") and rng.random() < DEVELOPING_SHARE:
        peak = settled - timedelta(days=rng.randint(0, 120))
        onset = peak - timedelta(days=rng.randint(60, 180))
        episodes.append(draw_episode(rng, draw_reason(rng), (onset, peak, None), rng.uniform(0.5, 1.0)))
    if rng.random() < FALSE_ALARM_SHARE:
        recovered = settled - timedelta(days=rng.randint(0, 240))
        peak = recovered - timedelta(days=RECOVERY_DAYS + rng.randint(0, 60))
        onset = peak - timedelta(days=rng.randint(30, 120))
        episodes.append(draw_episode(rng, draw_reason(rng), (onset, peak, recovered), rng.uniform(0.3, 1.0)))
    return tuple(episodes)


def _current_renewals(book: Book, index: _Index, account: Account, trajectory: Trajectory,  # noqa: PLR0913 (the account, its latent health and the window, plus the book, its index and the account's rng)
                      window: _Window, rng: random.Random) -> list[PastRenewal]:
    """Renewals of past terms (the generator made the latest; older ones inside the data are added), each
    renewed, contracted or expanded as the account stood at the time; amounts follow from the outcomes."""
    ends = []
    end = account.renewal_date - timedelta(days=365)
    while end - timedelta(days=365) >= account.contract_start and end >= window.data_start:
        ends.append(end)
        end -= timedelta(days=365)
    opps = index.opportunities.get(account.key, [])
    made = [o for o in opps if o.kind == "renewal" and o.is_won
            and o.close_date < account.renewal_date - timedelta(days=300)]  # not the current term's renewal
    prior = next((o.amount for o in opps if o.kind == "new_business"), account.acv * 0.9)
    out = []
    for end in reversed(ends):
        opp = next((o for o in made if end - timedelta(days=45) <= o.close_date <= end), None)
        if opp is None:
            opp = _opp(book, account, rng, "renewal", f"Renewal {end.year}", prior, "Closed Won",
                       end - timedelta(days=rng.randint(5, 40)), won=True)
            book.opportunities.append(opp)
        if opp.close_date >= book.today:
            break  # signed ahead of a term end still to come: not an outcome of the past
        outcome = _renewal_outcome(_pressure(trajectory, end), rng)
        opp.amount = _renewed_amount(prior, outcome, rng)
        prior = opp.amount
        out.append(PastRenewal(opp.close_date, account.key, end, outcome,
                               pressure=round(_pressure(trajectory, end - timedelta(days=90)), 3)))
    return out


def _renewal_outcome(pressure: float, rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.04 + 0.45 * pressure:
        return "contracted"
    if roll < 0.04 + 0.45 * pressure + 0.10 * (1.0 - pressure):
        return "expanded"
    return "renewed"


def _renewed_amount(prior: float, outcome: str, rng: random.Random) -> float:
    low, high = {"contracted": (0.6, 0.85), "expanded": (1.15, 1.4)}.get(outcome, (0.97, 1.06))
    return round(prior * rng.uniform(low, high), -2)

# ----------------------------------------------------------------------------------------------- former customers


@dataclass(frozen=True)
class _Former:
    number: int  # the account's position in the book, from 1
    segment: str
    term_end: date  # the day its last term ended, unrenewed


def _former_plan(size: int, days: int, window: _Window, rng: random.Random) -> list[tuple[str, date]]:
    """As many former customers as the segments' yearly churn gives over the window, on random days of it."""
    shares = Counter(SEGMENT_BLOCK)
    expected = {s: size * n / len(SEGMENT_BLOCK) * SEGMENT_CHURN[s] * days / 365.0 for s, n in shares.items()}
    count = round(sum(expected.values()))
    segments = rng.choices(list(expected), weights=list(expected.values()), k=count)
    return [(segment, window.start + timedelta(days=rng.randrange(days))) for segment in segments]


def _former_customer(book: Book, former: _Former, namer: CompanyNamer, csm_keys: list[str],
                     window: _Window) -> tuple[str, list[PastRenewal]]:
    rng = keyed_rng(book.seed, "history", "former", former.number)
    b = _former_behaviour(rng)
    terms = rng.choice(_FORMER_TERMS)
    start = former.term_end - timedelta(days=365 * terms)
    account = _former_account(book, former, namer, start, b, rng, csm_keys)
    book.accounts.append(account)
    contacts = add_contacts(book, account, b, rng)
    reason = draw_reason(rng)
    if reason.name == "pricing" and rng.random() < 0.45:
        account.payment_status = "failed" if rng.random() < 0.25 else "overdue"
    lead = min(lead_days(rng), (former.term_end - start).days - 30)
    onset = former.term_end - timedelta(days=lead)
    peak = min(onset + timedelta(days=rng.randint(*EROSION_DAYS)), former.term_end)
    episode = draw_episode(rng, reason, (onset, peak, None), rng.uniform(0.3, 1.0))
    first = max(window.data_start, start)
    trajectory = Trajectory(book.today, first, (episode,), None, window.data_start,
                            weekly_noise(rng, (book.today - window.data_start).days // 7 + 1), former.term_end)
    life = PastLife(account, b, trajectory, contacts, first, former.term_end, rng)
    _lose_champion(book, life, episode)
    add_account_support(book, account, b.with_(tickets_per_90d=0.0, planted_tickets=()), contacts, rng)
    org = book.zendesk_orgs[-1]
    add_past_tickets(book, life, org.id, [u for u in book.zendesk_users[-4:] if u.org_id == org.id])
    add_past_activities(book, life)
    surveys = past_surveys(life, former.term_end)
    account.nps = surveys[-1][1] if surveys else b.nps
    _add_former_usage(book, account, life, surveys)
    renewals = _former_renewals(book, life, terms, reason.name)
    churned = renewals[-1]
    renewals[-1] = replace(churned, reason=reason.name, lead_days=lead,
                           pressure=round(_pressure(trajectory, former.term_end - timedelta(days=90)), 3))
    return account.key, renewals


def _former_behaviour(rng: random.Random) -> Behaviour:
    archetype = rng.choices([a for a, _ in _FORMER_ARCHETYPES], [w for _, w in _FORMER_ARCHETYPES])[0]
    return book_behaviour(archetype, rng).with_(
        weekly_growth=0.0, shape="steady", floor=1.0, silent_days=None, champion_change=None, nps_days_ago=None,
        earlier_nps=None, sponsor_left_days=None)


def _former_account(book: Book, former: _Former, namer: CompanyNamer, start: date, b: Behaviour,  # noqa: PLR0913 (the account's own draws, plus the book, the namer and the owners)
                    rng: random.Random, csm_keys: list[str]) -> Account:
    name, domain = namer.next()
    seg = SEGMENTS[former.segment]
    low, high = seg.acv_range
    acv = round(math.exp(rng.uniform(math.log(low), math.log(high))), -2)
    tier = TIERS[rng.choice(seg.tiers)]
    seats = max(1, round(acv / tier.price_per_seat))
    created = book.clamp(max(book.migration, at(start - timedelta(days=rng.randint(20, 120)), 10)))
    n = former.number
    payment = b.payment_status
    return Account(
        key=f"A{n:06d}", sf_id=sf_id("Account", n), hs_id=hs_id("company", n), name=name, domain=domain,
        owner_key=csm_keys[stable_int(book.seed, "owner", n - 1) % len(csm_keys)], segment=former.segment, acv=acv,
        arr=round(acv * rng.uniform(0.9, 1.0), -2), plan_tier=tier.name, seats_purchased=seats,
        capacity_limit=int(math.ceil(seats * tier.events_per_seat / 100.0) * 100), contract_start=start,
        renewal_date=former.term_end, payment_status=payment, nps=b.nps, industry=rng.choice(INDUSTRIES),
        zendesk_identity=_pick(rng, _ZENDESK_IDENTITY), mixpanel_identity=_pick(rng, _MIXPANEL_IDENTITY),
        created_at=created, modified_at=book.stamp(rng, at(former.term_end, 12)), churned_on=former.term_end,
    )


def _pick(rng: random.Random, weighted: tuple[tuple[str, int], ...]):
    return rng.choices([v for v, _ in weighted], [w for _, w in weighted])[0]


def _lose_champion(book: Book, life: PastLife, episode: Episode) -> None:
    """The champion leaves during the decline; a successor is named in a third of the accounts."""
    day = episode.champion_left
    champion = next((c for c in life.contacts if c.is_champion), None)
    if day is None or champion is None or not life.first <= day < life.last:
        return
    champion.left_company_at = at(day, life.rng.randint(9, 17))
    champion.modified_at = max(champion.modified_at, champion.left_company_at)
    if life.rng.random() < 0.33 and day + timedelta(days=40) < life.last:
        add_champion(book, life, at(day + timedelta(days=life.rng.randint(15, 40)), 9))


def _add_former_usage(book: Book, account: Account, life: PastLife, surveys: tuple) -> None:
    """The account's product users (as the generator makes them) and its event plan, ending with the term."""
    rng, b = life.rng, life.behaviour
    free_mail = account.mixpanel_identity == "none"
    known = [c for c in life.contacts if not c.deleted]
    taken: set[str] = set()
    users = []
    for idx in range(max(1, round(account.seats_purchased * b.adoption))):
        if idx < len(known) and not free_mail:
            first, last, email = known[idx].first_name, known[idx].last_name, known[idx].email
        else:
            first, last = person(rng)
            local = email_local(first, last, taken)
            email = f"{local}@{rng.choice(FREE_MAIL_DOMAINS) if free_mail else account.domain}"
        distinct_id = f"{stable_int(book.seed, 'mp-user', account.key, idx):016x}"
        users.append((distinct_id, email))
        joined = at(account.contract_start) + timedelta(days=min(idx, 30) + 1, hours=rng.randint(8, 17))
        book.profiles.append(MixpanelProfile(distinct_id, email, account.key, f"{first} {last}", book.clamp(joined)))
    features = list(TIERS[account.plan_tier].features)
    rng.shuffle(features)
    in_use = tuple(features[:max(1, round(len(features) * b.feature_share))])
    book.plans.append(UsagePlan(account.key, account.key, tuple(users), account.contract_start, b, in_use,
                                surveys=surveys, trajectory=life.trajectory))


def _former_renewals(book: Book, life: PastLife, terms: int, reason: str) -> list[PastRenewal]:
    """New business, a renewal won at each earlier term end, then the last one lost with a loss reason."""
    account, rng = life.account, life.rng
    new_business = _new_business(book, account, rng)
    opps, out, prior = [new_business], [], new_business.amount
    for term in range(1, terms):
        end = account.contract_start + timedelta(days=365 * term)
        outcome = _renewal_outcome(_pressure(life.trajectory, end), rng)
        prior = _renewed_amount(prior, outcome, rng)
        opp = _opp(book, account, rng, "renewal", f"Renewal {end.year}", prior, "Closed Won",
                   end - timedelta(days=rng.randint(5, 40)), won=True)
        opps.append(opp)
        out.append(PastRenewal(opp.close_date, account.key, end, outcome,
                               pressure=round(_pressure(life.trajectory, end - timedelta(days=90)), 3)))
    close = account.renewal_date - timedelta(days=rng.randint(5, 40))
    lost = _opp(book, account, rng, "renewal", f"Renewal {account.renewal_date.year}", prior * rng.uniform(1.0, 1.05),
                "Closed Lost", close, created=at(close - timedelta(days=150), 10))
    lost.loss_reason = rng.choice(LOSS_REASONS[reason])
    opps.append(lost)
    book.opportunities.extend(opps)
    out.append(PastRenewal(close, account.key, account.renewal_date, "churned", loss_reason=lost.loss_reason))
    return out
