"""`healthsync run` through the real CLI: lock, store, exit codes, and the daemon serving health and metrics."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest

from healthsync.errors import FatalError
from healthsync.sync import pipeline as pipeline_module
from healthsync.sync.cli import main
from healthsync.sync.cycle import CycleReport, SourceReport
from healthsync.sync.lock import acquire_store_lock
from healthsync.sync.store import Store

SCRIPT = Path(__file__).with_name("fake_pipeline_run.py")
TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", TOKEN)
    path = tmp_path / "healthsync.yaml"
    path.write_text(
        "crm:\n  kind: hubspot\n  hubspot:\n    auth:\n      mode: private_app\n"
        "      access_token: ${HUBSPOT_ACCESS_TOKEN}\n"
        "store:\n  data_dir: state\n"
        f"observability:\n  port: {free_port()}\n"
    )
    return path


def store_url(config: Path) -> str:
    return f"sqlite:///{config.parent / 'state' / 'healthsync.db'}"


class FakePipeline:
    """Put in place of `sync.pipeline.build_cycle`: records what the command handed it, answers with a fixed status."""

    def __init__(self, status: str = "ok"):
        self.status = status
        self.built: list[tuple[object, Store]] = []
        self.cycles: list[tuple[datetime, bool]] = []

    def build_cycle(self, settings, store):
        self.built.append((settings, store))

        def cycle(as_of: datetime, full: bool, stop: threading.Event) -> CycleReport:
            self.cycles.append((as_of, full))
            return CycleReport(as_of=as_of, full=full, status=self.status,
                               sources={"hubspot": SourceReport("hubspot", ok=self.status != "failed")})

        return cycle


@pytest.fixture
def pipeline(monkeypatch: pytest.MonkeyPatch) -> FakePipeline:
    fake = FakePipeline()
    monkeypatch.setattr(pipeline_module, "build_cycle", fake.build_cycle)
    return fake


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["run", *args])
    return code, capsys.readouterr().err


def test_once_runs_one_incremental_cycle_against_the_configured_store(
    config: Path, pipeline: FakePipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    with Store.open(store_url(config)) as store:  # a run a crashed daemon left behind
        stale = store.runs.start("incremental", started_at=datetime(2024, 1, 1, tzinfo=UTC))
    code, _ = run(capsys, "--config", str(config), "--once")
    assert code == 0
    assert [full for _, full in pipeline.cycles] == [False]
    settings, store = pipeline.built[0]
    assert store.url == store_url(config) and settings.writeback.dry_run is True  # the config default
    with Store.open(store_url(config)) as reopened:
        run_row = reopened.runs.get(stale)
        assert run_row is not None and run_row.status == "failed" and "daemon stopped" in (run_row.error or "")
    assert acquire_store_lock(store_url(config)).release() is None  # the lock was released on exit


def test_once_full_and_dry_run(config: Path, pipeline: FakePipeline, capsys: pytest.CaptureFixture[str]) -> None:
    config.write_text(config.read_text() + "writeback:\n  dry_run: false\n")
    assert run(capsys, "--config", str(config), "--once", "--full")[0] == 0
    assert pipeline.built[0][0].writeback.dry_run is False and pipeline.cycles[0][1] is True
    assert run(capsys, "--config", str(config), "--once", "--dry-run")[0] == 0
    assert pipeline.built[1][0].writeback.dry_run is True


@pytest.mark.parametrize(("status", "code"), [("partial", 0), ("failed", 1)])
def test_once_exit_code_follows_the_cycle(
    config: Path, pipeline: FakePipeline, capsys: pytest.CaptureFixture[str], status: str, code: int
) -> None:
    pipeline.status = status
    assert run(capsys, "--config", str(config), "--once")[0] == code


def test_a_second_run_on_the_same_store_exits_1_naming_the_holder(
    config: Path, pipeline: FakePipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    import os

    holder = acquire_store_lock(store_url(config))
    try:
        code, err = run(capsys, "--config", str(config), "--once")
    finally:
        holder.release()
    assert code == 1 and "already running" in err and f"pid {os.getpid()}" in err
    assert pipeline.built == []  # refused before touching the store


_HELP_WITHOUT = (
    "import sys\n"
    "sys.modules[{module!r}] = None  # as if the file were missing from the install\n"
    "from healthsync.sync.cli import main\n"
    "sys.exit(main(['--help']))\n"
)


@pytest.mark.parametrize("module", ["healthsync.sync.commands.demo", "healthsync.sync.pipeline"])
def test_a_module_that_does_not_import_stops_the_cli_instead_of_dropping_a_command(module: str) -> None:
    # A command module (or the pipeline `run` needs) that cannot be imported is a packaging or code bug: the CLI
    # must fail with the ImportError, not print a --help that quietly lacks the command.
    done = subprocess.run([sys.executable, "-c", _HELP_WITHOUT.format(module=module)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stdout
    assert "Usage" not in done.stdout
    last_line = done.stderr.strip().splitlines()[-1]
    assert last_line.startswith("ModuleNotFoundError: ") and module in last_line, done.stderr


def test_the_one_line_cli_error_is_redacted(
    config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def answered_with_secrets(settings, store):
        raise FatalError(f"hubspot said 'access_token={TOKEN}' is bad; also saw password=hunter2-pw")

    monkeypatch.setattr(pipeline_module, "build_cycle", answered_with_secrets)
    code, err = run(capsys, "--config", str(config), "--once")
    assert code == 1 and "error: hubspot said 'access_token=[REDACTED]' is bad" in err
    assert TOKEN not in err and "hunter2-pw" not in err


def test_config_mistakes_exit_2(tmp_path: Path, pipeline: FakePipeline, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(capsys, "--config", str(tmp_path / "absent.yaml"), "--once")
    assert code == 2 and "absent.yaml" in err
    code, err = run(capsys, "--config", str(tmp_path / "absent.yaml"), "--full")
    assert code == 2 and "--full goes with --once" in err
    assert pipeline.built == []


def test_non_loopback_observability_host_exits_2(
    config: Path, pipeline: FakePipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    config.write_text(config.read_text().replace("observability:\n", "observability:\n  host: 0.0.0.0\n"))
    code, err = run(capsys, "--config", str(config))
    assert code == 2 and "loopback" in err


# --- the daemon as its own process ----------------------------------------------------------------


def start_daemon(mode: str, config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), mode, "--log-format", "json", "run", "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def get_json(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.slow
def test_daemon_serves_health_refuses_a_twin_and_stops_on_sigterm(config: Path) -> None:
    port = int(config.read_text().split("port: ")[1].split()[0])
    daemon = start_daemon("ok", config)
    try:
        assert daemon.stdout is not None and daemon.stdout.readline().strip() == "cycle-start"
        deadline = time.monotonic() + 10
        while True:
            code, body = get_json(f"http://127.0.0.1:{port}/healthz")
            if body["status"] == "ok" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert code == 200 and body["status"] == "ok" and body["sources"]["hubspot"]["ok"] is True
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            metrics = response.read().decode()
        assert 'healthsync_records_pulled_total{source="hubspot"} 42.0' in metrics
        assert 'healthsync_accounts{band="green"} 3.0' in metrics

        twin = start_daemon("ok", config)
        _, twin_err = twin.communicate(timeout=30)
        assert twin.returncode == 1 and f"pid {daemon.pid}" in twin_err and "already running" in twin_err
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    names = [e["event"] for e in events]
    assert "healthsync run" in names and "daemon stopped" in names
    assert TOKEN not in err  # the CRM token never reaches the logs
    acquire_store_lock(store_url(config)).release()  # released on a clean exit


@pytest.mark.slow
def test_a_cycle_that_ignores_sigterm_is_abandoned_after_the_grace_period(config: Path) -> None:
    daemon = start_daemon("stuck", config)
    assert daemon.stdout is not None and daemon.stdout.readline().strip() == "cycle-start"
    sent = time.monotonic()
    daemon.send_signal(signal.SIGTERM)
    _, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 1 and time.monotonic() - sent < 10
    assert "cycle still running after the stop grace period" in err
    acquire_store_lock(store_url(config)).release()  # the kernel dropped the lock with the process


def test_log_settings_come_from_config_unless_given_on_the_command_line(
    config: Path, pipeline: FakePipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    import logging

    config.write_text(config.read_text().replace("observability:\n", "observability:\n  log_level: ERROR\n"))
    root = logging.getLogger()
    before = root.level
    try:
        assert main(["run", "--config", str(config), "--once"]) == 0
        assert root.level == logging.ERROR
        assert main(["--log-level", "DEBUG", "run", "--config", str(config), "--once"]) == 0
        assert root.level == logging.DEBUG
    finally:
        root.setLevel(before)
        capsys.readouterr()
