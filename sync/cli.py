"""The `healthsync` command line: one Typer app, commands registered from `sync/commands/*`."""

from __future__ import annotations

import sys

import typer

from healthsync.errors import ConfigError, HealthsyncError
from healthsync.redaction import redact
from healthsync.sync.commands import (
    check,
    connectors,
    daemon,
    db,
    demo,
    identity,
    insights,
    pull,
    sandbox,
    score,
    writeback,
)

# Exit codes are part of the contract: scripts and systemd read them.
EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2

# Each module in sync/commands/ exposes register(app); the order is the order in --help. They are imported
# like any other module: one that fails to import is a bug and stops the CLI, never a command gone missing.
COMMAND_MODULES = (check, db, connectors, pull, identity, score, insights, writeback, daemon, demo, sandbox)

app = typer.Typer(
    name="healthsync",
    help="Customer-health daemon: pull CRM, Zendesk and Mixpanel; score accounts; write back to the CRM.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    log_level: str = typer.Option("INFO", "--log-level", help="DEBUG, INFO, WARNING or ERROR."),
    log_format: str = typer.Option("auto", "--log-format", help="auto (console on a TTY, JSON otherwise), json or console."),
) -> None:
    """healthsync: every score says why, nothing is written twice."""
    from healthsync.sync.logs import configure_logging

    configure_logging(level=log_level, fmt=log_format)


for _module in COMMAND_MODULES:
    _module.register(app)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry: maps our error tree to exit codes and never shows a traceback for user mistakes.

    Typer runs in standalone mode, so it prints usage errors itself and exits 2; our own errors come
    out of the command untouched and are mapped here.
    """
    try:
        app(args=argv, prog_name="healthsync", standalone_mode=True)
    except SystemExit as exc:
        return _exit_code(exc.code)
    except ConfigError as exc:
        # Not redacted: these are our own words about the user's config and never quote a value (tests/config
        # checks that), while redaction would garble a key path like `zendesk.auth.token: variable ... not set`.
        typer.echo(f"error: {exc}", err=True)
        return EXIT_USAGE
    except HealthsyncError as exc:
        _say_error(f"error: {exc}")
        return EXIT_RUNTIME
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except Exception as exc:  # a bug, not a user mistake: one line, and the traceback only when asked for
        _say_error(f"error: unexpected {type(exc).__name__}: {exc} (re-run with --log-level DEBUG for details)")
        if _debug_requested(argv):
            raise
        return EXIT_RUNTIME
    return EXIT_OK


def _exit_code(code: object) -> int:
    if code is None:
        return EXIT_OK
    if isinstance(code, int):
        return code
    _say_error(str(code))
    return EXIT_RUNTIME


def _say_error(line: str) -> None:
    """The one line an operator sees on stderr: it may quote a server, an SDK or a URL, so it is redacted."""
    typer.echo(redact(line), err=True)


def _debug_requested(argv: list[str] | None) -> bool:
    args = sys.argv[1:] if argv is None else argv
    return any(a == "DEBUG" or a == "--log-level=DEBUG" for a in args)


if __name__ == "__main__":
    sys.exit(main())
