"""Health-model and playbook documents: pydantic builds the frozen values scoring consumes, and one
validation path (`config.definitions`) serves `check`, `load_config` and every command that scores."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest

from healthsync.config.definitions import load_definitions
from healthsync.config.documents import DefinitionError
from healthsync.config.health_model import load_model
from healthsync.config.loader import collect_problems, load_config
from healthsync.config.playbook import load_playbook
from healthsync.errors import ConfigError
from healthsync.scoring.conditions import All, BandChanged, Compare, Not, ScoreCrossed
from healthsync.scoring.measures import InverseMeasure, Step, ThresholdMeasure
from healthsync.scoring.model import DEFAULT_FLAGS
from healthsync.scoring.playbook import Owner
from healthsync.scoring.renewal import RenewalWindows
from healthsync.sync.cli import main

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.yaml"
HUBSPOT = 'crm:\n  kind: hubspot\n  hubspot:\n    auth: {mode: private_app, access_token: "${HS_TOKEN}"}\n'
TOKEN = {"HS_TOKEN": "pat-na1-abcdef"}


def small_model(**changes) -> dict:
    model = {
        "components": [
            {"name": "usage", "weight": 70, "measures": [
                {"signal": "login_days_30d", "type": "thresholds", "steps": [{"min": 20, "score": 100}], "else": 40}]},
            {"name": "support", "weight": 30, "measures": [
                {"name": "tickets", "signal": "tickets_90d", "type": "inverse", "best": 0, "worst": 10}]},
        ],
        "bands": [{"name": "good", "min": 60, "colour": "green"}, {"name": "bad", "min": 0, "colour": "red"}],
    }
    model.update(changes)
    return model


def test_a_health_model_becomes_frozen_scoring_values():
    model = load_model(small_model(segment_overrides={"SMB": {"bands": [{"name": "ok", "min": 50},
                                                                         {"name": "low", "min": 0}]}},
                                   renewal={"windows": {"engage": 150}, "segments": {"SMB": {"engage": 90}}}))
    usage, support = model.base.components
    assert usage.measures == (ThresholdMeasure("login_days_30d", "login_days_30d", 1.0, (Step(100.0, min=20.0),), 40.0),)
    assert support.measures == (InverseMeasure("tickets", "tickets_90d", 1.0, best=0.0, worst=10.0),)
    assert model.base.healthy == {"good"} and model.flags == DEFAULT_FLAGS
    smb = model.overrides["SMB"]
    assert smb.components == model.base.components and [b.name for b in smb.bands] == ["ok", "low"]
    assert smb.healthy == {"ok"}  # new bands: only their top band is healthy, as in the base model
    assert model.renewal_windows == RenewalWindows(engage=150)
    assert model.segment_windows["SMB"] == RenewalWindows(engage=90)  # unspecified stages keep the base windows
    with pytest.raises(dataclasses.FrozenInstanceError):
        usage.measures[0].weight = 2.0


def test_a_playbook_becomes_frozen_rules_with_defaults_applied():
    playbook = load_playbook({
        "roles": {"cs_manager": {"email": "mgr@example.com"}},
        "defaults": {"priority": "high", "cooldown_days": 0, "owner": {"role": "cs_manager"}},
        "rules": [{"id": "drop", "when": {"all": [{"signal": "tickets_7d", "op": "gte", "value": 2},
                                                 {"not": {"changed": "band", "to": "bad"}}]},
                   "unless": {"crossed": "score", "below": 40}, "action": {"subject": "Look at {account_name}",
                                                                           "due_in": 0}}],
    })
    [rule] = playbook.rules
    assert rule.when == All((Compare("tickets_7d", ">=", 2), Not(BandChanged(to_bands=frozenset({"bad"})))))
    assert rule.unless == ScoreCrossed(below=True, threshold=40.0)
    action = rule.action
    assert (action.priority, action.cooldown_days, action.due_in) == ("high", 0, timedelta(0))  # 0 is a value
    assert action.owner == Owner("email", email="mgr@example.com", role="cs_manager")
    assert (action.kind, action.window) == ("task", "iso_week")


def test_references_are_checked_one_by_one_even_when_other_parts_are_wrong():
    book = {"roles": {"cs_manager": "mgr@example.com"}, "rules": [
        {"id": "a", "when": {"signal": "nps", "op": "<", "value": 5},
         "action": {"subject": "x", "owner": {"role": "vp_sales"}}},
        {"id": "a", "when": {"signal": "npz", "op": "is_null"}, "action": {"subject": "y", "owner": {"role": "cto"}}},
    ]}
    with pytest.raises(DefinitionError) as caught:
        load_playbook(book)
    assert [path for path, _ in caught.value.problems] == [
        "playbook.rules[0].action.owner.role", "playbook.rules[1].id", "playbook.rules[1].when.signal",
        "playbook.rules[1].action.owner.role"]
    assert "(did you mean 'nps'?)" in caught.value.problems[2][1]


def test_roles_from_the_config_count_as_the_playbooks_own():
    book = {"rules": [{"id": "a", "when": {"signal": "nps", "op": "<", "value": 5},
                       "action": {"subject": "x", "owner": {"role": "cs_manager"}}}]}
    with pytest.raises(DefinitionError):
        load_playbook(book)
    playbook = load_playbook(book, roles={"cs_manager": "lead@example.com"})
    assert playbook.rules[0].action.owner.email == "lead@example.com"


def test_an_escalation_role_typo_fails_every_command_not_only_check(write_config, capsys):
    path = write_config(HUBSPOT + "writeback:\n  escalations:\n    cs_manger: lead@cloudscale.io\n")
    expected = ("writeback.escalations.cs_manger (line 7): the playbook has no role 'cs_manger' "
                "(did you mean 'cs_manager'?)")
    assert any(str(p).startswith(expected) for p in collect_problems(path, TOKEN))
    with pytest.raises(ConfigError) as caught:
        load_config(path, TOKEN)  # what run, score, plan and apply load
    assert expected in str(caught.value)


def test_the_config_fills_the_signal_settings_a_model_leaves_empty(example_env):
    model, playbook = load_definitions(load_config(EXAMPLE, example_env))
    signals = model.signal_config
    assert signals.competitor_words == ("Gainsight", "ChurnZero", "Totango")  # from zendesk.competitor_words
    assert signals.features_by_plan["pro"] == ("Report Created", "Dashboard Shared", "Alert Configured",
                                               "API Key Created")
    assert signals.value_events == ("Dashboard Shared",)
    assert playbook.roles["renewal_escalation"] == "cto@cloudscale.io"  # writeback.escalations wins


def test_a_broken_model_file_is_reported_with_its_file_and_lines(write_config, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.yaml").write_text("components:\n  - name: usage\n    name: again\n  - [oops\n")
    monkeypatch.setenv("HS_TOKEN", TOKEN["HS_TOKEN"])
    assert main(["check", "--config", str(write_config(HUBSPOT + "health:\n  model: ./model.yaml\n"))]) == 2
    err = capsys.readouterr().err
    assert "health (model.yaml line 5): YAML syntax error" in err
    (tmp_path / "model.yaml").write_text("components:\n  - name: usage\n    name: again\n    weight: 100\n"
                                         "    measures: [{signal: nps, type: linear, points: [[0, 0], [10, 100]]}]\n"
                                         "bands: [{name: all, min: 0}]\n")
    assert main(["check", "--config", str(write_config(HUBSPOT + "health:\n  model: ./model.yaml\n"))]) == 2
    err = capsys.readouterr().err
    assert "health.components.0.name (model.yaml line 3): duplicate key 'name' (first at line 2)" in err


def test_the_default_flags_apply_unless_a_model_lists_its_own():
    own = load_model(small_model(flags=[{"name": "unhappy", "signal": "nps", "op": "lt", "value": 5}]))
    assert own.flags == (("unhappy", Compare("nps", "<", 5)),)
    with pytest.raises(DefinitionError) as caught:
        load_model(small_model(flags=[{"name": "x", "signal": "score", "op": "<", "value": 5}]))
    assert caught.value.problems == [("health.flags[0].signal", "unknown signal 'score'; see scoring.signals.SIGNALS")]
