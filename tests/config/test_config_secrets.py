"""Secrets: never literal in the file, never in repr/str/JSON of the settings, always registered for redaction."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from healthsync.config.loader import collect_problems, load_config
from healthsync.config.secrets import forget_all_secrets, register_secret, registered_secrets

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "example.yaml"


@pytest.mark.parametrize(
    ("auth_block", "path", "variable"),
    [
        ("mode: private_app\n      access_token: pat-na1-literal-0001", "crm.hubspot.auth.access_token", "HUBSPOT_ACCESS_TOKEN"),
        ("mode: oauth\n      client_id: app-1\n      client_secret: literal-cs-0002\n      refresh_token: ${RT}",
         "crm.hubspot.auth.client_secret", "HUBSPOT_CLIENT_SECRET"),
    ],
)
def test_literal_secret_is_rejected_with_the_env_var_to_use(write_config, auth_block, path, variable):
    text = f"crm:\n  kind: hubspot\n  hubspot:\n    auth:\n      {auth_block}\n"
    problems = collect_problems(write_config(text), env={"RT": "refresh-token-xyz"})
    assert [p.path for p in problems] == [path]
    message = problems[0].message
    assert f"${{{variable}}}" in message and f"{variable}_FILE" in message
    assert "literal" not in str(problems[0])  # the value itself is never repeated


def test_secret_with_text_around_the_reference_is_rejected(write_config):
    text = "crm:\n  kind: hubspot\n  hubspot:\n    auth:\n      mode: private_app\n      access_token: pat-${TOKEN}\n"
    problems = collect_problems(write_config(text), env={"TOKEN": "abcdef123"})
    assert [(p.path, p.line) for p in problems] == [("crm.hubspot.auth.access_token", 6)]
    assert "exactly one ${VAR} reference" in problems[0].message


def test_secrets_never_in_repr_str_or_json(example_env):
    settings = load_config(EXAMPLE, env=example_env)
    secrets = ("zd-tok-8f3a9c1e77", "mp-secret-51d0b2aa")
    renderings = [
        repr(settings),
        str(settings),
        settings.model_dump_json(),
        json.dumps(settings.model_dump(mode="json")),
        repr(settings.zendesk.auth),
        str(settings.zendesk.auth.token),
        f"{settings.mixpanel.service_account}",
    ]
    for text in renderings:
        for secret in secrets:
            assert secret not in text
    assert "**********" in settings.model_dump_json()
    assert settings.zendesk.auth.token.get_secret_value() == "zd-tok-8f3a9c1e77"  # still usable on purpose


def test_settings_are_immutable(example_env):
    settings = load_config(EXAMPLE, env=example_env)
    with pytest.raises(Exception, match="frozen"):
        settings.writeback.dry_run = False  # type: ignore[misc]


def test_registry_keeps_url_encoded_forms_and_ignores_tiny_values():
    forget_all_secrets()
    register_secret("p@ss word+1")
    register_secret("abc")  # too short to redact safely
    assert {"p@ss word+1", "p%40ss%20word%2B1", "p%40ss+word%2B1"} <= set(registered_secrets())
    assert "abc" not in registered_secrets()
    assert registered_secrets()[0] == max(registered_secrets(), key=len)


def test_env_values_survive_pickling_as_plain_strings():
    from healthsync.config.envrefs import interpolate_string

    value, problems = interpolate_string("${A}", {"A": "x-value"})
    assert problems == [] and value.whole and value.refs == ("A",)
    assert pickle.loads(pickle.dumps(value)) == "x-value"
