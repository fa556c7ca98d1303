"""Names, ids and vocabulary of the synthetic book: realistic-looking and deterministic, never random-global."""

from __future__ import annotations

import hashlib
import random

# Salesforce 18-char ids: 3-char key prefix, a 2-char "pod", a base62 counter, then the case checksum.
SF_PREFIX = {"Account": "001", "Contact": "003", "Opportunity": "006", "Task": "00T", "Event": "00U", "User": "005"}
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_CHECKSUM_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"

# HubSpot ids are numeric strings, unique per object type; separate ranges keep test output unambiguous.
HS_BASE = {"company": 20_000_000_000, "contact": 30_000_000_000, "deal": 40_000_000_000,
           "engagement": 50_000_000_000, "owner": 70_000_000}

# The vendor running the book (seed 000 escalates unsigned renewals to cto@cloudscale.io).
VENDOR_DOMAIN = "cloudscale.io"
COMPETITORS = ("Gainsight", "ChurnZero", "Totango", "Vitally", "Planhat")
FREE_MAIL_DOMAINS = ("gmail.com", "outlook.com", "yahoo.com", "proton.me", "icloud.com")

_COMPANY_HEADS = (
    "Blue", "North", "Silver", "Iron", "Bright", "Clear", "Red", "Stone", "Swift", "Green", "High", "Deep",
    "True", "Open", "Star", "Sun", "Oak", "Pine", "River", "Summit", "Polar", "Cedar", "Harbor", "Maple",
    "Granite", "Falcon", "Atlas", "Nova", "Vector", "Quantum", "Coral", "Amber", "Crimson", "Lunar", "Apex",
)
_COMPANY_TAILS = (
    "peak", "wind", "field", "bridge", "stream", "gate", "point", "line", "works", "forge", "wave", "path",
    "stack", "leaf", "light", "rock", "base", "grid", "shore", "vale", "crest", "mark", "sight", "spring",
    "haven", "ridge", "loop", "port", "craft", "core",
)
_COMPANY_KINDS = (
    "Analytics", "Logistics", "Health", "Systems", "Labs", "Financial", "Robotics", "Media", "Energy",
    "Software", "Retail", "Networks", "Biotech", "Foods", "Capital", "Security", "Learning", "Mobility",
    "Insurance", "Manufacturing", "Travel", "Realty", "Consulting", "Telecom",
)
_TLDS = ("com", "com", "com", "io", "co", "ai", "net")
INDUSTRIES = (
    "Software", "Financial Services", "Healthcare", "Retail", "Manufacturing", "Logistics", "Education",
    "Media", "Telecommunications", "Energy", "Insurance", "Real Estate", "Travel", "Biotechnology",
)
FIRST_NAMES = (
    "Olivia", "Liam", "Emma", "Noah", "Ava", "Elijah", "Sophia", "James", "Isabella", "Lucas", "Mia", "Mateo",
    "Amelia", "Ethan", "Harper", "Aiden", "Evelyn", "Kenji", "Priya", "Omar", "Fatima", "Chen", "Yuki", "Lars",
    "Ingrid", "Diego", "Lucia", "Tomasz", "Aisha", "Kwame", "Hana", "Ravi", "Sofia", "Mateus", "Chloe", "Ben",
    "Grace", "Jonas", "Leila", "Marco", "Nadia", "Oscar", "Paula", "Quinn", "Rosa", "Samir", "Tara", "Victor",
)
LAST_NAMES = (
    "Smith", "Johnson", "Garcia", "Miller", "Davis", "Martinez", "Lopez", "Wilson", "Anderson", "Thomas",
    "Moore", "Jackson", "Lee", "Walker", "Hall", "Young", "King", "Wright", "Scott", "Nguyen", "Kim", "Patel",
    "Singh", "Khan", "Tanaka", "Schmidt", "Novak", "Rossi", "Silva", "Okafor", "Mensah", "Berg", "Larsen",
    "Dubois", "Moreau", "Costa", "Ivanova", "Haddad", "Cohen", "Murphy", "Kelly", "Reyes", "Ortiz", "Ward",
)
TITLES = {
    "champion": ("Director of Operations", "Head of Customer Operations", "Operations Manager", "VP Operations"),
    "exec_sponsor": ("Chief Operating Officer", "VP of Customer Experience", "Chief Technology Officer", "CFO"),
    "admin": ("Systems Administrator", "IT Manager", "Platform Admin", "Business Systems Analyst"),
    "user": ("Analyst", "Team Lead", "Account Manager", "Specialist", "Coordinator", "Engineer", "Designer"),
}


def stable_int(*parts: object) -> int:
    """A 64-bit integer that depends only on `parts` (not on PYTHONHASHSEED), for per-key randomness."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def keyed_rng(*parts: object) -> random.Random:
    return random.Random(stable_int(*parts))


def _base62(n: int, width: int) -> str:
    chars = []
    while n:
        n, rem = divmod(n, 62)
        chars.append(_B62[rem])
    return "".join(reversed(chars)).rjust(width, "0")


def sf_checksum(id15: str) -> str:
    suffix = ""
    for chunk in range(3):
        flags = 0
        for bit, char in enumerate(id15[chunk * 5:(chunk + 1) * 5]):
            if "A" <= char <= "Z":
                flags |= 1 << bit
        suffix += _CHECKSUM_CHARS[flags]
    return suffix


def sf_id(sobject: str, n: int) -> str:
    """Deterministic, well-formed 18-char Salesforce id: `sf_id("Account", 1)` -> '0018d0000000001AAA'-like."""
    id15 = SF_PREFIX[sobject] + "8d" + _base62(n, 10)
    return id15 + sf_checksum(id15)


def hs_id(kind: str, n: int) -> str:
    return str(HS_BASE[kind] + n)


class CompanyNamer:
    """Unique company names and domains, drawn in order from one seeded generator."""

    def __init__(self, seed: int):
        self._rng = keyed_rng(seed, "company-names")
        self._used: set[str] = set()

    def next(self) -> tuple[str, str]:
        rng = self._rng
        for attempt in range(1000):
            head, tail, kind = rng.choice(_COMPANY_HEADS), rng.choice(_COMPANY_TAILS), rng.choice(_COMPANY_KINDS)
            word = head + tail
            name = f"{word} {kind}" if attempt < 50 else f"{word} {kind} {attempt}"
            if name not in self._used:
                self._used.add(name)
                domain = f"{word}{kind}".lower().replace(" ", "") + ("" if attempt < 50 else str(attempt))
                return name, f"{domain}.{rng.choice(_TLDS)}"
        raise RuntimeError("company name space exhausted")  # unreachable for books below ~600k accounts


def person(rng: random.Random) -> tuple[str, str]:
    return rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)


def email_local(first: str, last: str, taken: set[str]) -> str:
    base = f"{first}.{last}".lower()
    local, n = base, 1
    while local in taken:
        n += 1
        local = f"{base}{n}"
    taken.add(local)
    return local
