"""`healthsync connectors test`: one verdict line per configured source — OK, or the reason and the fix."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from healthsync.connectors.base import CheckResult, Source
from healthsync.connectors.pacing import PacerRegistry
from healthsync.errors import ConfigError, HealthsyncError
from healthsync.sync.commands.common import config_option, console, load_settings, short_error
from healthsync.sync.runtime import build_sources

GENERIC_FIX = "check this source's section of the config and the secrets it names, then run the test again"


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="The connectors to Salesforce/HubSpot, Zendesk and Mixpanel.", no_args_is_help=True)
    group.command("test")(test)
    app.add_typer(group, name="connectors")


def test(config: Path | None = config_option()) -> None:
    """Check each configured source's credentials with one cheap call. Exit 1 if any fails."""
    settings = load_settings(config)
    try:
        sources, _writer = build_sources(settings, PacerRegistry())
    except ConfigError:
        raise
    except HealthsyncError as exc:  # a connector that checks credentials while being built
        console.print(verdict("connectors", CheckResult(False, f"could not be set up: {exc}", GENERIC_FIX)),
                      highlight=False)
        raise HealthsyncError("the connectors could not be set up") from None
    failed = [name for name, source in sources.items() if not _check(name, source)]
    if failed:
        raise HealthsyncError(f"{len(failed)} of {len(sources)} connector(s) failed their check: "
                              f"{', '.join(failed)}")


def _check(name: str, source: Source) -> bool:
    try:
        result = source.check()
    except HealthsyncError as exc:  # check() should answer, not raise; say so plainly if it does
        result = CheckResult(False, str(exc), GENERIC_FIX)
    console.print(verdict(name, result), highlight=False)
    return result.ok


def verdict(name: str, result: CheckResult) -> str:
    """`OK   name: what was verified`, or `FAIL name: the reason — fix: what to change` (one logical line)."""
    if result.ok:
        return f"[green]OK[/]   {name}: {escape(result.message)}"
    reason = short_error(result.message, name) if result.fix_hint else result.message
    fix = f" — fix: {escape(result.fix_hint)}" if result.fix_hint else ""
    return f"[red]FAIL[/] {name}: {escape(reason)}{fix}"
