"""Rating from below (分层考核, 一定双评): a unit that passed a need up rates how the level that
resolved it handled it.

    resolved by a higher level ──► for each lower unit it left on the way up (once per need
        per lower unit): a rating row, asked now, or at the end of quiet hours (pending)
    asked ──(one tap: satisfied / fairly satisfied / not satisfied)──► rated (+ an optional line
        or voice note)
    asked ──(7 days, no answer)──► lapsed: not rated, left out of the rate

Who is asked: for a need passed up by hand (a decline, or "⬆ Pass up"), the person of the lower
unit who passed it up; for an escalation (a missed deadline), the unit's lead — the person who
held it there if they still can be reached, else another reachable person of the unit in the
role that holds needs at that level (a grid's members, a community's coordinators, a town's
officers, a department's staff). Nobody reachable: the row says so ("unreachable") and is not
counted.

The lower units are read from the need's timeline: each decline or escalation that raised the
level left the unit of the person who held it. A reopening that sends a need up is the
resident's verdict, not a pass-up, and is not counted. Units at the resolver's level or above
(pulled back down with /reassign, say) do not rate. The rated unit is the resolver's own unit
(the town of a town officer, the department of its staff, the district of an admin).

The rows are `upward_ratings`; the due steps (asking after quiet hours, lapsing after 7 days)
are run by the worker's tick (`schedules/ratings.py`) on the injected clock. Every step goes on
the need's timeline (`Action.RATE_ASK`, `RATE_ABOVE`, `RATE_NOTE`, `RATE_LAPSED`); those entries
are for staff, not shown in the resident's own timeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.deadlines import Policy
from domain.lifecycle import LADDER, Action, Level
from domain.reach import is_reachable
from domain.requests import WHY_PASS_UP, note_event, timeline
from domain.routing import ROLE_AT_LEVEL
from domain.verdicts import SATISFACTION
from storage.models import Request, Staff, UpwardRating

LAPSE_AFTER = timedelta(days=7)
PENDING, ASKED, RATED, LAPSED, UNREACHABLE = "pending", "asked", "rated", "lapsed", "unreachable"
PASS_UP, ESCALATION = "pass_up", "escalation"


def rank(level: str) -> int:
    try:
        return LADDER.index(Level(level))
    except ValueError:
        return -1


@dataclass(frozen=True, slots=True)
class HandOff:
    """The need left `unit` (at `level`) upwards: by hand or on a missed deadline."""

    unit_code: str
    level: str
    holder_id: int | None
    actor_id: int | None
    how: str


async def hand_offs(session: AsyncSession, request: Request) -> list[HandOff]:
    """Every time the need went up a level by a decline or an escalation, in order, with the
    unit of the person who held it before."""
    assert request.id is not None
    events = await timeline(session, request.id)
    holder_ids = {e.assignee_staff_id for e in events if e.assignee_staff_id is not None}
    staff = {
        s.id: s
        for s in (
            await session.exec(select(Staff).where(col(Staff.id).in_(sorted(holder_ids))))
        ).all()
    }
    found: list[HandOff] = []
    holder: int | None = None
    for event in events:
        if (
            event.action in (Action.DECLINE.value, Action.ESCALATE.value)
            and holder is not None
            and holder in staff
            and event.from_level is not None
            and event.to_level is not None
            and rank(event.to_level) > rank(event.from_level)
        ):
            first_line = (event.note or "").split("\n", 1)[0]
            by_hand = event.action == Action.DECLINE.value or first_line == WHY_PASS_UP
            found.append(
                HandOff(
                    unit_code=staff[holder].unit_code,
                    level=event.from_level,
                    holder_id=holder,
                    actor_id=event.actor_staff_id,
                    how=PASS_UP if by_hand else ESCALATION,
                )
            )
        if event.assignee_staff_id is not None:
            holder = event.assignee_staff_id
    return found


async def choose_rater(session: AsyncSession, hand_off: HandOff) -> Staff | None:
    """Who answers for the lower unit (see the module's docstring)."""
    role = ROLE_AT_LEVEL.get(Level(hand_off.level)) if rank(hand_off.level) >= 0 else None

    def fits(staff: Staff | None, *, any_role: bool = False) -> bool:
        return (
            staff is not None
            and staff.active
            and staff.unit_code == hand_off.unit_code
            and (any_role or staff.role == role)
            and is_reachable(staff)
        )

    if hand_off.how == PASS_UP and hand_off.actor_id is not None:
        actor = await session.get(Staff, hand_off.actor_id)
        if fits(actor, any_role=True):
            return actor
    holder = await session.get(Staff, hand_off.holder_id) if hand_off.holder_id else None
    if fits(holder):
        return holder
    rows = await session.exec(
        select(Staff)
        .where(Staff.unit_code == hand_off.unit_code, Staff.role == role)
        .where(col(Staff.active).is_(True))
        .order_by(col(Staff.id))
    )
    return next((s for s in rows.all() if fits(s)), None)


async def plan_ratings(
    session: AsyncSession,
    request: Request,
    resolver: Staff,
    now: datetime,
    zone: ZoneInfo,
    policy: Policy,
) -> list[UpwardRating]:
    """The need was resolved by `resolver`: a rating row for each lower unit it left on its way
    up to the resolver's level that has none yet for this need. The rows that can be asked now
    (out of quiet hours, with someone reachable to ask) are returned: the caller asks them at
    once; the others wait for the worker's tick (pending) or are marked unreachable."""
    assert request.id is not None
    resolved_rank = rank(request.level)
    existing = set(
        (
            await session.exec(
                select(UpwardRating.rater_unit_code).where(UpwardRating.request_id == request.id)
            )
        ).all()
    )
    latest: dict[str, HandOff] = {}
    for hand_off in await hand_offs(session, request):
        if rank(hand_off.level) < resolved_rank and hand_off.unit_code != resolver.unit_code:
            latest[hand_off.unit_code] = hand_off
    release = policy.quiet_hours.release(now, zone)
    due_now: list[UpwardRating] = []
    for unit_code, hand_off in latest.items():
        if unit_code in existing:
            continue
        rater = await choose_rater(session, hand_off)
        rating = UpwardRating(
            request_id=request.id,
            rater_unit_code=unit_code,
            rater_level=hand_off.level,
            rater_staff_id=rater.id if rater is not None else None,
            rated_unit_code=resolver.unit_code,
            rated_level=request.level,
            how=hand_off.how,
            state=PENDING if rater is not None else UNREACHABLE,
            created_at=now,
            due_at=(release or now) if rater is not None else None,
        )
        session.add(rating)
        if rater is not None and release is None:
            due_now.append(rating)
    await session.flush()
    return due_now


def mark_asked(
    session: AsyncSession, rating: UpwardRating, request: Request, now: datetime
) -> None:
    rating.state = ASKED
    rating.asked_at = now
    rating.due_at = now + LAPSE_AFTER
    session.add(rating)
    note_event(session, request, Action.RATE_ASK, now, actor_staff_id=rating.rater_staff_id)


def mark_unreachable(session: AsyncSession, rating: UpwardRating) -> None:
    rating.state = UNREACHABLE
    rating.due_at = None
    session.add(rating)


def record_rating(
    session: AsyncSession, rating: UpwardRating, request: Request, value: str, now: datetime
) -> None:
    """The rater's one tap (the caller checked it is theirs and still asked)."""
    assert value in SATISFACTION
    rating.rating = value
    rating.rated_at = now
    rating.state = RATED
    rating.due_at = None
    session.add(rating)
    note_event(
        session,
        request,
        Action.RATE_ABOVE,
        now,
        actor_staff_id=rating.rater_staff_id,
        note=f"satisfaction:{value}",
    )


def lapse(session: AsyncSession, rating: UpwardRating, request: Request, now: datetime) -> None:
    """No answer in 7 days: not rated."""
    rating.state = LAPSED
    rating.due_at = None
    session.add(rating)
    note_event(session, request, Action.RATE_LAPSED, now)


async def due_ratings(session: AsyncSession, now: datetime, limit: int) -> list[int]:
    """Rows whose next step is due: asking (pending) or lapsing (asked)."""
    rows = await session.exec(
        select(UpwardRating.id)
        .where(col(UpwardRating.state).in_([PENDING, ASKED]))
        .where(col(UpwardRating.due_at) <= now)
        .order_by(col(UpwardRating.due_at), col(UpwardRating.id))
        .limit(limit)
    )
    return [i for i in rows.all() if i is not None]
