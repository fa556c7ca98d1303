"""What every command that works on a deployment shares: the --config option, loading it, opening the store,
reading the store into scoring inputs, and the compact wording operators see in tables."""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import typer
from pydantic import ValidationError
from rich.console import Console

from healthsync.config.loader import load_config
from healthsync.config.settings import Settings
from healthsync.errors import ConfigError
from healthsync.scoring.base import HealthResult
from healthsync.scoring.conditions import format_value
from healthsync.sync.gather import Gathered, gather_facts
from healthsync.sync.pipeline import CycleContext
from healthsync.sync.runtime import build_context
from healthsync.sync.state_sync import sync_task_states
from healthsync.sync.store import Store

CONFIG_HELP = "Config file (default: $HEALTHSYNC_CONFIG, then ./healthsync.yaml)."
EMPTY_STORE = "the store has no CRM accounts yet: run `healthsync pull` first (or `healthsync run --once`)"
console = Console()
err_console = Console(stderr=True)


SANDBOX_MISSING = ("the offline sandbox is not installed (it is an extra): pip install 'healthsync[sandbox]' "
                   "(in a checkout: pip install -e ./sandbox)")
_SANDBOX_DEPENDENCIES = {"werkzeug", "trustme", "jwt", "cryptography"}


def require_sandbox(module: str = "app"):
    """Import `healthsync.sandbox.<module>`; a ConfigError saying how to install the extra when it is absent."""
    try:
        return importlib.import_module(f"healthsync.sandbox.{module}")
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing.startswith("healthsync.sandbox") or missing.split(".")[0] in _SANDBOX_DEPENDENCIES:
            raise ConfigError(SANDBOX_MISSING) from None
        raise


def config_option():
    return typer.Option(None, "--config", "-c", help=CONFIG_HELP)


def load_settings(path: Path | None) -> Settings:
    return load_config(path)


@contextmanager
def opened(path: Path | None) -> Iterator[tuple[Settings, Store]]:
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
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--as-of: {value!r} is not a date or ISO datetime (e.g. 2026-11-23 or "
                          "2026-11-23T10:00:00Z)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# The stream whose cursor says a source has been pulled at least once (the ones scoring reads).
_MAIN_STREAMS = {"zendesk": "tickets", "mixpanel": "usage_daily"}


def configured_sources(settings: Settings) -> set[str]:
    names = {settings.crm.kind}
    if settings.zendesk:
        names.add("zendesk")
    if settings.mixpanel:
        names.add("mixpanel")
    return names


def pulled_sources(settings: Settings, store: Store) -> set[str]:
    """Configured sources the store has been filled from: one never pulled gives unknown signals, not zeros."""
    return {name for name in configured_sources(settings)
            if name not in _MAIN_STREAMS or store.records.get_state(name, _MAIN_STREAMS[name]) is not None}


def with_model(settings: Settings, model: str) -> Settings:
    """The settings with `--model` (a preset name or a YAML file) in place of the config's health model."""
    reference = model.strip()
    path = Path(reference).expanduser()
    if path.suffix in (".yaml", ".yml") or "/" in reference:
        reference = str(path.resolve())  # relative to where the operator stands, not to the config file
    try:
        health = settings.health.model_validate({"model": reference})
    except ValidationError as exc:
        reasons = "; ".join(error["msg"].removeprefix("Value error, ") for error in exc.errors())
        raise ConfigError(f"--model {model}: {reasons}") from None
    return settings.model_copy(update={"health": health})


# ------------------------------------------------------------------------------------ the store as scoring input


@dataclass
class Snapshot:
    """What the store holds, gathered into scoring inputs as of one instant (no network involved)."""

    settings: Settings
    store: Store
    ctx: CycleContext
    gathered: Gathered
    as_of: datetime

    @property
    def names(self) -> dict[str, str]:
        return self.gathered.account_names


@contextmanager
def snapshot(config: Path | None, as_of_text: str | None, *, model: str | None = None,
             connect: bool = False, sync_tasks: bool = False) -> Iterator[Snapshot]:
    """Open the store and gather facts as of `--as-of`; exit 2 with "run pull first" when it is empty.

    `sync_tasks` first teaches the task ledger the completions the last pull saw in the CRM, as a cycle
    does, so a plan shows what a cycle would write. `connect` builds the connectors (for apply).
    """
    as_of = parse_as_of(as_of_text)
    with opened(config) as (settings, store):
        if model:
            settings = with_model(settings, model)
        ctx = build_context(settings, store, connect=connect)
        if sync_tasks:
            sync_task_states(store, ctx.crm, now=ctx.now())
        gathered = gather_facts(store, ctx, pulled_sources(settings, store), as_of)
        if not gathered.facts:
            raise ConfigError(EMPTY_STORE)
        yield Snapshot(settings, store, ctx, gathered, as_of)


# ------------------------------------------------------------------------------------------------- wording


def top_reasons(result: HealthResult, limit: int = 2, separator: str = "\n") -> str:
    """The `limit` measures that cost the score most, as `signal raw (-points)`: a table-sized "why".

    Points lost = the measure's share of the score x (100 - its score), the same arithmetic the full
    explanation uses, so the short and the long "why" never disagree.
    """
    costs = sorted(((m.weight * (100.0 - min(max(m.score, 0.0), 100.0)), m.signal, m) for m in result.measures
                    if m.score is not None and m.raw is not None), key=lambda item: (-item[0], item[1]))
    reasons = [f"{m.signal} {format_value(m.raw)} (-{lost:.0f})" for lost, _, m in costs[:limit] if lost >= 0.5]
    if result.insufficient_data:
        reasons.append(f"only {result.coverage:.0%} of the model has data")
    return separator.join(reasons) or "nothing pulls it down"


def signed(value: int | None) -> str:
    return "" if value is None else f"{value:+d}"


def short_error(message: str | None, source: str) -> str:
    """An SDK error as one readable clause: no repeated `source:` prefix, no generic "check ..." advice
    (the fix is printed next to it)."""
    text = (message or "failed").strip()
    text = re.sub(rf"(^|:\s){re.escape(source)}:\s", r"\1", text, flags=re.IGNORECASE)
    return re.split(r";\s+check\s", text, maxsplit=1)[0].strip()
