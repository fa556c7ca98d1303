"""One logging pipeline for the whole process: structlog and stdlib/SDK loggers alike, JSON or console, secrets redacted.

Redaction happens here, once, on the way out (never at call sites): every registered secret value
(the config loader registers each one it resolves), every SecretStr, values under sensitive keys,
credentials in Authorization headers, URL query strings, URL passwords, PEM keys and JWTs, in the
event, in nested structures and in exception text.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import sys
from collections.abc import Mapping
from datetime import date, datetime, time
from enum import Enum
from pathlib import PurePath
from typing import IO, Any

import structlog
from pydantic import BaseModel, SecretBytes, SecretStr

from healthsync.config.secrets import register_secret, registered_secrets
from healthsync.errors import ConfigError

__all__ = ["REDACTED", "SDK_LOGGERS", "configure_logging", "get_logger", "redact", "redact_text", "register_secret"]

REDACTED = "[REDACTED]"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMATS = ("auto", "json", "console")

# Third-party loggers routed through our pipeline; their own handlers would bypass redaction.
SDK_LOGGERS = ("urllib3", "requests", "simple_salesforce", "zenpy", "mixpanel_utils", "hubspot", "apscheduler")

_SENSITIVE_WORDS = (
    r"authorization|password|passwd|pwd|secret|token|api[_-]?key|apikey|private[_-]?key|session[_-]?id|sessionid"
    r"|cookie|signature|credentials?"
)
_SENSITIVE_KEY = re.compile(rf"(?i)(?:^|.*[_\-.\s])?(?:{_SENSITIVE_WORDS})$")
_SCHEMES = r"bearer|basic|digest|oauth|negotiate"
_TEXT_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    # PEM private keys, whole
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S), REDACTED),
    # key=value, key: value, "key": "value" (query strings, headers, JSON text, dict reprs), scheme kept
    (
        re.compile(
            rf"(?i)(?P<key>[\w\-]*(?:{_SENSITIVE_WORDS})[\w\-]*)(?P<sep>[\"']?\s*[:=]\s*[\"']?)"
            rf"(?P<scheme>(?:{_SCHEMES})\s+)?(?P<value>(?!\[REDACTED\])[^\s\"'&,;}}<>)\]]+)"
        ),
        rf"\g<key>\g<sep>\g<scheme>{REDACTED}",
    ),
    # a credential after an auth scheme anywhere ("Bearer abc..."); 8+ chars so prose like "basic auth" survives
    (re.compile(rf"(?i)\b(?P<scheme>{_SCHEMES})\s+(?!\[REDACTED\])[A-Za-z0-9\-._~+/]{{8,}}=*"), rf"\g<scheme> {REDACTED}"),
    # <password>…</password>, <sessionId>…</sessionId> in SOAP bodies
    (re.compile(r"(?i)(<(?P<tag>[\w:]*(?:password|sessionid|token|secret)[\w:]*)>)[^<]*(</)"), rf"\1{REDACTED}\3"),
    # scheme://user:password@host
    (re.compile(r"(?i)(\b[a-z][a-z0-9+.\-]*://[^/\s:@]+:)(?!\[REDACTED\])[^@\s/]+(@)"), rf"\1{REDACTED}\2"),
    # JWTs (signed assertions, access tokens)
    (re.compile(r"\beyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]+"), REDACTED),
)
_MAX_DEPTH = 12


# --- redaction ------------------------------------------------------------------------------------


def redact_text(text: str) -> str:
    """`text` with every registered secret and every recognisable credential replaced by [REDACTED]."""
    if not text:
        return text
    for secret in registered_secrets():
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _TEXT_RULES:
        text = pattern.sub(replacement, text)
    return text


def is_sensitive_key(key: Any) -> bool:
    return isinstance(key, str) and bool(_SENSITIVE_KEY.fullmatch(key))


def redact(value: Any, _depth: int = 0) -> Any:
    """A copy of `value` safe to log or store: nested mappings, lists, models and exceptions included."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, (SecretStr, SecretBytes)):
        return REDACTED
    if _depth >= _MAX_DEPTH:
        return "[…]"
    if isinstance(value, BaseModel):
        return redact(value.model_dump(mode="json"), _depth + 1)
    if isinstance(value, Mapping):
        return {
            redact_text(str(k)): (REDACTED if is_sensitive_key(k) and v is not None else redact(v, _depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple, set, frozenset)):
        return [redact(item, _depth + 1) for item in value]
    if isinstance(value, (bytes, bytearray)):
        return redact_text(bytes(value).decode("utf-8", "replace"))
    if isinstance(value, BaseException):
        return redact_text(f"{type(value).__name__}: {value}")
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, Enum):
        return redact(value.value, _depth + 1)
    if isinstance(value, PurePath):
        return redact_text(str(value))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return redact({f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, _depth + 1)
    return redact_text(repr(value))


def _redact_processor(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    return {
        key: (REDACTED if is_sensitive_key(key) and value is not None else redact(value))
        for key, value in event_dict.items()
    }


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
                _redact_processor,
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
