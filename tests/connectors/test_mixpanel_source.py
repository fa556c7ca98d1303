"""MixpanelSource against the Mixpanel emulator with the unmodified mixpanel-utils over real HTTP: usage
aggregates equal a brute-force count of the same raw events, the lookback re-reads exactly the recent days
and catches late events, windows resume after a crash, and the SDK's hidden failures become our errors."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
import requests

from healthsync.config.loader import load_config
from healthsync.connectors.base import Page, Source
from healthsync.connectors.cursor import StreamState
from healthsync.connectors.mixpanel import DailyUsageAggregator, MixpanelSource, UsageRules, usage_window
from healthsync.connectors.pacing import PacerRegistry, mixpanel_pacing
from healthsync.connectors.records import UsageKeyKind
from healthsync.errors import AuthError, ConfigError
from healthsync.sandbox.credentials import DEMO

from . import zm_conn_fixtures as fx

RULES = UsageRules(
    login_event="login",
    core_action_events=frozenset(fx.CORE_EVENTS),
    feature_events=frozenset({"feature_used"}),
    first_value_event="first_value_achieved",
)
TODAY = fx.AS_OF.date()


@pytest.fixture()
def server():
    with fx.mixpanel_server() as srv:
        yield srv


def make_source(server, *, retry=None, username=None, secret=None, project_id=None, **options) -> MixpanelSource:
    options.setdefault("backfill_days", 10)
    options.setdefault("window_days", 4)
    return MixpanelSource(
        project_id=project_id or DEMO.mixpanel.project_id,
        username=username or DEMO.mixpanel.service_account_username,
        secret=secret or DEMO.mixpanel.service_account_secret,
        pacer=fx.scaled_mixpanel_pacer(),
        rules=RULES,
        base_url=server.http_url,
        retry=retry or fx.fast_retry(),
        **options,
    )


def record_exports(server) -> list[tuple[str, str]]:
    """Date ranges of the export calls that reach the emulator's handler, in order."""
    emu = server.emulator("mixpanel")
    ranges: list[tuple[str, str]] = []
    original = emu.on_export

    def recording(request):
        ranges.append((request.values["from_date"], request.values["to_date"]))
        return original(request)

    emu.on_export = recording
    return ranges


def apply(store: dict, page: Page) -> None:
    """What store.aggregates.replace_usage_window does: the page's window is replaced whole."""
    first, last = usage_window(page)
    for key in [k for k, r in store.items() if first <= r.day <= last]:
        del store[key]
    store.update({r.primary_key: r for r in page.records})


def read_into(store: dict, source: MixpanelSource, state=None, *, as_of=fx.AS_OF) -> tuple[list[Page], StreamState]:
    pages = list(source.read("usage_daily", state, as_of=as_of))
    for page in pages:
        apply(store, page)
    return pages, pages[-1].state


def raw_export(server, first: date, last: date) -> list[dict]:
    answer = requests.get(
        f"{server.http_url}/api/2.0/export",
        params={"from_date": first.isoformat(), "to_date": last.isoformat(), "project_id": DEMO.mixpanel.project_id},
        auth=(DEMO.mixpanel.service_account_username, DEMO.mixpanel.service_account_secret),
        timeout=30,
    )
    answer.raise_for_status()
    return [json.loads(line) for line in answer.text.splitlines() if line.strip()]


def brute_force(events: list[dict]) -> dict[str, dict]:
    """The obvious, slow count the aggregator must agree with."""
    out: dict[str, dict] = defaultdict(lambda: {"users": set(), "logins": set(), "events": 0, "core": 0,
                                                "sessions": 0, "features": set(), "value": 0, "nps": []})
    for event in events:
        props = event["properties"]
        if "time" not in props or not props.get("distinct_id"):
            continue
        if props.get("account_id"):
            kind, key = "group_crm_id", props["account_id"]
        else:
            kind, key = "email_domain", props["$email"].split("@")[1].lower()
        day = datetime.fromtimestamp(props["time"], UTC).date()
        row = out[f"{kind}:{key}:{day.isoformat()}"]
        row["users"].add(props["distinct_id"])
        row["events"] += 1
        name = event["event"]
        if name == "login":
            row["logins"].add(props["distinct_id"])
            row["sessions"] += 1
        if name in fx.CORE_EVENTS:
            row["core"] += 1
        if name == "feature_used":
            row["features"].add(props["feature"])
        if name == "first_value_achieved":
            row["value"] += 1
        if name == "nps_survey_submitted":
            row["nps"].append(props["score"])
    return dict(out)


def as_counts(store: dict) -> dict[str, dict]:
    return {pk: {"users": set(r.active_user_ids), "logins": set(r.login_user_ids), "events": r.events,
                 "core": r.core_actions, "sessions": r.sessions, "features": set(r.features_used),
                 "value": r.value_events, "nps": sorted(r.nps_scores)}
            for pk, r in store.items()}


def normalised(expected: dict[str, dict]) -> dict[str, dict]:
    return {pk: {**row, "nps": sorted(row["nps"])} for pk, row in expected.items()}


# --------------------------------------------------------------------------------------------- full read


def test_aggregates_equal_a_brute_force_count_of_the_same_events(server):
    ranges = record_exports(server)
    store: dict = {}
    pages, state = read_into(store, make_source(server))
    first = TODAY - timedelta(days=10)
    assert ranges == [("2024-04-21", "2024-04-24"), ("2024-04-25", "2024-04-28"), ("2024-04-29", "2024-05-01")]
    assert as_counts(store) == normalised(brute_force(raw_export(server, first, TODAY)))
    assert state.extra["last_complete_day"] == "2024-04-30"
    assert all(not p.skipped for p in pages)


def test_each_identity_mode_gives_its_key_kind(server):
    store: dict = {}
    read_into(store, make_source(server, backfill_days=0))
    keys = {(r.key_kind, r.account_key) for r in store.values()}
    assert (UsageKeyKind.GROUP_CRM_ID, fx.sf_id(1)) in keys
    # Globex's group key holds its domain although crm_id is configured: recorded as given, resolution judges
    assert (UsageKeyKind.GROUP_CRM_ID, "globex.test") in keys
    assert (UsageKeyKind.EMAIL_DOMAIN, "initech.test") in keys
    assert (UsageKeyKind.EMAIL_DOMAIN, "nowhere.test") in keys  # unmatched users are counted, not dropped
    assert not any(k == "umbrella.test" for _, k in keys)  # its users sign up with free mail


def test_is_a_source_with_one_stream(server):
    source = make_source(server)
    assert isinstance(source, Source)
    [spec] = source.streams()
    assert spec.name == "usage_daily" and spec.incremental


# --------------------------------------------------------------------------------------------- lookback


def test_late_events_within_the_lookback_are_counted_and_older_days_are_not_re_read(server):
    source = make_source(server, window_days=7)
    store: dict = {}
    _, state = read_into(store, source)
    emu = server.emulator("mixpanel")
    late_day, old_day = TODAY - timedelta(days=3), TODAY - timedelta(days=9)
    late = [{"event": "report_created", "properties": {
        "time": int(datetime(d.year, d.month, d.day, 15, tzinfo=UTC).timestamp()) + n,
        "distinct_id": f"mobile-{n}", "$email": f"m{n}@initech.test"}} for d in (late_day, old_day) for n in range(4)]
    emu.add_events(late, arrive_at=fx.AS_OF + timedelta(hours=2))  # they reach Mixpanel after cycle 1
    key = f"email_domain:initech.test:{late_day.isoformat()}"
    old_key = f"email_domain:initech.test:{old_day.isoformat()}"
    before, before_old = store[key].events, store[old_key].events

    server.clock.advance(timedelta(days=1))
    ranges = record_exports(server)
    pages, state = read_into(store, source, state, as_of=fx.AS_OF + timedelta(days=1))
    # L = Apr 30 → re-read Apr 26 (five days back) through today, May 2: one call
    assert ranges == [("2024-04-26", "2024-05-02")]
    assert [usage_window(p) for p in pages] == [(date(2024, 4, 26), date(2024, 5, 2))]
    assert store[key].events == before + 4 and store[key].core_actions >= 4
    assert {f"mobile-{n}" for n in range(4)} <= store[key].active_user_ids
    assert store[old_key].events == before_old  # outside the lookback: never re-read
    assert state.extra["last_complete_day"] == "2024-05-01"


def test_a_cycle_with_no_new_days_costs_one_export_call(server):
    source = make_source(server, lookback_days=2)
    store: dict = {}
    _, state = read_into(store, source)
    ranges = record_exports(server)
    reference = dict(store)
    read_into(store, source, state)
    assert ranges == [("2024-04-29", "2024-05-01")]
    assert store == reference  # replacing the days with a re-count changes nothing


def test_crash_after_a_window_then_resume_gives_the_same_usage(server):
    reference: dict = {}
    read_into(reference, make_source(server, backfill_days=20, window_days=3))
    store: dict = {}
    saved = None
    for k, page in enumerate(make_source(server, backfill_days=20, window_days=3).read(
            "usage_daily", None, as_of=fx.AS_OF), start=1):
        apply(store, page)
        saved = page.state
        if k == 3:
            break
    ranges = record_exports(server)
    read_into(store, make_source(server, backfill_days=20, window_days=3), StreamState.from_json(saved.to_json()))
    assert store == reference
    assert ranges[0][0] == "2024-04-15"  # last complete day Apr 19 + 1 − 5 lookback days


# --------------------------------------------------------------------------------------------- faults


def test_5xx_resets_and_429s_are_survived(server):
    reference: dict = {}
    read_into(reference, make_source(server, backfill_days=3))
    server.faults.add(r"/api/2\.0/export", "status", status=503)  # the SDK's bare BaseException
    server.faults.add(r"/api/2\.0/export", "reset")
    server.faults.add(r"/api/2\.0/export", "status", status=429, headers={"Retry-After": "1"})  # swallowed 4xx
    source = make_source(server, backfill_days=3)
    store: dict = {}
    read_into(store, source)
    assert store == reference
    assert server.faults.pending() == 0
    assert source.pacer.stats().rate_limited == 1


def test_an_event_without_time_is_skipped_and_the_rest_lands(server):
    server.faults.add(r"/api/2\.0/export", "odd_record")
    store: dict = {}
    pages, _ = read_into(store, make_source(server, backfill_days=0))
    [skipped] = [s for p in pages for s in p.skipped]
    assert "missing properties.time" in skipped.reason and "1 event like this" in skipped.reason
    expected = brute_force(raw_export(server, TODAY, TODAY))
    assert sum(r.events for r in store.values()) == sum(row["events"] for row in expected.values()) - 1


def test_many_bad_events_are_summarised_not_flooded(server):
    noise = [{"event": "login", "properties": {"time": int(fx.AS_OF.timestamp()) - 3600 - n}} for n in range(250)]
    server.emulator("mixpanel").add_events(noise)
    pages, _ = read_into({}, make_source(server, backfill_days=0))
    skipped = [s for p in pages for s in p.skipped]
    assert len(skipped) == 3
    assert all("missing properties.distinct_id (250 events like this" in s.reason for s in skipped)


def test_bad_credentials_and_wrong_project_are_auth_errors_with_hints(server):
    bad = make_source(server, secret="not-the-secret-42")
    with pytest.raises(AuthError) as raised:
        list(bad.read("usage_daily", None, as_of=fx.AS_OF))
    assert "401" in str(raised.value) and "not-the-secret-42" not in str(raised.value)
    result = bad.check()
    assert not result.ok and "mixpanel.service_account.secret" in result.fix_hint
    wrong_project = make_source(server, project_id=99)
    result = wrong_project.check()
    assert not result.ok and "403" in result.message and "mixpanel.project_id" in result.fix_hint
    assert make_source(server).check().ok
    assert server.calls.snapshot()["mixpanel export"] == 1  # an AuthError is not retried


# --------------------------------------------------------------------------------------------- aggregator


def _line(name: str, **props) -> bytes:
    return json.dumps({"event": name, "properties": props}).encode()


def test_aggregator_skips_only_the_malformed_line_of_a_batch():
    aggregator = DailyUsageAggregator(RULES, TODAY, TODAY)
    stamp = int(fx.AS_OF.timestamp())
    aggregator.feed_lines([
        _line("login", time=stamp, distinct_id="a", account_id="001X"),
        b'{"event": "login", "properties": {"time": ',
        _line("report_created", time=stamp, distinct_id="a", account_id="001X") + b"\r",
        b"",
    ])
    [record] = aggregator.records()
    assert (record.events, record.core_actions, record.sessions) == (2, 1, 1)
    assert aggregator.skips.counts == {"line is not valid JSON": 1}


def test_aggregator_rules_for_features_nps_domains_and_timezones():
    rules = UsageRules(login_event="login", core_action_events=frozenset({"Report Created"}),
                       feature_events=frozenset({"Report Created", "feature_used"}), first_value_event="Report Created",
                       group_key="company", group_key_kind=UsageKeyKind.GROUP_DOMAIN)
    india = timezone(timedelta(hours=5, minutes=30))
    aggregator = DailyUsageAggregator(rules, date(2024, 5, 1), date(2024, 5, 2), timezone=india)
    late_evening_utc = int(datetime(2024, 4, 30, 20, 0, tzinfo=UTC).timestamp())  # May 1, 01:30 in India
    aggregator.feed_events([
        {"event": "Report Created", "properties": {"time": late_evening_utc, "distinct_id": 1, "company": "https://WWW.Acme.com/"}},
        {"event": "feature_used", "properties": {"time": late_evening_utc + 5.5, "distinct_id": 2, "company": "acme.com", "feature": "sso"}},
        {"event": "nps_survey_submitted", "properties": {"time": late_evening_utc, "distinct_id": 2, "company": "acme.com", "score": "9"}},
        {"event": "nps_survey_submitted", "properties": {"time": late_evening_utc, "distinct_id": 2, "company": "acme.com", "score": 11}},
        {"event": "login", "properties": {"time": late_evening_utc - 86400, "distinct_id": 3, "company": "acme.com"}},
    ])
    [record] = aggregator.records()
    assert (record.key_kind, record.account_key, record.day) == (UsageKeyKind.GROUP_DOMAIN, "acme.com", date(2024, 5, 1))
    assert record.features_used == frozenset({"Report Created", "sso"})
    assert (record.core_actions, record.value_events, record.nps_scores, record.events) == (1, 1, (9,), 4)
    assert record.active_user_ids == frozenset({"1", "2"})
    assert aggregator.skips.counts == {"NPS answer without a 0-10 score (event counted, score ignored)": 1,
                                       "event day outside the requested dates": 1}


# --------------------------------------------------------------------------------------------- config


def test_from_settings_points_at_the_sandbox_and_refuses_https(server, tmp_path):
    settings = load_config(fx.write_sandbox_config(tmp_path, server), env=fx.sandbox_env())
    source = MixpanelSource.from_settings(settings, PacerRegistry(), backfill_days=1)
    assert source.check().ok
    assert source.lookback_days == 5 and source.rules.login_event == "login"
    assert MixpanelSource.from_settings(settings, PacerRegistry()).backfill_days == 90  # mixpanel.backfill_days
    longer = settings.model_copy(update={"mixpanel": settings.mixpanel.model_copy(update={"backfill_days": 670})})
    assert MixpanelSource.from_settings(longer, PacerRegistry()).backfill_days == 670
    assert source.rules.group_key_kind is UsageKeyKind.GROUP_CRM_ID
    assert list(source.read("usage_daily", None, as_of=fx.AS_OF))[-1].records
    https = settings.model_copy(update={"sandbox": settings.sandbox.model_copy(
        update={"mixpanel_url": server.https_url})})
    with pytest.raises(ConfigError, match="plain http"):
        MixpanelSource.from_settings(https, PacerRegistry())


def test_aggregator_skips_impossible_times_and_keeps_going():
    aggregator = DailyUsageAggregator(RULES, TODAY, TODAY)
    stamp = int(fx.AS_OF.timestamp())
    aggregator.feed_events([
        {"event": "login", "properties": {"time": 10**20, "distinct_id": "a", "account_id": "001X"}},
        {"event": "login", "properties": {"time": "yesterday", "distinct_id": "a", "account_id": "001X"}},
        {"event": "login", "properties": {"time": float("nan"), "distinct_id": "a", "account_id": "001X"}},
        ["not", "an", "event"],
        {"event": "login", "properties": {"time": stamp + 0.25, "distinct_id": 42, "account_id": "001X"}},
        {"event": "login", "properties": {"time": stamp, "distinct_id": "b"}},  # no key at all
    ])
    [record] = aggregator.records()
    assert record.active_user_ids == frozenset({"42"}) and record.sessions == 1
    assert aggregator.skips.counts == {
        "properties.time is not a unix timestamp": 3,
        "not an event object with properties": 1,
        "no account key (neither the group key property nor $email)": 1,
    }


def test_a_long_first_read_spreads_over_thirteen_windows_and_later_reads_stay_weekly():
    from healthsync.connectors.mixpanel.source import BACKFILL_CALLS

    source = MixpanelSource(project_id=1, username="u", secret="s", pacer=PacerRegistry().pacer(
        "mixpanel", "1", mixpanel_pacing()), rules=RULES, backfill_days=670)
    as_of = datetime(2026, 11, 2, 12, tzinfo=UTC)
    first = source.plan_windows(None, as_of)
    assert len(first) == BACKFILL_CALLS
    assert first[0][0] == as_of.date() - timedelta(days=670) and first[-1][1] == as_of.date()
    assert all((b[0] - a[1]).days == 1 for a, b in zip(first, first[1:], strict=False))  # no gap, no overlap
    default = MixpanelSource(project_id=1, username="u", secret="s", pacer=source.pacer, rules=RULES)
    assert [(b - a).days for a, b in default.plan_windows(None, as_of)][:-1] == [6] * 12  # 90 days: weekly, as before
