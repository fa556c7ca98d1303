"""The one `redact`: text, URLs (database URLs included), structures and SecretStr come out with no secret left."""

from __future__ import annotations

from pydantic import SecretStr
from sqlalchemy.engine import make_url

from healthsync.config.secrets import register_secret
from healthsync.redaction import REDACTED, redact


def test_credentials_in_free_text_are_masked_and_the_prose_kept() -> None:
    assert redact("Bearer abc.def.ghi expired") == f"Bearer {REDACTED} expired"
    assert redact("password=hunter2; user=bob") == f"password={REDACTED}; user=bob"


def test_an_http_url_loses_its_whole_query_string_a_bare_path_only_its_secrets() -> None:
    assert redact("see http://h/p?api_key=1&x=2 now") == "see http://h/p?… now"
    assert redact("next: 'https://x.zendesk.com/api/v2/t.json?cursor=abc&sig=9'.") == (
        "next: 'https://x.zendesk.com/api/v2/t.json?…'."
    )
    assert redact("GET /p?access_token=abc123def&page=2") == f"GET /p?access_token={REDACTED}&page=2"


def test_a_database_url_keeps_everything_but_its_password() -> None:
    text = "postgresql+psycopg://hs:pw-9876@db:5432/hs?sslmode=require"
    assert redact(text) == f"postgresql+psycopg://hs:{REDACTED}@db:5432/hs?sslmode=require"
    assert redact(make_url(text)) == f"postgresql+psycopg://hs:{REDACTED}@db:5432/hs?sslmode=require"
    assert redact(make_url("sqlite:////var/lib/healthsync/healthsync.db")) == "sqlite:////var/lib/healthsync/healthsync.db"
    assert redact(f"cannot open the store at {make_url(text)}: refused") == (
        f"cannot open the store at postgresql+psycopg://hs:{REDACTED}@db:5432/hs?sslmode=require: refused"
    )


def test_registered_secrets_are_masked_wherever_they_turn_up() -> None:
    register_secret("registered-secret-5c1d")
    assert redact("zendesk said registered-secret-5c1d is wrong") == f"zendesk said {REDACTED} is wrong"
    assert redact(["ok", ("registered-secret-5c1d",)]) == ["ok", [REDACTED]]


def test_mappings_mask_sensitive_keys_and_secretstr_anywhere() -> None:
    value = {"Authorization": "anything", "nested": {"client_secret": None, "key": SecretStr("k-123456")}, "n": 3}
    assert redact(value) == {"Authorization": REDACTED, "nested": {"client_secret": None, "key": REDACTED}, "n": 3}
    assert redact(SecretStr("plain-looking")) == REDACTED


def test_a_config_reference_names_where_a_secret_is_and_stays() -> None:
    hint = "write `secret: ${MIXPANEL_SECRET}` and set MIXPANEL_SECRET in the environment"
    assert redact(hint) == hint
    assert redact("token=${not-a-reference") == f"token={REDACTED}"
