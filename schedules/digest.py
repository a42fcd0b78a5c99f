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
  transaction as its outbox row. The transaction first takes the people's roster rows (on
  SQLite, the database's write lock), so a second worker waits and then finds the records;
  the records are inserted with ON CONFLICT DO NOTHING, so even without that wait a second one
  sends nothing. (Someone who had nothing to hear at the digest time has no record; a
  catch-up run later that day sends them one if there is now something, and that is then
  their one digest of the day.)

Quiet hours do not apply: this goes to staff, in their working day.

A run costs a few statements, not a few per person (a district has some 660 recipients): one
reads the recipients with their languages and today's records; a handful read every grid's
figures and every unit's unreached staff at once (`district_figures`), from which each area's
digest is summed in memory; then each transaction locks, records and enqueues BATCH digests.
People with nothing to hear cost nothing more.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, and_, func, or_, text
from sqlalchemy import select as sql_select  # rows, where sqlmodel's gives scalars
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.calendar import MAX_DAYS, DayCalendar
from domain.claim_figures import UNCLAIMED_AFTER
from domain.claims import ClaimState
from domain.clock import Clock
from domain.deadlines import Policy
from domain.i18n import Translator, translator
from domain.labels import format_time, unit_label
from domain.lifecycle import HELD_STATUSES, Level, Status
from domain.messages import Outbound
from domain.metrics import conditions
from domain.outbox import enqueue
from domain.reach import not_opened_clause, reachable_clause, refused_clause
from handlers.base import escape
from handlers.team import MAX_NAMES, Names, OutOfReach, out_of_reach_lines
from storage.database import Database
from storage.models import (
    Account,
    Claim,
    DigestDelivery,
    Request,
    Staff,
    Unit,
    format_reference,
)
from storage.roster_cache import all_units

log = logging.getLogger(__name__)

DIGEST_ROLES = ("coordinator", "town_officer")
# Admins hear only the calendar warning, and only when it is due (see `calendar_runs_out`).
CALENDAR_ROLES = ("admin",)
MAX_REFERENCES = 5
# A run this long after the digest time is still the morning digest; later, a catch-up.
MORNING_WINDOW = timedelta(hours=1)
# Admins are warned when the working calendar's official data ends this many days ahead or less.
CALENDAR_WARNING_DAYS = 60
# The units whose staff oversee an area (domain.areas.area_of_unit).
AREA_LEVELS = (Level.DISTRICT.value, Level.TOWN.value, Level.COMMUNITY.value)
# Who can be on a coordinator's or town officer's team (handlers.team.team_clause).
TEAM_ROLES = ("grid_member", "coordinator")
# Digests locked, recorded and enqueued in one transaction (a short hold of SQLite's write lock).
BATCH = 50


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


# What everyone's area holds, read for the whole district at once -----------------------------
#
# A digest's counts are sums over its area's grids (a community's, a town's), and its first few
# references are among the first few of each of those grids. So each figure is one statement
# for every grid of the district: per grid, how many, and its first MAX_REFERENCES rows in the
# figure's order, each with its place in that order across the district (the database orders,
# so its NULL placement and collation are kept); an area's count is then a sum, and its
# references the first few of its grids' rows by that place. The same for who cannot be reached,
# per unit and role. A morning is a handful of statements, whatever the number of people.


@dataclass(frozen=True, slots=True)
class Ranked:
    """One of the first few rows of a group: its place in the order across all groups."""

    place: int
    label: str


@dataclass
class Groups:
    """A figure per group (a grid; a unit and role): how many, and the first few rows."""

    totals: dict[Any, int] = field(default_factory=dict)
    first: dict[Any, list[Ranked]] = field(default_factory=dict)

    def over(self, keys: Iterable[Any] | None, limit: int) -> tuple[int, list[str]]:
        """The figure of the groups `keys` together (None: all of them)."""
        chosen = list(self.totals) if keys is None else [k for k in keys if k in self.totals]
        rows = sorted((row for key in chosen for row in self.first[key]), key=_place)
        return sum(self.totals[key] for key in chosen), [row.label for row in rows[:limit]]


def _place(row: Ranked) -> int:
    return row.place


async def grouped(
    session: AsyncSession,
    source: Select[Any],
    group: Sequence[ColumnElement[Any]],
    order: Sequence[ColumnElement[Any]],
    label: ColumnElement[Any],
    shown: Callable[[Any], str],
    limit: int,
) -> Groups:
    """For the rows `source` selects: per value of `group` (a tuple when it is several
    columns), how many, and the `limit` first by `order`, each `shown` from its `label` with
    its place in `order` across all groups. One statement (window functions)."""
    keys = [expression.label(f"key{i}") for i, expression in enumerate(group)]
    inner = (
        source.with_only_columns(
            *keys,
            label.label("label"),
            func.row_number().over(order_by=order).label("place"),
            func.row_number().over(partition_by=group, order_by=order).label("rank"),
            func.count().over(partition_by=group).label("total"),
        )
    ).subquery()
    rows = await session.exec(sql_select(inner).where(inner.c.rank <= limit))
    groups = Groups()
    for row in rows.all():
        key = row[0] if len(keys) == 1 else tuple(row[: len(keys)])
        groups.totals[key] = int(row.total)
        groups.first.setdefault(key, []).append(Ranked(int(row.place), shown(row.label)))
    return groups


async def request_figure(
    session: AsyncSession, condition: ColumnElement[bool], order: ColumnElement[object]
) -> Groups:
    """A figure of the digest over `requests`, per grid (references ordered by `order`)."""
    return await grouped(
        session,
        select(Request.id).where(condition),
        [col(Request.grid_code)],
        [order, col(Request.id)],
        col(Request.id),
        format_reference,
        MAX_REFERENCES,
    )


@dataclass
class District:
    """Every figure a morning's digests need, for the whole district."""

    new: Groups
    due_today: Groups
    overdue: Groups
    awaiting_verdict: Groups
    unclaimed: Groups
    not_opened: Groups  # keyed (unit code, role)
    refused: Groups

    def digest(self, grids: Sequence[str] | None) -> Digest:
        """The digest of the area of `grids` (None: the whole district)."""

        def part(groups: Groups) -> Count:
            return Count(*groups.over(grids, MAX_REFERENCES))

        return Digest(
            new=part(self.new),
            due_today=part(self.due_today),
            overdue=part(self.overdue),
            awaiting_verdict=part(self.awaiting_verdict),
            unclaimed=part(self.unclaimed),
        )

    def out_of_reach(self, team: Sequence[tuple[str, str]]) -> OutOfReach:
        return OutOfReach(
            not_opened=Names(*self.not_opened.over(team, MAX_NAMES)),
            refused=Names(*self.refused.over(team, MAX_NAMES)),
        )


async def district_figures(session: AsyncSession, run: Run) -> District:
    """The digest's figures for every grid (requests, offers) and every unit (staff), at
    `run.now`; "new" counts what came in since `run.since`, "due today" what falls due from now
    until `run.day_end` (local midnight)."""
    now = run.now
    # "New" and "overdue" are the figures of docs/metrics.md, so the digest and /stats agree.
    figure = conditions(now)
    running = and_(
        col(Request.status).in_(sorted(s.value for s in HELD_STATUSES)),
        col(Request.paused_at).is_(None),
    )
    due_soon = or_(
        and_(col(Request.accept_due_at) > now, col(Request.accept_due_at) < run.day_end),
        and_(col(Request.resolve_due_at) > now, col(Request.resolve_due_at) < run.day_end),
    )
    new = and_(col(Request.created_at) >= run.since, col(Request.created_at) <= now)
    unclaimed = (
        select(Claim.id)
        .join(Request, col(Request.id) == col(Claim.request_id))
        .where(
            col(Claim.state) == ClaimState.OFFERED.value,
            col(Claim.offered_at) <= now - UNCLAIMED_AFTER,
        )
    )
    # The staff who can be on someone's team (team_clause: grid members, coordinators), per
    # unit and role, in /team's order (unit, name).
    team = and_(col(Staff.active).is_(True), col(Staff.role).in_(TEAM_ROLES))

    async def unreached(condition: ColumnElement[bool]) -> Groups:
        return await grouped(
            session,
            select(Staff.id).where(team, condition),
            [col(Staff.unit_code), col(Staff.role)],
            [col(Staff.unit_code), col(Staff.name), col(Staff.id)],
            col(Staff.name),
            str,
            MAX_NAMES,
        )

    return District(
        new=await request_figure(session, and_(new, figure["received"]), col(Request.created_at)),
        due_today=await request_figure(session, and_(running, due_soon), col(Request.next_due_at)),
        overdue=await request_figure(session, figure["overdue"], col(Request.next_due_at)),
        awaiting_verdict=await request_figure(
            session, col(Request.status) == Status.RESOLVED.value, col(Request.resolved_at)
        ),
        unclaimed=await grouped(
            session,
            unclaimed,
            [col(Request.grid_code)],
            [col(Claim.offered_at), col(Claim.id)],
            col(Claim.request_id),
            format_reference,
            MAX_REFERENCES,
        ),
        not_opened=await unreached(not_opened_clause()),
        refused=await unreached(refused_clause()),
    )


# Who gets one, what they are told, and sending it exactly once --------------------------------


@dataclass(frozen=True, slots=True)
class Recipient:
    """Someone a run may write to, as read at its start."""

    id: int
    role: str
    unit_code: str
    language: str  # their account's ("zh_CN" without one)
    already: bool  # today's digest is recorded


async def recipients(session: AsyncSession, roles: Sequence[str], today: date) -> list[Recipient]:
    """The active, reachable staff of `roles`, each with their account's language and whether
    they had today's digest: one statement."""
    rows = await session.exec(
        select(  # type: ignore[call-overload]
            Staff.id, Staff.role, Staff.unit_code, Account.language, DigestDelivery.staff_id
        )
        .outerjoin(Account, col(Account.telegram_id) == col(Staff.telegram_id))
        .outerjoin(
            DigestDelivery,
            and_(col(DigestDelivery.staff_id) == col(Staff.id), col(DigestDelivery.day) == today),
        )
        .where(col(Staff.role).in_(roles), col(Staff.active).is_(True), reachable_clause())
        .order_by(col(Staff.id))
    )
    return [
        Recipient(staff_id, role, unit_code, language or "zh_CN", recorded is not None)
        for staff_id, role, unit_code, language, recorded in rows.all()
    ]


class Tree:
    """The roster's units (from the roster cache), to find each person's area in memory."""

    def __init__(self, units: Sequence[Unit]) -> None:
        self.units = {unit.code: unit for unit in units}
        self.children: dict[str | None, list[Unit]] = {}
        for unit in units:
            self.children.setdefault(unit.parent_code, []).append(unit)

    def below(self, code: str) -> list[Unit]:
        found: list[Unit] = []
        frontier = [code]
        while frontier:
            rows = [child for parent in frontier for child in self.children.get(parent, [])]
            found.extend(rows)
            frontier = [unit.code for unit in rows]
        return found

    def area(self, person: Recipient) -> tuple[list[str] | None, list[tuple[str, str]]] | None:
        """The grids of the person's area (None: the whole district) and their team as (unit,
        role) pairs, as `domain.areas.area_of` and `handlers.team.team_clause` define them;
        None for someone with no area."""
        unit = self.units.get(person.unit_code)
        if unit is None or unit.level not in AREA_LEVELS:
            return None
        below = self.below(unit.code)
        if unit.level == Level.DISTRICT.value:  # every grid; no grid member is on the team
            grids: list[str] | None = None
            team: list[tuple[str, str]] = []
        else:
            grids = [u.code for u in below if u.level == Level.GRID.value]
            team = [(grid, "grid_member") for grid in grids]
        if person.role == "town_officer":
            team += [(u.code, "coordinator") for u in below if u.level == Level.COMMUNITY.value]
        return grids, team


def compose(person: Recipient, run: Run, tree: Tree, district: District | None) -> str | None:
    """What `person` is told today, or None when there is nothing to say."""
    t = translator(person.language)
    if person.role in CALENDAR_ROLES:
        return calendar_text(t, run.runs_out, run.today) if run.runs_out is not None else None
    area = tree.area(person)
    if area is None or district is None:
        return None
    grids, team = area
    digest = district.digest(grids)
    unreached = district.out_of_reach(team)
    if digest.empty and unreached.empty:
        return None
    place = unit_label(t, tree.units.get(person.unit_code))
    at = None if run.morning else run.now.astimezone(run.zone).strftime("%H:%M")
    return digest_text(t, place, format_time(run.since, run.zone), digest, unreached, at=at)


async def _lock(session: AsyncSession, ids: Sequence[int], *, sqlite: bool) -> dict[int, int]:
    """Hold the people's roster rows (SQLite: the write lock) for the transaction, so a second
    worker waits here and then finds the records of the digests the first one sent; and read
    them again under the lock (Telegram may have refused them since the run began): the chat
    of each who is still active and reachable."""
    if sqlite:
        await session.exec(text("UPDATE staff SET id = id WHERE 0"))  # type: ignore[call-overload]
    query = (
        select(Staff.id, Staff.telegram_id)
        .where(col(Staff.id).in_(ids), col(Staff.active).is_(True), reachable_clause())
        .order_by(col(Staff.id))  # two workers lock in the same order: no deadlock
    )
    rows = await session.exec(query if sqlite else query.with_for_update())
    return {staff_id: chat for staff_id, chat in rows.all() if chat is not None}


async def record_deliveries(
    session: AsyncSession, ids: Sequence[int], day: date, now: datetime
) -> set[int]:
    """Record today's digest for the people `ids`; those recorded already (by another worker:
    the primary key decides, whatever the timing) are left out of the answer."""
    if not ids:
        return set()
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    result = await session.exec(
        insert(DigestDelivery)  # type: ignore[call-overload]
        .values([{"staff_id": staff_id, "day": day, "sent_at": now} for staff_id in ids])
        .on_conflict_do_nothing(index_elements=["staff_id", "day"])
        .returning(col(DigestDelivery.staff_id))
    )
    return set(result.scalars().all())


async def record_delivery(session: AsyncSession, person_id: int, day: date, now: datetime) -> bool:
    """Record today's digest for the person; False if it was recorded already."""
    return person_id in await record_deliveries(session, [person_id], day, now)


async def send_batch(
    db: Database, batch: Sequence[tuple[Recipient, str]], run: Run, report: DigestReport
) -> None:
    """Lock, record and enqueue the digests of a few people in one transaction."""
    sent: list[int] = []
    already: list[int] = []
    async with db.transaction() as session:
        chats = await _lock(session, [p.id for p, _ in batch], sqlite=db.url.startswith("sqlite"))
        ready = [(person, message) for person, message in batch if person.id in chats]
        recorded = await record_deliveries(session, [p.id for p, _ in ready], run.today, run.now)
        key = digest_key(run.today)
        for person, message in ready:
            if person.id not in recorded:
                already.append(person.id)
                continue
            enqueue(session, Outbound(chat_id=chats[person.id], text=message, ref=key), run.now)
            sent.append(person.id)
    report.sent += sent
    report.already += already


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
        people = await recipients(session, roles, today)
        tree = Tree(await all_units(session))
        # Everyone's figures, unless nobody needs them (all had today's digest, or admins only).
        wanted = any(p.role in DIGEST_ROLES and not p.already for p in people)
        district = await district_figures(session, run) if wanted else None
    to_send: list[tuple[Recipient, str]] = []
    for person in people:
        if person.already:
            report.already.append(person.id)
            continue
        try:
            message = compose(person, run, tree, district)
        except Exception:
            log.exception("digest for staff %s failed; the next run tries again", person.id)
            continue
        if message is None:
            report.nothing.append(person.id)
        else:
            to_send.append((person, message))
    for start in range(0, len(to_send), BATCH):
        batch = to_send[start : start + BATCH]
        try:
            await send_batch(db, batch, run, report)
            continue
        except Exception:
            log.warning("a batch of digests failed; sending them one by one", exc_info=True)
        # One person's failure (whatever it is) must not keep the others' digests back.
        for one in batch:
            try:
                await send_batch(db, [one], run, report)
            except Exception:
                log.exception("digest for staff %s failed; the next run tries again", one[0].id)
    return report
