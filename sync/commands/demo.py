"""`healthsync demo` (what `make demo` runs): the whole product against the offline sandbox, start to finish.

It starts the four emulators with a synthetic book, writes a config pointing at them, creates our CRM
fields, runs a full cycle, lets a week of changes happen in the emulators, runs an incremental cycle, and
prints what a CS team would see — read back from the emulated CRM, not from our own ledger.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import typer
import yaml
from rich import box
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from healthsync.config.loader import load_config
from healthsync.errors import ConfigError
from healthsync.sync.commands.common import console, require_sandbox, signed, top_reasons
from healthsync.sync.cycle import CycleReport
from healthsync.sync.pipeline import run_cycle
from healthsync.sync.runtime import build_context
from healthsync.sync.store import Store
from healthsync.writeback.setup import required_fields, run_setup

BAND_COLOURS = {"healthy": "green", "at-risk": "yellow", "critical": "red"}
AT_RISK_SHOWN = 12
RENEWALS_SHOWN = 15
TASKS_SHOWN = 20


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


DEFAULT_WORKDIR = Path(".healthsync-demo")
WORKDIR_MARKER = ".healthsync-demo-workdir"  # marks a folder the demo may empty on its next run


def demo(
    accounts: int = typer.Option(200, "--accounts", help="Accounts in the synthetic book (44 or more)."),
    crm: str = typer.Option("salesforce", "--crm", help="Which CRM to emulate: salesforce or hubspot."),
    seed: int = typer.Option(7, "--seed", help="Seed of the synthetic book (same seed, same book)."),
    workdir: Path = typer.Option(DEFAULT_WORKDIR, "--workdir",
                                 help="Where the demo keeps its config, secrets file and store (kept afterwards, "
                                      "so `healthsync explain` works on the demo's data; emptied on the next run)."),
) -> None:
    """Run healthsync end to end against the offline sandbox and show the result."""
    build_sandbox = require_sandbox("app").build_sandbox

    if crm not in ("salesforce", "hubspot"):
        raise typer.BadParameter("choose salesforce or hubspot", param_hint="--crm")
    started = time.monotonic()
    workdir = prepare_workdir(workdir)
    console.print(Panel.fit("[bold]healthsync demo[/] — offline sandbox: emulated "
                            f"{'Salesforce' if crm == 'salesforce' else 'HubSpot'}, Zendesk and Mixpanel, "
                            f"{accounts} synthetic accounts"))
    console.print(f"[dim]Config, secrets and store: {workdir}/ (kept after the demo)[/]")
    server = build_sandbox(seed=seed, accounts=accounts, crm=crm, time_scale=60.0, workdir=workdir / "sandbox",
                           history_days=require_sandbox("history").DEFAULT_HISTORY_DAYS)
    with server:
        settings = load_config(*write_sandbox_config(server, crm, workdir))
        store = Store.open(settings.store.resolved_url)
        try:
            ctx = build_context(settings, store, now=server.clock.now)
            _setup(ctx, settings)
            first, first_calls = _cycle(ctx, server, full=True, title="Full cycle (first run)")
            from healthsync.sandbox.changes import simulate_week

            changes = simulate_week(server, server.portfolio, seed)
            console.print(f"[dim]A week passes in the emulators: {len(changes)} changes (edits, a signed renewal, "
                          "a champion leaving, new tickets, a deleted contact, a week of product events).[/]")
            second, second_calls = _cycle(ctx, server, full=False, title="Incremental cycle (a week later)")
            _show(ctx, server, second)
            _api_calls(first_calls, second_calls)
            _predictive(ctx, settings, store)
        finally:
            store.close()
    console.print(f"\n[bold]Done in {time.monotonic() - started:.1f}s.[/] " + NEXT_STEPS)
    shown = _relative(workdir)
    console.print(f"\nThe demo's config, secrets and store stay in {shown}/: after `set -a; . {shown}/sandbox.env; "
                  "set +a`, `healthsync explain ACCOUNT_ID` explains any account's score from them.")
    console.print("\nTo run every command by hand against a live sandbox:")
    for line in by_hand_lines(BY_HAND_DIR):
        console.print(f"  {line}", soft_wrap=True, markup=False, highlight=False)


BY_HAND_DIR = Path("hs")  # short, so both lines fit a 100-column terminal


def by_hand_lines(directory: Path) -> tuple[str, str]:
    """Start a sandbox that writes its config (and wait for it), then load its secrets and run a cycle."""
    return (f"healthsync sandbox serve --write-config {directory} & "
            f"until [ -f {directory}/sandbox.env ]; do sleep 1; done",
            f"set -a; . {directory}/sandbox.env; set +a; healthsync setup && healthsync run --once")


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def prepare_workdir(workdir: Path) -> Path:
    """An empty folder for this run: one the demo made before is emptied; anything else must be empty."""
    workdir = workdir.expanduser().resolve()
    if workdir.exists() and any(workdir.iterdir()):
        if not (workdir / WORKDIR_MARKER).exists():
            raise ConfigError(f"--workdir {workdir} is not empty and was not made by the demo; pick another folder")
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / WORKDIR_MARKER).write_text("made by `healthsync demo`; emptied by its next run\n")
    return workdir


def write_sandbox_config(server, crm: str, directory: Path) -> tuple[Path, dict[str, str]]:
    """`healthsync.yaml` (secrets as ${VAR}) and `sandbox.env` (their values as KEY=value lines, plus
    HEALTHSYNC_CONFIG) in `directory`; sandbox.env is written last, in one rename, so a waiting shell sees a
    complete pair."""
    path, env = demo_config(server, crm, directory)
    lines = [f"{key}={value}" for key, value in {**env, "HEALTHSYNC_CONFIG": str(path)}.items()]
    partial = directory / "sandbox.env.partial"
    partial.write_text("\n".join(lines) + "\n")
    partial.chmod(0o600)
    partial.replace(directory / "sandbox.env")
    return path, env


NEXT_STEPS = (
    "To point healthsync at a real org: copy config/example.yaml, set crm.kind and its auth, export the secrets "
    "it names, then run `healthsync check`, `healthsync connectors test`, `healthsync setup`, `healthsync plan` "
    "and, when the plan looks right, `healthsync run` (set writeback.dry_run: false to write)."
)


def demo_config(server, crm: str, workdir: Path) -> tuple[Path, dict[str, str]]:
    """A config file for the sandbox and the environment holding its (demo) secrets."""
    from healthsync.sandbox.behaviour import CORE_ACTION_EVENTS, PLAN_FEATURES, VALUE_EVENTS
    from healthsync.sandbox.credentials import DEMO
    from healthsync.sandbox.naming import COMPETITORS

    env = {
        "DEMO_SF_PASSWORD": DEMO.salesforce.password,
        "DEMO_SF_TOKEN": DEMO.salesforce.security_token,
        "DEMO_HUBSPOT_TOKEN": DEMO.hubspot.access_token,
        "DEMO_ZENDESK_TOKEN": DEMO.zendesk.token,
        "DEMO_MIXPANEL_SECRET": DEMO.mixpanel.service_account_secret,
    }
    crm_block = {"kind": crm}
    if crm == "salesforce":
        crm_block["salesforce"] = {"auth": {"mode": "password", "username": DEMO.salesforce.username,
                                            "password": "${DEMO_SF_PASSWORD}", "security_token": "${DEMO_SF_TOKEN}"}}
    else:
        crm_block["hubspot"] = {"auth": {"mode": "private_app", "access_token": "${DEMO_HUBSPOT_TOKEN}"}}
    config = {
        "crm": crm_block,
        "zendesk": {"subdomain": DEMO.zendesk.subdomain,
                    "auth": {"mode": "api_token", "email": DEMO.zendesk.email, "token": "${DEMO_ZENDESK_TOKEN}"},
                    "competitor_words": list(COMPETITORS)},
        "mixpanel": {"project_id": DEMO.mixpanel.project_id,
                     "service_account": {"username": DEMO.mixpanel.service_account_username,
                                         "secret": "${DEMO_MIXPANEL_SECRET}"},
                     "login_event": "login", "core_action_events": list(CORE_ACTION_EVENTS),
                     "feature_events": ["feature_used"], "first_value_event": VALUE_EVENTS[0],
                     "plan_features": {k: list(v) for k, v in PLAN_FEATURES.items()}},
        "store": {"data_dir": str(workdir)},
        "writeback": {"dry_run": False},
        "limits": {"zendesk": {"incremental_per_minute": 30}},
        "sandbox": {"salesforce_url": server.https_url, "hubspot_url": server.http_url,
                    "zendesk_url": server.https_url, "mixpanel_url": server.http_url,
                    "ca_file": str(server.ca_path)},
    }
    history = getattr(getattr(server, "portfolio", None), "history", None)
    if history is not None:  # usage as far back as the renewals a backtest replays
        from healthsync.sandbox.history import HISTORY_LOOKBACK_DAYS

        config["mixpanel"]["backfill_days"] = history.days + HISTORY_LOOKBACK_DAYS
    path = workdir / "healthsync.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path, env


def _setup(ctx, settings) -> None:
    names = {k: v for k, v in settings.owned_write_fields.items() if k != "task_key"}
    outcomes = run_setup(ctx.writer, required_fields(names, settings.crm.field_map.write.task_key))
    counts = Counter(o.status for o in outcomes)
    console.print(f"setup: {counts.get('created', 0)} custom fields created, {counts.get('existed', 0)} existed, "
                  f"{counts.get('failed', 0)} failed")


def _cycle(ctx, server, *, full: bool, title: str) -> tuple[CycleReport, Counter]:
    """Run one cycle and print its summary; returns the report and the API calls the emulators counted."""
    before = server.calls.snapshot()
    started = time.monotonic()
    report = run_cycle(ctx, as_of=server.clock.now(), full=full)
    after = server.calls.snapshot()
    calls: Counter = Counter()
    for key, n in after.items():
        calls[key.split(" ", 1)[0]] += n - before.get(key, 0)
    pulled = ", ".join(f"{name} {r.records:,}" + ("" if r.ok else f" [red](failed: {escape(r.error or '')})[/]")
                       for name, r in report.sources.items())
    applied = report.applied
    wrote = (f"{applied.fields_written} accounts updated, {applied.tasks_created} tasks created"
             if applied else "nothing written (dry run)")
    console.print(f"\n[bold]{title}[/] — {report.status} in {time.monotonic() - started:.1f}s")
    console.print(f"  pulled records: {pulled}")
    console.print(f"  wrote to the CRM: {wrote}")
    console.print(f"  API calls: {calls_line(calls)}", soft_wrap=True)
    return report, calls


def calls_line(calls: Mapping[str, int]) -> str:
    """`salesforce 12 · zendesk 7 · mixpanel 2 (21 in all)`: short enough for one terminal line."""
    parts = " · ".join(f"{name} {n:,}" for name, n in sorted(calls.items()))
    return f"{parts} ({sum(calls.values()):,} in all)" if parts else "none"


def _show(ctx, server, report: CycleReport) -> None:
    results = sorted((s.result for s in report.scored), key=lambda r: (r.score, r.account_id))
    names = _names(ctx)
    _bands(report)
    _at_risk(results, report, names)
    _renewals(results, names)
    _crm_tasks(server, ctx, names)


def _names(ctx) -> dict[str, str]:
    from healthsync.connectors.records import AccountRecord

    return {r.record_id: (AccountRecord.from_json(r.data).name or r.record_id)
            for r in ctx.store.records.iter_stream(ctx.crm, "accounts")}


def _bands(report: CycleReport) -> None:
    table = Table(title="Health distribution", box=box.SIMPLE_HEAD, title_justify="left")
    table.add_column("band")
    table.add_column("accounts", justify="right")
    table.add_column("", no_wrap=True)
    total = max(sum(report.accounts_by_band.values()), 1)
    for band, n in sorted(report.accounts_by_band.items(), key=lambda kv: -kv[1]):
        colour = BAND_COLOURS.get(band, "white")
        table.add_row(f"[{colour}]{band}[/]", str(n), f"[{colour}]" + "█" * round(40 * n / total) + "[/]")
    console.print(table)


def _at_risk(results, report: CycleReport, names) -> None:
    rules = {s.result.account_id: [i.rule_id for i in s.intents] for s in report.scored}
    table = Table(title="At-risk accounts (lowest scores, coloured by band) and why", box=box.SIMPLE_HEAD,
                  title_justify="left", show_edge=False, pad_edge=False, leading=1)
    table.add_column("account", width=20, overflow="ellipsis", no_wrap=True)
    table.add_column("score", justify="right", width=5)
    table.add_column("7d", justify="right", width=3)
    table.add_column("why (points lost)", width=34, overflow="fold")
    table.add_column("rules fired", width=24, overflow="fold")
    for r in results[:AT_RISK_SHOWN]:
        colour = BAND_COLOURS.get(r.band, "white")
        table.add_row(escape(names.get(r.account_id, r.account_id)), f"[{colour}]{r.score}[/]", signed(r.trend_7d),
                      escape(top_reasons(r)), "\n".join(rules.get(r.account_id, [])) or "—")
    console.print(table)


def _renewals(results, names) -> None:
    upcoming = sorted((r for r in results if r.days_to_renewal is not None and -30 <= r.days_to_renewal <= 90),
                      key=lambda r: r.days_to_renewal)
    table = Table(title=f"Renewal pipeline, next 90 days ({len(upcoming)} accounts)", box=box.SIMPLE_HEAD,
                  title_justify="left")
    for col in ("account", "days", "stage", "score", "band"):
        table.add_column(col, justify="right" if col in ("days", "score") else "left")
    for r in upcoming[:RENEWALS_SHOWN]:
        table.add_row(escape(names.get(r.account_id, r.account_id)), str(r.days_to_renewal), r.renewal_stage or "",
                      str(r.score), r.band)
    console.print(table)


def _crm_tasks(server, ctx, names) -> None:
    """The tasks as the CRM holds them: read back from the emulator itself, one line each."""
    tasks = sorted(_emulated_tasks(server, _owner_emails(ctx)), key=lambda t: (t["due"], t["account"], t["key"]))
    statuses = Counter(t["status"] for t in tasks)
    table = Table(title=f"Tasks and escalations now in the CRM, read back from the emulator: {len(tasks)} "
                        f"({', '.join(f'{n} {s}' for s, n in statuses.most_common())})",
                  box=box.SIMPLE_HEAD, title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("account", width=18, overflow="ellipsis", no_wrap=True)
    table.add_column("owner", width=16, overflow="ellipsis", no_wrap=True)
    table.add_column("priority", width=8, no_wrap=True)
    table.add_column("due", width=10, no_wrap=True)
    table.add_column("subject", width=36, overflow="ellipsis", no_wrap=True)
    for t in tasks[:TASKS_SHOWN]:
        owner = str(t["owner"] or "").split("@", 1)[0]  # one org's mail domain: the local part tells who
        table.add_row(escape(names.get(t["account"], t["account"] or "")), escape(owner),
                      str(t["priority"] or ""), t["due"], escape(str(t["subject"] or "")))
    console.print(table)
    keys = [t["key"] for t in tasks]
    more = f"(first {TASKS_SHOWN} shown) " if len(tasks) > TASKS_SHOWN else ""
    console.print(f"{more}distinct dedupe keys: {len(set(keys))}, duplicates: {len(keys) - len(set(keys))}")


def _owner_emails(ctx) -> dict[str, str]:
    from healthsync.connectors.records import UserRecord

    users = (UserRecord.from_json(r.data) for r in ctx.store.records.iter_stream(ctx.crm, "users"))
    return {u.id: u.email for u in users if u.email}


def _emulated_tasks(server, owners: dict[str, str]) -> list[dict]:
    if server.crm == "salesforce":
        emu = server.emulator("salesforce")
        return [{"account": t.get("WhatId"), "owner": owners.get(t.get("OwnerId"), t.get("OwnerId")),
                 "priority": t.get("Priority"), "due": str(t.get("ActivityDate") or "")[:10],
                 "status": t.get("Status"), "subject": t.get("Subject"), "key": t.get("Healthsync_Key__c")}
                for t in emu.records("Task") if t.get("Healthsync_Key__c")]
    emu = server.emulator("hubspot")
    out = []
    for t in emu.objects("tasks"):
        props = t.get("properties", t)
        if not props.get("healthsync_key"):
            continue
        companies = emu.associations("tasks", t.get("id"), "companies")
        owner = str(props.get("hubspot_owner_id") or "")
        out.append({"account": str(companies[0]) if companies else "", "owner": owners.get(owner, owner),
                    "priority": props.get("hs_task_priority"), "due": str(props.get("hs_timestamp") or "")[:10],
                    "status": props.get("hs_task_status"), "subject": props.get("hs_task_subject"),
                    "key": props.get("healthsync_key")})
    return out


def _predictive(ctx, settings, store) -> None:
    """Does the score predict churn? Each preset replayed 90 days before every past renewal of the book."""
    from healthsync.sync.commands.common import pulled_sources
    from healthsync.sync.commands.insights import preset_auc_lines
    from healthsync.sync.gather import gather_facts

    gathered = gather_facts(store, ctx, pulled_sources(settings, store), ctx.now())
    console.print("\n[bold]Does the score predict churn?[/] Each preset's ROC AUC at 90 days before every past "
                  "renewal of the book, from stored facts only (`healthsync backtest`):")
    for line in preset_auc_lines(settings, store, ctx, gathered):
        console.print(f"  {line}", soft_wrap=True)


def _api_calls(a: Mapping[str, int], b: Mapping[str, int]) -> None:
    """The emulators' own counts per source, side by side for the two cycles."""
    table = Table(title="API calls per source (emulator counts)", box=box.SIMPLE_HEAD, title_justify="left")
    for col in ("source", "full cycle", "incremental cycle"):
        table.add_column(col, justify="right" if col != "source" else "left")
    for name in sorted(set(a) | set(b)):
        table.add_row(name, str(a.get(name, 0)), str(b.get(name, 0)))
    table.add_row("[bold]all[/]", str(sum(a.values())), str(sum(b.values())))
    console.print(table)
