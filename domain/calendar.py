"""Working-time arithmetic on the Chinese working calendar.

Pure functions of aware datetimes and a time zone; nothing here reads a clock or a database.

- Which days are working days is asked of a `DayCalendar`: `ChineseWorkdays` follows the State
  Council's yearly schedule (public holidays and the adjusted make-up working days, tiaoxiu) as the
  `chinese_calendar` package knows it, and falls back to Monday–Friday, with one warning per
  year, for a year the package does not cover yet; `FixedWorkdays` takes a holiday set by hand
  (tests, or a district with its own rest days).
- `OfficialDays` is the district's own copy of the State Council's notice for years the package
  does not know yet (HUIYIN_CALENDAR_FILE, CSV or iCal, read by `load_official_days`); given to
  `ChineseWorkdays(extra=...)` it comes before the package (docs/calendar.md).
- `DayCalendar.covered_until()` says when the official data runs out, so the morning digest can
  warn the admins before requests start being timed on Monday–Friday alone.
- `WorkingTime` counts only working hours (default 08:30–17:30) on working days. One working day
  is the length of those hours, so "1 working day" from Monday 10:00 is Tuesday 10:00, and from
  Friday 16:00 the next Monday 16:00.
- `QuietHours` (default 21:00–08:00, across midnight) say when a message should wait for the
  morning.
- A paused clock resumes with the time that was left when it stopped: `resume_time`.

Every result is rounded down to the whole second, so stored due times compare cleanly.
"""

from __future__ import annotations

import csv
import functools
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Literal, NamedTuple, Protocol
from zoneinfo import ZoneInfo

log = logging.getLogger(__name__)

# A calendar without a single working day in ten years is a configuration error, not a loop.
MAX_DAYS = 3660


class CalendarError(ValueError):
    """The calendar cannot answer (no working day in sight)."""


class DayCalendar(Protocol):
    def is_workday(self, day: date) -> bool: ...

    def covered_until(self) -> date | None:
        """The last day the calendar has official data for (after it, Monday–Friday is a guess),
        or None when it has nothing that can run out (a fixed rule such as Monday–Friday)."""
        ...


@dataclass(frozen=True, slots=True)
class Weekdays:
    """Monday to Friday, every week of the year."""

    def is_workday(self, day: date) -> bool:
        return day.weekday() < 5

    def covered_until(self) -> date | None:
        """A rule, not data: it never runs out."""
        return None


@dataclass(frozen=True, slots=True)
class FixedWorkdays:
    """Monday to Friday, less `holidays`, plus the make-up `workdays` (weekend days worked)."""

    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()

    def is_workday(self, day: date) -> bool:
        if day in self.workdays:
            return True
        return day.weekday() < 5 and day not in self.holidays

    def covered_until(self) -> date | None:
        """Given by hand for the dates that matter to its user: nothing to run out."""
        return None


# The district's own official calendar ------------------------------------------------------------

DayKind = Literal["holiday", "workday"]
HOLIDAY: DayKind = "holiday"
WORKDAY: DayKind = "workday"
WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# An official holiday is at most 8-9 days; a longer iCal event is a typo in DTEND, not a holiday.
MAX_EVENT_DAYS = 31
# The character ban (as in 补班, 上班): how iCal holiday feeds mark a make-up working day.
WORKDAY_MARK = "\u73ed"
WORKDAY_WORDS = re.compile(r"workday|make[- ]?up", re.IGNORECASE)
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ICAL_DATE = re.compile(r"^\d{8}$")
ICAL_DURATION = re.compile(r"^P(?:(?P<weeks>\d+)W|(?P<days>\d+)D)$", re.IGNORECASE)
CSV_HELP = "write date,kind,name, e.g. 2027-02-05,holiday,Spring Festival"


class CalendarFileError(ValueError):
    """A calendar file that cannot be used; the message has one line per problem, by line."""


@dataclass(frozen=True, slots=True)
class OfficialDays:
    """The State Council's holidays and make-up working days (tiaoxiu) as a district copied them
    from the yearly notice, for years the `chinese_calendar` package does not know yet.

    A year with at least one entry is *covered*: the notice lists every holiday and make-up day
    of its year, so any other day of that year is a working day exactly when it is Monday to
    Friday. Years without an entry are left to the package."""

    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()
    names: Mapping[date, str] = field(default_factory=dict, compare=False, hash=False)
    source: str = "given"
    years: frozenset[int] = field(init=False, default=frozenset())

    def __post_init__(self) -> None:
        # Asked on every is_workday call, so computed once rather than on each question.
        object.__setattr__(
            self, "years", frozenset(day.year for day in self.holidays | self.workdays)
        )

    def covers(self, year: int) -> bool:
        """Whether the file speaks for `year` (and so decides every day of it)."""
        return year in self.years

    def answer(self, day: date) -> bool | None:
        """Whether `day` is a working day by the file, or None when its year is not covered."""
        if day.year not in self.years:
            return None
        if day in self.workdays:
            return True
        return day.weekday() < 5 and day not in self.holidays

    def name(self, day: date) -> str | None:
        """The name the file gives `day` (e.g. the festival), if any."""
        return self.names.get(day) or None


class _Entry(NamedTuple):
    day: date
    kind: DayKind
    name: str
    line: int


def _lines(text: str) -> list[str]:
    # Not str.splitlines(): it also breaks at form feeds and Unicode separators, which would
    # put the line numbers in the messages out of step with what an editor shows.
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _csv_entries(text: str, problems: list[tuple[int, str]]) -> list[_Entry]:
    entries: list[_Entry] = []
    header_seen = False
    for number, raw in enumerate(_lines(text), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = [value.strip() for value in next(csv.reader([line]))]
        if not header_seen:
            header_seen = True
            if [value.lower() for value in fields] in (["date", "kind"], ["date", "kind", "name"]):
                continue
            problems.append((number, "the first line must be the header date,kind,name"))
            if not ISO_DATE.match(fields[0]):
                continue  # a wrong header, not a first day without one
        if len(fields) < 2 or len(fields) > 3:
            problems.append(
                (
                    number,
                    f"{len(fields)} fields; {CSV_HELP} (a name with a comma goes in double quotes)",
                )
            )
            continue
        day_text, kind_text = fields[0], fields[1].lower()
        name = fields[2] if len(fields) == 3 else ""
        day = _iso_date(day_text)
        if day is None:
            problems.append((number, f"{day_text!r} is not a date; write it as YYYY-MM-DD"))
        if kind_text not in (HOLIDAY, WORKDAY):
            problems.append((number, f"unknown kind {fields[1]!r}; write holiday or workday"))
            continue
        if day is not None:
            entries.append(_Entry(day, HOLIDAY if kind_text == HOLIDAY else WORKDAY, name, number))
    return entries


def _iso_date(text: str) -> date | None:
    # date.fromisoformat alone would also take 20270205 and 2027-W05-5.
    if not ISO_DATE.match(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _ical_date(text: str) -> date | None:
    if not ICAL_DATE.match(text):
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def _unfold(text: str) -> list[tuple[int, str]]:
    """iCal content lines with folded continuations (a leading space or tab) joined back, each
    with the number of the line it starts on (RFC 5545, 3.1)."""
    logical: list[tuple[int, str]] = []
    for number, raw in enumerate(_lines(text), start=1):
        if raw[:1] in (" ", "\t") and logical:
            first, content = logical[-1]
            logical[-1] = (first, content + raw[1:])
        elif raw.strip():
            logical.append((number, raw))
    return logical


def _property(line: str) -> tuple[str, dict[str, str], str]:
    """NAME;PARAM=VALUE:value -> (NAME, {PARAM: VALUE}, value); a colon in quotes is not the end."""
    quoted = False
    split = -1
    for index, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == ":" and not quoted:
            split = index
            break
    if split < 0:
        return line.strip().upper(), {}, ""
    name, *parameters = line[:split].split(";")
    params: dict[str, str] = {}
    for parameter in parameters:
        key, _, value = parameter.partition("=")
        params[key.strip().upper()] = value.strip().strip('"').upper()
    return name.strip().upper(), params, line[split + 1 :].strip()


def _unescape(text: str) -> str:
    """An iCal text value as written: backslash-comma, -semicolon, -backslash and -n undone
    (RFC 5545, 3.3.11), so a summary reads as the festival's name."""
    return re.sub(r"\\(.)", lambda m: "\n" if m[1] in "nN" else m[1], text)


def _event_entries(
    event: dict[str, tuple[int, dict[str, str], str]], begin: int, problems: list[tuple[int, str]]
) -> list[_Entry]:
    if event.get("STATUS", (0, {}, ""))[2].upper() == "CANCELLED":
        return []
    for repeat in ("RRULE", "RDATE"):
        if repeat in event:
            problems.append(
                (
                    event[repeat][0],
                    f"{repeat}: repeating events are not expanded; give each "
                    "holiday or make-up day its own event",
                )
            )
            return []
    if "DTSTART" not in event:
        problems.append((begin, "an event without DTSTART"))
        return []
    line, _, value = event["DTSTART"]
    start = _ical_date(value)
    if start is None:
        what = "a time, not a whole day" if "T" in value.upper() else "not a date"
        problems.append((line, f"DTSTART {value!r} is {what}; write DTSTART;VALUE=DATE:YYYYMMDD"))
        return []
    days = 1
    if "DTEND" in event:
        end_line, _, end_value = event["DTEND"]
        end = _ical_date(end_value)
        if end is None:
            problems.append(
                (end_line, f"DTEND {end_value!r} is not a day; write DTEND;VALUE=DATE:YYYYMMDD")
            )
            return []
        days = (end - start).days
        if days < 1:
            problems.append(
                (end_line, f"DTEND {end} is not after DTSTART {start} (it is exclusive)")
            )
            return []
    elif "DURATION" in event:
        duration_line, _, duration = event["DURATION"]
        match = ICAL_DURATION.match(duration)
        if match is None or int(match["weeks"] or match["days"]) < 1:
            problems.append((duration_line, f"DURATION {duration!r}: write it in days, e.g. P3D"))
            return []
        days = int(match["days"]) if match["days"] else 7 * int(match["weeks"])
    if days > MAX_EVENT_DAYS:
        problems.append(
            (
                line,
                f"the event from {start} lasts {days} days; no official holiday is that long "
                "(check DTEND, which is the day after the last one)",
            )
        )
        return []
    summary = _unescape(event.get("SUMMARY", (0, {}, ""))[2]).strip()
    workday = WORKDAY_MARK in summary or WORKDAY_WORDS.search(summary) is not None
    kind: DayKind = WORKDAY if workday else HOLIDAY
    return [_Entry(start + timedelta(days=n), kind, summary, line) for n in range(days)]


def _ical_entries(text: str, problems: list[tuple[int, str]]) -> list[_Entry]:
    entries: list[_Entry] = []
    event: dict[str, tuple[int, dict[str, str], str]] | None = None
    begin = 0
    nested = 0  # components inside the event (VALARM) whose properties are not the event's
    for number, line in _unfold(text):
        name, params, value = _property(line)
        if name == "BEGIN":
            if event is not None:
                nested += 1
            elif value.upper() == "VEVENT":
                event, begin, nested = {}, number, 0
        elif name == "END" and event is not None:
            if nested:
                nested -= 1
            else:
                entries += _event_entries(event, begin, problems)
                event = None
        elif event is not None and not nested:
            event.setdefault(name, (number, params, value))
    if event is not None:
        problems.append((begin, "the event is not closed with END:VEVENT"))
    return entries


def _checked(entries: list[_Entry], problems: list[tuple[int, str]], source: str) -> OfficialDays:
    """The rules both formats share; raises with every problem, in line order."""
    seen: dict[date, _Entry] = {}
    first_of_year: dict[int, _Entry] = {}
    for entry in entries:
        first_of_year.setdefault(entry.day.year, entry)
        if entry.kind == WORKDAY and entry.day.weekday() < 5:
            problems.append(
                (
                    entry.line,
                    f"{entry.day} is a {WEEKDAY_NAMES[entry.day.weekday()]}: a make-up working "
                    "day (tiaoxiu) is always a Saturday or Sunday",
                )
            )
            continue
        before = seen.get(entry.day)
        if before is None:
            seen[entry.day] = entry
        elif before.kind != entry.kind:
            problems.append(
                (
                    entry.line,
                    f"{entry.day} is a {entry.kind} here but a {before.kind} on line {before.line}",
                )
            )
    for year, first in sorted(first_of_year.items()):
        if not any(e.kind == HOLIDAY and e.day.year == year for e in seen.values()):
            problems.append(
                (
                    first.line,
                    f"{year} has make-up working days but no holidays; a year in the file must "
                    "list all its holidays from the State Council's notice",
                )
            )
    if not entries and not problems:
        problems.append((0, "the file lists no days"))
    if problems:
        lines = [
            f"line {number}: {message}" if number else message
            for number, message in sorted(problems, key=lambda p: p[0])
        ]
        raise CalendarFileError(f"{source}:\n  " + "\n  ".join(lines))
    return OfficialDays(
        holidays=frozenset(d for d, e in seen.items() if e.kind == HOLIDAY),
        workdays=frozenset(d for d, e in seen.items() if e.kind == WORKDAY),
        names={d: e.name for d, e in seen.items() if e.name},
        source=source,
    )


def is_ical(text: str, path: Path | None = None) -> bool:
    """An .ics file, or any file that starts like one."""
    if path is not None and path.suffix.lower() in (".ics", ".ical"):
        return True
    return text.lstrip().upper().startswith("BEGIN:VCALENDAR")


def official_days_from(text: str, source: str = "calendar", *, ical: bool = False) -> OfficialDays:
    """Parse a calendar file's text (CSV, or iCal if `ical`); CalendarFileError lists each
    problem with its line number."""
    problems: list[tuple[int, str]] = []
    text = text.removeprefix("\ufeff")  # the byte order mark Windows editors put first
    entries = _ical_entries(text, problems) if ical else _csv_entries(text, problems)
    return _checked(entries, problems, source)


def load_official_days(path: Path) -> OfficialDays:
    """Read and check a district's calendar file, once per version of the file: the settings
    check it at start and build the policy from it again later, and both get the same result."""
    try:
        status = path.stat()
    except OSError as error:
        raise CalendarFileError(f"{path} cannot be read: {error.strerror or error}") from None
    return _load_official_days(path, status.st_mtime_ns, status.st_size)


@functools.lru_cache(maxsize=8)
def _load_official_days(path: Path, mtime_ns: int, size: int) -> OfficialDays:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CalendarFileError(f"{path} cannot be read: {error.strerror or error}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Excel on a Chinese Windows saves "CSV" in GBK; the dates and kinds are ASCII either
        # way, and GB 18030 (a superset of GBK) reads the festival names right.
        text = data.decode("gb18030", errors="replace")
    official = official_days_from(text, str(path), ical=is_ical(text, path))
    _warn_about_package_years(official)
    return official


def _warn_about_package_years(official: OfficialDays) -> None:
    """A covered year replaces the package's data for it; say so when the two disagree, since a
    file that lists only part of a year the package knows is more likely a mistake."""
    import chinese_calendar

    for year in sorted(official.years):
        differ: list[date] = []
        day = date(year, 1, 1)
        while day.year == year:
            try:
                package = bool(chinese_calendar.is_workday(day))
            except NotImplementedError:
                break
            if package != official.answer(day):
                differ.append(day)
            day += timedelta(days=1)
        if differ:
            log.warning(
                "%s covers %s, which the chinesecalendar package knows too; the file wins, and "
                "the two disagree on %d days (first %s)",
                official.source,
                year,
                len(differ),
                differ[0],
            )


@functools.cache
def package_years() -> tuple[int, int] | None:
    """The first and last year the installed `chinese_calendar` has official data for.

    Read from its holiday table (the same bound its own `is_workday` checks), and if that table
    is ever not there, found by asking it about 1 June of successive years."""
    import chinese_calendar

    table = getattr(chinese_calendar, "holidays", None)
    if isinstance(table, Mapping):
        years = [key.year for key in table if isinstance(key, date)]
        if years:
            return min(years), max(years)
    known: list[int] = []
    for year in range(2000, 2200):
        try:
            chinese_calendar.is_workday(date(year, 6, 1))
        except NotImplementedError:
            if known:
                break
            continue
        known.append(year)
    return (known[0], known[-1]) if known else None


@dataclass(slots=True)
class ChineseWorkdays:
    """The official schedule: the district's `extra` file first, then `chinese_calendar`, then
    Monday–Friday for years neither knows.

    The package is updated each year after the State Council publishes the next year's
    holidays (usually in November), but not always in time (1.11 stops at 2026), so a district
    may copy the notice into its own file; a year with neither falls back, with one warning."""

    extra: OfficialDays | None = None
    _warned: set[int] = field(default_factory=set)
    # Each day's answer, once asked: the package checks a day against the range of dates it
    # knows by taking the min and max of all of them, 60 µs a call, and an escalation's
    # deadlines asked about 17 days (issue 14).
    _answers: dict[date, bool] = field(default_factory=dict)

    def is_workday(self, day: date) -> bool:
        answer = self._answers.get(day)
        if answer is None:
            answer = self._answers[day] = self._is_workday(day)
        return answer

    def _is_workday(self, day: date) -> bool:
        if self.extra is not None:
            answer = self.extra.answer(day)
            if answer is not None:
                return answer
        import chinese_calendar

        try:
            return bool(chinese_calendar.is_workday(day))
        except NotImplementedError:
            if day.year not in self._warned:
                self._warned.add(day.year)
                log.warning(
                    "Neither the chinesecalendar package nor HUIYIN_CALENDAR_FILE has the "
                    "official holidays of %s; counting Monday to Friday as working days that "
                    "year. Add the State Council's schedule to the calendar file, or upgrade "
                    "the package once it has the year.",
                    day.year,
                )
            return day.weekday() < 5

    def covers(self, year: int) -> bool:
        """Whether the file or the package knows the official schedule of `year`."""
        if self.extra is not None and self.extra.covers(year):
            return True
        known = package_years()
        return known is not None and known[0] <= year <= known[1]

    def covered_until(self) -> date | None:
        """31 December of the last year with official data, from the package's last year on
        through the file's years that follow it without a gap (a missing year in between is
        where Monday–Friday would start, so that is where the data runs out)."""
        file_years = self.extra.years if self.extra is not None else frozenset()
        known = package_years()
        if known is not None:
            last = known[1]
        elif file_years:
            last = min(file_years) - 1
        else:
            return None
        while last + 1 in file_years:
            last += 1
        return date(last, 12, 31)


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
