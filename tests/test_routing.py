"""Routing on the sample district: posts first, then the lightest load, then the roster order;
climbing the ladder past levels where nobody is reachable, and recording the climb."""

from __future__ import annotations

from sqlmodel import col, select, update

from domain.clock import ManualClock
from domain.lifecycle import Level, Status
from domain.requests import submit_request
from domain.routing import Route, Skip, route_request
from storage.database import Database
from storage.models import Account, Beneficiary, Request, RequestEvent, Staff

WANG = 700000001  # grid member of QS-JB-TH-01: repair; safety; errand
LI = 700000002  # grid member of QS-JB-TH-01: elder_care; companionship; family_link
ZHANG = 700000003  # grid member of QS-JB-TH-02, no posts
YANG = 700000006  # grid member of QS-JB-QJ-01
XU = 700000011  # coordinator of QS-JB-TH
HU = 700000017  # town officer of QS-JB


async def route(db: Database, grid: str, category: str, **options: object) -> Route | None:
    async with db.session() as session:
        return await route_request(session, grid, category, **options)  # type: ignore[arg-type]


async def staff_id(db: Database, telegram_id: int) -> int:
    async with db.session() as session:
        staff = (await session.exec(select(Staff).where(Staff.telegram_id == telegram_id))).one()
        assert staff.id is not None
        return staff.id


async def edit_staff(db: Database, telegram: int, **values: object) -> None:
    """Change the roster entry whose Telegram id is `telegram`."""
    async with db.transaction() as session:
        query = update(Staff).where(col(Staff.telegram_id) == telegram).values(**values)
        await session.exec(query)  # type: ignore[call-overload]


async def resident(db: Database, clock: ManualClock, grid: str) -> tuple[Account, Beneficiary]:
    async with db.transaction() as session:
        account = Account(telegram_id=900001, chat_id=900001, created_at=clock.now())
        session.add(account)
        await session.flush()
        assert account.id is not None
        beneficiary = Beneficiary(
            owner_account_id=account.id,
            is_self=True,
            name="Resident",
            grid_code=grid,
            created_at=clock.now(),
        )
        session.add(beneficiary)
        await session.flush()
        return account, beneficiary


async def give_open_tasks(
    db: Database, clock: ManualClock, telegram_id: int, count: int, status: Status = Status.ASSIGNED
) -> None:
    account, beneficiary = await resident(db, clock, "QS-JB-TH-01")
    assignee = await staff_id(db, telegram_id)
    async with db.transaction() as session:
        for _ in range(count):
            session.add(
                Request(
                    kind="living",
                    category="health",
                    reporter_account_id=account.id or 0,
                    beneficiary_id=beneficiary.id or 0,
                    grid_code="QS-JB-TH-01",
                    status=status.value,
                    assignee_staff_id=assignee,
                    created_at=clock.now(),
                    updated_at=clock.now(),
                )
            )


def who(found: Route | None) -> tuple[int | None, Level, list[Skip]]:
    assert found is not None
    return found.staff.telegram_id, found.level, found.skipped


async def test_grid_member_whose_posts_cover_the_category_is_preferred(db: Database) -> None:
    assert who(await route(db, "QS-JB-TH-01", "repair")) == (WANG, Level.GRID, [])
    assert who(await route(db, "QS-JB-TH-01", "elder_care")) == (LI, Level.GRID, [])


async def test_posts_win_over_a_lighter_load(db: Database, clock: ManualClock) -> None:
    await give_open_tasks(db, clock, WANG, 3)
    assert who(await route(db, "QS-JB-TH-01", "repair"))[0] == WANG


async def test_without_posts_the_lightest_load_wins_then_the_roster_order(
    db: Database, clock: ManualClock
) -> None:
    # Neither grid member covers "health": equal load, so the first in the roster.
    assert who(await route(db, "QS-JB-TH-01", "health"))[0] == WANG
    await give_open_tasks(db, clock, WANG, 1)
    assert who(await route(db, "QS-JB-TH-01", "health"))[0] == LI


async def test_finished_requests_do_not_count_as_load(db: Database, clock: ManualClock) -> None:
    await give_open_tasks(db, clock, WANG, 2, status=Status.CLOSED)
    assert who(await route(db, "QS-JB-TH-01", "health"))[0] == WANG


async def test_unreachable_grid_member_passes_to_the_community_coordinator(db: Database) -> None:
    await edit_staff(db, ZHANG, telegram_id=None)
    assert who(await route(db, "QS-JB-TH-02", "repair")) == (
        XU,
        Level.COMMUNITY,
        [Skip(Level.GRID, "unreachable")],
    )


async def test_grid_without_anyone_active_is_skipped_as_nobody(db: Database) -> None:
    await edit_staff(db, ZHANG, active=False)
    assert who(await route(db, "QS-JB-TH-02", "repair")) == (
        XU,
        Level.COMMUNITY,
        [Skip(Level.GRID, "nobody")],
    )


async def test_coordinator_without_telegram_passes_to_the_town_officer(db: Database) -> None:
    # QS-JB-QJ's coordinator 马卫东 has not joined; make the grid member unreachable too.
    await edit_staff(db, YANG, telegram_id=None)
    assert who(await route(db, "QS-JB-QJ-01", "repair")) == (
        HU,
        Level.TOWN,
        [Skip(Level.GRID, "unreachable"), Skip(Level.COMMUNITY, "unreachable")],
    )


async def test_department_is_chosen_by_its_remit(db: Database) -> None:
    health = await route(db, "QS-JB-TH-01", "health", start_level=Level.DEPARTMENT)
    repair = await route(db, "QS-JB-TH-01", "repair", start_level=Level.DEPARTMENT)
    assert who(health) == (700000021, Level.DEPARTMENT, [])  # 高洁, Health Commission
    assert who(repair) == (700000022, Level.DEPARTMENT, [])  # 罗斌, Housing and Construction


async def test_category_no_department_covers_goes_to_the_district_admin(db: Database) -> None:
    found = await route(db, "QS-JB-TH-01", "other", start_level=Level.DEPARTMENT)
    assert who(found) == (700000026, Level.DISTRICT, [Skip(Level.DEPARTMENT, "nobody")])


async def test_excluded_staff_are_passed_over(db: Database) -> None:
    wang = await staff_id(db, WANG)
    assert who(await route(db, "QS-JB-TH-01", "repair", exclude_staff_ids={wang}))[0] == LI


async def test_nobody_reachable_anywhere_gives_no_route(db: Database) -> None:
    async with db.transaction() as session:
        await session.exec(update(Staff).values(telegram_id=None))  # type: ignore[call-overload]
    assert await route(db, "QS-JB-TH-01", "repair") is None


async def test_submitted_request_records_the_skips_in_its_route_event(
    db: Database, clock: ManualClock
) -> None:
    await edit_staff(db, YANG, telegram_id=None)
    account, beneficiary = await resident(db, clock, "QS-JB-QJ-01")
    async with db.transaction() as session:
        request, found = await submit_request(
            session,
            reporter=account,
            beneficiary=beneficiary,
            kind="living",
            category="repair",
            description="Broken window",
            media_kind=None,
            media_file_id=None,
            now=clock.now(),
        )
    assert found is not None and found.staff.telegram_id == HU
    async with db.session() as session:
        stored = await session.get(Request, request.id)
        assert stored is not None
        assert (stored.status, stored.level, stored.assignee_staff_id) == (
            "assigned",
            "town",
            found.staff.id,
        )
        events = (await session.exec(select(RequestEvent).order_by(col(RequestEvent.id)))).all()
        assert [(e.action, e.to_status, e.to_level, e.note) for e in events] == [
            ("create", "new", "grid", None),
            ("route", "assigned", "town", "skip:grid:unreachable;skip:community:unreachable"),
        ]
