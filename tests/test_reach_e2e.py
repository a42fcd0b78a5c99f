"""Reachability through the real python-telegram-bot and aiogram stacks: a grid member who
never opened the bot is not given the need, and a task card Telegram refuses (the grid member
blocked the bot) goes on to the next reachable person without waiting for a deadline."""

from __future__ import annotations

from sqlmodel import col, select

from domain.reach import Reach, reach_of
from storage.models import Request, RequestEvent, Staff
from tests.test_e2e_telegram import RESIDENT, WANG, Running, User
from tests.test_e2e_telegram import running as running  # the fixture, re-exported

LI = 700000002  # the other grid member of Tianhe Grid 1
XU = 700000011  # coordinator of Tianhe community


async def report_repair(resident: User) -> None:
    await resident.say("/start g_QS-JB-TH-01", "Do you agree?")
    await resident.tap("yes", "You are registered in")
    await resident.tap("report", "What kind")
    await resident.tap("living", "Which of these")
    await resident.tap("repair", "Please describe")
    await resident.say("The kitchen tap leaks", "Please check")


async def notes(running: Running) -> list[tuple[str, str | None]]:
    async with running.db.session() as session:
        rows = await session.exec(
            select(RequestEvent.action, RequestEvent.note).order_by(col(RequestEvent.id))
        )
        return [(action, note) for action, note in rows.all()]


async def staff(running: Running, telegram_id: int) -> Staff:
    async with running.db.session() as session:
        return (await session.exec(select(Staff).where(Staff.telegram_id == telegram_id))).one()


async def test_a_grid_member_who_never_opened_the_bot_is_not_given_the_need(
    running: Running,
) -> None:
    fake = running.fake
    xu, resident = User(fake, XU), User(fake, RESIDENT)
    await xu.say("/start", "You are registered as")
    await report_repair(resident)
    mark = len(fake.calls)
    await resident.tap("submit", "徐国庆 (community coordinator) will handle it")
    await xu.expect("New task", after=mark)

    assert await notes(running) == [
        ("create", None),
        ("route", "skip:grid:unreachable"),
    ]
    assert reach_of(await staff(running, WANG)) is Reach.NOT_OPENED
    assert not any(c.params.get("chat_id") == WANG for c in fake.calls)


async def test_a_refused_task_card_goes_on_to_the_next_reachable_person(
    running: Running,
) -> None:
    fake = running.fake
    wang, li, resident = User(fake, WANG), User(fake, LI), User(fake, RESIDENT)
    await wang.say("/start", "You are registered as")
    await li.say("/start", "You are registered as")
    running.block(WANG)
    await report_repair(resident)
    mark = len(fake.calls)
    await resident.tap("submit", "王建华 (grid member) will handle it")

    card = await li.expect("New task", after=mark)
    assert "HY000001" in card.params["text"]
    await resident.expect("is now with 李秀英", after=mark)
    refused = [c for c in fake.calls[mark:] if not c.ok]
    assert [(c.params.get("chat_id"), c.status) for c in refused] == [(WANG, 403)]

    assert await notes(running) == [
        ("create", None),
        ("route", None),
        ("reassign", "why:unreachable:blocked"),
    ]
    assert (await staff(running, WANG)).refused_reason == "blocked"
    async with running.db.session() as session:
        request = (await session.exec(select(Request))).one()
    assert request.assignee_staff_id == (await staff(running, LI)).id

    # Writing again unblocks: Wang is reachable, and has nothing waiting (Li has it).
    mark = len(fake.calls)
    await wang.say("/start", "You are registered as")
    assert reach_of(await staff(running, WANG)) is Reach.REACHABLE
    assert not any("waiting for you" in str(c.params.get("text")) for c in fake.calls[mark:])
