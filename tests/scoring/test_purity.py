"""Scoring stays pure: its modules load without pydantic, YAML or the config package (validation lives
in `healthsync.config`, which hands scoring frozen values)."""

from __future__ import annotations

import subprocess
import sys

PROBE = (
    "import pkgutil, importlib, sys\n"
    "import healthsync.scoring as scoring\n"
    "for module in pkgutil.iter_modules(scoring.__path__):\n"
    "    importlib.import_module('healthsync.scoring.' + module.name)\n"
    "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in ('pydantic', 'yaml') "
    "or m.startswith('healthsync.config'))))\n"
)


def test_scoring_imports_no_pydantic_no_yaml_and_no_config():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split() == []
