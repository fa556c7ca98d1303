"""What a model's score meant for renewals in the history it was fitted on: score -> renewal probability,
written by `healthsync fit` into the fitted model and read by the renewal forecast."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass


@dataclass(frozen=True)
class Calibration:
    """`points`: (score 0..100, probability 0..1 that the renewal closes won), scores strictly increasing,
    as seen `horizon_days` before the renewal; between points the probability is interpolated linearly and
    beyond the ends it stays at the end's value."""

    horizon_days: int
    points: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if len(self.points) < 2 or any(b[0] <= a[0] for a, b in zip(self.points, self.points[1:], strict=False)):
            raise ValueError("a calibration needs two or more points with strictly increasing scores")

    def renewal_probability(self, score: float) -> float:
        points = self.points
        scores = [p[0] for p in points]
        at = bisect_right(scores, score)
        if at == 0:
            return points[0][1]
        if at == len(points):
            return points[-1][1]
        (s0, p0), (s1, p1) = points[at - 1], points[at]
        return p0 + (p1 - p0) * (score - s0) / (s1 - s0)
