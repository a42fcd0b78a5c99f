"""What part of the district a member of staff oversees: the scope of every coordinator query.

    coordinator   their community's grids
    town_officer  their town's grids
    department    the whole district, for the categories in the department's remit (its posts)
    admin         the whole district
    grid_member   no area (grid members work from /tasks, not from the coordinator commands)

Every list, search, figure and export filters through `Area.clause()` (in SQL) or
`Area.covers()` (one request already loaded); a button pressed later is checked again with
`covers`, so a forged or stale one for a request outside the area shows and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, true
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.lifecycle import Level
from storage.models import Request, Staff, Unit
from storage.roster_cache import all_units, unit_of

AREA_ROLES = ("coordinator", "town_officer", "department", "admin")


@dataclass(frozen=True, slots=True)
class Area:
    unit_code: str  # the community or town; the district for a department or an admin
    level: Level  # the level of the staff member whose area this is
    grid_codes: frozenset[str] | None  # None: every grid of the district
    categories: frozenset[str] | None  # None: every category
    # The unit one level below `unit_code` that each grid belongs to (a town's communities,
    # a community's grids, the district's towns): what figures are broken down by.
    part_of_grid: dict[str, str]

    def covers(self, request: Request) -> bool:
        if self.grid_codes is not None and request.grid_code not in self.grid_codes:
            return False
        return self.categories is None or request.category in self.categories

    def clause(self) -> ColumnElement[bool]:
        """A WHERE condition on `requests` selecting the requests of this area."""
        condition: ColumnElement[bool] = true()
        if self.grid_codes is not None:
            condition = condition & col(Request.grid_code).in_(sorted(self.grid_codes))
        if self.categories is not None:
            condition = condition & col(Request.category).in_(sorted(self.categories))
        return condition

    def part_of(self, grid_code: str) -> str | None:
        return self.part_of_grid.get(grid_code)


async def units_below(session: AsyncSession, code: str) -> list[Unit]:
    """Every unit under `code` (not `code` itself), parents before children (read from the
    roster cache: the whole tree is in memory)."""
    children: dict[str | None, list[Unit]] = {}
    for unit in await all_units(session):
        children.setdefault(unit.parent_code, []).append(unit)
    found: list[Unit] = []
    frontier = [code]
    while frontier:
        rows = [child for parent in frontier for child in children.get(parent, [])]
        found.extend(sorted(rows, key=lambda u: u.code))
        frontier = [u.code for u in rows]
    return found


async def district_code(session: AsyncSession) -> str | None:
    return next((u.code for u in await all_units(session) if u.level == Level.DISTRICT.value), None)


async def area_of_unit(
    session: AsyncSession, code: str, categories: frozenset[str] | None = None
) -> Area | None:
    """The area of a district, town or community (for the CLI, and for staff of that unit)."""
    unit = await unit_of(session, code)
    if unit is None or unit.level not in (Level.DISTRICT, Level.TOWN, Level.COMMUNITY):
        return None
    below = await units_below(session, code)
    parent_of = {u.code: u.parent_code for u in below}
    part_of_grid: dict[str, str] = {}
    for grid in (u for u in below if u.level == Level.GRID.value):
        part = grid.code
        while parent_of.get(part) not in (code, None):
            part = parent_of[part] or part
        part_of_grid[grid.code] = part
    whole_district = unit.level == Level.DISTRICT.value
    return Area(
        unit_code=code,
        level=Level(unit.level),
        grid_codes=None if whole_district else frozenset(part_of_grid),
        categories=categories,
        part_of_grid=part_of_grid,
    )


async def area_of(session: AsyncSession, staff: Staff | None) -> Area | None:
    """The area `staff` oversees, or None for someone who oversees none."""
    if staff is None or not staff.active or staff.role not in AREA_ROLES:
        return None
    if staff.role in ("coordinator", "town_officer"):
        return await area_of_unit(session, staff.unit_code)
    district = await district_code(session)
    if district is None:
        return None
    categories = frozenset(staff.post_list) if staff.role == "department" else None
    area = await area_of_unit(session, district, categories)
    if area is None:
        return None
    level = Level.DEPARTMENT if staff.role == "department" else Level.DISTRICT
    return Area(area.unit_code, level, area.grid_codes, area.categories, area.part_of_grid)
