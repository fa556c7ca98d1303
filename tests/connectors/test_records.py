"""Canonical records: validation, freezing, JSON round trip and primary keys."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from healthsync.connectors.records import (
    RECORD_TYPES,
    AccountRecord,
    ActivityKind,
    ActivityRecord,
    ContactRecord,
    CrmTask,
    DailyUsageRecord,
    Direction,
    MeetingOutcome,
    OpportunityKind,
    OpportunityRecord,
    OrganizationRecord,
    SatisfactionRatingRecord,
    SatisfactionScore,
    SkippedRecord,
    TaskStatus,
    TicketMetricsRecord,
    TicketPriority,
    TicketRecord,
    TicketStatus,
    UsageKeyKind,
    UserRecord,
    ZendeskUserRecord,
    normalize_domain,
)
from healthsync.errors import SkippableRecordError

T0 = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)


def one_of_each() -> list:
    """A fully populated instance of every record type, so round trips cover every field kind."""
    return [
        AccountRecord(
            id="001A",
            name="Acme",
            domain="acme.com",
            owner_id="005X",
            arr=120000.0,
            acv=100000,
            renewal_date=date(2024, 9, 30),
            plan_tier="enterprise",
            seats_purchased=50,
            usage_capacity=1000.5,
            contract_start=date(2023, 10, 1),
            payment_status="current",
            nps=42.0,
            updated_at=T0,
            extra={"Region__c": "EMEA", "Products__c": ["a", "b"], "Score__c": 3, "Flag__c": True},
        ),
        ContactRecord(
            id="003A",
            account_id="001A",
            email="ana@acme.com",
            first_name="Ana",
            last_name="Lima",
            title="VP Ops",
            role="executive_sponsor",
            is_champion=True,
            left_company=True,
            left_company_at=T0 - timedelta(days=3),
            role_changed_at=T0 - timedelta(days=40),
            updated_at=T0,
        ),
        OpportunityRecord(
            id="006A",
            account_id="001A",
            name="Acme renewal 2024",
            kind="renewal",
            amount=100000.0,
            stage="Closed Won",
            is_closed=True,
            is_won=True,
            close_date=date(2024, 9, 1),
            updated_at=T0,
        ),
        ActivityRecord(
            id="00UA",
            account_id="001A",
            contact_id="003A",
            owner_id="005X",
            kind=ActivityKind.QBR,
            subject="Q2 QBR",
            occurred_at=T0 - timedelta(days=1),
            outcome="held",
            direction=Direction.OUTBOUND,
            updated_at=T0,
            deleted=True,
        ),
        UserRecord(id="005X", email="csm@vendor.io", name="Cara", active=True, title="CSM"),
        CrmTask(
            id="00TA",
            account_id="001A",
            owner_id="005X",
            subject="Review account",
            status="completed",
            due=date(2024, 5, 3),
            dedupe_key="001A:below_threshold:2024-W18",
            completed_at=T0,
        ),
        TicketRecord(
            id="42",
            organization_id="7",
            requester_id="9",
            subject="Export broken",
            description="We may move to CompetitorCo",
            priority="urgent",
            status=TicketStatus.OPEN,
            tags=("bug", "export"),
            satisfaction="bad",
            created_at=T0 - timedelta(hours=5),
            updated_at=T0,
            solved_at=None,
        ),
        OrganizationRecord(
            id="7", name="Acme", external_id="001A", domains=("acme.com", "acme.io"), updated_at=T0
        ),
        ZendeskUserRecord(
            id="9", email="ana@acme.com", name="Ana", organization_id="7", role="end-user", updated_at=T0
        ),
        SatisfactionRatingRecord(
            id="77", ticket_id="42", organization_id="7", requester_id="9", score="good", comment="thanks"
        ),
        TicketMetricsRecord(
            ticket_id="42",
            reopens=1,
            replies=3,
            first_reply_minutes=12,
            first_resolution_minutes=60,
            full_resolution_minutes=90,
            updated_at=T0,
        ),
        DailyUsageRecord(
            account_key="001A",
            key_kind="group_crm_id",
            day=date(2024, 5, 1),
            active_user_ids=frozenset({"u2", "u1"}),
            login_user_ids={"u1"},
            events=120,
            core_actions=30,
            sessions=7,
            features_used=frozenset({"reports", "alerts"}),
            value_events=2,
            nps_scores=[9, 10],
        ),
    ]


@pytest.mark.parametrize("record", one_of_each(), ids=lambda r: type(r).__name__)
def test_every_record_round_trips_through_real_json(record) -> None:
    text = json.dumps(record.to_json())
    again = type(record).from_json(json.loads(text))
    assert again == record
    assert again.to_json() == record.to_json()


@pytest.mark.parametrize("record", one_of_each(), ids=lambda r: type(r).__name__)
def test_records_are_frozen_and_slotted(record) -> None:
    # Python 3.11's frozen+slots dataclasses refuse unknown attributes with TypeError (bpo-45897)
    with pytest.raises((dataclasses.FrozenInstanceError, TypeError, AttributeError)):
        record.not_a_field = 1  # type: ignore[attr-defined]
    assert not hasattr(record, "__dict__")
    first = dataclasses.fields(record)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(record, first, "changed")


def test_every_record_type_is_registered_by_name() -> None:
    assert set(RECORD_TYPES) == {type(r).__name__ for r in one_of_each()}


def test_primary_keys() -> None:
    keys = {type(r).__name__: r.primary_key for r in one_of_each()}
    assert keys["AccountRecord"] == "001A"
    assert keys["TicketMetricsRecord"] == "42"
    assert keys["DailyUsageRecord"] == "group_crm_id:001A:2024-05-01"


def test_enum_strings_become_enums() -> None:
    records = {type(r).__name__: r for r in one_of_each()}
    assert records["OpportunityRecord"].kind is OpportunityKind.RENEWAL
    assert records["ActivityRecord"].outcome is MeetingOutcome.HELD
    assert records["TicketRecord"].priority is TicketPriority.URGENT
    assert records["TicketRecord"].satisfaction is SatisfactionScore.BAD
    assert records["CrmTask"].status is TaskStatus.COMPLETED
    assert records["DailyUsageRecord"].key_kind is UsageKeyKind.GROUP_CRM_ID


def test_collections_are_frozen() -> None:
    records = {type(r).__name__: r for r in one_of_each()}
    usage = records["DailyUsageRecord"]
    assert usage.login_user_ids == frozenset({"u1"}) and isinstance(usage.login_user_ids, frozenset)
    assert usage.nps_scores == (9, 10)
    extra = records["AccountRecord"].extra
    assert extra["Products__c"] == ("a", "b")
    with pytest.raises(TypeError):
        extra["Region__c"] = "US"  # type: ignore[index]


def test_json_is_deterministic_for_sets() -> None:
    a = DailyUsageRecord(
        account_key="k", key_kind="email_domain", day=date(2024, 1, 1), active_user_ids={"b", "a", "c"}
    )
    assert a.to_json()["active_user_ids"] == ["a", "b", "c"]


def test_datetimes_are_normalised_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    contact = ContactRecord(id="1", updated_at=datetime(2024, 5, 1, 14, 0, tzinfo=plus_two))
    assert contact.updated_at == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert contact.updated_at.utcoffset() == timedelta(0)
    assert contact.to_json()["updated_at"] == "2024-05-01T12:00:00+00:00"


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ContactRecord(id="1", updated_at=datetime(2024, 5, 1)), "naive datetime"),
        (lambda: ActivityRecord(id="1", kind="lunch", updated_at=T0), "'lunch' is not one of meeting, call"),
        (lambda: AccountRecord(id=1, updated_at=T0), "AccountRecord.id: expected text"),
        (lambda: AccountRecord(id="1", arr="12", updated_at=T0), "AccountRecord.arr: expected a number"),
        (lambda: AccountRecord(id="1", arr=float("nan"), updated_at=T0), "not a finite number"),
        (lambda: AccountRecord(id="1", arr=-5.0, updated_at=T0), "must not be negative"),
        (lambda: AccountRecord(id="1", seats_purchased=True, updated_at=T0), "expected an integer"),
        (lambda: AccountRecord(id="1", renewal_date=T0, updated_at=T0), "expected a date, got datetime"),
        (lambda: AccountRecord(id="1", updated_at=T0, extra={"x": {"nested": 1}}), "only JSON scalars"),
        (lambda: AccountRecord(id=None, updated_at=T0), "AccountRecord.id: is required"),
        (
            lambda: TicketRecord(id="1", status="open", tags="bug", created_at=T0, updated_at=T0),
            "expected a collection",
        ),
        (lambda: OpportunityRecord(id="1", is_won=True, updated_at=T0), "must also be closed"),
        (
            lambda: DailyUsageRecord(account_key="", key_kind="group_domain", day=date(2024, 1, 1)),
            "must not be empty",
        ),
        (
            lambda: DailyUsageRecord(
                account_key="a", key_kind="group_domain", day=date(2024, 1, 1), nps_scores=(11,)
            ),
            "outside 0–10",
        ),
        (lambda: TicketMetricsRecord(ticket_id="1", reopens=-1), "must not be negative"),
    ],
)
def test_invalid_values_are_skippable_with_a_message_naming_the_field(build, message) -> None:
    with pytest.raises(SkippableRecordError) as caught:
        build()
    assert message in str(caught.value)


def test_from_json_reports_missing_required_field_and_bad_dates() -> None:
    with pytest.raises(SkippableRecordError, match="updated_at"):
        ContactRecord.from_json({"id": "1"})
    with pytest.raises(SkippableRecordError, match=r"ContactRecord\.updated_at: cannot parse 'yesterday'"):
        ContactRecord.from_json({"id": "1", "updated_at": "yesterday"})
    with pytest.raises(SkippableRecordError, match="expected a JSON object"):
        ContactRecord.from_json(["1"])  # type: ignore[arg-type]


def test_from_json_ignores_unknown_keys_and_fills_defaults() -> None:
    contact = ContactRecord.from_json({"id": "1", "updated_at": "2024-05-01T00:00:00Z", "added_later": 5})
    assert contact == ContactRecord(id="1", updated_at=datetime(2024, 5, 1, tzinfo=UTC))
    assert contact.is_champion is False and contact.deleted is False


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://www.Acme.com/pricing?x=1", "acme.com"),
        ("acme.io", "acme.io"),
        ("  WWW.example.co.uk:8443 ", "example.co.uk"),
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_normalize_domain(raw, expected) -> None:
    assert normalize_domain(raw) == expected


def test_domains_are_normalised_and_deduplicated() -> None:
    org = OrganizationRecord(id="7", domains=("Acme.com", "https://acme.com/", "", "acme.io"))
    assert org.domains == ("acme.com", "acme.io")
    assert AccountRecord(id="1", domain="http://WWW.Acme.com", updated_at=T0).domain == "acme.com"


def test_records_with_extras_are_hashable_and_comparable() -> None:
    a = AccountRecord(id="1", updated_at=T0, extra={"k": 1})
    b = AccountRecord(id="1", updated_at=T0, extra={"k": 1})
    c = AccountRecord(id="1", updated_at=T0, extra={"k": 2})
    assert a == b and hash(a) == hash(b)
    assert a != c


def test_skipped_record_excerpt_is_bounded_and_round_trips() -> None:
    raw = {"Id": "001", "Description": "x" * 5000}
    skipped = SkippedRecord.from_raw(
        source="salesforce", stream="accounts", record_id="001", reason="bad date", raw=raw
    )
    assert len(skipped.raw_excerpt) <= 300
    assert skipped.raw_excerpt.startswith('{"Description":"xxx')
    assert skipped.raw_excerpt.endswith("…")
    assert SkippedRecord.from_json(json.loads(json.dumps(skipped.to_json()))) == skipped


def test_skipped_record_survives_unserialisable_raw() -> None:
    skipped = SkippedRecord.from_raw(
        source="zendesk", stream="tickets", record_id=None, reason="r", raw={1, 2}
    )
    assert skipped.raw_excerpt == '"{1, 2}"'
    assert skipped.record_id is None


@given(
    day=st.dates(),
    users=st.frozensets(st.text(min_size=1, max_size=8), max_size=5),
    events=st.integers(min_value=0, max_value=10**9),
    scores=st.lists(st.integers(min_value=0, max_value=10), max_size=4),
    key=st.text(min_size=1, max_size=20),
)
def test_daily_usage_round_trip_property(day, users, events, scores, key) -> None:
    record = DailyUsageRecord(
        account_key=key,
        key_kind=UsageKeyKind.GROUP_DOMAIN,
        day=day,
        active_user_ids=users,
        login_user_ids=users,
        events=events,
        nps_scores=tuple(scores),
    )
    assert DailyUsageRecord.from_json(json.loads(json.dumps(record.to_json()))) == record
    assert record.primary_key.endswith(":" + day.isoformat())
