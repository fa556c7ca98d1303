"""One validation path for the health model and playbook a config names: each read with its line numbers,
validated by its pydantic document, completed from the config (signal vocabulary, escalation contacts) and
checked against it — the same for `healthsync check`, `run` and every command that scores."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from healthsync.config.documents import DefinitionError, KeyPath
from healthsync.config.health_model import load_model
from healthsync.config.playbook import load_playbook
from healthsync.config.settings import HealthSettings, PlaybookSettings, Settings, YamlSource
from healthsync.config.yaml_lines import LineIndex, Problem, dotted, nearest_line, parse_yaml, render_problems
from healthsync.errors import ConfigError
from healthsync.scoring.model import HealthModel
from healthsync.scoring.playbook import Playbook

__all__ = ["Definitions", "definitions_of", "definitions_of_broken_config", "load_definitions"]

T = TypeVar("T")


@dataclass
class Definitions:
    """The compiled model and playbook (None when invalid), every problem found, and for `check`'s summary
    how each section was validated."""

    model: HealthModel | None = None
    playbook: Playbook | None = None
    problems: list[Problem] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)


def load_definitions(settings: Settings) -> tuple[HealthModel, Playbook]:
    """The health model and playbook `settings` names, ready to score; ConfigError lists every problem."""
    found = definitions_of(settings)
    if found.problems or found.model is None or found.playbook is None:
        raise ConfigError(render_problems(found.problems, None))
    return found.model, found.playbook


def definitions_of(settings: Settings, lines: LineIndex | None = None) -> Definitions:
    """Validate what valid settings name; `lines` (the config's) place problems of inline definitions."""
    return _evaluate(_Config(settings.health.model, settings.playbook.source, dict(settings.writeback.escalations),
                             settings, lines or {}))


def definitions_of_broken_config(data: Mapping[str, Any], base_dir: Path, lines: LineIndex) -> Definitions:
    """The same for a config with problems elsewhere, so `check` still lists the definitions' own problems."""
    context = {"from_file": True, "base_dir": base_dir}
    health = _section_source(HealthSettings, data.get("health"), "model", context)
    playbook = _section_source(PlaybookSettings, data.get("playbook"), "source", context)
    writeback = data.get("writeback")
    escalations = writeback.get("escalations") if isinstance(writeback, dict) else None
    named = {str(k): v for k, v in escalations.items() if isinstance(v, str)} if isinstance(escalations, dict) else {}
    return _evaluate(_Config(health, playbook, named, None, lines))


@dataclass(frozen=True)
class _Config:
    """What the definitions take from the config around them."""

    health: YamlSource | None
    playbook: YamlSource | None
    escalations: dict[str, str]  # role -> email, from writeback.escalations
    settings: Settings | None  # None: the config is broken elsewhere (no signal vocabulary to add)
    lines: LineIndex


def _section_source(settings_type: type, section: Any, key: str, context: dict) -> YamlSource | None:
    try:
        return getattr(settings_type.model_validate(section or {}, context=context), key)
    except ValidationError:
        return None  # the config's own validation reports why


def _evaluate(config: _Config) -> Definitions:
    found = Definitions()
    if config.health is not None:
        model, _ = _validated(found, "health", "model", config.health, config.lines, load_model)
        if model is not None and config.settings is not None:
            model = _with_config_vocabulary(model, config.settings)
        found.model = model
    if config.playbook is not None:
        def build(data: Any, where: str) -> Playbook:
            return load_playbook(data, where, roles=config.escalations)

        found.playbook, document = _validated(found, "playbook", "source", config.playbook, config.lines, build)
        if found.playbook is not None:
            found.problems.extend(_unknown_escalations(config, document, found.playbook))
    return found


def _validated(found: Definitions, section: str, key: str, source: YamlSource, config_lines: LineIndex,  # noqa: PLR0913 (where the section sits, its source, the config's lines and how to build it: independent)
               build: Callable[[Any, str], T]) -> tuple[T | None, Any]:
    """(the built value or None, the document); problems and the note go into `found`."""
    found.notes[section] = str(source)
    read = _read(section, key, source, config_lines)
    found.problems.extend(read.problems)
    if read.unreadable:
        return None, None
    try:
        value = build(read.document, read.where)
    except DefinitionError as exc:
        found.problems.extend(Problem(issue.path(read.where), read.line_of(issue.line_keys or issue.keys),
                                      issue.message, read.file) for issue in exc.issues)
        return None, read.document
    except Exception as exc:  # a bug in healthsync must not turn into a traceback for the admin
        message = f"could not be validated ({type(exc).__name__}: {exc}); please report this as a healthsync bug"
        found.problems.append(Problem(f"{section}.{key}", nearest_line(config_lines, (section, key)), message))
        return None, read.document
    found.notes[section] = f"{source} (validated)"
    return value, read.document


@dataclass
class _Read:
    where: str  # the key path prefix of the document's problems: `health`, or `health.model` when inline
    document: Any = None
    line_of: Callable[[KeyPath], int | None] = lambda keys: None
    file: str | None = None  # the file problems are in, when it is not the config itself
    problems: list[Problem] = field(default_factory=list)
    unreadable: bool = False


def _read(section: str, key: str, source: YamlSource, config_lines: LineIndex) -> _Read:
    """The document with a way to find its lines: inline ones in the config, others in their own file."""
    if source.kind == "inline":
        prefix = (section, key)
        return _Read(f"{section}.{key}", source.inline, lambda keys: nearest_line(config_lines, (*prefix, *keys)))
    assert source.path is not None
    shown = _display_path(source.path)
    try:
        text = source.path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problem = Problem(f"{section}.{key}", nearest_line(config_lines, (section, key)), f"cannot read {source.path}: {exc}")
        return _Read(section, problems=[problem], unreadable=True)
    document, lines, parse_problems = parse_yaml(text)
    problems = [Problem(section + (f".{p.path}" if p.path else ""), p.line, p.message, shown) for p in parse_problems]
    unreadable = any(not p.path for p in parse_problems)  # a syntax error: nothing below it can be trusted
    return _Read(section, document, lambda keys: nearest_line(lines, keys), shown, problems, unreadable)


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _with_config_vocabulary(model: HealthModel, settings: Settings) -> HealthModel:
    """Signal settings the model leaves empty, filled from the config: Zendesk's competitor words and
    Mixpanel's plan features, core actions and first-value event."""
    config, changes = model.signal_config, {}
    if settings.zendesk and settings.zendesk.competitor_words and not config.competitor_words:
        changes["competitor_words"] = tuple(settings.zendesk.competitor_words)
    mixpanel = settings.mixpanel
    if mixpanel:
        if mixpanel.plan_features and not config.features_by_plan:
            changes["features_by_plan"] = {plan.lower(): tuple(names) for plan, names in mixpanel.plan_features.items()}
        if not config.core_action_events:
            changes["core_action_events"] = tuple(mixpanel.core_action_events)
        if mixpanel.first_value_event and not config.value_events:
            changes["value_events"] = (mixpanel.first_value_event,)
    return replace(model, signal_config=replace(config, **changes)) if changes else model


def _unknown_escalations(config: _Config, document: Any, playbook: Playbook) -> list[Problem]:
    """writeback.escalations names playbook roles; one the playbook neither defines nor uses is almost surely a typo."""
    declared = document.get("roles") if isinstance(document, dict) else None
    roles = sorted(set(declared if isinstance(declared, dict) else ())
                   | {rule.action.owner.role for rule in playbook.rules if rule.action.owner.role})
    problems = []
    for name in config.escalations:
        if name not in roles:
            close = difflib.get_close_matches(name, roles, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            known = f"its roles: {', '.join(roles)}" if roles else "it names no roles"
            path = ("writeback", "escalations", name)
            problems.append(Problem(dotted(path), nearest_line(config.lines, path),
                                    f"the playbook has no role '{name}'{hint}; {known}"))
    return problems
