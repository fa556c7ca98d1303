"""/healthz and /metrics over real HTTP on an ephemeral loopback port, fed by cycles and by the store."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from healthsync.config.secrets import register_secret
from healthsync.errors import ConfigError, FatalError
from healthsync.sync.observability import Observability, check_loopback
from healthsync.sync.store import Store

from .fakes import outcome, source

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)


def get(obs: Observability, path: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(f"{obs.url}{path}", timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def health(obs: Observability) -> tuple[int, dict]:
    code, content_type, body = get(obs, "/healthz")
    assert content_type == "application/json"
    return code, json.loads(body)


def samples(obs: Observability) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    code, _, text = get(obs, "/metrics")
    assert code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.fixture
def obs() -> Iterator[Observability]:
    with Observability(port=0) as started:
        yield started


def run(obs: Observability, result) -> None:
    obs.cycle_started(result.full, result.as_of)
    obs.cycle_finished(result)


def test_health_is_starting_then_ok_then_503_after_a_failed_cycle(obs: Observability) -> None:
    assert obs.port > 0 and obs.url.startswith("http://127.0.0.1:")
    code, body = health(obs)
    assert (code, body["status"], body["last_cycle"], body["sources"]) == (200, "starting", None, {})

    obs.cycle_started(False, T0)
    assert health(obs)[1]["cycle_running"] == "incremental"
    obs.cycle_finished(outcome("ok", as_of=T0, run_id="r1", duration_s=2.5))
    code, body = health(obs)
    assert (code, body["status"], body["cycle_running"]) == (200, "ok", None)
    assert body["last_cycle"]["run_id"] == "r1" and body["last_cycle"]["finished_at"] == "2024-05-01T09:00:02.500000+00:00"
    assert body["sources"]["salesforce"] == {
        "ok": True, "paused": False, "paused_reason": None,
        "last_success_at": "2024-05-01T09:00:02.500000+00:00", "last_error_at": None, "last_error": None,
    }

    later = T0 + timedelta(minutes=5)
    run(obs, outcome("failed", as_of=later, error="every source failed", sources={
        "salesforce": source("salesforce", ok=False, error="401 INVALID_SESSION_ID", paused=True),
    }))
    code, body = health(obs)
    assert (code, body["status"], body["last_cycle"]["error"]) == (503, "failed", "every source failed")
    salesforce = body["sources"]["salesforce"]
    assert salesforce["ok"] is False and salesforce["paused"] is True
    assert salesforce["last_error"] == "401 INVALID_SESSION_ID"
    assert salesforce["last_error_at"] == later.isoformat()
    assert salesforce["last_success_at"] == "2024-05-01T09:00:02.500000+00:00"  # kept from the earlier cycle
    assert body["cycles"] == {"ok": 1, "partial": 0, "failed": 1}

    run(obs, outcome("partial", as_of=later + timedelta(minutes=5)))
    assert health(obs)[0] == 200


def test_metrics_count_cycles_sources_writes_and_bands(obs: Observability) -> None:
    before = samples(obs)
    assert before[("healthsync_cycles_total", (("kind", "incremental"), ("status", "ok")))] == 0
    run(obs, outcome("ok", as_of=T0, duration_s=12, writes={"fields": 7, "tasks": 2},
                     accounts_by_band={"green": 5, "yellow": 3, "red": 1}))
    run(obs, outcome("partial", full=True, as_of=T0 + timedelta(minutes=1), duration_s=400, writes={"fields": 1},
                     accounts_by_band={"green": 6, "red": 2}, sources={
                         "salesforce": source("salesforce", records=100, api_calls=20, rate_limited=2),
                         "zendesk": source("zendesk", ok=False, error="timeout", api_calls=1),
                     }))
    got = samples(obs)
    assert got[("healthsync_cycles_total", (("kind", "incremental"), ("status", "ok")))] == 1
    assert got[("healthsync_cycles_total", (("kind", "full"), ("status", "partial")))] == 1
    assert got[("healthsync_cycle_duration_seconds_count", (("kind", "full"),))] == 1
    assert got[("healthsync_cycle_duration_seconds_sum", (("kind", "incremental"),))] == 12
    assert got[("healthsync_cycle_duration_seconds_bucket", (("kind", "full"), ("le", "300.0")))] == 0
    assert got[("healthsync_cycle_duration_seconds_bucket", (("kind", "full"), ("le", "600.0")))] == 1
    assert got[("healthsync_records_pulled_total", (("source", "salesforce"),))] == 110
    assert got[("healthsync_api_calls_total", (("source", "zendesk"),))] == 3
    assert got[("healthsync_api_rate_limited_total", (("source", "salesforce"),))] == 2
    assert got[("healthsync_writes_total", (("kind", "fields"),))] == 8
    assert got[("healthsync_writes_total", (("kind", "tasks"),))] == 2
    assert got[("healthsync_source_up", (("source", "zendesk"),))] == 0
    assert got[("healthsync_source_up", (("source", "salesforce"),))] == 1
    first_end = (T0 + timedelta(seconds=12)).timestamp()
    assert got[("healthsync_source_last_success_timestamp_seconds", (("source", "zendesk"),))] == first_end
    assert got[("healthsync_accounts", (("band", "green"),))] == 6
    assert ("healthsync_accounts", (("band", "yellow"),)) not in got  # the latest distribution only
    assert got[("healthsync_last_successful_cycle_timestamp_seconds", ())] == (
        T0 + timedelta(minutes=1, seconds=400)
    ).timestamp()


def test_failed_cycle_without_scores_keeps_the_band_gauges(obs: Observability) -> None:
    run(obs, outcome("ok", as_of=T0, accounts_by_band={"green": 4}))
    run(obs, outcome("failed", as_of=T0 + timedelta(minutes=5), sources={}))
    got = samples(obs)
    assert got[("healthsync_accounts", (("band", "green"),))] == 4
    assert got[("healthsync_last_successful_cycle_timestamp_seconds", ())] == T0.timestamp()


def test_registries_are_private_to_each_instance() -> None:
    with Observability(port=0) as one, Observability(port=0) as two:
        run(one, outcome("ok", as_of=T0))
        assert samples(one)[("healthsync_cycles_total", (("kind", "incremental"), ("status", "ok")))] == 1
        assert samples(two)[("healthsync_cycles_total", (("kind", "incremental"), ("status", "ok")))] == 0
        assert one.port != two.port


def test_health_merges_the_store_source_status(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'healthsync.db'}")
    try:
        store.runs.record_source_success("mixpanel", now=T0)
        store.runs.record_source_error("hubspot", "403 missing scope crm.objects.companies.write", now=T0)
        store.runs.pause_source("hubspot", "credentials rejected: fix HUBSPOT_ACCESS_TOKEN", now=T0)
        with Observability(port=0, source_statuses=store.runs.source_statuses) as obs:
            obs.metrics.seed(store.runs.source_statuses())
            code, body = health(obs)
            assert (code, body["status"], body["store"]) == (200, "starting", "ok")
            assert body["sources"]["mixpanel"]["last_success_at"] == T0.isoformat()
            assert body["sources"]["mixpanel"]["ok"] is None  # no cycle of this process has seen it yet
            hubspot = body["sources"]["hubspot"]
            assert hubspot["paused"] is True and "HUBSPOT_ACCESS_TOKEN" in hubspot["paused_reason"]
            assert hubspot["last_error"].startswith("403 missing scope")
            seeded = samples(obs)
            assert seeded[("healthsync_source_paused", (("source", "hubspot"),))] == 1
            assert seeded[("healthsync_source_last_success_timestamp_seconds", (("source", "mixpanel"),))] == T0.timestamp()

            # The operator resumes hubspot after the cycle that saw it paused: the store is newer and wins.
            run(obs, outcome("partial", as_of=T0 + timedelta(minutes=1), sources={
                "hubspot": source("hubspot", ok=False, paused=True, error="paused")}))
            store.runs.resume_source("hubspot", now=T0 + timedelta(minutes=2))
            assert health(obs)[1]["sources"]["hubspot"]["paused"] is False
    finally:
        store.close()


def test_health_is_redacted_as_it_leaves_the_process(tmp_path: Path) -> None:
    register_secret("zd-healthz-secret-41")
    store = Store.open(f"sqlite:///{tmp_path / 'healthsync.db'}")
    try:
        store.runs.pause_source("zendesk", "credentials rejected: zd-healthz-secret-41 was refused", now=T0)
        with Observability(port=0, source_statuses=store.runs.source_statuses) as obs:
            run(obs, outcome("failed", as_of=T0 - timedelta(minutes=1), error="crashed at http://h/x?sig=abc", sources={
                "hubspot": source("hubspot", ok=False, error="401 with access_token=pat-na1-0042")}))
            _, body = health(obs)
    finally:
        store.close()
    assert body["last_cycle"]["error"] == "crashed at http://h/x?…"
    assert body["sources"]["hubspot"]["last_error"] == "401 with access_token=[REDACTED]"
    assert body["sources"]["zendesk"]["paused_reason"] == "credentials rejected: [REDACTED] was refused"


def test_health_answers_when_the_store_does_not() -> None:
    def broken() -> list:
        raise OSError("connection refused")

    with Observability(port=0, source_statuses=broken) as obs:
        code, body = health(obs)
    assert code == 200 and body["store"] == "unavailable: OSError: connection refused"


def test_unknown_paths_are_404(obs: Observability) -> None:
    code, _, body = get(obs, "/admin")
    assert code == 404 and "/healthz" in body


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "example.com", "::"])
def test_non_loopback_hosts_are_refused(host: str) -> None:
    with pytest.raises(ConfigError, match="loopback"):
        Observability(host=host, port=0)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_hosts_are_accepted(host: str) -> None:
    check_loopback(host)


def test_ipv6_loopback_serves() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        started = Observability(host="::1", port=0).start()
    except FatalError as exc:
        pytest.skip(f"cannot bind ::1 here: {exc}")
    try:
        assert started.url.startswith("http://[::1]:") and health(started)[0] == 200
    finally:
        started.stop()


def test_port_in_use_is_a_clear_error(obs: Observability) -> None:
    with pytest.raises(FatalError, match=f"127.0.0.1:{obs.port}.*observability.port"):
        Observability(port=obs.port).start()
