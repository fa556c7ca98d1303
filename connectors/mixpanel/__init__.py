"""Mixpanel connector: mixpanel-utils raw export → per-account daily usage, aggregated on ingest."""

from healthsync.connectors.mixpanel.aggregate import DailyUsageAggregator, UsageRules
from healthsync.connectors.mixpanel.source import MixpanelSource, last_complete_day, usage_window

__all__ = ["DailyUsageAggregator", "MixpanelSource", "UsageRules", "last_complete_day", "usage_window"]
