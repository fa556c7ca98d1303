"""SIGTERM / SIGINT against a real process: the running cycle commits its batch, then the process exits 0."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("slow_daemon.py")
pytestmark = pytest.mark.slow


def start(mode: str, cycle_seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), mode, str(cycle_seconds)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != "cycle-start":
        proc.kill()
        raise AssertionError(f"expected cycle-start, got {line!r}; stderr: {proc.communicate()[1]}")
    return proc


def stop_with(proc: subprocess.Popen[str], sig: signal.Signals) -> tuple[int, list[str], float]:
    time.sleep(0.3)  # well inside the cycle
    sent = time.monotonic()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    return proc.returncode, out.splitlines(), time.monotonic() - sent


def test_sigterm_during_a_slow_cycle_lets_it_finish_and_exits_0_quickly() -> None:
    proc = start("serve", cycle_seconds=20)
    code, lines, took = stop_with(proc, signal.SIGTERM)
    assert code == 0, lines
    assert took < 5  # nowhere near the 20 s the cycle would have taken, nor the 30 s budget
    assert lines[0].startswith("batch-committed") and lines[0].endswith("then stop")
    assert lines[1:] == ["cycle-end", "exit 0 cycles=1"]  # no second cycle started after the signal


def test_sigint_stops_a_once_run_after_its_batch() -> None:
    proc = start("once", cycle_seconds=20)
    code, lines, took = stop_with(proc, signal.SIGINT)
    assert (code, took < 5) == (0, True), lines
    assert lines[-2:] == ["cycle-end", "exit 0 cycles=1"]


def test_sigterm_between_cycles_exits_at_once() -> None:
    proc = start("serve", cycle_seconds=0.1)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "cycle-end"
    code, lines, took = stop_with(proc, signal.SIGTERM)
    assert code == 0 and took < 3
    assert lines[-1].startswith("exit 0")
