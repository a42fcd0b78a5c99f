"""The deadline sweep: reminders before a deadline, escalation one level up when it passes,
and the steps of the resident's verdict after resolution (ask, remind, close as not rated).

A tick (every `HUIYIN_SWEEP_INTERVAL_SECONDS`, 30 s by default, and once at start) calls
`sweep`. It reads which requests are due from one indexed column, `requests.next_due_at`, in
batches in id order, each batch after the last id handled, so a tick handles a row at most once
and binds two values whatever the backlog (asyncpg takes at most 32,767 per statement). It
handles them in chunks of CHUNK requests, each chunk in one transaction (issue 14: a
transaction per request cost ten statements and 25-35 ms an escalation; 10,000 due took 5-10
minutes):

1. claim the chunk's rows by their primary keys, in one statement: `SELECT ... FOR UPDATE SKIP
   LOCKED` on PostgreSQL (a second sweep skips the rows the first holds); on SQLite a write
   comes first, which takes the database's write lock, so sweeps in two processes run one after
   the other and each reads what the other committed;
2. keep those still due under that claim: whatever another sweep already did is no longer due;
3. read at once what acting on them will ask (storage.chunk_memo: the outbox rows of their
   cards, their reporters' bursts; the routing candidates are read once per level and unit and
   their open counts kept current as the chunk assigns);
4. act on each in turn (a reminder, or an escalation and its notices), writing the timeline
   events and the outbox rows, and moving the due columns past what was done; all is written
   and committed together.

If one request of a chunk raises, the whole chunk rolls back and its requests are handled
again one per transaction (a chunk of one, whose helpers ask the database), so the failure
costs only the request that fails: it is counted in `SweepReport.failed` and left for the
next tick.

So an action happens exactly once: two sweeps at once, a crash half-way (the chunk's
transaction rolls back, nothing of it was sent, the next sweep does it), or a restart after
hours of downtime (what fell due runs once, at the first tick; a reminder whose deadline has
also passed is skipped for the escalation, and the new owner's clocks start at that moment, so
a request climbs one level per missed deadline of its owner, not one per missed tick).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import aliased
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.clock import Clock
from domain.deadlines import (
    ClockName,
    Policy,
    breached_clock,
    due_reminders,
    mark_missed,
    refresh_next_due,
    reminder_done,
    restart_clock,
    start_clocks,
    stop_clocks,
)
from domain.floods import NOTE_IN_SUMMARY
from domain.i18n import Translator
from domain.labels import LEVEL_LABELS, category_label, format_time, staff_label
from domain.lifecycle import Action, Level, Status
from domain.reach import reachable_chat
from domain.requests import (
    WHY_ACCEPT_OVERDUE,
    WHY_NOBODY_ABOVE,
    WHY_RESOLVE_OVERDUE,
    note_event,
    reroute_up,
)
from handlers.base import escape
from handlers.cards import announce_new_owner, hold_until, summarised_only, tell_staff
from handlers.claimed_work import remind_claimant
from handlers.verdict import verdict_step
from storage.chunk_memo import prefetch
from storage.database import Database, held_get, remember_account
from storage.models import Account, Beneficiary, Request, Staff

log = logging.getLogger(__name__)

BATCH = 200
# Due requests handled in one transaction (issue 14): one claim, one prefetch, one write of each
# table for the lot. Bound by the claim's id list, well under asyncpg's 32,767 values.
CHUNK = 100
# Where a chunk's session keeps the rows its claim read, so that they stay for its helpers'
# `session.get` (storage.database.HeldSession holds at most HELD_ROWS by itself).
CLAIMED_ROWS = "sweep_claimed_rows"
OPEN = (Status.ASSIGNED.value, Status.IN_PROGRESS.value)


@dataclass
class SweepReport:
    """What one sweep did; `actions` lists (request id, what) in order."""

    reminded: int = 0
    escalated: int = 0
    overdue: int = 0  # a deadline passed with no one above to take it
    started: int = 0  # open requests from before deadlines existed, given clocks
    verdicts: int = 0  # verdict questions, their reminders, closings as not rated
    failed: int = 0
    # Chunks that failed as a whole and were redone one request per transaction: each one is a
    # bug or a bad row worth a look (the warning's traceback says which).
    chunks_redone: int = 0
    actions: list[tuple[int, str]] = field(default_factory=list)

    def add(self, other: SweepReport) -> None:
        """Count what `other` (a chunk's, once committed) did as done by this sweep."""
        self.reminded += other.reminded
        self.escalated += other.escalated
        self.overdue += other.overdue
        self.started += other.started
        self.verdicts += other.verdicts
        self.failed += other.failed
        self.chunks_redone += other.chunks_redone
        self.actions.extend(other.actions)

    @property
    def total(self) -> int:
        return self.reminded + self.escalated + self.overdue + self.started + self.verdicts


async def sweep(
    db: Database,
    clock: Clock,
    zone: ZoneInfo,
    policy: Policy,
    *,
    burst_window: timedelta | None = None,
) -> SweepReport:
    """Do every reminder and escalation that is due now, each exactly once. With
    `burst_window`, needs of one reporter escalating to the same person together are shown to
    them in one summary card (handlers.cards.send_burst_summary)."""
    now = clock.now()
    report = SweepReport()
    sqlite = db.url.startswith("sqlite")
    after = 0  # the last id this tick has handled: each row at most once a tick, in id order
    while True:
        async with db.session() as session:
            query = (
                select(Request.id)
                .where(col(Request.next_due_at) <= now)
                .where(col(Request.id) > after)
                .order_by(col(Request.id))
                .limit(BATCH)
            )
            rows = (await session.exec(query)).all()
        due = [request_id for request_id in rows if request_id]
        if not due:
            return report
        for start in range(0, len(due), CHUNK):
            chunk = due[start : start + CHUNK]
            await handle_chunk(
                db, chunk, now, zone, policy, report, sqlite=sqlite, burst_window=burst_window
            )
        after = due[-1]
        if len(rows) < BATCH:
            # That was all that was due at `now`: no read of an empty batch (one statement a
            # tick). A row that falls due meanwhile, by another transaction, waits for the next.
            return report


async def handle_chunk(
    db: Database,
    request_ids: list[int],
    now: datetime,
    zone: ZoneInfo,
    policy: Policy,
    report: SweepReport,
    *,
    sqlite: bool,
    burst_window: timedelta | None = None,
) -> None:
    """Handle the due requests `request_ids` in one transaction: claimed together, what their
    helpers read prefetched (storage.chunk_memo), written and committed together. If one of
    them fails, the chunk is rolled back whole and its requests are handled again one per
    transaction, so the failure costs only the request that fails (counted in
    `report.failed`), and nothing is done twice: what the chunk did was never committed."""
    done = SweepReport()
    try:
        async with db.transaction() as session:
            requests = await claim(session, request_ids, now, sqlite=sqlite)
            if len(requests) > 1:
                await prefetch(
                    session, requests, now, burst_window, waiting_status=Status.ASSIGNED.value
                )
            for request in requests:
                await handle(session, request, now, zone, policy, done, burst_window=burst_window)
    except Exception:
        if len(request_ids) == 1:
            report.failed += 1
            log.exception("sweep: request %s failed; the next sweep tries again", request_ids[0])
            return
        log.warning(
            "sweep: a chunk of %d requests from %s failed; each is done on its own",
            len(request_ids),
            request_ids[0],
            exc_info=True,
        )
        report.chunks_redone += 1
        for request_id in request_ids:
            await handle_chunk(
                db,
                [request_id],
                now,
                zone,
                policy,
                report,
                sqlite=sqlite,
                burst_window=burst_window,
            )
        return
    report.add(done)


async def claim(
    session: AsyncSession, request_ids: list[int], now: datetime, *, sqlite: bool
) -> list[Request]:
    """The requests, locked for this transaction, that are still due, in id order; not those
    another sweep has (PostgreSQL skips the rows it locked) or has already done."""
    if sqlite:
        # A write first: SQLite's write lock for the whole transaction, so what we read next
        # is what the last sweep committed, and no other sweep runs until we commit.
        await session.exec(text("UPDATE requests SET id = id WHERE 0"))  # type: ignore[call-overload]
    # Read with the requests, in the same statement, what acting on them reads next (issue
    # 14: four statements of an escalation): the beneficiary and reporter (the card, the
    # notice) and the owner with their account (the owner's card and message, in their
    # language). The session keeps the rows (storage.database.HeldSession), so `session.get`
    # finds them. At most CHUNK ids are bound.
    owner_account = aliased(Account)
    # By the primary key alone: a condition on `next_due_at` here lets PostgreSQL's planner
    # read the due index and filter on the id instead, which costs the whole backlog per row.
    result = await session.exec(
        select(Request, Beneficiary, Account, Staff, owner_account)
        .outerjoin(Beneficiary, col(Beneficiary.id) == Request.beneficiary_id)
        .outerjoin(Account, col(Account.id) == Request.reporter_account_id)
        .outerjoin(Staff, col(Staff.id) == Request.assignee_staff_id)
        .outerjoin(owner_account, col(owner_account.telegram_id) == Staff.telegram_id)
        .where(col(Request.id).in_(request_ids))
        .order_by(col(Request.id))
        # Only the requests are locked (PostgreSQL refuses to lock the outer joins' rows).
        .with_for_update(skip_locked=True, of=Request)  # type: ignore[arg-type]
    )
    claimed: list[Request] = []
    rows = result.all()
    session.info.setdefault(CLAIMED_ROWS, []).extend(rows)
    for request, _beneficiary, _reporter, owner, account in rows:
        if owner is not None and owner.telegram_id is not None:
            remember_account(session, owner.telegram_id, account)
        if request.next_due_at is not None and request.next_due_at <= now:
            claimed.append(request)
    return claimed


async def handle(
    session: AsyncSession,
    request: Request,
    now: datetime,
    zone: ZoneInfo,
    policy: Policy,
    report: SweepReport,
    *,
    burst_window: timedelta | None = None,
) -> None:
    assert request.id is not None
    if request.status == Status.RESOLVED:
        # The resident's verdict: asked, reminded, or closed as not rated (handlers.verdict).
        done = await verdict_step(session, request, now, zone, policy)
        if done is not None:
            report.verdicts += 1
            report.actions.append((request.id, done))
    elif request.status not in OPEN or request.assignee_staff_id is None:
        stop_clocks(request)
    elif request.level_assigned_at is None:
        start_clocks(request, now, zone, policy)
        report.started += 1
        report.actions.append((request.id, "start"))
    elif (breach := breached_clock(request, now)) is not None:
        await escalate(
            session, request, breach, now, zone, policy, report, burst_window=burst_window
        )
    else:
        for clock in due_reminders(request, now):
            await remind(session, request, clock, now, zone, policy, burst_window=burst_window)
            report.reminded += 1
            report.actions.append((request.id, f"remind:{clock}"))
    refresh_next_due(request)
    session.add(request)


async def remind(
    session: AsyncSession,
    request: Request,
    clock: ClockName,
    now: datetime,
    zone: ZoneInfo,
    policy: Policy,
    *,
    burst_window: timedelta | None = None,
) -> None:
    # A need a volunteer holds: they are reminded to resolve it (the holder still gets the
    # escalation); the accept reminder stays the holder's, who alone can accept.
    if clock == "resolve" and await remind_claimant(session, request, now, zone, policy):
        reminder_done(request, clock, now, zone, policy)
        return
    owner = await held_get(session, Staff, request.assignee_staff_id)
    due = request.accept_due_at if clock == "accept" else request.resolve_due_at

    def text_for(t: Translator) -> str:
        values = {
            "ref": request.reference,
            "category": escape(category_label(t, request.category)),
            "time": format_time(due, zone),
        }
        if clock == "accept":
            return t._("⏰ Reminder: please accept <b>{ref}</b> ({category}) by {time}.", **values)
        return t._(
            "⏰ Reminder: <b>{ref}</b> ({category}) is due to be resolved by {time}.", **values
        )

    owner_chat = reachable_chat(owner)
    # A need the owner saw only in a burst's summary card: the reminder of the burst's first
    # need (which has a card of its own) stands for it.
    in_summary = (
        owner is not None
        and owner_chat is not None
        and await summarised_only(session, owner_chat, request, owner, burst_window)
    )
    if owner_chat is not None and not in_summary:
        hold = await hold_until(session, owner_chat, request, now, zone, policy)
        await tell_staff(session, owner, now, text_for, request=request, not_before=hold)
    note_event(
        session,
        request,
        Action.REMIND,
        now,
        note=f"clock:{clock}" + (f"\n{NOTE_IN_SUMMARY}" if in_summary else ""),
    )
    reminder_done(request, clock, now, zone, policy)


async def escalate(
    session: AsyncSession,
    request: Request,
    clock: ClockName,
    now: datetime,
    zone: ZoneInfo,
    policy: Policy,
    report: SweepReport,
    *,
    burst_window: timedelta | None = None,
) -> None:
    """The deadline passed: one level up, to the next level's owner, whose clocks start now."""
    assert request.id is not None
    # Read before the request changes: the read would flush the change in an UPDATE of its own.
    previous = await held_get(session, Staff, request.assignee_staff_id)
    mark_missed(request, clock, now)
    if clock == "resolve" and request.resolve_missed_due_at is None:
        request.resolve_missed_due_at = request.resolve_due_at  # the ledger's, kept for good
    from_level = request.level
    why = WHY_ACCEPT_OVERDUE if clock == "accept" else WHY_RESOLVE_OVERDUE
    route = await reroute_up(
        session,
        request,
        Action.ESCALATE,
        now,
        actor_staff=None,
        reason=None,
        why=why,
        zone=zone,
        policy=policy,
    )
    if route is None:
        await overdue_at_top(
            session, request, previous, clock, why, now, zone, policy, burst_window=burst_window
        )
        report.overdue += 1
        report.actions.append((request.id, f"overdue:{clock}"))
        return
    owner = route.staff

    def missed(t: Translator) -> str:
        return t._("not accepted in time") if clock == "accept" else t._("not resolved in time")

    await announce_new_owner(
        session,
        zone,
        request,
        previous,
        owner,
        now,
        lead=lambda t: t._(
            "⏫ Escalated to you: {why} at the {level} level",
            why=missed(t),
            level=t._(LEVEL_LABELS.get(from_level, from_level)),
        ),
        tell_previous=lambda t: t._(
            "⏫ {ref} was {why}, so it has gone up to {who}.",
            ref=request.reference,
            why=missed(t),
            who=escape(staff_label(t, owner)),
        ),
        policy=policy,
        hold=True,
        burst_window=burst_window,
    )
    report.escalated += 1
    report.actions.append((request.id, f"escalate:{from_level}->{request.level}"))


async def overdue_at_top(
    session: AsyncSession,
    request: Request,
    owner: Staff | None,
    clock: ClockName,
    why: str,
    now: datetime,
    zone: ZoneInfo,
    policy: Policy,
    *,
    burst_window: timedelta | None = None,
) -> None:
    """No one above can take it: the owner is told once, and the clock starts a new round (so
    they are reminded again rather than never). A need the owner saw only in a burst's summary
    card is not told one by one: the burst's first need stands for it."""
    owner_chat = reachable_chat(owner)
    in_summary = (
        owner is not None
        and owner_chat is not None
        and await summarised_only(session, owner_chat, request, owner, burst_window)
    )
    note_event(
        session,
        request,
        Action.OVERDUE,
        now,
        note=f"{why}\n{WHY_NOBODY_ABOVE}" + (f"\n{NOTE_IN_SUMMARY}" if in_summary else ""),
    )
    restart_clock(request, clock, now, zone, policy)
    if owner_chat is None or in_summary:
        return
    top = request.level == Level.DISTRICT

    def text_for(t: Translator) -> str:
        missed = (
            t._("was not accepted in time")
            if clock == "accept"
            else t._("was not resolved in time")
        )
        lead = t._("⚠ <b>{ref}</b> {missed}.", ref=request.reference, missed=missed)
        if top:
            return lead + " " + t._("You are the last level; please see to it today.")
        return lead + " " + t._("No one above can be reached yet; please see to it today.")

    hold = await hold_until(session, owner_chat, request, now, zone, policy)
    await tell_staff(session, owner, now, text_for, request=request, not_before=hold)
