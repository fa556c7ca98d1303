"""Fixtures for the conformance suite: small books served by the emulators and clients that reach them — the
unmodified SDKs (simple-salesforce, hubspot-api-client, zenpy over TLS, mixpanel-utils over HTTP) and plain requests."""

from __future__ import annotations

import base64
import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest
import requests
from mixpanel_utils import MixpanelUtils
from simple_salesforce import Salesforce
from zenpy import Zenpy

from healthsync.sandbox.core import SandboxClock, SandboxServer
from healthsync.sandbox.credentials import DEMO
from healthsync.sandbox.hubspot import HubSpotEmulator
from healthsync.sandbox.mixpanel import MixpanelEmulator
from healthsync.sandbox.salesforce import SalesforceEmulator
from healthsync.sandbox.zendesk import ZendeskEmulator
from tests.sandbox import hs_fixtures, sf_fixtures
from tests.sandbox import zm_fixtures as fx
from tests.support.tls import sandbox_session

ZD_AUTH = (f"{DEMO.zendesk.email}/token", DEMO.zendesk.token)
MP = DEMO.mixpanel


@pytest.fixture(scope="module")
def server():
    with SandboxServer([SalesforceEmulator, HubSpotEmulator], clock=SandboxClock(sf_fixtures.AS_OF)) as srv:
        srv.emulator("salesforce").load(sf_fixtures.portfolio(6, 4))
        srv.emulator("hubspot").load(hs_fixtures.small_portfolio(6))
        yield srv


@pytest.fixture(scope="module")
def http(server):
    return sandbox_session(server)


@pytest.fixture(scope="module")
def sf(server, http):
    token = server.emulator("salesforce").issue_token()
    return Salesforce(instance_url=server.https_url, session_id=token, session=http, version="59.0")


@pytest.fixture(scope="module")
def sf_token(sf):
    return sf.session_id


def shape(value, spec) -> None:
    """Assert `value` has the documented keys with the documented types (spec: {key: type or (types)})."""
    assert isinstance(value, dict), value
    missing = [k for k in spec if k not in value]
    assert not missing, f"missing {missing} in {sorted(value)}"
    for key, kind in spec.items():
        assert isinstance(value[key], kind), f"{key}: {type(value[key]).__name__} is not {kind}"


@pytest.fixture()
def zd_server() -> Iterator[SandboxServer]:
    """time_scale 60: Zendesk's one-minute windows last one real second."""
    with SandboxServer([ZendeskEmulator], clock=SandboxClock(start=fx.AS_OF), time_scale=60.0) as srv:
        srv.emulator("zendesk").load(fx.make_portfolio(), crm="salesforce")
        yield srv


@pytest.fixture()
def mp_server(monkeypatch) -> Iterator[SandboxServer]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with SandboxServer([MixpanelEmulator], clock=SandboxClock(start=fx.AS_OF), time_scale=3600.0) as srv:
        srv.emulator("mixpanel").load(fx.make_portfolio(), crm="salesforce")
        yield srv


session = sandbox_session


def zenpy(server: SandboxServer, **kw) -> Zenpy:
    return Zenpy(subdomain="127.0.0", domain=f"1:{server.tls_port}", email=DEMO.zendesk.email,
                 token=DEMO.zendesk.token, session=session(server), disable_cache=True, **kw)


def zd_get(server: SandboxServer, path: str, **params) -> requests.Response:
    """A plain GET on the Zendesk emulator, for what zenpy does not cover or hides (page metadata)."""
    return session(server).get(server.https_url + path, params=params, auth=ZD_AUTH, timeout=10)


def mixpanel_sa(server: SandboxServer) -> MixpanelUtils:
    """mixpanel-utils with a service account (username, secret, project_id)."""
    return _point(MixpanelUtils(MP.service_account_secret, service_account_username=MP.service_account_username,
                                project_id=MP.project_id, max_retries=1), server)


def mixpanel_secret(server: SandboxServer, secret: str = MP.api_secret) -> MixpanelUtils:
    """mixpanel-utils with the older project-secret auth (the secret alone, no service account)."""
    return _point(MixpanelUtils(secret, max_retries=1), server)


def _point(mp: MixpanelUtils, server: SandboxServer) -> MixpanelUtils:
    MixpanelUtils.LOGGER.setLevel(logging.CRITICAL)  # the SDK logs every 4xx at ERROR
    mp.raw_api = mp.formatted_api = server.http_url + "/api"
    mp.import_api = server.http_url  # must differ from raw_api as a string (sdk-notes 4.1)
    return mp


def mp_get(server: SandboxServer, path: str, token: str | None = None, **params) -> tuple[int, object]:
    """(status, parsed body) of a plain GET with Basic `token` (default: the service account)."""
    token = token if token is not None else f"{MP.service_account_username}:{MP.service_account_secret}"
    url = f"{server.http_url}{path}?{urllib.parse.urlencode(params)}"
    header = "Basic " + base64.b64encode(token.encode()).decode()
    request = urllib.request.Request(url, headers={"Authorization": header})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, ctype, text = response.status, response.headers.get("Content-Type", ""), response.read().decode()
    except urllib.error.HTTPError as exc:
        status, ctype, text = exc.code, exc.headers.get("Content-Type", ""), exc.read().decode()
    return status, json.loads(text) if ctype.startswith("application/json") else text
