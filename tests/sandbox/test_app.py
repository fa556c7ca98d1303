"""The assembled sandbox: every emulator loaded from one book, connection details, a simulated week, and the
`healthsync sandbox` commands run as real subprocesses."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from healthsync.sandbox.app import build_sandbox, connection_info
from healthsync.sandbox.changes import simulate_week
from healthsync.sandbox.credentials import DEMO
from healthsync.sandbox.portfolio import MIN_SIZE

AS_OF = datetime(2025, 6, 4, 10, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]
RULES = ("below_threshold", "outreach_24h", "sharp_drop", "sharp_drop_manager", "slow_decline",
         "band_change_intervention", "band_change_escalation", "usage_drop", "declining_logins", "ticket_burst",
         "severe_tickets", "competitor_mentioned", "champion_left", "silent_customer", "renewal_risk",
         "renewal_stage_engage", "renewal_stage_propose", "renewal_stage_negotiate", "renewal_unsigned",
         "onboarding_day3_no_login", "onboarding_day5_no_core_action", "onboarding_day7_no_value",
         "onboarding_day10_single_user", "onboarding_day14_low_adoption", "expansion", "advocate")


def _zendesk_orgs(info: dict) -> list[dict]:
    session = requests.Session()
    session.trust_env = False
    creds = info["credentials"]["zendesk"]
    url = info["emulators"]["zendesk"]["http"] + "/api/v2/organizations.json?page[size]=100"
    orgs = []
    while url:
        body = session.get(url, auth=(f"{creds['email']}/token", creds["token"]), timeout=10).json()
        orgs += body["organizations"]
        url = body["links"]["next"] if body["meta"]["has_more"] else None
    return orgs


@pytest.mark.parametrize("crm", ["salesforce", "hubspot"])
def test_build_sandbox_loads_every_emulator_from_one_book(crm):
    server = build_sandbox(seed=5, accounts=MIN_SIZE + 6, crm=crm, as_of=AS_OF, time_scale=50)
    try:
        assert sorted(e.name for e in server.emulators) == ["hubspot", "mixpanel", "salesforce", "zendesk"]
        assert server.portfolio.as_of == AS_OF and server.portfolio.size == MIN_SIZE + 6
        assert abs((server.clock.now() - AS_OF).total_seconds()) < 60
        info = connection_info(server)
        assert info["crm"] == crm and info["credentials"] == DEMO.as_dict()
        assert set(info["emulators"]["salesforce"]) == {"https"}
        assert info["emulators"]["mixpanel"]["http"] == server.http_url
        assert Path(info["ca_path"]).read_text().startswith("-----BEGIN CERTIFICATE")
        assert "PRIVATE KEY" in Path(info["salesforce_jwt_private_key_path"]).read_text()
        json.dumps(info)
        external = {o["external_id"] for o in _zendesk_orgs(info)}
        first = server.portfolio.accounts[0]
        assert (first.sf_id if crm == "salesforce" else first.hs_id) in external
        if crm == "salesforce":
            assert len(server.emulator("salesforce").records("Account")) == MIN_SIZE + 6
            assert server.emulator("hubspot").objects("companies") == []
        else:
            assert len(server.emulator("hubspot").objects("companies")) == MIN_SIZE + 6
    finally:
        server.stop()


def test_bad_arguments_are_refused_before_anything_starts():
    with pytest.raises(ValueError, match="crm must be one of"):
        build_sandbox(crm="pipedrive")
    with pytest.raises(ValueError, match=f"at least {MIN_SIZE}"):
        build_sandbox(accounts=5)


@pytest.mark.parametrize("crm", ["salesforce", "hubspot"])
def test_a_simulated_week_changes_the_emulators_and_moves_the_clock(crm):
    server = build_sandbox(seed=5, accounts=MIN_SIZE + 30, crm=crm, as_of=AS_OF, time_scale=50)
    try:
        zendesk = server.emulator("zendesk")
        tickets_before = len(zendesk.tickets())
        started = server.clock.now()
        changes = simulate_week(server, server.portfolio, seed=1)
        assert timedelta(days=7) <= server.clock.now() - started < timedelta(days=7, minutes=1)
        kinds = {c.kind for c in changes}
        assert {"account_edit", "deal_signed", "champion_left", "ticket_added", "contact_deleted",
                "meeting_logged", "events_added"} <= kinds
        assert len(zendesk.tickets()) >= tickets_before + 2
        signed = next(c for c in changes if c.kind == "deal_signed")
        opp = next(o for o in server.portfolio.opportunities
                   if o.account_key == signed.account_key and o.kind == "renewal" and not o.is_closed)
        deleted = next(c for c in changes if c.kind == "contact_deleted")
        gone = next(x for x in server.portfolio.contacts if x.email in deleted.detail)
        if crm == "salesforce":
            sf = server.emulator("salesforce")
            assert sf.record("Opportunity", opp.sf_id)["StageName"] == "Closed Won"
            assert gone.sf_id not in {r["Id"] for r in sf.records("Contact")}
        else:
            hs = server.emulator("hubspot")
            assert hs.get("deals", opp.hs_id)["properties"]["dealstage"] == "closedwon"
            assert gone.hs_id in {o["id"] for o in hs.objects("contacts", archived=True)}
        events = next(c for c in changes if c.kind == "events_added")
        assert int(events.detail.split()[0]) > 1000
        # the second week continues where the first stopped: no event is delivered twice
        again = simulate_week(server, server.portfolio, seed=2)
        assert int(again[-1].detail.split()[0]) > 1000
        assert server.portfolio.event_source.delivered_until >= started + timedelta(days=14)
    finally:
        server.stop()


# ------------------------------------------------------------------------------------------------ CLI


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "healthsync", "--log-format", "json", "sandbox", *args]


def _env() -> dict:
    return {**os.environ, "NO_PROXY": "127.0.0.1,localhost"}


def test_serve_prints_one_json_line_then_stops_cleanly_on_sigterm():
    proc = subprocess.Popen(_cli("serve", "--accounts", str(MIN_SIZE), "--seed", "3", "--crm", "hubspot",
                                 "--time-scale", "60"),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "no connection line within 60 s"
        info = json.loads(proc.stdout.readline())
        assert info["crm"] == "hubspot" and info["accounts"] == MIN_SIZE and info["seed"] == 3
        assert set(info["emulators"]) == {"salesforce", "hubspot", "zendesk", "mixpanel"}
        session = requests.Session()
        session.trust_env = False
        clock = session.get(info["emulators"]["hubspot"]["http"] + "/__sandbox/clock", timeout=10).json()
        assert "now" in clock
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert proc.stdout.read() == ""  # stdout carries the one line only; logs go to stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_refuses_a_bad_crm_with_a_usage_error():
    done = subprocess.run(_cli("serve", "--crm", "pipedrive"), cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env=_env())
    assert done.returncode == 2
    assert "--crm must be one of salesforce, hubspot" in done.stderr and done.stdout == ""


def test_scenarios_prints_the_manifest_as_json():
    started = time.monotonic()
    done = subprocess.run(_cli("scenarios", "--accounts", str(MIN_SIZE + 10), "--crm", "salesforce"), cwd=ROOT,
                          capture_output=True, text=True, timeout=60, env=_env())
    assert done.returncode == 0, done.stderr
    manifest = json.loads(done.stdout)
    assert tuple(manifest["rules"]) == RULES
    for rule in RULES:
        assert manifest["scenarios"][rule] and manifest["controls"][rule], rule
        assert all(e["crm_id"].startswith("001") for e in manifest["scenarios"][rule])
    assert time.monotonic() - started < 60
    table = subprocess.run(_cli("scenarios", "--accounts", str(MIN_SIZE), "--table"), cwd=ROOT,
                           capture_output=True, text=True, timeout=60, env=_env())
    assert table.returncode == 0 and "onboarding_day14_low_adoption" in table.stdout


def _dotenv(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))


def _by_hand(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "healthsync", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=180, env=env, check=False)


@pytest.mark.slow  # a whole sandbox and full cycles in subprocesses
def test_serve_write_config_lets_every_command_run_by_hand(tmp_path):
    """`sandbox serve --write-config DIR`, then the commands a newcomer types: a full cycle against it."""
    directory = tmp_path / "hs"
    proc = subprocess.Popen(_cli("serve", "--accounts", str(MIN_SIZE), "--write-config", str(directory)),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 90)
        assert ready, "no connection line within 90 s"
        info = json.loads(proc.stdout.readline())
        secrets = _dotenv(directory / "sandbox.env")
        config = (directory / "healthsync.yaml").read_text()
        assert secrets["HEALTHSYNC_CONFIG"] == str(directory / "healthsync.yaml")
        assert secrets["DEMO_SF_PASSWORD"] == DEMO.salesforce.password and DEMO.salesforce.password not in config
        assert "${DEMO_SF_PASSWORD}" in config and "dry_run: false" in config and str(directory) in config
        assert info["emulators"]["salesforce"]["https"] in config
        env = {**_env(), **secrets}
        for step in (("check",), ("setup",), ("pull",), ("score",), ("plan",), ("run", "--once")):
            done = _by_hand(env, *step)
            assert done.returncode == 0, (step, done.stdout[-2000:], done.stderr[-2000:])
        assert "salesforce" in _by_hand(env, "check").stdout
        finished = [json.loads(line) for line in done.stderr.splitlines() if '"cycle finished"' in line]
        assert finished and finished[-1]["status"] == "ok" and finished[-1]["writes"]["fields"] > 0
        assert (directory / "healthsync.db").exists()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_demo_lines_for_running_by_hand_fit_a_terminal_and_name_the_written_files():
    from healthsync.sync.commands.demo import BY_HAND_DIR, by_hand_lines

    start, run = by_hand_lines(BY_HAND_DIR)
    assert f"--write-config {BY_HAND_DIR} &" in start and f"{BY_HAND_DIR}/sandbox.env" in start
    assert run.startswith(f"set -a; . {BY_HAND_DIR}/sandbox.env; set +a;") and run.endswith("run --once")
    assert max(len(start), len(run)) + 2 <= 100
