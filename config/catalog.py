"""Where the shipped health-model and playbook presets live, and how a preset name becomes a file.

Layout (the scoring package writes the files):
    config/presets/<name>.yaml            health models  (default, daily-ops, csm-playbook, points-100, ...)
    config/presets/playbook-<name>.yaml   playbooks      (playbook-default.yaml is the playbook `default`)
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

PresetKind = Literal["health", "playbook"]

PLAYBOOK_PREFIX = "playbook-"
# Health models only: `default` is the daily-ops preset (seed 000) under its friendlier name; either file may be the one shipped.
ALIASES = {"default": "daily-ops", "daily-ops": "default"}

_PRESETS_ROOT = Path(__file__).resolve().parent / "presets"
# Tests point this at a temporary directory; None means the shipped presets.
override_dir: Path | None = None


def presets_dir() -> Path:
    """The directory holding every shipped preset."""
    return override_dir if override_dir is not None else _PRESETS_ROOT


def _file_name(name: str, kind: PresetKind) -> str:
    return f"{PLAYBOOK_PREFIX}{name}.yaml" if kind == "playbook" else f"{name}.yaml"


def available_presets(kind: PresetKind = "health") -> list[str]:
    """Names that resolve, aliases included, sorted."""
    directory = presets_dir()
    stems = [p.stem for p in directory.glob("*.yaml")] if directory.is_dir() else []
    if kind == "playbook":
        names = {s.removeprefix(PLAYBOOK_PREFIX) for s in stems if s.startswith(PLAYBOOK_PREFIX)}
    else:
        names = {s for s in stems if not s.startswith(PLAYBOOK_PREFIX)}
        names |= {alias for alias, target in ALIASES.items() if target in names}
    return sorted(names)


def resolve_preset_path(name: str, kind: PresetKind = "health") -> Path | None:
    """The file for preset `name` of `kind`, or None when no such preset is shipped."""
    if kind == "health" and name.startswith(PLAYBOOK_PREFIX):
        return None
    for candidate in (name, ALIASES.get(name) if kind == "health" else None):
        if candidate:
            path = presets_dir() / _file_name(candidate, kind)
            if path.is_file():
                return path
    return None


def looks_like_path(value: str) -> bool:
    """A model/playbook reference is a file path when it has a separator or a YAML suffix; else a preset name."""
    return "/" in value or "\\" in value or value.endswith((".yaml", ".yml"))
