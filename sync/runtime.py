"""Assemble a running healthsync from config: connectors, CRM writer, health model, playbook, policy.

This is the one place that knows which connector class serves which config section, so the CLI commands,
the daemon, the demo and the end-to-end tests all build the same thing the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from healthsync.config.definitions import load_definitions
from healthsync.config.settings import Settings
from healthsync.connectors.base import Source
from healthsync.connectors.pacing import PacerRegistry
from healthsync.sync.facts import FactsConfig
from healthsync.sync.pipeline import CycleContext
from healthsync.sync.store import Store
from healthsync.sync.store.rows import credentials_fingerprint
from healthsync.writeback.plan import WritebackPolicy


def writeback_policy(settings: Settings) -> WritebackPolicy:
    owned = settings.owned_write_fields
    names = {k: v for k, v in owned.items() if k != "task_key"}
    return WritebackPolicy(field_names=names, owned=frozenset(names.values()),
                           we_win_conflicts=settings.writeback.we_win_conflicts)


def facts_config(settings: Settings) -> FactsConfig:
    contact = settings.crm.field_map.contact
    plan_features = {}
    if settings.mixpanel:
        plan_features = {k.lower(): tuple(v) for k, v in settings.mixpanel.plan_features.items()}
    return FactsConfig(
        champion_roles=frozenset(r.lower() for r in contact.champion_roles),
        executive_sponsor_roles=frozenset(r.lower() for r in contact.executive_sponsor_roles),
        plan_features=plan_features,
        support_configured=settings.zendesk is not None,
        usage_configured=settings.mixpanel is not None,
    )


def build_sources(settings: Settings, pacers: PacerRegistry, *, sleep: Callable[[float], None] = time.sleep):
    """(sources by name, CRM writer): the CRM first, so a cycle pulls the accounts everything else joins to."""
    sources: dict[str, Source] = {}
    if settings.crm.kind == "salesforce":
        from healthsync.connectors.salesforce import SalesforceConnection, SalesforceSource, SalesforceWriter

        connection = SalesforceConnection.from_settings(settings, pacers, sleep=sleep)
        sources["salesforce"] = SalesforceSource.from_settings(settings, pacers, connection=connection)
        writer = SalesforceWriter.from_settings(settings, pacers, connection=connection)
    else:
        from healthsync.connectors.hubspot import HubSpotSource, HubSpotWriter

        sources["hubspot"] = HubSpotSource.from_settings(settings, pacers)
        writer = HubSpotWriter.from_settings(settings, pacers)
    if settings.zendesk is not None:
        from healthsync.connectors.zendesk import ZendeskSource

        sources["zendesk"] = ZendeskSource.from_settings(settings, pacers)
    if settings.mixpanel is not None:
        from healthsync.connectors.mixpanel import MixpanelSource

        sources["mixpanel"] = MixpanelSource.from_settings(settings, pacers)
    return sources, writer


def credential_fingerprints(settings: Settings) -> dict[str, str]:
    """A hash per source of its credentials, so a paused source resumes when an admin changes them."""
    def secrets_of(section) -> list[str]:
        if section is None:
            return []
        dumped = section.model_dump(mode="python")
        return [_secret_text(v) for v in _walk(dumped)]

    crm_section = getattr(settings.crm, settings.crm.kind)
    out = {settings.crm.kind: credentials_fingerprint(*secrets_of(crm_section))}
    if settings.zendesk:
        out["zendesk"] = credentials_fingerprint(*secrets_of(settings.zendesk))
    if settings.mixpanel:
        out["mixpanel"] = credentials_fingerprint(*secrets_of(settings.mixpanel))
    return out


def _walk(value):
    if isinstance(value, dict):
        for k in sorted(value):
            yield from _walk(value[k])
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _walk(v)
    else:
        yield value


def _secret_text(value) -> str:
    getter = getattr(value, "get_secret_value", None)
    return str(getter()) if getter else str(value)


def build_context(settings: Settings, store: Store, *, now: Callable[[], datetime] | None = None,
                  sleep: Callable[[float], None] = time.sleep, connect: bool = True) -> CycleContext:
    """`connect=False` builds no connector (no network): enough to score, explain and plan from the store."""
    pacers = PacerRegistry(sleep=sleep)
    sources, writer = build_sources(settings, pacers, sleep=sleep) if connect else ({}, None)
    model, playbook = load_definitions(settings)  # the same validation `check` runs
    ctx = CycleContext(
        store=store,
        crm=settings.crm.kind,
        sources=sources,
        writer=writer,
        model=model,
        model_name=str(settings.health.model.name),
        playbook=playbook,
        policy=writeback_policy(settings),
        facts_config=facts_config(settings),
        pacers=pacers,
        dry_run=settings.writeback.dry_run,
        credentials=credential_fingerprints(settings),
    )
    if now is not None:
        ctx.now = now
    return ctx

