"""The deadline policy, and the deadline columns of a request that follow from it.

Every open request carries two clocks that start when its current owner gets it:

    accept  — until the owner accepts it   (assigned only; stops on accept)
    resolve — until the owner resolves it  (assigned and in progress; pauses while the request
              waits on the resident's answer)

How long each clock runs depends on the priority (urgent, normal, complex) and may be changed per
category. A span written in hours or minutes runs around the clock; one written in working days
or working hours counts only the working hours of working days (`domain.calendar`).

Before each deadline the owner is reminded (default at 75% of the allowed time, and for urgent
requests also one hour before); when it passes the sweep (`schedules.sweep`) escalates the
request one level up, where both clocks start again for the new owner.

The columns, all on `requests`:

    level_assigned_at         when the current owner got it (the clocks' start)
    accept_due_at             the accept deadline (None when that clock is not running)
    accept_remind_at          the accept clock's next reminder (None when none is left)
    accept_reminder_stage     how many of the accept clock's reminders are behind it
    resolve_due_at / resolve_remind_at / resolve_reminder_stage   the same for resolving
    paused_at                 set while the request waits on the resident
    next_due_at               the earliest of the four times above, None while paused: the one
                              column the sweep looks at (indexed)

The policy comes from the defaults below, changed by a TOML file named by HUIYIN_POLICY_FILE
(see README, "Deadlines and escalation"); `load_policy` validates it with readable messages.
The district's own official calendar (HUIYIN_CALENDAR_FILE, docs/calendar.md) reaches the
policy as `official`, feeding the Chinese calendar whether or not there is a policy file.
"""

from __future__ import annotations

import logging
import re
import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from domain.calendar import (
    ChineseWorkdays,
    DayCalendar,
    FixedWorkdays,
    OfficialDays,
    QuietHours,
    Weekdays,
    WorkingHours,
    WorkingTime,
    add_wall,
    parse_span,
    resume_time,
)
from domain.catalog import CATEGORY_BY_CODE, CATEGORY_CODES
from domain.lifecycle import Status
from storage.models import Request

log = logging.getLogger(__name__)

URGENT, NORMAL, COMPLEX = "urgent", "normal", "complex"
PRIORITIES: tuple[str, ...] = (URGENT, NORMAL, COMPLEX)
Priority = Literal["urgent", "normal", "complex"]
ClockName = Literal["accept", "resolve"]
CLOCKS: tuple[ClockName, ...] = ("accept", "resolve")

# Reminders closer together than this are one reminder.
REMINDER_TOLERANCE = timedelta(minutes=1)


class PolicyError(ValueError):
    """A policy file that cannot be used; the message has one line per problem."""


# Spans and reminders ----------------------------------------------------------------------------

SPAN_PATTERN = re.compile(
    r"^\s*(?P<amount>\d+(?:\.\d+)?)\s*(?P<working>working\s+)?(?P<unit>[a-z]+)\s*$", re.IGNORECASE
)
UNIT_HOURS: dict[str, float] = {
    **dict.fromkeys(("minute", "minutes", "min", "mins"), 1 / 60),
    **dict.fromkeys(("hour", "hours", "h"), 1.0),
    **dict.fromkeys(("day", "days", "d"), 24.0),
}
DAY_UNITS = frozenset({"day", "days", "d"})
SPAN_HELP = "write it like '1 hour', '30 minutes', '4 working hours' or '7 working days'"


@dataclass(frozen=True, slots=True)
class Span:
    """An allowed time: `working` spans count working time; others run around the clock.

    `amount` of a working span is in working time, a working day being the length of the
    working hours (9 hours by default), so it is kept as a number of hours or days."""

    text: str
    working: bool
    hours: float = 0.0  # for wall spans and "working hours"
    working_days: float = 0.0  # for "working days"

    def duration(self, hours: WorkingHours) -> timedelta:
        """The span as an amount of (working or wall) time."""
        return timedelta(hours=self.hours) + hours.length * self.working_days


def parse_duration(text: str) -> Span:
    match = SPAN_PATTERN.match(text)
    unit = match["unit"].lower() if match else ""
    if match is None or unit not in UNIT_HOURS:
        raise ValueError(f"{text!r} is not a time span; {SPAN_HELP}")
    amount = float(match["amount"])
    if amount <= 0:
        raise ValueError(f"{text!r} must be longer than zero")
    working = bool(match["working"])
    if working and unit in DAY_UNITS:
        return Span(text=text.strip(), working=True, working_days=amount)
    return Span(text=text.strip(), working=working, hours=amount * UNIT_HOURS[unit])


@dataclass(frozen=True, slots=True)
class Reminder:
    """ "75%": at that share of the allowed time; "1 hour before": that long before the deadline
    (counted on the deadline's own clock: working time for a working-day deadline)."""

    text: str
    fraction: float | None = None
    before_hours: float | None = None

    def lead(self, span: Span, hours: WorkingHours) -> timedelta:
        """How long before the deadline this reminder goes out."""
        if self.fraction is not None:
            return span.duration(hours) * (1 - self.fraction)
        return timedelta(hours=self.before_hours or 0)


REMINDER_PATTERN = re.compile(r"^\s*(?P<percent>\d+(?:\.\d+)?)\s*%\s*$")
BEFORE_PATTERN = re.compile(r"^\s*(?P<span>.+?)\s+before\s*$", re.IGNORECASE)


def parse_reminder(text: str) -> Reminder:
    percent = REMINDER_PATTERN.match(text)
    if percent is not None:
        share = float(percent["percent"]) / 100
        if not 0 < share < 1:
            raise ValueError(f"{text!r}: a share of the allowed time must be between 0% and 100%")
        return Reminder(text=text.strip(), fraction=share)
    before = BEFORE_PATTERN.match(text)
    if before is not None:
        span = parse_duration(before["span"])
        if span.working_days:
            raise ValueError(f"{text!r}: say it in hours or minutes (e.g. '2 hours before')")
        return Reminder(text=text.strip(), before_hours=span.hours)
    raise ValueError(f"{text!r} is not a reminder; write '75%' or '1 hour before'")


@dataclass(frozen=True, slots=True)
class Clocks:
    accept_within: Span
    resolve_within: Span
    reminders: tuple[Reminder, ...]

    def span(self, clock: ClockName) -> Span:
        return self.accept_within if clock == "accept" else self.resolve_within


DEFAULT_CLOCKS: dict[str, Clocks] = {
    URGENT: Clocks(
        parse_duration("1 hour"),
        parse_duration("24 hours"),
        (parse_reminder("75%"), parse_reminder("1 hour before")),
    ),
    NORMAL: Clocks(
        parse_duration("1 working day"), parse_duration("7 working days"), (parse_reminder("75%"),)
    ),
    COMPLEX: Clocks(
        parse_duration("1 working day"), parse_duration("15 working days"), (parse_reminder("75%"),)
    ),
}


# The file ---------------------------------------------------------------------------------------


class ClocksFile(BaseModel):
    """A [priorities.X] or [categories.C.X] table: any of the three keys."""

    model_config = ConfigDict(extra="forbid")

    accept_within: str | None = None
    resolve_within: str | None = None
    reminders: list[str] | None = None

    @field_validator("accept_within", "resolve_within")
    @classmethod
    def _span(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @field_validator("reminders")
    @classmethod
    def _reminders(cls, value: list[str] | None) -> list[str] | None:
        for text in value or []:
            parse_reminder(text)
        return value


class CategoryFile(BaseModel):
    """A [categories.C] table: its default priority, and clocks per priority."""

    model_config = ConfigDict(extra="forbid")

    priority: Priority | None = None
    urgent: ClocksFile | None = None
    normal: ClocksFile | None = None
    complex: ClocksFile | None = None


class VerdictFile(BaseModel):
    """The [verdict] table: when the resident is asked, reminded, and the request closes."""

    model_config = ConfigDict(extra="forbid")

    ask_after: str = "1 hour"
    remind_after: str = "24 hours"
    close_after: str = "72 hours"

    @field_validator("ask_after", "remind_after", "close_after")
    @classmethod
    def _wall_span(cls, value: str) -> str:
        if parse_duration(value).working:
            raise ValueError(f"{value!r}: say it in hours or minutes (e.g. '72 hours')")
        return value


@dataclass(frozen=True, slots=True)
class VerdictTimes:
    """After resolution: ask after `ask_after`; after asking, remind after `remind_after` and
    close as not rated after `close_after` (never asked or reminded in quiet hours)."""

    ask_after: timedelta = timedelta(hours=1)
    remind_after: timedelta = timedelta(hours=24)
    close_after: timedelta = timedelta(hours=72)


class PolicyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    working_hours: str = "08:30-17:30"
    quiet_hours: str = "21:00-08:00"
    calendar: Literal["chinese", "weekdays"] = "chinese"
    holidays: list[date] = []
    workdays: list[date] = []
    priorities: dict[Priority, ClocksFile] = {}
    categories: dict[str, CategoryFile] = {}
    verdict: VerdictFile = VerdictFile()

    @field_validator("working_hours")
    @classmethod
    def _working_hours(cls, value: str) -> str:
        start, end = parse_span(value)
        WorkingHours(start, end)
        return value

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_hours(cls, value: str) -> str:
        parse_span(value)
        return value

    @field_validator("categories")
    @classmethod
    def _known_categories(cls, value: dict[str, CategoryFile]) -> dict[str, CategoryFile]:
        unknown = sorted(set(value) - CATEGORY_CODES)
        if unknown:
            raise ValueError(
                f"unknown categories {', '.join(unknown)} "
                f"(known: {', '.join(sorted(CATEGORY_CODES))})"
            )
        return value


# The policy -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    working_hours: WorkingHours = field(default_factory=WorkingHours)
    quiet_hours: QuietHours = field(default_factory=QuietHours)
    days: DayCalendar = field(default_factory=ChineseWorkdays)
    priorities: dict[str, Clocks] = field(default_factory=lambda: dict(DEFAULT_CLOCKS))
    category_priority: dict[str, str] = field(default_factory=dict)
    overrides: dict[tuple[str, str], Clocks] = field(default_factory=dict)
    verdict: VerdictTimes = field(default_factory=VerdictTimes)
    source: str = "defaults"

    def priority_for(self, category: str) -> str:
        """The priority a new request in `category` starts with (safety: urgent)."""
        if category in self.category_priority:
            return self.category_priority[category]
        known = CATEGORY_BY_CODE.get(category)
        return URGENT if known is not None and known.urgent else NORMAL

    def clocks(self, category: str, priority: str) -> Clocks:
        return self.overrides.get(
            (category, priority), self.priorities.get(priority, self.priorities[NORMAL])
        )

    def working(self, zone: ZoneInfo) -> WorkingTime:
        return WorkingTime(self.days, zone, self.working_hours)

    def hold_until(self, now: datetime, zone: ZoneInfo, *, urgent: bool) -> datetime | None:
        """When a message that can wait should go out: the end of quiet hours, or None (now).
        Messages about urgent requests never wait."""
        return None if urgent else self.quiet_hours.release(now, zone)


DEFAULT_POLICY = Policy()


def _merge(base: Clocks, change: ClocksFile | None) -> Clocks:
    if change is None:
        return base
    return Clocks(
        parse_duration(change.accept_within) if change.accept_within else base.accept_within,
        parse_duration(change.resolve_within) if change.resolve_within else base.resolve_within,
        tuple(parse_reminder(r) for r in change.reminders)
        if change.reminders is not None
        else base.reminders,
    )


def policy_from(
    data: dict[str, Any], source: str = "file", official: OfficialDays | None = None
) -> Policy:
    """Build a policy from parsed TOML; raise PolicyError naming each bad key.

    `official` is the district's calendar file: it comes before the `chinese_calendar` package
    on the Chinese calendar. A policy that chose "weekdays" has said it wants no official
    calendar, so the file is left out then (with a warning, as the two settings disagree)."""
    try:
        parsed = PolicyFile.model_validate(data)
    except ValidationError as error:
        lines = []
        for problem in error.errors():
            where = ".".join(str(part) for part in problem["loc"]) or "(file)"
            message = str(problem["msg"]).removeprefix("Value error, ")
            if problem["type"] == "extra_forbidden":
                message = "unknown key"
            lines.append(f"{where}: {message}")
        raise PolicyError("\n".join(lines)) from None
    priorities = {
        name: _merge(DEFAULT_CLOCKS[name], parsed.priorities.get(name))  # type: ignore[call-overload]
        for name in PRIORITIES
    }
    overrides: dict[tuple[str, str], Clocks] = {}
    category_priority: dict[str, str] = {}
    for code, category in parsed.categories.items():
        if category.priority is not None:
            category_priority[code] = category.priority
        for name in PRIORITIES:
            change = getattr(category, name)
            if change is not None:
                overrides[(code, name)] = _merge(priorities[name], change)
    if parsed.calendar == "weekdays" and official is not None:
        log.warning(
            "The policy's calendar is 'weekdays', so the official calendar in %s is not used",
            official.source,
        )
    base_days: DayCalendar = (
        ChineseWorkdays(extra=official) if parsed.calendar == "chinese" else Weekdays()
    )
    days: DayCalendar = base_days
    if parsed.holidays or parsed.workdays:
        days = _Adjusted(base_days, frozenset(parsed.holidays), frozenset(parsed.workdays))
    return Policy(
        working_hours=WorkingHours(*parse_span(parsed.working_hours)),
        quiet_hours=QuietHours(*parse_span(parsed.quiet_hours)),
        days=days,
        priorities=priorities,
        category_priority=category_priority,
        overrides=overrides,
        verdict=VerdictTimes(
            *(
                timedelta(hours=parse_duration(text).hours)
                for text in (
                    parsed.verdict.ask_after,
                    parsed.verdict.remind_after,
                    parsed.verdict.close_after,
                )
            )
        ),
        source=source,
    )


@dataclass(frozen=True, slots=True)
class _Adjusted:
    """A calendar with local rest days and extra working days on top."""

    base: DayCalendar
    holidays: frozenset[date]
    workdays: frozenset[date]

    def is_workday(self, day: date) -> bool:
        if day in self.workdays:
            return True
        return day not in self.holidays and self.base.is_workday(day)

    def covered_until(self) -> date | None:
        """The base calendar's: local rest days are given by hand and run out of nothing."""
        return self.base.covered_until()


def load_policy(path: Path, official: OfficialDays | None = None) -> Policy:
    """Read and validate a policy file; PolicyError says what is wrong, one line per problem.
    `official` is the district's calendar file, if there is one (`policy_from`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise PolicyError(f"{path} cannot be read: {error.strerror or error}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise PolicyError(f"{path} is not valid TOML: {error}") from None
    try:
        return policy_from(data, source=str(path), official=official)
    except PolicyError as error:
        raise PolicyError(f"{path}:\n  " + str(error).replace("\n", "\n  ")) from None


def fixed_policy(holidays: set[date] | None = None, workdays: set[date] | None = None) -> Policy:
    """The default policy on a calendar given by hand (tests, demos)."""
    return Policy(
        days=FixedWorkdays(frozenset(holidays or ()), frozenset(workdays or ())),
        source="fixed",
    )


# Deadline columns of a request --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClockTimes:
    due: datetime
    remind_at: datetime | None
    stage: int


def _time_after(start: datetime, span: Span, policy: Policy, zone: ZoneInfo) -> datetime:
    if span.working:
        return policy.working(zone).add(start, span.duration(policy.working_hours))
    return add_wall(start, span.duration(policy.working_hours))


def _time_before(
    end: datetime, lead: timedelta, span: Span, policy: Policy, zone: ZoneInfo
) -> datetime:
    if span.working:
        return policy.working(zone).subtract(end, lead)
    return add_wall(end, -lead)


def reminder_leads(clocks: Clocks, clock: ClockName, policy: Policy) -> list[timedelta]:
    """How long before the deadline each reminder goes, the earliest reminder first."""
    span = clocks.span(clock)
    leads = {r.lead(span, policy.working_hours) for r in clocks.reminders}
    return sorted((lead for lead in leads if lead > timedelta(0)), reverse=True)


def next_reminder(
    due: datetime,
    clocks: Clocks,
    clock: ClockName,
    policy: Policy,
    zone: ZoneInfo,
    *,
    stage: int,
    after: datetime,
) -> tuple[datetime | None, int]:
    """The first reminder from `stage` on that falls after `after` (reminders that are already
    behind are passed over, not sent late), and its stage."""
    span = clocks.span(clock)
    leads = reminder_leads(clocks, clock, policy)
    while stage < len(leads):
        moment = _time_before(due, leads[stage], span, policy, zone)
        if moment > after and moment < due - REMINDER_TOLERANCE:
            return moment, stage
        stage += 1
    return None, stage


def clock_times(
    start: datetime, clocks: Clocks, clock: ClockName, policy: Policy, zone: ZoneInfo
) -> ClockTimes:
    due = _time_after(start, clocks.span(clock), policy, zone)
    remind_at, stage = next_reminder(due, clocks, clock, policy, zone, stage=0, after=start)
    return ClockTimes(due, remind_at, stage)


def refresh_next_due(request: Request) -> None:
    """Keep `next_due_at` (what the sweep looks at) the earliest pending time: a clock of an
    open request, or the verdict step of a resolved one (`domain.verdicts`)."""
    if request.status == Status.RESOLVED:
        request.next_due_at = request.verdict_due_at
        return
    if request.status not in (Status.ASSIGNED, Status.IN_PROGRESS) or request.paused_at:
        request.next_due_at = None
        return
    pending = [
        moment
        for moment in (
            request.accept_remind_at,
            request.accept_due_at,
            request.resolve_remind_at,
            request.resolve_due_at,
        )
        if moment is not None
    ]
    request.next_due_at = min(pending) if pending else None


def _set_clock(request: Request, clock: ClockName, times: ClockTimes | None) -> None:
    setattr(request, f"{clock}_due_at", times.due if times else None)
    setattr(request, f"{clock}_remind_at", times.remind_at if times else None)
    setattr(request, f"{clock}_reminder_stage", times.stage if times else 0)


def start_clocks(request: Request, now: datetime, zone: ZoneInfo, policy: Policy) -> None:
    """A new owner (or level) has the request: its clocks start now."""
    clocks = policy.clocks(request.category, request.priority)
    request.level_assigned_at = now
    request.paused_at = None
    accepting = request.status == Status.ASSIGNED
    _set_clock(
        request, "accept", clock_times(now, clocks, "accept", policy, zone) if accepting else None
    )
    if request.respond_by is None and request.accept_due_at is not None:
        request.respond_by = request.accept_due_at  # the response rate's deadline: the first one
    _set_clock(request, "resolve", clock_times(now, clocks, "resolve", policy, zone))
    refresh_next_due(request)


def restart_clock(
    request: Request, clock: ClockName, now: datetime, zone: ZoneInfo, policy: Policy
) -> None:
    """The clock runs again in full from `now` (at the top of the ladder, after a breach)."""
    clocks = policy.clocks(request.category, request.priority)
    _set_clock(request, clock, clock_times(now, clocks, clock, policy, zone))
    refresh_next_due(request)


def stop_accept_clock(request: Request) -> None:
    _set_clock(request, "accept", None)
    refresh_next_due(request)


def stop_clocks(request: Request) -> None:
    _set_clock(request, "accept", None)
    _set_clock(request, "resolve", None)
    request.paused_at = None
    request.next_due_at = None


def change_priority(
    request: Request, priority: str, now: datetime, zone: ZoneInfo, policy: Policy
) -> None:
    """Re-time the running clocks for a new priority, counted from the owner's start.

    A request marked urgent never gets more time than it had: each deadline becomes the
    earlier of the old one and the urgent one counted from now. "Complex" (set on accepting)
    gives the resolve clock the complex allowance from the owner's start."""
    request.priority = priority
    clocks = policy.clocks(request.category, priority)
    start = request.level_assigned_at or now
    for clock in CLOCKS:
        due: datetime | None = getattr(request, f"{clock}_due_at")
        if due is None:
            continue
        if priority == URGENT:
            new_due = min(due, _time_after(now, clocks.span(clock), policy, zone))
        else:
            new_due = _time_after(start, clocks.span(clock), policy, zone)
        remind_at, stage = next_reminder(new_due, clocks, clock, policy, zone, stage=0, after=now)
        _set_clock(request, clock, ClockTimes(new_due, remind_at, stage))
    refresh_next_due(request)


def pause_clocks(request: Request, now: datetime) -> None:
    """The request waits on the resident: its clocks stand still until `resume_clocks`."""
    if request.paused_at is None:
        request.paused_at = now
    refresh_next_due(request)


def resume_clocks(request: Request, now: datetime, zone: ZoneInfo, policy: Policy) -> None:
    """The resident answered: each running clock gets back the time it had left."""
    paused_at = request.paused_at
    if paused_at is None:
        return
    clocks = policy.clocks(request.category, request.priority)
    for clock in CLOCKS:
        span = clocks.span(clock)
        working = policy.working(zone) if span.working else None
        for column in (f"{clock}_due_at", f"{clock}_remind_at"):
            pending = getattr(request, column)
            if pending is not None:
                setattr(request, column, resume_time(pending, paused_at, now, working))
    request.paused_at = None
    refresh_next_due(request)


def breached_clock(request: Request, now: datetime) -> ClockName | None:
    """The clock whose deadline has passed, if any (accepting first)."""
    if request.paused_at is not None:
        return None
    if request.accept_due_at is not None and request.accept_due_at <= now:
        return "accept"
    if request.resolve_due_at is not None and request.resolve_due_at <= now:
        return "resolve"
    return None


def mark_missed(request: Request, clock: ClockName, now: datetime) -> None:
    """A deadline passed: the request is overdue from then until the round of work ends (an
    escalation gives the next holder fresh clocks, but the resident is still waiting)."""
    if request.overdue_since is None:
        due = request.accept_due_at if clock == "accept" else request.resolve_due_at
        request.overdue_since = due or now


def due_reminders(request: Request, now: datetime) -> list[ClockName]:
    if request.paused_at is not None:
        return []
    due: list[ClockName] = []
    if request.accept_remind_at is not None and request.accept_remind_at <= now:
        due.append("accept")
    if request.resolve_remind_at is not None and request.resolve_remind_at <= now:
        due.append("resolve")
    return due


def reminder_done(
    request: Request, clock: ClockName, now: datetime, zone: ZoneInfo, policy: Policy
) -> None:
    """The clock's due reminder went out (or was passed over): move on to the next one."""
    due = getattr(request, f"{clock}_due_at")
    stage = getattr(request, f"{clock}_reminder_stage") + 1
    remind_at = None
    if due is not None:
        clocks = policy.clocks(request.category, request.priority)
        remind_at, stage = next_reminder(due, clocks, clock, policy, zone, stage=stage, after=now)
    setattr(request, f"{clock}_remind_at", remind_at)
    setattr(request, f"{clock}_reminder_stage", stage)
    refresh_next_due(request)
