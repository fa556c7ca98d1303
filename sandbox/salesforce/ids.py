"""Salesforce record ids: key prefixes per sObject, the 15→18 character checksum, and id minting."""

from __future__ import annotations

import re
import threading

KEY_PREFIXES = {
    "Account": "001",
    "Contact": "003",
    "Opportunity": "006",
    "Case": "500",
    "Task": "00T",
    "Event": "00U",
    "User": "005",
    "CustomField": "00N",
    "QueryLocator": "01g",
    "BulkJob": "750",
}
SOBJECT_BY_PREFIX = {prefix: name for name, prefix in KEY_PREFIXES.items()}

_ID_SHAPE = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
_CHECKSUM_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def checksum(id15: str) -> str:
    """The three case-encoding characters Salesforce appends to a 15-character id."""
    suffix = ""
    for start in (0, 5, 10):
        bits = sum(1 << i for i, ch in enumerate(id15[start:start + 5]) if ch.isupper())
        suffix += _CHECKSUM_ALPHABET[bits]
    return suffix


def is_well_formed(value: object) -> bool:
    return isinstance(value, str) and _ID_SHAPE.match(value) is not None


def to18(value: str) -> str:
    return value if len(value) == 18 else value + checksum(value)


def key15(value: str) -> str:
    """The case-sensitive identity of an id (15- and 18-character forms of one record share it)."""
    return value[:15]


def sobject_of(value: str) -> str | None:
    return SOBJECT_BY_PREFIX.get(value[:3]) if is_well_formed(value) else None


class IdMinter:
    """Mints fresh ids per key prefix on this emulator's own pod ("Hs0"), skipping ids already taken."""

    def __init__(self) -> None:
        self._counters: dict[str, int] = {}
        self._lock = threading.Lock()

    def mint(self, prefix: str, taken: object = ()) -> str:
        """`taken` holds the 15-character keys already in use for this prefix."""
        with self._lock:
            while True:
                n = self._counters.get(prefix, 0) + 1
                self._counters[prefix] = n
                candidate = to18(prefix + "Hs0" + _base62(n, 9))
                if key15(candidate) not in taken:  # type: ignore[operator]
                    return candidate


def _base62(n: int, width: int) -> str:
    digits = ""
    while n:
        n, rem = divmod(n, 62)
        digits = _BASE62[rem] + digits
    return digits.rjust(width, "0")
