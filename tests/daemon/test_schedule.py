"""Schedules: config to triggers, and cron expressions meaning what crontab(5) says under APScheduler 3."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from healthsync.config.settings import ScheduleSettings
from healthsync.sync.daemon import Schedule, crontab_trigger

UTC = ZoneInfo("UTC")
# 2024-01-01 is a Monday.
MONDAY = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


def fire_times(expression: str, count: int = 3, start: datetime = MONDAY) -> list[datetime]:
    trigger = crontab_trigger(expression, UTC)
    times, previous, now = [], None, start
    for _ in range(count):
        nxt = trigger.get_next_fire_time(previous, now)
        times.append(nxt)
        previous, now = nxt, nxt + timedelta(seconds=1)
    return times


def test_day_of_week_zero_is_sunday_as_in_crontab() -> None:
    assert [t.strftime("%a %H:%M") for t in fire_times("0 3 * * 0", 2)] == ["Sun 03:00", "Sun 03:00"]
    assert fire_times("0 3 * * sun", 1) == fire_times("0 3 * * 7", 1) == fire_times("0 3 * * 0", 1)


def test_weekday_ranges_and_steps_follow_crontab_numbering() -> None:
    assert [t.strftime("%a") for t in fire_times("0 9 * * 1-5", 6)] == ["Tue", "Wed", "Thu", "Fri", "Mon", "Tue"]
    # */2 in crontab is sun, tue, thu, sat (APScheduler 3 alone would read mon, wed, fri, sun)
    assert [t.strftime("%a") for t in fire_times("0 9 * * */2", 4)] == ["Tue", "Thu", "Sat", "Sun"]
    assert [t.strftime("%a") for t in fire_times("0 9 * * 0-2", 3)] == ["Tue", "Sun", "Mon"]


def test_day_of_month_and_weekday_both_restricted_means_either() -> None:
    # crontab: the 15th OR any Friday. Jan 2024: Fri 5th, Fri 12th, Mon 15th, Fri 19th.
    days = [t.day for t in fire_times("0 0 15 * fri", 4)]
    assert days == [5, 12, 15, 19]


def test_question_mark_and_month_names_are_accepted() -> None:
    assert [t.month for t in fire_times("30 6 ? feb,mar *", 2)] == [2, 2]
    assert fire_times("30 6 ? feb,mar *", 1)[0] == datetime(2024, 2, 1, 6, 30, tzinfo=UTC)


def test_every_five_minutes() -> None:
    assert [t.minute for t in fire_times("*/5 * * * *", 3)] == [0, 5, 10]  # from 12:00 sharp, inclusive


def test_schedule_from_default_settings() -> None:
    schedule = Schedule.from_settings(ScheduleSettings())
    assert schedule.incremental_every == timedelta(minutes=5) and schedule.incremental_cron is None
    assert schedule.full_resync_cron == "0 3 * * sun"
    assert schedule.describe() == {"incremental": "every 0:05:00", "full_resync": "cron '0 3 * * sun'", "timezone": "UTC"}
    assert schedule.misfire_grace_s(full=False) == 300


def test_schedule_from_cron_settings_in_a_time_zone() -> None:
    settings = ScheduleSettings(incremental_cron="*/15 8-18 * * 1-5", timezone="Europe/Paris")
    schedule = Schedule.from_settings(settings)
    assert schedule.incremental_every is None and schedule.incremental_cron == "*/15 8-18 * * 1-5"
    trigger = schedule.incremental_trigger()
    nxt = trigger.get_next_fire_time(None, datetime(2024, 1, 6, 12, 0, tzinfo=UTC))  # a Saturday
    assert nxt is not None and (nxt.strftime("%a %H:%M"), nxt.utcoffset()) == ("Mon 08:00", timedelta(hours=1))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"incremental_every": None}, "exactly one of"),
        ({"incremental_cron": "* * * * *"}, "exactly one of"),
        ({"full_resync_every": timedelta(hours=1)}, "not both"),
        ({"incremental_every": timedelta(0)}, "positive"),
    ],
)
def test_inconsistent_schedules_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Schedule(**kwargs)
