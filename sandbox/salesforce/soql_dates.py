"""SOQL's relative date literals (TODAY, THIS_QUARTER, LAST_N_DAYS:n, ...) as [start, end) ranges and its date
functions (CALENDAR_YEAR(), DAY_ONLY(), ...), in UTC with a fiscal year that starts in January (a new org's
default).

Sources: "Date Formats and Date Literals" and "Date Functions" in the SOQL and SOSL Reference
(developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select_dateformats.htm,
.../sforce_api_calls_soql_select_date_functions.htm).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

DAY = timedelta(days=1)
# Literals that take `:n`, and the plain ones; the FISCAL_* forms equal the calendar ones for a January fiscal year.
N_LITERALS = {"last_n_days", "next_n_days", "n_days_ago", "last_n_weeks", "next_n_weeks", "n_weeks_ago",
              "last_n_months", "next_n_months", "n_months_ago", "last_n_quarters", "next_n_quarters",
              "n_quarters_ago", "last_n_years", "next_n_years", "n_years_ago", "last_n_fiscal_quarters",
              "next_n_fiscal_quarters", "n_fiscal_quarters_ago", "last_n_fiscal_years", "next_n_fiscal_years",
              "n_fiscal_years_ago"}
PLAIN_LITERALS = {"today", "yesterday", "tomorrow", "this_week", "last_week", "next_week", "this_month",
                  "last_month", "next_month", "last_90_days", "next_90_days", "this_quarter", "last_quarter",
                  "next_quarter", "this_year", "last_year", "next_year", "this_fiscal_quarter",
                  "last_fiscal_quarter", "next_fiscal_quarter", "this_fiscal_year", "last_fiscal_year",
                  "next_fiscal_year"}
DATE_LITERALS = N_LITERALS | PLAIN_LITERALS
DATE_FUNCTIONS = {"calendar_month", "calendar_quarter", "calendar_year", "day_in_month", "day_in_week",
                  "day_in_year", "day_only", "fiscal_month", "fiscal_quarter", "fiscal_year", "hour_in_day",
                  "week_in_month", "week_in_year"}


def _add_months(day: datetime, months: int) -> datetime:
    index = day.year * 12 + day.month - 1 + months
    return day.replace(year=index // 12, month=index % 12 + 1, day=1)


def _starts(now: datetime) -> dict[str, datetime]:
    today = datetime.combine(now.astimezone(UTC).date(), time(), UTC)
    month = today.replace(day=1)
    return {
        "day": today,
        "week": today - timedelta(days=(today.weekday() + 1) % 7),  # weeks start on Sunday (en_US locale)
        "month": month,
        "quarter": month.replace(month=(month.month - 1) // 3 * 3 + 1),
        "year": month.replace(month=1),
    }


def _unit_span(start: datetime, unit: str, offset: int, count: int = 1) -> tuple[datetime, datetime]:
    """`count` whole units starting `offset` units after the unit that begins at `start`."""
    if unit in ("day", "week"):
        step = DAY if unit == "day" else 7 * DAY
        return start + offset * step, start + (offset + count) * step
    months = {"month": 1, "quarter": 3, "year": 12}[unit]
    return _add_months(start, offset * months), _add_months(start, (offset + count) * months)


def literal_range(name: str, amount: int, now: datetime) -> tuple[datetime, datetime]:
    """The [start, end) a date literal stands for; `amount` is the n of the `:n` forms."""
    name = name.replace("_fiscal", "")
    starts = _starts(now)
    special = {
        "today": ("day", 0, 1), "yesterday": ("day", -1, 1), "tomorrow": ("day", 1, 1),
        # LAST_90_DAYS and LAST_N_DAYS:n include today besides the n days before it (so n + 1 days in all:
        # "LAST_N_DAYS:1 includes yesterday and today"); the NEXT_ forms start tomorrow
        "last_90_days": ("day", -90, 91), "next_90_days": ("day", 1, 90),
        "last_n_days": ("day", -amount, amount + 1), "next_n_days": ("day", 1, amount),
        "n_days_ago": ("day", -amount, 1),
    }
    if name in special:
        unit, offset, count = special[name]
        return _unit_span(starts["day"], unit, offset, count)
    head, _, unit = name.rpartition("_")
    unit = unit.removesuffix("s")
    if head == "this":
        return _unit_span(starts[unit], unit, 0)
    if head == "last":
        return _unit_span(starts[unit], unit, -1)
    if head == "next":
        return _unit_span(starts[unit], unit, 1)
    if name.startswith("last_n_"):
        return _unit_span(starts[unit], unit, -amount, amount)
    if name.startswith("next_n_"):
        return _unit_span(starts[unit], unit, 1, amount)
    unit = name.removeprefix("n_").removesuffix("_ago").removesuffix("s")
    return _unit_span(starts[unit], unit, -amount)


def apply_function(name: str, value: Any) -> Any:
    """A date function of a date or datetime value (UTC); None stays None."""
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.combine(value, time(), UTC)
    day = moment.date()
    if name == "day_only":
        return day
    if name == "hour_in_day":
        return moment.hour
    return {
        "calendar_month": day.month, "fiscal_month": day.month,
        "calendar_quarter": (day.month - 1) // 3 + 1, "fiscal_quarter": (day.month - 1) // 3 + 1,
        "calendar_year": day.year, "fiscal_year": day.year,
        "day_in_month": day.day, "day_in_week": (day.weekday() + 1) % 7 + 1,  # 1 = Sunday
        "day_in_year": day.timetuple().tm_yday, "week_in_month": (day.day - 1) // 7 + 1,
        "week_in_year": (day.timetuple().tm_yday - 1) // 7 + 1,  # days 1-7 of the year are week 1
    }[name]


def returns_date(name: str) -> bool:
    return name == "day_only"


def as_date(value: Any) -> date:
    return value.date() if isinstance(value, datetime) else value
