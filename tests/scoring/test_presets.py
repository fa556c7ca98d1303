"""The five presets: each loads, matches SPEC §4's weights and bands, and reproduces a hand-worked
example computed straight from its seed's numbers."""

from __future__ import annotations

import pytest

from healthsync.scoring.base import HistoryFacts, Signals
from healthsync.scoring.explain import explain
from healthsync.scoring.model import Populations

from .scoring_factories import PRESET_NAMES, preset, preset_dict

SPEC_TABLE = {
    "default": ({"usage": 30, "support_sentiment": 20, "engagement": 20, "contract": 15, "stakeholder": 15},
                [("healthy", 70), ("at-risk", 60), ("critical", 0)]),
    "csm-playbook": ({"product_usage": 30, "engagement": 25, "support": 15, "business_outcomes": 20,
                      "relationship": 10}, [("green", 70), ("yellow", 40), ("red", 0)]),
    "points-100": ({"usage": 40, "engagement": 30, "sentiment": 30},
                   [("healthy", 90), ("stable", 70), ("at-risk", 50), ("critical", 0)]),
    "ops-thresholds": ({"product_usage": 35, "engagement": 25, "business_health": 25, "sentiment": 15},
                       [("healthy", 80), ("watch", 60), ("at-risk", 40), ("critical", 0)]),
    "weighted-five": ({"product_usage": 30, "engagement": 25, "support": 20, "business_outcomes": 15,
                       "relationship": 10}, [("green", 80), ("yellow", 50), ("red", 0)]),
}


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_preset_matches_the_spec_table(name):
    model = preset(name)
    weights, bands = SPEC_TABLE[name]
    assert {c.name: c.weight for c in model.base.components} == weights
    assert [(b.name, b.min) for b in model.base.bands] == bands


def test_daily_ops_is_the_default_model_under_its_spec_name():
    daily, default = dict(preset_dict("daily-ops")), dict(preset_dict("default"))
    assert daily.pop("name") == "daily-ops" and default.pop("name") == "default"
    assert daily == default


def score_one(name, values, population=None):
    """Score `values` as one account; `population` lists other accounts' values for percentiles."""
    model = preset(name)
    target = Signals("target", values)
    others = [Signals(f"o{i}", v) for i, v in enumerate(population or [])]
    populations = Populations.build(model.percentile_measures(), [target, *others], [None] * (1 + len(others)))
    return model.base.score(values, populations, None)


def test_default_seed_000_worked_example():
    values = {
        # usage 30%: DAU/MAU 20% -> 70, adoption 80% -> 100, 10 core actions/user -> 50, seats 40% -> 50 = 67.5
        "dau_mau_pct": 20.0, "feature_adoption_pct": 80.0, "core_actions_per_user_30d": 10.0,
        "seat_utilisation_pct": 40.0,
        # support 20%: 1 ticket -> 100, 1 severe open -> 50, CSAT 95% -> 100, no repeats -> 100 = 87.5
        "tickets_90d": 1.0, "high_severity_open": 1.0, "csat_pct": 95.0, "repeat_topics_90d": 0.0,
        # engagement 20%: replies 50% -> 100, no QBR -> 40, touched 14 days ago -> 100 = 80
        "email_response_rate_pct": 50.0, "qbr_attended": False, "days_since_two_way_touch": 14.0,
        # contract 15%: 200 days -> 100, no expansion -> 60, never late -> 100 = 86.67
        "days_to_renewal": 200.0, "expansion_12m": False, "late_payments": 0.0,
        # stakeholder 15%: champion stayed -> 100, sponsor not engaged -> 40, 3 contacts -> 80 = 73.33
        "champion_left_90d": False, "exec_sponsor_engaged_90d": False, "contacts_engaged_90d": 3.0,
    }
    core = score_one("default", values)
    # 0.30*67.5 + 0.20*87.5 + 0.20*80 + 0.15*86.67 + 0.15*73.33 = 20.25 + 17.5 + 16 + 13 + 11 = 77.75
    assert core.score == 78
    assert core.band == "healthy"
    assert [round(row[1], 2) for row in core.component_rows] == [67.5, 87.5, 80.0, 86.67, 73.33]
    # seed 000 line 5: below 70 is "below threshold"; line 21: below 60 critical
    model = preset("default")
    assert (model.base.band_for(70).name, model.base.band_for(69).name, model.base.band_for(59).name) == (
        "healthy", "at-risk", "critical")


def test_csm_playbook_seed_001_worked_example_with_percentiles():
    others = {"meeting_attendance_pct": 95.0, "email_response_rate_pct": 30.0, "tickets_30d": 1.0,
              "csat_pct": 80.0, "high_severity_open": 0.0, "usage_trend_30d_pct": 0.0, "value_events_30d": 12.0,
              "champion_present": True, "exec_sponsor_present": False}

    def usage(level):
        return {"dau": level, "feature_adoption_pct": level, "events_per_user_30d": level}

    population = [{**others, **usage(level)} for level in (1.0, 2.0, 3.0, 4.0)]
    top = score_one("csm-playbook", {**others, **usage(5.0)}, population)
    # usage: rank of the top of five = 90th > 80th -> Green 100 on all three measures
    # engagement (95% -> 100, replies 30% -> 60) = 80; support (1 ticket 100, CSAT 80% 60, no severe 100) = 86.67
    # outcomes (flat trend 60, 12 value events 100) = 80; relationship (champion 100, no sponsor 20) = 60
    # 0.30*100 + 0.25*80 + 0.15*86.67 + 0.20*80 + 0.10*60 = 30 + 20 + 13 + 16 + 6 = 85 -> green (70-100)
    assert (top.score, top.band) == (85, "green")
    bottom = score_one("csm-playbook", {**others, **usage(0.5)}, population)
    # the lowest account: 10th percentile < 40th -> Red 20; 0.30*20 + 55 = 61 -> yellow (40-69)
    assert (bottom.score, bottom.band) == (61, "yellow")
    middle = score_one("csm-playbook", {**others, **usage(2.5)}, population)
    # 2.5 sits between 2 and 3 among {1,2,2.5,3,4}: rank 50 -> Yellow 60; 0.30*60 + 55 = 73
    assert middle.score == 73


def test_points_100_seed_002_worked_example():
    values = {
        "wau_seat_pct": 80.0,            # WAU: full 15 pts
        "logins_per_user_30d": 6.0,      # sessions/user: half of 15 = 7.5 pts
        "events_per_user_30d": 200.0,    # time in platform: full 10 pts        -> usage 32.5 / 40
        "feature_adoption_pct": 40.0,    # adoption: half of 15 = 7.5
        "tickets_90d": 5.0,              # tickets (inverse): half of 10 = 5    -> 12.5 / 25 scaled to 30 = 15
        "nps": 10.0,                     # NPS: 15
        "csat_pct": 80.0,                # CSAT: 8 of 10
        "email_response_rate_pct": 100.0,  # response to outreach: 5           -> sentiment 28 / 30
    }
    core = score_one("points-100", values)
    assert core.score == 76  # 32.5 + 15 + 28 = 75.5, rounded half up
    assert core.band == "stable"  # 70-89
    assert [round(row[1], 2) for row in core.component_rows] == [81.25, 50.0, 93.33]


def test_ops_thresholds_seed_003_worked_example_and_the_clamped_110():
    population = [{"core_actions_per_user_30d": v} for v in (2.0, 4.0, 6.0, 8.0)]
    values = {
        "login_days_30d": 20.0,            # 15-24 days = 70
        "feature_adoption_pct": 60.0,      # 50-79% = 60
        "core_actions_per_user_30d": 9.0,  # top of five: 90th percentile, above average = 100
        "usage_trend_30d_pct": 15.0,       # increasing = 110                        -> usage 85
        "tickets_90d": 3.0,                # 2-5 = 70
        "meeting_attendance_pct": 80.0,    # 75-99% = 70
        "qbr_attended": True,              # attending = 80                          -> engagement 73.33
        "late_payments": 1.0,              # late once = 60
        "days_to_renewal": 200.0,          # active = 100
        "stakeholder_changes_12m": 0.0,    # no changes = 100                        -> business 86.67
        "csat_pct": 100.0,                 # ~5 = 100
        "nps": 8.0,                        # passive = 50                            -> sentiment 75
    }
    core = score_one("ops-thresholds", values, population)
    # 0.35*85 + 0.25*73.33 + 0.25*86.67 + 0.15*75 = 29.75 + 18.33 + 21.67 + 11.25 = 81 -> healthy (80-100)
    assert (core.score, core.band) == (81, "healthy")
    best = dict(values, login_days_30d=25.0, feature_adoption_pct=80.0)
    clamped = score_one("ops-thresholds", best, population)
    usage = clamped.component_rows[0]
    assert usage[3] == pytest.approx(102.5) and usage[1] == 100.0 and usage[4] is True
    assert "Clamped: product_usage 102.5->100" in explain(clamped, HistoryFacts(), None)


def test_weighted_five_seed_004_worked_example():
    values = {
        "dau_mau_pct": 20.0, "feature_adoption_pct": 80.0, "usage_trend_30d_pct": 0.0,
        "seat_utilisation_pct": 90.0,                                   # usage (70+100+70+100)/4 = 85
        "meeting_attendance_pct": 100.0, "email_response_rate_pct": 60.0, "nps": 7.0,   # (100+100+70)/3 = 90
        "tickets_30d": 2.0, "high_severity_30d": 0.0, "csat_pct": 80.0,  # support (75+100+80)/3 = 85
        "value_events_30d": 10.0, "expansion_12m": False,                # outcomes (100+60)/2 = 80
        "exec_sponsor_engaged_90d": True, "contacts_engaged_90d": 3.0, "champion_present": True,
        "competitor_mentioned": False,                                   # relationship (100+90+100+100)/4 = 97.5
    }
    core = score_one("weighted-five", values)
    # seed 004 calculateHealthScore: Math.round(85*.30 + 90*.25 + 85*.20 + 80*.15 + 97.5*.10) = Math.round(86.75)
    assert (core.score, core.band) == (87, "green")
    model = preset("weighted-five")
    # getHealthCategory: >= 80 green, >= 50 yellow, else red
    assert [model.base.band_for(s).name for s in (80, 79, 50, 49)] == ["green", "yellow", "yellow", "red"]
