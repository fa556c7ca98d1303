"""Shared end-to-end fixtures: the CRM state a clean run leaves behind, computed once per configuration."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.crm import crm_state
from tests.e2e.harness import pinned_env

ROOT = Path(__file__).resolve().parents[2]
BOOK_SIZE = 44  # the smallest book that holds every planted scenario (sandbox.portfolio.MIN_SIZE)
# Mixpanel's 90-day backfill costs ~7 s a pull; runs that only test the CRM side leave it out.
WITHOUT_USAGE = ("mixpanel",)


@dataclass(frozen=True)
class CleanRun:
    state: dict  # crm_state() after it
    first_cycle: dict[str, int]  # apply_counts() of its first cycle


def apply_counts(report) -> dict[str, int]:
    applied = report.applied
    return {"fields written": applied.fields_written, "accounts adopted": applied.accounts_adopted,
            "tasks created": applied.tasks_created, "tasks adopted": applied.tasks_adopted}


def run_to_steady_state(env) -> list:
    """A first (full) cycle, then the next scheduled one, then a third as of the same instant that must write
    nothing. Only the second cycle's explanations are final: the first compares with the back-filled history
    ("was healthy", "moved since"), every later one with the cycle before."""
    env.setup_fields()
    return [env.cycle(full=True), env.cycle(step=1), env.cycle(step=1)]


@pytest.fixture(scope="session")
def clean_state():
    """`clean_state(crm, drop)`: the CRM state a fault-free run settles in, and its first cycle's writes; cached
    per configuration."""
    cache: dict[tuple[str, tuple[str, ...]], CleanRun] = {}

    def get(crm: str, drop: tuple[str, ...] = WITHOUT_USAGE) -> CleanRun:
        key = (crm, tuple(drop))
        if key not in cache:
            with pinned_env(crm, accounts=BOOK_SIZE, drop=drop) as env:
                reports = run_to_steady_state(env)
                assert [r.status for r in reports] == ["ok"] * 3, [r.error for r in reports]
                assert reports[-1].applied.write_calls == 0, "the clean run does not settle"
                state = crm_state(env)
                assert not state["duplicates"] and state["tasks"], state["duplicates"]
                cache[key] = CleanRun(state, apply_counts(reports[0]))
        return cache[key]

    return get


def subprocess_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment for a healthsync subprocess: ours, the config's secrets, the repo importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEALTHSYNC_")}
    env.update(extra)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def healthsync_command(*args: str) -> list[str]:
    """`healthsync ARGS`: the console script next to the interpreter running the tests, as installed."""
    script = Path(sys.executable).with_name("healthsync")
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-m", "healthsync", *args]


def run_python(script: Path, *args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(script), *args], env=subprocess_env(env), capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)
