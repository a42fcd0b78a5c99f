"""End to end at district scale: the real python-telegram-bot and aiogram stacks, the 651-village
roster, the loopback fake Bot API. A resident finds a village by typing its name, another pages
through the towns and the 51 villages of a town; Telegram refuses nothing (checked on leaving
`bot_running`), and every keyboard the bot sends or edits stays within Telegram's limits and
shows at most 12 places."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from domain.places import PAGE_SIZE
from storage.models import Account
from tests.big_district import grid_centre, write_district
from tests.test_e2e_telegram import FRAMEWORKS, Running, Start, User, bot_running

FINDER = 931001
PAGER = 931002
MJC = "BD-T01-V001"  # 毛家冲村


@pytest.fixture(scope="module")
def big_roster(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("big-district-e2e")
    write_district(directory)
    return directory


def keyboards(running: Running) -> list[list[list[dict[str, Any]]]]:
    """The inline keyboard of every message the bot sent or edited."""
    found = []
    for call in running.fake.calls:
        if call.method.lower() not in ("sendmessage", "editmessagetext"):
            continue
        markup = call.params.get("reply_markup")
        if isinstance(markup, str):
            markup = json.loads(markup)
        if markup and "inline_keyboard" in markup:
            found.append(markup["inline_keyboard"])
    return found


async def home_of(running: Running, user: int) -> str | None:
    async with running.db.session() as session:
        account = (await session.exec(select(Account).where(Account.telegram_id == user))).first()
        return account.home_grid_code if account else None


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_finding_a_village_among_651_on_both_frameworks(
    framework: str, tmp_path: Path, big_roster: Path
) -> None:
    async with bot_running(
        tmp_path, Start(framework, "workday-1000"), roster=big_roster
    ) as running:
        fake = running.fake
        finder, pager = User(fake, FINDER), User(fake, PAGER)

        # Typing: the initials give a short list, the pinyin one village to confirm.
        await finder.say("/start", "Do you agree?")
        await finder.tap("yes", "Choose the street or town")
        await finder.say("mjc", "places match")
        await finder.say("maojiachong", "Is this the place?")
        mark = len(fake.calls)
        await finder.tap(MJC, "choose your grid")
        closed = await fake.wait_for(
            "editMessageText", lambda c: "✔" in c.params["text"], after=mark
        )
        assert "reply_markup" not in closed.params or not json.loads(
            closed.params["reply_markup"]
        ).get("inline_keyboard")
        await finder.say("2", "I found no place")
        await finder.tap(f"{MJC}-G2", "You are registered in")
        assert await home_of(running, FINDER) == f"{MJC}-G2"

        # Paging: 13 towns on two pages, the 51 villages of 凤鸣镇 on five.
        await pager.say("/start", "Do you agree?")
        await pager.tap("yes", "Choose the street or town")
        await pager.tap("next", "Page 2 of 2", method="editMessageText")
        await pager.tap("prev", "Page 1 of 2", method="editMessageText")
        await pager.tap("BD-T01", "Page 1 of 5")
        for page in range(2, 6):
            await pager.tap("next", f"Page {page} of 5", method="editMessageText")
        await pager.tap("BD-T01-V051", "choose your grid")
        await pager.tap("BD-T01-V051-G4", "You are registered in")
        assert await home_of(running, PAGER) == "BD-T01-V051-G4"

    shown = keyboards(running)
    assert len(shown) > 15
    for rows in shown:
        buttons = [b for row in rows for b in row]
        assert len(buttons) <= 100 and all(len(row) <= 8 for row in rows)
        places = [b for b in buttons if ":BD-" in b.get("callback_data", "")]
        assert len(places) <= PAGE_SIZE
        assert all(len(b["callback_data"].encode()) <= 64 for b in buttons if "callback_data" in b)


@pytest.fixture(scope="module")
def mapped_roster(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("big-district-mapped-e2e")
    write_district(directory, geometry=True)
    return directory


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_sharing_a_location_finds_the_grid_on_both_frameworks(
    framework: str, tmp_path: Path, mapped_roster: Path
) -> None:
    async with bot_running(
        tmp_path, Start(framework, "workday-1000"), roster=mapped_roster
    ) as running:
        fake = running.fake
        resident = User(fake, FINDER)
        await resident.say("/start", "Do you agree?")
        mark = len(fake.calls)
        await resident.tap("yes", "Choose the street or town")
        ask = await resident.expect("share your location", after=mark)
        markup = ask.params["reply_markup"]
        keyboard = json.loads(markup) if isinstance(markup, str) else markup
        assert keyboard["keyboard"][0][0]["request_location"] in (True, "true")

        lat, lon = grid_centre(0, 0, 1)
        mark = len(fake.calls)
        fake.push_location(FINDER, lat, lon, language_code="en")
        await resident.expect("That location is in", after=mark)
        mark = len(fake.calls)
        await resident.tap(f"{MJC}-G2", "You are registered in")
        removal = await resident.expect("✔", after=mark)
        markup = removal.params["reply_markup"]
        keyboard = json.loads(markup) if isinstance(markup, str) else markup
        assert keyboard.get("remove_keyboard") in (True, "true")
        assert await home_of(running, FINDER) == f"{MJC}-G2"
