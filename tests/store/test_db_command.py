"""`healthsync db upgrade` / `db current` through the real CLI entry point, on both backends."""

from __future__ import annotations

from pathlib import Path

import pytest

from healthsync.sync.cli import main
from healthsync.sync.store import Store, head_revision

HEAD = head_revision()


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["db", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_upgrade_then_current_at_head(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "current", "--url", store_url)
    assert code == 0 and ("no database file" in out or "empty, no schema yet" in out)
    code, out, _ = run(capsys, "upgrade", "--url", store_url)
    assert (code, out.strip().endswith(f"upgraded (empty) -> {HEAD} (head)")) == (0, True)
    code, out, _ = run(capsys, "upgrade", "--url", store_url)
    assert (code, out.strip().endswith(f"already at {HEAD} (head)")) == (0, True)
    code, out, _ = run(capsys, "current", "--url", store_url, "--check")
    assert (code, out.strip().endswith(f": {HEAD} (head)")) == (0, True)
    with Store.open(store_url) as opened:  # the upgraded database is usable as is
        assert opened.records.get_state("any", "stream") is None


def test_current_check_fails_before_the_first_upgrade(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "current", "--url", f"sqlite:///{tmp_path}/absent.db", "--check")
    assert code == 1
    assert "no database file" in out and "healthsync db upgrade" in err
    assert not (tmp_path / "absent.db").exists()  # `current` never creates a database


def test_upgrade_reads_the_store_from_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", "pat-na1-test")
    config = tmp_path / "healthsync.yaml"
    config.write_text(
        "crm:\n  kind: hubspot\n  hubspot:\n    auth:\n      mode: private_app\n"
        "      access_token: ${HUBSPOT_ACCESS_TOKEN}\nstore:\n  data_dir: state\n"
    )
    code, out, _ = run(capsys, "upgrade", "--config", str(config))
    assert code == 0 and "upgraded (empty)" in out
    assert (tmp_path / "state" / "healthsync.db").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["upgrade", "--url", "sqlite:///x.db", "--config", "c.yaml"], "either --config or --url, not both"),
        (["upgrade", "--url", "mysql://u:hunter2@db/hs"], "backend 'mysql' is not supported"),
        (["current", "--url", "postgresql+psycopg2://u:hunter2@db/hs"], "psycopg 3"),
        (["upgrade", "--config", "/nonexistent/healthsync.yaml"], "healthsync.yaml"),
    ],
)
def test_user_mistakes_exit_2_with_one_clear_message(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, *args)
    assert code == 2
    assert message in err
    assert "Traceback" not in err and "hunter2" not in err
