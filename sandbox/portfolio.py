"""The deterministic synthetic B2B SaaS book every emulator serves: `generate_portfolio(seed, size, as_of)`.

Everything derives from (seed, size, as_of) through keyed `random.Random` instances (never the global
generator, never the clock). The planted scenarios (see `sandbox.scenarios`) occupy the first positions of
every book, so the same keys carry the same scenario whatever the size. Mixpanel events are not stored:
`portfolio.event_source(day)` produces any day on demand.
"""

from __future__ import annotations

import gc
import math
import random
from datetime import UTC, date, datetime, timedelta

from healthsync.sandbox.behaviour import (
    SEGMENT_BLOCK,
    SEGMENTS,
    TIERS,
    Behaviour,
    book_behaviour,
    pick_archetype,
)
from healthsync.sandbox.book import Book, at
from healthsync.sandbox.events import EventSource, UsagePlan
from healthsync.sandbox.history import add_history
from healthsync.sandbox.model import Account, MixpanelProfile, Owner, Portfolio
from healthsync.sandbox.naming import (
    FREE_MAIL_DOMAINS,
    INDUSTRIES,
    VENDOR_DOMAIN,
    CompanyNamer,
    email_local,
    hs_id,
    keyed_rng,
    person,
    sf_id,
    stable_int,
)
from healthsync.sandbox.portfolio_crm import add_activities, add_contacts, add_opportunities
from healthsync.sandbox.portfolio_support import add_account_support, add_support_agents, add_unmatched_orgs
from healthsync.sandbox.scenarios import PLANTED, scenario_manifest, scenario_maps

__all__ = ["generate_portfolio", "scenario_manifest", "MIN_SIZE", "WELL_KNOWN_OWNERS"]

MIN_SIZE = len(PLANTED)
# Fixed people, whatever the seed, holding the role addresses the default playbook routes escalations to
# (config/presets/playbook-default.yaml `roles`), so the demo resolves every role to a CRM user.
WELL_KNOWN_OWNERS = (
    ("Maya", "Patel", f"cs-manager@{VENDOR_DOMAIN}", "cs_manager"),
    ("Daniel", "Okafor", f"cs-leadership@{VENDOR_DOMAIN}", "cs_leadership"),
    ("Priya", "Raman", f"product-engineering@{VENDOR_DOMAIN}", "product"),
    ("Alex", "Chen", f"cto@{VENDOR_DOMAIN}", "executive"),
)
# Identity patterns per block of 20 background accounts (planted accounts always match by CRM id).
_ZENDESK_BLOCK = ("external_id",) * 16 + ("domain",) * 3 + ("none",)
_MIXPANEL_BLOCK = ("group_crm_id",) * 15 + ("group_domain",) * 2 + ("email_domain",) * 2 + ("none",)
_ONBOARDING_SHARE = 0.03
_LAPSED_SHARE = 0.03


def generate_portfolio(seed: int, size: int, as_of: datetime, history_days: int = 0) -> Portfolio:
    """A book of `size` accounts as of `as_of` (timezone-aware; naive is taken as UTC). With `history_days`
    the book also holds that many days of past renewals and their former customers (`sandbox.history`)."""
    if size < MIN_SIZE:
        raise ValueError(f"size must be at least {MIN_SIZE} to hold every planted scenario (got {size})")
    as_of = as_of.replace(tzinfo=UTC) if as_of.tzinfo is None else as_of.astimezone(UTC)
    # Hundreds of thousands of small records would trigger full collections over the growing book again
    # and again; the generator creates no reference cycles, so the cyclic collector can rest meanwhile.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _generate(seed, size, as_of, history_days)
    finally:
        if was_enabled:
            gc.enable()


def _generate(seed: int, size: int, as_of: datetime, history_days: int) -> Portfolio:
    book = Book(seed=seed, as_of=as_of)
    csm_keys = _add_owners(book, size)
    add_support_agents(book, keyed_rng(seed, "agents"))
    namer = CompanyNamer(seed)
    for index in range(size):
        _add_account(book, index, namer, csm_keys)
    add_unmatched_orgs(book, max(2, size // 40), keyed_rng(seed, "unmatched-orgs"))
    _add_unmatched_mixpanel_users(book, max(3, size // 50), keyed_rng(seed, "unmatched-mixpanel"))
    history = add_history(book, history_days, namer, csm_keys) if history_days else None
    scenarios, controls = scenario_maps([a.key for a in book.accounts[:len(PLANTED)]])
    return Portfolio(
        seed=seed, size=size, as_of=as_of, owners=book.owners, accounts=book.accounts, contacts=book.contacts,
        opportunities=book.opportunities, activities=book.activities, zendesk_orgs=book.zendesk_orgs,
        zendesk_users=book.zendesk_users, tickets=book.tickets, satisfaction_ratings=book.ratings,
        mixpanel_profiles=book.profiles, scenarios=scenarios, controls=controls,
        event_source=EventSource(seed, book.plans, as_of), history=history,
    )

# ----------------------------------------------------------------------------------------------- owners


def _add_owners(book: Book, size: int) -> list[str]:
    """CSMs (about one per 80 accounts), CS managers, leadership, product, the CTO; returns the CSM keys."""
    rng = keyed_rng(book.seed, "owners")
    csm_count = max(4, min(150, size // 80 + 1))
    manager_count = max(1, csm_count // 8)
    taken: set[str] = set()
    people = [(first, last, email, role) for first, last, email, role in WELL_KNOWN_OWNERS]
    for local in (e.split("@")[0] for _, _, e, _ in WELL_KNOWN_OWNERS):
        taken.add(local)
    for _ in range(manager_count - 1):
        first, last = person(rng)
        people.append((first, last, f"{email_local(first, last, taken)}@{VENDOR_DOMAIN}", "cs_manager"))
    for _ in range(csm_count + 1):  # the last one left the company: an inactive user
        first, last = person(rng)
        people.append((first, last, f"{email_local(first, last, taken)}@{VENDOR_DOMAIN}", "csm"))
    csm_keys = []
    for n, (first, last, email, role) in enumerate(people, start=1):
        active = n != len(people)
        book.owners.append(Owner(f"U{n:03d}", sf_id("User", n), hs_id("owner", n), first, last, email, role, active))
        if role == "csm" and active:
            csm_keys.append(f"U{n:03d}")
    return csm_keys

# ----------------------------------------------------------------------------------------------- accounts


def _add_account(book: Book, index: int, namer: CompanyNamer, csm_keys: list[str]) -> None:
    rng = keyed_rng(book.seed, "account", index)
    name, domain = namer.next()
    if index < len(PLANTED):
        spec = PLANTED[index]
        segment, behaviour = spec.segment, spec.behaviour
        zendesk_identity, mixpanel_identity = "external_id", "group_crm_id"
    else:
        segment, zendesk_identity, mixpanel_identity = _background_slots(book.seed, index - len(PLANTED))
        behaviour = _background_behaviour(rng)
    account = _account(book, index, name, domain, segment, behaviour, rng, csm_keys,
                       zendesk_identity, mixpanel_identity)
    book.accounts.append(account)
    contacts = add_contacts(book, account, behaviour, rng)
    add_opportunities(book, account, behaviour, rng)
    add_activities(book, account, behaviour, contacts, rng)
    add_account_support(book, account, behaviour, contacts, rng)
    _add_usage(book, account, behaviour, contacts, rng)


def _background_slots(seed: int, position: int) -> tuple[str, str, str]:
    """Exact segment and identity mixes per block of 20, shuffled within the block."""
    block, slot = divmod(position, 20)
    picks = []
    for name, pattern in (("segments", SEGMENT_BLOCK), ("zendesk", _ZENDESK_BLOCK), ("mixpanel", _MIXPANEL_BLOCK)):
        order = list(pattern)
        keyed_rng(seed, name, block).shuffle(order)
        picks.append(order[slot])
    return picks[0], picks[1], picks[2]


def _background_behaviour(rng: random.Random) -> Behaviour:
    behaviour = book_behaviour(pick_archetype(rng), rng)
    roll = rng.random()
    if roll < _ONBOARDING_SHARE:
        reached = rng.random()
        behaviour = behaviour.with_(
            contract_age_days=rng.randint(0, 14), nps=None, nps_days_ago=None, champion_change=None,
            expansion_won=False, first_login_day=1 if reached < 0.9 else None,
            first_core_day=rng.randint(2, 4) if reached < 0.8 else None,
            first_value_day=rng.randint(4, 8) if reached < 0.7 else None, activity=0.6)
    elif roll < _ONBOARDING_SHARE + _LAPSED_SHARE:
        behaviour = behaviour.with_(renewal_in_days=-rng.randint(1, 45), renewal_signed=False)
    return behaviour


def _account(book: Book, index: int, name: str, domain: str, segment: str, b: Behaviour, rng: random.Random,  # noqa: PLR0913 (the attributes the caller drew for this account, in the book's fixed rng order)
             csm_keys: list[str], zendesk_identity: str, mixpanel_identity: str) -> Account:
    seg = SEGMENTS[segment]
    low, high = seg.acv_range
    acv = round(math.exp(rng.uniform(math.log(low), math.log(high))), -2)
    tier = TIERS[rng.choice(seg.tiers)]
    seats = max(1, round(acv / tier.price_per_seat))
    capacity = int(math.ceil(seats * tier.events_per_seat / 100.0) * 100)
    start, renewal = _contract_dates(book.today, b, rng)
    created = max(book.migration, at(start - timedelta(days=rng.randint(20, 120)), 10))
    created = book.clamp(created)
    n = index + 1
    return Account(
        key=f"A{n:06d}", sf_id=sf_id("Account", n), hs_id=hs_id("company", n), name=name, domain=domain,
        owner_key=csm_keys[stable_int(book.seed, "owner", index) % len(csm_keys)], segment=segment, acv=acv,
        arr=round(acv * rng.uniform(0.9, 1.0), -2), plan_tier=tier.name, seats_purchased=seats,
        capacity_limit=capacity, contract_start=start, renewal_date=renewal, payment_status=b.payment_status,
        nps=b.nps, industry=rng.choice(INDUSTRIES), zendesk_identity=zendesk_identity,
        mixpanel_identity=mixpanel_identity, created_at=created, modified_at=book.stamp(rng, created),
    )


def _contract_dates(today: date, b: Behaviour, rng: random.Random) -> tuple[date, date]:
    """Original contract start (drives onboarding) and the current term's renewal date."""
    if b.contract_age_days is not None:
        start = today - timedelta(days=b.contract_age_days)
        return start, start + timedelta(days=365)
    days = b.renewal_in_days if b.renewal_in_days is not None else rng.randint(1, 395)
    renewal = today + timedelta(days=days)
    start = renewal - timedelta(days=365)
    while start > today - timedelta(days=60):
        start -= timedelta(days=365)
    return start - timedelta(days=365 * rng.choice((0, 0, 1, 1, 2, 3))), renewal

# ----------------------------------------------------------------------------------------------- usage


def _add_usage(book: Book, account: Account, b: Behaviour, contacts: list, rng: random.Random) -> None:
    """The account's product users (Mixpanel profiles) and its lazy event plan."""
    pool = b.onboarding_users if b.onboarding_users is not None else max(1, round(account.seats_purchased * b.adoption))
    free_mail = account.mixpanel_identity == "none"
    taken: set[str] = set()
    users = []
    known = [c for c in contacts if c.left_company_at is None and not c.deleted]
    for idx in range(pool):
        if idx < len(known) and not free_mail:
            first, last, email = known[idx].first_name, known[idx].last_name, known[idx].email
            taken.add(email.split("@")[0])
        else:
            first, last = person(rng)
            local = email_local(first, last, taken)
            email = f"{local}@{rng.choice(FREE_MAIL_DOMAINS) if free_mail else account.domain}"
        distinct_id = f"{stable_int(book.seed, 'mp-user', account.key, idx):016x}"
        users.append((distinct_id, email))
        if b.contract_age_days is None or b.first_login_day is not None:
            joined = at(account.contract_start) + timedelta(days=min(idx, 30) + (b.first_login_day or 0),
                                                             hours=rng.randint(8, 17))
            book.profiles.append(MixpanelProfile(distinct_id, email, account.key, f"{first} {last}",
                                                 book.clamp(joined)))
    features = list(TIERS[account.plan_tier].features)
    rng.shuffle(features)
    in_use = tuple(features[:max(1, round(len(features) * b.feature_share))])
    book.plans.append(UsagePlan(account.key, account.key, tuple(users), account.contract_start, b, in_use,
                                onboarding=b.contract_age_days is not None, surveys=_surveys(book.today, b)))


def _surveys(today: date, b: Behaviour) -> tuple[tuple[date, int], ...]:
    surveys = []
    if b.earlier_nps is not None:
        score, days_ago = b.earlier_nps
        surveys.append((today - timedelta(days=days_ago), score))
    if b.nps is not None and b.nps_days_ago is not None:
        surveys.append((today - timedelta(days=b.nps_days_ago), b.nps))
    return tuple(surveys)


def _add_unmatched_mixpanel_users(book: Book, groups: int, rng: random.Random) -> None:
    """Product users on free-mail addresses with no company key: events nobody can attribute."""
    behaviour = Behaviour("healthy", activity=0.25, weekly_growth=0.0)
    start = book.today - timedelta(days=400)
    for group in range(groups):
        users = []
        for idx in range(rng.randint(1, 3)):
            first, last = person(rng)
            email = f"{first}.{last}{rng.randint(1, 99)}@{rng.choice(FREE_MAIL_DOMAINS)}".lower()
            distinct_id = f"{stable_int(book.seed, 'mp-free', group, idx):016x}"
            users.append((distinct_id, email))
            book.profiles.append(MixpanelProfile(distinct_id, email, None, f"{first} {last}",
                                                 book.ago(rng.uniform(30, 300))))
        book.plans.append(UsagePlan(f"free-mail-{group}", None, tuple(users), start, behaviour, ("dashboards", "reports")))
