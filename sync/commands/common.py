"""What every command that works on a deployment shares: the --config option, loading it, opening the store."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console

from config.loader import load_config
from config.settings import Settings
from connectors.base import ConfigError
from sync.store import Store

CONFIG_HELP = "Config file (default: $HEALTHSYNC_CONFIG, then ./healthsync.yaml)."
console = Console()
err_console = Console(stderr=True)


def config_option():
    return typer.Option(None, "--config", "-c", help=CONFIG_HELP)


def load_settings(path: Path | None) -> Settings:
    return load_config(path)


@contextmanager
def opened(path: Path | None):
    """(settings, store) for a command; the store is migrated on open and closed afterwards."""
    settings = load_settings(path)
    store = Store.open(settings.store.resolved_url)
    try:
        yield settings, store
    finally:
        store.close()


def parse_as_of(value: str | None) -> datetime:
    """`--as-of 2026-11-23` or `2026-11-23T10:00:00Z`; default now. Naive values are UTC."""
    if value is None:
        return datetime.now(UTC).replace(microsecond=0)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--as-of: {value!r} is not a date or ISO datetime (e.g. 2026-11-23T10:00:00Z)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def configured_sources(settings: Settings) -> set[str]:
    names = {settings.crm.kind}
    if settings.zendesk:
        names.add("zendesk")
    if settings.mixpanel:
        names.add("mixpanel")
    return names
