"""`healthsync identity`: how Zendesk organizations and Mixpanel keys matched CRM accounts, and which did not."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from healthsync.connectors.records import OrganizationRecord
from healthsync.sync.commands.common import Snapshot, config_option, console, snapshot
from healthsync.sync.gather import ZENDESK, load
from healthsync.sync.store.rows import IdentityLink

STATUSES = ("matched", "unmatched", "ambiguous")
# What a human does about a key, by (source, status): the resolver's methods say what would make it match.
FIXES = {
    ("zendesk", "unmatched"): "set the org's external_id to the CRM account id, or add the account's domain to it",
    ("zendesk", "ambiguous"): "set the org's external_id to the right CRM account id",
    ("mixpanel", "unmatched"): "send the CRM account id as the group key (free-mail domains never match)",
    ("mixpanel", "ambiguous"): "send the CRM account id as the group key: several accounts share this domain",
}


def register(app: typer.Typer) -> None:
    app.command("identity")(identity)


def identity(
    config: Path | None = config_option(),
    show: int = typer.Option(20, "--show", min=0, help="How many unmatched/ambiguous keys to list per source."),
) -> None:
    """Counts of matched, unmatched and ambiguous keys per source, and the keys that need a human.

    Resolves again from what the store holds now (the result is saved for the next cycle), so it is
    current right after `healthsync pull`.
    """
    with snapshot(config, None) as snap:
        links = snap.store.aggregates.identity_links()
        org_names = _org_names(snap)
        account_names = snap.names
    counts: dict[str, Counter] = {}
    for link in links:
        counts.setdefault(link.source, Counter())[link.status] += 1
    if not counts:
        console.print("No Zendesk organizations or Mixpanel keys in the store: nothing to resolve.")
        return
    console.print(_count_table(counts))
    problems = sorted((link for link in links if link.status != "matched"),
                      key=lambda link: (link.source, link.status, link.external_key))
    if not problems:
        console.print("Every key matched exactly one account.")
        return
    console.print(_problem_table(problems, show, org_names, account_names))
    for source, status in sorted({(p.source, p.status) for p in problems}):
        fix = FIXES.get((source, status))
        if fix:
            console.print(f"fix for {status} {source} keys: {fix}")


def _org_names(snap: Snapshot) -> dict[str, str]:
    return {org.id: org.name or "" for org in load(snap.store, ZENDESK, "organizations", OrganizationRecord)}


def _count_table(counts: dict[str, Counter]) -> Table:
    table = Table(title="Identity resolution", box=box.SIMPLE_HEAD, title_justify="left")
    table.add_column("source")
    for status in STATUSES:
        table.add_column(status, justify="right")
    for source, c in sorted(counts.items()):
        table.add_row(source, *(str(c[status]) for status in STATUSES))
    return table


def _problem_table(problems: list[IdentityLink], show: int, org_names: dict[str, str],
                   account_names: dict[str, str]) -> Table:
    per_source = Counter(p.source for p in problems)
    hidden = {s: max(n - show, 0) for s, n in per_source.items()}
    caption = "; ".join(f"{n} more {s} keys not shown (--show {per_source[s]})" for s, n in hidden.items() if n)
    table = Table(title="Keys that need a human: they match no account, or several", box=box.SIMPLE_HEAD,
                  title_justify="left", caption=caption or None, caption_justify="left")
    table.add_column("source", no_wrap=True)
    table.add_column("key", no_wrap=True, overflow="ellipsis", max_width=32)
    table.add_column("name", no_wrap=True, overflow="ellipsis", max_width=30)
    table.add_column("status", no_wrap=True)
    table.add_column("candidate accounts", overflow="fold")
    shown: Counter = Counter()
    for link in problems:
        if shown[link.source] >= show:
            continue
        shown[link.source] += 1
        candidates = ", ".join(f"{account_names.get(c, c)} ({c})" for c in link.candidates)
        table.add_row(link.source, escape(link.external_key), escape(org_names.get(link.external_key, "")),
                      link.status, escape(candidates))
    return table
