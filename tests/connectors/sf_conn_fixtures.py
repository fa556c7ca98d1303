"""Shared pieces of the Salesforce connector tests: the emulator, Settings pointing at it, a portfolio with
shared modification stamps and deletions, and a dict "store" that applies pages the way the sync layer will."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from healthsync.config.settings import Settings
from healthsync.connectors.cursor import StreamState
from healthsync.connectors.pacing import PacerRegistry
from healthsync.connectors.salesforce import SalesforceConnection, SalesforceSource, SalesforceWriter
from healthsync.sandbox.core import SandboxClock, SandboxServer
from healthsync.sandbox.credentials import DEMO
from healthsync.sandbox.model import Account, Activity, Contact, Opportunity, Owner, Portfolio
from healthsync.sandbox.salesforce import SalesforceEmulator
from healthsync.sandbox.salesforce.ids import to18

CREDS = DEMO.salesforce
AS_OF = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
BASE = datetime(2024, 5, 1, 0, 0, tzinfo=UTC)
ACTIVITY_KINDS = ("call", "email", "qbr", "meeting")


def sf_id(prefix: str, n: int) -> str:
    return to18(f"{prefix}Cx0{n:09d}")


def owners() -> list[Owner]:
    rows = [("csm", "Casey", "Morgan", True), ("csm", "Jamie", "Lee", True),
            ("executive", "Chief", "Tech", True), ("csm", "Gone", "Away", False)]
    emails = ["casey@vendor.test", "jamie@vendor.test", "cto@cloudscale.io", "gone@vendor.test"]
    return [Owner(key=f"U{i:03d}", sf_id=sf_id("005", i), hs_id=str(100 + i), first_name=first, last_name=last,
                  email=emails[i - 1], role=role, active=active)
            for i, (role, first, last, active) in enumerate(rows, start=1)]


def portfolio(n_accounts: int = 25, activities_per_account: int = 24) -> Portfolio:
    """Groups of five accounts (and their children) share one modification stamp, a minute apart, so the
    cursor must page on (SystemModstamp, Id); account 3 and everything under it is deleted."""
    people = owners()
    accounts, contacts, opps, activities = [], [], [], []
    for i in range(1, n_accounts + 1):
        stamp = BASE + timedelta(minutes=(i - 1) // 5)
        deleted = i == 3
        key = f"A{i:06d}"
        accounts.append(Account(
            key=key, sf_id=sf_id("001", i), hs_id=str(5000 + i), name=f"Account {i:02d}", domain=f"acct{i}.test",
            owner_key=people[i % 2].key, segment="smb", acv=10000.0 * i, arr=12000.0 * i,
            plan_tier=("starter", "growth", "business", "enterprise")[i % 4], seats_purchased=10 * i,
            capacity_limit=1000 * i, contract_start=date(2023, 7, 1),
            renewal_date=date(2024, 7, 1) + timedelta(days=i), payment_status="current" if i % 7 else "overdue",
            nps=(i % 11) if i % 5 else None, industry="Technology", zendesk_identity="external_id",
            mixpanel_identity="group_crm_id", created_at=BASE - timedelta(days=300), modified_at=stamp,
            deleted=deleted))
        for j in range(4):
            n = i * 10 + j
            contacts.append(Contact(
                key=f"C{n:06d}", sf_id=sf_id("003", n), hs_id=str(n), account_key=key, first_name=f"First{n}",
                last_name=f"Last{n}", email=f"person{n}@acct{i}.test", title="VP" if j == 0 else "Analyst",
                role=("champion", "exec_sponsor", "admin", "user")[j], is_champion=j == 0,
                left_company_at=BASE if (j == 0 and i % 6 == 0) else None, role_changed_at=None,
                created_at=BASE - timedelta(days=200), modified_at=stamp, deleted=deleted))
        opps.append(Opportunity(
            key=f"O{i:06d}", sf_id=sf_id("006", i), hs_id=str(i), account_key=key, name=f"Account {i:02d} renewal",
            kind=("renewal", "expansion")[i % 2], amount=12000.0 * i,
            stage="Closed Won" if i % 4 == 0 else "Negotiation/Review", is_closed=i % 4 == 0, is_won=i % 4 == 0,
            close_date=date(2024, 7, 1), created_at=BASE, modified_at=stamp, deleted=deleted))
        for k in range(activities_per_account):
            n = i * 100 + k
            kind = ACTIVITY_KINDS[k % 4]
            activities.append(Activity(
                key=f"T{n:07d}", sf_id=sf_id("00T" if kind in ("call", "email") else "00U", n), hs_id=str(n),
                account_key=key, contact_key=f"C{i * 10 + k % 4:06d}", owner_key=people[i % 2].key, kind=kind,
                subject=f"{kind} {k}", occurred_at=BASE + timedelta(days=k % 28, hours=k % 5),
                outcome=("held", "no_show", "cancelled")[k % 3] if kind in ("meeting", "qbr") else None,
                direction="inbound" if k % 2 else "outbound", created_at=BASE, modified_at=stamp, deleted=deleted))
    return Portfolio(seed=7, size=n_accounts, as_of=AS_OF, owners=people, accounts=accounts, contacts=contacts,
                     opportunities=opps, activities=activities, zendesk_orgs=[], zendesk_users=[], tickets=[],
                     satisfaction_ratings=[], mixpanel_profiles=[])


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    with SandboxServer([SalesforceEmulator], clock=SandboxClock(AS_OF)) as srv:
        yield srv


@pytest.fixture()
def emu(server: SandboxServer) -> Iterator[SalesforceEmulator]:
    emulator = server.emulator("salesforce")
    emulator.load(portfolio())
    emulator.reset_api_usage()
    emulator.daily_limit = 15000
    emulator.allow_metadata = True
    emulator.session_seconds = CREDS.session_seconds
    server.faults.clear()
    server.calls.reset()
    yield emulator
    server.faults.clear()


def settings_for(server: SandboxServer, *, mode: str = "password", daily_share: float = 0.5,
                 field_map: dict[str, Any] | None = None, **auth: Any) -> Settings:
    if mode == "password":
        base = {"mode": "password", "username": CREDS.username, "password": CREDS.password,
                "security_token": CREDS.security_token}
    elif mode == "client_credentials":
        base = {"mode": "client_credentials", "consumer_key": CREDS.consumer_key,
                "consumer_secret": CREDS.consumer_secret, "domain": "healthsync-demo.my"}
    else:
        emulator = server.emulator("salesforce")
        base = {"mode": "jwt", "consumer_key": CREDS.consumer_key, "username": CREDS.username,
                "private_key_file": str(emulator.jwt_private_key_path)}
    crm: dict[str, Any] = {"kind": "salesforce", "salesforce": {"auth": {**base, **auth}}}
    if field_map:
        crm["field_map"] = field_map
    return Settings.model_validate({
        "crm": crm,
        "limits": {"salesforce": {"daily_share": daily_share}},
        "sandbox": {"salesforce_url": server.https_url, "ca_file": str(server.ca_path)},
    })


@dataclass
class Harness:
    """A source and a writer sharing one connection, with retries sleeping into `sleeps` instead of waiting."""

    source: SalesforceSource
    writer: SalesforceWriter
    conn: SalesforceConnection
    sleeps: list[float] = field(default_factory=list)


class FakeTime:
    """A monotonic clock that only moves when someone sleeps: pacer holds and retry waits cost no real time."""

    def __init__(self, sleeps: list[float]):
        self.now, self.sleeps = 0.0, sleeps

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def harness(server: SandboxServer, settings: Settings | None = None, **options: Any) -> Harness:
    sleeps: list[float] = []
    fake = FakeTime(sleeps)
    settings = settings or settings_for(server)
    pacers = PacerRegistry(clock=fake.clock, sleep=fake.sleep)
    conn = SalesforceConnection.from_settings(settings, pacers, sleep=fake.sleep)
    options.setdefault("bulk_wait_seconds", 0)
    source = SalesforceSource.from_settings(settings, pacers, connection=conn, **options)
    writer = SalesforceWriter.from_settings(settings, pacers, connection=conn)
    return Harness(source, writer, conn, sleeps)


@dataclass
class Store:
    """What the sync layer keeps per stream: live records by id, and the committed state."""

    records: dict[str, Any] = field(default_factory=dict)
    tombstones: set[str] = field(default_factory=set)
    skipped: list[Any] = field(default_factory=list)
    state: StreamState | None = None
    pages: int = 0
    emitted: list[Any] = field(default_factory=list)

    def apply(self, page: Any) -> None:
        for record in page.records:
            self.emitted.append(record)
            if getattr(record, "deleted", False):
                self.records.pop(record.primary_key, None)
                self.tombstones.add(record.primary_key)
            else:
                self.records[record.primary_key] = record
        for deleted in page.deleted_ids:
            self.records.pop(deleted, None)
            self.tombstones.add(deleted)
        self.skipped.extend(page.skipped)
        self.state = page.state
        self.pages += 1


def pull(source: SalesforceSource, stream: str, store: Store, as_of: datetime, *, full: bool = False,  # noqa: PLR0913 (test helper: pull_source's options plus keyword-only test hooks)
         stop_after: int | None = None, during: Any = None) -> Store:
    """Read one stream into `store`; `stop_after` pages simulates a crash, `during(n)` runs after page n."""
    store.emitted = []
    for number, page in enumerate(source.read(stream, store.state, as_of=as_of, full=full), start=1):
        store.apply(page)
        if during is not None:
            during(number)
        if stop_after is not None and number >= stop_after:
            break
    return store


def cycle_start(emu: SalesforceEmulator) -> datetime:
    """A cycle starting a second from now. The emulator stamps whole seconds (and drops the milliseconds of
    SOQL literals): letting a second pass makes everything written so far visible to this cycle, and stamps
    every later edit after it — as milliseconds do in a real org."""
    emu.clock.advance(timedelta(seconds=1))
    return emu.clock.now()


def api_calls(server: SandboxServer, *endpoints: str) -> int:
    snapshot = server.calls.snapshot()
    return sum(n for key, n in snapshot.items() if key.split(" ", 1)[1] in endpoints)
