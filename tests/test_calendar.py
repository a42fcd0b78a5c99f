"""Working-time arithmetic: weekends, the National Day holiday and its make-up Saturday (调休),
working-hour boundaries, quiet hours, a paused clock; on the official calendar
(`chinese_calendar`) and on a holiday set given by hand."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from domain.calendar import (
    CalendarError,
    ChineseWorkdays,
    FixedWorkdays,
    QuietHours,
    Weekdays,
    WorkingHours,
    WorkingTime,
    add_wall,
    parse_span,
    resume_time,
)

ZONE = ZoneInfo("Asia/Shanghai")
DAY = timedelta(hours=9)  # one working day: 08:30–17:30

# The 2026 schedule as the State Council published it, written out by hand: Mid-Autumn
# (25–27 Sep) and National Day (1–7 Oct) off; Sunday 20 Sep and Saturday 10 Oct worked.
NATIONAL_DAY_2026 = FixedWorkdays(
    holidays=frozenset(
        [date(2026, 9, 25)] + [date(2026, 10, d) for d in range(1, 8)]  # weekdays off
    ),
    workdays=frozenset({date(2026, 9, 20), date(2026, 10, 10)}),
)


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A time in Shanghai, as the aware UTC datetime the bot stores."""
    return datetime(year, month, day, hour, minute, tzinfo=ZONE).astimezone(UTC)


def local(moment: datetime) -> tuple[int, int, int, int, int]:
    shown = moment.astimezone(ZONE)
    return (shown.year, shown.month, shown.day, shown.hour, shown.minute)


@pytest.fixture(params=["official", "by-hand"])
def national_day(request: pytest.FixtureRequest) -> WorkingTime:
    """2026 from chinese_calendar, and the same schedule given by hand."""
    days = ChineseWorkdays() if request.param == "official" else NATIONAL_DAY_2026
    return WorkingTime(days, ZONE)


weekdays = WorkingTime(Weekdays(), ZONE)


# Weekends and working hours -------------------------------------------------------------------


def test_one_working_day_is_the_same_time_next_working_day() -> None:
    assert local(weekdays.add(at(2026, 11, 30, 10), DAY)) == (2026, 12, 1, 10, 0)


def test_across_a_weekend() -> None:
    friday = at(2026, 11, 27, 16)
    assert local(weekdays.add(friday, DAY)) == (2026, 11, 30, 16, 0)
    assert local(weekdays.add(friday, 7 * DAY)) == (2026, 12, 8, 16, 0)
    assert weekdays.between(friday, at(2026, 11, 30, 16)) == DAY


def test_saturday_counts_from_monday_morning() -> None:
    saturday = at(2026, 11, 28, 10)
    assert local(weekdays.add(saturday, DAY)) == (2026, 11, 30, 17, 30)
    assert local(weekdays.add(saturday, timedelta(hours=1))) == (2026, 11, 30, 9, 30)


def test_across_working_hour_boundaries() -> None:
    # 16:00 + 4 working hours: 1½ today, 2½ tomorrow from 08:30.
    assert local(weekdays.add(at(2026, 11, 30, 16), timedelta(hours=4))) == (2026, 12, 1, 11, 0)
    # Before opening and after closing count from the next opening.
    assert local(weekdays.add(at(2026, 11, 30, 7), DAY)) == (2026, 11, 30, 17, 30)
    assert local(weekdays.add(at(2026, 11, 30, 20), DAY)) == (2026, 12, 1, 17, 30)
    # Ending exactly at closing time is that day, not the next morning.
    assert local(weekdays.add(at(2026, 11, 30, 8, 30), DAY)) == (2026, 11, 30, 17, 30)
    assert weekdays.between(at(2026, 11, 30, 7), at(2026, 11, 30, 23)) == DAY


def test_subtract_mirrors_add() -> None:
    due = at(2026, 12, 1, 10)
    # 75% of a working day after Monday 10:00 is 2¼ working hours before the deadline.
    assert local(weekdays.subtract(due, DAY / 4)) == (2026, 11, 30, 16, 45)
    assert local(weekdays.add(at(2026, 11, 30, 10), DAY * 3 / 4)) == (2026, 11, 30, 16, 45)
    # Across a weekend, backwards: ½ h on Monday morning, 1½ h on Friday afternoon.
    monday = at(2026, 11, 30, 9)
    assert local(weekdays.subtract(monday, timedelta(hours=2))) == (2026, 11, 27, 16, 0)


def test_other_working_hours() -> None:
    short = WorkingTime(Weekdays(), ZONE, WorkingHours(time(9), time(12)))
    assert short.hours.length == timedelta(hours=3)
    assert local(short.add_days(at(2026, 11, 30, 11), 1)) == (2026, 12, 1, 11, 0)
    with pytest.raises(ValueError):
        WorkingHours(time(18), time(9))


def test_results_are_aware_utc_whole_seconds() -> None:
    due = weekdays.add(at(2026, 11, 30, 10), timedelta(hours=1, microseconds=700))
    assert due.tzinfo is UTC and due.microsecond == 0


# The Chinese calendar -------------------------------------------------------------------------


def test_national_day_holiday_and_its_make_up_saturday(national_day: WorkingTime) -> None:
    # Wednesday 30 Sep: the next working day is Thursday 8 Oct.
    last_day = at(2026, 9, 30, 10)
    assert local(national_day.add(last_day, DAY)) == (2026, 10, 8, 10, 0)
    # Seven working days: 8, 9, Saturday 10 (调休), 12, 13, 14, 15 October.
    assert local(national_day.add(last_day, 7 * DAY)) == (2026, 10, 15, 10, 0)
    # Without the make-up Saturday it would be a day later.
    assert local(weekdays.add(last_day, 7 * DAY)) == (2026, 10, 9, 10, 0)


def test_make_up_sunday_before_mid_autumn(national_day: WorkingTime) -> None:
    # Friday 18 Sep 16:00: Sunday 20 Sep is a working day (for the Mid-Autumn holiday).
    assert local(national_day.add(at(2026, 9, 18, 16), DAY)) == (2026, 9, 20, 16, 0)
    # Thursday 24 Sep 16:00: Friday 25 is Mid-Autumn, the weekend follows.
    assert local(national_day.add(at(2026, 9, 24, 16), DAY)) == (2026, 9, 28, 16, 0)


def test_official_2025_national_day() -> None:
    official = WorkingTime(ChineseWorkdays(), ZONE)
    # 2025: 1–8 October off; Sunday 28 Sep and Saturday 11 Oct worked.
    assert local(official.add(at(2025, 9, 26, 16), DAY)) == (2025, 9, 28, 16, 0)
    assert local(official.add(at(2025, 9, 30, 10), DAY)) == (2025, 10, 9, 10, 0)
    assert local(official.add(at(2025, 9, 30, 10), 2 * DAY)) == (2025, 10, 10, 10, 0)
    assert local(official.add(at(2025, 9, 30, 10), 3 * DAY)) == (2025, 10, 11, 10, 0)


def test_unknown_year_falls_back_to_weekdays_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    days = ChineseWorkdays()
    assert not days.covers(2100) and days.covers(2026)
    with caplog.at_level(logging.WARNING, logger="domain.calendar"):
        assert days.is_workday(date(2100, 1, 1))  # a Friday
        assert not days.is_workday(date(2100, 1, 2))
        assert days.is_workday(date(2100, 1, 4))
    warnings = [r for r in caplog.records if "2100" in r.getMessage()]
    assert len(warnings) == 1


def test_a_calendar_without_working_days_is_an_error() -> None:
    class Never:
        def is_workday(self, day: date) -> bool:
            return False

    with pytest.raises(CalendarError):
        WorkingTime(Never(), ZONE).add(at(2026, 11, 30, 10), DAY)


# Quiet hours ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hour", "minute", "released"),
    [
        (20, 59, None),
        (21, 0, (2026, 12, 1, 8, 0)),
        (23, 30, (2026, 12, 1, 8, 0)),
        (3, 0, (2026, 11, 30, 8, 0)),
        (7, 59, (2026, 11, 30, 8, 0)),
        (8, 0, None),
        (12, 0, None),
    ],
)
def test_quiet_hours_wait_until_morning(
    hour: int, minute: int, released: tuple[int, ...] | None
) -> None:
    moment = at(2026, 11, 30, hour, minute)
    result = QuietHours().release(moment, ZONE)
    assert (local(result) if result else None) == released


def test_quiet_hours_within_one_day_and_none() -> None:
    lunch = QuietHours(time(12), time(14))
    assert local(lunch.release(at(2026, 11, 30, 13), ZONE)) == (2026, 11, 30, 14, 0)  # type: ignore[arg-type]
    assert lunch.release(at(2026, 11, 30, 14), ZONE) is None
    assert QuietHours(time(0), time(0)).release(at(2026, 11, 30, 3), ZONE) is None


def test_parse_span() -> None:
    assert parse_span("08:30-17:30") == (time(8, 30), time(17, 30))
    assert parse_span("21:00–08:00") == (time(21), time(8))
    for bad in ("8-17", "25:00-08:00", "08:30"):
        with pytest.raises(ValueError):
            parse_span(bad)


# A paused clock -------------------------------------------------------------------------------


def test_pause_gives_back_the_working_time_that_was_left() -> None:
    due = at(2026, 12, 1, 10)  # Tuesday 10:00
    paused = at(2026, 11, 30, 16)  # Monday 16:00: 1½ h today + 1½ h tomorrow were left
    resumed = at(2026, 12, 2, 9)  # Wednesday 09:00
    assert local(resume_time(due, paused, resumed, weekdays)) == (2026, 12, 2, 12, 0)


def test_pause_over_a_weekend_and_overnight() -> None:
    due = at(2026, 11, 30, 10)  # Monday 10:00
    paused = at(2026, 11, 27, 17)  # Friday 17:00: ½ h Friday + 1½ h Monday left
    resumed = at(2026, 12, 2, 20)  # Wednesday evening: counts from Thursday 08:30
    assert local(resume_time(due, paused, resumed, weekdays)) == (2026, 12, 3, 10, 30)


def test_pause_around_the_clock() -> None:
    due = at(2026, 11, 30, 12)
    assert resume_time(due, at(2026, 11, 30, 11), at(2026, 11, 30, 15), None) == at(
        2026, 11, 30, 16
    )


def test_a_time_already_due_at_the_pause_is_due_on_resuming() -> None:
    due = at(2026, 11, 30, 10)
    resumed = at(2026, 11, 30, 15)
    assert resume_time(due, at(2026, 11, 30, 11), resumed, None) == resumed
    assert resume_time(due, at(2026, 11, 30, 11), resumed, weekdays) == resumed


def test_add_wall_rounds_to_seconds() -> None:
    moment = datetime(2026, 11, 30, 2, 0, 0, 999, tzinfo=UTC)
    assert add_wall(moment, timedelta(hours=1)) == datetime(2026, 11, 30, 3, tzinfo=UTC)
