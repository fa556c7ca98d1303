"""The one redaction of healthsync: the log pipeline runs everything through it, and so does every other exit.

`redact` masks every registered secret (the config loader registers each one it resolves), every SecretStr,
values under sensitive keys, credentials after an auth scheme or a sensitive key, URL passwords (database URLs
included, as text or as SQLAlchemy URLs), http(s) query strings, PEM keys and JWTs, in text and in nested
structures, exceptions included. It lives in the root package so that both `sync` and `connectors` may use it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from datetime import date, datetime, time
from enum import Enum
from pathlib import PurePath
from typing import Any

from pydantic import BaseModel, SecretBytes, SecretStr

from healthsync.config.secrets import registered_secrets

__all__ = ["REDACTED", "redact"]

REDACTED = "[REDACTED]"

_SENSITIVE_WORDS = (
    r"authorization|password|passwd|pwd|secret|token|api[_-]?key|apikey|private[_-]?key|session[_-]?id|sessionid"
    r"|cookie|signature|credentials?"
)
_SENSITIVE_KEY = re.compile(rf"(?i)(?:^|.*[_\-.\s])?(?:{_SENSITIVE_WORDS})$")
_SCHEMES = r"bearer|basic|digest|oauth|negotiate"
_VALUE_CHAR = r"[^\s\"'&,;}<>)\]]"  # a value ends at a quote, separator or closing bracket (`}` included)
_ENV_REFERENCE = r"\$\{\w+\}"
_TEXT_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    # PEM private keys, whole
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S), REDACTED),
    # key=value, key: value, "key": "value" (query strings, headers, JSON text, dict reprs), scheme kept; a
    # config reference such as `secret: ${MIXPANEL_SECRET}` says where a secret is, not what it is, and stays
    (
        re.compile(
            rf"(?i)(?P<key>[\w\-]*(?:{_SENSITIVE_WORDS})[\w\-]*)(?P<sep>[\"']?\s*[:=]\s*[\"']?)"
            rf"(?P<scheme>(?:{_SCHEMES})\s+)?(?P<value>(?!\[REDACTED\]|{_ENV_REFERENCE}){_VALUE_CHAR}+)"
        ),
        rf"\g<key>\g<sep>\g<scheme>{REDACTED}",
    ),
    # a credential after an auth scheme anywhere ("Bearer abc..."); 8+ chars so prose like "basic auth" survives
    (re.compile(rf"(?i)\b(?P<scheme>{_SCHEMES})\s+(?!\[REDACTED\])[A-Za-z0-9\-._~+/]{{8,}}=*"), rf"\g<scheme> {REDACTED}"),
    # <password>…</password>, <sessionId>…</sessionId> in SOAP bodies
    (re.compile(r"(?i)(<(?P<tag>[\w:]*(?:password|sessionid|token|secret)[\w:]*)>)[^<]*(</)"), rf"\1{REDACTED}\3"),
    # scheme://user:password@host (a SQLAlchemy URL's own "***" mask included, so every mask reads the same)
    (re.compile(r"(?i)(\b[a-z][a-z0-9+.\-]*://[^/\s:@]+:)(?!\[REDACTED\])[^@\s/]+(@)"), rf"\1{REDACTED}\2"),
    # an http(s) URL's whole query string: signed links and tokens ride there under names no list can foresee
    (re.compile(r"(?i)(\bhttps?://[^\s?\"']*)\?[^\s\"']*"), "\\1?…"),
    # JWTs (signed assertions, access tokens)
    (re.compile(r"\beyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]+"), REDACTED),
)
_MAX_DEPTH = 12


def redact(value: Any) -> Any:
    """A copy of `value` safe to show anyone: text stays text; mappings, sequences, pydantic models and
    dataclasses come back as plain dicts and lists; exceptions, dates, enums, paths and SQLAlchemy URLs as text;
    anything else as its redacted repr."""
    return _redact(value, 0)


def _redact(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return _redact_text(value)
    if isinstance(value, (SecretStr, SecretBytes)):
        return REDACTED
    if depth >= _MAX_DEPTH:
        return "[…]"
    return _redact_structure(value, depth)


def _redact_structure(value: Any, depth: int) -> Any:
    """Containers and models come back as plain dicts and lists, redacted all the way down."""
    if isinstance(value, BaseModel):
        return _redact(value.model_dump(mode="json"), depth + 1)
    if isinstance(value, Mapping):
        return {
            _redact_text(str(k)): (REDACTED if _is_sensitive_key(k) and v is not None else _redact(v, depth + 1))
            for k, v in value.items()
        }
    if callable(getattr(value, "render_as_string", None)):
        # A SQLAlchemy URL is a tuple holding the password in the clear: render it masked, never walk it.
        return _redact_text(value.render_as_string(hide_password=True))
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_redact(item, depth + 1) for item in value]
    return _redact_other(value, depth)


def _redact_other(value: Any, depth: int) -> Any:
    """Bytes, exceptions, dates, paths and the like as text; enums and dataclasses by what they hold."""
    if isinstance(value, (bytes, bytearray)):
        return _redact_text(bytes(value).decode("utf-8", "replace"))
    if isinstance(value, BaseException):
        return _redact_text(f"{type(value).__name__}: {value}")
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, Enum):
        return _redact(value.value, depth + 1)
    if isinstance(value, PurePath):
        return _redact_text(str(value))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _redact({f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, depth + 1)
    return _redact_text(repr(value))


def _redact_text(text: str) -> str:
    if not text:
        return text
    for secret in registered_secrets():
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _TEXT_RULES:
        text = pattern.sub(replacement, text)
    return text


def _is_sensitive_key(key: Any) -> bool:
    return isinstance(key, str) and bool(_SENSITIVE_KEY.fullmatch(key))
