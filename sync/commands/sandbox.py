"""`healthsync sandbox`: run the offline emulators of Salesforce/HubSpot, Zendesk and Mixpanel, and list the
planted scenarios of the synthetic book they serve."""

from __future__ import annotations

import json
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import typer

from healthsync.errors import ConfigError
from healthsync.sync.commands.common import require_sandbox

_CRM_HELP = "Which CRM the book is served as: salesforce or hubspot."
_ACCOUNTS_HELP = "Accounts in the synthetic book (at least one per planted scenario: see `sandbox scenarios`)."


def register(app: typer.Typer) -> None:
    sandbox_app = typer.Typer(help="The offline sandbox: local emulators of the four APIs with a synthetic book.",
                              no_args_is_help=True)
    sandbox_app.command("serve")(serve)
    sandbox_app.command("scenarios")(scenarios)
    app.add_typer(sandbox_app, name="sandbox")


def _checked(accounts: int, crm: str, time_scale: float = 1.0, ports: tuple[int, ...] = ()) -> str:
    require_sandbox()
    from healthsync.sandbox.app import CRMS
    from healthsync.sandbox.portfolio import MIN_SIZE

    crm = crm.strip().lower()
    if crm not in CRMS:
        raise ConfigError(f"--crm must be one of {', '.join(CRMS)} (got {crm!r})")
    if accounts < MIN_SIZE:
        raise ConfigError(f"--accounts must be at least {MIN_SIZE} so every planted scenario fits (got {accounts})")
    if time_scale <= 0:
        raise ConfigError(f"--time-scale must be a positive number (got {time_scale}); 60 makes a minute last 1 s")
    for port in ports:
        if not 0 <= port <= 65535:
            raise ConfigError(f"port {port} is out of range; use 1-65535, or 0 to let the system pick one")
    return crm


def serve(  # noqa: PLR0913 (one keyword per CLI option, declared for typer)
    accounts: int = typer.Option(200, "--accounts", help=_ACCOUNTS_HELP),
    seed: int = typer.Option(7, "--seed", help="Seed of the synthetic book (same seed, same book)."),
    crm: str = typer.Option("salesforce", "--crm", help=_CRM_HELP),
    port: int = typer.Option(0, "--port", help="Plain-HTTP port (0: any free port)."),
    tls_port: int = typer.Option(0, "--tls-port", help="TLS port (0: any free port)."),
    time_scale: float = typer.Option(1.0, "--time-scale", help="Shrink rate-limit windows by this factor."),
    history_days: int = typer.Option(0, "--history-days", min=0, max=730,
                                     help="Days of past renewals and former customers in the book, for `healthsync "
                                          "backtest` and `fit` (e.g. 450; 0: none)."),
    write_config: Path | None = typer.Option(
        None, "--write-config", help="Write DIR/healthsync.yaml (a complete config for this sandbox, writeback "
                                     "live, the store under DIR) and DIR/sandbox.env (its secrets, KEY=value)."),
) -> None:
    """Serve the emulators until SIGTERM or Ctrl-C; print one JSON line with the connection details."""
    import structlog

    crm = _checked(accounts, crm, time_scale, (port, tls_port))
    from healthsync.sandbox.app import build_sandbox, connection_info

    log = structlog.get_logger("healthsync.sandbox")
    directory = _config_dir(write_config)
    try:
        server = build_sandbox(seed=seed, accounts=accounts, crm=crm, time_scale=time_scale, tls_port=tls_port,
                               http_port=port, workdir=directory / "sandbox" if directory else None,
                               history_days=history_days)
    except ValueError as exc:  # the generator refuses a history it cannot make
        raise ConfigError(f"--history-days {history_days}: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot listen on 127.0.0.1 (--port {port}, --tls-port {tls_port}): {exc.strerror or exc}; "
                          "pick free ports or pass 0") from exc
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        if directory is not None:
            _write_config(server, crm, directory, log)
        sys.stdout.write(json.dumps(connection_info(server)) + "\n")
        sys.stdout.flush()
        log.info("sandbox serving", https=server.https_url, http=server.http_url, crm=crm, accounts=accounts,
                 seed=seed, emulators=[e.name for e in server.emulators])
        while not stop.wait(0.5):
            pass
        log.info("sandbox stopping")
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _config_dir(write_config: Path | None) -> Path | None:
    """The --write-config folder, made if needed; a stale sandbox.env goes first so nobody reads old ports."""
    if write_config is None:
        return None
    directory = write_config.expanduser().resolve()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sandbox.env").unlink(missing_ok=True)
    return directory


def _write_config(server, crm: str, directory: Path, log) -> None:
    from healthsync.sync.commands.demo import by_hand_lines, write_sandbox_config

    config, _ = write_sandbox_config(server, crm, directory)
    log.info("sandbox config written", config=str(config), env=str(directory / "sandbox.env"))
    _, run_line = by_hand_lines(directory)
    sys.stderr.write(f"config: {config}\nsecrets: {directory / 'sandbox.env'}\nthen: {run_line}\n")


def scenarios(
    accounts: int = typer.Option(200, "--accounts", help=_ACCOUNTS_HELP),
    seed: int = typer.Option(7, "--seed", help="Seed of the synthetic book."),
    crm: str = typer.Option("salesforce", "--crm", help=_CRM_HELP),
    table: bool = typer.Option(False, "--table", help="A readable table instead of JSON."),
) -> None:
    """Print the planted-scenario manifest: for every playbook rule, the accounts that must fire it and the
    controls that must not (ids of both CRMs, and why)."""
    crm = _checked(accounts, crm)
    from healthsync.sandbox.portfolio import generate_portfolio
    from healthsync.sandbox.scenarios import scenario_manifest

    as_of = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    manifest = scenario_manifest(generate_portfolio(seed, accounts, as_of), crm=crm)
    if table:
        _print_table(manifest)
    else:
        sys.stdout.write(json.dumps(manifest, indent=2) + "\n")


def _print_table(manifest: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    grid = Table(title=f"Planted scenarios (seed {manifest['seed']}, {manifest['size']} accounts, "
                       f"{manifest['crm']})", show_lines=False)
    for column in ("rule", "role", "account", "crm id", "name", "why"):
        grid.add_column(column, overflow="fold")
    for rule in manifest["rules"]:
        for role, entries in (("fires", manifest["scenarios"].get(rule, [])),
                              ("control", manifest["controls"].get(rule, []))):
            for entry in entries:
                grid.add_row(rule, role, entry["account_key"], entry["crm_id"], entry["name"], entry["reason"])
    for entry in manifest["controls"].get("__none__", []):
        grid.add_row("(any)", "clean", entry["account_key"], entry["crm_id"], entry["name"], entry["reason"])
    Console(width=200).print(grid)
