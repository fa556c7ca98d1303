"""HubSpot CRM emulator for the sandbox: the unmodified hubspot-api-client talks to it over real HTTP(S)."""

from healthsync.sandbox.hubspot.emulator import HubSpotEmulator

__all__ = ["HubSpotEmulator"]
