"""How well low scores warned of churn, in plain Python: ROC AUC, PR AUC, lift, precision and recall, and
bootstrap intervals. A low score is the warning and churn the positive class; ties count half."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

Counts = list[tuple[float, float]]  # per distinct score, lowest first: (churned weight, renewed weight)


class Ranked:
    """Outcomes grouped by score, lowest first, so every metric — and every bootstrap round — is one pass."""

    def __init__(self, scores: Sequence[float], churned: Sequence[bool]):
        if len(scores) != len(churned):
            raise ValueError("scores and outcomes differ in length")
        self.churned = tuple(bool(c) for c in churned)
        order = sorted(range(len(scores)), key=lambda i: scores[i])
        self.groups: list[list[int]] = []
        previous = None
        for i in order:
            if not self.groups or scores[i] != previous:
                self.groups.append([])
                previous = scores[i]
            self.groups[-1].append(i)

    def counts(self, weights: Sequence[int] | None = None) -> Counts:
        churned = self.churned
        out = []
        for group in self.groups:
            c = r = 0.0
            for i in group:
                w = 1 if weights is None else weights[i]
                if churned[i]:
                    c += w
                else:
                    r += w
            out.append((c, r))
        return out


def roc_auc(counts: Counts) -> float | None:
    """P(a churned account scored below a renewed one), ties half: 1.0 is a perfect warning, 0.5 a coin."""
    total_c = sum(c for c, _ in counts)
    total_r = sum(r for _, r in counts)
    if not total_c or not total_r:
        return None
    below = pairs = 0.0
    for c, r in counts:
        pairs += r * (below + 0.5 * c)
        below += c
    return pairs / (total_c * total_r)


def average_precision(counts: Counts) -> float | None:
    """Area under the precision-recall curve, flagging from the lowest score up (one threshold per score)."""
    total_c = sum(c for c, _ in counts)
    if not total_c:
        return None
    tp = fp = area = recall_before = 0.0
    for c, r in counts:
        if not c and not r:
            continue  # a score no resampled outcome has
        tp += c
        fp += r
        recall = tp / total_c
        area += (recall - recall_before) * tp / (tp + fp)
        recall_before = recall
    return area


def lift_top_decile(counts: Counts) -> float | None:
    """Churn rate among the lowest-scored tenth (a tie at the cut taken in proportion) over the overall rate."""
    total_c = sum(c for c, _ in counts)
    total = total_c + sum(r for _, r in counts)
    if not total or not total_c:
        return None
    room, churned_in = total / 10.0, 0.0
    for c, r in counts:
        size = c + r
        take = min(size, room)
        churned_in += c * take / size if size else 0.0
        room -= take
        if room <= 0:
            break
    return (churned_in / (total / 10.0)) / (total_c / total)


def precision_recall(flagged: Sequence[bool], churned: Sequence[bool]) -> tuple[float | None, float | None]:
    """Of the flagged, the share that churned; of the churned, the share flagged."""
    hits = sum(1 for f, c in zip(flagged, churned, strict=True) if f and c)
    flags, churns = sum(map(bool, flagged)), sum(map(bool, churned))
    return (hits / flags if flags else None), (hits / churns if churns else None)


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


def bootstrap(ranked: Ranked, statistics: Sequence[Callable[[Counts], float | None]], rounds: int,
              seed: str) -> list[Interval | None]:
    """95 % percentile intervals of each statistic over `rounds` resamples that draw the churned and the
    renewed outcomes with replacement, each group keeping its size; seeded by `seed`, so repeatable."""
    churned = [i for i, c in enumerate(ranked.churned) if c]
    renewed = [i for i, c in enumerate(ranked.churned) if not c]
    if not churned or not renewed or rounds < 1:
        return [None] * len(statistics)
    rng = random.Random(seed)
    values: list[list[float]] = [[] for _ in statistics]
    n = len(ranked.churned)
    for _ in range(rounds):
        weights = [0] * n
        for i in rng.choices(churned, k=len(churned)):
            weights[i] += 1
        for i in rng.choices(renewed, k=len(renewed)):
            weights[i] += 1
        counts = ranked.counts(weights)
        for slot, statistic in zip(values, statistics, strict=True):
            value = statistic(counts)
            if value is not None:
                slot.append(value)
    return [_percentiles(slot) for slot in values]


def _percentiles(values: list[float]) -> Interval | None:
    if not values:
        return None
    values.sort()
    last = len(values) - 1
    return Interval(values[round(0.025 * last)], values[round(0.975 * last)])
