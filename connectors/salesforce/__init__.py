"""Salesforce connector: the Source (pull) and the CRM/Schema writer, over simple-salesforce."""

from connectors.salesforce.client import SalesforceConnection
from connectors.salesforce.source import SalesforceSource
from connectors.salesforce.writer import SalesforceWriter

__all__ = ["SalesforceConnection", "SalesforceSource", "SalesforceWriter"]
