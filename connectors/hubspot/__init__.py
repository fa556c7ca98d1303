"""The HubSpot connector: the CRM source (pull) and the CRM writer (writeback, setup) over hubspot-api-client."""

from healthsync.connectors.hubspot.client import HubSpotClient
from healthsync.connectors.hubspot.source import HubSpotSource
from healthsync.connectors.hubspot.writer import HubSpotWriter

__all__ = ["HubSpotClient", "HubSpotSource", "HubSpotWriter"]
