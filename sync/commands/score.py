"""`healthsync score` and `healthsync explain`: score what is in the store, and show one account's full why."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from connectors.base import ConfigError
from sync.commands.common import config_option, configured_sources, console, opened, parse_as_of
from sync.gather import gather_facts
from sync.pipeline import score_accounts
from sync.runtime import build_context


def register(app: typer.Typer) -> None:
    app.command("score")(score)
    app.command("explain")(explain)


def _scored(config: Path | None, as_of_text: str | None, model: str | None):
    as_of = parse_as_of(as_of_text)
    with opened(config) as (settings, store):
        if model:
            settings = settings.model_copy(update={"health": settings.health.model_validate({"model": model})})
        ctx = build_context(settings, store, connect=False)
        gathered = gather_facts(store, ctx, configured_sources(settings), as_of)
        if not gathered.facts:
            raise ConfigError("the store has no accounts yet: run `healthsync pull` (or `healthsync run --once`) first")
        scored = score_accounts(ctx, gathered.facts, as_of, None, record=False)
        return scored, gathered, as_of, store.score_histories


def score(
    config: Path | None = config_option(),
    as_of: str | None = typer.Option(None, "--as-of", help="Score as of this date/time (default: now)."),
    model: str | None = typer.Option(None, "--model", help="A preset name or model file instead of the config's."),
    limit: int = typer.Option(10, "--limit", help="Rows in the lowest-score and biggest-drop tables."),
) -> None:
    """Score every account in the store and print band counts, the lowest scores and the biggest drops."""
    scored, gathered, when, _ = _scored(config, as_of, model)
    names = gathered.account_names
    results = [s.result for s in scored]
    bands = Table(title=f"Health as of {when.isoformat()} ({len(results)} accounts)")
    bands.add_column("band")
    bands.add_column("accounts", justify="right")
    counts: dict[str, int] = {}
    for r in results:
        counts[r.band] = counts.get(r.band, 0) + 1
    for band, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        bands.add_row(band, str(n))
    console.print(bands)
    console.print(_result_table("Lowest scores", sorted(results, key=lambda r: (r.score, r.account_id))[:limit], names))
    drops = sorted((r for r in results if r.trend_7d is not None and r.trend_7d < 0), key=lambda r: r.trend_7d)
    console.print(_result_table("Biggest 7-day drops", drops[:limit], names))


def _result_table(title: str, results, names) -> Table:
    table = Table(title=title)
    for col in ("account", "score", "band", "7d", "30d", "renewal", "why"):
        table.add_column(col, overflow="fold")
    for r in results:
        table.add_row(names.get(r.account_id, r.account_id), str(r.score), r.band, _signed(r.trend_7d),
                      _signed(r.trend_30d), r.renewal_stage or "", r.explanation[:120])
    return table


def _signed(value: int | None) -> str:
    return "" if value is None else f"{value:+d}"


def explain(
    account: str = typer.Argument(..., help="CRM account id, or a (case-insensitive) part of its name."),
    config: Path | None = config_option(),
    as_of: str | None = typer.Option(None, "--as-of", help="Explain as of this date/time (default: now)."),
) -> None:
    """One account's full breakdown: components, measures with raw values, history, rules fired and why."""
    scored, gathered, when, histories = _scored(config, as_of, None)
    match = _find(account, scored, gathered.account_names)
    r = match.result
    console.print(f"[bold]{gathered.account_names.get(r.account_id, r.account_id)}[/] ({r.account_id}) — "
                  f"score [bold]{r.score}[/] ({r.band}) as of {when.isoformat()}")
    console.print(f"segment {r.segment or '?'} · renewal {r.renewal_stage or '—'} "
                  f"({r.days_to_renewal if r.days_to_renewal is not None else '?'} days) · "
                  f"7d {_signed(r.trend_7d) or 'n/a'} · 30d {_signed(r.trend_30d) or 'n/a'} · "
                  f"coverage {r.coverage:.0%}{' · INSUFFICIENT DATA' if r.insufficient_data else ''}")
    components = Table(title="Components")
    for col in ("component", "weight", "score", "note"):
        components.add_column(col)
    for c in r.components:
        note = f"clamped from {c.unclamped:.0f}" if c.clamped and c.unclamped is not None else ""
        components.add_row(c.name, f"{c.weight:g}", "—" if c.score is None else f"{c.score:.0f}", note)
    console.print(components)
    measures = Table(title="Measures")
    for col in ("component", "measure", "signal", "raw value", "score", "share of total"):
        measures.add_column(col)
    for m in r.measures:
        measures.add_row(m.component, m.name, m.signal, _raw(m.raw), "—" if m.score is None else f"{m.score:.0f}",
                         f"{m.weight:.0%}" + (" (default)" if m.defaulted else ""))
    console.print(measures)
    console.print(f"[bold]Why:[/] {r.explanation}")
    if r.active_signals:
        console.print(f"[bold]Active signals:[/] {', '.join(r.active_signals)}")
    if match.intents:
        rules = Table(title="Rules fired")
        for col in ("rule", "kind", "priority", "due", "subject", "why"):
            rules.add_column(col, overflow="fold")
        for i in match.intents:
            rules.add_row(i.rule_id, i.kind, i.priority, i.due_at.date().isoformat(), i.subject, i.body)
        console.print(rules)
    else:
        console.print("No rule fired.")
    past = histories(since=when.replace(year=when.year - 1), until=when).get(r.account_id, [])
    if past:
        console.print("History: " + ", ".join(f"{p.as_of.date().isoformat()} {p.score}" for p in past[-10:]))


def _raw(value) -> str:
    if value is None:
        return "no data"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _find(query: str, scored, names):
    by_id = {s.result.account_id: s for s in scored}
    if query in by_id:
        return by_id[query]
    hits = [s for s in scored if query.lower() in names.get(s.result.account_id, "").lower()]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise ConfigError(f"no account with id or name matching {query!r}")
    sample = ", ".join(names.get(h.result.account_id, "") for h in hits[:5])
    raise ConfigError(f"{len(hits)} accounts match {query!r} ({sample}…): give the CRM id")
