"""A tiny hand-built Portfolio for the Zendesk and Mixpanel emulator tests: one account per identity mode,
five organizations, 23 tickets (two deleted, ties on updated_at), a dozen ratings, 13 Mixpanel profiles and a
deterministic per-day event source."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from healthsync.sandbox.model import (
    Account,
    MixpanelProfile,
    Portfolio,
    SatisfactionRating,
    Ticket,
    ZendeskOrg,
    ZendeskUser,
)

AS_OF = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
FIRST_EVENT_DAY = date(2024, 2, 1)
DELETED_TICKETS = {4, 17}
TICKET_COUNT = 23
UNMATCHED_ORG_ID = 105
UNMATCHED_EXTERNAL_ID = "legacy-77"
AGENT_IDS = (900, 901)
PROFILES_PER_ACCOUNT = 3

# key, name, domain, zendesk identity, mixpanel identity
ACCOUNT_SPECS = (
    ("A1", "Acme", "acme.test", "external_id", "group_crm_id"),
    ("A2", "Globex", "globex.test", "domain", "group_domain"),
    ("A3", "Initech", "initech.test", "none", "email_domain"),
    ("A4", "Umbrella", "umbrella.test", "external_id", "none"),
)


def sf_id(n: int) -> str:
    return f"001000000000{n:03d}AAA"


def hs_id(n: int) -> str:
    return str(9000 + n)


def _account(n: int, key: str, name: str, domain: str, zd: str, mp: str) -> Account:  # noqa: PLR0913 (fixture factory mirroring the account's identity fields)
    return Account(
        key=key, sf_id=sf_id(n), hs_id=hs_id(n), name=name, domain=domain, owner_key="U001",
        segment="mid_market", acv=50_000.0, arr=50_000.0, plan_tier="growth", seats_purchased=10 * n,
        capacity_limit=1000, contract_start=date(2023, 6, 1), renewal_date=date(2024, 6, 1),
        payment_status="current", nps=8, industry="software", zendesk_identity=zd, mixpanel_identity=mp,
        created_at=AS_OF - timedelta(days=400), modified_at=AS_OF - timedelta(days=3),
    )


def _orgs(accounts: list[Account]) -> list[ZendeskOrg]:
    created = AS_OF - timedelta(days=300)
    orgs = [ZendeskOrg(id=100 + n, account_key=a.key, name=a.name, external_id=None,
                       domain_names=[a.domain] if a.zendesk_identity != "none" else [],
                       created_at=created, updated_at=created + timedelta(days=n))
            for n, a in enumerate(accounts, start=1)]
    orgs.append(ZendeskOrg(id=UNMATCHED_ORG_ID, account_key=None, name="Legacy Reseller",
                           external_id=UNMATCHED_EXTERNAL_ID, domain_names=["reseller.test"],
                           created_at=created, updated_at=created))
    return orgs


def _users(orgs: list[ZendeskOrg]) -> list[ZendeskUser]:
    created = AS_OF - timedelta(days=200)
    users = [ZendeskUser(id=uid, org_id=None, name=f"Agent {uid}", email=f"agent{uid}@support.test",
                         role="agent", created_at=created, updated_at=created) for uid in AGENT_IDS]
    for org in orgs:
        domain = org.domain_names[0] if org.domain_names else "example.test"
        users += [ZendeskUser(id=org.id * 10 + k, org_id=org.id, name=f"User {org.id}-{k}",
                              email=f"user{k}@{domain}", role="end-user", created_at=created,
                              updated_at=created) for k in range(2)]
    return users


def _tickets(orgs: list[ZendeskOrg]) -> list[Ticket]:
    base = AS_OF - timedelta(days=30)
    priorities = ("low", "normal", "high", "urgent")
    satisfaction = ("unoffered", "offered", "good", "bad", "good")
    tickets = []
    for tid in range(1, TICKET_COUNT + 1):
        org = orgs[tid % len(orgs)]
        # updated order differs from id order; tickets 5 and 6 share a timestamp (tie broken by id)
        hours = 60 if tid in (5, 6) else (tid * 7) % TICKET_COUNT * 3
        updated = base + timedelta(hours=hours)
        solved = tid % 3 == 0
        tickets.append(Ticket(
            id=tid, org_id=org.id, requester_id=org.id * 10, subject=f"Ticket {tid}",
            description=f"Problem number {tid}", priority=priorities[tid % 4],
            status="deleted" if tid in DELETED_TICKETS else ("solved" if solved else "open"),
            tags=["sandbox", f"t{tid}"], satisfaction=satisfaction[tid % 5],
            created_at=updated - timedelta(days=2), updated_at=updated,
            solved_at=updated if solved else None, reopens=tid % 2, replies=tid % 4,
            first_resolution_minutes=60 * tid if solved else None,
            full_resolution_minutes=90 * tid if solved else None,
        ))
    return tickets


def _ratings(tickets: list[Ticket]) -> list[SatisfactionRating]:
    rated = [t for t in tickets if t.satisfaction in ("good", "bad") and t.status != "deleted"]
    return [SatisfactionRating(id=500 + n, ticket_id=t.id, org_id=t.org_id, requester_id=t.requester_id,
                               score=t.satisfaction, comment="thanks" if n % 2 == 0 else "",
                               created_at=t.updated_at, updated_at=t.updated_at)
            for n, t in enumerate(rated)]


def _profiles(accounts: list[Account]) -> list[MixpanelProfile]:
    created = AS_OF - timedelta(days=100)
    profiles = [MixpanelProfile(distinct_id=f"u-{a.key}-{k}", email=f"user{k}@{a.domain}", account_key=a.key,
                                name=f"{a.name} user {k}", created_at=created)
                for a in accounts for k in range(PROFILES_PER_ACCOUNT)]
    profiles.append(MixpanelProfile(distinct_id="u-stray-0", email="stray@nowhere.test", account_key=None,
                                    name="Stray", created_at=created))
    return profiles


def make_event_source(profiles: list[MixpanelProfile]):
    """Two events per profile per day (login 09:00 + k min, feature_used 10:00 + k min), UTC."""

    def events_for_day(day: date):
        if not FIRST_EVENT_DAY <= day <= AS_OF.date():
            return
        midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
        for k, profile in enumerate(profiles):
            for name, hour in (("login", 9), ("feature_used", 10)):
                stamp = int((midnight + timedelta(hours=hour, minutes=k)).timestamp())
                yield {"event": name, "properties": {
                    "time": stamp, "distinct_id": profile.distinct_id, "$insert_id": f"{profile.distinct_id}-{name}-{stamp}",
                    "$email": profile.email, "_account_key": profile.account_key, "feature": "reports",
                }}

    return events_for_day


def make_portfolio() -> Portfolio:
    accounts = [_account(n, *spec) for n, spec in enumerate(ACCOUNT_SPECS, start=1)]
    orgs = _orgs(accounts)
    tickets = _tickets(orgs)
    profiles = _profiles(accounts)
    return Portfolio(
        seed=0, size=len(accounts), as_of=AS_OF, owners=[], accounts=accounts, contacts=[], opportunities=[],
        activities=[], zendesk_orgs=orgs, zendesk_users=_users(orgs), tickets=tickets,
        satisfaction_ratings=_ratings(tickets), mixpanel_profiles=profiles,
        event_source=make_event_source(profiles),
    )
