"""A small hand-built Portfolio for the Salesforce emulator tests (the generator is tested elsewhere)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from healthsync.sandbox.model import Account, Activity, Contact, Opportunity, Owner, Portfolio
from healthsync.sandbox.salesforce.ids import to18

AS_OF = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
BASE = datetime(2024, 5, 1, 0, 0, tzinfo=UTC)
ACTIVITY_KINDS = ("call", "email", "email", "meeting")


def sf_id(prefix: str, n: int) -> str:
    return to18(f"{prefix}Fx0{n:09d}")


def owners() -> list[Owner]:
    rows = [("csm", "Casey", "Morgan", True), ("csm", "Jamie", "Lee", True),
            ("cs_manager", "Robin", "Shaw", True), ("csm", "Gone", "Away", False)]
    return [Owner(key=f"U{i:03d}", sf_id=sf_id("005", i), hs_id=str(100 + i), first_name=first, last_name=last,
                  email=f"{first.lower()}@vendor.test", role=role, active=active)
            for i, (role, first, last, active) in enumerate(rows, start=1)]


def portfolio(n_accounts: int = 25, activities_per_account: int = 24) -> Portfolio:
    """`n_accounts` accounts; groups of five share one modification stamp (a bulk update) so cursors must
    page on (SystemModstamp, Id); account 3 and its children are deleted."""
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
            capacity_limit=1000 * i, contract_start=date(2023, 7, 1), renewal_date=date(2024, 7, 1) + timedelta(days=i),
            payment_status="current" if i % 7 else "overdue", nps=(i % 11) if i % 5 else None, industry="Technology",
            zendesk_identity="external_id", mixpanel_identity="group_crm_id",
            created_at=BASE - timedelta(days=300), modified_at=stamp, deleted=deleted))
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
            kind="renewal", amount=12000.0 * i, stage="Closed Won" if i % 4 == 0 else "Negotiation/Review",
            is_closed=i % 4 == 0, is_won=i % 4 == 0, close_date=date(2024, 7, 1), created_at=BASE,
            modified_at=stamp, deleted=deleted))
        for k in range(activities_per_account):
            n = i * 100 + k
            kind = ACTIVITY_KINDS[k % 4]
            activities.append(Activity(
                key=f"T{n:07d}", sf_id=sf_id("00T" if kind in ("call", "email") else "00U", n), hs_id=str(n),
                account_key=key, contact_key=f"C{i * 10 + k % 4:06d}", owner_key=people[i % 2].key, kind=kind,
                subject=f"{kind} {k}", occurred_at=BASE + timedelta(days=k % 28, hours=k % 5),
                outcome=("held", "no_show", "cancelled")[k % 3] if kind == "meeting" else None,
                direction="inbound" if k % 2 else "outbound", created_at=BASE, modified_at=stamp, deleted=deleted))
    return Portfolio(seed=7, size=n_accounts, as_of=AS_OF, owners=people, accounts=accounts, contacts=contacts,
                     opportunities=opps, activities=activities, zendesk_orgs=[], zendesk_users=[], tickets=[],
                     satisfaction_ratings=[], mixpanel_profiles=[])
