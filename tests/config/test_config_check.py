"""`healthsync check`: every problem at once with key path, line and fix; exit 0 / 2; never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from healthsync.sync.cli import main

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "example.yaml"
HEALTHSYNC = REPO / ".venv" / "bin" / "healthsync"

# Line numbers matter: the assertions below name them.
SEVERAL_MISTAKES = """\
crm:
  kind: salesforce
  salesforce:
    auth:
      mode: jwt
      consumer_key: 3MVG9-key
      private_key_file: keys/missing.pem
      username: svc@cloudscale.io
      domian: login
zendesk:
  subdomain: cloudscale.zendesk.com
  auth:
    mode: api_token
    email: ops@cloudscale.io
    token: ${ZENDESK_TOKEN}
mixpanel:
  project_id: 1234567
  residency: usa
  service_account:
    username: sa
    secret: mp-literal-in-file-77
  core_action_events: [Report Created]
observability:
  port: 70000
writeback:
  escalations:
    cs_manager: not-an-email
"""

EXPECTED = [
    "crm.salesforce.auth.private_key_file (line 7): file not found: keys/missing.pem",
    "crm.salesforce.auth.domian (line 9): unknown key 'domian' (did you mean 'domain'?)",
    "zendesk.subdomain (line 11): give only the subdomain: 'cloudscale', not 'cloudscale.zendesk.com'",
    "zendesk.auth.token (line 15): environment variable ZENDESK_TOKEN is not set (set it, or ZENDESK_TOKEN_FILE)",
    "mixpanel.residency (line 18): 'usa' is not a valid residency (did you mean 'us'?); choose one of: us, eu, in",
    "mixpanel.service_account.secret (line 21): is a secret and must not be written in the file: "
    "write `secret: ${MIXPANEL_SECRET}` and set MIXPANEL_SECRET (or MIXPANEL_SECRET_FILE) in the environment",
    "observability.port (line 24): must be at most 65535, got 70000",
    "writeback.escalations.cs_manager (line 27): 'not-an-email' is not an email address",
]


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("ZENDESK_TOKEN", "ZENDESK_TOKEN_FILE", "HEALTHSYNC_CONFIG"):
        monkeypatch.delenv(name, raising=False)


def test_every_mistake_listed_with_path_line_and_fix(write_config, capsys, clean_env):
    path = write_config(SEVERAL_MISTAKES)
    assert main(["check", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: {len(EXPECTED)} problems in the configuration" in err
    for line in EXPECTED:
        assert line in err
    assert "mp-literal-in-file-77" not in err  # the rejected secret is never echoed
    assert "Traceback" not in err


@pytest.mark.slow
def test_check_via_the_installed_console_script(write_config, tmp_path):
    path = write_config(SEVERAL_MISTAKES)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZENDESK_", "HEALTHSYNC_"))}
    done = subprocess.run([str(HEALTHSYNC), "check", "--config", str(path)], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=60)
    assert done.returncode == 2, done.stderr
    for line in EXPECTED:
        assert line in done.stderr
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout


def test_valid_example_exits_zero_with_a_summary(example_env, monkeypatch, capsys):
    for name, value in example_env.items():
        monkeypatch.setenv(name, value)
    assert main(["check", "--config", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"OK {EXAMPLE}")
    assert "salesforce (jwt, integration@cloudscale.io, login)" in out
    assert "cloudscale.zendesk.com (api_token)" in out
    assert "preset default (validated)" in out  # the scoring package checked the preset's contents
    assert "dry run" in out
    assert "zd-tok-8f3a9c1e77" not in out and "mp-secret-51d0b2aa" not in out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("crm:\n  kind: [salesforce\n", "line 3: YAML syntax error"),
        ("crm:\n\tkind: salesforce\n", "line 2: YAML syntax error, column 1: found character '\\t' that cannot start any token"),
        ("crm:\n  kind: salesforce\n zendesk: x\n", "YAML syntax error"),
        ("- just\n- a list\n", "line 1: the file must be a mapping of sections (crm:, zendesk:, ...), got a list"),
        ("", "crm: required key is missing"),
    ],
)
def test_broken_files_give_one_clear_message(write_config, capsys, text, expected):
    assert main(["check", "--config", str(write_config(text))]) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert "Traceback" not in err


def test_missing_file_and_directory(tmp_path, capsys):
    assert main(["check", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert f"config file not found: {tmp_path / 'nope.yaml'}" in capsys.readouterr().err
    assert main(["check", "--config", str(tmp_path)]) == 2
    assert "is a directory; give the path of the YAML file" in capsys.readouterr().err


def test_wrong_types_and_discriminator_mistakes(write_config, capsys, monkeypatch):
    monkeypatch.setenv("HS_TOKEN", "pat-na1-abcdef")
    text = """\
    crm:
      kind: hubspot
      hubspot:
        auth:
          mode: privat_app
          access_token: ${HS_TOKEN}
    mixpanel: yes
    schedule:
      incremental_every_minutes: five
      incremental_cron: "*/5 * * * *"
    limits:
      salesforce:
        daily_share: 50
    """
    assert main(["check", "--config", str(write_config(text))]) == 2
    err = capsys.readouterr().err
    assert ("crm.hubspot.auth.mode (line 5): 'privat_app' is not a valid mode (did you mean 'private_app'?); "
            "choose one of: private_app, oauth") in err
    assert "mixpanel (line 7): expected a mapping (indented `key: value` lines), got true" in err
    assert "schedule.incremental_every_minutes (line 9): expected a whole number, got 'five'" in err
    assert "limits.salesforce.daily_share (line 13): daily_share is a fraction: write 0.5 for 50%" in err


def test_crm_block_must_match_kind_and_duplicates_are_caught(write_config, capsys, monkeypatch):
    monkeypatch.setenv("HS_TOKEN", "pat-na1-abcdef")
    text = """\
    crm:
      kind: salesforce
      hubspot:
        auth:
          mode: private_app
          access_token: ${HS_TOKEN}
    observability:
      port: 9100
      port: 9200
    """
    assert main(["check", "--config", str(write_config(text))]) == 2
    err = capsys.readouterr().err
    assert "crm.salesforce (line 1): crm.kind is salesforce, so a `salesforce:` block with its auth is required" in err
    assert "observability.port (line 9): duplicate key 'port' (first at line 8)" in err


def test_inline_health_model_problems_come_from_the_scoring_package(write_config, capsys, monkeypatch):
    monkeypatch.setenv("HS_TOKEN", "pat-na1-abcdef")
    text = """\
    crm:
      kind: hubspot
      hubspot:
        auth: {mode: private_app, access_token: "${HS_TOKEN}"}
    health:
      model:
        components:
          - name: usage
            weight: 60
            measures:
              - {name: logins, signal: login_days_30d, type: linear, points: [[0, 0], [25, 100]]}
        bands:
          - {name: healthy, min: 70, colour: green}
          - {name: critical, min: 0, colour: red}
    """
    assert main(["check", "--config", str(write_config(text))]) == 2
    err = capsys.readouterr().err
    problem_lines = [line for line in err.splitlines() if line.startswith("  - health.model")]
    assert problem_lines, err
    assert any("100" in line for line in problem_lines)  # weights must sum to 100
    assert all("(line " in line for line in problem_lines)


def test_health_model_file_problems_name_the_file_and_its_line(write_config, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HS_TOKEN", "pat-na1-abcdef")
    (tmp_path / "model.yaml").write_text("name: mine\ncomponents:\n  - name: usage\n    weight: 100\n    measures: nope\n"
                                         "bands: []\n")
    text = """\
    crm:
      kind: hubspot
      hubspot:
        auth: {mode: private_app, access_token: "${HS_TOKEN}"}
    health:
      model: ./model.yaml
    """
    assert main(["check", "--config", str(write_config(text))]) == 2
    err = capsys.readouterr().err
    file_lines = [line for line in err.splitlines() if "model.yaml line" in line]
    assert file_lines, err
    assert any(line.startswith("  - health.components") for line in file_lines)


def test_unknown_escalation_role_is_flagged(write_config, capsys, monkeypatch):
    monkeypatch.setenv("HS_TOKEN", "pat-na1-abcdef")
    text = """\
    crm:
      kind: hubspot
      hubspot:
        auth: {mode: private_app, access_token: "${HS_TOKEN}"}
    writeback:
      escalations:
        cs_manger: lead@cloudscale.io
    """
    assert main(["check", "--config", str(write_config(text))]) == 2
    err = capsys.readouterr().err
    assert "writeback.escalations.cs_manger (line 7): the playbook has no role 'cs_manger' (did you mean 'cs_manager'?)" in err


def test_config_from_environment_variable(write_config, capsys, monkeypatch):
    monkeypatch.setenv("HS_TOKEN", "pat-na1-abcdef")
    path = write_config('crm:\n  kind: hubspot\n  hubspot:\n    auth: {mode: private_app, access_token: "${HS_TOKEN}"}\n')
    monkeypatch.setenv("HEALTHSYNC_CONFIG", str(path))
    assert main(["check"]) == 0
    assert capsys.readouterr().out.startswith(f"OK {path}")


@pytest.mark.slow
def test_python_dash_m_entry_never_tracebacks_on_bad_yaml(write_config):
    path = write_config("crm: {kind: salesforce\n")
    done = subprocess.run([sys.executable, "-m", "healthsync", "check", "--config", str(path)],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 2
    assert "YAML syntax error" in done.stderr and "Traceback" not in done.stderr
