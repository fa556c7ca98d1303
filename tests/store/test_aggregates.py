"""Usage days, identity links and score history on both backends."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from healthsync.sync.store import IdentityLink, ScoreRow, Store, UsageDay

NOW = datetime(2024, 6, 10, 6, 0, tzinfo=UTC)
D1, D2, D3 = date(2024, 6, 1), date(2024, 6, 2), date(2024, 6, 3)


def usage(
    account: str, day: date, active: int, users: tuple[str, ...] = (), features: tuple[str, ...] = ()
) -> UsageDay:
    return UsageDay(
        account,
        day,
        active,
        events=active * 10,
        core_actions=active * 2,
        login_users=active,
        value_events=1,
        features_used=features,
        user_ids=users,
    )


def test_usage_upsert_replaces_a_day_whole(store: Store) -> None:
    store.aggregates.upsert_usage_days("mixpanel", [usage("acme", D1, 2, ("u1", "u2"), ("export", "reports"))], now=NOW)
    store.aggregates.upsert_usage_days("mixpanel", [usage("acme", D1, 3, ("u3", "u1", "u2"), ("reports",))], now=NOW)
    [day] = store.aggregates.usage_days("mixpanel", account_key="acme")
    assert (day.active_users, day.events, day.user_ids, day.features_used) == (
        3,
        30,
        ("u1", "u2", "u3"),
        ("reports",),
    )


def test_usage_days_filter_by_inclusive_range(store: Store) -> None:
    store.aggregates.upsert_usage_days(
        "mixpanel", [usage("acme", d, 1) for d in (D1, D2, D3)] + [usage("beta", D2, 5)], now=NOW
    )
    assert [d.day for d in store.aggregates.usage_days("mixpanel", account_key="acme", start=D2, end=D3)] == [D2, D3]
    assert [(d.account_key, d.day) for d in store.aggregates.usage_days("mixpanel", start=D2, end=D2)] == [
        ("acme", D2),
        ("beta", D2),
    ]
    assert store.aggregates.usage_days("zendesk") == []


def test_replace_usage_window_drops_days_that_are_no_longer_there(store: Store) -> None:
    store.aggregates.upsert_usage_days(
        "mixpanel", [usage("acme", D1, 1), usage("acme", D2, 1), usage("beta", D2, 4)], now=NOW
    )
    store.aggregates.replace_usage_window("mixpanel", D2, D3, [usage("acme", D2, 2), usage("acme", D3, 1)], now=NOW)
    got = {(d.account_key, d.day): d.active_users for d in store.aggregates.usage_days("mixpanel")}
    assert got == {("acme", D1): 1, ("acme", D2): 2, ("acme", D3): 1}


def test_replace_usage_window_refuses_days_outside_it(store: Store) -> None:
    store.aggregates.upsert_usage_days("mixpanel", [usage("acme", D2, 7)], now=NOW)
    with pytest.raises(ValueError, match="outside the window"):
        store.aggregates.replace_usage_window("mixpanel", D2, D2, [usage("acme", D3, 1)], now=NOW)
    assert store.aggregates.usage_days("mixpanel")[0].active_users == 7


def test_identity_links_upsert_and_filter(store: Store) -> None:
    store.aggregates.upsert_identity_links(
        [
            IdentityLink("zendesk", "org:1", "matched", "001A", "external_id"),
            IdentityLink("zendesk", "org:2", "ambiguous", candidates=("001A", "001B")),
            IdentityLink("mixpanel", "group:x", "unmatched"),
        ],
        now=NOW,
    )
    store.aggregates.upsert_identity_links([IdentityLink("zendesk", "org:2", "matched", "001B", "domain")], now=NOW)
    assert store.aggregates.get_identity_link("zendesk", "org:2") == IdentityLink(
        "zendesk", "org:2", "matched", "001B", "domain"
    )
    assert [link.external_key for link in store.aggregates.identity_links(status="matched")] == ["org:1", "org:2"]
    assert [link.source for link in store.aggregates.identity_links("mixpanel")] == ["mixpanel"]


@pytest.mark.parametrize(
    "link",
    [
        IdentityLink("zendesk", "org:3", "maybe"),
        IdentityLink("zendesk", "org:3", "matched", "001A", "telepathy"),
        IdentityLink("zendesk", "org:3", "matched"),
        IdentityLink("zendesk", "org:3", "unmatched", "001A"),
    ],
)
def test_invalid_identity_links_are_refused(store: Store, link: IdentityLink) -> None:
    with pytest.raises(ValueError):
        store.aggregates.upsert_identity_links([link], now=NOW)
    assert store.aggregates.identity_links() == []


def test_the_database_itself_refuses_unknown_identity_statuses(store: Store) -> None:
    from healthsync.sync.store.schema import identity_links

    with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as conn:
        conn.execute(
            sa.insert(identity_links).values(
                source="z", external_key="k", status="bogus", candidates=[], updated_at=NOW
            )
        )


def score(account: str, as_of: datetime, value: int, band: str = "healthy") -> ScoreRow:
    return ScoreRow(
        account, as_of, value, band, {"usage": value}, {"why": [f"usage {value}"]}, "default", "run"
    )


def test_score_history_is_ordered_and_rescoring_replaces(store: Store) -> None:
    days = [NOW - timedelta(days=n) for n in (30, 7, 0)]
    store.scores.record([score("001A", d, 80 - i) for i, d in enumerate(days)])
    store.scores.record([score("001A", days[-1], 55, "critical")])
    history = store.scores.history("001A")
    assert [(s.as_of, s.score, s.band) for s in history] == [
        (days[0], 80, "healthy"),
        (days[1], 79, "healthy"),
        (days[2], 55, "critical"),
    ]
    assert history[-1].result == {"why": ["usage 55"]}
    assert [s.score for s in store.scores.history("001A", since=days[1], until=days[1])] == [79]


def test_scores_at_gives_each_accounts_latest_baseline(store: Store) -> None:
    store.scores.record(
        [
            score("001A", NOW - timedelta(days=10), 90),
            score("001A", NOW - timedelta(days=8), 85),
            score("001A", NOW - timedelta(days=1), 60),
            score("001B", NOW - timedelta(days=6), 70),
        ]
    )
    week_ago = NOW - timedelta(days=7)
    baseline = store.scores.latest_at(week_ago)
    assert {k: v.score for k, v in baseline.items()} == {"001A": 85}
    assert {k: v.score for k, v in store.scores.latest_at(NOW).items()} == {"001A": 60, "001B": 70}
    assert set(store.scores.latest_at(NOW, ["001B"])) == {"001B"}
    assert store.scores.latest_at(NOW, []) == {}
