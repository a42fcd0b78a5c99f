"""Areas: what each member of staff oversees in the sample district, and that the SQL filter
(`Area.clause`) and the check on one loaded request (`Area.covers`) always agree."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlmodel import col, select

from domain.areas import Area, area_of, area_of_unit, units_below
from domain.lifecycle import Level
from storage.database import Database
from storage.models import Account, Beneficiary, Request, Staff, Unit

NOW = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
TIANHE_GRIDS = {"QS-JB-TH-01", "QS-JB-TH-02"}
JIANGBEI_GRIDS = TIANHE_GRIDS | {"QS-JB-LY-01", "QS-JB-LY-02", "QS-JB-QJ-01"}
FENGMING_GRIDS = {"QS-FM-MJ-01", "QS-FM-MJ-02", "QS-FM-HW-01", "QS-FM-SQ-01"}


async def staff(db: Database, phone: str) -> Staff:
    async with db.session() as session:
        return (await session.exec(select(Staff).where(Staff.phone == phone))).one()


async def area_for(db: Database, phone: str) -> Area | None:
    person = await staff(db, phone)
    async with db.session() as session:
        return await area_of(session, person)


async def test_a_community_coordinator_oversees_the_communitys_grids(db: Database) -> None:
    area = await area_for(db, "13800000011")  # 徐国庆, Tianhe
    assert area is not None
    assert (area.unit_code, area.level, area.categories) == ("QS-JB-TH", Level.COMMUNITY, None)
    assert area.grid_codes == TIANHE_GRIDS
    # Figures break a community down by grid.
    assert area.part_of("QS-JB-TH-02") == "QS-JB-TH-02"
    assert area.part_of("QS-JB-LY-01") is None


async def test_a_town_officer_oversees_the_towns_grids_by_community(db: Database) -> None:
    area = await area_for(db, "13800000017")  # 胡海涛, Jiangbei Street
    assert area is not None
    assert (area.unit_code, area.level) == ("QS-JB", Level.TOWN)
    assert area.grid_codes == JIANGBEI_GRIDS
    assert area.part_of("QS-JB-TH-02") == "QS-JB-TH"
    assert area.part_of("QS-JB-QJ-01") == "QS-JB-QJ"
    assert area.part_of("QS-FM-MJ-01") is None


async def test_the_admin_oversees_the_district_by_town(db: Database) -> None:
    area = await area_for(db, "13800000026")  # 曹明
    assert area is not None
    assert (area.unit_code, area.level, area.grid_codes, area.categories) == (
        "QS",
        Level.DISTRICT,
        None,
        None,
    )
    assert set(area.part_of_grid) == JIANGBEI_GRIDS | FENGMING_GRIDS
    assert area.part_of("QS-FM-SQ-01") == "QS-FM"


async def test_a_department_oversees_its_remit_across_the_district(db: Database) -> None:
    area = await area_for(db, "13800000022")  # 罗斌, housing bureau: housing; repair
    assert area is not None
    assert (area.unit_code, area.level, area.grid_codes) == ("QS", Level.DEPARTMENT, None)
    assert area.categories == {"housing", "repair"}


@pytest.mark.parametrize("phone", ["13800000001", "13800000010"], ids=["grid", "village-grid"])
async def test_grid_members_oversee_no_area(db: Database, phone: str) -> None:
    assert await area_for(db, phone) is None


async def test_nobody_inactive_or_unknown_oversees_anything(db: Database) -> None:
    async with db.transaction() as session:
        person = (await session.exec(select(Staff).where(Staff.phone == "13800000011"))).one()
        person.active = False
        session.add(person)
    assert await area_for(db, "13800000011") is None
    async with db.session() as session:
        assert await area_of(session, None) is None
        assert await area_of_unit(session, "QS-JB-TH-01") is None  # a grid is no area
        assert await area_of_unit(session, "QS-ZJJ") is None  # nor a department's unit
        assert await area_of_unit(session, "NOWHERE") is None


async def test_units_below_lists_parents_before_children(db: Database) -> None:
    async with db.session() as session:
        below = [u.code for u in await units_below(session, "QS-JB")]
    assert below == [
        "QS-JB-LY",
        "QS-JB-QJ",
        "QS-JB-TH",
        "QS-JB-LY-01",
        "QS-JB-LY-02",
        "QS-JB-QJ-01",
        "QS-JB-TH-01",
        "QS-JB-TH-02",
    ]


async def test_a_department_with_no_remit_sees_nothing(db: Database) -> None:
    async with db.transaction() as session:
        person = (await session.exec(select(Staff).where(Staff.phone == "13800000022"))).one()
        person.posts = ""
        session.add(person)
    area = await area_for(db, "13800000022")
    assert area is not None and area.categories == frozenset()
    request = Request(grid_code="QS-JB-TH-01", category="repair")  # type: ignore[call-arg]
    assert not area.covers(request)


async def test_clause_and_covers_agree(db: Database) -> None:
    """One request of each category in every grid; every role's SQL filter selects exactly
    the requests its `covers` accepts."""
    async with db.transaction() as session:
        account = Account(telegram_id=1, chat_id=1, created_at=NOW)
        session.add(account)
        await session.flush()
        assert account.id is not None
        grids = (await session.exec(select(Unit.code).where(Unit.level == "grid"))).all()
        for grid in grids:
            beneficiary = Beneficiary(
                owner_account_id=account.id, is_self=True, name="x", grid_code=grid, created_at=NOW
            )
            session.add(beneficiary)
            await session.flush()
            assert beneficiary.id is not None
            for category in ("repair", "safety", "agriculture", "elder_care"):
                session.add(
                    Request(
                        kind="living",
                        category=category,
                        reporter_account_id=account.id,
                        beneficiary_id=beneficiary.id,
                        grid_code=grid,
                        status="new",
                        created_at=NOW,
                        updated_at=NOW,
                    )
                )
    async with db.session() as session:
        everything = list((await session.exec(select(Request))).all())
        assert len(everything) == 4 * 9
        people = (await session.exec(select(Staff).order_by(col(Staff.id)))).all()
        sizes: dict[str, int] = {}
        for person in people:
            area = await area_of(session, person)
            if area is None:
                continue
            selected = set((await session.exec(select(Request.id).where(area.clause()))).all())
            assert selected == {r.id for r in everything if area.covers(r)}, person.name
            sizes[person.phone] = len(selected)
    assert sizes["13800000011"] == 4 * 2  # Tianhe: 2 grids
    assert sizes["13800000017"] == 4 * 5  # Jiangbei: 5 grids
    assert sizes["13800000018"] == 4 * 4  # Fengming: 4 grids
    assert sizes["13800000022"] == 9  # repair, everywhere
    assert sizes["13800000025"] == 9  # safety (sanitation has none here)
    assert sizes["13800000026"] == 4 * 9  # the admin: all
