"""`healthsync setup`, `plan` and `apply`: provision our CRM fields, show every write before it happens, do it."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from pathlib import Path

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from healthsync.connectors.pacing import PacerRegistry
from healthsync.errors import ConfigError, HealthsyncError
from healthsync.redaction import redact
from healthsync.sync.commands.common import Snapshot, config_option, console, load_settings, snapshot
from healthsync.sync.pipeline import plan_writeback, score_accounts
from healthsync.sync.runtime import build_sources
from healthsync.writeback.apply import ApplyReport, apply_plan
from healthsync.writeback.base import Plan
from healthsync.writeback.setup import required_fields, run_setup

FIELD_ROWS_SHOWN = 25
TASK_ROWS_SHOWN = 25
VALUE_WIDTH = 36


def register(app: typer.Typer) -> None:
    app.command("setup")(setup)
    app.command("plan")(plan)
    app.command("apply")(apply)


# ------------------------------------------------------------------------------------------------- setup


def setup(config: Path | None = config_option()) -> None:
    """Create our custom fields in the CRM (idempotent): what existed, what was created, what could not be."""
    settings = load_settings(config)
    _sources, writer = build_sources(settings, PacerRegistry())
    names = {k: v for k, v in settings.owned_write_fields.items() if k != "task_key"}
    outcomes = run_setup(writer, required_fields(names, settings.crm.field_map.write.task_key))
    table = Table(title=f"{settings.crm.kind} custom fields", box=box.SIMPLE_HEAD, title_justify="left")
    for col in ("object", "field", "status", "detail"):
        table.add_column(col, overflow="fold")
    for o in outcomes:
        colour = {"existed": "dim", "created": "green", "failed": "red"}[o.status]
        table.add_row(o.spec.object, o.spec.name, f"[{colour}]{o.status}[/]", escape(o.detail or ""))
    console.print(table)
    counts = Counter(o.status for o in outcomes)
    console.print(f"setup: {counts['created']} created, {counts['existed']} existed, {counts['failed']} failed")
    if counts["failed"]:
        raise HealthsyncError(f"{counts['failed']} field(s) could not be created: grant what the detail column "
                              "names, then run `healthsync setup` again")


# ------------------------------------------------------------------------------------------------- plan


def _plan_of(snap: Snapshot) -> Plan:
    """The plan a cycle would make from what the store holds.

    Scores are not saved as history: a stored score seconds old would change every explanation's "moved
    since" part, so a second apply would rewrite fields the first just wrote. Cycles keep the history.
    """
    scored = score_accounts(snap.ctx, snap.gathered.facts, snap.as_of, None)
    return plan_writeback(snap.ctx, scored, snap.gathered, snap.as_of)


def plan(
    config: Path | None = config_option(),
    as_of: str | None = typer.Option(None, "--as-of", help="Plan as of this date/time (default: now)."),
    as_json: bool = typer.Option(False, "--json", help="Print the plan as JSON (for machines)."),
) -> None:
    """Print every CRM write the next apply would make. Writes nothing to the CRM (it does not even connect)."""
    with snapshot(config, as_of, sync_tasks=True) as snap:
        the_plan, names, owners = _plan_of(snap), snap.names, _owner_emails(snap)
    if as_json:
        typer.echo(json.dumps(the_plan.to_json(), indent=2, default=str))
        return
    print_plan(the_plan, names, owners)


def _owner_emails(snap: Snapshot) -> dict[str, str]:
    """CRM user id -> email, so a task's owner reads as a person rather than an id."""
    return {user_id: email for email, user_id in snap.gathered.users_by_email.items()}


def plan_summary(the_plan: Plan) -> str:
    """Two short lines: whose plan, as of when; then the counts."""
    return (f"[bold]Plan for {the_plan.crm}[/] as of {the_plan.as_of:%Y-%m-%d %H:%M} UTC\n"
            f"  {len(the_plan.field_updates)} account updates · {len(the_plan.tasks)} tasks "
            f"({len(the_plan.escalations)} escalations) · {len(the_plan.conflicts)} conflicts · "
            f"{len(the_plan.suppressed)} suppressed · {len(the_plan.unresolved)} unresolved")


def print_plan(the_plan: Plan, names: dict[str, str], owners: dict[str, str] | None = None) -> None:
    console.print(plan_summary(the_plan))
    if the_plan.field_updates:
        console.print(_field_table(the_plan, names))
    if the_plan.tasks:
        console.print(_task_table(the_plan, names, owners or {}))
    for c in the_plan.conflicts:
        console.print(f"[yellow]human edit[/] {escape(names.get(c.account_id, c.account_id))} {c.field}: "
                      f"we wrote {escape(repr(c.ours))}, the CRM now has {escape(repr(c.theirs))} → "
                      f"{c.action.replace('_', ' ')}")
    for u in the_plan.unresolved:
        console.print(f"[red]unresolved[/] {escape(names.get(u.account_id, u.account_id))} {u.rule_id}: "
                      f"{escape(u.reason)}")
    reasons = Counter(s.reason for s in the_plan.suppressed)
    if reasons:
        console.print("suppressed: " + escape("; ".join(f"{n} × {r}" for r, n in reasons.most_common(5))))
    if the_plan.is_empty:
        console.print("Nothing to write: the CRM already holds every value and task.")


def _field_table(the_plan: Plan, names: dict[str, str]) -> Table:
    updates = sorted(the_plan.field_updates, key=lambda u: names.get(u.account_id, u.account_id))
    shown = updates[:FIELD_ROWS_SHOWN]
    table = Table(title=f"Field updates (only what changed): {len(updates)} accounts", box=box.SIMPLE_HEAD,
                  title_justify="left", caption=_more(len(updates), len(shown)), caption_justify="left")
    table.add_column("account", max_width=26, overflow="ellipsis", no_wrap=True)
    table.add_column("fields", overflow="fold")
    for u in shown:
        table.add_row(escape(names.get(u.account_id, u.account_id)),
                      escape(", ".join(f"{k}={_short(v)}" for k, v in sorted(u.fields.items()))))
    return table


def _task_table(the_plan: Plan, names: dict[str, str], owners: dict[str, str]) -> Table:
    """One row per task: account over subject, rule over priority, so the subject gets the width it needs."""
    tasks = sorted(the_plan.tasks, key=lambda t: (t.due_date, names.get(t.account_id, t.account_id), t.rule_id))
    shown = tasks[:TASK_ROWS_SHOWN]
    table = Table(title=f"Tasks and escalations to create: {len(tasks)}", box=box.SIMPLE_HEAD, show_edge=False,
                  pad_edge=False, title_justify="left", caption=_more(len(tasks), len(shown)), caption_justify="left", leading=1)
    table.add_column("account / subject", overflow="fold")
    table.add_column("rule / priority", width=22, overflow="fold")
    table.add_column("owner", width=22, no_wrap=True, overflow="ellipsis")
    table.add_column("due", width=10, no_wrap=True)
    for task in shown:
        kind = " [red]escalation[/]" if task.kind == "escalation" else ""
        owner = task.owner_email or owners.get(task.owner_id or "", task.owner_id or "")
        table.add_row(f"[bold]{escape(names.get(task.account_id, task.account_id))}[/]\n{escape(task.subject)}",
                      f"{task.rule_id}\n[dim]{task.priority}[/]{kind}", escape(owner), task.due_date.isoformat())
    return table


def _more(total: int, shown: int) -> str | None:
    return f"… and {total - shown} more: `healthsync plan --json` lists every write" if total > shown else None


def _short(value) -> str:
    if value is None:
        return "(empty)"
    text = value.isoformat(timespec="minutes") if isinstance(value, datetime) else str(value)
    return text if len(text) <= VALUE_WIDTH else f"{text[:VALUE_WIDTH - 1]}… ({len(text)} chars)"


# ------------------------------------------------------------------------------------------------- apply


def apply(
    config: Path | None = config_option(),
    as_of: str | None = typer.Option(None, "--as-of", help="Plan as of this date/time (default: now)."),
) -> None:
    """Execute the current plan against the CRM (recorded as an `apply` run) and print what was written."""
    if load_settings(config).writeback.dry_run:
        raise ConfigError("writeback.dry_run is true in the config, so apply writes nothing: set "
                          "`writeback: {dry_run: false}` once `healthsync plan` looks right")
    with snapshot(config, as_of, connect=True, sync_tasks=True) as snap:
        the_plan, report = _apply_recorded(snap)
    _print_applied(the_plan, report)
    if not report.ok:
        raise HealthsyncError(f"{report.fields_failed + report.tasks_failed} write(s) failed; they are retried on "
                              "the next apply or cycle")


def _apply_recorded(snap: Snapshot) -> tuple[Plan, ApplyReport]:
    """Plan and apply under one run record, so the ledger's writes point at a run in the store's run history."""
    store, now = snap.store, snap.ctx.now
    run_id = store.runs.start("apply", started_at=now())
    status, error = "failed", None
    try:
        the_plan = _plan_of(snap)
        report = apply_plan(the_plan, snap.ctx.writer, store.ledger, now=now(), run_id=run_id)
        status = "ok" if report.ok else "partial"
        error = None if report.ok else "; ".join(report.errors[:3])
        return the_plan, report
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        store.runs.finish(run_id, status=status, finished_at=now(), error=redact(error))  # run records are shown


def _print_applied(the_plan: Plan, report: ApplyReport) -> None:
    console.print(plan_summary(the_plan))
    console.print(f"applied: {report.fields_written} accounts updated, {report.tasks_created} tasks created, "
                  f"{report.fields_failed + report.tasks_failed} failed ({report.write_calls} write calls)")
    if report.tasks_adopted or report.accounts_adopted:
        console.print(f"  already in the CRM (recorded, not rewritten): {report.tasks_adopted} tasks, "
                      f"{report.accounts_adopted} accounts")
    for error in report.errors[:20]:
        console.print(f"[red]failed[/] {escape(error)}")
    if len(report.errors) > 20:
        console.print(f"… and {len(report.errors) - 20} more failures")
