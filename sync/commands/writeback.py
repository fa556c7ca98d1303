"""`healthsync setup`, `plan` and `apply`: provision our CRM fields, show every write before it happens, do it."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import typer
from rich.table import Table

from connectors.base import ConfigError, HealthsyncError
from sync.commands.common import config_option, configured_sources, console, opened, parse_as_of
from sync.gather import gather_facts
from sync.pipeline import plan_writeback, score_accounts
from sync.runtime import build_context
from writeback.apply import apply_plan
from writeback.base import Plan
from writeback.setup import required_fields, run_setup


def register(app: typer.Typer) -> None:
    app.command("setup")(setup)
    app.command("plan")(plan)
    app.command("apply")(apply)


def setup(config: Path | None = config_option()) -> None:
    """Create our custom fields in the CRM (idempotent): what existed, what was created, what could not be."""
    with opened(config) as (settings, store):
        ctx = build_context(settings, store)
        write = settings.crm.field_map.write.model_dump()
        names = {k: v for k, v in settings.owned_write_fields.items() if k != "task_key"}
        outcomes = run_setup(ctx.writer, required_fields(names, write.get("task_key")))
    table = Table(title=f"setup: {settings.crm.kind} custom fields")
    for col in ("object", "field", "status", "detail"):
        table.add_column(col, overflow="fold")
    for o in outcomes:
        colour = {"existed": "dim", "created": "green", "failed": "red"}[o.status]
        table.add_row(o.spec.object, o.spec.name, f"[{colour}]{o.status}[/]", o.detail)
    console.print(table)
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        raise HealthsyncError(f"{len(failed)} field(s) could not be created; see the detail column")


def _current_plan(config: Path | None, as_of_text: str | None, connect: bool):
    as_of = parse_as_of(as_of_text)
    cm = opened(config)
    settings, store = cm.__enter__()
    ctx = build_context(settings, store, connect=connect)
    gathered = gather_facts(store, ctx, configured_sources(settings), as_of)
    if not gathered.facts:
        cm.__exit__(None, None, None)
        raise ConfigError("the store has no accounts yet: run `healthsync pull` first")
    scored = score_accounts(ctx, gathered.facts, as_of, None, record=False)
    return cm, ctx, plan_writeback(ctx, scored, gathered, as_of), gathered.account_names


def plan(
    config: Path | None = config_option(),
    as_of: str | None = typer.Option(None, "--as-of", help="Plan as of this date/time (default: now)."),
    as_json: bool = typer.Option(False, "--json", help="Print the plan as JSON (for machines)."),
) -> None:
    """Print every CRM write the next apply would make. Changes nothing."""
    cm, _ctx, the_plan, names = _current_plan(config, as_of, connect=False)
    cm.__exit__(None, None, None)
    if as_json:
        typer.echo(json.dumps(the_plan.to_json(), indent=2, default=str))
        return
    print_plan(the_plan, names)


def print_plan(the_plan: Plan, names: dict[str, str]) -> None:
    console.print(f"[bold]Plan for {the_plan.crm}[/] as of {the_plan.as_of.isoformat()}: "
                  f"{len(the_plan.field_updates)} account updates, {len(the_plan.tasks)} tasks "
                  f"({len(the_plan.escalations)} escalations), {len(the_plan.conflicts)} conflicts, "
                  f"{len(the_plan.suppressed)} suppressed, {len(the_plan.unresolved)} unresolved")
    if the_plan.field_updates:
        t = Table(title="Field updates (only what changed)")
        for col in ("account", "fields"):
            t.add_column(col, overflow="fold")
        for u in the_plan.field_updates[:50]:
            t.add_row(names.get(u.account_id, u.account_id), ", ".join(f"{k}={v}" for k, v in u.fields.items()))
        console.print(t)
    if the_plan.tasks:
        t = Table(title="Tasks and escalations")
        for col in ("account", "rule", "kind", "owner", "due", "priority", "subject"):
            t.add_column(col, overflow="fold")
        for task in the_plan.tasks[:100]:
            t.add_row(names.get(task.account_id, task.account_id), task.rule_id, task.kind,
                      task.owner_email or task.owner_id or "", task.due_date.isoformat(), task.priority, task.subject)
        console.print(t)
    for c in the_plan.conflicts:
        console.print(f"[yellow]human edit[/] {names.get(c.account_id, c.account_id)} {c.field}: "
                      f"we wrote {c.ours!r}, the CRM now has {c.theirs!r} → {c.action}")
    for u in the_plan.unresolved:
        console.print(f"[red]unresolved[/] {u.dedupe_key}: {u.reason}")


def apply(
    config: Path | None = config_option(),
    as_of: str | None = typer.Option(None, "--as-of", help="Plan as of this date/time (default: now)."),
) -> None:
    """Execute the current plan against the CRM and print what was written."""
    cm, ctx, the_plan, names = _current_plan(config, as_of, connect=True)
    try:
        report = apply_plan(the_plan, ctx.writer, ctx.store, now=ctx.now(), run_id=f"apply-{uuid.uuid4().hex[:8]}")
    finally:
        cm.__exit__(None, None, None)
    print_plan(the_plan, names)
    console.print(f"applied: {report.fields_written} accounts updated, {report.tasks_created} tasks created, "
                  f"{report.tasks_adopted} found already in the CRM, {report.fields_failed + report.tasks_failed} "
                  f"failed, {report.write_calls} write calls")
    for error in report.errors[:20]:
        console.print(f"[red]failed[/] {error}")
    if not report.ok:
        raise HealthsyncError("some writes failed; they are retried on the next apply or cycle")
