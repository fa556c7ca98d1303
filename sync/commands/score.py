"""`healthsync score` and `healthsync explain`: score what is in the store, and show one account's full why."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import typer
from rich import box
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table

from healthsync.errors import ConfigError
from healthsync.scoring.base import HealthResult, ScoredAccount
from healthsync.scoring.conditions import format_value
from healthsync.sync.commands.common import Snapshot, config_option, console, signed, snapshot, top_reasons
from healthsync.sync.pipeline import score_accounts

HISTORY_SHOWN = 10


def register(app: typer.Typer) -> None:
    app.command("score")(score)
    app.command("explain")(explain)


def _score(snap: Snapshot) -> list[ScoredAccount]:
    """Scores as of the snapshot, with stored history for trends; nothing is recorded (that is the daemon's job)."""
    return score_accounts(snap.ctx, snap.gathered.facts, snap.as_of, None)


def score(
    config: Path | None = config_option(),
    as_of: str | None = typer.Option(None, "--as-of", help="Score as of this date/time (default: now)."),
    model: str | None = typer.Option(None, "--model", help="A preset name or model file instead of the config's."),
    limit: int = typer.Option(10, "--limit", min=1, help="Rows in the lowest-score and biggest-drop tables."),
) -> None:
    """Score every account in the store and print band counts, the lowest scores and the biggest drops."""
    with snapshot(config, as_of, model=model) as snap:
        results = [s.result for s in _score(snap)]
        names, when, model_name = snap.names, snap.as_of, snap.ctx.model_name
    console.print(f"[bold]{len(results)} accounts[/] scored as of {when:%Y-%m-%d %H:%M} UTC with model {model_name} "
                  "(nothing written)")
    console.print(_band_table(results))
    lowest = sorted(results, key=lambda r: (r.score, r.account_id))[:limit]
    console.print(_result_table(f"Lowest {len(lowest)} scores", lowest, names))
    drops = sorted((r for r in results if r.trend_7d is not None and r.trend_7d < 0),
                   key=lambda r: (r.trend_7d, r.score, r.account_id))[:limit]
    if drops:
        console.print(_result_table(f"Biggest 7-day drops ({len(drops)})", drops, names))
    else:
        console.print("No account dropped in the last 7 days.")


def _band_table(results: list[HealthResult]) -> Table:
    """Bands best first (by the best score in each), with a bar so the shape of the book shows at a glance."""
    members: dict[str, list[int]] = {}
    for r in results:
        members.setdefault(r.band, []).append(r.score)
    total = max(len(results), 1)
    table = Table(title="Bands", box=box.SIMPLE_HEAD, title_justify="left")
    table.add_column("band")
    table.add_column("accounts", justify="right")
    table.add_column("share", justify="right")
    table.add_column("", no_wrap=True)
    for band, scores in sorted(members.items(), key=lambda kv: -max(kv[1])):
        table.add_row(band, str(len(scores)), f"{len(scores) / total:.0%}", "█" * round(30 * len(scores) / total))
    return table


def _result_table(title: str, results: list[HealthResult], names: dict[str, str]) -> Table:
    thin = any(r.insufficient_data for r in results)
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", caption_justify="left",
                  caption="* too little data for a confident score" if thin else None)
    table.add_column("account", max_width=26, overflow="ellipsis", no_wrap=True)
    table.add_column("score", justify="right")
    table.add_column("band")
    table.add_column("7d", justify="right")
    table.add_column("30d", justify="right")
    table.add_column("renewal")
    table.add_column("why (points lost)", overflow="fold", min_width=36)
    for r in results:
        table.add_row(escape(names.get(r.account_id, r.account_id)), str(r.score) + ("*" if r.insufficient_data else ""),
                      r.band, signed(r.trend_7d), signed(r.trend_30d), r.renewal_stage or "", escape(top_reasons(r)))
    return table


def explain(
    account: str = typer.Argument(..., help="CRM account id, or a (case-insensitive) part of its name."),
    config: Path | None = config_option(),
    as_of: str | None = typer.Option(None, "--as-of", help="Explain as of this date/time (default: now)."),
) -> None:
    """One account's full breakdown: components, measures with raw values, history, rules fired and why."""
    with snapshot(config, as_of) as snap:
        match = find_account(account, _score(snap), snap.names)
        r = match.result
        past = snap.store.scores.history(r.account_id, since=snap.as_of - timedelta(days=365),
                                        until=snap.as_of - timedelta(seconds=1))
        name = snap.names.get(r.account_id, r.account_id)
    _print_header(name, r)
    console.print(_measure_table(r))
    console.print(f"[bold]Why:[/] {escape(r.explanation)}")
    if r.active_signals:
        console.print(f"[bold]Active signals:[/] {', '.join(r.active_signals)}")
    _print_rules(match)
    _print_history(past)


def _print_header(name: str, r: HealthResult) -> None:
    days = f"{r.days_to_renewal} days" if r.days_to_renewal is not None else "no renewal date"
    console.print(f"[bold]{escape(name)}[/] ({escape(r.account_id)}) — score [bold]{r.score}[/] ({r.band}) "
                  f"as of {r.as_of:%Y-%m-%d %H:%M} UTC")
    console.print(f"segment {r.segment or 'unknown'} · renewal {r.renewal_stage or 'not in a window'} ({days}) · "
                  f"7d {signed(r.trend_7d) or 'n/a'} · 30d {signed(r.trend_30d) or 'n/a'} · "
                  f"data coverage {r.coverage:.0%}" + (" · INSUFFICIENT DATA" if r.insufficient_data else ""))


def _measure_table(r: HealthResult) -> Table:
    """Components as section rows with their measures under them; "lost" is what each measure costs the total."""
    table = Table(title="Components and measures", box=box.SIMPLE_HEAD, title_justify="left")
    table.add_column("component / measure", max_width=30, overflow="fold")
    table.add_column("signal", max_width=28, overflow="fold")
    table.add_column("raw value", justify="right", max_width=12, overflow="fold")
    table.add_column("score", justify="right")
    table.add_column("weight", justify="right")
    table.add_column("lost", justify="right")
    measures = r.measures
    for c in r.components:
        note = f" (clamped from {c.unclamped:.0f})" if c.clamped and c.unclamped is not None else ""
        table.add_row(f"[bold]{c.name}[/]", "", "", "—" if c.score is None else f"[bold]{c.score:.0f}[/]{note}",
                      f"{c.weight:g}%", "")
        for m in (m for m in measures if m.component == c.name):
            lost = _lost(m)
            table.add_row(f"  {m.name}", m.signal, "no data" if m.raw is None else format_value(m.raw),
                          "—" if m.score is None else f"{m.score:.0f}",
                          f"{m.weight:.0%}" + (" dflt" if m.defaulted else ""), lost)
        table.add_section()
    return table


def _lost(m) -> str:
    """Points this measure costs the total: its share of the score x what it falls short of 100."""
    if m.score is None:
        return ""
    lost = m.weight * (100 - min(max(m.score, 0), 100))
    return f"-{lost:.1f}" if lost >= 0.05 else ""


def _print_rules(match: ScoredAccount) -> None:
    if not match.intents:
        console.print("[bold]Rules fired:[/] none.")
        return
    console.print(f"[bold]Rules fired ({len(match.intents)}):[/]")
    for i in match.intents:
        console.print(Padding(f"• [bold]{i.rule_id}[/] — {i.kind}, {i.priority}, due {i.due_at:%Y-%m-%d}: "
                              f"{escape(i.subject)}", (0, 0, 0, 2)))
        body = "\n".join(line.strip() for line in i.body.splitlines() if line.strip())
        console.print(Padding(f"[dim]{escape(body)}[/]", (0, 0, 0, 6)))


def _print_history(past) -> None:
    if not past:
        console.print("[bold]History:[/] no stored scores yet (each `healthsync run` cycle records one); the "
                      "trends above come from re-scoring the stored facts as of earlier dates.")
        return
    shown = past[-HISTORY_SHOWN:]
    console.print(f"[bold]History[/] (last {len(shown)} of {len(past)} stored): "
                  + ", ".join(f"{p.as_of:%Y-%m-%d} {p.score}" for p in shown))


def find_account(query: str, scored: list[ScoredAccount], names: dict[str, str]) -> ScoredAccount:
    """By CRM id, else by exact name, else by a unique part of the name; several or none is a usage error."""
    by_id = {s.result.account_id: s for s in scored}
    if query in by_id:
        return by_id[query]
    needle = query.strip().lower()
    if not needle:
        raise ConfigError("explain: give a CRM account id or part of an account name")
    exact = [s for s in scored if names.get(s.result.account_id, "").lower() == needle]
    if len(exact) == 1:
        return exact[0]
    hits = exact or [s for s in scored if needle in names.get(s.result.account_id, "").lower()]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise ConfigError(f"no account has the id or a name containing {query!r}: check the spelling, or run "
                          "`healthsync score` to list accounts")
    hits.sort(key=lambda s: names.get(s.result.account_id, ""))
    sample = ", ".join(f"{names.get(h.result.account_id, '')} ({h.result.account_id})" for h in hits[:5])
    more = f" and {len(hits) - 5} more" if len(hits) > 5 else ""
    raise ConfigError(f"{len(hits)} accounts match {query!r}: {sample}{more}; give more of the name or the CRM id")
