"""The log pipeline: JSON or console, stdlib/SDK records included, and no secret ever reaches the output."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import pytest
import requests
import structlog
from pydantic import SecretStr

from healthsync.config.loader import load_config
from healthsync.config.secrets import register_secret
from healthsync.errors import ConfigError
from healthsync.redaction import REDACTED, redact
from healthsync.sync.logs import configure_logging, get_logger

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def restore_logging():
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(False)
    structlog.reset_defaults()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket closes


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_loaded_config_and_failing_http_call_leak_no_secret(tmp_path, capsys):
    key = tmp_path / "sf.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcw\n-----END PRIVATE KEY-----\n")
    env = {
        "SALESFORCE_CONSUMER_KEY": "3MVG9-consumer",
        "SALESFORCE_PRIVATE_KEY_PATH": str(key),
        "ZENDESK_TOKEN": "zdtok-3b9f0c7a51e2",
        "MIXPANEL_SECRET": "mpsec-44e1d09a7c",
    }
    settings = load_config(REPO / "config" / "example.yaml", env=env)
    bearer = "unregistered-bearer-9a8b7c6d5e"  # never registered: caught by the header/query rules
    configure_logging(level="DEBUG", fmt="json")
    logging.getLogger("urllib3").setLevel(logging.DEBUG)
    log = get_logger("test.leak")

    log.debug("config loaded", settings=settings, token_from_config=settings.zendesk.auth.token,
              nested={"deep": [{"text": "mixpanel says mpsec-44e1d09a7c"}]})
    log.info("private key", pem=settings.crm.salesforce.auth.read_private_key().get_secret_value())
    url = f"http://127.0.0.1:{_closed_port()}/api/v2/tickets.json?token={bearer}&page=2"
    with pytest.raises(requests.ConnectionError):
        try:
            requests.get(url, headers={"Authorization": f"Bearer {bearer}"}, timeout=2)
        except requests.ConnectionError as exc:
            log.exception("zendesk call failed", url=url, headers={"Authorization": f"Bearer {bearer}"}, error=exc)
            raise
    logging.getLogger("simple_salesforce").warning("login with session %s", "zdtok-3b9f0c7a51e2")

    output = capsys.readouterr().err
    records = _json_lines(output)  # every line is JSON
    events = [r["event"] for r in records]
    assert "config loaded" in events and "zendesk call failed" in events
    assert any(r["logger"].startswith("urllib3") for r in records)  # SDK records went through the pipeline
    failure = next(r for r in records if r["event"] == "zendesk call failed")
    assert "ConnectionError" in failure["exception"] and f"token={REDACTED}" in failure["exception"]
    assert failure["headers"]["Authorization"] == REDACTED
    for secret in ("zdtok-3b9f0c7a51e2", "mpsec-44e1d09a7c", bearer, "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcw"):
        assert secret not in output


def test_console_format_and_levels(capsys):
    configure_logging(level="warning", fmt="console")
    log = get_logger("test.console")
    log.info("hidden below warning")
    log.warning("shown", password="hunter2-abc")
    output = capsys.readouterr().err
    assert "hidden below warning" not in output
    assert "shown" in output and "hunter2-abc" not in output and REDACTED in output
    with pytest.raises(json.JSONDecodeError):
        json.loads(output.splitlines()[0])


def test_auto_format_is_json_when_not_a_terminal(capsys):
    configure_logging(fmt="auto")  # pytest's capture is not a TTY
    get_logger("test.auto").info("hello", count=3)
    record = _json_lines(capsys.readouterr().err)[-1]
    assert record["event"] == "hello" and record["count"] == 3 and record["level"] == "info"
    assert record["timestamp"].endswith("Z")


def test_bad_level_or_format_is_a_config_error():
    with pytest.raises(ConfigError, match="log level 'VERBOSE' is not one of"):
        configure_logging(level="VERBOSE")
    with pytest.raises(ConfigError, match="log format 'xml' is not one of"):
        configure_logging(fmt="xml")


_SDK_ROUTING_SCRIPT = r"""
import io, json, logging, sys
import mixpanel_utils  # attaches its own stderr StreamHandler at import
from healthsync.sync.logs import configure_logging, register_secret

stream = io.StringIO()
configure_logging(level="INFO", fmt="json", stream=stream)
sdk_logger = logging.getLogger("mixpanel_utils")
assert sdk_logger.handlers == [], sdk_logger.handlers
sdk_logger.addHandler(logging.StreamHandler())  # what mixpanel-utils does again on re-import
assert sdk_logger.handlers == [], sdk_logger.handlers
register_secret("mixpanel-secret-0f0f0f")
mixpanel_utils.MixpanelUtils.LOGGER.error('Request Headers: {"Authorization": "Basic bWl4cGFuZWwtc2VjcmV0"}')
mixpanel_utils.MixpanelUtils.LOGGER.error("secret was mixpanel-secret-0f0f0f")
sys.stdout.write(stream.getvalue())
"""


def test_sdk_handlers_are_replaced_by_ours():
    # Logging is process-global and the rest of the suite reconfigures it many times: a fresh interpreter
    # shows what a daemon process gets.
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _SDK_ROUTING_SCRIPT], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr  # nothing through the SDK's own stderr handler
    records = _json_lines(done.stdout)
    assert len(records) == 2, done.stdout  # once each, through our handler only
    assert "bWl4cGFuZWwtc2VjcmV0" not in done.stdout and "mixpanel-secret-0f0f0f" not in done.stdout


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("GET /x?access_token=abc123def&page=2", f"GET /x?access_token={REDACTED}&page=2"),
        ("Authorization: Bearer abcdefghijkl", f"Authorization: Bearer {REDACTED}"),
        ("{'Authorization': 'Basic dXNlcjpwYXNzd29yZA=='}", f"{{'Authorization': 'Basic {REDACTED}'}}"),
        ('{"client_secret": "cs-123456"}', f'{{"client_secret": "{REDACTED}"}}'),
        ("postgresql+psycopg://hs:pw-9876@db/hs", f"postgresql+psycopg://hs:{REDACTED}@db/hs"),
        ("<n1:password>pw-and-token</n1:password>", f"<n1:password>{REDACTED}</n1:password>"),
        ("assertion eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJ4In0.c2lnbmF0dXJl", f"assertion {REDACTED}"),
        ("token refreshed after basic auth failed", "token refreshed after basic auth failed"),
    ],
)
def test_text_rules(text, expected):
    assert redact(text) == expected


def test_redact_walks_structures_and_types():
    register_secret("structured-secret-42")
    value = {
        "api_key": "visible-only-by-key",
        "items": ({"note": "has structured-secret-42 inside"}, SecretStr("s3cr3t-value")),
        "error": ValueError("bad token=abcdef12345"),
        "count": 7,
    }
    assert redact(value) == {
        "api_key": REDACTED,
        "items": [{"note": f"has {REDACTED} inside"}, REDACTED],
        "error": f"ValueError: bad token={REDACTED}",
        "count": 7,
    }
