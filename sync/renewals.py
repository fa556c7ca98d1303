"""The store's past as `insights` inputs: closed renewal opportunities (with the previous contract's amount and
the loss reason) and every account's facts, for `healthsync backtest` and `healthsync fit`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date

from healthsync.connectors.records import OpportunityKind, OpportunityRecord
from healthsync.insights.backtest import History
from healthsync.insights.outcomes import ClosedRenewal
from healthsync.scoring.base import AccountFacts
from healthsync.sync.gather import Gathered, load
from healthsync.sync.store import Store

_CONTRACTS = (OpportunityKind.RENEWAL, OpportunityKind.NEW_BUSINESS)


def closed_renewals(opportunities: Iterable[OpportunityRecord]) -> list[ClosedRenewal]:
    """Every closed renewal with a close date, each with the amount of the account's contract before it (the
    latest won renewal or new business that closed earlier)."""
    by_account: dict[str, list[OpportunityRecord]] = {}
    for opp in opportunities:
        if not opp.deleted and opp.account_id and opp.close_date is not None and opp.kind in _CONTRACTS:
            by_account.setdefault(opp.account_id, []).append(opp)
    out = []
    for account_id, opps in by_account.items():
        opps.sort(key=lambda o: (o.close_date, o.id))
        prior = None
        for opp in opps:
            if opp.kind == OpportunityKind.RENEWAL and opp.is_closed:
                out.append(ClosedRenewal(account_id, opp.id, opp.close_date, opp.is_won, opp.amount, prior,
                                         opp.loss_reason))
            if opp.is_won:
                prior = opp.amount
    return sorted(out, key=lambda r: (r.close_date, r.account_id, r.opportunity_id))


def history_of(store: Store, crm: str, gathered: Gathered, until: date) -> History:
    """Facts as the cycle gathers them (former customers included) and the renewals the CRM closed by `until`
    (a close date in the future is a forecast, not an outcome)."""
    renewals = [r for r in closed_renewals(load(store, crm, "opportunities", OpportunityRecord))
                if r.close_date <= until]
    return History(gathered.facts, renewals, usage_start(gathered.facts))


def usage_start(facts: Sequence[AccountFacts]) -> date | None:
    """The first day of the usage history (None when no account has usage covered)."""
    days = [f.usage_since for f in facts if "usage" in f.covered and f.usage_since is not None]
    return min(days, default=None)
