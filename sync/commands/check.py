"""`healthsync check`: validate the whole configuration and list every problem at once, with lines and fixes."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError

from healthsync.config.loader import (
    Evaluation,
    Problem,
    dotted,
    evaluate,
    nearest_line,
    parse_yaml,
    render_problems,
)
from healthsync.config.settings import HealthSettings, PlaybookSettings, Settings, YamlSource
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
    """Config problems plus the health model's and playbook's, as the scoring package judges them."""
    evaluation = evaluate(path, env)
    report = CheckReport(evaluation, list(evaluation.problems))
    compiled: dict[str, Any] = {}
    for section, key, settings_type, loader_name in _DEFINITIONS:
        source = _source_of(evaluation, section, key, settings_type)
        if source is None:
            continue
        problems, report.notes[section], compiled[section] = _validate_definition(
            section, key, source, loader_name, evaluation
        )
        report.problems.extend(problems)
    report.problems.extend(_escalation_problems(evaluation, compiled.get("playbook")))
    return report


def _escalation_problems(evaluation: Evaluation, playbook: Any) -> list[Problem]:
    """writeback.escalations names playbook roles; a role the playbook never uses is almost surely a typo."""
    roles = list(getattr(playbook, "roles", None) or ())
    writeback = evaluation.data.get("writeback") if isinstance(evaluation.data, dict) else None
    escalations = writeback.get("escalations") if isinstance(writeback, dict) else None
    if not roles or not isinstance(escalations, dict):
        return []
    problems = []
    for name in escalations:
        if name not in roles:
            close = difflib.get_close_matches(str(name), roles, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            path = ("writeback", "escalations", name)
            message = f"the playbook has no role '{name}'{hint}; its roles: {', '.join(roles)}"
            problems.append(Problem(dotted(path), nearest_line(evaluation.lines, path), message))
    return problems


# (section, key, settings model, "module:function" in the scoring package)
_DEFINITIONS = (
    ("health", "model", HealthSettings, "healthsync.scoring.model:load_model"),
    ("playbook", "source", PlaybookSettings, "healthsync.scoring.playbook:load_playbook"),
)


def _source_of(evaluation: Evaluation, section: str, key: str, settings_type: type) -> YamlSource | None:
    """The section's YamlSource, even when other parts of the file are broken (so check still lists its problems)."""
    if evaluation.settings is not None:
        return getattr(getattr(evaluation.settings, section), key)
    if evaluation.source is None or not isinstance(evaluation.data, dict):
        return None
    context = {"from_file": True, "base_dir": evaluation.source.resolve().parent}
    try:
        validated = settings_type.model_validate(evaluation.data.get(section) or {}, context=context)
    except ValidationError:
        return None  # the loader has already reported why
    return getattr(validated, key)


def _scoring_function(spec: str) -> tuple[Callable[[dict], Any] | None, type[Exception] | None]:
    """The scoring package's loader and ModelError, or (None, None) while that package doesn't provide them."""
    module_name, _, function_name = spec.partition(":")
    try:
        module = __import__(module_name, fromlist=[function_name])
        from healthsync.scoring.base import ModelError
    except ImportError:
        return None, None
    return getattr(module, function_name, None), ModelError


def _validate_definition(
    section: str, key: str, source: YamlSource, loader_spec: str, evaluation: Evaluation
) -> tuple[list[Problem], str, Any]:
    """(problems, how it was validated, the compiled model/playbook or None)."""
    try:
        document = source.load()
    except ValueError as exc:
        return [Problem(f"{section}.{key}", evaluation.line_for((section, key)), str(exc))], str(source), None
    load, model_error = _scoring_function(loader_spec)
    if load is None or model_error is None:
        return [], f"{source} (contents not validated: {loader_spec.replace(':', '.')} is not available)", None
    # Inline definitions live in this file under section.key; files and presets are reported by their own lines.
    where = f"{section}.{key}" if source.kind == "inline" else section
    try:
        compiled = load(document, where=where)
    except model_error as exc:
        return [_definition_problem(where, source, evaluation, p, m) for p, m in exc.problems], str(source), None
    except Exception as exc:  # a bug in the scoring package must not turn into a traceback for the admin
        message = f"could not be validated ({type(exc).__name__}: {exc}); please report this as a healthsync bug"
        return [Problem(f"{section}.{key}", evaluation.line_for((section, key)), message)], str(source), None
    return [], f"{source} (validated)", compiled


def _definition_problem(where: str, source: YamlSource, evaluation: Evaluation, path: str, message: str) -> Problem:
    parts = _split_path(path)
    if source.kind == "inline":
        return Problem(dotted(parts), nearest_line(evaluation.lines, parts), message)
    prefix = _split_path(where)
    inside_file = parts[len(prefix) :] if parts[: len(prefix)] == prefix else parts
    lines = _lines_of(source.path) if source.path else {}
    shown = _display_path(source.path) if source.path else None
    return Problem(dotted(parts), nearest_line(lines, inside_file), message, file=shown)


def _split_path(path: str) -> tuple[str | int, ...]:
    """'components.usage.measures[0].weight' or '...measures.0.weight' -> key path tuple."""
    tokens = [t for t in re.split(r"[.\[\]]+", path) if t]
    return tuple(int(t) if t.isdigit() else t for t in tokens)


def _lines_of(path: Path) -> dict:
    try:
        _, lines, _ = parse_yaml(path.read_text(encoding="utf-8"))
    except OSError:
        return {}
    return lines


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


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
