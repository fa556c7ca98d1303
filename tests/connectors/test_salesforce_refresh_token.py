"""The Salesforce connector's refresh-token login against the emulator: exchange, renewal when the session
expires, rejected tokens as AuthError without leaking them, and the config model that `check` validates."""

from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from healthsync.config.settings import SalesforceRefreshTokenAuth, Settings
from healthsync.errors import AuthError

from . import sf_conn_fixtures as fx

server, emu = fx.server, fx.emu  # the emulator fixtures, shared with the other Salesforce test modules
CREDS, Store, harness, pull = fx.CREDS, fx.Store, fx.harness, fx.pull

REFRESH = CREDS.refresh_token


def refresh_settings(srv, **auth) -> Settings:
    base = {"mode": "refresh_token", "client_id": CREDS.consumer_key, "client_secret": CREDS.consumer_secret,
            "refresh_token": REFRESH}
    return Settings.model_validate({
        "crm": {"kind": "salesforce", "salesforce": {"auth": {**base, **auth}}},
        "sandbox": {"salesforce_url": srv.https_url, "ca_file": str(srv.ca_path)},
    })


def test_refresh_token_logs_in_and_pulls(server, emu):
    h = harness(server, refresh_settings(server))
    result = h.source.check()
    assert result.ok, result.message
    store = pull(h.source, "accounts", Store(), fx.cycle_start(emu))
    assert len(store.records) == 24
    assert server.calls.snapshot()["salesforce oauth_token"] == 1
    assert "salesforce soap_login" not in server.calls.snapshot()


def test_an_expired_session_is_exchanged_again_once(server, emu):
    h = harness(server, refresh_settings(server))
    pull(h.source, "users", Store(), fx.cycle_start(emu))
    emu.expire_sessions()
    store = pull(h.source, "accounts", Store(), fx.cycle_start(emu))
    assert len(store.records) == 24
    assert server.calls.snapshot()["salesforce oauth_token"] == 2  # the first login, then one renewal


def test_the_secret_is_optional_when_the_app_waives_it(server, emu):
    emu.auth.client_secret_required = False
    try:
        h = harness(server, refresh_settings(server, client_secret=None))
        assert h.source.check().ok
    finally:
        emu.auth.client_secret_required = True
    strict = harness(server, refresh_settings(server, client_secret=None))
    assert not strict.source.check().ok  # the emulator's default app requires the secret, as most do


def test_a_revoked_token_is_an_auth_error_that_names_no_secret(server, emu, caplog):
    h = harness(server, refresh_settings(server, refresh_token="5Aep8-revoked-token-value"))
    caplog.set_level(logging.DEBUG)
    result = h.source.check()
    assert not result.ok and "invalid_grant" in result.message
    assert "refresh_token" in result.fix_hint
    with pytest.raises(AuthError) as caught:
        pull(h.source, "accounts", Store(), fx.cycle_start(emu))
    shown = str(caught.value) + result.message + result.fix_hint + caplog.text
    assert "5Aep8-revoked-token-value" not in shown and CREDS.consumer_secret not in shown


def test_the_config_model_requires_a_refresh_token_and_derives_the_token_url():
    with pytest.raises(ValidationError, match="refresh_token"):
        SalesforceRefreshTokenAuth.model_validate({"mode": "refresh_token", "client_id": "abc"})
    auth = SalesforceRefreshTokenAuth.model_validate({"mode": "refresh_token", "client_id": "abc",
                                                      "refresh_token": "r", "domain": "test"})
    assert auth.token_url == "https://test.salesforce.com/services/oauth2/token"
    mine = SalesforceRefreshTokenAuth.model_validate({"mode": "refresh_token", "client_id": "abc",
                                                      "refresh_token": "rt-very-secret",
                                                      "instance_url": "https://acme.my.salesforce.com/"})
    assert mine.token_url == "https://acme.my.salesforce.com/services/oauth2/token"
    assert "rt-very-secret" not in repr(mine) and "rt-very-secret" not in str(mine.model_dump())
