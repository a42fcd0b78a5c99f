"""The console channel: the same conversations typed in a terminal."""

from __future__ import annotations

import io

from bot.channels.console import ChatDriver, Transcript, console_line, plain
from domain.clock import ManualClock
from storage.database import Database
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


def test_plain_shows_html_as_a_person_reads_it() -> None:
    assert plain("<b>HY000001</b> &amp; more") == "HY000001 & more"
