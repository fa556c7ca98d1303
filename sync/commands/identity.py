"""`healthsync identity`: how Zendesk organizations and Mixpanel keys matched CRM accounts, and which did not."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from sync.commands.common import config_option, console, opened


def register(app: typer.Typer) -> None:
    app.command("identity")(identity)


def identity(
    config: Path | None = config_option(),
    show: int = typer.Option(20, "--show", help="How many unmatched/ambiguous keys to list per source."),
) -> None:
    """Counts of matched, unmatched and ambiguous keys per source, and the keys that need a human."""
    with opened(config) as (_settings, store):
        links = store.identity_links()
    counts: dict[str, dict[str, int]] = {}
    for link in links:
        counts.setdefault(link.source, {"matched": 0, "unmatched": 0, "ambiguous": 0})[link.status] += 1
    table = Table(title="identity resolution (as of the last cycle)")
    for col in ("source", "matched", "unmatched", "ambiguous"):
        table.add_column(col)
    for source, c in sorted(counts.items()):
        table.add_row(source, str(c["matched"]), str(c["unmatched"]), str(c["ambiguous"]))
    console.print(table)
    problems = [link for link in links if link.status != "matched"]
    if not problems:
        console.print("every key matched exactly one account")
        return
    detail = Table(title="keys that match no account, or several")
    for col in ("source", "key", "status", "candidates"):
        detail.add_column(col, overflow="fold")
    shown: dict[str, int] = {}
    for link in problems:
        if shown.get(link.source, 0) >= show:
            continue
        shown[link.source] = shown.get(link.source, 0) + 1
        detail.add_row(link.source, link.external_key, link.status, ", ".join(link.candidates))
    console.print(detail)
