"""The one error tree of healthsync, sorted by what the daemon does next; every package may import it.

    HealthsyncError
    ├── ConfigError            user mistake in config/CLI/credentials file: print, exit 2
    │   └── DefinitionError    (config.documents) a health model or playbook is invalid; `problems` lists each
    ├── AuthError              credentials rejected: stop that source, report, wait for new credentials
    ├── RetryableError         429 / 5xx / transport: back off (honour retry_after), try again
    │   └── RateLimitedError   the API said slow down
    ├── SkippableRecordError   one bad record: record it, go on with the rest
    ├── QuotaExhaustedError    configured share of a daily allocation is used up: stop, report as failure
    └── FatalError             anything else we cannot recover from in this cycle
"""

from __future__ import annotations


class HealthsyncError(Exception):
    """Root of every error healthsync raises on purpose."""


class ConfigError(HealthsyncError):
    """A user mistake in configuration, CLI arguments or a credentials file."""


class AuthError(HealthsyncError):
    """The source rejected our credentials; retrying will not help until they change."""


class RetryableError(HealthsyncError):
    """A transient failure; `retry_after` (seconds) is the server's hint when it gave one."""

    def __init__(self, message: str, *, retry_after: float | None = None, status: int | None = None):
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


class RateLimitedError(RetryableError):
    """HTTP 429 (or Salesforce REQUEST_LIMIT_EXCEEDED): the API asked us to slow down."""


class SkippableRecordError(HealthsyncError):
    """One record could not be parsed or written; the rest of the batch goes on."""


class QuotaExhaustedError(HealthsyncError):
    """We would exceed our configured share of an API's daily allocation: stop and report failure."""


class FatalError(HealthsyncError):
    """Unrecoverable in this cycle."""
