"""The HubSpot connector: the CRM source (pull) and the CRM writer (writeback, setup) over hubspot-api-client."""

from connectors.hubspot.client import HubSpotClient
from connectors.hubspot.source import HubSpotSource
from connectors.hubspot.writer import HubSpotWriter

__all__ = ["HubSpotClient", "HubSpotSource", "HubSpotWriter"]
