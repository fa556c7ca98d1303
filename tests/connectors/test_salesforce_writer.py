"""The Salesforce writer against the emulator: Collections updates with per-record failures, tasks created and
found by dedupe key (never twice, even when an answer is lost), users by email, and setup's custom fields."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date

import pytest
import requests

from healthsync.connectors.records import TaskStatus
from healthsync.connectors.salesforce.client import SalesforceHttp
from healthsync.connectors.writes import FieldSpec
from healthsync.errors import ConfigError

from . import sf_conn_fixtures as fx

server, emu = fx.server, fx.emu  # the emulator fixtures, shared with the other Salesforce test module
Store = fx.Store
harness = fx.harness
pull = fx.pull


KEY_SPEC = FieldSpec("task", "Healthsync_Key__c", "Healthsync Key", "text", "dedupe key")
SCORE_SPEC = FieldSpec("account", "Health_Score__c", "Health Score", "number", "0-100")


@dataclass(frozen=True)
class Update:  # the attributes of writeback.base.FieldUpdate (connectors may not import writeback)
    account_id: str
    fields: dict


@dataclass(frozen=True)
class Task:  # the attributes of writeback.base.TaskUpsert
    dedupe_key: str
    account_id: str
    rule_id: str
    kind: str
    subject: str
    body: str
    owner_id: str | None
    owner_email: str | None
    due_date: date
    priority: str
    cooldown_days: int = 14


def _task(n: int, **overrides) -> Task:
    base = Task(dedupe_key=f"{fx.sf_id('001', n)}|below_threshold|2024-W22", account_id=fx.sf_id("001", n),
                rule_id="below_threshold", kind="task", subject=f"Review account {n}",
                body="health 58 < 70: usage down 35% week over week", owner_id=fx.sf_id("005", 1),
                owner_email="casey@vendor.test", due_date=date(2024, 6, 3), priority="normal")
    return replace(base, **overrides)


def _tasks_by_key(emu):
    return {row["Healthsync_Key__c"]: row for row in emu.records("Task") if row.get("Healthsync_Key__c")}


# -------------------------------------------------------------------------------------------------- accounts


def test_collection_update_lands_the_good_records_and_reports_the_bad_one(server, emu):
    h = harness(server)
    updates = [Update(fx.sf_id("001", 1), {"ARR__c": 5.0, "Plan_Tier__c": "Business"}),
               Update(fx.sf_id("001", 2), {"ARR__c": "not a number"}),
               Update(fx.sf_id("001", 5), {"ARR__c": None})]
    server.calls.reset()
    results = h.writer.update_accounts(updates)
    assert server.calls.snapshot() == {"salesforce soap_login": 1, "salesforce collections": 1}
    assert [r.key for r in results] == [u.account_id for u in updates]
    assert [r.status for r in results] == ["ok", "failed", "ok"]
    assert "JSON_PARSER_ERROR" in results[1].error and results[0].crm_id == fx.sf_id("001", 1)
    assert emu.record("Account", fx.sf_id("001", 1))["ARR__c"] == 5.0
    assert emu.record("Account", fx.sf_id("001", 2))["ARR__c"] == 24000.0
    assert emu.record("Account", fx.sf_id("001", 5))["ARR__c"] is None  # null clears the field


def test_a_deleted_account_fails_alone(server, emu):
    results = harness(server).writer.update_accounts([Update(fx.sf_id("001", 3), {"ARR__c": 1.0}),
                                                      Update(fx.sf_id("001", 4), {"ARR__c": 2.0})])
    assert [r.status for r in results] == ["failed", "ok"] and "ENTITY_IS_DELETED" in results[0].error


def test_more_than_200_records_are_never_sent_in_one_call(server, emu):
    h = harness(server)
    assert h.writer.max_update_batch == 200 and h.writer.max_create_batch == 200
    server.calls.reset()
    with pytest.raises(ValueError, match="at most 200"):
        h.writer.update_accounts([Update(fx.sf_id("001", 1), {"ARR__c": float(i)}) for i in range(201)])
    with pytest.raises(ValueError, match="at most 200"):
        h.writer.create_tasks([_task(1, dedupe_key=f"k{i}") for i in range(201)])
    assert "salesforce collections" not in server.calls.snapshot()
    assert h.writer.update_accounts([]) == [] and h.writer.find_tasks([]) == {}


# -------------------------------------------------------------------------------------------------- setup


def test_create_field_twice_is_created_then_existed(server, emu):
    h = harness(server)
    assert "Health_Score__c" not in h.writer.existing_fields("account")
    first, second = h.writer.create_field(SCORE_SPEC), h.writer.create_field(SCORE_SPEC)
    assert (first.status, second.status) == ("created", "existed")
    assert "Health_Score__c" in h.writer.existing_fields("account")
    key = h.writer.create_field(KEY_SPEC)
    assert key.status == "created" and key.detail == "Task.Healthsync_Key__c"  # the sandbox has no Activity
    assert h.writer.create_field(KEY_SPEC).status == "existed"
    assert "Healthsync_Key__c" in h.writer.existing_fields("task")
    results = h.writer.update_accounts([Update(fx.sf_id("001", 1), {"Health_Score__c": 72})])
    assert results[0].status == "ok" and emu.record("Account", fx.sf_id("001", 1))["Health_Score__c"] == 72.0


def test_every_field_type_maps_to_valid_metadata(server, emu):
    h = harness(server)
    specs = [FieldSpec("account", "Health_Trend_7d__c", "Health Trend 7d", "number"),
             FieldSpec("account", "Health_Band__c", "Health Band", "text"),
             FieldSpec("account", "Health_Explanation__c", "Health Explanation", "long_text"),
             FieldSpec("account", "Health_Scored_At__c", "Last Scored At", "datetime")]
    assert [h.writer.create_field(s).status for s in specs] == ["created"] * 4
    described = {f["name"]: f for f in h.conn.describe("Account").values()}
    assert described["Health_Trend_7d__c"]["scale"] == 2 and described["Health_Band__c"]["length"] == 255
    assert described["Health_Explanation__c"]["length"] == 32768
    assert described["Health_Scored_At__c"]["type"] == "datetime"


def test_missing_metadata_permission_fails_naming_it(server, emu):
    emu.allow_metadata = False
    outcome = harness(server).writer.create_field(SCORE_SPEC)
    assert outcome.status == "failed" and "'Customize Application' permission" in outcome.detail


# -------------------------------------------------------------------------------------------------- tasks


def test_tasks_are_created_with_their_key_and_found_again(server, emu):
    h = harness(server)
    h.writer.create_field(KEY_SPEC)
    tasks = [_task(1), _task(2, priority="urgent"),
             _task(5, kind="escalation", rule_id="renewal_unsigned", subject="Renewal unsigned",
                   dedupe_key="renewal-5", owner_id=fx.sf_id("005", 3), priority="normal")]
    results = h.writer.create_tasks(tasks)
    assert [r.status for r in results] == ["ok"] * 3 and all(r.crm_id.startswith("00T") for r in results)
    rows = _tasks_by_key(emu)
    escalation = rows["renewal-5"]
    assert escalation["Subject"] == "[Escalation] Renewal unsigned" and escalation["Priority"] == "High"
    assert escalation["OwnerId"] == fx.sf_id("005", 3) and escalation["WhatId"] == fx.sf_id("001", 5)
    first = rows[tasks[0].dedupe_key]
    assert (first["Status"], first["Priority"], first["ActivityDate"]) == ("Not Started", "Normal", "2024-06-03")
    assert first["Description"].startswith("health 58") and rows[tasks[1].dedupe_key]["Priority"] == "High"

    emu.update("Task", results[0].crm_id, {"Status": "Completed"})
    found = h.writer.find_tasks([t.dedupe_key for t in tasks] + ["never-created"])
    assert set(found) == {t.dedupe_key for t in tasks}
    assert found[tasks[0].dedupe_key].completed and found[tasks[0].dedupe_key].completed_at is not None
    assert not found["renewal-5"].completed and found["renewal-5"].crm_task_id == results[2].crm_id


def test_a_create_whose_answer_was_lost_is_adopted_not_duplicated(server, emu):
    h = harness(server)
    h.writer.create_field(KEY_SPEC)
    lost = {"left": 1}
    original = SalesforceHttp.request

    def lose_first_create_answer(self, method, url, *args, **kwargs):
        response = original(self, method, url, *args, **kwargs)
        if method == "POST" and "composite/sobjects" in str(url) and lost["left"]:
            lost["left"] -= 1
            raise requests.exceptions.ConnectionError("connection reset after the server committed")
        return response

    h.conn.http.request = lose_first_create_answer.__get__(h.conn.http)  # this session only
    results = h.writer.create_tasks([_task(1), _task(2)])
    assert [r.status for r in results] == ["ok", "ok"] and lost["left"] == 0
    assert len(_tasks_by_key(emu)) == 2  # the retry looked the keys up and created nothing twice
    assert {r.crm_id for r in results} == {row["Id"] for row in _tasks_by_key(emu).values()}


def test_a_bad_task_fails_alone(server, emu):
    h = harness(server)
    h.writer.create_field(KEY_SPEC)
    results = h.writer.create_tasks([_task(1), _task(2, owner_id=fx.sf_id("005", 4))])  # an inactive owner
    assert [r.status for r in results] == ["ok", "failed"] and "INACTIVE_OWNER_OR_USER" in results[1].error


def test_tasks_need_the_key_field_from_setup(server, emu):
    h = harness(server)
    with pytest.raises(ConfigError, match="healthsync setup"):
        h.writer.create_tasks([_task(1)])
    with pytest.raises(ConfigError, match=r"crm\.field_map\.write\.task_key"):
        h.writer.find_tasks(["some-key"])


def test_find_tasks_keeps_each_query_url_short(server, emu):
    h = harness(server)
    h.writer.create_field(KEY_SPEC)
    keys = [f"{fx.sf_id('001', 1)}|rule-{i:04d}|2024-W22" for i in range(400)]
    h.writer.create_tasks([_task(1, dedupe_key=k) for k in keys[:150]])
    server.calls.reset()
    found = h.writer.find_tasks(keys)
    assert set(found) == set(keys[:150])
    assert server.calls.snapshot()["salesforce query"] >= 3  # ~16k characters of keys, under 7k per URL


def test_the_tasks_stream_reports_our_tasks_and_their_completion(server, emu):
    h = harness(server)
    h.writer.create_field(KEY_SPEC)
    created = h.writer.create_tasks([_task(1), _task(2)])
    store = pull(h.source, "tasks", Store(), fx.cycle_start(emu))
    assert {t.dedupe_key for t in store.records.values()} == {_task(1).dedupe_key, _task(2).dedupe_key}
    assert all(t.status is TaskStatus.OPEN and t.due == date(2024, 6, 3) for t in store.records.values())
    emu.update("Task", created[0].crm_id, {"Status": "Completed"})
    emu.delete("Task", created[1].crm_id)
    pull(h.source, "tasks", store, fx.cycle_start(emu))
    done = store.records[created[0].crm_id]
    assert done.status is TaskStatus.COMPLETED and done.completed_at is not None
    assert created[1].crm_id in store.tombstones and created[1].crm_id not in store.records
    activities = pull(h.source, "activities", Store(), fx.cycle_start(emu)).records
    assert activities[created[0].crm_id].kind == "task"  # our tasks are activities too


# -------------------------------------------------------------------------------------------------- users


def test_resolve_users_finds_active_users_by_email_case_insensitively(server, emu):
    resolved = harness(server).writer.resolve_users(["CTO@CloudScale.io", "gone@vendor.test", "nobody@x.test"])
    assert resolved == {"cto@cloudscale.io": fx.sf_id("005", 3)}  # gone@ is inactive, nobody@ unknown
