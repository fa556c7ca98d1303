"""Score history as rule inputs: 7/30-day deltas, the band transition and consecutive weeks of decline,
computed from stored past results (plain values) around one new score."""

from __future__ import annotations

import operator
from bisect import bisect_right
from collections.abc import Sequence
from datetime import datetime, timedelta
from itertools import islice
from operator import attrgetter

from healthsync.scoring.base import HistoryFacts, PastResult

# a past score stands in for "N days ago" if it is no older than N days plus this slack
_SLACK_7D = timedelta(days=3)
_SLACK_30D = timedelta(days=7)
_MAX_WEEKS = 26
_NO_HISTORY = HistoryFacts()
_by_time = attrgetter("as_of")


class HistoryClock:
    """The instants every account's history is compared at, computed once per run."""

    def __init__(self, as_of: datetime):
        self.as_of = as_of
        # (moment, oldest acceptable) for 7 days ago, 14, ... and for 30 days ago
        self.weeks = [(as_of - timedelta(days=7 * w), as_of - timedelta(days=7 * w) - _SLACK_7D)
                      for w in range(1, _MAX_WEEKS + 1)]
        month = as_of - timedelta(days=30)
        self.month = (month, month - _SLACK_30D)


class ScoreHistory:
    """One account's past results before `as_of`, sorted, with lookups by age."""

    def __init__(self, past: Sequence[PastResult], as_of: datetime | HistoryClock):
        self.clock = as_of if isinstance(as_of, HistoryClock) else HistoryClock(as_of)
        cutoff = self.clock.as_of
        times = list(map(_by_time, past))
        # stored history is usually oldest first and all before the cutoff: then there is nothing to do
        if times and times[-1] < cutoff and all(map(operator.le, times, islice(times, 1, None))):
            self.results = list(past)
            self.times = times
            return
        earlier = [p for p in past if p.as_of < cutoff]
        earlier.sort(key=_by_time)
        self.results = earlier
        self.times = [p.as_of for p in earlier]

    @property
    def previous(self) -> PastResult | None:
        return self.results[-1] if self.results else None

    def score_at(self, moment: datetime, oldest: datetime) -> int | None:
        """The latest score at or before `moment`, if it is not older than `oldest`."""
        i = bisect_right(self.times, moment)
        if i == 0:
            return None
        candidate = self.results[i - 1]
        return candidate.score if candidate.as_of >= oldest else None

    def summarise(self, score: int, band: str) -> HistoryFacts:
        previous = self.previous
        if previous is None:
            return _NO_HISTORY
        week_ago = self.score_at(*self.clock.weeks[0])
        month_ago = self.score_at(*self.clock.month)
        return HistoryFacts(
            previous_score=previous.score,
            previous_band=previous.band,
            previous_as_of=previous.as_of,
            delta_7d=None if week_ago is None else score - week_ago,
            delta_30d=None if month_ago is None else score - month_ago,
            decline_weeks=self.decline_weeks(score),
            band_changed=previous.band != band,
        )

    def decline_weeks(self, score: int) -> int:
        """Weeks in a row, ending now, in which the score fell below the score a week earlier."""
        later = score
        weeks = 0
        for moment, oldest in self.clock.weeks:
            earlier = self.score_at(moment, oldest)
            if earlier is None or not later < earlier:
                break
            weeks += 1
            later = earlier
        return weeks


def summarise_history(past: Sequence[PastResult], as_of: datetime, score: int, band: str) -> HistoryFacts:
    return ScoreHistory(past, as_of).summarise(score, band)
