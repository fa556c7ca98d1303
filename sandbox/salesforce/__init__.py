"""Salesforce emulator for the sandbox: serves `/services/...` so the unmodified simple-salesforce works offline."""

from healthsync.sandbox.salesforce.emulator import SalesforceEmulator

__all__ = ["SalesforceEmulator"]
