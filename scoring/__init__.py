"""Pure scoring: raw account facts -> signals -> health result, renewal stage, segment, playbook intents."""

from healthsync.scoring.base import (
    Account,
    AccountFacts,
    Activity,
    ComponentScore,
    Contact,
    HealthResult,
    HistoryFacts,
    Intent,
    MeasureDetail,
    NpsResponse,
    Opportunity,
    OwnerSpec,
    PastResult,
    ScoredAccount,
    Signals,
    Ticket,
    UsageDay,
)
from healthsync.scoring.model import HealthModel
from healthsync.scoring.playbook import Playbook
from healthsync.scoring.portfolio import backfill_history, score_portfolio

__all__ = [
    "Account", "AccountFacts", "Activity", "ComponentScore", "Contact", "HealthModel", "HealthResult",
    "HistoryFacts", "Intent", "MeasureDetail",
    "NpsResponse", "Opportunity", "OwnerSpec", "PastResult", "Playbook", "ScoredAccount", "Signals", "Ticket",
    "UsageDay", "backfill_history", "score_portfolio",
]
