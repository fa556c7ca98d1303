"""Renewal stage and segment (SPEC §4) and score history as rule inputs."""

from __future__ import annotations

from datetime import timedelta

import pytest

from healthsync.scoring import PastResult
from healthsync.scoring.history import summarise_history
from healthsync.scoring.renewal import DEFAULT_SEGMENTS, RenewalWindows, renewal_stage, segment_for

from .scoring_factories import AS_OF, preset


@pytest.mark.parametrize("days, signed, stage", [
    (121, False, None),
    (120, False, "engage"),
    (91, False, "engage"),
    (90, False, "propose"),
    (61, None, "propose"),
    (60, False, "negotiate"),
    (31, False, "negotiate"),
    (30, False, "escalate"),
    (30, None, "escalate"),
    (0, False, "escalate"),
    (-1, False, "lapsed"),
    (15, True, "renewed"),
    (-5, True, "renewed"),
    (None, False, None),
])
def test_stage_ladder(days, signed, stage):
    assert renewal_stage(days, signed, RenewalWindows()) == stage


def test_windows_per_segment_from_seed_003():
    model = preset("ops-thresholds")
    assert renewal_stage(150, False, model.windows_for("Enterprise")) == "engage"
    assert renewal_stage(150, False, model.windows_for("Mid-Market")) is None
    assert renewal_stage(100, False, model.windows_for("SMB")) is None
    assert renewal_stage(90, False, model.windows_for("SMB")) == "propose"


@pytest.mark.parametrize("acv, segment", [
    (100_000.01, "Enterprise"),
    (100_000, "Mid-Market"),
    (25_000, "Mid-Market"),
    (24_999.99, "SMB"),
    (5_000, "SMB"),
    (4_999, "Self-Serve"),
    (0, "Self-Serve"),
    (None, None),
])
def test_segment_by_acv(acv, segment):
    assert segment_for(acv, DEFAULT_SEGMENTS) == segment


def past(days_ago: float, score: int, band: str = "healthy") -> PastResult:
    return PastResult(AS_OF - timedelta(days=days_ago), score, band)


def test_deltas_use_the_score_about_7_and_30_days_ago():
    history = [past(31, 90), past(8, 85), past(7, 80), past(1, 75, "at-risk")]
    facts = summarise_history(history, AS_OF, 70, "at-risk")
    assert facts.delta_7d == -10
    assert facts.delta_30d == -20
    assert facts.previous_score == 75
    assert facts.band_changed is False


def test_too_old_scores_do_not_stand_in_for_a_week_ago():
    facts = summarise_history([past(11, 90)], AS_OF, 70, "at-risk")
    assert facts.delta_7d is None
    assert facts.previous_score == 90
    assert facts.band_changed is True


def test_results_at_or_after_as_of_are_ignored():
    facts = summarise_history([past(0, 10), past(-3, 10), past(7, 60)], AS_OF, 70, "healthy")
    assert facts.previous_score == 60
    assert facts.delta_7d == 10


def test_consecutive_weeks_of_decline():
    history = [past(28, 95), past(21, 90), past(14, 85), past(7, 80)]
    assert summarise_history(history, AS_OF, 75, "healthy").decline_weeks == 4
    assert summarise_history(history, AS_OF, 80, "healthy").decline_weeks == 0
    broken = [past(28, 80), past(21, 90), past(14, 85), past(7, 80)]
    assert summarise_history(broken, AS_OF, 75, "healthy").decline_weeks == 3


def test_no_history_means_no_trend():
    facts = summarise_history([], AS_OF, 70, "healthy")
    assert (facts.previous_score, facts.delta_7d, facts.delta_30d, facts.decline_weeks) == (None, None, None, 0)
