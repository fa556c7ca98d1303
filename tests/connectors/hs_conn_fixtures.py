"""Shared fixtures for the HubSpot connector tests: a small hand-built portfolio, the HubSpot emulator on a
scaled clock, clients/sources/writers pointed at it, a fast retry policy and a dict standing in for the store."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import tenacity
from pydantic import SecretStr

from healthsync.config.settings import (
    DEFAULT_FIELD_MAPS,
    FieldMap,
    HubSpotOAuth,
    HubSpotPrivateAppAuth,
    Settings,
)
from healthsync.connectors.base import Page
from healthsync.connectors.cursor import StreamState
from healthsync.connectors.hubspot import HubSpotClient, HubSpotSource, HubSpotWriter
from healthsync.connectors.pacing import Pacer, hubspot_pacing
from healthsync.connectors.retry import retry_policy
from healthsync.sandbox.core import SandboxClock, SandboxServer
from healthsync.sandbox.credentials import DEMO
from healthsync.sandbox.hubspot import HubSpotEmulator
from healthsync.sandbox.model import Account, Activity, Contact, Opportunity, Owner, Portfolio

AS_OF = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
CLOCK_START = AS_OF + timedelta(minutes=30)  # the emulator's "now" when a test starts
TIME_SCALE = 50.0
ACCOUNTS = 12  # the last one is deleted (archived)
OWNERS = [
    Owner("U001", "005000000000001AAA", "101", "Casey", "Morgan", "casey@vendor.test", "csm"),
    Owner("U002", "005000000000002AAA", "102", "Robin", "Lee", "robin@vendor.test", "cs_manager"),
    Owner("U003", "005000000000003AAA", "103", "Chris", "Tower", "cto@cloudscale.io", "executive"),
    Owner("U004", "005000000000004AAA", "104", "Sam", "Gone", "sam@vendor.test", "csm", active=False),
]
ACTIVITY_KINDS = ("meeting", "qbr", "call", "email")
STAGES = (("Negotiation/Review", False, False), ("Closed Won", True, True), ("Closed Lost", True, False))
DEAL_KINDS = ("renewal", "expansion", "new_business")
FIELD_MAP = FieldMap(**DEFAULT_FIELD_MAPS["hubspot"])


def company_id(i: int) -> str:
    return str(1000 + i)


def contact_id(i: int, n: int) -> str:
    return str(5000 + 2 * i + n)


def deal_id(i: int) -> str:
    return str(8000 + i)


def activity_id(i: int, n: int) -> str:
    return str(9000 + 4 * i + n)


def _account(i: int) -> Account:
    return Account(
        key=f"A{i:03d}", sf_id=f"001{i:015d}", hs_id=company_id(i), name=f"Acme {i:02d}", domain=f"acme{i}.test",
        owner_key=OWNERS[i % 2].key, segment="mid_market", acv=20_000 + 1_000 * i, arr=24_000 + 1_000 * i,
        plan_tier=("starter", "growth", "business", "enterprise")[i % 4], seats_purchased=10 + i,
        capacity_limit=1_000 * (i + 1), contract_start=date(2023, 1, 1) + timedelta(days=i),
        renewal_date=date(2024, 7, 1) + timedelta(days=i), payment_status=("current", "overdue")[i % 2],
        nps=(i % 11) if i % 3 else None, industry="Software", zendesk_identity="domain",
        mixpanel_identity="group_crm_id", created_at=AS_OF - timedelta(days=400),
        # pairs of companies share one modstamp: the same-timestamp case from the first read on
        modified_at=AS_OF - timedelta(days=i // 2 + 1),
    )


def _contacts(i: int, account: Account) -> list[Contact]:
    return [Contact(
        key=f"C{i:03d}{n}", sf_id=f"003{i:014d}{n}", hs_id=contact_id(i, n), account_key=account.key,
        first_name=("Pat", "Alex")[n], last_name=f"Doe{i}", email=f"{('pat', 'alex')[n]}{i}@{account.domain}",
        title="VP Ops", role=("champion", "user")[n], is_champion=n == 0,
        left_company_at=AS_OF - timedelta(days=3) if (i, n) == (1, 0) else None,
        role_changed_at=AS_OF - timedelta(days=5) if (i, n) == (2, 1) else None,
        created_at=AS_OF - timedelta(days=300), modified_at=AS_OF - timedelta(hours=3 * i + n + 1),
    ) for n in (0, 1)]


def _deal(i: int, account: Account) -> Opportunity:
    stage, closed, won = STAGES[i % 3]
    return Opportunity(
        key=f"O{i:03d}", sf_id=f"006{i:015d}", hs_id=deal_id(i), account_key=account.key, name=f"Deal {i}",
        kind=DEAL_KINDS[i % 3], amount=15_000.5 + i, stage=stage, is_closed=closed, is_won=won,
        close_date=date(2024, 7, 1), created_at=AS_OF - timedelta(days=60), modified_at=AS_OF - timedelta(days=2),
        loss_reason="Budget cut" if closed and not won else None,
    )


def _activities(i: int, account: Account, contacts: list[Contact]) -> list[Activity]:
    return [Activity(
        key=f"E{i:03d}{n}", sf_id=f"00U{i:014d}{n}", hs_id=activity_id(i, n), account_key=account.key,
        contact_key=contacts[n % 2].key, owner_key=account.owner_key, kind=kind, subject=f"{kind} {i}",
        occurred_at=AS_OF - timedelta(days=i + 1), outcome=("held", "no_show", None, None)[n],
        direction=("inbound", "outbound")[(i + n) % 2], created_at=AS_OF - timedelta(days=i + 1),
        modified_at=AS_OF - timedelta(hours=i + n + 1),
    ) for n, kind in enumerate(ACTIVITY_KINDS)]


def small_portfolio(accounts: int = ACCOUNTS) -> Portfolio:
    book = [_account(i) for i in range(accounts)]
    book[-1].deleted = True
    contacts = [c for i, a in enumerate(book) for c in _contacts(i, a)]
    activities = [e for i, a in enumerate(book) for e in _activities(i, a, contacts[2 * i:2 * i + 2])]
    return Portfolio(
        seed=11, size=accounts, as_of=AS_OF, owners=list(OWNERS), accounts=book, contacts=contacts,
        opportunities=[_deal(i, a) for i, a in enumerate(book)], activities=activities,
        zendesk_orgs=[], zendesk_users=[], tickets=[], satisfaction_ratings=[], mixpanel_profiles=[],
    )


@contextlib.contextmanager
def hubspot_sandbox(portfolio: Portfolio | None = None, *, time_scale: float = TIME_SCALE) -> Iterator[SandboxServer]:
    """The emulator on 127.0.0.1 with the portfolio loaded; its search limit is lifted (tests pace themselves)."""
    server = SandboxServer([HubSpotEmulator], clock=SandboxClock(CLOCK_START), time_scale=time_scale).start()
    try:
        emu = server.emulator("hubspot")
        emu.load(portfolio or small_portfolio())
        emu.search_limit_per_second = 1000
        yield server
    finally:
        server.stop()


def fast_retry(max_attempts: int = 6) -> tenacity.Retrying:
    return retry_policy(max_attempts=max_attempts, max_total_seconds=30, base=0.01, cap=0.05,
                        on_retry=lambda event: None)


def private_app_auth(token: str = DEMO.hubspot.access_token) -> HubSpotPrivateAppAuth:
    return HubSpotPrivateAppAuth(mode="private_app", access_token=SecretStr(token))


def oauth_auth(refresh_token: str = DEMO.hubspot.refresh_token) -> HubSpotOAuth:
    creds = DEMO.hubspot
    return HubSpotOAuth(mode="oauth", client_id=creds.client_id, client_secret=SecretStr(creds.client_secret),
                        refresh_token=SecretStr(refresh_token))


def make_client(server: SandboxServer, *, auth: Any = None, tls: bool = False, search_per_second: int = 1000,
                retry: tenacity.Retrying | None = None) -> HubSpotClient:
    pacer = Pacer("hubspot", "test-portal", hubspot_pacing(search_per_second=search_per_second))
    host = server.https_url if tls else server.http_url
    return HubSpotClient(auth or private_app_auth(), pacer, host=host, ca_file=str(server.ca_path),
                         retry=retry or fast_retry())


def make_source(server: SandboxServer, *, client: HubSpotClient | None = None, **options: Any) -> HubSpotSource:
    return HubSpotSource(client or make_client(server), FIELD_MAP, **options)


def make_writer(server: SandboxServer, *, client: HubSpotClient | None = None) -> HubSpotWriter:
    return HubSpotWriter(client or make_client(server), FIELD_MAP, sleep=lambda seconds: None)


def settings_for(server: SandboxServer, auth: dict[str, Any] | None = None) -> Settings:
    auth = auth or {"mode": "private_app", "access_token": DEMO.hubspot.access_token}
    return Settings.model_validate({
        "crm": {"kind": "hubspot", "hubspot": {"auth": auth}},
        "sandbox": {"hubspot_url": server.https_url, "ca_file": str(server.ca_path)},
    })


@dataclass
class FakeStore:
    """What the sync layer does with pages: upsert records, drop tombstones, keep skips, commit the state."""

    records: dict[tuple[str, str], Any] = field(default_factory=dict)
    states: dict[str, StreamState | None] = field(default_factory=dict)
    skipped: list[Any] = field(default_factory=list)
    emitted: int = 0

    def apply(self, stream: str, page: Page) -> None:
        for record in page.records:
            self.emitted += 1
            key = (stream, record.primary_key)
            if getattr(record, "deleted", False):
                self.records.pop(key, None)
            else:
                self.records[key] = record
        self.skipped.extend(page.skipped)
        if page.state is not None:  # stored as JSON, as the real store does
            self.states[stream] = StreamState.from_json(json.loads(json.dumps(page.state.to_json())))

    def pull(self, source: HubSpotSource, stream: str, as_of: datetime, *, full: bool = False,
             stop_after: int | None = None) -> int:
        """Read a stream into the store; `stop_after` pages simulates a crash (the rest is never applied)."""
        pages = 0
        for page in source.read(stream, self.states.get(stream), as_of=as_of, full=full):
            self.apply(stream, page)
            pages += 1
            if stop_after is not None and pages >= stop_after:
                break
        return pages

    def of(self, stream: str) -> dict[str, Any]:
        return {rid: record for (name, rid), record in self.records.items() if name == stream}


def calls_delta(server: SandboxServer, before: dict[str, int]) -> dict[str, int]:
    after = server.calls.snapshot()
    return {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}
