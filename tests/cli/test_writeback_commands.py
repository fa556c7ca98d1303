"""setup, plan and apply against emulated CRMs: what each prints, and what each does (or must not do) to the CRM."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from tests.cli.conftest import assert_fits, assert_no_traceback, secrets_env, variant_config
from tests.support.sandbox_env import sandbox_env

PLAN_KEYS = {"crm", "as_of", "field_updates", "tasks", "conflicts", "unresolved", "suppressed", "adopted"}


@pytest.fixture
def crm_only(request, monkeypatch):
    """A CRM and Zendesk (no Mixpanel: its 90-day backfill is slow and writeback does not need it)."""
    with sandbox_env(request.param, accounts=44, drop=("mixpanel",)) as env:
        secrets_env(monkeypatch, env)
        yield env


def _crm_calls(env, before: dict[str, int]) -> dict[str, int]:
    after = env.server.calls.snapshot()
    return {k: n - before.get(k, 0) for k, n in after.items() if k.startswith(env.crm + " ") and n - before.get(k, 0)}


def _our_tasks(env) -> list[dict]:
    if env.crm == "salesforce":
        return [t for t in env.emulator("salesforce").records("Task") if t.get("Healthsync_Key__c")]
    return [t for t in env.emulator("hubspot").objects("tasks") if t.get("properties", t).get("healthsync_key")]


def _setup_rows(out: str) -> list[tuple[str, str, str]]:
    return re.findall(r"^\s+(account|task)\s+(\S+)\s+(existed|created|failed)\b", out, re.MULTILINE)


@pytest.mark.parametrize("crm_only", ["salesforce", "hubspot"], indirect=True)
def test_setup_creates_our_fields_once(crm_only, cli):
    config = str(crm_only.config_path)
    code, out, err = cli("setup", "--config", config)
    assert code == 0, err
    assert_fits(out)
    first = _setup_rows(out)
    assert first and {status for _, _, status in first} == {"created"}
    assert f"setup: {len(first)} created, 0 existed, 0 failed" in out
    code, out, err = cli("setup", "--config", config)
    assert code == 0, err
    again = _setup_rows(out)
    assert [(o, f) for o, f, _ in again] == [(o, f) for o, f, _ in first]
    assert {status for _, _, status in again} == {"existed"}
    assert f"setup: 0 created, {len(first)} existed, 0 failed" in out


@pytest.mark.parametrize("crm_only", ["salesforce"], indirect=True)
def test_plan_changes_nothing_and_apply_writes_exactly_the_plan(crm_only, cli):
    env, config = crm_only, str(crm_only.config_path)
    assert cli("pull", "--config", config)[0] == 0
    assert cli("setup", "--config", config)[0] == 0
    as_of = datetime.now(UTC).replace(second=0, microsecond=0).isoformat()

    before = env.server.calls.snapshot()
    code, out, err = cli("plan", "--config", config, "--as-of", as_of)
    assert code == 0, err
    assert_fits(out)
    summary = re.search(r"^Plan for salesforce as of .* UTC\n  (\d+) account updates · (\d+) tasks \((\d+) escalations\)",
                        out, re.MULTILINE)
    assert summary and int(summary[1]) == 44 and int(summary[2]) > 0
    code, out, err = cli("plan", "--config", config, "--as-of", as_of, "--json")
    assert code == 0, err
    plan = json.loads(out)
    assert set(plan) == PLAN_KEYS and plan["crm"] == "salesforce"
    assert (len(plan["field_updates"]), len(plan["tasks"])) == (int(summary[1]), int(summary[2]))
    assert all({"account_id", "fields"} <= set(u) for u in plan["field_updates"])
    assert all({"dedupe_key", "subject", "due_date", "owner_id"} <= set(t) for t in plan["tasks"])
    assert _crm_calls(env, before) == {}, "plan must not even talk to the CRM"
    assert _our_tasks(env) == []

    code, out, err = cli("apply", "--config", config, "--as-of", as_of)
    assert code == 0, err
    assert_fits(out)
    applied = re.search(r"^applied: (\d+) accounts updated, (\d+) tasks created, 0 failed \((\d+) write calls\)$",
                        out, re.MULTILINE)
    assert applied, out
    assert (int(applied[1]), int(applied[2])) == (len(plan["field_updates"]), len(plan["tasks"]))
    tasks = _our_tasks(env)
    assert sorted(t["Healthsync_Key__c"] for t in tasks) == sorted(t["dedupe_key"] for t in plan["tasks"])
    assert 0 < int(applied[3]) == sum(n for k, n in _crm_calls(env, before).items()
                                      if k.split(" ", 1)[1] in ("collections", "sobject", "record"))

    code, out, err = cli("apply", "--config", config, "--as-of", as_of)
    assert code == 0, err
    assert "applied: 0 accounts updated, 0 tasks created, 0 failed (0 write calls)" in out
    assert len(_our_tasks(env)) == len(tasks), "a second apply creates no duplicate"


@pytest.mark.parametrize("crm_only", ["salesforce"], indirect=True)
def test_apply_refuses_when_the_config_says_dry_run(crm_only, cli, tmp_path):
    config = variant_config(crm_only.config_path, tmp_path / "dry.yaml", writeback={"dry_run": True})
    before = crm_only.server.calls.snapshot()
    code, out, err = cli("apply", "--config", str(config))
    assert code == 2
    assert "writeback.dry_run is true" in err and "dry_run: false" in err
    assert _crm_calls(crm_only, before) == {}
    assert_no_traceback(out, err)


@pytest.mark.parametrize("crm_only", ["salesforce"], indirect=True)
def test_setup_names_the_missing_permission_and_exits_1(crm_only, cli):
    denied = json.dumps([{"message": "insufficient access rights on object id",
                          "errorCode": "INSUFFICIENT_ACCESS_OR_READONLY"}])
    crm_only.server.faults.add(r"/tooling/sobjects/CustomField", method="POST", status=403, body=denied,
                               headers={"Content-Type": "application/json"}, times=1, emulator="salesforce")
    code, out, err = cli("setup", "--config", str(crm_only.config_path))
    assert code == 1
    rows = _setup_rows(out)
    assert [status for _, _, status in rows].count("failed") == 1
    assert rows[0][2] == "failed" and {status for _, _, status in rows[1:]} == {"created"}
    assert "'Customize Application' permission" in " ".join(out.split())
    assert "1 field(s) could not be created" in err
    assert_no_traceback(out, err)
