"""Opening a store: migrations at open, idempotent re-open, schema == metadata, URL rules, backend settings."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from healthsync.errors import ConfigError, FatalError
from healthsync.sync.store import RecordRow, Store, StoreUnavailableError, current_revision, head_revision
from healthsync.sync.store import schema as store_schema
from healthsync.sync.store.engine import create_store_engine, normalise_url
from healthsync.sync.store.migrate import upgrade_to_head

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
TABLES = {
    "records",
    "usage_daily",
    "stream_state",
    "identity_links",
    "score_history",
    "writeback_ledger",
    "task_ledger",
    "runs",
    "source_status",
}


def test_open_creates_every_table_at_head(store: Store) -> None:
    names = set(sa.inspect(store.engine).get_table_names())
    assert TABLES | {"alembic_version"} <= names
    assert current_revision(store.engine) == head_revision() == "0001_initial"


def test_migrated_schema_matches_the_metadata(store: Store) -> None:
    # A change to store_schema without a new migration shows up here as a diff.
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = compare_metadata(context, store_schema.metadata)
    assert diffs == []


def test_reopen_is_idempotent_and_keeps_data(store_url: str) -> None:
    first = Store.open(store_url)
    first.records.commit_page(
        "salesforce", "Account", [RecordRow("001A", {"name": "Acme"}, NOW)], [], {"c": 1}, now=NOW
    )
    first.close()
    with Store.open(store_url) as second:
        assert second.records.get("salesforce", "Account", "001A").data == {"name": "Acme"}
        assert second.records.get_state("salesforce", "Account") == {"c": 1}
        before, after = upgrade_to_head(second.engine)
    assert before == after == head_revision()


def test_concurrent_first_opens_both_succeed(store_url: str) -> None:
    errors: list[BaseException] = []
    stores: list[Store] = []

    def open_one() -> None:
        try:
            stores.append(Store.open(store_url))
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for opened in stores:
        opened.close()
    assert errors == []
    assert len(stores) == 3


def test_a_newer_schema_revision_is_refused_with_advice(store: Store) -> None:
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999_future'"))
    with pytest.raises(FatalError, match="9999_future.*upgrade this one"):
        upgrade_to_head(store.engine)


def test_sqlite_runs_in_wal_with_foreign_keys_and_busy_timeout(tmp_path) -> None:
    with Store.open(f"sqlite:///{tmp_path}/nested/dir/hs.db") as opened:
        with opened.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
    assert (tmp_path / "nested" / "dir" / "hs.db").exists()


def test_in_memory_sqlite_works() -> None:
    with Store.open("sqlite://") as opened:
        opened.records.set_state("zendesk", "tickets", {"cursor": "abc"}, now=NOW)
        assert opened.records.get_state("zendesk", "tickets") == {"cursor": "abc"}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:p@db:5432/hs", "postgresql+psycopg://u:p@db:5432/hs"),
        ("postgres://u@db/hs", "postgresql+psycopg://u@db/hs"),
        ("postgresql+psycopg://u@db/hs", "postgresql+psycopg://u@db/hs"),
        ("  sqlite:///data/hs.db ", "sqlite:///data/hs.db"),
        ("sqlite+pysqlite:///hs.db", "sqlite:///hs.db"),
    ],
)
def test_urls_are_normalised_to_our_drivers(given: str, expected: str) -> None:
    assert normalise_url(given).render_as_string(hide_password=False) == expected


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("", "store URL is empty"),
        ("postgresql+psycopg2://u:hunter2@db/hs", "psycopg 3"),
        ("mysql://u:hunter2@db/hs", "backend 'mysql' is not supported"),
        ("not a url at all", "not a database URL"),
    ],
)
def test_bad_urls_say_what_is_wrong_without_the_password(given: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        Store.open(given)
    assert "hunter2" not in str(caught.value)


def test_unreachable_postgres_is_a_clear_error_without_the_password() -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(
        StoreUnavailableError, match=r"cannot open the store at postgresql\+psycopg://u:\[REDACTED\]@"
    ) as caught:
        Store.open(f"postgresql://u:hunter2@127.0.0.1:{port}/hs?connect_timeout=3")
    assert "hunter2" not in str(caught.value)


def test_sqlite_write_transactions_take_the_write_lock_up_front(tmp_path) -> None:
    # Two writers: the second waits (busy_timeout) instead of failing with "database is locked".
    url = f"sqlite:///{tmp_path}/hs.db"
    with Store.open(url) as a, Store.open(url) as b:
        started, release = threading.Event(), threading.Event()
        results: list[int] = []

        def slow_writer() -> None:
            with a.transaction() as tx:
                tx.records.set_state("s", "one", {"n": 1}, now=NOW)
                started.set()
                release.wait(10)

        writer = threading.Thread(target=slow_writer)
        writer.start()
        assert started.wait(10)
        threading.Timer(0.3, release.set).start()
        results.append(b.records.set_state("s", "one", {"n": 2}, now=NOW))
        writer.join(10)
        assert results == [2]
        assert b.records.get_state("s", "one") == {"n": 2}


def test_engine_refuses_unknown_backends_before_connecting() -> None:
    with pytest.raises(ConfigError):
        create_store_engine("oracle://u@h/db")


BLOCK_PSYCOPG = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("psycopg", "psycopg_binary", "psycopg_c"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Block())
"""


def _without_psycopg(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", BLOCK_PSYCOPG + code], capture_output=True, text=True, timeout=120
    )


def test_a_postgres_url_without_psycopg_names_the_extra_in_one_line() -> None:
    done = _without_psycopg(
        "from healthsync.errors import ConfigError\n"
        "from healthsync.sync.store import Store\n"
        "with Store.open('sqlite://') as fine:\n"  # SQLite needs no extra
        "    assert fine.records.get_state('s', 'x') is None\n"
        "try:\n"
        "    Store.open('postgresql://u:hunter2@127.0.0.1:1/hs')\n"
        "except ConfigError as exc:\n"
        "    print(exc, file=sys.stderr)\n"  # stdout carries the SQLite store's log line
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'healthsync[postgres]'" in lines[0], done.stderr
    assert "hunter2" not in done.stderr


@pytest.mark.parametrize("args", [["db", "upgrade", "--url", "postgresql://u:hunter2@127.0.0.1:1/hs"]])
def test_the_cli_without_psycopg_exits_2_naming_the_extra(args: list[str]) -> None:
    done = _without_psycopg(f"from healthsync.sync.cli import main\nsys.exit(main({args!r}))\n")
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "pip install 'healthsync[postgres]'" in lines[0], done.stderr
    assert "Traceback" not in done.stderr and "hunter2" not in done.stderr


def test_the_daemon_lock_without_psycopg_names_the_extra() -> None:
    # `healthsync run` takes the lock before it opens the store, so the lock must say it too.
    done = _without_psycopg(
        "from healthsync.errors import ConfigError\n"
        "from healthsync.sync.lock import acquire_store_lock\n"
        "try:\n"
        "    acquire_store_lock('postgresql://u:hunter2@127.0.0.1:1/hs')\n"
        "except ConfigError as exc:\n"
        "    print(exc)\n"
    )
    assert done.returncode == 0, done.stderr
    assert "pip install 'healthsync[postgres]'" in done.stdout
