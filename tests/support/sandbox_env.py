"""A whole healthsync against the sandbox, for end-to-end and writeback tests: emulators with a synthetic
book, a config pointing at them (the same one `healthsync demo` writes), a store, and a cycle context."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml

from healthsync.config.loader import load_config
from healthsync.config.settings import Settings
from healthsync.sandbox.app import build_sandbox
from healthsync.sandbox.core import SandboxServer
from healthsync.sync.commands.demo import demo_config
from healthsync.sync.cycle import CycleReport
from healthsync.sync.pipeline import CycleContext, run_cycle
from healthsync.sync.runtime import build_context
from healthsync.sync.store import Store
from healthsync.writeback.setup import required_fields, run_setup


@dataclass
class SandboxEnv:
    server: SandboxServer
    settings: Settings
    store: Store
    ctx: CycleContext
    config_path: Path
    env: dict[str, str]

    @property
    def crm(self) -> str:
        return self.settings.crm.kind

    def emulator(self, name: str):
        return self.server.emulator(name)

    def setup_fields(self):
        names = {k: v for k, v in self.settings.owned_write_fields.items() if k != "task_key"}
        return run_setup(self.ctx.writer, required_fields(names, self.settings.crm.field_map.write.task_key))

    def cycle(self, full: bool = False, **kw) -> CycleReport:
        return run_cycle(self.ctx, as_of=self.server.clock.now(), full=full, **kw)

    def rebuild_context(self) -> CycleContext:
        """A fresh context on the same store and sandbox, as after a daemon restart."""
        self.ctx = build_context(self.settings, self.store, now=self.server.clock.now)
        return self.ctx


@contextmanager
def sandbox_env(crm: str = "salesforce", accounts: int = 60, seed: int = 7, *, time_scale: float = 600.0,  # noqa: PLR0913 (test fixture: one keyword per sandbox or config option, each defaulted)
                store_url: str | None = None, overrides: dict | None = None,
                drop: tuple[str, ...] = (), history_days: int = 0, as_of: datetime | None = None) -> Iterator[SandboxEnv]:
    """`overrides` are merged one level deep into the config; `drop` removes top-level sections;
    `history_days` gives the book a churn history (and the config the Mixpanel backfill to read it); `as_of`
    pins the book's instant (default: now, to the hour)."""
    server = build_sandbox(seed=seed, accounts=accounts, crm=crm, time_scale=time_scale, history_days=history_days,
                           as_of=as_of)
    with server, tempfile.TemporaryDirectory(prefix="healthsync-e2e-") as workdir:
        path, env = demo_config(server, crm, Path(workdir))
        data = yaml.safe_load(path.read_text())
        for section in drop:
            data.pop(section, None)
        for key, value in (overrides or {}).items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        if store_url:
            data["store"] = {"url": store_url}
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        settings = load_config(path, env)
        store = Store.open(settings.store.resolved_url)
        try:
            ctx = build_context(settings, store, now=server.clock.now)
            yield SandboxEnv(server, settings, store, ctx, path, env)
        finally:
            store.close()
