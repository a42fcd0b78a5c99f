"""The console channel: the same conversations typed in a terminal."""

from __future__ import annotations

import io

import pytest
from sqlmodel import select

import bot.channels.console as console_module
from bot.channels.console import ChatDriver, Transcript, console_line, plain, run_console
from bot.cli import console_command
from bot.settings import load_settings
from domain.clock import ManualClock
from domain.messages import Outbound
from domain.outbox import enqueue
from storage.database import Database
from storage.models import OutboxMessage, Unit
from tests.harness import ZONE

USER = 960000001


async def test_a_resident_types_and_presses_numbered_buttons(
    db: Database, clock: ManualClock
) -> None:
    out = io.StringIO()
    driver = ChatDriver(db, clock, ZONE)
    driver.languages[USER] = "en"
    driver.names[USER] = "you"
    Transcript(driver, out)
    for line in ["/start", "1", "2", "3", "1"]:  # agree, Jiangbei, Tianhe, Tianhe Grid 1
        await console_line(driver, USER, line, out)
    await console_line(driver, USER, "99", out)
    await console_line(driver, USER, ":sticker", out)
    transcript = out.getvalue()
    assert "👤 you › /start" in transcript
    assert "[1] ✅ I agree" in transcript
    assert "👤 you › [✅ I agree]" in transcript
    assert "You are registered in Jiangbei Street › Tianhe Community › Tianhe Grid 1" in transcript
    assert "(no such button)" in transcript
    assert "I can't read stickers" in transcript


async def test_staff_share_a_contact_in_the_console(db: Database, clock: ManualClock) -> None:
    out = io.StringIO()
    driver = ChatDriver(db, clock, ZONE)
    driver.languages[USER] = "en"
    Transcript(driver, out)
    await console_line(driver, USER, "/join", out)
    await console_line(driver, USER, ":contact 13800000013", out)
    assert "(type :contact PHONE)" in out.getvalue()
    assert "You are registered as community coordinator" in out.getvalue()


async def test_a_resident_shares_a_location_in_the_console(
    db: Database, clock: ManualClock
) -> None:
    async with db.transaction() as session:
        grid = await session.get(Unit, "QS-FM-MJ-02")
        assert grid is not None
        grid.lat, grid.lon = 28.2012, 112.9433
        session.add(grid)
    out = io.StringIO()
    driver = ChatDriver(db, clock, ZONE)
    driver.languages[USER] = "en"
    driver.names[USER] = "you"
    Transcript(driver, out)
    await console_line(driver, USER, "/start", out)
    await console_line(driver, USER, "1", out)  # agree
    assert "(type :location LAT LON)" in out.getvalue()
    await console_line(driver, USER, ":location here", out)
    assert "(type :location LAT LON, e.g." in out.getvalue()
    await console_line(driver, USER, ":location 28.2020 112.9433", out)
    transcript = out.getvalue()
    assert "👤 you › <location> 28.202, 112.9433" in transcript
    assert "The nearest grid, about 90 m away" in transcript
    await console_line(driver, USER, "1", out)
    assert "You are registered in Fengming Town › Maojiachong Village › Maojiachong Grid 2" in (
        out.getvalue()
    )


def test_plain_shows_html_as_a_person_reads_it() -> None:
    assert plain("<b>HY000001</b> &amp; more") == "HY000001 & more"


async def test_the_console_on_a_live_database_shows_only_its_own_chat(
    db: Database,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`huiyin console` next to a running bot: messages waiting for other chats stay pending
    for the worker (not printed here and marked sent), while the console's own are shown."""
    other = 960000002
    async with db.transaction() as session:
        enqueue(session, Outbound(chat_id=other, text="For someone else 13812345678"), clock.now())
    lines = iter(["/start"])

    def typed(_prompt: str = "") -> str:
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None

    monkeypatch.setattr("builtins.input", typed)
    out = io.StringIO()

    async def into_out(driver: ChatDriver, user: int) -> None:
        await run_console(driver, user, out)

    monkeypatch.setattr(console_module, "run_console", into_out)
    settings = load_settings(_env_file=None, database_url=db.url)
    assert await console_command(db, settings, str(USER), "en", clock) == 0
    shown = out.getvalue()
    assert "/start" in shown and "I agree" in shown
    assert "someone else" not in shown
    async with db.session() as session:
        rows = (await session.exec(select(OutboxMessage))).all()
    theirs = [row for row in rows if row.chat_id == other]
    mine = [row for row in rows if row.chat_id == USER]
    assert [(row.status, row.claimed_at) for row in theirs] == [("pending", None)]
    assert mine and all(row.status == "sent" for row in mine)
