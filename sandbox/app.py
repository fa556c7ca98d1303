"""Assembly of the offline sandbox: one portfolio, every emulator loaded from it, one running server, and
the connection details a client (the daemon, the demo, a test) needs to reach it."""

from __future__ import annotations

import importlib
import logging
from datetime import UTC, datetime
from pathlib import Path

from healthsync.sandbox.core import SandboxClock, SandboxServer
from healthsync.sandbox.credentials import DEMO
from healthsync.sandbox.portfolio import MIN_SIZE, generate_portfolio

CRMS = ("salesforce", "hubspot")
# (module, class) of each emulator, in routing order; imported lazily so one broken module is reported.
EMULATORS = (
    ("salesforce", "healthsync.sandbox.salesforce", "SalesforceEmulator"),
    ("hubspot", "healthsync.sandbox.hubspot", "HubSpotEmulator"),
    ("zendesk", "healthsync.sandbox.zendesk", "ZendeskEmulator"),
    ("mixpanel", "healthsync.sandbox.mixpanel", "MixpanelEmulator"),
)
log = logging.getLogger(__name__)


def emulator_classes() -> dict[str, type]:
    """Every emulator class that imports; a missing one is logged (and absent), never fatal."""
    found = {}
    for name, module, attr in EMULATORS:
        try:
            found[name] = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            log.warning("sandbox emulator %s unavailable: %s", name, exc)
    return found


def build_sandbox(seed: int = 7, accounts: int = 200, crm: str = "salesforce", as_of: datetime | None = None,  # noqa: PLR0913 (one keyword per sandbox option (the CLI's and the tests'), each defaulted)
                  time_scale: float = 1.0, tls_port: int = 0, http_port: int = 0,
                  workdir: str | Path | None = None, history_days: int = 0) -> SandboxServer:
    """Generate the book, load it into every emulator and return the started server.

    With `as_of` the sandbox clock starts there (a reproducible instant); without it the clock is real
    time and the book's as_of is now, truncated to the hour, so rebuilding within the hour is identical.
    The server carries `portfolio` and `crm`; stop it with `server.stop()` (or use it as a context). With
    `workdir` the CA and the JWT key are written there and outlive the server (a config can keep naming them).
    `history_days` adds that much churn history to the book (past renewals and former customers)."""
    if crm not in CRMS:
        raise ValueError(f"crm must be one of {', '.join(CRMS)}, got {crm!r}")
    if accounts < MIN_SIZE:
        raise ValueError(f"accounts must be at least {MIN_SIZE} (the planted scenarios), got {accounts}")
    if time_scale <= 0:
        raise ValueError(f"time_scale must be positive, got {time_scale}")
    if as_of is not None:
        as_of = as_of.replace(tzinfo=UTC) if as_of.tzinfo is None else as_of.astimezone(UTC)
    clock = SandboxClock(start=as_of)
    as_of = as_of or clock.now().replace(minute=0, second=0, microsecond=0)
    portfolio = generate_portfolio(seed, accounts, as_of, history_days=history_days)
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
    server = SandboxServer(emulator_classes().values(), clock=clock, time_scale=time_scale,
                           tls_port=tls_port, http_port=http_port, workdir=workdir)
    for emulator in server.emulators:
        emulator.load(portfolio, crm=crm)
        if hasattr(emulator, "set_workdir"):
            emulator.set_workdir(server.workdir)  # the Salesforce JWT key lives next to the CA
    server.portfolio = portfolio  # type: ignore[attr-defined]
    server.crm = crm  # type: ignore[attr-defined]
    try:
        return server.start()
    except OSError:
        server.stop()
        raise


def connection_info(server: SandboxServer) -> dict:
    """Base URLs per emulator, the CA to trust, the Salesforce JWT key, and the demo credentials."""
    names = {e.name for e in server.emulators}
    urls: dict[str, dict[str, str]] = {}
    for name in ("salesforce", "hubspot", "zendesk", "mixpanel"):
        if name not in names:
            continue
        # simple-salesforce hard-codes https; the others work over both
        urls[name] = {"https": server.https_url} if name == "salesforce" else {
            "http": server.http_url, "https": server.https_url}
    info = {
        "crm": getattr(server, "crm", None),
        "emulators": urls,
        "ca_path": str(server.ca_path),
        "tls_port": server.tls_port,
        "http_port": server.http_port,
        "credentials": DEMO.as_dict(),
    }
    if "salesforce" in names:
        key = getattr(server.emulator("salesforce"), "jwt_private_key_path", None)
        if key is not None:
            info["salesforce_jwt_private_key_path"] = str(key)
    portfolio = getattr(server, "portfolio", None)
    if portfolio is not None:
        info.update(seed=portfolio.seed, accounts=portfolio.size, as_of=portfolio.as_of.isoformat())
        if portfolio.history is not None:
            info["history_days"] = portfolio.history.days
    return info
