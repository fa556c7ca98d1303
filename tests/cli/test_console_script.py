"""The installed `healthsync` console script, run as an operator runs it: a subprocess with the secrets in its
environment. Also the demo, whose output is what a first-time user judges the product by."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import WIDTH, assert_fits, assert_no_traceback

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).with_name("healthsync")


def _run(pulled, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    if not SCRIPT.exists():
        pytest.fail(f"{SCRIPT} is missing: install the project (pip install -e .) so the console script exists")
    env = {**os.environ, **pulled.env.env, "COLUMNS": str(WIDTH), "HEALTHSYNC_CONFIG": pulled.config}
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=timeout, check=False)


def test_console_script_pull_one_source(pulled):
    done = _run(pulled, "pull", "--source", "zendesk")
    assert done.returncode == 0, done.stderr
    assert_fits(done.stdout)
    assert re.search(r"^\s*zendesk\s+ok\s+[\d,]+\s+[1-9]\d*\s+0\s", done.stdout, re.MULTILINE), done.stdout
    assert "salesforce" not in done.stdout and "mixpanel" not in done.stdout
    assert_no_traceback(done.stdout, done.stderr)


def test_console_script_connectors_test(pulled):
    done = _run(pulled, "connectors", "test")
    assert done.returncode == 0, done.stdout + done.stderr
    verdicts = re.findall(r"^(OK|FAIL) +(\w+):", done.stdout, re.MULTILINE)
    assert verdicts == [("OK", "salesforce"), ("OK", "zendesk"), ("OK", "mixpanel")]


def test_console_script_usage_errors_exit_2_without_traceback(pulled):
    done = _run(pulled, "explain")  # the account argument is missing
    assert done.returncode == 2 and "missing argument 'account'" in done.stderr.lower()
    done = _run(pulled, "score", "--config", str(ROOT / "no-such-config.yaml"))
    assert done.returncode == 2 and "no-such-config.yaml" in done.stderr
    assert_no_traceback(done.stdout, done.stderr)


@pytest.mark.slow  # a whole sandbox and full cycles in subprocesses
def test_demo_shows_compact_reasons_and_each_cycle_calls_on_one_line(cli):
    code, out, err = cli("demo", "--accounts", "44")
    assert code == 0, err
    assert_fits(out)
    cycles = out.split("Incremental cycle (a week later)", 1)
    assert len(cycles) == 2, out
    calls = re.search(r"^  API calls: (.+)$", cycles[1], re.MULTILINE)
    assert calls, cycles[1][:500]
    assert re.fullmatch(r"mixpanel \d+ · salesforce \d+ · zendesk \d+ \(\d+ in all\)", calls[1]), calls[1]
    at_risk = out.split("At-risk accounts", 1)[1].split("Renewal pipeline", 1)[0]
    reasons = re.findall(r"[a-z_0-9]+ [\w.]+ \(-\d+\)", at_risk)
    assert reasons and "Pulling down" not in at_risk and "Health " not in at_risk
    assert "duplicates: 0" in out
    predictive = out.split("Does the score predict churn?", 1)[1]
    lines = re.findall(r"^  ([\w-]+) +AUC (\d\.\d\d) \[\d\.\d\d–\d\.\d\d\] · \d+ renewals, \d+ churned",
                       predictive, re.MULTILINE)
    assert [name for name, _ in lines] == ["default", "csm-playbook", "points-100", "ops-thresholds", "weighted-five"]
