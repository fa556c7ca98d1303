"""`healthsync check`: validate the whole configuration and list every problem at once, with lines and fixes."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import typer

from healthsync.config.loader import Evaluation, Problem, evaluate, render_problems
from healthsync.config.settings import Settings
from healthsync.errors import ConfigError


@dataclass
class CheckReport:
    evaluation: Evaluation
    problems: list[Problem]
    notes: dict[str, str] = field(default_factory=dict)  # section -> how it was validated

    @property
    def ok(self) -> bool:
        return not self.problems


def register(app: typer.Typer) -> None:
    @app.command("check")
    def check(
        config: Path | None = typer.Option(
            None, "--config", "-c", help="Config file (default: $HEALTHSYNC_CONFIG, then ./healthsync.yaml)."
        ),
    ) -> None:
        """Validate the configuration: every problem with its key, line and fix. Exit 0 when valid, 2 when not."""
        report = run_check(config, os.environ)
        if not report.ok:
            # main() prints ConfigError to stderr and exits 2, the exit code scripts expect for a bad config
            raise ConfigError(render_problems(report.problems, report.evaluation.source))
        typer.echo(summarize(report))


def run_check(path: str | Path | None, env: Mapping[str, str]) -> CheckReport:
    """The config's problems and its health model's and playbook's: the one evaluation every command uses."""
    evaluation = evaluate(path, env)
    notes = evaluation.definitions.notes if evaluation.definitions else {}
    return CheckReport(evaluation, list(evaluation.problems), dict(notes))


# --- the OK summary ------------------------------------------------------------------------------


def summarize(report: CheckReport) -> str:
    settings = report.evaluation.settings
    assert settings is not None
    rows = [
        ("crm", _crm_line(settings)),
        ("zendesk", _zendesk_line(settings)),
        ("mixpanel", _mixpanel_line(settings)),
        ("store", settings.store.display_url),
        ("schedule", _schedule_line(settings)),
        ("health", report.notes.get("health", str(settings.health.model))),
        ("playbook", report.notes.get("playbook", str(settings.playbook.source))),
        ("writeback", _writeback_line(settings)),
        ("observability", _observability_line(settings)),
    ]
    if settings.sandbox is not None:
        rows.append(("sandbox", "on: API hosts replaced by the offline emulators"))
    width = max(len(name) for name, _ in rows)
    body = "\n".join(f"  {name.ljust(width)}  {text}" for name, text in rows)
    return f"OK {report.evaluation.source}\n{body}"


def _crm_line(settings: Settings) -> str:
    crm = settings.crm
    auth = getattr(crm, crm.kind).auth
    who = getattr(auth, "username", None) or getattr(auth, "client_id", None) or getattr(auth, "consumer_key", "")
    domain = getattr(auth, "domain", None) or getattr(auth, "instance_url", None)
    detail = ", ".join(str(x) for x in (auth.mode, who, domain) if x)
    return f"{crm.kind} ({detail})"


def _zendesk_line(settings: Settings) -> str:
    zendesk = settings.zendesk
    if zendesk is None:
        return "off (no zendesk: section)"
    return f"{zendesk.subdomain}.zendesk.com ({zendesk.auth.mode})"


def _mixpanel_line(settings: Settings) -> str:
    mixpanel = settings.mixpanel
    if mixpanel is None:
        return "off (no mixpanel: section)"
    return (f"project {mixpanel.project_id} ({mixpanel.residency}), {len(mixpanel.core_action_events)} core actions, "
            f"{len(mixpanel.feature_events)} features, lookback {mixpanel.lookback_days} d")


def _schedule_line(settings: Settings) -> str:
    schedule = settings.schedule
    incremental = (f"every {schedule.incremental_minutes} min" if schedule.incremental_minutes
                   else f"cron '{schedule.incremental_cron}'")
    return f"incremental {incremental}, full resync '{schedule.full_resync_cron}' ({schedule.timezone})"


def _writeback_line(settings: Settings) -> str:
    writeback = settings.writeback
    mode = "dry run (plans only)" if writeback.dry_run else "live"
    return (f"{mode}; owns {len(settings.owned_write_fields)} fields; "
            f"{len(writeback.escalations)} escalation contacts; task cooldown {writeback.task_cooldown_days} d")


def _observability_line(settings: Settings) -> str:
    obs = settings.observability
    endpoint = f"http://{obs.host}:{obs.port}" if obs.enabled else "endpoint off"
    return f"{endpoint}, log {obs.log_level}/{obs.log_format}"
