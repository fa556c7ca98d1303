"""Loading: the example file, defaults, ${VAR} / VAR_FILE interpolation, relative paths, presets."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from healthsync.config.catalog import resolve_preset_path
from healthsync.config.loader import collect_problems, load_config
from healthsync.config.secrets import registered_secrets
from healthsync.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.yaml"

HUBSPOT_ONLY = """\
crm:
  kind: hubspot
  hubspot:
    auth:
      mode: private_app
      access_token: ${HUBSPOT_ACCESS_TOKEN}
"""


def test_example_loads_with_its_documented_env(example_env, key_file):
    settings = load_config(EXAMPLE, env=example_env)
    auth = settings.crm.salesforce.auth
    assert settings.crm.kind == "salesforce" and auth.mode == "jwt"
    assert auth.consumer_key == "3MVG9-consumer-key"
    assert auth.private_key_file == key_file
    assert settings.zendesk.auth.token.get_secret_value() == "zd-tok-8f3a9c1e77"
    assert settings.mixpanel.service_account.secret.get_secret_value() == "mp-secret-51d0b2aa"
    assert settings.mixpanel.login_event == "$session_start"  # a lone $ is not a reference
    assert settings.writeback.escalations["renewal_escalation"] == "cto@cloudscale.io"
    assert settings.store.resolved_url == f"sqlite:///{EXAMPLE.parent / 'data' / 'healthsync.db'}"
    assert settings.health.model.kind == "preset" and settings.health.model.load()["components"]
    assert settings.schedule.incremental_minutes == 5


def test_example_fails_without_env_and_names_every_variable():
    problems = collect_problems(EXAMPLE, env={})
    messages = "\n".join(str(p) for p in problems)
    for variable in ("SALESFORCE_CONSUMER_KEY", "SALESFORCE_PRIVATE_KEY_PATH", "ZENDESK_TOKEN", "MIXPANEL_SECRET"):
        assert f"environment variable {variable} is not set (set it, or {variable}_FILE)" in messages
    assert len(problems) == 4  # knock-on errors from the missing values are not repeated


def test_defaults_fill_a_minimal_file(write_config):
    settings = load_config(write_config(HUBSPOT_ONLY), env={"HUBSPOT_ACCESS_TOKEN": "pat-na1-0000-1111"})
    assert settings.crm.field_map.account.arr == "arr"  # HubSpot defaults, not Salesforce's ARR__c
    assert settings.crm.field_map.write.health_score == "healthsync_score"
    assert settings.zendesk is None and settings.mixpanel is None
    assert settings.limits.salesforce.daily_share == 0.5
    assert settings.limits.zendesk.incremental_per_minute == 10
    assert settings.limits.mixpanel.queries_per_hour == 60
    assert settings.limits.hubspot.requests_per_10s == 100
    assert settings.schedule.full_resync_cron == "0 3 * * sun"
    assert settings.observability.host == "127.0.0.1"
    assert settings.writeback.dry_run is True and settings.writeback.task_cooldown_days == 14
    assert settings.mixpanel is None
    assert len(settings.owned_write_fields) == 12


def test_field_map_override_keeps_other_defaults(write_config):
    text = HUBSPOT_ONLY + "  field_map:\n    account:\n      arr: annual_recurring_revenue\n"
    settings = load_config(write_config(text), env={"HUBSPOT_ACCESS_TOKEN": "pat-na1-0000-1111"})
    assert settings.crm.field_map.account.arr == "annual_recurring_revenue"
    assert settings.crm.field_map.account.acv == "acv"


def test_env_reference_forms(write_config, tmp_path):
    secret_file = tmp_path / "token.txt"
    secret_file.write_text("pat-from-file-123\n")
    text = HUBSPOT_ONLY + """\
observability:
  port: ${METRICS_PORT:-9100}
  host: ${METRICS_HOST}
store:
  data_dir: ./state$$dir
"""
    env = {"HUBSPOT_ACCESS_TOKEN_FILE": str(secret_file), "METRICS_HOST": "127.0.0.2"}
    settings = load_config(write_config(text), env=env)
    assert settings.crm.hubspot.auth.access_token.get_secret_value() == "pat-from-file-123"  # newline stripped
    assert settings.observability.port == 9100 and settings.observability.host == "127.0.0.2"
    assert settings.store.data_dir == tmp_path / "state$dir"


def test_variable_wins_over_its_file(write_config, tmp_path):
    (tmp_path / "t").write_text("from-file-value\n")
    env = {"HUBSPOT_ACCESS_TOKEN": "from-env-value", "HUBSPOT_ACCESS_TOKEN_FILE": str(tmp_path / "t")}
    settings = load_config(write_config(HUBSPOT_ONLY), env=env)
    assert settings.crm.hubspot.auth.access_token.get_secret_value() == "from-env-value"


def test_unreadable_secret_file_is_a_problem(write_config, tmp_path):
    problems = collect_problems(write_config(HUBSPOT_ONLY), env={"HUBSPOT_ACCESS_TOKEN_FILE": str(tmp_path / "nope")})
    assert [str(p) for p in problems] == [
        f"crm.hubspot.auth.access_token (line 6): HUBSPOT_ACCESS_TOKEN is not set and "
        f"HUBSPOT_ACCESS_TOKEN_FILE={tmp_path / 'nope'} does not exist"
    ]


def test_empty_secret_from_env_is_a_problem(write_config):
    problems = collect_problems(write_config(HUBSPOT_ONLY), env={"HUBSPOT_ACCESS_TOKEN": ""})
    assert [p.message for p in problems] == ["environment variable HUBSPOT_ACCESS_TOKEN is set but empty"]


def test_secret_values_are_registered_for_redaction(write_config, tmp_path):
    (tmp_path / "t").write_text("pat-registered-7e1f\n")
    load_config(write_config(HUBSPOT_ONLY), env={"HUBSPOT_ACCESS_TOKEN_FILE": str(tmp_path / "t")})
    assert "pat-registered-7e1f" in registered_secrets()


def test_relative_paths_resolve_against_the_config_directory(write_config, tmp_path, key_file):
    text = """\
    crm:
      kind: salesforce
      salesforce:
        auth:
          mode: jwt
          consumer_key: ck
          private_key_file: keys/sf.pem
          username: svc@cloudscale.io
    """
    settings = load_config(write_config(text, name="conf.yaml"), env={})
    assert settings.crm.salesforce.auth.private_key_file == key_file
    assert settings.crm.salesforce.auth.read_private_key().get_secret_value().startswith("-----BEGIN PRIVATE KEY")
    assert "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" in "".join(registered_secrets())


def test_postgres_url_password_must_come_from_env(write_config):
    literal = HUBSPOT_ONLY + "store:\n  url: postgresql+psycopg://hs:hunter2pw@db:5432/hs\n"
    problems = collect_problems(write_config(literal), env={"HUBSPOT_ACCESS_TOKEN": "pat-x-1234"})
    assert len(problems) == 1 and problems[0].path == "store.url" and "PGPASSWORD" in problems[0].message
    assert "hunter2pw" not in str(problems[0])

    from_env = HUBSPOT_ONLY + "store:\n  url: postgresql+psycopg://hs:${PGPASSWORD}@db:5432/hs\n"
    settings = load_config(write_config(from_env), env={"HUBSPOT_ACCESS_TOKEN": "pat-x-1234", "PGPASSWORD": "pg-s3cret-pw"})
    assert settings.store.resolved_url == "postgresql+psycopg://hs:pg-s3cret-pw@db:5432/hs"
    assert settings.store.display_url == "postgresql+psycopg://hs:[REDACTED]@db:5432/hs"
    assert "pg-s3cret-pw" in registered_secrets()


def test_load_config_raises_one_config_error_listing_everything(write_config):
    text = """\
    crm:
      kind: hubspot
      hubspot:
        auth:
          mode: private_app
          access_token: ${HUBSPOT_ACCESS_TOKEN}
    observability:
      port: 0
      log_format: yaml
    """
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(text), env={})
    message = str(caught.value)
    assert message.splitlines()[0].endswith("3 problems in the configuration")
    assert "crm.hubspot.auth.access_token (line 6): environment variable HUBSPOT_ACCESS_TOKEN is not set" in message
    assert "observability.port (line 8): must be at least 1, got 0" in message
    assert "observability.log_format (line 9): 'yaml' is not a valid log_format" in message


def test_config_path_from_environment(write_config):
    path = write_config(HUBSPOT_ONLY)
    settings = load_config(None, env={"HEALTHSYNC_CONFIG": str(path), "HUBSPOT_ACCESS_TOKEN": "pat-env-path"})
    assert settings.crm.kind == "hubspot"


def test_no_config_anywhere_says_how_to_give_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    problems = collect_problems(None, env={})
    assert len(problems) == 1 and "pass --config FILE, set HEALTHSYNC_CONFIG" in problems[0].message


def test_default_and_daily_ops_resolve_to_each_other(tmp_path, monkeypatch):
    import healthsync.config.catalog as catalog

    (tmp_path / "daily-ops.yaml").write_text("name: daily-ops\n")
    (tmp_path / "playbook-default.yaml").write_text("name: default\nrules: []\n")
    monkeypatch.setattr(catalog, "override_dir", tmp_path)
    assert resolve_preset_path("default") == resolve_preset_path("daily-ops") == tmp_path / "daily-ops.yaml"
    assert catalog.available_presets() == ["daily-ops", "default"]
    assert catalog.available_presets("playbook") == ["default"]
    assert resolve_preset_path("default", "playbook") == tmp_path / "playbook-default.yaml"
    assert resolve_preset_path("playbook-default") is None  # a playbook is not a health model


def test_unknown_preset_suggests_the_close_one(write_config):
    text = HUBSPOT_ONLY + "health:\n  model: defualt\n"
    problems = collect_problems(write_config(text), env={"HUBSPOT_ACCESS_TOKEN": "pat-x-1234"})
    assert len(problems) == 1 and problems[0].path == "health.model" and problems[0].line == 8
    assert "unknown health preset 'defualt' (did you mean 'default'?)" in problems[0].message


def test_health_model_from_a_file_path(write_config, tmp_path):
    (tmp_path / "models").mkdir()
    model = tmp_path / "models" / "mine.yaml"
    model.write_text(resolve_preset_path("default").read_text())
    settings = load_config(write_config(HUBSPOT_ONLY + "health:\n  model: models/mine.yaml\n"),
                           env={"HUBSPOT_ACCESS_TOKEN": "pat-x-1234"})
    assert settings.health.model.kind == "file" and settings.health.model.path == model


def test_programmatic_settings_accept_secretstr():
    from healthsync.config.settings import Settings

    settings = Settings(crm={"kind": "hubspot", "hubspot": {"auth": {"mode": "private_app",
                                                                   "access_token": SecretStr("pat-prog-1")}}})
    assert settings.crm.hubspot.auth.access_token.get_secret_value() == "pat-prog-1"


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ('schedule:\n  incremental_every_minutes: 10\n  incremental_cron: "*/5 * * * *"\n',
         "schedule.incremental_cron (line 9): set incremental_every_minutes or incremental_cron, not both"),
        ('schedule:\n  full_resync_cron: "0 3 * 13 sun"\n', "cron '0 3 * 13 sun': month '13' out of range 1-12"),
        ("schedule:\n  timezone: Europe/Berln\n", "unknown time zone 'Europe/Berln'"),
        ("sandbox:\n  zendesk_url: 127.0.0.1:8080\n", "sandbox.zendesk_url (line 8): '127.0.0.1:8080' is not an http(s) URL"),
        ("identity:\n  zendesk_order: [domain, domain]\n", "identity.zendesk_order (line 8): each method may appear once"),
        ("mixpanel:\n  project_id: 5\n  service_account: {username: u, secret: '${MP}'}\n  core_action_events: [a]\n"
         "  plan_features: {pro: [a, b]}\n",
         "mixpanel.plan_features (line 11): set, but mixpanel.feature_events is empty"),
        ("zendsk: {}\n", "zendsk (line 7): unknown key 'zendsk' (did you mean 'zendesk'?)"),
    ],
)
def test_section_checks(write_config, section, expected):
    problems = collect_problems(write_config(HUBSPOT_ONLY + section), env={"HUBSPOT_ACCESS_TOKEN": "pat-1234", "MP": "mpsecret"})
    assert any(expected in str(p) for p in problems), [str(p) for p in problems]
    assert len(problems) == 1
