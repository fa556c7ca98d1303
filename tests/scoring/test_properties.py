"""Hypothesis properties of scoring (issue item 9)."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from healthsync.config.health_model import load_model
from healthsync.scoring import score_portfolio
from healthsync.scoring.model import Populations
from healthsync.scoring.signals import BOOLEAN_SIGNALS

from .scoring_factories import AS_OF, PRESET_NAMES, default_playbook, preset, random_facts

# the direction each preset measure rewards; a preset measure on a signal in neither set fails the test below
HIGHER_IS_BETTER = {
    "dau", "dau_mau_pct", "feature_adoption_pct", "core_actions_per_user_30d", "seat_utilisation_pct", "csat_pct",
    "email_response_rate_pct", "contacts_engaged_90d", "days_to_renewal", "meeting_attendance_pct",
    "usage_trend_30d_pct", "value_events_30d", "login_days_30d", "wau_seat_pct", "logins_per_user_30d",
    "events_per_user_30d", "nps",
}
LOWER_IS_BETTER = {
    "tickets_90d", "tickets_30d", "high_severity_open", "high_severity_30d", "repeat_topics_90d",
    "days_since_two_way_touch", "late_payments", "stakeholder_changes_12m",
}
ABSOLUTE_PRESETS = ("default", "points-100", "weighted-five")  # no percentile measures


def numeric_signals(name):
    return sorted({m.signal for c in preset(name).base.components for m in c.measures} - BOOLEAN_SIGNALS)


def bool_signals(name):
    return sorted({m.signal for c in preset(name).base.components for m in c.measures} & BOOLEAN_SIGNALS)


number = st.one_of(st.none(), st.floats(min_value=-1000, max_value=100_000, allow_nan=False))


@st.composite
def preset_values(draw, names=PRESET_NAMES):
    name = draw(st.sampled_from(names))
    values = {s: draw(number) for s in numeric_signals(name)}
    values.update({s: draw(st.one_of(st.none(), st.booleans())) for s in bool_signals(name)})
    return name, values


def test_every_preset_measure_has_a_known_direction():
    for name in PRESET_NAMES:
        assert set(numeric_signals(name)) <= HIGHER_IS_BETTER | LOWER_IS_BETTER, name


@given(preset_values())
@settings(max_examples=300, deadline=None)
def test_score_is_an_integer_in_0_100_with_exactly_one_band(case):
    name, values = case
    model = preset(name)
    core = model.base.score(values, Populations(), None)
    assert isinstance(core.score, int) and 0 <= core.score <= 100
    containing = [b for i, b in enumerate(model.base.bands)
                  if core.score >= b.min and (i == 0 or core.score < model.base.bands[i - 1].min)]
    assert [b.name for b in containing] == [core.band]
    assert all(row[1] is None or 0 <= row[1] <= 100 for row in core.component_rows)


@given(st.lists(st.integers(min_value=1, max_value=99), min_size=1, max_size=6, unique=True),
       st.integers(min_value=0, max_value=100))
def test_any_valid_band_list_gives_every_score_exactly_one_band(mins, score):
    cuts = sorted(mins, reverse=True) + [0]
    data = {"components": [{"name": "c", "weight": 100, "measures": [
        {"signal": "nps", "type": "linear", "points": [[0, 0], [10, 100]]}]}],
        "bands": [{"name": f"b{i}", "min": m, "colour": "x"} for i, m in enumerate(cuts)]}
    variant = load_model(data).base
    holding = [b.name for i, b in enumerate(variant.bands)
               if score >= b.min and (i == 0 or score < variant.bands[i - 1].min)]
    assert holding == [variant.band_for(score).name]


@given(preset_values(ABSOLUTE_PRESETS), st.data(), st.floats(min_value=0.001, max_value=10_000))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_improving_a_signal_never_lowers_the_score_and_worsening_never_raises_it(case, data, step):
    name, values = case
    candidates = [s for s in numeric_signals(name) if values[s] is not None]
    if not candidates:
        return
    signal = data.draw(st.sampled_from(candidates))
    variant = preset(name).base
    before = variant.score(values, Populations(), None).score
    better = values[signal] + step if signal in HIGHER_IS_BETTER else values[signal] - step
    worse = values[signal] - step if signal in HIGHER_IS_BETTER else values[signal] + step
    assert variant.score({**values, signal: better}, Populations(), None).score >= before
    assert variant.score({**values, signal: worse}, Populations(), None).score <= before


@given(preset_values(ABSOLUTE_PRESETS), st.data())
@settings(max_examples=200, deadline=None)
def test_good_news_on_a_boolean_never_lowers_the_score(case, data):
    name, values = case
    good = {"qbr_attended": True, "expansion_12m": True, "exec_sponsor_engaged_90d": True,
            "champion_present": True, "exec_sponsor_present": True, "champion_left_90d": False,
            "competitor_mentioned": False}
    flips = [s for s in bool_signals(name) if values[s] is not None]
    if not flips:
        return
    signal = data.draw(st.sampled_from(flips))
    variant = preset(name).base
    bad = variant.score({**values, signal: not good[signal]}, Populations(), None).score
    assert variant.score({**values, signal: good[signal]}, Populations(), None).score >= bad


def key(scored):
    result = scored.result
    return (result.account_id, result.score, result.band, result.explanation, result.renewal_stage,
            result.segment, result.active_signals, tuple((i.rule_id, i.dedupe_key, i.body) for i in scored.intents))


@given(st.integers(min_value=0, max_value=10_000), st.sampled_from(PRESET_NAMES), st.randoms(use_true_random=False))
@settings(max_examples=25, deadline=None)
def test_results_do_not_depend_on_account_order(seed, name, shuffler):
    portfolio = random_facts(random.Random(seed), 12)
    shuffled = list(portfolio)
    shuffler.shuffle(shuffled)
    model, playbook = preset(name), default_playbook()
    first = {s.result.account_id: key(s) for s in score_portfolio(portfolio, model, playbook, {}, AS_OF)}
    second = {s.result.account_id: key(s) for s in score_portfolio(shuffled, model, playbook, {}, AS_OF)}
    assert first == second


@given(st.integers(min_value=0, max_value=10_000), st.sampled_from(ABSOLUTE_PRESETS))
@settings(max_examples=25, deadline=None)
def test_without_percentiles_an_account_scores_the_same_alone_or_in_a_portfolio(seed, name):
    portfolio = random_facts(random.Random(seed), 8)
    model = preset(name)
    together = {s.result.account_id: key(s) for s in score_portfolio(portfolio, model, default_playbook(), {}, AS_OF)}
    for facts in portfolio:
        [alone] = score_portfolio([facts], model, default_playbook(), {}, AS_OF)
        assert key(alone) == together[facts.account.id]


@given(st.integers(min_value=0, max_value=10_000))
@settings(max_examples=30, deadline=None)
def test_explanations_fit_a_crm_text_field(seed):
    portfolio = random_facts(random.Random(seed), 6)
    for scored in score_portfolio(portfolio, preset("default"), default_playbook(), {}, AS_OF):
        assert 0 < len(scored.result.explanation) <= 1000
