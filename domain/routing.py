"""Routing: who owns a need, climbing the ladder when a level has nobody reachable.

At the grid level the candidates are the grid's members; one whose posts cover the category is
preferred, then the one with the fewest open tasks. Above it: the community's coordinators, the
town's officers, the district department staff whose remit covers the category, the district
admins. "Reachable" (domain.reach) means the person has opened the bot as this roster entry
and Telegram has not refused a message to them since.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.lifecycle import LADDER, OPEN_STATUSES, Level
from domain.reach import is_reachable
from storage.models import Request, Staff
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


async def open_task_counts(session: AsyncSession, staff_ids: Sequence[int]) -> dict[int, int]:
    if not staff_ids:
        return {}
    rows = await session.exec(
        select(Request.assignee_staff_id, func.count())
        .where(col(Request.assignee_staff_id).in_(staff_ids))
        .where(col(Request.status).in_([s.value for s in OPEN_STATUSES]))
        .group_by(Request.assignee_staff_id)
    )
    return {staff_id: count for staff_id, count in rows.all() if staff_id is not None}


async def candidates_at(
    session: AsyncSession, level: Level, chain: dict[Level, str], category: str
) -> list[Staff]:
    query = select(Staff).where(Staff.role == ROLE_AT_LEVEL[level], col(Staff.active).is_(True))
    if level is Level.DEPARTMENT:
        staff = (await session.exec(query)).all()
        return [s for s in staff if category in s.post_list]
    unit_code = chain.get(level)
    if unit_code is None:
        return []
    return list((await session.exec(query.where(Staff.unit_code == unit_code))).all())


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
            s
            for s in await candidates_at(session, level, chain, category)
            if s.id not in exclude_staff_ids
        ]
        reachable = [s for s in everyone if is_reachable(s)]
        if not reachable:
            skipped.append(Skip(level, "unreachable" if everyone else "nobody"))
            continue
        counts = await open_task_counts(session, [s.id for s in reachable if s.id is not None])
        best = min(
            reachable,
            key=lambda s: (category not in s.post_list, counts.get(s.id or 0, 0), s.id or 0),
        )
        return Route(staff=best, level=level, skipped=skipped)
    return None
