"""The Mixpanel source: raw events exported in day windows and aggregated on ingest into `DailyUsageRecord`s,
with a late-event lookback that re-aggregates recent days in full.

State is the last complete day L (a day before the cycle's date, project timezone). Each cycle re-reads
`[L + 1 − lookback_days, today]` — the lookback days again (mobile and batch events arrive late) plus every
day since — in windows of up to `window_days` days, one export call per window: a week per call keeps a
90-day backfill at 13 of the 60 calls an hour allows, while memory stays at accounts × 7 days of tallies
(a longer first read, `mixpanel.backfill_days`, takes 13 longer windows).
A page covers exactly one window and REPLACES it: its `state.extra` names the window
(`window_first_day`/`window_last_day`, see `usage_window()`), and the store swaps every usage row of those
days for the page's records (`Store.replace_usage_window`), so a day's aggregate is always a full re-count.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

import tenacity

from healthsync.connectors.base import CheckResult, Page, StreamSpec
from healthsync.connectors.cursor import KeysetPosition, StreamState
from healthsync.connectors.mixpanel.aggregate import STREAM, DailyUsageAggregator, UsageRules
from healthsync.connectors.mixpanel.client import MixpanelCaller, build_client
from healthsync.connectors.pacing import EXPORT, QUERY, Pacer, PacerRegistry, mixpanel_pacing
from healthsync.connectors.records import DailyUsageRecord
from healthsync.connectors.retry import retry_policy
from healthsync.errors import AuthError, ConfigError, HealthsyncError, RetryableError

SOURCE = "mixpanel"
DEFAULT_WINDOW_DAYS = 7
DEFAULT_BACKFILL_DAYS = 90
BACKFILL_CALLS = 13  # a first read of any length takes at most this many export calls (of 60 an hour)
_CHECK_WHERE = 'properties["$email"] == "healthsync-credentials-check@invalid"'


def usage_window(page: Page) -> tuple[date, date] | None:
    """The days a usage page replaces (inclusive), from its state; None for a page that is not a window."""
    extra = page.state.extra if page.state is not None else {}
    first, last = extra.get("window_first_day"), extra.get("window_last_day")
    if not isinstance(first, str) or not isinstance(last, str):
        return None
    return date.fromisoformat(first), date.fromisoformat(last)


def last_complete_day(state: StreamState | None) -> date | None:
    """The newest day whose aggregates were complete when last read (None: never read)."""
    if state is None:
        return None
    stored = state.extra.get("last_complete_day")
    if isinstance(stored, str):
        return date.fromisoformat(stored)
    return state.position.ts.date() if isinstance(state.position, KeysetPosition) else None


class MixpanelSource:
    """Reads one Mixpanel project's raw export into daily per-account usage; see the module docstring."""

    name = SOURCE

    def __init__(  # noqa: PLR0913 (keyword-only settings, one per config key or test seam)
        self,
        *,
        project_id: int,
        username: str,
        secret: str,
        pacer: Pacer,
        rules: UsageRules,
        residency: str = "us",
        base_url: str | None = None,
        lookback_days: int = 5,
        window_days: int = DEFAULT_WINDOW_DAYS,
        backfill_days: int = DEFAULT_BACKFILL_DAYS,
        timezone: tzinfo = UTC,
        retry: tenacity.Retrying | None = None,
    ):
        if lookback_days < 0 or window_days < 1 or backfill_days < 0:
            raise ValueError("need lookback_days ≥ 0, window_days ≥ 1 and backfill_days ≥ 0")
        self.project_id = project_id
        self.rules = rules
        self.lookback_days, self.window_days, self.backfill_days = lookback_days, window_days, backfill_days
        self.timezone = timezone
        self.pacer = pacer
        self._client = build_client(
            project_id=project_id, username=username, secret=secret, residency=residency, base_url=base_url
        )
        self._caller = MixpanelCaller(pacer, retry or retry_policy())

    @classmethod
    def from_settings(cls, settings: Any, pacers: PacerRegistry, **options: Any) -> MixpanelSource:
        """Build from `Settings` (`mixpanel`, `limits.mixpanel`, optional `sandbox`). Options the settings do not
        hold (`nps_event`, `nps_score_property`, `window_days`, `backfill_days`, `timezone`, `retry`) may be
        passed as keywords."""
        mixpanel = settings.mixpanel
        if mixpanel is None:
            raise ConfigError("mixpanel: the config has no `mixpanel:` section; add one or disable the source")
        limits = settings.limits.mixpanel
        pacer = pacers.pacer(
            SOURCE,
            str(mixpanel.project_id),
            mixpanel_pacing(export_per_hour=limits.queries_per_hour, export_per_second=limits.export_per_second,
                            query_per_hour=limits.queries_per_hour),
        )
        rule_overrides = {k: options.pop(k) for k in ("nps_event", "nps_score_property", "feature_property")
                          if k in options}
        sandbox = settings.sandbox
        return cls(
            project_id=mixpanel.project_id,
            username=mixpanel.service_account.username,
            secret=mixpanel.service_account.secret.get_secret_value(),
            pacer=pacer,
            rules=UsageRules.from_settings(mixpanel, **rule_overrides),
            residency=mixpanel.residency,
            base_url=sandbox.mixpanel_url if sandbox else None,
            lookback_days=mixpanel.lookback_days,
            **{"backfill_days": mixpanel.backfill_days, **options},
        )

    # -- Source protocol -------------------------------------------------------------------------------------

    def streams(self) -> list[StreamSpec]:
        return [StreamSpec(STREAM, DailyUsageRecord, "primary_key", "time", False, self.window_days)]

    def check(self) -> CheckResult:
        """One engage query that matches no profile (so the SDK fetches no further pages), no retries."""
        caller = MixpanelCaller(self.pacer, retry_policy(max_attempts=1))
        params = {"where": _CHECK_WHERE, "page_size": 1, "output_properties": ["$email"]}
        try:
            caller.call(QUERY, lambda: self._client.query_engage(dict(params)))
        except AuthError as exc:
            return CheckResult(False, f"Mixpanel project {self.project_id} refused us: {exc}", _auth_hint(exc))
        except RetryableError as exc:
            return CheckResult(False, f"Mixpanel did not answer usefully: {exc}",
                               "check mixpanel.residency and the network path to Mixpanel, then try again")
        except HealthsyncError as exc:
            return CheckResult(False, f"Mixpanel: {exc}", "check mixpanel.project_id and mixpanel.residency")
        return CheckResult(True, f"Mixpanel project {self.project_id}: service account accepted")

    def read(
        self, stream: str, state: StreamState | None, *, as_of: datetime, full: bool = False
    ) -> Iterator[Page]:
        if stream != STREAM:
            raise ConfigError(f"mixpanel has no stream {stream!r}; streams: {STREAM}")
        if as_of.tzinfo is None:
            raise ValueError("as_of must be timezone-aware")
        return self._read_usage(None if full else state, as_of)

    # -- usage windows ---------------------------------------------------------------------------------------

    def plan_windows(self, state: StreamState | None, as_of: datetime) -> list[tuple[date, date]]:
        """The (first, last) day of each export call this cycle makes, oldest first. A first read spreads its
        backfill over at most BACKFILL_CALLS windows (a week each for the default 90 days)."""
        today = as_of.astimezone(self.timezone).date()
        done = last_complete_day(state)
        window = self.window_days
        if done is None:
            start = today - timedelta(days=self.backfill_days)
            window = max(window, -(-(self.backfill_days + 1) // BACKFILL_CALLS))
        else:
            start = min(done + timedelta(days=1 - self.lookback_days), today)
        windows = []
        while start <= today:
            end = min(start + timedelta(days=window - 1), today)
            windows.append((start, end))
            start = end + timedelta(days=1)
        return windows

    def _read_usage(self, state: StreamState | None, as_of: datetime) -> Iterator[Page]:
        yesterday = as_of.astimezone(self.timezone).date() - timedelta(days=1)
        done = last_complete_day(state)
        for first, last in self.plan_windows(state, as_of):
            aggregator = self._caller.call(EXPORT, lambda f=first, t=last: self._aggregate(f, t))
            complete = min(last, yesterday)
            done = complete if done is None else max(done, complete)
            yield Page(
                records=aggregator.records(),
                skipped=aggregator.skipped_records(),
                state=_usage_state(done, first, last),
            )

    def _aggregate(self, first: date, last: date) -> DailyUsageAggregator | None:
        """One export call for `first..last`, streamed line by line into a fresh aggregator (a retry starts
        the window again from nothing, so a broken-off stream never counts an event twice)."""
        params = {"from_date": first.isoformat(), "to_date": last.isoformat()}
        response = self._client.query_export(params, raw_stream=True)
        if response is None:
            return None  # a swallowed 4xx: the caller reads the status from the SDK's log
        aggregator = DailyUsageAggregator(self.rules, first, last, timezone=self.timezone)
        with response:
            aggregator.feed_stream(response)
        return aggregator


def _usage_state(done: date, first: date, last: date) -> StreamState:
    return StreamState(
        position=KeysetPosition(datetime(done.year, done.month, done.day, tzinfo=UTC), done.isoformat()),
        extra={
            "last_complete_day": done.isoformat(),
            "window_first_day": first.isoformat(),
            "window_last_day": last.isoformat(),
        },
    )


def _auth_hint(exc: AuthError) -> str:
    if "HTTP 403" in str(exc):
        return ("check mixpanel.project_id: the service account has no access to that project "
                "(Organization settings → Service accounts → project access)")
    return ("check mixpanel.service_account.username and mixpanel.service_account.secret "
            "(Organization settings → Service accounts), and mixpanel.residency")
