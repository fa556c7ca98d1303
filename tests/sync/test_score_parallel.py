"""The multi-core scoring path gives exactly the serial results (independent and percentile models), and a
worker that fails or dies costs time, never results."""

from __future__ import annotations

import hashlib
import os
import random

import pytest

import healthsync.sync.score_parallel as parallel
from healthsync.config.health_model import load_model
from healthsync.scoring import score_portfolio
from healthsync.sync.score_parallel import can_fork, score_portfolio_parallel
from tests.scoring.scoring_factories import AS_OF, default_playbook, preset_dict, random_facts

pytestmark = pytest.mark.skipif(not can_fork(), reason="the parallel path forks (Linux only)")

ACCOUNTS = 600
CHUNK = 70  # several chunks per process, and a short last one


def _digest(scored) -> str:
    return hashlib.sha256("\n".join(repr(s) for s in scored).encode()).hexdigest()


@pytest.fixture(scope="module")
def portfolio():
    return random_facts(random.Random(5), ACCOUNTS)


@pytest.fixture(autouse=True)
def small_portfolios_run_in_parallel(monkeypatch):
    monkeypatch.setattr(parallel, "MIN_PARALLEL_ACCOUNTS", 100)


def _no_zombies() -> None:
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


@pytest.mark.parametrize("preset", ["default", "csm-playbook"])  # csm-playbook ranks accounts by percentile
def test_parallel_results_equal_serial_results(portfolio, preset):
    model = load_model(preset_dict(preset))
    serial = score_portfolio(portfolio, model, default_playbook(), {}, AS_OF)
    forked = score_portfolio_parallel(portfolio, model, default_playbook(), {}, AS_OF, workers=3,
                                      chunk_accounts=CHUNK)
    assert [s.result.account_id for s in forked] == [f.account.id for f in portfolio]
    assert forked == serial
    assert _digest(forked) == _digest(serial)
    _no_zombies()


def test_history_and_no_playbook_equal_serial(portfolio):
    model = load_model(preset_dict("default"))
    history = {}
    for scored in score_portfolio(portfolio, model, None, {}, AS_OF.replace(day=1)):
        history[scored.result.account_id] = [scored.result.to_past()]
    serial = score_portfolio(portfolio, model, None, history, AS_OF)
    forked = score_portfolio_parallel(portfolio, model, None, history, AS_OF, workers=2, chunk_accounts=CHUNK)
    assert _digest(forked) == _digest(serial)
    assert any("Moved since" in s.result.explanation for s in forked)  # history reached the workers


@pytest.mark.parametrize("preset", ["default", "csm-playbook"])
def test_a_worker_that_dies_costs_time_not_results(portfolio, preset, monkeypatch):
    def die_after_one_chunk(self, work_read, out_fd, control):
        next(parallel._claims(work_read))  # takes a chunk off the queue, then vanishes without a word
        os._exit(3)

    monkeypatch.setattr(parallel._ParallelRun, "_work", die_after_one_chunk)
    model = load_model(preset_dict(preset))
    serial = score_portfolio(portfolio, model, default_playbook(), {}, AS_OF)
    forked = score_portfolio_parallel(portfolio, model, default_playbook(), {}, AS_OF, workers=2,
                                      chunk_accounts=CHUNK)
    assert _digest(forked) == _digest(serial)
    _no_zombies()


def test_a_scoring_error_surfaces_with_its_own_exception(portfolio, monkeypatch):
    real = parallel.score_signals

    def fail_on_account_42(facts, *args):
        if any(f.account.id == "A042" for f in facts):
            raise ZeroDivisionError("account 42")
        return real(facts, *args)

    monkeypatch.setattr(parallel, "score_signals", fail_on_account_42)
    model = load_model(preset_dict("default"))
    with pytest.raises(ZeroDivisionError, match="account 42"):
        score_portfolio_parallel(portfolio, model, None, {}, AS_OF, workers=2, chunk_accounts=CHUNK)
    _no_zombies()


def test_small_portfolios_and_one_worker_never_fork(portfolio, monkeypatch):
    def no_fork():
        raise AssertionError("forked")

    monkeypatch.setattr(os, "fork", no_fork)
    model = load_model(preset_dict("default"))
    serial = score_portfolio(portfolio, model, None, {}, AS_OF)
    assert score_portfolio_parallel(portfolio, model, None, {}, AS_OF, workers=1) == serial
    monkeypatch.setattr(parallel, "MIN_PARALLEL_ACCOUNTS", ACCOUNTS + 1)
    assert score_portfolio_parallel(portfolio, model, None, {}, AS_OF, workers=4) == serial


def test_bad_arguments_are_refused(portfolio):
    model = load_model(preset_dict("default"))
    with pytest.raises(ValueError, match="timezone-aware"):
        score_portfolio_parallel(portfolio, model, None, {}, AS_OF.replace(tzinfo=None))
    with pytest.raises(ValueError, match="chunk_accounts"):
        score_portfolio_parallel(portfolio, model, None, {}, AS_OF, chunk_accounts=0)


def test_a_worker_that_dies_while_scoring_costs_time_not_results(portfolio, monkeypatch):
    """In the percentile path the worker dies after sending its signals: the parent scores its chunks."""
    real = parallel.score_signals
    parent = os.getpid()

    def die_in_worker(*args):
        if os.getpid() != parent:
            os._exit(3)
        return real(*args)

    monkeypatch.setattr(parallel, "score_signals", die_in_worker)
    model = load_model(preset_dict("csm-playbook"))
    serial = score_portfolio(portfolio, model, default_playbook(), {}, AS_OF)
    forked = score_portfolio_parallel(portfolio, model, default_playbook(), {}, AS_OF, workers=2,
                                      chunk_accounts=CHUNK)
    assert _digest(forked) == _digest(serial)
    _no_zombies()
