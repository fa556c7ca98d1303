"""`healthsync backtest` and `healthsync fit` on a sandbox book with a churn history, pulled through the real
connectors: what the CRM says was lost comes out, the same seed gives the same numbers, a small book is
flagged unreliable, fit refuses it, and a fitted file is written in our format and can be backtested."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import yaml

from healthsync.config.health_model import load_model
from tests.cli.conftest import secrets_env
from tests.support.sandbox_env import SandboxEnv, sandbox_env

pytestmark = pytest.mark.slow  # sandboxes with 20 months of usage, pulled in full
AS_OF = datetime(2026, 3, 2, 14, tzinfo=UTC)
BOOK = {"accounts": 100, "seed": 5, "history_days": 365, "as_of": AS_OF}
PRESETS = ["default", "csm-playbook", "points-100", "ops-thresholds", "weighted-five"]
KEYS = {"model", "accounts", "churned", "auc", "pr_auc", "precision_at_red", "recall_at_red", "lift_top_decile",
        "by_band"}


def _pulled(**book) -> Iterator[tuple[SandboxEnv, object]]:
    with sandbox_env(overrides={"writeback": {"dry_run": True}}, **book) as env:
        yield env, env.cycle(full=True)


@pytest.fixture(scope="module")
def pulled():
    yield from _pulled(**BOOK)


def _backtest(cli, monkeypatch, env, *args: str) -> dict:
    secrets_env(monkeypatch, env)
    code, out, err = cli("backtest", "--config", str(env.config_path), "--as-of", AS_OF.date().isoformat(),
                         "--json", *args)
    assert code == 0, err
    result = json.loads(out)
    result.pop("seconds")
    return result


def test_a_cycle_scores_the_customers_and_keeps_the_former_ones_for_the_backtest(pulled):
    env, report = pulled
    portfolio = env.server.portfolio
    assert report.status == "ok" and len(report.scored) == portfolio.size
    stored = {r.record_id for r in env.store.records.iter_stream("salesforce", "accounts")}
    former = {a.sf_id for a in portfolio.accounts if a.churned_on}
    assert former and former <= stored and not former & {s.result.account_id for s in report.scored}


def test_backtest_finds_every_lost_renewal_the_crm_holds_with_its_reason(cli, monkeypatch, pulled):
    env, _ = pulled
    history = env.server.portfolio.history
    result = _backtest(cli, monkeypatch, env, "--from", history.window_start.isoformat())
    truth = Counter(r.outcome for r in history.renewals)
    assert result["renewals"]["churned"] == truth["churned"]
    closed = [o for o in env.server.portfolio.opportunities if o.kind == "renewal" and o.is_closed
              and history.window_start <= o.close_date <= AS_OF.date()]  # early signatures of today's terms too
    assert sum(result["renewals"].values()) == len(closed)
    assert result["loss_reasons"] == dict(Counter(r.loss_reason for r in history.churned))
    assert [m["model"] for m in result["models"]] == PRESETS
    for model in result["models"]:
        assert KEYS <= set(model) and 0.0 <= model["auc"] <= 1.0
        assert sum(b["accounts"] for b in model["by_band"]) == model["accounts"]
    # a 100-account book loses about a dozen logos a year: reported, with the warning and wide intervals
    assert not result["reliable"] and "unreliable" in result["warnings"][0]
    assert all(m["auc_ci"][1] - m["auc_ci"][0] > 0.1 for m in result["models"])


def test_the_same_seed_gives_the_same_numbers(cli, monkeypatch, pulled):
    env, _ = pulled
    first = _backtest(cli, monkeypatch, env)
    assert _backtest(cli, monkeypatch, env) == first
    for again, _ in _pulled(**BOOK):  # a second sandbox, built and pulled from nothing
        assert _backtest(cli, monkeypatch, again) == first


def test_fit_refuses_a_small_book_and_fits_when_told_the_risk(cli, monkeypatch, pulled, tmp_path):
    env, _ = pulled
    secrets_env(monkeypatch, env)
    config = ["--config", str(env.config_path), "--as-of", AS_OF.date().isoformat()]
    code, out, err = cli("fit", *config)
    assert code == 1 and "fit needs at least 30 churned renewals" in err and "Traceback" not in err
    out_file = tmp_path / "fitted.yaml"
    code, out, err = cli("fit", *config, "--min-churned", "8", "--out", str(out_file), "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["applied"] is False and summary["out"] == str(out_file)
    assert {p["model"] for p in summary["presets"]} == set(PRESETS) and "holdout_auc" in summary
    document = yaml.safe_load(out_file.read_text())
    assert out_file.read_text().startswith("# Fitted by `healthsync fit`")
    assert sum(c["weight"] for c in document["components"]) == pytest.approx(100.0)
    assert load_model(document).calibration.horizon_days == 90
    result = _backtest(cli, monkeypatch, env, "--model", str(out_file), "--model", "default")
    assert [m["model"] for m in result["models"]] == ["fitted", "default"]


def test_bad_input_is_one_clear_line(cli, monkeypatch, pulled):
    env, _ = pulled
    secrets_env(monkeypatch, env)
    code, _, err = cli("backtest", "--config", str(env.config_path), "--from", "2026-02-30")
    assert code == 2 and "--from: '2026-02-30' is not a date" in err
    code, _, err = cli("backtest", "--config", str(env.config_path), "--model", "no-such-preset")
    assert code == 2 and "unknown health preset 'no-such-preset'" in err
