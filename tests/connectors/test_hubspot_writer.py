"""The HubSpot writer (CrmWriter + SchemaWriter) against the HubSpot emulator through the unmodified SDK."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import pytest

from healthsync.connectors.hubspot import HubSpotWriter
from healthsync.connectors.pacing import PacerRegistry
from healthsync.connectors.writes import FieldSpec
from healthsync.errors import AuthError

from .hs_conn_fixtures import (
    company_id,
    hubspot_sandbox,
    make_client,
    make_writer,
    private_app_auth,
    settings_for,
)

ACCOUNT_SPECS = [
    FieldSpec("account", "healthsync_score", "Health Score", "number", "0-100"),
    FieldSpec("account", "healthsync_band", "Health Band", "text"),
    FieldSpec("account", "healthsync_explanation", "Health Explanation", "long_text"),
    FieldSpec("account", "healthsync_scored_at", "Last Scored At", "datetime"),
]
TASK_KEY_SPEC = FieldSpec("task", "healthsync_key", "Healthsync Key", "text")


@dataclass(frozen=True)
class Update:  # duck-typed like writeback.base.FieldUpdate
    account_id: str
    fields: dict


@dataclass(frozen=True)
class Task:  # duck-typed like writeback.base.TaskUpsert
    dedupe_key: str
    account_id: str
    subject: str
    body: str
    owner_id: str | None
    due_date: date
    priority: str
    rule_id: str = "below_threshold"
    kind: str = "task"
    owner_email: str | None = None
    cooldown_days: int = 14


@pytest.fixture()
def server():
    with hubspot_sandbox() as srv:
        yield srv


@pytest.fixture()
def emu(server):
    return server.emulator("hubspot")


@pytest.fixture()
def writer(server) -> HubSpotWriter:
    return make_writer(server)


@pytest.fixture()
def ready(writer) -> HubSpotWriter:
    for spec in [*ACCOUNT_SPECS, TASK_KEY_SPEC]:
        assert writer.create_field(spec).status == "created"
    return writer


def task(n: int, account: int = 1, owner: str | None = "101", priority: str = "high") -> Task:
    return Task(dedupe_key=f"{company_id(account)}|below_threshold|2024-06-{n:02d}", account_id=company_id(account),
                subject=f"Review account {n}", body="score 58 < 70 (usage 31, support 40)", owner_id=owner,
                due_date=date(2024, 6, 3), priority=priority)


# ---------------------------------------------------------------------------------------------- setup


def test_setup_twice_creates_then_finds_the_properties(server, emu, writer):
    assert "healthsync_score" not in writer.existing_fields("account")
    first = [writer.create_field(spec).status for spec in [*ACCOUNT_SPECS, TASK_KEY_SPEC]]
    assert first == ["created"] * 5
    assert {"healthsync_score", "healthsync_explanation"} <= writer.existing_fields("account")
    assert "healthsync_key" in writer.existing_fields("task")
    score = emu.schema.get("companies", "healthsync_score")
    explanation = emu.schema.get("companies", "healthsync_explanation")
    scored_at = emu.schema.get("companies", "healthsync_scored_at")
    assert (score.type, score.field_type, score.group_name) == ("number", "number", "healthsync")
    assert (explanation.type, explanation.field_type) == ("string", "textarea")
    assert (scored_at.type, scored_at.field_type) == ("datetime", "date")
    again = make_writer(server)  # a second `healthsync setup` run: group and properties exist
    assert [again.create_field(spec).status for spec in [*ACCOUNT_SPECS, TASK_KEY_SPEC]] == ["existed"] * 5


def test_setup_without_schema_scope_names_the_scope(emu, writer):
    emu.allow_schema_writes = False
    outcome = writer.create_field(ACCOUNT_SPECS[0])
    assert outcome.status == "failed"
    assert "crm.schemas.companies.write scope" in outcome.detail
    assert "healthsync_score" not in writer.existing_fields("account")


def test_writer_from_settings_uses_the_configured_batch_size(server):
    writer = HubSpotWriter.from_settings(settings_for(server), PacerRegistry())
    assert (writer.crm, writer.max_update_batch, writer.max_create_batch) == ("hubspot", 100, 100)
    assert writer.resolve_users(["CTO@cloudscale.io"]) == {"cto@cloudscale.io": "103"}  # over TLS


# ---------------------------------------------------------------------------------------------- fields


def test_partial_batch_failure_lands_the_rest_and_reports_the_bad_ones(server, emu, ready):
    before = server.calls.snapshot().get("hubspot batch", 0)
    results = ready.update_accounts([
        Update(company_id(1), {"healthsync_score": 72, "healthsync_band": "healthy"}),
        Update("999999", {"healthsync_score": 10}),
        Update(company_id(2), {"healthsync_score": "not a number"}),
        Update(company_id(3), {"healthsync_score": 41.0, "healthsync_scored_at": "2024-06-01T12:00:00+00:00"}),
    ])
    assert server.calls.snapshot()["hubspot batch"] - before == 1  # one batch call
    assert [(r.key, r.status) for r in results] == [
        (company_id(1), "ok"), ("999999", "failed"), (company_id(2), "failed"), (company_id(3), "ok")]
    assert "OBJECT_NOT_FOUND" in results[1].error and "healthsync_score" in results[2].error
    assert emu.get("companies", company_id(1))["properties"]["healthsync_score"] == "72"
    assert emu.get("companies", company_id(3))["properties"]["healthsync_scored_at"] == "2024-06-01T12:00:00.000Z"
    assert "healthsync_score" not in emu.get("companies", company_id(2))["properties"]


def test_whole_batch_refusal_fails_every_record(emu, ready):
    emu.batch_limit = 1  # HubSpot answers 400 for the whole request
    results = ready.update_accounts([Update(company_id(1), {"healthsync_score": 1}),
                                     Update(company_id(2), {"healthsync_score": 2})])
    assert [r.status for r in results] == ["failed", "failed"] and "Too many inputs" in results[0].error


def test_batch_bigger_than_the_limit_is_a_caller_bug(writer):
    with pytest.raises(ValueError, match="at most 100"):
        writer.update_accounts([Update(str(i), {"x": 1}) for i in range(101)])


# ---------------------------------------------------------------------------------------------- tasks


def test_created_tasks_are_associated_and_found_by_key(server, emu, ready):
    tasks = [task(1), task(2, account=2, owner=None, priority="normal")]
    results = ready.create_tasks(tasks)
    assert [(r.key, r.status) for r in results] == [(t.dedupe_key, "ok") for t in tasks]
    first = emu.get("tasks", results[0].crm_id)["properties"]
    assert (first["hs_task_subject"], first["hs_task_status"], first["hs_task_priority"]) == \
        ("Review account 1", "NOT_STARTED", "HIGH")
    assert (first["hubspot_owner_id"], first["healthsync_key"]) == ("101", tasks[0].dedupe_key)
    assert first["hs_task_body"] == tasks[0].body and first["hs_timestamp"] == "2024-06-03T12:00:00.000Z"
    assert emu.associations("tasks", results[0].crm_id, "companies") == [company_id(1)]
    assert emu.associations("tasks", results[1].crm_id, "companies") == [company_id(2)]
    assert emu.get("tasks", results[1].crm_id)["properties"]["hs_task_priority"] == "MEDIUM"

    found = ready.find_tasks([t.dedupe_key for t in tasks] + ["1005|nothing|here"])
    assert set(found) == {t.dedupe_key for t in tasks}
    assert found[tasks[0].dedupe_key].crm_task_id == results[0].crm_id and not found[tasks[0].dedupe_key].completed

    closed_at = server.clock.now()
    emu.update("tasks", results[0].crm_id, {"hs_task_status": "COMPLETED"}, at=closed_at)
    state = ready.find_tasks([tasks[0].dedupe_key])[tasks[0].dedupe_key]
    assert state.completed and abs(state.completed_at - closed_at) < timedelta(milliseconds=1)


def test_one_bad_task_fails_alone(emu, ready):
    results = ready.create_tasks([task(1), task(2, owner="999"), task(3)])
    assert [r.status for r in results] == ["ok", "failed", "ok"]
    assert "hubspot_owner_id" in results[1].error
    assert len(emu.objects("tasks")) == 2


def test_failed_create_is_not_duplicated_on_retry(server, emu, ready):
    server.faults.add(r"/crm/v3/objects/tasks/batch/create", status=502, times=1)
    server.faults.add(r"/crm/v3/objects/tasks/batch/create", status=429, times=1)
    results = ready.create_tasks([task(1), task(2)])
    assert [r.status for r in results] == ["ok", "ok"]
    assert len(emu.objects("tasks")) == 2  # one task per key
    again = ready.create_tasks([task(1)])  # a replay of the same batch after a crash would be caught by find_tasks
    assert again[0].status == "ok" and len(emu.objects("tasks")) == 3  # create itself is not idempotent


def test_find_tasks_before_setup_finds_nothing(server, writer):
    assert writer.find_tasks(["1001|below_threshold|2024-06"]) == {}


def test_find_tasks_chunks_its_in_filters(server, emu, ready):
    keys = [f"k{i}" for i in range(150)]
    for key in keys[:3]:
        emu.create("tasks", {"hs_task_subject": key, "hs_timestamp": "2024-06-03T12:00:00Z", "healthsync_key": key})
    before = server.calls.snapshot().get("hubspot search", 0)
    assert set(ready.find_tasks(keys)) == set(keys[:3])
    assert server.calls.snapshot()["hubspot search"] - before == 2  # 100 + 50 values


# ---------------------------------------------------------------------------------------------- users, auth


def test_resolve_users_by_email(writer):
    resolved = writer.resolve_users(["cto@cloudscale.io", "Robin@Vendor.test", "sam@vendor.test", "nobody@x.test"])
    assert resolved == {"cto@cloudscale.io": "103", "robin@vendor.test": "102"}  # sam is deactivated


def test_bad_token_raises_auth_error_naming_the_setting(server):
    writer = make_writer(server, client=make_client(server, auth=private_app_auth("pat-bad-token")))
    with pytest.raises(AuthError, match="crm.hubspot.auth.access_token") as caught:
        writer.update_accounts([Update(company_id(1), {"name": "x"})])
    assert "pat-bad-token" not in str(caught.value)


def test_values_are_sent_as_hubspot_text():
    from healthsync.connectors.hubspot.writer import property_value

    assert [property_value(v) for v in (72.0, 72.5, True, None, "x", 3)] == ["72", "72.5", "true", "", "x", "3"]
    assert property_value(datetime.fromisoformat("2024-06-01T12:00:00+02:00")) == "2024-06-01T10:00:00+00:00"
