"""Health model: validation with key paths, measures, missing-data policies, clamping, bands, overrides."""

from __future__ import annotations

import copy

import pytest

from healthsync.config.documents import DefinitionError
from healthsync.config.health_model import load_model
from healthsync.scoring.measures import percentile_rank
from healthsync.scoring.model import Populations

from .scoring_factories import preset_dict


def tiny_model(**changes) -> dict:
    model = {
        "name": "tiny",
        "components": [
            {"name": "usage", "weight": 60, "measures": [
                {"name": "logins", "signal": "login_days_30d", "type": "thresholds",
                 "steps": [{"min": 25, "score": 100}, {"min": 15, "score": 70}], "else": 30},
                {"name": "trend", "signal": "usage_trend_30d_pct", "type": "thresholds",
                 "steps": [{"above": 10, "score": 110}], "else": 80},
            ]},
            {"name": "support", "weight": 40, "measures": [
                {"name": "tickets", "signal": "tickets_90d", "type": "inverse", "best": 0, "worst": 10},
            ]},
        ],
        "bands": [{"name": "good", "min": 70, "colour": "green"}, {"name": "bad", "min": 0, "colour": "red"}],
        "missing_data": {"policy": "reweight", "default": 50, "min_coverage_pct": 50},
    }
    model.update(changes)
    return model


def score(model_dict, values, segment=None):
    model = load_model(model_dict)
    return model.variant_for(segment).score(values, Populations(), segment)


def problems_of(data) -> list[tuple[str, str]]:
    with pytest.raises(DefinitionError) as caught:
        load_model(data)
    return caught.value.problems


def test_weights_must_sum_to_100_with_the_key_path():
    data = tiny_model()
    data["components"][1]["weight"] = 35
    assert ("health.components", "weights sum to 95, must be 100") in problems_of(data)


def test_all_problems_are_listed_at_once():
    data = tiny_model()
    data["components"][0]["measures"][0]["signal"] = "logins_per_fortnight"
    data["components"][1]["measures"][0]["worst"] = -1
    data["bands"][1]["min"] = 10
    data["missing_data"]["policy"] = "guess"
    paths = [path for path, _ in problems_of(data)]
    assert "health.components[0].measures[0].signal" in paths
    assert "health.components[1].measures[0].worst" in paths
    assert "health.bands[1].min" in paths
    assert "health.missing_data.policy" in paths
    with pytest.raises(DefinitionError) as caught:
        load_model(data)
    assert "health.missing_data.policy: must be one of" in str(caught.value)


@pytest.mark.parametrize("mutate, path", [
    (lambda d: d["components"][0]["measures"][0].pop("else"), "health.components[0].measures[0].else"),
    (lambda d: d["components"][0]["measures"][0].update(type="magic"), "health.components[0].measures[0].type"),
    (lambda d: d["components"][0]["measures"][0]["steps"].append({"score": 5}),
     "health.components[0].measures[0].steps[2]"),
    (lambda d: d["components"][0].update(weight="sixty"), "health.components[0].weight"),
    (lambda d: d.update(bands=[{"name": "a", "min": 0}, {"name": "b", "min": 50}]), "health.bands"),
    (lambda d: d.update(healthy_bands=["great"]), "health.healthy_bands"),
    (lambda d: d.update(segment_overrides={"Galactic": {"bands": []}}), "health.segment_overrides.Galactic"),
    (lambda d: d.update(renewal={"windows": {"engage": 30, "propose": 90}}), "health.renewal.windows"),
    (lambda d: d.update(colour="blue"), "health"),
    (lambda d: d["components"][1]["measures"].append(
        {"name": "tickets", "signal": "tickets_30d", "type": "inverse", "best": 0, "worst": 5}),
     "health.components[1].measures"),
])
def test_each_mistake_names_its_key_path(mutate, path):
    data = tiny_model()
    mutate(data)
    assert path in [p for p, _ in problems_of(data)]


def test_not_a_mapping_is_one_clear_problem():
    assert problems_of(["components"]) == [("health", "must be a mapping (the parsed health model YAML)")]


def test_thresholds_first_match_and_component_weighting():
    core = score(tiny_model(), {"login_days_30d": 20.0, "usage_trend_30d_pct": 0.0, "tickets_90d": 5.0})
    # usage = (70 + 80) / 2 = 75; support = 50; total = 0.6 * 75 + 0.4 * 50 = 65
    assert core.score == 65
    assert core.band == "bad"
    assert core.coverage == pytest.approx(1.0)


def test_values_above_100_are_clamped_per_component_and_said_so():
    core = score(tiny_model(), {"login_days_30d": 30.0, "usage_trend_30d_pct": 50.0, "tickets_90d": 0.0})
    usage = core.component_rows[0]
    assert usage[1] == 100.0 and usage[3] == pytest.approx(105.0) and usage[4] is True
    assert core.score == 100
    from healthsync.scoring.base import HistoryFacts
    from healthsync.scoring.explain import explain
    assert "Clamped: usage 105.0->100" in explain(core, HistoryFacts(), None)


def test_reweight_skips_missing_measures_and_components():
    core = score(tiny_model(), {"login_days_30d": 30.0, "usage_trend_30d_pct": None, "tickets_90d": None})
    assert core.score == 100  # only logins had data
    assert core.coverage == pytest.approx(0.3)
    assert core.insufficient_data is True
    assert core.component_rows[1][1] is None


def test_default_policy_scores_missing_as_the_default():
    data = tiny_model(missing_data={"policy": "default", "default": 40, "min_coverage_pct": 0})
    core = score(data, {"login_days_30d": 30.0, "usage_trend_30d_pct": 0.0, "tickets_90d": None})
    # usage = (100 + 80) / 2 = 90; support = 40 -> 0.6 * 90 + 0.4 * 40 = 70
    assert core.score == 70
    assert core.insufficient_data is False


def test_ignore_policy_counts_missing_as_nothing():
    data = tiny_model(missing_data={"policy": "ignore"})
    core = score(data, {"login_days_30d": 30.0, "usage_trend_30d_pct": 0.0, "tickets_90d": None})
    assert core.score == 54  # 0.6 * 90 + 0.4 * 0


def test_no_data_at_all_gives_the_default_flagged():
    core = score(tiny_model(), {})
    assert core.score == 50
    assert core.insufficient_data is True


def test_segment_override_replaces_bands_and_keeps_components():
    data = tiny_model(segment_overrides={"Enterprise": {"bands": [
        {"name": "good", "min": 90, "colour": "green"}, {"name": "bad", "min": 0, "colour": "red"}]}})
    values = {"login_days_30d": 30.0, "usage_trend_30d_pct": 0.0, "tickets_90d": 2.0}
    assert score(data, values).band == "good"
    assert score(data, values, "Enterprise").band == "bad"
    assert score(data, values, "Enterprise").score == score(data, values).score


def test_percentile_rank_is_mid_rank_and_order_free():
    population = sorted([1.0, 2.0, 2.0, 3.0])
    assert percentile_rank(2.0, population) == pytest.approx(50.0)
    assert percentile_rank(3.0, population) == pytest.approx(87.5)
    assert percentile_rank(0.0, population) == 0.0


def test_linear_measure_interpolates_and_clamps():
    data = tiny_model()
    data["components"][1]["measures"][0] = {"name": "csat", "signal": "csat_pct", "type": "linear",
                                            "points": [[50, 0], [90, 80], [100, 100]]}
    model = load_model(data)
    measure = model.base.components[1].measures[0]
    assert measure.score(70.0) == pytest.approx(40.0)
    assert measure.score(95.0) == pytest.approx(90.0)
    assert measure.score(10.0) == 0.0 and measure.score(120.0) == 100.0


def test_presets_are_not_mutated_by_loading():
    data = preset_dict("default")
    before = copy.deepcopy(data)
    load_model(data)
    assert data == before


def test_percentiles_within_segment_use_only_that_segments_accounts():
    from healthsync.scoring.base import Signals

    data = tiny_model()
    data["components"][1]["measures"][0] = {
        "name": "nps_rank", "signal": "nps", "type": "percentile", "within": "segment",
        "steps": [{"above": 80, "score": 100}, {"min": 40, "score": 60}], "else": 20}
    model = load_model(data)
    accounts = [Signals("e1", {"nps": 9.0}), Signals("e2", {"nps": 10.0}),
                Signals("s1", {"nps": 1.0}), Signals("s2", {"nps": 2.0}), Signals("s3", {"nps": 3.0})]
    segments = ["Enterprise", "Enterprise", "SMB", "SMB", "SMB"]
    populations = Populations.build(model.percentile_measures(), accounts, segments)
    measure = model.base.components[1].measures[0]
    # among Enterprise {9, 10}, 9 is at the 25th percentile; among everyone it would be the 70th
    assert measure.rank(9.0, populations.get(measure, "Enterprise")) == pytest.approx(25.0)
    assert measure.rank(9.0, populations.get(measure, None)) == pytest.approx(70.0)
    assert measure.score(3.0, populations.get(measure, "SMB")) == 100.0
