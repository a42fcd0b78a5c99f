"""The morning digest: each community coordinator and town officer on Telegram gets, once a
working day, what stands in their area — new requests, those due today, those overdue, and
those waiting for the resident's verdict — each count with a few references. Nothing at all
when all four are zero.

The worker runs `send_digests` on an APScheduler cron at `HUIYIN_DIGEST_TIME` (08:30 by
default) every day, and once at start; the job itself decides:

- only on working days of the policy's calendar (the Chinese one, make-up working days (调休)
  included), from the digest time until the end of the working day — so a bot that was down
  at 08:30 catches up when it starts, but not in the evening;
- exactly once per person per day, even across restarts and with two workers: the digest is
  an outbox row with `ref_key` "digest:<YYYY-MM-DD>", written in a transaction that first
  locks the person's roster row (on SQLite, the database's write lock) and skips them if the
  row for today is there already. (Someone who had nothing to hear at the digest time has no
  row; a catch-up run after a restart later that morning sends them one if there is now
  something, and that is then their one digest of the day.)

Quiet hours do not apply: this goes to staff, at the start of their working day.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, func, or_, text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.channels.types import Outbound
from bot.clock import Clock
from bot.domain.areas import Area, area_of
from bot.domain.calendar import MAX_DAYS, DayCalendar
from bot.domain.deadlines import Policy
from bot.domain.lifecycle import HELD_STATUSES, Status
from bot.domain.metrics import conditions
from bot.i18n import Translator
from handlers.cards import staff_translator
from handlers.common import format_time, unit_label
from storage.database import Database
from storage.models import OutboxMessage, Request, Staff, Unit, format_reference
from storage.outbox import enqueue

log = logging.getLogger(__name__)

DIGEST_ROLES = ("coordinator", "town_officer")
MAX_REFERENCES = 5


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

    @property
    def empty(self) -> bool:
        return not (
            self.new.total
            or self.due_today.total
            or self.overdue.total
            or self.awaiting_verdict.total
        )


@dataclass
class DigestReport:
    """What one run did: the staff ids sent a digest, and why a run sent nothing."""

    sent: list[int] = field(default_factory=list)
    already: list[int] = field(default_factory=list)  # had today's digest
    nothing: list[int] = field(default_factory=list)  # all four counts zero
    skipped: str = ""  # "rest day", "too early", "too late" for a run that looked at no one


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
    )


def digest_text(t: Translator, place: str, since: str, digest: Digest) -> str:
    def line(label: str, part: Count) -> str:
        if not part.total:
            return f"{label}: 0"
        shown = ", ".join(part.references)
        more = part.total - len(part.references)
        if more > 0:
            shown += " " + t._("and {count} more", count=more)
        return f"{label}: <b>{part.total}</b> — {shown}"

    return "\n".join(
        [
            t._("☀️ Good morning. Where things stand in {place}:", place=place),
            line(t._("🆕 New since {time}", time=since), digest.new),
            line(t._("📅 Due today"), digest.due_today),
            line(t._("⏰ Overdue"), digest.overdue),
            line(t._("⭐ Waiting for the resident's verdict"), digest.awaiting_verdict),
        ]
    )


async def _lock(session: AsyncSession, person: Staff, *, sqlite: bool) -> None:
    """Hold the person's roster row (SQLite: the write lock) for the transaction, so a second
    worker waits here and then sees the digest the first one wrote."""
    if sqlite:
        await session.exec(text("UPDATE staff SET id = id WHERE 0"))  # type: ignore[call-overload]
    else:
        await session.exec(select(Staff.id).where(Staff.id == person.id).with_for_update())


async def digest_for(
    db: Database,
    person: Staff,
    *,
    now: datetime,
    since: datetime,
    day_end: datetime,
    key: str,
    zone: ZoneInfo,
    report: DigestReport,
) -> None:
    assert person.id is not None and person.telegram_id is not None
    async with db.transaction() as session:
        await _lock(session, person, sqlite=db.url.startswith("sqlite"))
        done = await session.exec(
            select(OutboxMessage.id).where(
                OutboxMessage.chat_id == person.telegram_id, OutboxMessage.ref_key == key
            )
        )
        if done.first() is not None:
            report.already.append(person.id)
            return
        area = await area_of(session, person)
        if area is None:
            return
        digest = await area_digest(session, area, since, now, day_end)
        if digest.empty:
            report.nothing.append(person.id)
            return
        t = await staff_translator(session, person)
        place = unit_label(t, await session.get(Unit, person.unit_code))
        text_ = digest_text(t, place, format_time(since, zone), digest)
        enqueue(session, Outbound(chat_id=person.telegram_id, text=text_, ref=key), now)
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
    since = datetime.combine(previous_workday(today, policy.days), at, tzinfo=zone)
    day_end = datetime.combine(today + timedelta(days=1), time(0), tzinfo=zone)
    async with db.session() as session:
        people = (
            await session.exec(
                select(Staff)
                .where(col(Staff.role).in_(DIGEST_ROLES), col(Staff.active).is_(True))
                .where(col(Staff.telegram_id).is_not(None))
                .order_by(col(Staff.id))
            )
        ).all()
    for person in people:
        try:
            await digest_for(
                db,
                person,
                now=now,
                since=since,
                day_end=day_end,
                key=digest_key(today),
                zone=zone,
                report=report,
            )
        except Exception:
            log.exception("digest for staff %s failed; the next run tries again", person.id)
    return report
