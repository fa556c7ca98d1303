"""Zendesk connector: zenpy → tickets, ticket metrics, organizations, users and satisfaction ratings."""

from healthsync.connectors.zendesk.source import ZendeskSource

__all__ = ["ZendeskSource"]
