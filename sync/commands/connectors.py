"""`healthsync connectors test`: one verdict line per configured source — OK, or the reason and the fix."""

from __future__ import annotations

from pathlib import Path

import typer

from connectors.base import CheckResult, HealthsyncError
from connectors.pacing import PacerRegistry
from sync.commands.common import config_option, console, load_settings
from sync.runtime import build_sources


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="The connectors to Salesforce/HubSpot, Zendesk and Mixpanel.", no_args_is_help=True)
    group.command("test")(test)
    app.add_typer(group, name="connectors")


def test(config: Path | None = config_option()) -> None:
    """Check each configured source's credentials with one cheap call. Exit 1 if any fails."""
    settings = load_settings(config)
    try:
        sources, _ = build_sources(settings, PacerRegistry())
    except HealthsyncError as exc:  # e.g. a login in the constructor was refused
        console.print(f"[red]FAIL[/] {settings.crm.kind}: {exc}")
        raise HealthsyncError("a connector failed its check") from None
    failed = 0
    for name, source in sources.items():
        try:
            result = source.check()
        except HealthsyncError as exc:
            result = CheckResult(False, str(exc))
        if result.ok:
            console.print(f"[green]OK[/]   {name}: {result.message}")
        else:
            failed += 1
            hint = f" — fix: {result.fix_hint}" if result.fix_hint else ""
            console.print(f"[red]FAIL[/] {name}: {result.message}{hint}")
    if failed:
        raise HealthsyncError(f"{failed} connector(s) failed their check")
