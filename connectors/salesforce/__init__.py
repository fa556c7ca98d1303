"""Salesforce connector: the Source (pull) and the CRM/Schema writer, over simple-salesforce."""

from healthsync.connectors.salesforce.client import SalesforceConnection
from healthsync.connectors.salesforce.source import SalesforceSource
from healthsync.connectors.salesforce.writer import SalesforceWriter

__all__ = ["SalesforceConnection", "SalesforceSource", "SalesforceWriter"]
