"""Turns the YAML file plus the environment into `Settings`, or into a list of every problem with its line
(the health model's and playbook's included, so every command rejects what `check` rejects)."""

from __future__ import annotations

import difflib
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, SecretStr, ValidationError

from healthsync.config.catalog import available_presets, presets_dir, resolve_preset_path
from healthsync.config.definitions import Definitions, definitions_of, definitions_of_broken_config
from healthsync.config.documents import is_union, unwrap_annotation
from healthsync.config.envrefs import EnvValue, KeyPath, interpolate
from healthsync.config.secrets import register_model_secrets
from healthsync.config.settings import Settings
from healthsync.config.yaml_lines import (
    LineIndex,
    Problem,
    dotted,
    nearest_line,
    parse_yaml,
    render_problems,
    yaml_line_index,
)
from healthsync.errors import ConfigError

__all__ = [
    "ENV_CONFIG_PATH",
    "Evaluation",
    "Problem",
    "available_presets",
    "collect_problems",
    "evaluate",
    "load_config",
    "dotted",
    "nearest_line",
    "parse_yaml",
    "presets_dir",
    "render_problems",
    "resolve_preset_path",
    "yaml_line_index",
]

ENV_CONFIG_PATH = "HEALTHSYNC_CONFIG"
DEFAULT_CONFIG_NAME = "healthsync.yaml"


@dataclass
class Evaluation:
    """Everything one pass over a config file and the health model and playbook it names produced (check
    prints it; load_config raises on problems)."""

    source: Path | None
    settings: Settings | None = None
    problems: list[Problem] = field(default_factory=list)
    lines: LineIndex = field(default_factory=dict)
    data: Any = None  # the document after ${VAR} interpolation (None until parsed)
    definitions: Definitions | None = None  # the health model and playbook it names (None until validated)

    def line_for(self, path: KeyPath) -> int | None:
        return nearest_line(self.lines, path)


# --- public API ----------------------------------------------------------------------------------


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Load and validate the config; raises ConfigError listing every problem."""
    result = evaluate(path, env)
    if result.problems or result.settings is None:
        raise ConfigError(render_problems(result.problems, result.source))
    return result.settings


def collect_problems(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> list[Problem]:
    """Every problem in the config (empty when it is valid)."""
    return evaluate(path, env).problems


def evaluate(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Evaluation:
    """Locate, read, parse, interpolate and validate the config, collecting problems instead of raising."""
    env = os.environ if env is None else env
    source, problem = _locate(path, env)
    result = Evaluation(source=source)
    if problem:
        result.problems.append(problem)
        return result
    text, problem = _read(source)
    if problem:
        result.problems.append(problem)
        return result
    data, result.lines, parse_problems = parse_yaml(text)
    result.problems.extend(parse_problems)
    if any(p.path == "" for p in parse_problems):  # a syntax error: nothing below it can be trusted
        return result
    if data is None:
        data = {}
    if not isinstance(data, dict):
        result.problems.append(Problem("", 1, f"the file must be a mapping of sections (crm:, zendesk:, ...), got {_kind(data)}"))
        return result
    resolved, env_problems = interpolate(data, env)
    result.data = resolved
    for key_path, message in env_problems:
        result.problems.append(Problem(dotted(key_path), nearest_line(result.lines, key_path), message))
    settings, validation_problems = _validate(resolved, source, result.lines, [kp for kp, _ in env_problems])
    result.problems.extend(validation_problems)
    result.problems = _sorted_unique(result.problems)
    if not result.problems:
        register_model_secrets(settings)
        result.settings = settings
        result.definitions = definitions_of(settings, result.lines)
    else:
        result.definitions = definitions_of_broken_config(resolved, source.resolve().parent, result.lines)
    result.problems.extend(result.definitions.problems)  # after the file's own, in document order
    return result


# --- locating and reading ------------------------------------------------------------------------


def _locate(path: str | Path | None, env: Mapping[str, str]) -> tuple[Path | None, Problem | None]:
    if path is not None and str(path).strip():
        return Path(path).expanduser(), None
    if env.get(ENV_CONFIG_PATH):
        return Path(env[ENV_CONFIG_PATH]).expanduser(), None
    if Path(DEFAULT_CONFIG_NAME).is_file():
        return Path(DEFAULT_CONFIG_NAME), None
    return None, Problem(
        "", None, f"no configuration file: pass --config FILE, set {ENV_CONFIG_PATH}, or create ./{DEFAULT_CONFIG_NAME} "
        "(start from config/example.yaml)"
    )


def _read(source: Path) -> tuple[str, Problem | None]:
    try:
        return source.read_text(encoding="utf-8"), None
    except FileNotFoundError:
        message = f"config file not found: {source}"
    except IsADirectoryError:
        message = f"{source} is a directory; give the path of the YAML file"
    except PermissionError:
        message = f"config file not readable (check its permissions): {source}"
    except UnicodeDecodeError as exc:
        message = f"{source} is not UTF-8 text (byte {exc.start})"
    except OSError as exc:
        message = f"cannot read {source}: {exc.strerror or exc}"
    return "", Problem("", None, message)


# --- validation and error messages ---------------------------------------------------------------


def _validate(
    data: dict[str, Any], source: Path, lines: LineIndex, reported: list[KeyPath]
) -> tuple[Settings | None, list[Problem]]:
    context = {"from_file": True, "base_dir": source.resolve().parent}
    try:
        return Settings.model_validate(data, context=context), []
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            key_path, message = describe_error(error)
            if any(key_path[: len(done)] == done for done in reported):
                continue  # an unset ${VAR} was already reported here; its knock-on errors would only confuse
            problems.append(Problem(dotted(key_path), nearest_line(lines, key_path), message))
        return None, problems


def describe_error(error: Mapping[str, Any]) -> tuple[KeyPath, str]:
    """(key path in the YAML file, message saying what to do) for one pydantic error."""
    if error["type"] == "invalid_key" or "[key]" in error["loc"]:  # `on:` / `yes:` / `1:` keys in YAML 1.1
        loc = error["loc"][:-1] if error["type"] == "invalid_key" else error["loc"]
        key_path, _, _ = _walk(tuple(p for p in loc if p != "[key]"))
        return key_path, (f"key {error.get('input')!r} is not text: quote it (YAML reads bare on/off/yes/no "
                          "as true/false and bare numbers as numbers)")
    key_path, parent_model, annotation = _walk(error["loc"])
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    if kind == "missing":
        return key_path, "required key is missing"
    if kind == "at_path":
        key_path = (*key_path, *(int(p) if p.isdigit() else p for p in ctx["subpath"].split(".")))
        return key_path, ctx["message"]
    if kind == "union_tag_invalid":
        return (*key_path, "mode"), _choice_message("mode", ctx.get("tag"), _union_tags(annotation))
    if kind == "extra_forbidden":
        return key_path, _unknown_key_message(str(key_path[-1]), parent_model)
    if kind == "union_tag_not_found":
        return key_path, f"missing `mode:`; choose one of: {', '.join(_union_tags(annotation))}"
    if kind == "literal_error":
        return key_path, _choice_message(_last_key(key_path), value, _literal_choices(annotation))
    if kind == "secret_literal":
        variable = suggest_variable(key_path)
        return key_path, (f"is a secret and must not be written in the file: write `{_last_key(key_path)}: ${{{variable}}}` "
                          f"and set {variable} (or {variable}_FILE) in the environment")
    if kind == "secret_empty" and isinstance(value, EnvValue) and value.refs:
        return key_path, f"environment variable {value.refs[0]} is set but empty"
    return key_path, _value_message(error, annotation)


def _value_message(error: Mapping[str, Any], annotation: Any) -> str:
    """The message for a value of the wrong type or out of bounds, with what was found where that helps."""
    kind, value = error["type"], error.get("input")
    message = _MESSAGES.get(kind) or _bound_message(kind, error.get("ctx") or {})
    if message:
        return message + _got(value, annotation)
    text = str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind.startswith(("greater", "less", "too_", "string_", "int_", "float_", "bool_")):
        text += _got(value, annotation)
    return text


_MESSAGES = {
    "model_type": "expected a mapping (indented `key: value` lines)",
    "model_attributes_type": "expected a mapping (indented `key: value` lines)",
    "dict_type": "expected a mapping (indented `key: value` lines)",
    "list_type": "expected a list (`- item` lines, or [a, b])",
    "string_type": "expected text",
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
}


def _bound_message(kind: str, ctx: Mapping[str, Any]) -> str | None:
    templates = {
        "greater_than": "must be greater than {gt}",
        "greater_than_equal": "must be at least {ge}",
        "less_than": "must be less than {lt}",
        "less_than_equal": "must be at most {le}",
        "too_short": "needs at least {min_length} item(s)",
        "too_long": "allows at most {max_length} item(s)",
        "string_too_short": "must not be empty",
        "string_pattern_mismatch": "must match the pattern {pattern}",
    }
    template = templates.get(kind)
    try:
        return template.format(**ctx) if template else None
    except KeyError:
        return None


def _walk(loc: tuple[Any, ...]) -> tuple[KeyPath, type[BaseModel] | None, Any]:
    """Follow a pydantic error location through the Settings types: (YAML key path, model holding the last key, its type)."""
    path: list[Any] = []
    current: Any = Settings
    parent: type[BaseModel] | None = None
    for part in loc:
        current = unwrap_annotation(current)
        if is_union(current):
            variant = _variant_for_tag(current, part)
            if variant is not None:  # pydantic puts the discriminator's value into loc; it is not a YAML key
                current = variant
                continue
        path.append(part)
        if isinstance(current, type) and issubclass(current, BaseModel):
            parent = current
            found = current.model_fields.get(part) if isinstance(part, str) else None
            current = found.annotation if found else None
        elif get_origin(current) in (dict, Mapping):
            current = get_args(current)[1]
        elif get_origin(current) in (list, tuple, set):
            current = get_args(current)[0]
        else:
            current = None
    return tuple(path), parent, current


def _union_tags(annotation: Any) -> list[str]:
    tags: list[str] = []
    for member in get_args(unwrap_annotation(annotation)) if annotation is not None else ():
        if isinstance(member, type) and issubclass(member, BaseModel) and "mode" in member.model_fields:
            tags.extend(get_args(member.model_fields["mode"].annotation))
    return tags


def _variant_for_tag(union: Any, tag: Any) -> Any:
    for member in get_args(union):
        if isinstance(member, type) and issubclass(member, BaseModel) and "mode" in member.model_fields:
            if tag in get_args(member.model_fields["mode"].annotation):
                return member
    return None


def _literal_choices(annotation: Any) -> list[str]:
    annotation = unwrap_annotation(annotation)
    return [str(a) for a in get_args(annotation)] if get_origin(annotation) is typing.Literal else []


def _is_secret(annotation: Any) -> bool:
    return unwrap_annotation(annotation) is SecretStr


def _choice_message(key: str, value: Any, choices: list[str]) -> str:
    shown = f"'{value}'" if isinstance(value, (str, int, float, bool)) and not isinstance(value, EnvValue) else "this value"
    hint = ""
    if isinstance(value, str):
        close = difflib.get_close_matches(value.lower(), choices, n=1, cutoff=0.5)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"{shown} is not a valid {key}{hint}; choose one of: {', '.join(choices)}"


def _unknown_key_message(key: str, model: type[BaseModel] | None) -> str:
    allowed = list(model.model_fields) if model else []
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if close:
        return f"unknown key '{key}' (did you mean '{close[0]}'?)"
    return f"unknown key '{key}'; allowed here: {', '.join(allowed)}" if allowed else f"unknown key '{key}'"


def _got(value: Any, annotation: Any) -> str:
    """`, got 'x'` for short plain scalars; never for secrets or values taken from the environment."""
    if _is_secret(annotation):
        return ""
    if isinstance(value, EnvValue):
        return f" (from ${{{value.refs[0]}}})" if value.refs else ""
    if isinstance(value, bool) or value is None:
        return f", got {str(value).lower() if value is not None else 'nothing'}"
    if isinstance(value, (int, float)) or (isinstance(value, str) and len(value) <= 60):
        return f", got {value!r}"
    return f", got {_kind(value)}"


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "text"
    return type(value).__name__


def _last_key(path: KeyPath) -> str:
    keys = [p for p in path if isinstance(p, str)]
    return keys[-1] if keys else "value"


_CONTAINER_KEYS = {"crm", "auth", "service_account"}


def suggest_variable(path: KeyPath) -> str:
    """A conventional environment variable name for a secret at `path` (crm.salesforce.auth.password -> SALESFORCE_PASSWORD)."""
    keys = [str(p) for p in path if isinstance(p, str) and p not in _CONTAINER_KEYS]
    if not keys:
        return "HEALTHSYNC_SECRET"
    owner, leaf = keys[0], keys[-1]
    return (leaf if owner == leaf else f"{owner}_{leaf}").upper()


def _sorted_unique(problems: list[Problem]) -> list[Problem]:
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: (p.file or "", p.line if p.line is not None else 10**9, p.path))
