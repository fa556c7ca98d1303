"""`${VAR}` interpolation for config values, with Docker/Kubernetes `VAR_FILE` secrets.

Syntax: `${VAR}`, `${VAR:-default}` (default used when VAR is unset), and `$$` for a literal `$`.
When VAR is unset but VAR_FILE is set, the file's content is used with its trailing newline removed.
Interpolated strings come back as `EnvValue` (a str) remembering which variables made them, so the
settings can tell a secret taken from the environment from one written literally in the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_TOKEN = re.compile(r"\$\$|\$\{([^}]*)\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WHOLE_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

KeyPath = tuple[str | int, ...]


class EnvValue(str):
    """A string produced by interpolation.

    refs:       the variable names referenced, in order
    resolved:   the values that were substituted (for secret detection inside URLs)
    whole:      the raw text was exactly one `${VAR}` and nothing else
    unresolved: a referenced variable was missing; a problem was already reported for this path
    """

    refs: tuple[str, ...]
    resolved: tuple[str, ...]
    whole: bool
    unresolved: bool

    def __new__(cls, value: str, *, refs=(), resolved=(), whole=False, unresolved=False) -> EnvValue:
        obj = super().__new__(cls, value)
        obj.refs, obj.resolved, obj.whole, obj.unresolved = tuple(refs), tuple(resolved), whole, unresolved
        return obj

    def __reduce__(self):  # keep pickling/copying working despite the extra attributes
        return (str, (str(self),))


def _read_secret_file(name: str, file_path: str) -> tuple[str | None, str | None]:
    """(value, problem) for VAR_FILE."""
    path = Path(file_path).expanduser()
    try:
        content = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, f"{name} is not set and {name}_FILE={file_path} does not exist"
    except IsADirectoryError:
        return None, f"{name}_FILE={file_path} is a directory, not a file"
    except PermissionError:
        return None, f"{name}_FILE={file_path} is not readable (check its permissions)"
    except UnicodeDecodeError:
        return None, f"{name}_FILE={file_path} is not UTF-8 text"
    except OSError as exc:
        return None, f"{name}_FILE={file_path} cannot be read ({exc.strerror or exc})"
    return content.rstrip("\r\n"), None


def resolve_variable(name: str, default: str | None, env: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(value, problem) for one reference: VAR, else VAR_FILE, else the default."""
    if name in env:
        return env[name], None
    file_path = env.get(f"{name}_FILE")
    if file_path:
        return _read_secret_file(name, file_path)
    if default is not None:
        return default, None
    return None, f"environment variable {name} is not set (set it, or {name}_FILE)"


def interpolate_string(raw: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
    """Substitute references in one string; returns (value, problems). Plain strings come back unchanged."""
    if "$" not in raw:
        return raw, []
    problems: list[str] = []
    refs: list[str] = []
    resolved: list[str] = []
    pieces: list[str] = []
    position = 0
    for match in _TOKEN.finditer(raw):
        pieces.append(raw[position : match.start()])
        position = match.end()
        if match.group(0) == "$$":
            pieces.append("$")
            continue
        name, _, default = match.group(1).partition(":-")
        has_default = ":-" in match.group(1)
        if not _NAME.fullmatch(name):
            problems.append(f"'${{{match.group(1)}}}' is not a valid reference: use ${{NAME}} with letters, digits, _")
            continue
        value, problem = resolve_variable(name, default if has_default else None, env)
        refs.append(name)
        if problem:
            problems.append(problem)
            continue
        resolved.append(value)
        pieces.append(value)
    tail = raw[position:]
    if "${" in tail:
        problems.append(f"unclosed reference in {raw!r}: use ${{NAME}}")
    pieces.append(tail)
    if not refs and not problems:
        return "".join(pieces), []
    return (
        EnvValue(
            "".join(pieces),
            refs=refs,
            resolved=resolved,
            whole=bool(_WHOLE_REFERENCE.fullmatch(raw)),
            unresolved=bool(problems),
        ),
        problems,
    )


def interpolate(data: Any, env: Mapping[str, str], path: KeyPath = ()) -> tuple[Any, list[tuple[KeyPath, str]]]:
    """Interpolate every string in a YAML document; returns (new document, [(key path, problem)])."""
    if isinstance(data, str):
        value, messages = interpolate_string(data, env)
        return value, [(path, m) for m in messages]
    if isinstance(data, dict):
        out: dict[Any, Any] = {}
        problems: list[tuple[KeyPath, str]] = []
        for key, item in data.items():
            out[key], found = interpolate(item, env, (*path, key))
            problems.extend(found)
        return out, problems
    if isinstance(data, list):
        items, problems = [], []
        for index, item in enumerate(data):
            value, found = interpolate(item, env, (*path, index))
            items.append(value)
            problems.extend(found)
        return items, problems
    return data, []
