"""SPEC §7 / DESIGN: secrets never reach logs, errors or the store. `healthsync setup` and `healthsync run --once`
at DEBUG (every SDK's and urllib3's own logging on) against the sandbox, for both CRMs; then every credential
the sandbox accepts, every Salesforce session token it issued and the Basic-auth encodings of the Zendesk and
Mixpanel credentials are searched for in everything the processes printed and in the store's database file."""

from __future__ import annotations

import base64
import json
import subprocess
import tempfile
from pathlib import Path

import pytest

from healthsync.sandbox.app import build_sandbox
from healthsync.sandbox.credentials import DEMO
from healthsync.sync.commands.demo import demo_config
from tests.e2e.conftest import ROOT, healthsync_command, subprocess_env

pytestmark = pytest.mark.slow

ACCOUNTS = 44  # the smallest book holding every planted scenario


def demo_secrets() -> dict[str, str]:
    sf, hs, zd, mp = DEMO.salesforce, DEMO.hubspot, DEMO.zendesk, DEMO.mixpanel
    found = {
        "salesforce password": sf.password, "salesforce security token": sf.security_token,
        "salesforce password+token": sf.password + sf.security_token, "salesforce consumer secret": sf.consumer_secret,
        "hubspot access token": hs.access_token, "hubspot client secret": hs.client_secret,
        "hubspot refresh token": hs.refresh_token, "zendesk api token": zd.token, "zendesk oauth token": zd.oauth_token,
        "mixpanel secret": mp.service_account_secret,
    }
    basic = {"zendesk basic auth": f"{zd.email}/token:{zd.token}", "mixpanel basic auth": f"{mp.service_account_username}:"
             f"{mp.service_account_secret}"}
    found.update({name: base64.b64encode(value.encode()).decode() for name, value in basic.items()})
    return found


def run_healthsync(config: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(healthsync_command("--log-level", "DEBUG", "--log-format", "json", *args, "--config", str(config)),
                          capture_output=True, text=True, env=subprocess_env(env), cwd=ROOT, timeout=180)


@pytest.mark.parametrize("crm", ["salesforce", "hubspot"])
def test_no_secret_in_debug_logs_or_in_the_store(crm):
    issued: list[str] = []
    server = build_sandbox(seed=7, accounts=ACCOUNTS, crm=crm, time_scale=600.0)
    auth = server.emulator("salesforce").auth
    issue = auth.issue

    def recording_issue(*args, **kw):
        token = issue(*args, **kw)
        issued.append(token)
        return token

    auth.issue = recording_issue
    with server, tempfile.TemporaryDirectory(prefix="healthsync-e2e-") as workdir:
        config, env = demo_config(server, crm, Path(workdir))
        setup = run_healthsync(config, env, "setup")
        cycle = run_healthsync(config, env, "run", "--once", "--full")
        output = "\n".join([setup.stdout, setup.stderr, cycle.stdout, cycle.stderr])
        assert setup.returncode == 0, setup.stderr[-3000:]
        assert cycle.returncode == 0, cycle.stderr[-3000:]
        store_bytes = b"".join(p.read_bytes() for p in Path(workdir).glob("*.db*"))

    debug_lines = [line for line in output.splitlines() if line.startswith("{") and '"debug"' in line.lower()]
    # (HubSpot deployments log fewer: hubspot-api-client's Configuration sets the urllib3 logger to WARNING)
    assert len(debug_lines) > 5, "DEBUG logging was not on: the test would prove nothing"
    for line in output.splitlines():
        if line.startswith("{"):
            json.loads(line)  # JSON logs are one object per line
    secrets = demo_secrets()
    if crm == "salesforce":
        assert issued, "no Salesforce session was issued: the test would prove nothing"
        secrets.update({f"salesforce session {i}": token for i, token in enumerate(issued)})
        secrets.update({f"salesforce session {i} (secret part)": token.split("!", 1)[1] for i, token in enumerate(issued)})
    leaked_to_logs = sorted(name for name, value in secrets.items() if value in output)
    leaked_to_store = sorted(name for name, value in secrets.items() if value.encode() in store_bytes)
    assert not leaked_to_logs, f"secrets in the logs: {leaked_to_logs}"
    assert not leaked_to_store, f"secrets in the store: {leaked_to_store}"
