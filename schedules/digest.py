"""The morning digest: each community coordinator and town officer Huiyin can reach gets, once
a working day, what stands in their area — new requests, those due today, those overdue, and
those waiting for the resident's verdict, and (when there are any) the offers to volunteers
nobody has claimed for a day, each count with a few references — and who on their
team Huiyin cannot reach (has not opened it, or blocked it), with the first few names. Nothing
at all when all four counts are zero and everyone on the team can be reached. The district
admins get one too, but only on the working days when the working calendar's official data
runs out within CALENDAR_WARNING_DAYS: a warning to add next year's holidays.

The worker runs `send_digests` on an APScheduler cron at `HUIYIN_DIGEST_TIME` (08:30 by
default) every day, and once at start; the job itself decides:

- only on working days of the policy's calendar (the Chinese one, make-up working days (调休)
  included), from the digest time until the end of the working day — so a bot that was down
  at 08:30 catches up when it starts, but not in the evening;
- a run within MORNING_WINDOW (an hour) of the digest time is the morning digest ("☀️ Good
  morning…"); a catch-up later in the day is titled with the time it goes out;
- only to reachable people (`domain.reach.reachable_clause`): Telegram would refuse the
  others;
- exactly once per person per working day, even across restarts and with two workers: the
  digest is recorded in `digest_deliveries` (primary key: person and day) in the same
  transaction as its outbox row. The transaction first takes the person's roster row (on
  SQLite, the database's write lock), so a second worker waits and then finds the record;
  the record is inserted with ON CONFLICT DO NOTHING, so even without that wait a second one
  sends nothing. (Someone who had nothing to hear at the digest time has no record; a
  catch-up run later that day sends them one if there is now something, and that is then
  their one digest of the day.)

Quiet hours do not apply: this goes to staff, in their working day.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, func, or_, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.areas import Area, area_of
from domain.calendar import MAX_DAYS, DayCalendar
from domain.claim_figures import unclaimed_offers
from domain.clock import Clock
from domain.deadlines import Policy
from domain.i18n import Translator
from domain.labels import format_time, unit_label
from domain.lifecycle import HELD_STATUSES, Status
from domain.messages import Outbound
from domain.metrics import conditions
from domain.outbox import enqueue
from domain.reach import is_reachable, reachable_clause
from handlers.base import escape
from handlers.cards import staff_translator
from handlers.team import OutOfReach, out_of_reach, out_of_reach_lines, team_clause
from storage.database import Database
from storage.models import DigestDelivery, Request, Staff, Unit, format_reference

log = logging.getLogger(__name__)

DIGEST_ROLES = ("coordinator", "town_officer")
# Admins hear only the calendar warning, and only when it is due (see `calendar_runs_out`).
CALENDAR_ROLES = ("admin",)
MAX_REFERENCES = 5
# A run this long after the digest time is still the morning digest; later, a catch-up.
MORNING_WINDOW = timedelta(hours=1)
# Admins are warned when the working calendar's official data ends this many days ahead or less.
CALENDAR_WARNING_DAYS = 60


def digest_key(day: date) -> str:
    return f"digest:{day.isoformat()}"


@dataclass(frozen=True, slots=True)
class Count:
    """How many, and the references of the first few."""

    total: int
    references: list[str]


@dataclass(frozen=True, slots=True)
class Digest:
    new: Count
    due_today: Count
    overdue: Count
    awaiting_verdict: Count
    # Offered to volunteers, and nobody has claimed them for a day (domain.claim_figures).
    unclaimed: Count = Count(0, [])

    @property
    def empty(self) -> bool:
        """All counts are zero (who cannot be reached is `OutOfReach.empty`)."""
        return not (
            self.new.total
            or self.due_today.total
            or self.overdue.total
            or self.awaiting_verdict.total
            or self.unclaimed.total
        )


@dataclass
class DigestReport:
    """What one run did: the staff ids sent a digest, and why a run sent nothing."""

    sent: list[int] = field(default_factory=list)
    already: list[int] = field(default_factory=list)  # had today's digest
    nothing: list[int] = field(default_factory=list)  # nothing to say (see the module's doc)
    skipped: str = ""  # "rest day", "too early", "too late" for a run that looked at no one
    morning: bool = False  # the morning digest (not a catch-up later in the day)


def calendar_runs_out(days: DayCalendar, today: date) -> date | None:
    """The last day of the working calendar's official data, when that is CALENDAR_WARNING_DAYS
    away or less (or past): the day the admins are warned about. None: nothing to warn of."""
    until = days.covered_until()
    if until is None or (until - today).days > CALENDAR_WARNING_DAYS:
        return None
    return until


def previous_workday(day: date, days: DayCalendar) -> date:
    for offset in range(1, MAX_DAYS):
        candidate = day - timedelta(days=offset)
        if days.is_workday(candidate):
            return candidate
    return day - timedelta(days=1)


async def count(
    session: AsyncSession, area: Area, condition: ColumnElement[bool], order: ColumnElement[object]
) -> Count:
    where = and_(area.clause(), condition)
    total = (await session.exec(select(func.count()).select_from(Request).where(where))).one()
    rows = await session.exec(
        select(Request.id).where(where).order_by(order, col(Request.id)).limit(MAX_REFERENCES)
    )
    return Count(int(total), [format_reference(rid) for rid in rows.all() if rid])


async def area_digest(
    session: AsyncSession, area: Area, since: datetime, now: datetime, day_end: datetime
) -> Digest:
    """The four counts for `area` at `now`; "new" counts what came in since `since`, "due
    today" what falls due from now until `day_end` (local midnight)."""
    # "New" and "overdue" are the figures of docs/metrics.md, so the digest and /stats agree.
    figure = conditions(now)
    running = and_(
        col(Request.status).in_(sorted(s.value for s in HELD_STATUSES)),
        col(Request.paused_at).is_(None),
    )
    due_soon = or_(
        and_(col(Request.accept_due_at) > now, col(Request.accept_due_at) < day_end),
        and_(col(Request.resolve_due_at) > now, col(Request.resolve_due_at) < day_end),
    )
    return Digest(
        new=await count(
            session,
            area,
            and_(
                col(Request.created_at) >= since,
                col(Request.created_at) <= now,
                figure["received"],
            ),
            col(Request.created_at),
        ),
        due_today=await count(session, area, and_(running, due_soon), col(Request.next_due_at)),
        overdue=await count(session, area, figure["overdue"], col(Request.next_due_at)),
        awaiting_verdict=await count(
            session, area, col(Request.status) == Status.RESOLVED.value, col(Request.resolved_at)
        ),
        unclaimed=Count(*await unclaimed_offers(session, area.clause(), now)),
    )


def digest_text(
    t: Translator,
    place: str,
    since: str,
    digest: Digest,
    unreached: OutOfReach | None = None,
    *,
    at: str | None = None,
) -> str:
    """The digest's text; `at` (the local time, HH:MM) titles a catch-up run later in the day
    instead of "good morning"."""

    def line(label: str, part: Count) -> str:
        if not part.total:
            return f"{label}: 0"
        shown = ", ".join(part.references)
        more = part.total - len(part.references)
        if more > 0:
            shown += " " + t._("and {count} more", count=more)
        return f"{label}: <b>{part.total}</b> — {shown}"

    if at is None:
        title = t._("☀️ Good morning. Where things stand in {place}:", place=escape(place))
    else:
        title = t._("📋 Where things stand in {place} at {time}:", place=escape(place), time=at)
    lines = [
        title,
        line(t._("🆕 New since {time}", time=since), digest.new),
        line(t._("📅 Due today"), digest.due_today),
        line(t._("⏰ Overdue"), digest.overdue),
        line(t._("⭐ Waiting for the resident's verdict"), digest.awaiting_verdict),
    ]
    if digest.unclaimed.total:
        lines.append(line(t._("📣 Offered, unclaimed for a day"), digest.unclaimed))
    if unreached is not None:
        lines += out_of_reach_lines(t, unreached)
    return "\n".join(lines)


def calendar_text(t: Translator, until: date, today: date) -> str:
    if until < today:
        return t._(
            "📅 The working calendar ran out on {date}: since then only Monday–Friday count. "
            "Add this year's official holidays (HUIYIN_CALENDAR_FILE, see docs/calendar.md).",
            date=until.isoformat(),
        )
    return t._(
        "📅 The working calendar runs out on {date}: from then on only Monday–Friday count. "
        "Add next year's official holidays (HUIYIN_CALENDAR_FILE, see docs/calendar.md).",
        date=until.isoformat(),
    )


async def _lock(session: AsyncSession, person: Staff, *, sqlite: bool) -> None:
    """Hold the person's roster row (SQLite: the write lock) for the transaction, so a second
    worker waits here and then finds the record of the digest the first one sent."""
    if sqlite:
        await session.exec(text("UPDATE staff SET id = id WHERE 0"))  # type: ignore[call-overload]
    else:
        await session.exec(select(Staff.id).where(Staff.id == person.id).with_for_update())


async def record_delivery(session: AsyncSession, person_id: int, day: date, now: datetime) -> bool:
    """Record today's digest for the person; False if it was recorded already (by another
    worker: the primary key decides, whatever the timing)."""
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    result = await session.exec(
        insert(DigestDelivery)  # type: ignore[call-overload]
        .values(staff_id=person_id, day=day, sent_at=now)
        .on_conflict_do_nothing(index_elements=["staff_id", "day"])
    )
    return bool(result.rowcount)


@dataclass(frozen=True, slots=True)
class Run:
    """What every digest of one run shares."""

    now: datetime
    today: date
    since: datetime
    day_end: datetime
    zone: ZoneInfo
    morning: bool
    runs_out: date | None  # the calendar warning for admins, when it is due


async def compose(session: AsyncSession, person: Staff, run: Run) -> str | None:
    """What `person` is told today, or None when there is nothing to say."""
    t = await staff_translator(session, person)
    if person.role in CALENDAR_ROLES:
        return calendar_text(t, run.runs_out, run.today) if run.runs_out is not None else None
    area = await area_of(session, person)
    team = await team_clause(session, person, area)
    if area is None or team is None:
        return None
    digest = await area_digest(session, area, run.since, run.now, run.day_end)
    unreached = await out_of_reach(session, team)
    if digest.empty and unreached.empty:
        return None
    place = unit_label(t, await session.get(Unit, person.unit_code))
    at = None if run.morning else run.now.astimezone(run.zone).strftime("%H:%M")
    return digest_text(t, place, format_time(run.since, run.zone), digest, unreached, at=at)


async def digest_for(db: Database, person: Staff, run: Run, report: DigestReport) -> None:
    assert person.id is not None
    async with db.transaction() as session:
        await _lock(session, person, sqlite=db.url.startswith("sqlite"))
        if await session.get(DigestDelivery, (person.id, run.today)) is not None:
            report.already.append(person.id)
            return
        # Read again under the lock: Telegram may have refused them since the run began.
        current = await session.get(Staff, person.id, populate_existing=True)
        if current is None or not current.active or not is_reachable(current):
            return
        assert current.telegram_id is not None
        message = await compose(session, current, run)
        if message is None:
            report.nothing.append(person.id)
            return
        if not await record_delivery(session, person.id, run.today, run.now):
            report.already.append(person.id)
            return
        key = digest_key(run.today)
        enqueue(session, Outbound(chat_id=current.telegram_id, text=message, ref=key), run.now)
        report.sent.append(person.id)


async def send_digests(
    db: Database, clock: Clock, zone: ZoneInfo, policy: Policy, at: time
) -> DigestReport:
    """Send today's digest to everyone who should have it and has not yet."""
    now = clock.now()
    local = now.astimezone(zone)
    today = local.date()
    report = DigestReport()
    if not policy.days.is_workday(today):
        report.skipped = "rest day"
        return report
    if local.time() < at:
        report.skipped = "too early"
        return report
    if local.time() >= policy.working_hours.end:
        report.skipped = "too late"
        return report
    digest_time = datetime.combine(today, at, tzinfo=zone)
    report.morning = local < digest_time + MORNING_WINDOW
    runs_out = calendar_runs_out(policy.days, today)
    run = Run(
        now=now,
        today=today,
        since=datetime.combine(previous_workday(today, policy.days), at, tzinfo=zone),
        day_end=datetime.combine(today + timedelta(days=1), time(0), tzinfo=zone),
        zone=zone,
        morning=report.morning,
        runs_out=runs_out,
    )
    roles = DIGEST_ROLES + (CALENDAR_ROLES if runs_out is not None else ())
    async with db.session() as session:
        people = (
            await session.exec(
                select(Staff)
                .where(col(Staff.role).in_(roles), col(Staff.active).is_(True))
                .where(reachable_clause())
                .order_by(col(Staff.id))
            )
        ).all()
    for person in people:
        try:
            await digest_for(db, person, run, report)
        except Exception:
            log.exception("digest for staff %s failed; the next run tries again", person.id)
    return report
