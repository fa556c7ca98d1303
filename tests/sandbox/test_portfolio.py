"""The synthetic book: deterministic, realistic in its mixes, lazy in its events, and holding a planted
scenario plus a control for every playbook rule."""

from __future__ import annotations

import dataclasses
import importlib.util
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from healthsync.sandbox.behaviour import CORE_ACTION_EVENTS, PLAN_FEATURES
from healthsync.sandbox.naming import COMPETITORS, FREE_MAIL_DOMAINS, sf_checksum
from healthsync.sandbox.portfolio import MIN_SIZE, generate_portfolio
from healthsync.sandbox.scenarios import CLEAN_KEY, PLANTED, RULE_IDS, scenario_manifest

AS_OF = datetime(2025, 6, 4, 10, tzinfo=UTC)  # a Wednesday
CANONICAL_RULES = (
    "below_threshold outreach_24h sharp_drop sharp_drop_manager slow_decline band_change_intervention "
    "band_change_escalation usage_drop declining_logins ticket_burst severe_tickets competitor_mentioned "
    "champion_left silent_customer renewal_risk renewal_stage_engage renewal_stage_propose "
    "renewal_stage_negotiate renewal_unsigned onboarding_day3_no_login onboarding_day5_no_core_action "
    "onboarding_day7_no_value onboarding_day10_single_user onboarding_day14_low_adoption expansion advocate"
).split()
RECORD_LISTS = ("owners", "accounts", "contacts", "opportunities", "activities", "zendesk_orgs", "zendesk_users",
                "tickets", "satisfaction_ratings", "mixpanel_profiles")


@pytest.fixture(scope="module")
def book():
    return generate_portfolio(7, 200, AS_OF)


@pytest.fixture(scope="module")
def big_book():
    return generate_portfolio(11, 1000 + MIN_SIZE, AS_OF)


def _planted(book, rule: str, role: str = "fires"):
    keys = (book.scenarios if role == "fires" else book.controls)[rule]
    by_key = {a.key: a for a in book.accounts}
    return [by_key[k] for k in keys]


def _events(book, days: int, end: date | None = None) -> list[dict]:
    end = end or AS_OF.date()
    return [e for back in range(days) for e in book.events_for_day(end - timedelta(days=back))]


# ------------------------------------------------------------------------------------------------ determinism


def test_same_inputs_give_the_same_book_and_events():
    first, second = generate_portfolio(3, 80, AS_OF), generate_portfolio(3, 80, AS_OF)
    for name in RECORD_LISTS:
        assert getattr(first, name) == getattr(second, name), name
    assert first.scenarios == second.scenarios and first.controls == second.controls
    day = AS_OF.date() - timedelta(days=12)
    assert list(first.events_for_day(day)) == list(second.events_for_day(day))


def test_a_different_seed_gives_a_different_book():
    first, other = generate_portfolio(3, 80, AS_OF), generate_portfolio(4, 80, AS_OF)
    assert [a.name for a in first.accounts] != [a.name for a in other.accounts]
    day = AS_OF.date() - timedelta(days=3)
    assert list(first.events_for_day(day)) != list(other.events_for_day(day))
    # the planted scenarios sit at the same positions whatever the seed
    assert first.scenarios == other.scenarios


def test_any_day_is_produced_independently_of_the_others(book):
    day = AS_OF.date() - timedelta(days=40)
    alone = list(generate_portfolio(7, 200, AS_OF).events_for_day(day))
    _events(book, 5)  # other days first must not change it
    assert list(book.events_for_day(day)) == alone and alone


def test_planted_accounts_do_not_depend_on_the_book_size():
    small, large = generate_portfolio(7, MIN_SIZE, AS_OF), generate_portfolio(7, MIN_SIZE + 30, AS_OF)
    assert small.accounts[:MIN_SIZE] == large.accounts[:MIN_SIZE]


def test_too_small_a_book_is_refused():
    with pytest.raises(ValueError, match=f"at least {MIN_SIZE}"):
        generate_portfolio(7, MIN_SIZE - 1, AS_OF)


# ------------------------------------------------------------------------------------------------ realism


def test_segment_mix_and_acv_boundaries(big_book):
    background = big_book.accounts[MIN_SIZE:]
    mix = Counter(a.segment for a in background)
    assert {k: v / len(background) for k, v in mix.items()} == {
        "enterprise": 0.10, "mid_market": 0.25, "smb": 0.40, "self_serve": 0.25}
    for account in big_book.accounts:
        expected = ("enterprise" if account.acv > 100_000 else "mid_market" if account.acv >= 25_000
                    else "smb" if account.acv >= 5_000 else "self_serve")
        assert account.segment == expected, account
        assert account.plan_tier in PLAN_FEATURES and account.seats_purchased >= 1 and account.capacity_limit > 0


def test_contract_dates_onboarding_lapsed_and_renewals_spread(big_book):
    today = AS_OF.date()
    background = big_book.accounts[MIN_SIZE:]
    onboarding = [a for a in background if 0 <= (today - a.contract_start).days <= 14]
    lapsed = [a for a in background if a.renewal_date < today]
    assert 10 <= len(onboarding) <= 60 and 10 <= len(lapsed) <= 60
    months = Counter(min((a.renewal_date - today).days // 30, 12) for a in background if a.renewal_date >= today)
    assert set(months) == set(range(13)) and max(months.values()) < 3 * min(months.values())
    for account in big_book.accounts:
        assert account.contract_start <= today < account.renewal_date + timedelta(days=60)
        assert account.created_at <= account.modified_at <= AS_OF


def test_renewals_near_the_date_are_more_often_signed(big_book):
    today = AS_OF.date()
    by_key = {a.key: a for a in big_book.accounts}
    near, far = Counter(), Counter()
    for opp in big_book.opportunities:
        account = by_key[opp.account_key]
        if opp.kind != "renewal" or opp.name.split()[-1] != str(account.renewal_date.year):
            continue
        days = (account.renewal_date - today).days
        bucket = near if 0 <= days <= 30 else far if days > 120 else None
        if bucket is not None:
            bucket[opp.is_won] += 1
    assert near[True] / sum(near.values()) > 0.5 > far[True] / sum(far.values())


def test_owners_cover_every_role_and_the_cto(book):
    roles = Counter(o.role for o in book.owners)
    assert roles["csm"] >= 4 and roles["cs_manager"] >= 1 and roles["cs_leadership"] >= 1
    assert roles["product"] >= 1 and roles["executive"] >= 1
    assert "cto@cloudscale.io" in {o.email for o in book.owners}
    assert any(not o.active for o in book.owners)
    assert all(sf_checksum(o.sf_id[:15]) == o.sf_id[15:] and o.sf_id.startswith("005") for o in book.owners)


def test_crm_records_are_varied_and_consistent(book):
    roles = Counter(c.role for c in book.contacts)
    assert {"champion", "exec_sponsor", "admin", "user"} <= set(roles)
    recent = AS_OF - timedelta(days=90)
    assert any(c.left_company_at and c.left_company_at > recent for c in book.contacts)
    assert any(c.role_changed_at and c.role_changed_at > recent for c in book.contacts)
    assert {a.outcome for a in book.activities if a.kind in ("meeting", "qbr")} == {"held", "no_show", "cancelled"}
    assert {a.direction for a in book.activities if a.kind == "email"} == {"inbound", "outbound"}
    assert {a.kind for a in book.activities} == {"meeting", "qbr", "call", "email"}
    assert min(a.occurred_at for a in book.activities) < AS_OF - timedelta(days=90)
    assert {o.kind for o in book.opportunities} == {"renewal", "expansion", "new_business"}
    for record in (*book.contacts, *book.opportunities, *book.activities):
        assert record.created_at <= record.modified_at <= AS_OF, record
    for activity in book.activities:
        assert activity.occurred_at <= AS_OF
        assert activity.sf_id[:3] == ("00U" if activity.kind in ("meeting", "qbr") else "00T")


def test_many_records_share_bulk_load_modstamps(book):
    stamps = Counter(a.modified_at for a in book.accounts)
    assert stamps.most_common(1)[0][1] >= 5
    contact_stamps = Counter(c.modified_at for c in book.contacts)
    assert sum(n for n in contact_stamps.values() if n > 1) > len(book.contacts) // 5


def test_zendesk_tickets_look_like_a_real_help_desk(book):
    tickets = book.tickets
    assert {t.priority for t in tickets} == {"low", "normal", "high", "urgent"}
    assert {"new", "open", "pending", "solved", "closed"} <= {t.status for t in tickets}
    assert {r.score for r in book.satisfaction_ratings} == {"good", "bad"}
    assert any(t.reopens for t in tickets)
    assert any(any(c in t.description for c in COMPETITORS) for t in tickets)
    users = {u.id: u for u in book.zendesk_users}
    for ticket in tickets:
        assert ticket.created_at <= ticket.updated_at <= AS_OF
        assert users[ticket.requester_id].org_id == ticket.org_id
        if ticket.status in ("solved", "closed"):
            assert ticket.solved_at is not None and ticket.full_resolution_minutes >= ticket.first_resolution_minutes
    assert any(u.role == "agent" for u in book.zendesk_users)


def test_identity_keys_mix_like_real_life(book):
    zendesk = Counter(a.zendesk_identity for a in book.accounts)
    mixpanel = Counter(a.mixpanel_identity for a in book.accounts)
    assert zendesk["external_id"] > zendesk["domain"] > 0 and zendesk["none"] > 0
    assert mixpanel["group_crm_id"] > mixpanel["group_domain"] > 0
    assert mixpanel["email_domain"] > 0 and mixpanel["none"] > 0
    assert sum(1 for o in book.zendesk_orgs if o.account_key is None) >= 2
    accounts = {a.key: a for a in book.accounts}
    for org in book.zendesk_orgs:
        account = accounts.get(org.account_key)
        if account is not None and account.zendesk_identity == "none":
            assert account.domain not in org.domain_names
        elif account is not None:
            assert org.domain_names == [account.domain]
    free = [p for p in book.mixpanel_profiles if p.account_key is None]
    assert free and all(p.email.split("@")[1] in FREE_MAIL_DOMAINS for p in free)
    for profile in book.mixpanel_profiles:
        account = accounts.get(profile.account_key)
        if account is not None:
            on_domain = profile.email.endswith("@" + account.domain)
            assert on_domain == (account.mixpanel_identity != "none"), profile


# ------------------------------------------------------------------------------------------------ events


def test_events_are_in_export_shape_and_never_after_as_of(book):
    events = list(book.events_for_day(AS_OF.date()))
    assert events and max(e["properties"]["time"] for e in events) <= AS_OF.timestamp()
    assert list(book.events_for_day(AS_OF.date() + timedelta(days=1))) == []
    names = Counter(e["event"] for e in _events(book, 30))
    assert {"login", "feature_used", "first_value_achieved", "nps_survey_submitted", *CORE_ACTION_EVENTS} <= set(names)
    sample = _events(book, 3)
    assert len({e["properties"]["$insert_id"] for e in sample}) == len(sample)
    profiles = {p.distinct_id: p for p in book.mixpanel_profiles}
    for event in sample:
        props = event["properties"]
        assert {"time", "distinct_id", "$insert_id", "$email", "_account_key"} <= set(props)
        assert profiles[props["distinct_id"]].account_key == props["_account_key"]
        if event["event"] == "feature_used":
            assert props["feature"]
    surveys = [e for e in _events(book, 90) if e["event"] == "nps_survey_submitted"]
    assert surveys and all(0 <= e["properties"]["score"] <= 10 for e in surveys)
    assert any(e["properties"]["_account_key"] is None for e in sample)


def test_weekdays_are_busier_than_weekends(book):
    per_day = {AS_OF.date() - timedelta(days=back): 0 for back in range(1, 22)}
    for day in per_day:
        per_day[day] = sum(1 for _ in book.events_for_day(day))
    weekday = [n for d, n in per_day.items() if d.weekday() < 5]
    weekend = [n for d, n in per_day.items() if d.weekday() >= 5]
    assert sum(weekday) / len(weekday) > 3 * sum(weekend) / len(weekend) > 0


def test_events_between_covers_a_simulated_week_after_as_of(book):
    end = AS_OF + timedelta(days=7)
    week = list(book.event_source.events_between(AS_OF, end))
    times = [e["properties"]["time"] for e in week]
    assert week and AS_OF.timestamp() < min(times) and max(times) <= end.timestamp()


# ------------------------------------------------------------------------------------------------ scenarios


def test_every_rule_has_a_scenario_and_a_control(book):
    assert list(RULE_IDS) == CANONICAL_RULES
    for rule in CANONICAL_RULES:
        assert book.scenarios[rule], rule
        assert book.controls[rule], rule
        assert not set(book.scenarios[rule]) & set(book.controls[rule]), rule
    clean = set(book.controls[CLEAN_KEY])
    assert len(clean) >= 3
    for rule in CANONICAL_RULES:
        assert not clean & set(book.scenarios[rule]), rule
    planted = {k for keys in (*book.scenarios.values(), *book.controls.values()) for k in keys}
    assert planted == {a.key for a in book.accounts[:len(PLANTED)]}


def test_manifest_is_json_ready_and_explains_every_entry(book):
    import json

    manifest = json.loads(json.dumps(scenario_manifest(book, crm="hubspot")))
    assert manifest["rules"] == CANONICAL_RULES
    ids = {a.key: a.hs_id for a in book.accounts}
    for rule in CANONICAL_RULES:
        for entry in manifest["scenarios"][rule] + manifest["controls"][rule]:
            assert entry["reason"] and entry["name"] and entry["crm_id"] == ids[entry["account_key"]]
    assert manifest["controls"][CLEAN_KEY]


def test_planted_facts_match_their_reasons(book):
    today = AS_OF.date()
    org_of = {o.account_key: o.id for o in book.zendesk_orgs}
    tickets_of = Counter()
    for ticket in book.tickets:
        if ticket.created_at > AS_OF - timedelta(days=7):
            tickets_of[ticket.org_id] += 1
    assert all(tickets_of[org_of[a.key]] >= 2 for a in _planted(book, "ticket_burst"))
    near_miss = [a for a in _planted(book, "ticket_burst", "controls") if tickets_of[org_of[a.key]]]
    assert near_miss and all(tickets_of[org_of[a.key]] == 1 for a in near_miss)
    mentions = {t.org_id for t in book.tickets if any(c in t.description for c in COMPETITORS)}
    assert all(org_of[a.key] in mentions for a in _planted(book, "competitor_mentioned"))
    assert not any(org_of[a.key] in mentions for a in _planted(book, "competitor_mentioned", "controls"))
    for rule, days in (("renewal_stage_engage", 120), ("renewal_stage_propose", 90),
                       ("renewal_stage_negotiate", 60)):
        assert [(a.renewal_date - today).days for a in _planted(book, rule)] == [days]
    for rule, days in (("onboarding_day3_no_login", 3), ("onboarding_day5_no_core_action", 5),
                       ("onboarding_day7_no_value", 7), ("onboarding_day10_single_user", 10),
                       ("onboarding_day14_low_adoption", 14)):
        assert [(today - a.contract_start).days for a in _planted(book, rule)] == [days]
    champions = {c.account_key: c for c in book.contacts if c.is_champion and (c.left_company_at or c.role_changed_at)}
    for account in _planted(book, "champion_left"):
        moved = champions[account.key].left_company_at or champions[account.key].role_changed_at
        assert AS_OF - timedelta(days=90) < moved <= AS_OF


def test_planted_usage_follows_the_scenario(book):
    week = _events(book, 14)
    since_start = Counter()
    users, core = {}, Counter()
    for event in week:
        key = event["properties"]["_account_key"]
        since_start[key] += 1
        users.setdefault(key, set()).add(event["properties"]["distinct_id"])
        core[key] += event["event"] in CORE_ACTION_EVENTS
    (no_login,) = _planted(book, "onboarding_day3_no_login")
    (no_core,) = _planted(book, "onboarding_day5_no_core_action")
    (single,) = _planted(book, "onboarding_day10_single_user")
    assert since_start[no_login.key] == 0
    assert since_start[no_core.key] > 0 and core[no_core.key] == 0
    assert len(users[single.key]) == 1
    (expansion,) = _planted(book, "expansion")
    month = _events(book, 30)
    active = {e["properties"]["distinct_id"] for e in month if e["properties"]["_account_key"] == expansion.key}
    volume = sum(1 for e in month if e["properties"]["_account_key"] == expansion.key)
    assert len(active) / expansion.seats_purchased > 0.8 and volume / expansion.capacity_limit > 0.8
    (usage_drop,) = _planted(book, "usage_drop")
    last = sum(1 for e in _events(book, 7) if e["properties"]["_account_key"] == usage_drop.key)
    before = sum(1 for e in _events(book, 7, AS_OF.date() - timedelta(days=7))
                 if e["properties"]["_account_key"] == usage_drop.key)
    assert last < 0.6 * before


def test_scenarios_fire_under_the_default_model_and_playbook():
    """The calibration contract with the scoring engine (bench/sandbox_scenarios.py does the same, verbosely):
    every planted account fires its rules and every control stays quiet under the default preset."""
    path = Path(__file__).resolve().parents[2] / "bench" / "sandbox_scenarios.py"
    spec = importlib.util.spec_from_file_location("sandbox_scenarios_bench", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main_for(seed=7, size=MIN_SIZE + 20, model="default", quiet=True) == []


def test_records_are_plain_dataclasses(book):
    assert all(dataclasses.is_dataclass(getattr(book, name)[0]) for name in RECORD_LISTS)
