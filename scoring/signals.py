"""Turn one account's raw, dated facts into named signal values as of an instant (SPEC §3).

Facts dated after `as_of` are ignored, so the same facts can be scored as of any earlier day.
A signal whose source is not linked to the account, or that cannot be computed from what is known,
is `None` — never a silent 0. Percentages are 0..100 and named `*_pct`.
"""

from __future__ import annotations

import operator
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from operator import attrgetter
from types import MappingProxyType

from healthsync.scoring.base import AccountFacts, Signals, SignalValue

# name -> (dimension, description). Models and playbooks may only reference these (plus rule context).
SIGNALS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        # product usage (Mixpanel daily rows)
        "dau": ("usage", "mean daily active users over the last 30 days"),
        "wau": ("usage", "distinct active users in the last 7 days"),
        "mau": ("usage", "distinct active users in the last 30 days"),
        "dau_mau_pct": ("usage", "DAU / MAU, percent"),
        "login_days_30d": ("usage", "days with at least one login in the last 30"),
        "logins_per_user_30d": ("usage", "user-days with a login in 30 days per monthly active user"),
        "events_7d": ("usage", "events in the last 7 days"),
        "events_30d": ("usage", "events in the last 30 days"),
        "events_per_user_30d": ("usage", "events in 30 days per monthly active user"),
        "core_actions_30d": ("usage", "core actions in the last 30 days"),
        "core_actions_per_user_30d": ("usage", "core actions in 30 days per monthly active user"),
        "value_events_30d": ("usage", "value events in the last 30 days"),
        "feature_adoption_pct": ("usage", "distinct plan features used in 30 days / features in plan"),
        "usage_wow_change_pct": ("usage", "events this week vs the week before, percent change"),
        "usage_trend_30d_pct": ("usage", "events in the last 30 days vs the 30 before, percent change"),
        "usage_decline_weeks": ("usage", "consecutive weeks (ending today) with fewer events than the week before"),
        "login_decline_weeks": ("usage", "consecutive weeks with fewer logins than the week before"),
        "seat_utilisation_pct": ("usage", "monthly active users / purchased seats"),
        "wau_seat_pct": ("usage", "weekly active users / purchased seats"),
        "capacity_use_pct": ("usage", "events in 30 days / the plan's monthly capacity"),
        # lifecycle
        "days_since_contract_start": ("lifecycle", "days since the contract started"),
        "has_logged_in": ("lifecycle", "any login since the contract started"),
        "has_core_action": ("lifecycle", "any core action since the contract started"),
        "has_value_event": ("lifecycle", "any first-value event since the contract started"),
        "users_since_start": ("lifecycle", "distinct active users since the contract started (first 90 days only)"),
        # support (Zendesk)
        "tickets_7d": ("support", "tickets created in the last 7 days"),
        "tickets_30d": ("support", "tickets created in the last 30 days"),
        "tickets_90d": ("support", "tickets created in the last 90 days"),
        "open_tickets": ("support", "tickets open now"),
        "high_severity_open": ("support", "open tickets with high or urgent priority"),
        "high_severity_30d": ("support", "high or urgent tickets created in the last 30 days"),
        "csat_pct": ("support", "good / rated satisfaction on tickets of the last 90 days"),
        "reopened_tickets_90d": ("support", "tickets of the last 90 days reopened at least once"),
        "repeat_topics_90d": ("support", "topics (tags, else subject) on 2+ tickets in 90 days"),
        "competitor_mentioned": ("support", "a configured competitor named in a ticket of the last 90 days"),
        "backlog_age_days": ("support", "age of the oldest open ticket, days (0 when none is open)"),
        # engagement (CRM activity)
        "meetings_held_90d": ("engagement", "meetings/QBRs held in 90 days"),
        "meetings_no_show_90d": ("engagement", "meetings the customer did not show up to in 90 days"),
        "meetings_cancelled_90d": ("engagement", "meetings cancelled in 90 days"),
        "meeting_attendance_pct": ("engagement", "held / scheduled meetings in 90 days"),
        "qbr_attended": ("engagement", "a QBR was held within the configured QBR window"),
        "email_responses_90d": ("engagement", "inbound customer emails in 90 days"),
        "email_response_rate_pct": ("engagement", "inbound / outbound emails in 90 days (capped at 100)"),
        "days_since_two_way_touch": ("engagement", "days since the last held meeting/call or inbound email"),
        "contacts_engaged_90d": ("engagement", "distinct contacts in two-way touches in 90 days"),
        # contract (CRM)
        "days_to_renewal": ("contract", "days until the renewal date (negative once past)"),
        "renewal_signed": ("contract", "the renewal for this cycle is signed"),
        "acv": ("contract", "annual contract value (ARR when ACV is unknown)"),
        "expansion_12m": ("contract", "an expansion opportunity was won in the last 12 months"),
        "expansion_amount_12m": ("contract", "amount of expansions won in the last 12 months"),
        "late_payments": ("contract", "late payments in the last 12 months"),
        "payment_failed": ("contract", "the payment status is failed"),
        # stakeholder (CRM contacts)
        "champion_present": ("stakeholder", "an active champion contact exists"),
        "champion_left_90d": ("stakeholder", "a champion left or changed role in the last 90 days"),
        "exec_sponsor_present": ("stakeholder", "an active executive sponsor exists"),
        "exec_sponsor_engaged_90d": ("stakeholder", "an executive sponsor took part in a two-way touch in 90 days"),
        "stakeholder_changes_12m": ("stakeholder", "champions/sponsors who left or changed role in 12 months"),
        # sentiment
        "nps": ("sentiment", "latest NPS response within 12 months (0-10), else the CRM NPS field"),
    }
)

BOOLEAN_SIGNALS = frozenset(
    {
        "has_logged_in", "has_core_action", "has_value_event", "competitor_mentioned", "qbr_attended",
        "renewal_signed", "expansion_12m", "payment_failed", "champion_present", "champion_left_90d",
        "exec_sponsor_present", "exec_sponsor_engaged_90d",
    }
)
# what a measure, flag or rule may compare a signal with
SIGNAL_KINDS: Mapping[str, str] = MappingProxyType(
    {name: ("bool" if name in BOOLEAN_SIGNALS else "number") for name in SIGNALS})

_USAGE_SIGNALS = tuple(n for n, (dim, _) in SIGNALS.items() if dim == "usage") + (
    "has_logged_in", "has_core_action", "has_value_event", "users_since_start",
)
_SUPPORT_SIGNALS = tuple(n for n, (dim, _) in SIGNALS.items() if dim == "support")
_SEVERE = frozenset({"high", "urgent"})
_SOLVED_STATUSES = frozenset({"solved", "closed"})
_HELD_OUTCOMES = frozenset({"held", None})  # a past meeting logged without an outcome is taken as held
_LATE_BY_STATUS = {"current": 0, "late": 1, "failed": 2}
_WEEKS = 13  # enough weekly buckets for 12 consecutive weeks of decline
_ONBOARDING_DAYS = 90
_NOT_TOPIC_TEXT = re.compile(r"[^a-z ]+")
_day = attrgetter("day")
_active = attrgetter("active_user_ids")
_logins = attrgetter("login_user_ids")
_events = attrgetter("events")
_core = attrgetter("core_actions")
_value = attrgetter("value_events")
_features = attrgetter("features_used")


@dataclass(frozen=True)
class SignalConfig:
    """Knobs for signal computation, from the model's `signals:` section (defaults in the presets)."""

    competitor_words: tuple[str, ...] = ()
    features_by_plan: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    core_action_events: tuple[str, ...] = ()  # read by the Mixpanel ingest, kept here so config has one home
    value_events: tuple[str, ...] = ()  # likewise: which events count as "first value"
    qbr_window_days: int = 120
    ignored_topic_tags: tuple[str, ...] = ()

    def competitor_pattern(self) -> re.Pattern[str] | None:
        words = [w.strip() for w in self.competitor_words if w.strip()]
        if not words:
            return None
        alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
        return re.compile(rf"(?<![\w])({alternatives})(?![\w])", re.IGNORECASE)


def _pct(part: float, whole: float) -> float | None:
    return None if not whole else 100.0 * part / whole


def _change_pct(current: float, previous: float) -> float:
    if previous:
        return 100.0 * (current - previous) / previous
    return 100.0 if current else 0.0


def _severe_count(tickets: Sequence) -> int:
    return sum(1 for t in tickets if t.priority in _SEVERE)


def _events_in(rows: Sequence) -> int:
    return sum(map(_events, rows))


def _logins_in(rows: Sequence) -> int:
    return sum(map(len, map(_logins, rows)))


class SignalCalculator:
    """Computes `Signals` for many accounts as of one instant; build once per run."""

    def __init__(self, config: SignalConfig, as_of: datetime):
        if as_of.tzinfo is None:
            raise ValueError("as_of must be timezone-aware")
        self.config = config
        self.as_of = as_of
        self.today = as_of.date()
        self.today_ordinal = self.today.toordinal()
        self.cut_7d = as_of - timedelta(days=7)
        self.cut_30d = as_of - timedelta(days=30)
        self.cut_90d = as_of - timedelta(days=90)
        self.cut_365d = as_of - timedelta(days=365)
        self.cut_qbr = as_of - timedelta(days=config.qbr_window_days)
        # the first calendar day of "the last k days" (today counts as one of them)
        self.first_day_30 = self.today - timedelta(days=29)
        self.first_day_60 = self.today - timedelta(days=59)
        # week_starts[w]: the first day of week w counting back from today (week 0 = the last 7 days)
        self.week_starts = [self.today - timedelta(days=7 * (w + 1) - 1) for w in range(_WEEKS)]
        self.competitor_re = config.competitor_pattern()
        self.ignored_tags = frozenset(t.lower() for t in config.ignored_topic_tags)

    def compute(self, facts: AccountFacts) -> Signals:
        values: dict[str, SignalValue] = {}
        evidence: dict[str, str] = {}
        covered = facts.covered
        self._contract(facts, values, evidence)
        if "usage" in covered:
            self._usage(facts, values)
        else:
            values.update(dict.fromkeys(_USAGE_SIGNALS))
        if "support" in covered:
            self._support(facts, values, evidence)
        else:
            values.update(dict.fromkeys(_SUPPORT_SIGNALS))
        if "crm" in covered:
            engaged = self._engagement(facts, values)
            self._stakeholders(facts, values, evidence, engaged)
        else:
            for name, (dim, _) in SIGNALS.items():
                if dim in ("engagement", "stakeholder"):
                    values[name] = None
        self._sentiment(facts, values, evidence)
        return Signals(facts.account.id, values, evidence)

    # ------------------------------------------------------------------------------------ usage

    def _usage(self, facts: AccountFacts, values: dict[str, SignalValue]) -> None:
        """Window sums and unions over slices of the day-sorted rows, so the per-row work runs in C
        (`sum(map(...))`, `set().union(*...)`): 100k accounts x 90 rows must take seconds, not minutes.
        Weekly totals older than two weeks are summed only as far back as a decline streak reaches."""
        today = self.today
        account = facts.account
        rows = facts.usage
        days = list(map(_day, rows))
        if not all(map(operator.le, days, islice(days, 1, None))):
            rows = sorted(rows, key=_day)
            days = list(map(_day, rows))
        end = bisect_right(days, today)  # rows dated after as_of are ignored
        i30 = bisect_left(days, self.first_day_30, 0, end)
        i60 = bisect_left(days, self.first_day_60, 0, i30)
        i7 = bisect_left(days, self.week_starts[0], i30, end)
        i14 = bisect_left(days, self.week_starts[1], i30, i7)
        last_30 = rows[i30:end]
        # offsets of the last 7 and the 7 before them inside the last 30 days
        o7, o14 = i7 - i30, i14 - i30
        actives_30 = list(map(_active, last_30))
        logins_30 = list(map(_logins, last_30))
        events_by_day = list(map(_events, last_30))
        users_7 = set().union(*actives_30[o7:])
        users_30 = users_7.union(*actives_30[:o7])
        events_7 = sum(events_by_day[o7:])
        events_30 = sum(events_by_day)
        events_prev_30 = sum(map(_events, rows[i60:i30]))
        core_30 = sum(map(_core, last_30))
        value_30 = sum(map(_value, last_30))
        daily_active_sum = sum(map(len, actives_30))
        logins_total_30 = sum(map(len, logins_30))
        login_days = len(logins_30) - list(map(bool, logins_30)).count(False)
        start = account.contract_start
        i_start = bisect_left(days, start, 0, end) if start is not None else 0
        since_start = rows[i_start:end]
        # counted while onboarding only: a union over years of rows would cost more than it tells
        onboarding = start is not None and (today - start).days <= _ONBOARDING_DAYS
        data_start = facts.usage_since or start or (days[0] if end else None)
        # days of history that are known complete; comparisons need both windows inside it
        known_days = None if data_start is None else self.today_ordinal - data_start.toordinal() + 1
        mau = len(users_30)
        values["dau"] = daily_active_sum / 30.0
        values["wau"] = float(len(users_7))
        values["mau"] = float(mau)
        values["dau_mau_pct"] = _pct(daily_active_sum / 30.0, mau) if mau else 0.0
        values["login_days_30d"] = float(login_days)
        values["logins_per_user_30d"] = logins_total_30 / mau if mau else 0.0
        values["events_7d"] = float(events_7)
        values["events_30d"] = float(events_30)
        values["events_per_user_30d"] = events_30 / mau if mau else 0.0
        values["core_actions_30d"] = float(core_30)
        values["core_actions_per_user_30d"] = core_30 / mau if mau else 0.0
        values["value_events_30d"] = float(value_30)
        plan_features = account.plan_features or self.config.features_by_plan.get(account.plan_tier or "", ())
        if plan_features:
            used = len(set().union(*map(_features, last_30)).intersection(plan_features))
            values["feature_adoption_pct"] = 100.0 * used / len(set(plan_features))
        else:
            values["feature_adoption_pct"] = None
        comparable = 0 if known_days is None else min(known_days // 7 - 1, _WEEKS - 1)
        if comparable >= 1:
            events_prev_7 = sum(events_by_day[o14:o7])
            logins_7 = sum(map(len, logins_30[o7:]))
            logins_prev_7 = sum(map(len, logins_30[o14:o7]))
            values["usage_wow_change_pct"] = _change_pct(events_7, events_prev_7)
            values["usage_trend_30d_pct"] = _change_pct(events_30, events_prev_30) if known_days >= 60 else None
            values["usage_decline_weeks"] = float(
                self._decline_streak(rows, days, i14, events_7, events_prev_7, comparable, _events_in))
            values["login_decline_weeks"] = float(
                self._decline_streak(rows, days, i14, logins_7, logins_prev_7, comparable, _logins_in))
        else:
            values["usage_wow_change_pct"] = None
            values["usage_trend_30d_pct"] = (
                _change_pct(events_30, events_prev_30) if known_days is not None and known_days >= 60 else None
            )
            values["usage_decline_weeks"] = None
            values["login_decline_weeks"] = None
        seats = account.seats_purchased
        values["seat_utilisation_pct"] = _pct(mau, seats) if seats else None
        values["wau_seat_pct"] = _pct(len(users_7), seats) if seats else None
        capacity = account.plan_capacity
        values["capacity_use_pct"] = _pct(events_30, capacity) if capacity else None
        values["has_logged_in"] = any(map(_logins, since_start))
        values["has_core_action"] = any(map(_core, since_start))
        values["has_value_event"] = any(map(_value, since_start))
        values["users_since_start"] = float(len(set().union(*map(_active, since_start)))) if onboarding else None

    def _decline_streak(  # noqa: PLR0913 (the usage scan's own bounds and totals, so the hot path recomputes none)
        self, rows, days: list, lower: int, newest: int, older: int, comparable: int, total: Callable[[Sequence], int],
    ) -> int:
        """Weeks in a row, newest first, each lower than the week before it, given the totals of this week
        and last (`newest`, `older`; last week starts at row `lower`). Older weeks are summed on demand."""
        if not newest < older:
            return 0
        count = 1
        later = older
        week_starts = self.week_starts
        for week in range(2, comparable + 1):
            upper = lower
            lower = bisect_left(days, week_starts[week], 0, upper)
            earlier = total(rows[lower:upper])
            if not later < earlier:
                break
            count += 1
            later = earlier
        return count

    # ---------------------------------------------------------------------------------- support

    def _is_open(self, ticket) -> bool:
        as_of = self.as_of
        if ticket.solved_at is not None:
            return ticket.solved_at > as_of
        if ticket.status in _SOLVED_STATUSES:
            # solved without a date: count it open only for instants before its last update
            return ticket.updated_at is not None and ticket.updated_at > as_of
        return True

    def _support(self, facts: AccountFacts, values: dict[str, SignalValue], evidence: dict[str, str]) -> None:
        as_of, cut_7d, cut_30d, cut_90d = self.as_of, self.cut_7d, self.cut_30d, self.cut_90d
        seen = [t for t in facts.tickets if t.created_at <= as_of]
        open_now = [t for t in seen if self._is_open(t)]  # however old: a backlog is a backlog
        last_90 = [t for t in seen if t.created_at > cut_90d]
        last_30 = [t for t in last_90 if t.created_at > cut_30d]
        ratings = [t.satisfaction for t in last_90 if t.satisfaction is not None]
        competitors = self._competitors(last_90)
        values["tickets_7d"] = float(sum(1 for t in last_30 if t.created_at > cut_7d))
        values["tickets_30d"] = float(len(last_30))
        values["tickets_90d"] = float(len(last_90))
        values["open_tickets"] = float(len(open_now))
        values["high_severity_open"] = float(_severe_count(open_now))
        values["high_severity_30d"] = float(_severe_count(last_30))
        values["csat_pct"] = _pct(ratings.count("good"), len(ratings))
        values["reopened_tickets_90d"] = float(sum(1 for t in last_90 if t.reopens))
        values["repeat_topics_90d"] = float(self._repeat_topics(last_90))
        values["competitor_mentioned"] = None if self.competitor_re is None else bool(competitors)
        if competitors:
            evidence["competitor_mentioned"] = ", ".join(sorted(competitors))
        oldest_open = min((t.created_at for t in open_now), default=None)
        values["backlog_age_days"] = (
            0.0 if oldest_open is None else round((as_of - oldest_open).total_seconds() / 86400.0, 1)
        )

    def _competitors(self, tickets: Sequence) -> set[str]:
        pattern = self.competitor_re
        if pattern is None:
            return set()
        return {match.group(1).lower() for ticket in tickets
                for match in pattern.finditer(f"{ticket.subject}\n{ticket.description}")}

    def _repeat_topics(self, tickets: Sequence) -> int:
        """Topics raised by two tickets or more."""
        counts: dict[str, int] = {}
        for ticket in tickets:
            for topic in self._topics(ticket):
                counts[topic] = counts.get(topic, 0) + 1
        return sum(1 for n in counts.values() if n >= 2)

    def _topics(self, ticket) -> Iterable[str]:
        if ticket.tags:
            tags = {t.lower() for t in ticket.tags}
            if self.ignored_tags:
                tags -= self.ignored_tags
            if tags:
                return tags
        subject = _NOT_TOPIC_TEXT.sub(" ", ticket.subject.lower())
        normalised = " ".join(subject.split())
        return (f"subject:{normalised}",) if normalised else ()

    # ------------------------------------------------------------------------------- engagement

    def _engagement(self, facts: AccountFacts, values: dict[str, SignalValue]) -> set[str]:
        """Fills engagement signals; returns the contacts met two-way in 90 days (for sponsor signals)."""
        as_of = self.as_of
        seen = [a for a in facts.activities if a.occurred_at <= as_of]
        emails = [a for a in seen if a.kind == "email"]
        held = [a for a in seen if a.kind != "email" and a.outcome in _HELD_OUTCOMES]
        self._meeting_signals(seen, held, values)
        self._email_signals(emails, values)
        two_way = [a for a in emails if a.direction == "inbound"] + held  # a reply or a meeting that happened
        return self._touch_signals(two_way, values)

    def _meeting_signals(self, seen: Sequence, held: Sequence, values: dict[str, SignalValue]) -> None:
        """Meetings of the last 90 days by outcome (calls are touches, not meetings) and the QBR."""
        cut_90d = self.cut_90d
        held_90 = sum(1 for a in held if a.kind != "call" and a.occurred_at > cut_90d)
        missed = [a for a in seen if a.kind not in ("email", "call") and a.outcome not in _HELD_OUTCOMES
                  and a.occurred_at > cut_90d]
        no_show = sum(1 for a in missed if a.outcome == "no_show")
        cancelled = len(missed) - no_show
        values["meetings_held_90d"] = float(held_90)
        values["meetings_no_show_90d"] = float(no_show)
        values["meetings_cancelled_90d"] = float(cancelled)
        values["meeting_attendance_pct"] = _pct(held_90, held_90 + no_show + cancelled)
        values["qbr_attended"] = any(a.kind == "qbr" and a.occurred_at > self.cut_qbr for a in held)

    def _email_signals(self, emails: Sequence, values: dict[str, SignalValue]) -> None:
        recent = [a for a in emails if a.occurred_at > self.cut_90d]
        inbound = sum(1 for a in recent if a.direction == "inbound")
        outbound = sum(1 for a in recent if a.direction == "outbound")
        values["email_responses_90d"] = float(inbound)
        rate = _pct(inbound, outbound)
        values["email_response_rate_pct"] = None if rate is None else min(rate, 100.0)

    def _touch_signals(self, two_way: Sequence, values: dict[str, SignalValue]) -> set[str]:
        last_touch = max((a.occurred_at for a in two_way), default=None)
        if last_touch is not None:
            values["days_since_two_way_touch"] = float((self.as_of - last_touch).days)
        else:
            # never touched: silent since the contract started, when that is known
            start = values.get("days_since_contract_start")
            values["days_since_two_way_touch"] = start if start is not None and start >= 0 else None
        cut_90d = self.cut_90d
        engaged = {a.contact_id for a in two_way if a.occurred_at > cut_90d and a.contact_id}
        values["contacts_engaged_90d"] = float(len(engaged))
        return engaged

    # ------------------------------------------------------------------------------ stakeholders

    def _gone(self, contact) -> bool:
        if contact.left_at is not None:
            return contact.left_at <= self.as_of
        return not contact.active

    def _stakeholders(
        self, facts: AccountFacts, values: dict[str, SignalValue], evidence: dict[str, str], engaged: set[str]
    ) -> None:
        champion_present = sponsor_present = sponsor_engaged = False
        left_recently: list[str] = []
        changes_12m = 0
        for contact in facts.contacts:
            if not (contact.is_champion or contact.is_exec_sponsor):
                continue
            gone = self._gone(contact)
            moved_at = max(
                (t for t in (contact.left_at, contact.role_changed_at) if t is not None and t <= self.as_of),
                default=None,
            )
            if moved_at is not None and moved_at > self.cut_365d:
                changes_12m += 1
            if contact.is_champion:
                if not gone:
                    champion_present = True
                if moved_at is not None and moved_at > self.cut_90d:
                    left_recently.append(contact.email or contact.id)
            if contact.is_exec_sponsor and not gone:
                sponsor_present = True
                if contact.id in engaged:
                    sponsor_engaged = True
        values["champion_present"] = champion_present
        values["champion_left_90d"] = bool(left_recently)
        if left_recently:
            evidence["champion_left_90d"] = ", ".join(sorted(left_recently))
        values["exec_sponsor_present"] = sponsor_present
        values["exec_sponsor_engaged_90d"] = sponsor_engaged
        values["stakeholder_changes_12m"] = float(changes_12m)

    # ---------------------------------------------------------------------------------- contract

    def _contract(self, facts: AccountFacts, values: dict[str, SignalValue], evidence: dict[str, str]) -> None:
        account = facts.account
        today = self.today
        values["days_since_contract_start"] = (
            float((today - account.contract_start).days) if account.contract_start else None
        )
        values["days_to_renewal"] = (
            float((account.renewal_date - today).days) if account.renewal_date else None
        )
        values["acv"] = account.acv if account.acv is not None else account.arr
        signed, stage = self._renewal_signed(facts)
        values["renewal_signed"] = signed
        if stage:
            evidence["renewal_opportunity_stage"] = stage
        year_ago = today - timedelta(days=365)
        won = [
            o for o in facts.opportunities
            if o.kind == "expansion" and o.is_won and o.close_date is not None and year_ago < o.close_date <= today
        ]
        has_crm = "crm" in facts.covered
        values["expansion_12m"] = bool(won) if has_crm else None
        values["expansion_amount_12m"] = float(sum(o.amount or 0.0 for o in won)) if has_crm else None
        if account.late_payments_12m is not None:
            values["late_payments"] = float(account.late_payments_12m)
        else:
            late = _LATE_BY_STATUS.get(account.payment_status or "")
            values["late_payments"] = None if late is None else float(late)
        values["payment_failed"] = None if account.payment_status is None else account.payment_status == "failed"

    def _renewal_signed(self, facts: AccountFacts) -> tuple[bool | None, str | None]:
        """A won renewal opportunity closed by `as_of` for this renewal cycle beats the account flag,
        because the flag is today's value while the opportunity is dated."""
        account = facts.account
        renewals = [o for o in facts.opportunities if o.kind == "renewal"]
        cycle_start = account.renewal_date - timedelta(days=365) if account.renewal_date else None
        latest_stage = None
        for opp in sorted(renewals, key=lambda o: (o.close_date or self.today, o.id)):
            if opp.created_at is not None and opp.created_at > self.as_of:
                continue
            latest_stage = opp.stage
            if opp.is_won and opp.close_date is not None and opp.close_date <= self.today:
                if cycle_start is None or opp.close_date > cycle_start:
                    return True, opp.stage
        if account.renewal_signed is not None:
            return account.renewal_signed, latest_stage
        if renewals:
            return False, latest_stage
        return None, None

    # --------------------------------------------------------------------------------- sentiment

    def _sentiment(self, facts: AccountFacts, values: dict[str, SignalValue], evidence: dict[str, str]) -> None:
        latest = None
        for response in facts.nps_responses:
            if self.cut_365d < response.at <= self.as_of and (latest is None or response.at > latest.at):
                latest = response
        if latest is not None:
            values["nps"] = float(latest.score)
            evidence["nps"] = f"survey {latest.at.date().isoformat()}"
        elif facts.account.nps is not None:
            values["nps"] = float(facts.account.nps)
            evidence["nps"] = "CRM field"
        else:
            values["nps"] = None


def compute_signals(facts: AccountFacts, as_of: datetime, config: SignalConfig | None = None) -> Signals:
    """One account's signals; for many accounts build a `SignalCalculator` once instead."""
    return SignalCalculator(config or SignalConfig(), as_of).compute(facts)
