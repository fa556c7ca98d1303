"""A small hand-built Portfolio for the HubSpot emulator tests (independent of the generator)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from healthsync.sandbox.model import Account, Activity, Contact, Opportunity, Owner, Portfolio

AS_OF = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
OWNERS = [
    Owner("U001", "005000000000001AAA", "101", "Casey", "Morgan", "casey@vendor.test", "csm"),
    Owner("U002", "005000000000002AAA", "102", "Robin", "Lee", "robin@vendor.test", "cs_manager"),
    Owner("U003", "005000000000003AAA", "103", "Sam", "Gone", "sam@vendor.test", "csm", active=False),
]
_STAGES = ["Prospecting", "Negotiation/Review", "Closed Won", "Closed Lost"]


def company_id(index: int) -> str:
    return str(1000 + index)


def _account(i: int) -> Account:
    modified = AS_OF - timedelta(days=i)
    return Account(
        key=f"A{i:06d}", sf_id=f"001{i:015d}", hs_id=company_id(i), name=f"Acme {i:02d}", domain=f"acme{i}.test",
        owner_key=OWNERS[i % 2].key, segment="mid_market", acv=20_000 + 1_000 * i, arr=20_000 + 1_000 * i,
        plan_tier=("starter", "growth", "business", "enterprise")[i % 4], seats_purchased=10 + i,
        capacity_limit=1_000 * (i + 1), contract_start=date(2023, 1, 1) + timedelta(days=i),
        renewal_date=date(2024, 7, 1) + timedelta(days=i), payment_status="current", nps=(i % 11) if i % 3 else None,
        industry="Software", zendesk_identity="domain", mixpanel_identity="group_crm_id",
        created_at=AS_OF - timedelta(days=400), modified_at=modified,
    )


def _contact(i: int, account: Account) -> Contact:
    return Contact(
        key=f"C{i:06d}", sf_id=f"003{i:015d}", hs_id=str(5000 + i), account_key=account.key, first_name="Pat",
        last_name=f"Doe{i}", email=f"pat{i}@{account.domain}", title="VP Ops", role="champion" if i % 2 else "user",
        is_champion=bool(i % 2), left_company_at=AS_OF - timedelta(days=3) if i == 1 else None,
        role_changed_at=None, created_at=AS_OF - timedelta(days=300), modified_at=AS_OF - timedelta(days=i),
    )


def _deal(i: int, account: Account) -> Opportunity:
    stage = _STAGES[i % 4]
    return Opportunity(
        key=f"O{i:06d}", sf_id=f"006{i:015d}", hs_id=str(8000 + i), account_key=account.key, name=f"Renewal {i}",
        kind="renewal" if i % 2 else "expansion", amount=15_000.5 + i, stage=stage, is_closed=stage.startswith("Closed"),
        is_won=stage == "Closed Won", close_date=date(2024, 7, 1), created_at=AS_OF - timedelta(days=60),
        modified_at=AS_OF - timedelta(days=2),
    )


def _activity(i: int, account: Account, contact: Contact) -> Activity:
    kind = ("meeting", "qbr", "call", "email")[i % 4]
    return Activity(
        key=f"E{i:06d}", sf_id=f"00U{i:015d}", hs_id=str(9000 + i), account_key=account.key, contact_key=contact.key,
        owner_key=account.owner_key, kind=kind, subject=f"{kind} {i}", occurred_at=AS_OF - timedelta(days=i),
        outcome=("held", "no_show", None, None)[i % 4], direction="inbound" if i % 2 else "outbound",
        created_at=AS_OF - timedelta(days=i), modified_at=AS_OF - timedelta(days=i),
    )


def small_portfolio(accounts: int = 25) -> Portfolio:
    """`accounts` companies (the last one deleted), one contact, deal and activity each."""
    book = [_account(i) for i in range(accounts)]
    book[-1].deleted = True
    contacts = [_contact(i, a) for i, a in enumerate(book)]
    return Portfolio(
        seed=7, size=accounts, as_of=AS_OF, owners=list(OWNERS), accounts=book, contacts=contacts,
        opportunities=[_deal(i, a) for i, a in enumerate(book)],
        activities=[_activity(i, a, c) for i, (a, c) in enumerate(zip(book, contacts, strict=True))],
        zendesk_orgs=[], zendesk_users=[], tickets=[], satisfaction_ratings=[], mixpanel_profiles=[],
    )
