"""/team and the digest's line on who cannot be reached, through the real python-telegram-bot
and aiogram stacks: a coordinator who opened the bot sees a grid member who has not, gets a
t.me join link for him, and the grid member who opens it is reachable; the start-up digest of
a coordinator names the grid members who have not opened Huiyin, titled "good morning" only
in the morning."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlmodel import col, select

from domain.i18n import translator
from domain.reach import Reach, reach_of
from storage.models import Invite, Staff
from tests.test_e2e_telegram import (
    WANG,
    Running,
    Start,
    User,
    bot_running,
    chat_of,
    starts,
)
from tests.test_e2e_telegram import running as running  # the fixture, re-exported

XU = 700000011  # coordinator of Tianhe community: grid members 王建华, 李秀英 (Grid 1), 张伟


async def staff(running: Running, telegram_id: int) -> Staff:
    async with running.db.session() as session:
        return (await session.exec(select(Staff).where(Staff.telegram_id == telegram_id))).one()


@pytest.mark.parametrize("running", starts("workday-1000"), indirect=True)
async def test_a_coordinator_gets_a_join_link_that_makes_a_grid_member_reachable(
    running: Running,
) -> None:
    fake = running.fake
    xu, wang = User(fake, XU), User(fake, WANG)
    await xu.say("/start", "You are registered as")
    team = await xu.say("/team", "<b>Your team: 3 people</b>")
    assert "⏳ 王建华 · grid member · Tianhe Grid 1 — has not opened Huiyin yet" in str(
        fake.messages(XU)[-1].plain_text
    )
    person = await staff(running, WANG)
    mark = len(fake.calls)
    await xu.press(
        team.result_or_error["message_id"], f"tl:{person.id}", "The join link for 王建华"
    )
    link = await xu.expect("https://t.me/huiyin_test_bot?start=i_", after=mark)
    assert link.ok
    url = re.search(r"https://t\.me/huiyin_test_bot\?start=(i_[A-Za-z0-9_-]+)", link.params["text"])
    assert url is not None
    keyboard = fake.messages(XU)[-1].inline_markup or {}
    assert keyboard["inline_keyboard"] == [[{"text": "Open Huiyin", "url": url.group(0)}]]

    # He opens the link (Telegram sends the bot /start with its parameter): bound, reachable.
    await wang.say(f"/start {url.group(1)}", "You are registered as grid member")
    assert reach_of(await staff(running, WANG)) is Reach.REACHABLE
    async with running.db.session() as session:
        invite = await session.get(Invite, url.group(1).removeprefix("i_"))
        assert invite is not None and invite.used_by_telegram_id == WANG
    await xu.say("/team", "✅ 1 reachable")
    assert "✅ 王建华 · grid member · Tianhe Grid 1" in str(fake.messages(XU)[-1].plain_text)


async def xu_opened(running: Running) -> None:
    """Before the bot starts: Xu opened Huiyin yesterday; his grid members never have."""
    async with running.db.transaction() as session:
        await session.exec(
            update(Staff)
            .where(col(Staff.telegram_id) == XU)
            .values(opened_at=running.clock.now() - timedelta(days=1))
        )  # type: ignore[call-overload]
    running.fake.known_chat(XU)


@pytest.mark.parametrize(
    "start", starts("workday-0900", "workday-1000", "workday-2300", "saturday-1000")
)
async def test_the_start_up_digest_names_who_has_not_opened_huiyin(
    tmp_path: Path, start: Start
) -> None:
    zh = translator("zh_CN")
    async with bot_running(tmp_path, start, xu_opened) as running:
        sent = [c for c in running.fake.calls if c.method == "sendMessage" and chat_of(c) == XU]
        if start.moment in ("workday-2300", "saturday-1000"):
            assert sent == []  # after the working day; a rest day
            return
        (digest,) = sent
        assert digest.ok
        lines = digest.params["text"].split("\n")
        if start.moment == "workday-0900":
            assert lines[0] == zh._(
                "☀️ Good morning. Where things stand in {place}:", place="天河社区"
            )
        else:  # more than an hour after the digest time: a catch-up
            assert lines[0] == zh._(
                "📋 Where things stand in {place} at {time}:", place="天河社区", time="10:00"
            )
        assert lines[-1] == zh.ngettext(
            "📵 {n} of your staff has not opened Huiyin yet: {names}; send /team for "
            "their join links.",
            "📵 {n} of your staff have not opened Huiyin yet: {names}; send /team for "
            "their join links.",
            3,
            names="李秀英, 王建华, 张伟",
        )
