"""The morning digest on a district at real scale (tests/big_district.py: 651 coordinators and 13
town officers, most of them with something to hear): a morning costs a few statements and a
transaction per BATCH digests, not a few dozen statements per person; a second run the same
morning only reads; two workers at once still send each person one digest; and an area's
figures, summed from the district's per-grid figures, are the ones a query over the area
itself gives."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from datetime import datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import and_, event, func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.areas import area_of_unit
from domain.clock import ManualClock
from domain.deadlines import DEFAULT_POLICY
from domain.i18n import translator
from domain.metrics import conditions
from schedules.digest import BATCH, DigestReport, send_digests
from storage.database import Database
from storage.models import DigestDelivery, OutboxMessage, Request, Staff, format_reference
from storage.roster import import_roster
from tests.big_district import a_morning_of_work, write_district
from tests.conftest import database

ZONE = ZoneInfo("Asia/Shanghai")
AT = time(8, 30)
MONDAY = datetime(2026, 11, 30, 8, 30, tzinfo=ZONE)
NEEDS = 1500


@pytest.fixture(scope="module")
def big_roster(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("big-district")
    write_district(directory)
    return directory


@pytest.fixture
async def district(backend: str, tmp_path: Path, big_roster: Path) -> AsyncIterator[Database]:
    async with database(backend, tmp_path, migrated=True, seeded=False) as db:
        await import_roster(db, big_roster)
        await a_morning_of_work(db, MONDAY, NEEDS)
        yield db


class Meter:
    def __init__(self, db: Database) -> None:
        self.engine = db.engine.sync_engine
        self.statements = 0
        self.commits = 0

    def statement(self, *_args: Any) -> None:
        self.statements += 1

    def commit(self, *_args: Any) -> None:
        self.commits += 1

    async def run(self, db: Database) -> DigestReport:
        self.statements = self.commits = 0
        event.listen(self.engine, "before_cursor_execute", self.statement)
        event.listen(self.engine, "commit", self.commit)
        try:
            return await send_digests(db, ManualClock(MONDAY), ZONE, DEFAULT_POLICY, AT)
        finally:
            event.remove(self.engine, "before_cursor_execute", self.statement)
            event.remove(self.engine, "commit", self.commit)


async def reachable_recipients(db: Database) -> set[int]:
    async with db.session() as session:
        rows = await session.exec(
            select(Staff.id).where(
                col(Staff.role).in_(("coordinator", "town_officer")),
                col(Staff.opened_at).is_not(None),
                col(Staff.refused_at).is_(None),
            )
        )
        return set(rows.all())


async def test_a_morning_costs_a_few_statements_not_a_few_per_person(district: Database) -> None:
    meter = Meter(district)
    first = await meter.run(district)
    everyone = await reachable_recipients(district)
    assert len(everyone) > 600
    assert set(first.sent) | set(first.nothing) == everyone
    assert len(first.sent) > 500
    batches = math.ceil(len(first.sent) / BATCH)
    assert meter.commits == batches
    # Reading: the recipients, the roster (cache), every grid's five figures, the unreached
    # staff's two; then per batch a lock, a re-read, the records and the outbox rows.
    assert meter.statements <= 11 + 4 * batches, meter.statements
    # The same morning again: everyone had theirs or has nothing; nothing is written.
    again = await meter.run(district)
    assert again.sent == [] and set(again.already) == set(first.sent)
    assert meter.commits == 0 and meter.statements <= 8, meter.statements


async def test_two_workers_at_once_send_each_person_one(district: Database) -> None:
    second = Database(district.url)  # another process's engine on the same database
    try:
        reports = await asyncio.gather(
            *(
                send_digests(d, ManualClock(MONDAY), ZONE, DEFAULT_POLICY, AT)
                for d in (district, second)
            )
        )
    finally:
        await second.dispose()
    sent = [staff_id for report in reports for staff_id in report.sent]
    assert len(sent) == len(set(sent)) > 500
    async with district.session() as session:
        chats = (
            await session.exec(
                select(OutboxMessage.chat_id).where(
                    col(OutboxMessage.ref_key) == "digest:2026-11-30"
                )
            )
        ).all()
        recorded = (await session.exec(select(DigestDelivery.staff_id))).all()
        telegram = (
            await session.exec(select(Staff.telegram_id).where(col(Staff.id).in_(sent)))
        ).all()
    assert len(chats) == len(set(chats)) == len(sent)
    assert sorted(chats) == sorted(telegram)
    assert sorted(recorded) == sorted(sent)


async def a_village_with_overdue_needs(session: AsyncSession) -> str:
    """The first village (by code) with an overdue need whose coordinator can be reached."""
    grids = await session.exec(
        select(Request.grid_code).where(conditions(MONDAY)["overdue"]).order_by(Request.grid_code)
    )
    reachable = set(
        (
            await session.exec(
                select(Staff.unit_code).where(
                    Staff.role == "coordinator", col(Staff.opened_at).is_not(None)
                )
            )
        ).all()
    )
    return next(v for v in (g.rsplit("-", 1)[0] for g in grids.all()) if v in reachable)


@pytest.mark.parametrize("level", ["town", "village", "district"])
async def test_an_areas_figures_are_those_of_a_query_over_the_area(
    district: Database, level: str
) -> None:
    """The overdue line of a town officer's and a coordinator's digest (and of a town officer
    put on the district itself: every grid), against a count and the first references read
    over the area itself."""
    if level == "district":
        async with district.transaction() as session:
            await session.exec(
                update(Staff).where(col(Staff.unit_code) == "BD-T01").values(unit_code="BD")
            )  # type: ignore[call-overload]
    await send_digests(district, ManualClock(MONDAY), ZONE, DEFAULT_POLICY, AT)
    async with district.session() as session:
        unit = {"town": "BD-T01", "district": "BD"}.get(level) or (
            await a_village_with_overdue_needs(session)
        )
        area = await area_of_unit(session, unit)
        assert area is not None
        overdue = and_(area.clause(), conditions(MONDAY)["overdue"])
        total = (await session.exec(select(func.count()).select_from(Request).where(overdue))).one()
        first = (
            await session.exec(
                select(Request.id)
                .where(overdue)
                .order_by(col(Request.next_due_at), col(Request.id))
                .limit(5)
            )
        ).all()
        person = (
            await session.exec(
                select(Staff).where(
                    Staff.unit_code == unit, col(Staff.role).in_(("coordinator", "town_officer"))
                )
            )
        ).one()
        (message,) = (
            await session.exec(
                select(OutboxMessage).where(OutboxMessage.chat_id == person.telegram_id)
            )
        ).all()
    assert total > 0
    t = translator("zh_CN")
    shown = ", ".join(format_reference(rid) for rid in first if rid is not None)
    if total > 5:
        shown += " " + t._("and {count} more", count=total - 5)
    assert f"{t._('⏰ Overdue')}: <b>{total}</b> — {shown}" in message.payload["text"].split("\n")
