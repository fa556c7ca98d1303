"""One daemon per store: the flock on SQLite files and the advisory lock on PostgreSQL, across processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from healthsync.sync.lock import (
    AlreadyRunningError,
    FileLock,
    LockLostError,
    MemoryStoreLock,
    PostgresAdvisoryLock,
    acquire_store_lock,
    advisory_key,
    lock_path_for,
    this_host,
)

HOLDER_SCRIPT = """
import sys, time
from healthsync.sync.lock import acquire_store_lock
lock = acquire_store_lock(sys.argv[1])
print("locked", flush=True)
time.sleep(60)
"""


def start_holder(url: str) -> subprocess.Popen[str]:
    """A separate process that takes the lock, says so, and sits on it."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER_SCRIPT, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "locked":
        proc.kill()
        raise AssertionError(f"holder did not take the lock: {line!r} {proc.stderr.read() if proc.stderr else ''}")
    return proc


def acquire_eventually(url: str, timeout: float = 10.0):
    """The lock, retried while the server/kernel notices the holder is gone."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return acquire_store_lock(url)
        except AlreadyRunningError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def kill_hard(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


# --- SQLite ---------------------------------------------------------------------------------------


def test_sqlite_second_process_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store' / 'healthsync.db'}"
    holder = start_holder(url)
    try:
        with pytest.raises(AlreadyRunningError) as refused:
            acquire_store_lock(url)
        message = str(refused.value)
        assert f"pid {holder.pid}" in message and "already running" in message
        assert refused.value.holder is not None and refused.value.holder.pid == holder.pid
        content = json.loads((tmp_path / "store" / "healthsync.db.lock").read_text())
        assert content["pid"] == holder.pid and content["host"]
    finally:
        kill_hard(holder)


def test_sqlite_lock_is_released_when_the_holder_is_killed_9(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'healthsync.db'}"
    holder = start_holder(url)
    kill_hard(holder)
    lock = acquire_store_lock(url)  # no retry needed: the kernel drops flocks with the process
    try:
        assert isinstance(lock, FileLock)
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()
    finally:
        lock.release()


def test_sqlite_lock_conflicts_within_one_process_and_frees_on_release(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'healthsync.db'}"
    first = acquire_store_lock(url)
    with pytest.raises(AlreadyRunningError, match=f"pid {os.getpid()}"):
        acquire_store_lock(url)
    first.release()
    first.release()  # idempotent
    assert lock_path_for(tmp_path / "healthsync.db").read_text() == ""  # no stale pid left behind
    with pytest.raises(LockLostError):
        first.ensure_held()
    second = acquire_store_lock(url)
    second.ensure_held()
    second.release()


def test_deleting_the_lock_file_is_noticed(tmp_path: Path) -> None:
    lock = acquire_store_lock(f"sqlite:///{tmp_path / 'healthsync.db'}")
    try:
        lock.ensure_held()
        (tmp_path / "healthsync.db.lock").unlink()
        with pytest.raises(LockLostError, match="deleted or replaced"):
            lock.ensure_held()
    finally:
        lock.release()


def test_sqlite_stores_in_different_files_do_not_block_each_other(tmp_path: Path) -> None:
    one = acquire_store_lock(f"sqlite:///{tmp_path / 'a.db'}")
    two = acquire_store_lock(f"sqlite:///{tmp_path / 'b.db'}")
    assert one.description != two.description
    one.release()
    two.release()


def test_relative_sqlite_paths_lock_the_same_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    first = acquire_store_lock("sqlite:///data/healthsync.db")
    try:
        with pytest.raises(AlreadyRunningError):
            acquire_store_lock(f"sqlite:///{tmp_path / 'data' / 'healthsync.db'}")
    finally:
        first.release()


def test_unreadable_holder_file_still_refuses_with_a_clear_message(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'healthsync.db'}"
    first = acquire_store_lock(url)
    try:
        (tmp_path / "healthsync.db.lock").write_text("{garbage")
        with pytest.raises(AlreadyRunningError, match=r"another process \(pid unknown\)"):
            acquire_store_lock(url)
    finally:
        first.release()


def test_in_memory_store_needs_no_lock() -> None:
    assert isinstance(acquire_store_lock("sqlite://"), MemoryStoreLock)


# --- PostgreSQL -----------------------------------------------------------------------------------


def test_advisory_key_is_stable_and_separates_stores() -> None:
    assert advisory_key("crm", "public") == advisory_key("crm", "public")
    assert advisory_key("crm", "public") != advisory_key("crm", "tenant_b")
    assert advisory_key("crm", "public") != advisory_key("crm2", "public")
    assert -(2**63) <= advisory_key("crm", "public") < 2**63


@pytest.mark.postgres
def test_postgres_second_process_is_refused_then_freed_by_kill_9(pg_schema_url: str) -> None:
    holder = start_holder(pg_schema_url)
    try:
        with pytest.raises(AlreadyRunningError) as refused:
            acquire_store_lock(pg_schema_url)
        assert f"pid {holder.pid}" in str(refused.value)
        assert "advisory lock" in str(refused.value)
    finally:
        kill_hard(holder)
    lock = acquire_eventually(pg_schema_url)  # the server ends the dead client's session, and its lock
    try:
        assert isinstance(lock, PostgresAdvisoryLock)
        lock.ensure_held()
    finally:
        lock.release()


@pytest.mark.postgres
def test_postgres_lock_within_one_process_and_release(pg_schema_url: str) -> None:
    first = acquire_store_lock(pg_schema_url)
    try:
        first.ensure_held()
        with pytest.raises(AlreadyRunningError, match=f"pid {os.getpid()}"):
            acquire_store_lock(pg_schema_url)
    finally:
        first.release()
    with pytest.raises(LockLostError):
        first.ensure_held()
    second = acquire_store_lock(pg_schema_url)
    second.release()


@pytest.mark.postgres
def test_postgres_schemas_are_separate_stores(pg_url: str, pg_schema_url: str) -> None:
    in_schema = acquire_store_lock(pg_schema_url)
    try:
        in_public = acquire_store_lock(pg_url)  # same database, other schema: another store
        in_public.release()
    finally:
        in_schema.release()


@pytest.mark.postgres
def test_postgres_lost_connection_is_detected(pg_schema_url: str, pg_admin_engine) -> None:
    import sqlalchemy as sa

    lock = acquire_store_lock(pg_schema_url)
    try:
        assert isinstance(lock, PostgresAdvisoryLock)
        with pg_admin_engine.connect() as admin:
            admin.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = :name AND pid <> pg_backend_pid()"
                ),
                {"name": f"healthsync pid={os.getpid()} host={this_host()}"[:63]},
            )
        with pytest.raises(LockLostError):
            lock.ensure_held()
    finally:
        lock.release()
