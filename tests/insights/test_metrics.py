"""The warning metrics against scikit-learn's own (a low score warns, churn is the positive class), and the
bootstrap: seeded, bracketing its estimate, and wider on fewer outcomes."""

from __future__ import annotations

import random

import pytest

from healthsync.insights.metrics import (
    Ranked,
    average_precision,
    bootstrap,
    lift_top_decile,
    precision_recall,
    roc_auc,
)

sklearn_metrics = pytest.importorskip("sklearn.metrics")


def _sample(n: int, seed: int, ties: int = 20) -> tuple[list[int], list[bool]]:
    rng = random.Random(seed)
    churned = [rng.random() < 0.2 for _ in range(n)]
    scores = [min(100, max(0, round(rng.gauss(45 if c else 60, 15) / (100 / ties)) * (100 // ties))) for c in churned]
    return scores, churned


@pytest.mark.parametrize("seed", range(5))
def test_auc_and_pr_auc_match_scikit_learn_with_ties(seed):
    scores, churned = _sample(300, seed)
    counts = Ranked(scores, churned).counts()
    risk = [-s for s in scores]
    assert roc_auc(counts) == pytest.approx(sklearn_metrics.roc_auc_score(churned, risk))
    assert average_precision(counts) == pytest.approx(sklearn_metrics.average_precision_score(churned, risk))


def test_perfect_useless_and_degenerate_rankings():
    assert roc_auc(Ranked([10, 20, 80, 90], [True, True, False, False]).counts()) == 1.0
    assert roc_auc(Ranked([80, 90, 10, 20], [True, True, False, False]).counts()) == 0.0
    assert roc_auc(Ranked([50, 50, 50, 50], [True, False, True, False]).counts()) == 0.5
    assert roc_auc(Ranked([1, 2], [False, False]).counts()) is None
    assert average_precision(Ranked([1, 2], [False, False]).counts()) is None


def test_lift_counts_the_lowest_tenth_and_splits_a_tie_at_the_cut():
    scores = list(range(100))
    churned = [s < 5 for s in scores]  # every churner in the bottom tenth: half of it churned, base 5 %
    assert lift_top_decile(Ranked(scores, churned).counts()) == pytest.approx(10.0)
    # 20 accounts tied at the bottom, 4 of them churned: the tenth (10 accounts) is taken from the tie pro rata
    scores = [0] * 20 + list(range(1, 81))
    churned = [i < 4 for i in range(20)] + [False] * 80
    assert lift_top_decile(Ranked(scores, churned).counts()) == pytest.approx((2 / 10) / (4 / 100))


def test_precision_and_recall_of_a_flag():
    assert precision_recall([True, True, False, False], [True, False, True, False]) == (0.5, 0.5)
    assert precision_recall([False, False], [True, False]) == (None, 0.0)


def test_bootstrap_is_repeatable_brackets_the_estimate_and_narrows_with_more_outcomes():
    scores, churned = _sample(400, 1)
    ranked = Ranked(scores, churned)
    first = bootstrap(ranked, (roc_auc, average_precision), 300, "seed-a")
    assert first == bootstrap(ranked, (roc_auc, average_precision), 300, "seed-a")
    assert first != bootstrap(ranked, (roc_auc, average_precision), 300, "seed-b")
    auc = roc_auc(ranked.counts())
    assert first[0].low < auc < first[0].high
    small = Ranked(scores[:60], churned[:60])
    (narrow,), (wide,) = bootstrap(ranked, (roc_auc,), 300, "s"), bootstrap(small, (roc_auc,), 300, "s")
    assert wide.high - wide.low > narrow.high - narrow.low
    assert bootstrap(Ranked([1, 2], [False, False]), (roc_auc,), 50, "s") == [None]
