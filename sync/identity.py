"""Identity resolution: which CRM account a Zendesk organization or a Mixpanel key belongs to.

Methods are tried in the configured order; the first that finds exactly one account wins. A key that
matches several accounts is `ambiguous` and one that matches none is `unmatched`: both are stored and
counted (shown by `healthsync identity`), never dropped silently and never attached to a guessed account.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from healthsync.connectors.records import normalize_domain

ZENDESK_METHODS = ("external_id", "domain")
MIXPANEL_METHODS = ("group_crm_id", "group_domain", "email_domain")
# Addresses on these domains say nothing about the employer.
FREE_MAIL = frozenset({"gmail.com", "googlemail.com", "yahoo.com", "hotmail.com", "outlook.com", "live.com",
                       "icloud.com", "aol.com", "proton.me", "protonmail.com", "gmx.com", "mail.com"})


@dataclass(frozen=True, slots=True)
class AccountKey:
    """The identifying facts of one CRM account."""

    account_id: str
    domain: str | None


@dataclass(frozen=True, slots=True)
class Resolution:
    source: str
    external_key: str
    status: str  # matched | unmatched | ambiguous
    account_id: str | None = None
    method: str | None = None
    candidates: tuple[str, ...] = ()


class AccountIndex:
    """Look-ups from CRM id and domain to accounts, built once per cycle."""

    def __init__(self, accounts: Iterable[AccountKey]):
        self.ids: set[str] = set()
        self.ids_lower: dict[str, str] = {}
        self.by_domain: dict[str, list[str]] = defaultdict(list)
        for account in accounts:
            self.ids.add(account.account_id)
            self.ids_lower[account.account_id.lower()] = account.account_id
            domain = normalize_domain(account.domain)
            if domain:
                self.by_domain[domain].append(account.account_id)

    def by_id(self, value: str | None) -> list[str]:
        if not value:
            return []
        value = value.strip()
        if value in self.ids:
            return [value]
        # Salesforce ids compare case-insensitively only in their 18-char form; accept a case slip there.
        found = self.ids_lower.get(value.lower())
        return [found] if found else []

    def by_domains(self, domains: Iterable[str | None]) -> list[str]:
        found: list[str] = []
        for domain in domains:
            clean = normalize_domain(domain)
            if clean and clean not in FREE_MAIL:
                found.extend(a for a in self.by_domain.get(clean, ()) if a not in found)
        return found


def _decide(source: str, key: str, attempts: Sequence[tuple[str, list[str]]]) -> Resolution:
    ambiguous: tuple[str, list[str]] | None = None
    for method, candidates in attempts:
        if len(candidates) == 1:
            return Resolution(source, key, "matched", candidates[0], method)
        if len(candidates) > 1 and ambiguous is None:
            ambiguous = (method, candidates)
    if ambiguous:
        method, candidates = ambiguous
        return Resolution(source, key, "ambiguous", None, method, tuple(sorted(candidates)))
    return Resolution(source, key, "unmatched")


def resolve_zendesk_org(
    index: AccountIndex, org_id: str, external_id: str | None, domains: Sequence[str], order: Sequence[str] = ZENDESK_METHODS
) -> Resolution:
    lookups = {"external_id": lambda: index.by_id(external_id), "domain": lambda: index.by_domains(domains)}
    return _decide("zendesk", org_id, [(m, lookups[m]()) for m in order if m in lookups])


def resolve_usage_key(
    index: AccountIndex, key_kind: str, key: str, order: Sequence[str] = MIXPANEL_METHODS
) -> Resolution:
    """A Mixpanel usage key: a group key value (CRM id or domain) or a user's email domain."""
    if key_kind not in order:
        return Resolution("mixpanel", f"{key_kind}:{key}", "unmatched")
    if key_kind == "group_crm_id":
        candidates = index.by_id(key)
        if not candidates and "group_domain" in order:  # a group key may hold a domain where we expected an id
            candidates = index.by_domains([key])
    else:
        candidates = index.by_domains([key])
    return _decide("mixpanel", f"{key_kind}:{key}", [(key_kind, candidates)])


def summarise(resolutions: Iterable[Resolution]) -> Mapping[str, Mapping[str, int]]:
    """Counts per source and status, for the pull summary and `healthsync identity`."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"matched": 0, "unmatched": 0, "ambiguous": 0})
    for r in resolutions:
        counts[r.source][r.status] += 1
    return {source: dict(c) for source, c in counts.items()}
