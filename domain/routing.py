"""Routing: who owns a need, climbing the ladder when a level has nobody reachable.

At the grid level the candidates are the grid's members; one whose posts cover the category is
preferred, then the one with the fewest open tasks. Above it: the community's coordinators, the
town's officers, the district department staff whose remit covers the category, the district
admins. "Reachable" (domain.reach) means the person has opened the bot as this roster entry
and Telegram has not refused a message to them since.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.lifecycle import LADDER, OPEN_STATUSES, Level
from domain.reach import is_reachable
from storage.chunk_memo import chunk_memo
from storage.database import remember_account
from storage.models import Account, Request, Staff
from storage.roster_cache import unit_of

ROLE_AT_LEVEL: dict[Level, str] = {
    Level.GRID: "grid_member",
    Level.COMMUNITY: "coordinator",
    Level.TOWN: "town_officer",
    Level.DEPARTMENT: "department",
    Level.DISTRICT: "admin",
}


@dataclass(frozen=True, slots=True)
class Skip:
    level: Level
    reason: str  # "nobody" (no one in the roster) or "unreachable" (no one who opened the bot)


@dataclass(slots=True)
class Route:
    staff: Staff
    level: Level
    skipped: list[Skip] = field(default_factory=list)


async def units_on_ladder(session: AsyncSession, grid_code: str) -> dict[Level, str]:
    """The grid's own unit and the units above it, keyed by level."""
    chain: dict[Level, str] = {}
    code: str | None = grid_code
    while code is not None:
        unit = await unit_of(session, code)
        if unit is None:
            break
        if unit.level in Level.__members__.values():
            chain[Level(unit.level)] = unit.code
        code = unit.parent_code
    return chain


async def candidates_at(
    session: AsyncSession, level: Level, chain: dict[Level, str], category: str
) -> list[tuple[Staff, int]]:
    """The active staff of `level` for the need's ladder, each with their open task count.
    Their accounts are read in the same statement and noted for the session
    (`remember_account`): the new owner's card is written in their language. Read apart, the
    staff, the counts and the account were three statements of an escalation (issue 14)."""
    unit_code = None if level is Level.DEPARTMENT else chain.get(level)
    if level is not Level.DEPARTMENT and unit_code is None:
        return []
    memo = chunk_memo(session)
    key = (ROLE_AT_LEVEL[level], unit_code)
    if memo is not None and key in memo.staff_at:
        # The sweep's chunk read this level before (storage.chunk_memo); the counts have
        # followed its assignments since (`note_open_change`).
        staff_counts = [
            (staff, memo.open_counts.get(staff.id or 0, 0)) for staff in memo.staff_at[key]
        ]
    else:
        if memo is not None:
            # The counts must include what the chunk changed so far: written first (the
            # caller reads without flushing, for its own request's sake).
            await session.flush()
        staff_counts = await _staff_with_counts(session, level, unit_code)
        if memo is not None:
            memo.staff_at[key] = [staff for staff, _count in staff_counts]
            memo.open_counts.update((staff.id or 0, count) for staff, count in staff_counts)
    return [
        (staff, count)
        for staff, count in staff_counts
        if level is not Level.DEPARTMENT or category in staff.post_list
    ]


async def _staff_with_counts(
    session: AsyncSession, level: Level, unit_code: str | None
) -> list[tuple[Staff, int]]:
    """The active staff of the level (in `unit_code`, but for the department level), each with
    their open task count; one statement."""
    open_count = (
        select(func.count())
        .where(col(Request.assignee_staff_id) == Staff.id)
        .where(col(Request.status).in_([s.value for s in OPEN_STATUSES]))
        .scalar_subquery()
    )
    query = (
        select(Staff, Account, open_count)
        .outerjoin(Account, col(Account.telegram_id) == Staff.telegram_id)
        .where(Staff.role == ROLE_AT_LEVEL[level], col(Staff.active).is_(True))
    )
    if unit_code is not None:
        query = query.where(Staff.unit_code == unit_code)
    found: list[tuple[Staff, int]] = []
    for staff, account, count in (await session.exec(query)).all():
        if staff.telegram_id is not None:
            remember_account(session, staff.telegram_id, account)
        found.append((staff, count))
    return found


def note_open_change(
    session: AsyncSession,
    before: tuple[int | None, bool],
    after: tuple[int | None, bool],
) -> None:
    """A request went from (assignee, open) `before` to `after`: in a sweep's chunk, the open
    counts it read follow (the next need of the chunk is balanced as if read afresh)."""
    memo = chunk_memo(session)
    if memo is None or before == after:
        return
    for (staff_id, is_open), step in ((before, -1), (after, 1)):
        if staff_id is not None and is_open and staff_id in memo.open_counts:
            memo.open_counts[staff_id] += step


async def route_request(
    session: AsyncSession,
    grid_code: str,
    category: str,
    *,
    start_level: Level = Level.GRID,
    exclude_staff_ids: Collection[int] = (),
) -> Route | None:
    """Choose the assignee at `start_level` or the first level above it with someone reachable."""
    chain = await units_on_ladder(session, grid_code)
    skipped: list[Skip] = []
    for level in LADDER[LADDER.index(start_level) :]:
        everyone = [
            (s, count)
            for s, count in await candidates_at(session, level, chain, category)
            if s.id not in exclude_staff_ids
        ]
        reachable = [(s, count) for s, count in everyone if is_reachable(s)]
        if not reachable:
            skipped.append(Skip(level, "unreachable" if everyone else "nobody"))
            continue
        best, _count = min(
            reachable,
            key=lambda pair: (category not in pair[0].post_list, pair[1], pair[0].id or 0),
        )
        return Route(staff=best, level=level, skipped=skipped)
    return None
