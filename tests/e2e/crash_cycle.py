"""One healthsync cycle in its own process, killed with SIGKILL at a chosen point (run by test_crash_restart.py).

usage: crash_cycle.py CONFIG AS_OF CLOCK_OFFSET_SECONDS KILL_AT [--full]
KILL_AT is one of
    pull:SOURCE:STREAM:N     right after the Nth page of that stream is committed to the store
    apply:PHASE:N            right after apply batch N of PHASE (fields | tasks) is written and recorded
    ledger:METHOD:N          right before the Nth call of that store (ledger) method: the CRM has the write,
                             the ledger does not
    never                    run the cycle to its end
Secrets come from the environment, as for `healthsync run`. Prints `killing at KILL_AT` just before dying,
`cycle done STATUS` if it finishes.
"""

from __future__ import annotations

import os
import signal
import sys
from datetime import UTC, datetime, timedelta

from healthsync.config.loader import load_config
from healthsync.sync.logs import configure_logging
from healthsync.sync.pipeline import run_cycle
from healthsync.sync.runtime import build_context
from healthsync.sync.store import Store
from healthsync.sync.store.ledger import LedgerRepository
from healthsync.sync.store.records import RecordRepository


def die(spec: str) -> None:
    print(f"killing at {spec}", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def install(ctx, spec: str) -> None:
    """Arm the kill point. Repository methods are wrapped on the class: the ledger also writes through the
    repository that `transaction()` hands out, and a wrapper on one instance would miss those calls."""
    kind, *rest = spec.split(":")
    if kind == "never":
        return
    target = int(rest[-1])
    seen = 0
    if kind == "pull":
        source, stream = rest[0], rest[1]
        commit = RecordRepository.commit_page

        def commit_then_maybe_die(self, src, strm, *args, **kw):
            nonlocal seen
            result = commit(self, src, strm, *args, **kw)
            if (src, strm) == (source, stream):
                seen += 1
                if seen == target:
                    die(spec)
            return result

        RecordRepository.commit_page = commit_then_maybe_die  # type: ignore[method-assign]
    elif kind == "apply":
        phase = rest[0]

        def after_batch(batch_phase: str, number: int) -> None:
            if batch_phase == phase and number == target:
                die(spec)

        ctx.after_apply_batch = after_batch
    elif kind == "ledger":
        method = getattr(LedgerRepository, rest[0])

        def die_before(self, *args, **kw):
            nonlocal seen
            seen += 1
            if seen == target:
                die(spec)
            return method(self, *args, **kw)

        setattr(LedgerRepository, rest[0], die_before)
    else:
        raise SystemExit(f"unknown kill point {spec!r}")


def main() -> int:
    config, as_of, offset, spec = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
    full = "--full" in sys.argv[5:]
    configure_logging("WARNING", "json", stream=sys.stderr)
    settings = load_config(config)
    store = Store.open(settings.store.resolved_url)
    shift = timedelta(seconds=offset)
    ctx = build_context(settings, store, now=lambda: datetime.now(UTC) + shift)
    install(ctx, spec)
    report = run_cycle(ctx, as_of=datetime.fromisoformat(as_of), full=full)
    print(f"cycle done {report.status}", flush=True)
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
