"""Working-time arithmetic on the Chinese working calendar.

Pure functions of aware datetimes and a time zone; nothing here reads a clock or a database.

- Which days are working days is asked of a `DayCalendar`: `ChineseWorkdays` follows the State
  Council's yearly schedule (public holidays and the adjusted make-up working days, tiaoxiu) as the
  `chinese_calendar` package knows it, and falls back to Monday–Friday, with one warning per
  year, for a year the package does not cover yet; `FixedWorkdays` takes a holiday set by hand
  (tests, or a district with its own rest days).
- `WorkingTime` counts only working hours (default 08:30–17:30) on working days. One working day
  is the length of those hours, so "1 working day" from Monday 10:00 is Tuesday 10:00, and from
  Friday 16:00 the next Monday 16:00.
- `QuietHours` (default 21:00–08:00, across midnight) say when a message should wait for the
  morning.
- A paused clock resumes with the time that was left when it stopped: `resume_time`.

Every result is rounded down to the whole second, so stored due times compare cleanly.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

log = logging.getLogger(__name__)

# A calendar without a single working day in ten years is a configuration error, not a loop.
MAX_DAYS = 3660


class CalendarError(ValueError):
    """The calendar cannot answer (no working day in sight)."""


class DayCalendar(Protocol):
    def is_workday(self, day: date) -> bool: ...


@dataclass(frozen=True, slots=True)
class Weekdays:
    """Monday to Friday, every week of the year."""

    def is_workday(self, day: date) -> bool:
        return day.weekday() < 5


@dataclass(frozen=True, slots=True)
class FixedWorkdays:
    """Monday to Friday, less `holidays`, plus the make-up `workdays` (weekend days worked)."""

    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()

    def is_workday(self, day: date) -> bool:
        if day in self.workdays:
            return True
        return day.weekday() < 5 and day not in self.holidays


@dataclass(slots=True)
class ChineseWorkdays:
    """The official schedule from `chinese_calendar`; Monday–Friday for years it does not know.

    The package is updated each year after the State Council publishes the next year's
    holidays (usually in November); until then that year falls back, with one warning."""

    _warned: set[int] = field(default_factory=set)

    def is_workday(self, day: date) -> bool:
        import chinese_calendar

        try:
            return bool(chinese_calendar.is_workday(day))
        except NotImplementedError:
            if day.year not in self._warned:
                self._warned.add(day.year)
                log.warning(
                    "chinese_calendar has no holiday data for %s; counting Monday to Friday as "
                    "working days that year. Upgrade the chinesecalendar package when the "
                    "State Council's schedule is out.",
                    day.year,
                )
            return day.weekday() < 5

    def covers(self, year: int) -> bool:
        """Whether the package knows the official schedule of `year`."""
        import chinese_calendar

        try:
            chinese_calendar.is_workday(date(year, 6, 1))
        except NotImplementedError:
            return False
        return True


def _whole_seconds(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def parse_clock_time(text: str) -> time:
    """ "08:30" -> time(8, 30); "24:00" is not a time of day."""
    hours, sep, minutes = text.strip().partition(":")
    if not sep or not hours.isdigit() or not minutes.isdigit() or len(minutes) != 2:
        raise ValueError(f"{text!r} is not a time like 08:30")
    value = time(int(hours), int(minutes)) if int(hours) < 24 and int(minutes) < 60 else None
    if value is None:
        raise ValueError(f"{text!r} is not a time of day")
    return value


def parse_span(text: str) -> tuple[time, time]:
    """ "08:30-17:30" -> (08:30, 17:30)."""
    start, sep, end = text.replace("–", "-").partition("-")
    if not sep:
        raise ValueError(f"{text!r} is not a span like 08:30-17:30")
    return parse_clock_time(start), parse_clock_time(end)


@dataclass(frozen=True, slots=True)
class WorkingHours:
    start: time = time(8, 30)
    end: time = time(17, 30)

    def __post_init__(self) -> None:
        if not self.start < self.end:
            raise ValueError("working hours must start before they end, within one day")

    @property
    def length(self) -> timedelta:
        return datetime.combine(date.min, self.end) - datetime.combine(date.min, self.start)

    def window(self, day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
        return (
            datetime.combine(day, self.start, tzinfo=zone),
            datetime.combine(day, self.end, tzinfo=zone),
        )


@dataclass(frozen=True, slots=True)
class QuietHours:
    """Hours when messages that can wait do wait; `start` after `end` spans midnight."""

    start: time = time(21, 0)
    end: time = time(8, 0)

    def contains(self, local: time) -> bool:
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def release(self, moment: datetime, zone: ZoneInfo) -> datetime | None:
        """The end of the quiet period `moment` falls in (as UTC), or None outside one."""
        local = moment.astimezone(zone)
        if not self.contains(local.time().replace(tzinfo=None)):
            return None
        day = local.date()
        if local.time().replace(tzinfo=None) >= self.end:
            day += timedelta(days=1)
        return datetime.combine(day, self.end, tzinfo=zone).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class WorkingTime:
    """Counting time within working hours on working days, in one time zone."""

    days: DayCalendar
    zone: ZoneInfo
    hours: WorkingHours = field(default_factory=WorkingHours)

    def _windows_from(self, moment: datetime) -> Iterable[tuple[datetime, datetime]]:
        day = moment.astimezone(self.zone).date()
        for offset in range(MAX_DAYS):
            current = day + timedelta(days=offset)
            if self.days.is_workday(current):
                yield self.hours.window(current, self.zone)
        raise CalendarError(f"no working day within {MAX_DAYS} days of {day}")

    def _windows_back_from(self, moment: datetime) -> Iterable[tuple[datetime, datetime]]:
        day = moment.astimezone(self.zone).date()
        for offset in range(MAX_DAYS):
            current = day - timedelta(days=offset)
            if self.days.is_workday(current):
                yield self.hours.window(current, self.zone)
        raise CalendarError(f"no working day within {MAX_DAYS} days before {day}")

    def add(self, start: datetime, amount: timedelta) -> datetime:
        """The moment `amount` of working time after `start` (the earliest such moment)."""
        if amount < timedelta(0):
            return self.subtract(start, -amount)
        remaining = amount
        for opens, closes in self._windows_from(start):
            begin = max(start, opens)
            if begin >= closes:
                continue
            if remaining <= closes - begin:
                return _whole_seconds((begin + remaining).astimezone(UTC))
            remaining -= closes - begin
        raise AssertionError("unreachable")  # pragma: no cover

    def subtract(self, end: datetime, amount: timedelta) -> datetime:
        """The moment `amount` of working time before `end` (the latest such moment)."""
        if amount < timedelta(0):
            return self.add(end, -amount)
        remaining = amount
        for opens, closes in self._windows_back_from(end):
            finish = min(end, closes)
            if finish <= opens:
                continue
            if remaining <= finish - opens:
                return _whole_seconds((finish - remaining).astimezone(UTC))
            remaining -= finish - opens
        raise AssertionError("unreachable")  # pragma: no cover

    def between(self, start: datetime, end: datetime) -> timedelta:
        """Working time from `start` to `end` (zero if `end` is not after `start`)."""
        total = timedelta(0)
        if end <= start:
            return total
        for opens, closes in self._windows_from(start):
            if opens >= end:
                break
            overlap = min(closes, end) - max(opens, start)
            if overlap > timedelta(0):
                total += overlap
        return total

    def add_days(self, start: datetime, days: float) -> datetime:
        return self.add(start, self.hours.length * days)

    def is_working(self, moment: datetime) -> bool:
        local = moment.astimezone(self.zone)
        opens, closes = self.hours.window(local.date(), self.zone)
        return self.days.is_workday(local.date()) and opens <= local < closes


def add_wall(start: datetime, amount: timedelta) -> datetime:
    """Around-the-clock time: plain addition, rounded to the second like the working clock."""
    return _whole_seconds((start + amount).astimezone(UTC))


def resume_time(
    pending: datetime, paused_at: datetime, resumed_at: datetime, working: WorkingTime | None
) -> datetime:
    """Where a due time moves when its clock resumes: the time that was left at the pause,
    counted again from the resumption (working time if `working`, else around the clock).
    A time that was already due at the pause is due at once."""
    if working is None:
        return add_wall(resumed_at, max(pending - paused_at, timedelta(0)))
    return working.add(resumed_at, working.between(paused_at, pending))
