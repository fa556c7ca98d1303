"""Fixtures for the CLI tests: a sandbox deployment pulled once per session through `healthsync pull`, and a
helper that runs `sync.cli.main` the way an operator's terminal would (100 columns)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from healthsync.sync.cli import main
from healthsync.sync.commands import common
from tests.support.sandbox_env import SandboxEnv, sandbox_env

WIDTH = 100
BOOK_SIZE = 50
# Endpoints that log in rather than read: they are not paced, so the pacer does not count them.
AUTH_ENDPOINTS = {"soap_login", "oauth_token"}


@dataclass
class Deployment:
    env: SandboxEnv
    pull_code: int
    pull_out: str
    pull_calls: dict[str, int]  # emulator calls per source made during the first pull, logins excluded

    @property
    def config(self) -> str:
        return str(self.env.config_path)


def emulator_calls(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Calls per emulator between two snapshots of `server.calls`, not counting login endpoints."""
    totals: dict[str, int] = {}
    for key, n in after.items():
        emulator, endpoint = key.split(" ", 1)
        if endpoint not in AUTH_ENDPOINTS and n - before.get(key, 0):
            totals[emulator] = totals.get(emulator, 0) + n - before.get(key, 0)
    return totals


def terminal(mp: pytest.MonkeyPatch, width: int = WIDTH) -> None:
    """Render as on a `width`-column terminal, whatever the environment pytest runs in."""
    mp.setenv("COLUMNS", str(width))
    mp.setattr(common.console, "_width", width)
    mp.setattr(common.err_console, "_width", width)


def secrets_env(mp: pytest.MonkeyPatch, env: SandboxEnv) -> None:
    """The environment variables the sandbox config names with ${...}."""
    for name, value in env.env.items():
        mp.setenv(name, value)


@pytest.fixture(scope="session")
def pulled() -> Iterator[Deployment]:
    """Salesforce + Zendesk + Mixpanel emulators, filled by one `healthsync pull`; tests must not write the CRM."""
    with sandbox_env("salesforce", accounts=BOOK_SIZE) as env, pytest.MonkeyPatch.context() as mp:
        secrets_env(mp, env)
        before = env.server.calls.snapshot()
        out = io.StringIO()
        with pytest.MonkeyPatch.context() as narrow, redirect_stdout(out):
            terminal(narrow)
            code = main(["pull", "--config", str(env.config_path)])
        yield Deployment(env, code, out.getvalue(), emulator_calls(before, env.server.calls.snapshot()))


@pytest.fixture
def cli(capsys, monkeypatch):
    """`cli(*args) -> (exit code, stdout, stderr)` through `sync.cli.main`, on a 100-column terminal."""
    terminal(monkeypatch)

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def variant_config(base: Path, target: Path, **sections: dict) -> Path:
    """A copy of `base` with some top-level sections replaced (e.g. another store, dry_run on)."""
    data = yaml.safe_load(base.read_text())
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    target.write_text(yaml.safe_dump(data, sort_keys=False))
    return target


def assert_fits(text: str, width: int = WIDTH) -> None:
    wide = [line for line in text.splitlines() if len(line) > width]
    assert not wide, f"{len(wide)} line(s) wider than {width} columns, e.g. {wide[0]!r}"


def assert_no_traceback(*texts: str) -> None:
    for text in texts:
        assert "Traceback" not in text, text
