"""Process-wide registry of secret values, so the log pipeline can redact them wherever they turn up."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

# Shorter values would redact ordinary words ("abc" inside "abcdef"); real credentials are far longer.
MIN_SECRET_LENGTH = 4

_lock = threading.Lock()
_values: set[str] = set()
_snapshot: tuple[str, ...] = ()


def _variants(value: str) -> Iterable[str]:
    """The value as written plus the forms it takes inside URLs and query strings."""
    yield value
    yield quote(value, safe="")
    yield quote_plus(value, safe="")


def register_secret(value: Any) -> None:
    """Remember a secret (str or SecretStr) so every later log line has it replaced by [REDACTED]."""
    if value is None:
        return
    if hasattr(value, "get_secret_value"):
        value = value.get_secret_value()
    if not isinstance(value, str) or len(value) < MIN_SECRET_LENGTH:
        return
    global _snapshot
    with _lock:
        before = len(_values)
        _values.update(v for v in _variants(value) if len(v) >= MIN_SECRET_LENGTH)
        if len(_values) != before:
            # Longest first, so a secret that contains another is replaced whole.
            _snapshot = tuple(sorted(_values, key=len, reverse=True))


def registered_secrets() -> tuple[str, ...]:
    """Every registered secret (and its URL-encoded forms), longest first. Lock-free read."""
    return _snapshot


def register_model_secrets(obj: Any) -> int:
    """Register every SecretStr found in a (nested) pydantic model, mapping or list; returns how many."""
    found = 0
    stack = [obj]
    while stack:
        item = stack.pop()
        if hasattr(item, "get_secret_value"):
            register_secret(item)
            found += 1
        elif hasattr(item, "__pydantic_fields__") and not isinstance(item, type):
            stack.extend(getattr(item, name, None) for name in type(item).model_fields)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
    return found


def forget_all_secrets() -> None:
    """Empty the registry (tests only: a real process never un-learns a secret)."""
    global _snapshot
    with _lock:
        _values.clear()
        _snapshot = ()
