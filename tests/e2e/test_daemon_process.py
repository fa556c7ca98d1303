"""SPEC §7 `run`, as an operator runs it: `healthsync sandbox serve` in one process, `healthsync run` in another,
talking over real sockets. The daemon schedules cycles on its own, records them in the store, refuses a second
instance on the same store at once, answers /healthz, and exits 0 promptly on SIGTERM."""

from __future__ import annotations

import json
import select
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from healthsync.sync.commands.demo import demo_config
from healthsync.sync.store import Store
from tests.e2e.conftest import ROOT, healthsync_command, subprocess_env

pytestmark = pytest.mark.slow

ACCOUNTS = 50
INTERVAL_SECONDS = 2
STARTUP_TIMEOUT = 60
STOP_GRACE = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def read_json_line(process: subprocess.Popen, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.5)
        if ready:
            line = process.stdout.readline()
            if line.strip().startswith("{"):
                return json.loads(line)
        if process.poll() is not None:
            break
    raise AssertionError(f"`sandbox serve` printed no connection line (exit {process.poll()}): "
                         f"{process.stderr.read() if process.poll() is not None else ''}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture
def served_sandbox():
    """`healthsync sandbox serve` as its own process; yields its connection line."""
    process = subprocess.Popen(
        healthsync_command("--log-format", "json", "sandbox", "serve", "--accounts", str(ACCOUNTS),
                           "--crm", "salesforce", "--time-scale", "600"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env({}), cwd=ROOT)
    try:
        yield read_json_line(process, STARTUP_TIMEOUT)
    finally:
        stop(process)


def config_for(info: dict, workdir: Path, health_port: int) -> tuple[Path, dict[str, str]]:
    """The demo's config, pointed at the served sandbox (its URLs and CA come from the connection line)."""
    urls = info["emulators"]
    server = SimpleNamespace(https_url=urls["salesforce"]["https"], http_url=urls["mixpanel"]["http"],
                             ca_path=info["ca_path"])
    path, env = demo_config(server, info["crm"], workdir)
    data = yaml.safe_load(path.read_text())
    data["observability"] = {"enabled": True, "host": "127.0.0.1", "port": health_port, "log_format": "json"}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path, env


def finished_runs(store_url: str) -> list:
    """The daemon's runs that have ended, newest first, read through a store connection of our own."""
    store = Store.open(store_url)
    try:
        return [r for r in store.runs.recent(50) if r.status != "running"]
    finally:
        store.close()


def test_daemon_runs_on_schedule_is_alone_on_its_store_and_stops_on_sigterm(served_sandbox, tmp_path):
    health_port = free_port()
    config, secrets = config_for(served_sandbox, tmp_path, health_port)
    store_url = f"sqlite:///{tmp_path / 'healthsync.db'}"
    setup = subprocess.run(healthsync_command("setup", "--config", str(config)), capture_output=True, text=True,
                           env=subprocess_env(secrets), cwd=ROOT, timeout=60)
    assert setup.returncode == 0, setup.stderr[-2000:]
    log_path = tmp_path / "daemon.log"
    log = log_path.open("w")  # a file, not a pipe: a daemon must never block on a log nobody reads
    daemon = subprocess.Popen(
        healthsync_command("run", "--config", str(config), "--interval-seconds", str(INTERVAL_SECONDS)),
        stdout=log, stderr=subprocess.STDOUT, text=True, env=subprocess_env(secrets), cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        runs = []
        while time.monotonic() < deadline and daemon.poll() is None:
            if (tmp_path / "healthsync.db").exists():
                runs = finished_runs(store_url)
                if len(runs) >= 2:
                    break
            time.sleep(0.5)
        assert daemon.poll() is None, f"the daemon exited early ({daemon.returncode}): {log_path.read_text()[-3000:]}"
        assert len(runs) >= 2, f"fewer than 2 cycles in 120 s: {runs}"
        assert all(r.status == "ok" for r in runs), [(r.status, r.error) for r in runs]
        assert {"pull", "score", "plan", "apply"} <= set(runs[-1].steps), runs[-1].steps  # the run record says what ran

        with urllib.request.urlopen(f"http://127.0.0.1:{health_port}/healthz", timeout=5) as answer:
            assert answer.status == 200

        started = time.monotonic()
        second = subprocess.run(healthsync_command("run", "--config", str(config)), capture_output=True,
                                text=True, env=subprocess_env(secrets), cwd=ROOT, timeout=60)
        assert second.returncode == 1, (second.returncode, second.stderr[-2000:])
        assert "already running" in second.stderr and str(daemon.pid) in second.stderr, second.stderr[-2000:]
        assert "Traceback" not in second.stderr
        assert time.monotonic() - started < 15  # refused at once, not after a cycle or a timeout

        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(STOP_GRACE)
        assert code == 0, log_path.read_text()[-3000:]
    finally:
        stop(daemon)
        log.close()
    store = Store.open(store_url)
    try:
        after = store.runs.recent(50)
    finally:
        store.close()
    assert len(after) >= len(runs)
    assert not [r for r in after if r.status == "running"]  # the cycle SIGTERM interrupted was closed, too
