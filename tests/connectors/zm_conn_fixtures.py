"""Shared fixtures for the Zendesk and Mixpanel connector tests: a small hand-built portfolio, sandbox servers
on a scaled clock, pacers scaled to match, a fast retry policy and a config file that points at the sandbox."""

from __future__ import annotations

import contextlib
import textwrap
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from healthsync.connectors.pacing import (
    EXPORT,
    INCREMENTAL_EXPORT,
    QUERY,
    Pacer,
    PacerConfig,
    RateLimit,
)
from healthsync.connectors.retry import retry_policy
from healthsync.sandbox.core import SandboxClock, SandboxServer
from healthsync.sandbox.credentials import DEMO
from healthsync.sandbox.mixpanel import MixpanelEmulator
from healthsync.sandbox.model import (
    Account,
    MixpanelProfile,
    Portfolio,
    SatisfactionRating,
    Ticket,
    ZendeskOrg,
    ZendeskUser,
)
from healthsync.sandbox.zendesk import ZendeskEmulator

AS_OF = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
TICKET_COUNT = 23
DELETED_TICKETS = frozenset({4, 17})
AGENT_IDS = (900, 901)
FIRST_EVENT_DAY = date(2024, 4, 1)
TIME_SCALE = 60.0  # one Zendesk minute lasts one real second

# key, name, domain, zendesk identity, mixpanel identity
ACCOUNT_SPECS = (
    ("A1", "Acme", "acme.test", "external_id", "group_crm_id"),
    ("A2", "Globex", "globex.test", "domain", "group_domain"),
    ("A3", "Initech", "initech.test", "none", "email_domain"),
    ("A4", "Umbrella", "umbrella.test", "external_id", "none"),
)
CORE_EVENTS = ("report_created", "dashboard_shared")
FEATURES = ("reports", "alerts", "dashboards")


def sf_id(n: int) -> str:
    return f"001000000000{n:03d}AAA"


def _account(n: int, key: str, name: str, domain: str, zd: str, mp: str) -> Account:  # noqa: PLR0913 (fixture factory mirroring the account's identity fields)
    return Account(
        key=key, sf_id=sf_id(n), hs_id=str(9000 + n), name=name, domain=domain, owner_key="U001",
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
    orgs.append(ZendeskOrg(id=105, account_key=None, name="Legacy Reseller", external_id="legacy-77",
                           domain_names=["www.Reseller.test"], created_at=created, updated_at=created))
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
        hours = 60 if tid in (5, 6) else (tid * 7) % TICKET_COUNT * 3  # 5 and 6 share a timestamp
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
                for a in accounts for k in range(3)]
    profiles.append(MixpanelProfile(distinct_id="u-stray-0", email="stray@nowhere.test", account_key=None,
                                    name="Stray", created_at=created))
    return profiles


def make_event_source(profiles: list[MixpanelProfile]):
    """Per profile and day: a login, one core action or feature use (rotating), a value event every third
    day for the first profile of each account, and an NPS answer on the 10th of the month. UTC."""

    def events_for_day(day: date):
        if not FIRST_EVENT_DAY <= day <= AS_OF.date():
            return
        midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
        for k, profile in enumerate(profiles):
            base = int((midnight + timedelta(hours=9, minutes=k)).timestamp())
            common = {"distinct_id": profile.distinct_id, "$email": profile.email,
                      "_account_key": profile.account_key}
            rotation = (day.toordinal() + k) % 3
            events = [("login", {})]
            if rotation == 0:
                events.append(("feature_used", {"feature": FEATURES[(day.day + k) % len(FEATURES)]}))
            else:
                events.append((CORE_EVENTS[rotation - 1], {}))
            if k % 3 == 0 and day.toordinal() % 3 == 0:
                events.append(("first_value_achieved", {}))
            if day.day == 10 and k % 3 == 1:
                events.append(("nps_survey_submitted", {"score": (k + day.month) % 11}))
            for offset, (name, extra) in enumerate(events):
                stamp = base + 60 * offset
                yield {"event": name, "properties": {
                    "time": stamp, "$insert_id": f"{profile.distinct_id}-{name}-{stamp}", **common, **extra}}

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


# ------------------------------------------------------------------------------------------ servers, pacers


@contextlib.contextmanager
def sandbox(emulator: type, *, time_scale: float = TIME_SCALE, start: datetime = AS_OF) -> Iterator[SandboxServer]:
    with SandboxServer([emulator], clock=SandboxClock(start=start), time_scale=time_scale) as server:
        server.emulator(emulator.name).load(make_portfolio(), crm="salesforce")
        yield server


def zendesk_server(**kw) -> contextlib.AbstractContextManager[SandboxServer]:
    return sandbox(ZendeskEmulator, **kw)


def mixpanel_server(**kw) -> contextlib.AbstractContextManager[SandboxServer]:
    return sandbox(MixpanelEmulator, **kw)


def scaled_zendesk_pacer(time_scale: float = TIME_SCALE, *, per_minute: int = 400, incremental: int = 10) -> Pacer:
    """The production limits on the sandbox's scaled clock (a minute lasts 60 / time_scale real seconds)."""
    minute = 60.0 / time_scale
    return Pacer("zendesk", "sandbox", PacerConfig(limits=(
        RateLimit("account", per_minute, minute),
        RateLimit("incremental_export", incremental, minute, scope=INCREMENTAL_EXPORT),
    )))


def scaled_mixpanel_pacer(time_scale: float = TIME_SCALE) -> Pacer:
    hour = 3600.0 / time_scale
    return Pacer("mixpanel", "sandbox", PacerConfig(limits=(
        RateLimit("export_hourly", 60, hour, scope=EXPORT),
        RateLimit("export_per_second", 3, 1.0 / time_scale, scope=EXPORT),
        RateLimit("query_hourly", 60, hour, scope=QUERY),
    )))


def fast_retry(max_attempts: int = 6):
    """The production policy with millisecond backoff (Retry-After hints are still honoured)."""
    return retry_policy(max_attempts=max_attempts, base=0.01, cap=0.05, on_retry=lambda event: None)


def zendesk_credentials(**overrides: str) -> dict[str, str]:
    return {"email": DEMO.zendesk.email, "token": DEMO.zendesk.token, **overrides}


# ------------------------------------------------------------------------------------------ config


def write_sandbox_config(tmp_path: Path, server: SandboxServer) -> Path:
    """A complete config whose sandbox section points Zendesk and Mixpanel at `server` (plain HTTP)."""
    text = f"""\
    crm:
      kind: hubspot
      hubspot:
        auth:
          mode: private_app
          access_token: ${{HS_TOKEN}}
    zendesk:
      subdomain: {DEMO.zendesk.subdomain}
      auth:
        mode: api_token
        email: {DEMO.zendesk.email}
        token: ${{ZD_TOKEN}}
    mixpanel:
      project_id: {DEMO.mixpanel.project_id}
      service_account:
        username: {DEMO.mixpanel.service_account_username}
        secret: ${{MP_SECRET}}
      login_event: login
      core_action_events: [{", ".join(CORE_EVENTS)}]
      feature_events: [feature_used]
      first_value_event: first_value_achieved
    store:
      data_dir: {tmp_path / "data"}
    sandbox:
      zendesk_url: {server.http_url}
      mixpanel_url: {server.http_url}
      ca_file: {server.ca_path}
    """
    path = tmp_path / "healthsync.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def sandbox_env(**overrides: str) -> dict[str, str]:
    return {
        "HS_TOKEN": "pat-unused",
        "ZD_TOKEN": DEMO.zendesk.token,
        "MP_SECRET": DEMO.mixpanel.service_account_secret,
        **overrides,
    }
