"""One sandbox per module with small books, an authenticated simple-salesforce / requests / HubSpot client."""

from __future__ import annotations

import pytest
import requests
from simple_salesforce import Salesforce

from healthsync.sandbox.core import SandboxClock, SandboxServer
from healthsync.sandbox.hubspot import HubSpotEmulator
from healthsync.sandbox.salesforce import SalesforceEmulator
from tests.sandbox import hs_fixtures, sf_fixtures


@pytest.fixture(scope="module")
def server():
    with SandboxServer([SalesforceEmulator, HubSpotEmulator], clock=SandboxClock(sf_fixtures.AS_OF)) as srv:
        srv.emulator("salesforce").load(sf_fixtures.portfolio(6, 4))
        srv.emulator("hubspot").load(hs_fixtures.small_portfolio(6))
        yield srv


@pytest.fixture(scope="module")
def http(server):
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would replace `verify` (sdk-notes §0.1)
    session.verify = str(server.ca_path)
    return session


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
