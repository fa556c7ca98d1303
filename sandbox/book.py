"""The mutable workbench the generator fills: record lists, id counters and the shared modstamps of bulk loads."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from healthsync.sandbox.events import UsagePlan
from healthsync.sandbox.model import (
    Account,
    Activity,
    Contact,
    MixpanelProfile,
    Opportunity,
    Owner,
    SatisfactionRating,
    Ticket,
    ZendeskOrg,
    ZendeskUser,
)

_BULK_SHARE = 0.4  # records last touched by a nightly integration job share its exact modstamp


def at(day: date, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute, second), tzinfo=UTC)


@dataclass
class Book:
    seed: int
    as_of: datetime
    owners: list[Owner] = field(default_factory=list)
    accounts: list[Account] = field(default_factory=list)
    contacts: list[Contact] = field(default_factory=list)
    opportunities: list[Opportunity] = field(default_factory=list)
    activities: list[Activity] = field(default_factory=list)
    zendesk_orgs: list[ZendeskOrg] = field(default_factory=list)
    zendesk_users: list[ZendeskUser] = field(default_factory=list)
    tickets: list[Ticket] = field(default_factory=list)
    ratings: list[SatisfactionRating] = field(default_factory=list)
    profiles: list[MixpanelProfile] = field(default_factory=list)
    plans: list[UsagePlan] = field(default_factory=list)
    agent_ids: list[int] = field(default_factory=list)
    counters: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.today = self.as_of.date()
        # Nightly sync jobs at 02:00:00 UTC on each of the last 100 days: many records share these stamps.
        self.bulk_stamps = [at(self.today - timedelta(days=d), 2) for d in range(0, 100)]
        self.bulk_stamps = [s for s in self.bulk_stamps if s <= self.as_of]
        # The original CRM migration: every account older than it was created in one bulk import.
        self.migration = at(self.today - timedelta(days=1500), 2)

    def next_id(self, kind: str) -> int:
        self.counters[kind] += 1
        return self.counters[kind]

    def ago(self, days: float) -> datetime:
        return self.as_of - timedelta(days=days)

    def clamp(self, moment: datetime) -> datetime:
        return min(moment, self.as_of)

    def stamp(self, rng: random.Random, not_before: datetime) -> datetime:
        """A last-modified time in [not_before, as_of]: often a shared bulk-load stamp, else a random instant."""
        not_before = min(not_before, self.as_of)
        if rng.random() < _BULK_SHARE:
            candidates = [s for s in self.bulk_stamps[:30] if s >= not_before]
            if candidates:
                return candidates[rng.randrange(len(candidates))]
        span = (self.as_of - not_before).total_seconds()
        return not_before + timedelta(seconds=int(rng.random() * span))
