"""Renewal outcomes from the CRM's closed renewal opportunities — renewed, contracted, expanded, or churned
with its reason: the labels a backtest and a fit compare past scores with."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

OUTCOMES = ("renewed", "contracted", "expanded", "churned")
CONTRACTED_BELOW = 0.9  # a won renewal below 90 % of the previous contract's amount is a contraction
EXPANDED_ABOVE = 1.1  # above 110 % an expansion


@dataclass(frozen=True)
class ClosedRenewal:
    """One closed renewal opportunity as the store hands it over; `prior_amount` is the amount of the account's
    previous won renewal (or its new business) before this one, when known."""

    account_id: str
    opportunity_id: str
    close_date: date
    won: bool
    amount: float | None = None
    prior_amount: float | None = None
    loss_reason: str | None = None


@dataclass(frozen=True, order=True)
class RenewalOutcome:
    """A renewal decided on `anchor` (the opportunity's close date); a backtest scores the account `horizon`
    days before it."""

    anchor: date
    account_id: str
    opportunity_id: str
    kind: str  # one of OUTCOMES
    loss_reason: str | None = None

    @property
    def churned(self) -> bool:
        return self.kind == "churned"


def classify(renewal: ClosedRenewal) -> RenewalOutcome:
    kind = "churned"
    if renewal.won:
        kind = "renewed"
        if renewal.amount and renewal.prior_amount:
            ratio = renewal.amount / renewal.prior_amount
            kind = "contracted" if ratio < CONTRACTED_BELOW else "expanded" if ratio > EXPANDED_ABOVE else "renewed"
    return RenewalOutcome(renewal.close_date, renewal.account_id, renewal.opportunity_id, kind,
                          None if renewal.won else renewal.loss_reason)


def outcomes_between(renewals: Iterable[ClosedRenewal], first: date | None = None,
                     last: date | None = None) -> list[RenewalOutcome]:
    """Outcomes of the renewals closed from `first` to `last` (inclusive; None: unbounded), oldest first."""
    chosen = (r for r in renewals if (first is None or r.close_date >= first) and (last is None or r.close_date <= last))
    return sorted(classify(r) for r in chosen)
