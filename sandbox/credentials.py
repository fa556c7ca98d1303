"""The sandbox's demo credentials: what the emulators accept, and what `sandbox serve` prints for clients.

They are deliberately fake and public (like a test fixture): the emulators only exist on 127.0.0.1.
Anything else sent as a credential is rejected with the real API's error shape.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class SalesforceCredentials:
    username: str = "demo@healthsync.test"
    password: str = "demo-password"
    security_token: str = "demo-token"
    consumer_key: str = "demo-consumer-key"
    consumer_secret: str = "demo-consumer-secret"
    org_id: str = "00D000000000001AAA"
    # A refresh token the connected app obtained earlier (web-server flow); exchanged at /services/oauth2/token.
    refresh_token: str = "5Aep8demo-healthsync-refresh-token"
    # Access tokens expire after this many (sandbox-clock) seconds; tests shorten it to force INVALID_SESSION_ID.
    session_seconds: int = 7200


@dataclass(frozen=True)
class HubSpotCredentials:
    access_token: str = "pat-sandbox-demo-token"
    client_id: str = "demo-hs-client-id"
    client_secret: str = "demo-hs-client-secret"
    refresh_token: str = "demo-hs-refresh-token"
    portal_id: int = 4242


@dataclass(frozen=True)
class ZendeskCredentials:
    subdomain: str = "healthsync-demo"
    email: str = "agent@healthsync.test"
    token: str = "zd-demo-api-token"
    oauth_token: str = "zd-demo-oauth-token"


@dataclass(frozen=True)
class MixpanelCredentials:
    service_account_username: str = "sandbox.sa"
    service_account_secret: str = "mp-demo-secret"
    project_id: int = 424242
    # The project's API secret: the older Basic-auth method (secret as username, empty password)
    api_secret: str = "mp-demo-project-secret"


@dataclass(frozen=True)
class DemoCredentials:
    salesforce: SalesforceCredentials = SalesforceCredentials()
    hubspot: HubSpotCredentials = HubSpotCredentials()
    zendesk: ZendeskCredentials = ZendeskCredentials()
    mixpanel: MixpanelCredentials = MixpanelCredentials()

    def as_dict(self) -> dict:
        return asdict(self)


DEMO = DemoCredentials()
