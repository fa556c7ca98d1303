"""One logging pipeline for the whole process: structlog and stdlib/SDK loggers alike, JSON or console, secrets redacted.

Redaction happens here, once, on the way out (never at call sites): every event, its nested values and its
exception text go through `healthsync.redaction.redact` after the exception is rendered and before the renderer.
"""

from __future__ import annotations

import logging
import sys
from typing import IO, Any

import structlog

from healthsync.config.secrets import register_secret
from healthsync.errors import ConfigError
from healthsync.redaction import redact

__all__ = ["SDK_LOGGERS", "configure_logging", "get_logger", "register_secret"]

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMATS = ("auto", "json", "console")

# Third-party loggers routed through our pipeline; their own handlers would bypass redaction.
SDK_LOGGERS = ("urllib3", "requests", "simple_salesforce", "zenpy", "mixpanel_utils", "hubspot", "apscheduler")


def _redact_event(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """The pipeline's redaction step: the whole event, keys and nested values alike, through the one `redact`."""
    return redact(event_dict)


# --- configuration --------------------------------------------------------------------------------


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at emit time (so pytest's capture and redirected streams just work)."""

    def __init__(self, stream: IO[str] | None = None):
        super().__init__()
        self._fixed = stream

    @property  # type: ignore[override]
    def stream(self) -> IO[str]:
        return self._fixed if self._fixed is not None else sys.stderr

    @stream.setter
    def stream(self, value: IO[str]) -> None:  # StreamHandler.__init__ assigns; we decide at emit time
        pass


class _RoutedLogger(logging.Logger):
    """An SDK logger whose own handlers are refused: mixpanel-utils attaches a raw stderr handler at import."""

    def addHandler(self, hdlr: logging.Handler) -> None:  # noqa: N802 - stdlib name
        return None


def _adopt_sdk_loggers() -> None:
    for name in SDK_LOGGERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True
        if type(logger) is logging.Logger:
            logger.__class__ = _RoutedLogger  # same layout; only addHandler changes


def _check_arguments(level: str, fmt: str) -> tuple[str, str]:
    level_name = str(level).upper()
    level_name = "WARNING" if level_name == "WARN" else level_name
    if level_name not in LEVELS:
        raise ConfigError(f"log level '{level}' is not one of DEBUG, INFO, WARNING, ERROR")
    fmt_name = str(fmt).lower()
    if fmt_name not in FORMATS:
        raise ConfigError(f"log format '{fmt}' is not one of auto, json, console")
    return level_name, fmt_name


def _wants_json(fmt: str, stream: IO[str]) -> bool:
    if fmt != "auto":
        return fmt == "json"
    isatty = getattr(stream, "isatty", None)
    return not (callable(isatty) and isatty())


def configure_logging(level: str = "INFO", fmt: str = "auto", *, stream: IO[str] | None = None) -> None:
    """Configure structlog and the stdlib root logger once for the process (safe to call again to change it).

    Logs go to stderr (stdout stays free for command output such as `plan`); `fmt="auto"` writes
    JSON lines unless that stream is a terminal.
    """
    level_name, fmt_name = _check_arguments(level, fmt)
    handler = _StderrHandler(stream)
    renderer: Any = (
        structlog.processors.JSONRenderer(sort_keys=False)
        if _wants_json(fmt_name, handler.stream)
        else structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,  # exception -> text *before* redaction sees it
                _redact_event,
                renderer,
            ],
        )
    )
    handler._healthsync = True  # type: ignore[attr-defined]

    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_healthsync", False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level_name)
    logging.captureWarnings(True)
    _adopt_sdk_loggers()

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def get_logger(name: str | None = None, **initial: Any) -> structlog.stdlib.BoundLogger:
    """A structlog logger named like a stdlib one (`get_logger(__name__)`), with optional bound context."""
    return structlog.stdlib.get_logger(name).bind(**initial) if initial else structlog.stdlib.get_logger(name)
