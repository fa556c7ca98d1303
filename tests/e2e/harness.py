"""A sandbox whose book and cycle instant are pinned, so two separate runs (a clean one, and one that crashed or
met faults) score the very same book as of the very same instant and must leave the CRM identical.

`tests.support.sandbox_env` generates the book at the current hour and scores as of the sandbox clock; here
the book's as_of is fixed when the test session starts and every cycle runs as of `PinnedEnv.as_of`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from healthsync.config.loader import load_config
from healthsync.sandbox.app import build_sandbox
from healthsync.sync.commands.demo import demo_config
from healthsync.sync.cycle import CycleReport
from healthsync.sync.pipeline import run_cycle
from healthsync.sync.runtime import build_context
from healthsync.sync.store import Store
from tests.support.sandbox_env import SandboxEnv

# The book of every pinned sandbox in this session; cycles run a few minutes after it, well before the
# sandbox clock (which starts at the book's as_of) gets there, so every record predates the cycle.
BOOK_AS_OF = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
CYCLE_AS_OF = BOOK_AS_OF + timedelta(minutes=10)
CYCLE_STEP = timedelta(minutes=5)  # between a run and the next one (a restart, the next scheduled cycle)


@dataclass
class PinnedEnv(SandboxEnv):
    as_of: datetime = CYCLE_AS_OF

    def cycle(self, full: bool = False, *, step: int = 0, **kw) -> CycleReport:
        """A cycle as of CYCLE_AS_OF + `step` × CYCLE_STEP."""
        return run_cycle(self.ctx, as_of=self.at(step), full=full, **kw)

    def at(self, step: int) -> datetime:
        return self.as_of + step * CYCLE_STEP

    def reopen(self) -> None:
        """What a restarted process sees: a new connection to the same store and a freshly built context."""
        self.store.close()
        self.store = Store.open(self.settings.store.resolved_url)
        self.ctx = build_context(self.settings, self.store, now=self.server.clock.now)

    @property
    def clock_offset_seconds(self) -> float:
        """Sandbox clock minus wall clock, for a subprocess that must stamp times on the sandbox clock."""
        return (self.server.clock.now() - datetime.now(UTC)).total_seconds()


@contextmanager
def pinned_env(crm: str, accounts: int = 60, seed: int = 7, *, drop: tuple[str, ...] = (),
               overrides: dict | None = None) -> Iterator[PinnedEnv]:
    server = build_sandbox(seed=seed, accounts=accounts, crm=crm, as_of=BOOK_AS_OF, time_scale=600.0)
    with server, tempfile.TemporaryDirectory(prefix="healthsync-e2e-") as workdir:
        path, env = demo_config(server, crm, Path(workdir))
        data = yaml.safe_load(path.read_text())
        for section in drop:
            data.pop(section, None)
        for key, value in (overrides or {}).items():
            data[key] = {**data[key], **value} if isinstance(value, dict) and isinstance(data.get(key), dict) else value
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        settings = load_config(path, env)
        store = Store.open(settings.store.resolved_url)
        pinned = PinnedEnv(server, settings, store, None, path, env)  # type: ignore[arg-type]
        try:
            pinned.ctx = build_context(settings, store, now=server.clock.now)
            yield pinned
        finally:
            pinned.store.close()  # reopen() may have replaced it
