"""The fitted model: learnt on the older renewals, judged on the newer, written in our own format (it loads
through the one validation path and scores exactly as fitted), calibrated, repeatable — and refused on too
little history, or without the `insights` extra, with one clear message."""

from __future__ import annotations

import subprocess
import sys

import pytest

from healthsync.config.catalog import resolve_preset_path
from healthsync.config.health_model import load_model
from healthsync.config.settings import YamlSource
from healthsync.insights.backtest import History, Options, replay_cases, scorers
from healthsync.insights.fit import INSIGHTS_MISSING, FitOptions, NotEnoughHistory, fit_model
from tests.insights.factories import book

pytest.importorskip("sklearn")
PRESETS = ("default", "weighted-five")
MODELS = [(n, load_model(YamlSource("preset", n, path=resolve_preset_path(n)).load())) for n in PRESETS]
OPTIONS = FitOptions(bootstrap_rounds=200)


@pytest.fixture(scope="module")
def history():
    return book(180, 45, seed=3)


@pytest.fixture(scope="module")
def fitted(history):
    return fit_model(history, MODELS[0], MODELS, OPTIONS)


def _document(fit):
    return fit.document("fitted", {"calibration": {"horizon_days": 90, "table": [
        [s, round(100 * p, 1)] for s, p in fit.calibration.points]}})


def test_train_and_holdout_are_split_in_time_with_a_third_of_the_churn_held_out(fitted):
    train, held = fitted.train, fitted.holdout
    assert train.last < held.first and train.renewals + held.renewals == 225
    assert held.churned == 14 and train.churned == 31  # 30 % of the 45 churned renewals, the newest


def test_the_written_model_is_ours_and_loads_through_the_one_validation_path(fitted):
    document = _document(fitted)
    model = load_model(document, "fitted")
    assert sum(c["weight"] for c in document["components"]) == pytest.approx(100.0, abs=1e-9)
    measures = [m for c in document["components"] for m in c["measures"]]
    assert 1 <= len(measures) <= OPTIONS.max_measures and all(m["type"] == "thresholds" for m in measures)
    assert all(0 <= step["score"] <= 100 for m in measures for step in m["steps"])
    assert [b["name"] for b in document["bands"]] == ["healthy", "at-risk", "critical"]
    assert document["bands"][0]["min"] > document["bands"][1]["min"] > 0
    assert model.calibration is not None and model.calibration.horizon_days == 90


def test_the_file_scores_every_renewal_exactly_as_the_fit(history, fitted):
    loaded = load_model(_document(fitted), "fitted")
    cases = replay_cases(history, Options()).cases
    (fit_scorer, signal_set), (file_scorer, _) = scorers([("fit", fitted.model), ("file", loaded)], cases)
    assert fit_scorer.score(signal_set.at_cases).scores == file_scorer.score(signal_set.at_cases).scores


def test_it_beats_chance_on_held_out_renewals_and_judges_the_presets_on_the_same_ones(fitted):
    assert fitted.fitted.holdout_auc > 0.7
    assert fitted.fitted.holdout_auc_ci.low <= fitted.fitted.holdout_auc <= fitted.fitted.holdout_auc_ci.high
    assert [r.model for r in fitted.rivals] == list(PRESETS) and all(r.holdout_auc for r in fitted.rivals)


def test_the_calibration_rises_with_the_score(fitted):
    probabilities = [p for _, p in fitted.calibration.points]
    assert all(b >= a for a, b in zip(probabilities, probabilities[1:], strict=False))
    assert probabilities[0] < 0.5 < probabilities[-1]
    assert fitted.calibration_line[1] < 0  # churn log-odds fall as the score rises


def test_the_same_history_fits_the_same_model(history, fitted):
    again = fit_model(history, MODELS[0], MODELS, OPTIONS)
    assert _document(again) == _document(fitted) and again.fitted == fitted.fitted


def test_too_few_churned_renewals_are_refused_with_the_numbers(history):
    few = History(history.facts, history.renewals[:100], history.usage_start)
    churned = sum(not r.won for r in few.renewals)
    with pytest.raises(NotEnoughHistory, match=f"at least 30 churned renewals.*has {churned} among 100"):
        fit_model(few, MODELS[0], MODELS, OPTIONS)
    with pytest.raises(NotEnoughHistory, match="holdout would hold 2 churned renewals .the newest 10% of 20.*need 3"):
        fit_model(few, MODELS[0], MODELS, FitOptions(min_churned=10, holdout_share=0.1))


def test_without_scikit_learn_fit_names_the_extra():
    code = ("import sys; sys.modules['sklearn'] = None\n"
            "from healthsync.insights.fit import _libraries\n"
            "from healthsync.errors import ConfigError\n"
            "try:\n    _libraries()\nexcept ConfigError as e:\n    print(e)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == INSIGHTS_MISSING and "healthsync[insights]" in done.stdout
