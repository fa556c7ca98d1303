"""Explanations a CSM can read in a CRM text field (≤ 1,000 characters): the measures that pull the score
down or hold it up, those that moved most since the last score (with raw values), clamps, missing data."""

from __future__ import annotations

from operator import itemgetter

from healthsync.scoring.base import HistoryFacts, PastResult
from healthsync.scoring.conditions import format_value
from healthsync.scoring.model import ScoreCore

LIMIT = 1000
_TOP_DRAGS = 3
_TOP_STRENGTHS = 2
_TOP_MOVES = 3
_MIN_MOVE_POINTS = 0.5
_STRONG = 70.0

# measure rows: (name, component, signal, raw, score, weight, defaulted)
_NAME, _COMPONENT, _SIGNAL, _RAW, _SCORE, _WEIGHT, _DEFAULTED = range(7)
_MISSING_HOW = {"default": "scored as the default", "ignore": "counted as 0"}
_first = itemgetter(0)


def _capped(score: float) -> float:
    return 100.0 if score > 100.0 else (0.0 if score < 0.0 else score)


def _label(row: tuple) -> str:
    return f"{row[_COMPONENT]}/{row[_NAME]} ({row[_SIGNAL]}={format_value(row[_RAW])})"


def _headline(core: ScoreCore, history: HistoryFacts) -> str:
    text = f"Health {core.score}/100 ({core.band})"
    if history.delta_7d is not None:
        text += f", {history.delta_7d:+d} in 7d"
    if history.delta_30d is not None:
        text += f", {history.delta_30d:+d} in 30d"
    if history.previous_band is not None and history.previous_band != core.band:
        text += f", was {history.previous_band}"
    return text + "."


def _drags_and_strengths(scored: list[tuple]) -> list[str]:
    """Drag = points a measure costs the total (weight x (100 - score)); strength = points it brings.
    Ties keep measure order (a stable sort), so the text never depends on anything but the rows."""
    lost_by_row = []
    kept_by_row = []
    for row in scored:
        score = row[_SCORE]
        capped = 100.0 if score > 100.0 else (0.0 if score < 0.0 else score)
        lost_by_row.append((row[_WEIGHT] * (100.0 - capped), row))
        if score >= _STRONG:
            kept_by_row.append((row[_WEIGHT] * capped, row))
    lost_by_row.sort(key=_first, reverse=True)
    parts = []
    drags = [(lost, row) for lost, row in lost_by_row[:_TOP_DRAGS] if lost > 0.05]
    if drags:
        parts.append("Pulling down: " + "; ".join(
            [f"{_label(row)} scored {row[_SCORE]:.0f}, -{lost:.1f} pts" for lost, row in drags]) + ".")
    if kept_by_row:
        kept_by_row.sort(key=_first, reverse=True)
        parts.append("Holding up: " + "; ".join(
            [f"{_label(row)} scored {row[_SCORE]:.0f}" for _, row in kept_by_row[:_TOP_STRENGTHS]]) + ".")
    return parts


def _moves(scored: list[tuple], previous: PastResult | None) -> list[str]:
    if previous is None or not previous.measures:
        return []
    before_scores = previous.measures
    moves = []
    for row in scored:
        before = before_scores.get(row[_NAME])
        if before is None:
            continue
        points = row[_WEIGHT] * (_capped(row[_SCORE]) - _capped(before))
        if points >= _MIN_MOVE_POINTS or points <= -_MIN_MOVE_POINTS:
            moves.append((abs(points), points, row, before))
    if not moves:
        return []
    moves.sort(reverse=True, key=_first)
    texts = [
        f"{row[_COMPONENT]}/{row[_NAME]} {row[_SIGNAL]} {format_value(previous.raw.get(row[_NAME]))}->"
        f"{format_value(row[_RAW])}, score {before:.0f}->{row[_SCORE]:.0f} ({points:+.1f} pts)"
        for _, points, row, before in moves[:_TOP_MOVES]
    ]
    return [f"Moved since {previous.as_of.date().isoformat()}: " + "; ".join(texts) + "."]


def _missing(core: ScoreCore, rows: list[tuple]) -> list[str]:
    how = _MISSING_HOW.get(core.policy, "left out, re-weighted")
    return [f"No data ({how}): " + ", ".join([row[_SIGNAL] for row in rows]) + "."]


def explain(core: ScoreCore, history: HistoryFacts, previous: PastResult | None) -> str:
    scored = []
    missing = []
    for row in core.measure_rows:
        (missing if row[_RAW] is None else scored).append(row)
    parts = [_headline(core, history)]
    parts.extend(_drags_and_strengths(scored))
    if previous is not None and previous.measures:
        parts.extend(_moves(scored, previous))
    clamped = [row for row in core.component_rows if row[4]]
    if clamped:
        parts.append("Clamped: " + "; ".join(
            f"{name} {unclamped:.1f}->{score:.0f}" for name, score, _, unclamped, _ in clamped) + ".")
    if missing:
        parts.extend(_missing(core, missing))
    if core.insufficient_data:
        parts.append(f"Insufficient data: only {core.coverage * 100:.0f}% of the model's weight has data.")
    return fit(parts)


def fit(parts: list[str], limit: int = LIMIT) -> str:
    """Join parts, dropping the tail (marked with an ellipsis) once the limit would be passed."""
    text = " ".join(parts)
    if len(text) <= limit:
        return text
    text = ""
    for part in parts:
        candidate = f"{text} {part}" if text else part
        if len(candidate) <= limit:
            text = candidate
            continue
        room = limit - len(text) - (1 if text else 0) - 1
        if room > 20:
            text = (f"{text} " if text else "") + part[:room].rstrip() + "…"
        elif len(text) + 1 <= limit:
            text += "…"
        break
    return text[:limit]
