"""What the Store's operation mixins share: the connection helpers they rely on, and small value helpers."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager

from sqlalchemy.engine import Connection

MAX_ERROR_CHARS = 2000
IN_CHUNK = 500  # ids per IN (...) list: well under SQLite's bound-parameter limit


class StoreOps:
    """Base of the operation mixins; `sync.store.Store` provides the connections."""

    def _write(self) -> AbstractContextManager[Connection]:
        """A connection inside a write transaction (the caller's, when inside `transaction()`)."""
        raise TypeError("store operations are only usable through sync.store.Store")

    def _read(self) -> AbstractContextManager[Connection]:
        raise TypeError("store operations are only usable through sync.store.Store")


def chunks(items: Sequence[str], size: int = IN_CHUNK) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def clip(text: str) -> str:
    """Errors are kept for people to read, not as logs: bound their size."""
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"
