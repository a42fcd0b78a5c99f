"""Finding one's place at district scale (651 villages, 2,604 grids): the search rules on names
typed the ways residents type them, and the picker through the conversation: pages of at most 12
places, typed names, a choice that replaces the picker's buttons, a restart that keeps the page,
and a family member's picker that asks where she lives."""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlmodel import select

from domain.clock import ManualClock
from domain.i18n import translator
from domain.places import PAGE_SIZE, descendants, find_places
from storage.database import Database
from storage.models import Account, Unit
from storage.roster import import_roster
from tests.big_district import write_district
from tests.conftest import database
from tests.harness import Harness

RESIDENT = 930001


@pytest.fixture(scope="session")
def big_roster(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 651-village district, generated once per session."""
    directory = tmp_path_factory.mktemp("big-district")
    write_district(directory)
    return directory


@pytest.fixture(scope="session")
def big_units(big_roster: Path) -> list[Unit]:
    with (big_roster / "units.csv").open(encoding="utf-8") as handle:
        return [
            Unit(
                code=r["code"],
                level=r["level"],
                parent_code=r["parent"] or None,
                name=r["name"],
                name_en=r["name_en"],
            )
            for r in csv.DictReader(handle)
        ]


def test_the_generated_district_has_the_practices_size(big_units: list[Unit]) -> None:
    levels = [u.level for u in big_units]
    assert (levels.count("town"), levels.count("community"), levels.count("grid")) == (
        13,
        651,
        2604,
    )
    first_town = [u for u in big_units if u.parent_code == "BD-T01"]
    assert len(first_town) == 51


# What a resident types → the places offered, best first (codes of the generated district).
MJC = "BD-T01-V001"  # 毛家冲村, 凤鸣镇
TYPED: list[tuple[str, list[str]]] = [
    ("毛家冲村", [MJC]),  # the whole name
    ("毛家冲", [MJC]),  # without 村
    ("maojiachong cun", [MJC]),
    ("maojiachong", [MJC]),  # pinyin without the 村
    ("maojiachongcun", [MJC]),  # pinyin of the whole name
    ("Mao Jia Chong", [MJC]),  # pinyin with spaces and capitals
    ("MAOJIACHONG", [MJC]),
    ("毛家衝", [MJC]),  # traditional characters
    ("毛家充", [MJC]),  # the input method's wrong character, same sound
    ("ｍａｏｊｉａｃｈｏｎｇ", [MJC]),  # full-width letters
    ("Maojiachong Village", [MJC]),  # the English name
    ("凤鸣", ["BD-T01"]),  # a town without 镇
    ("fm", ["BD-T01"]),  # a town's initials
    ("changling", ["BD-T01-V003"]),  # 长岭村: 长 read chang, as place names do
    ("zhongyang", ["BD-T01-V004"]),  # 重阳村 typed with the other reading of 重
    ("长岭", ["BD-T01-V003"]),
    ("lijiawan", ["BD-T01-V002"]),  # 李家湾村
    ("李家湾 ", ["BD-T01-V002"]),  # a trailing space
    ("毛家冲第二网格", [f"{MJC}-G2"]),  # a grid, 村 left out
    ("毛家冲村第二网格", [f"{MJC}-G2"]),  # a grid by its whole name
]


@pytest.mark.parametrize(("typed", "expected"), TYPED, ids=[t for t, _ in TYPED])
def test_names_typed_the_ways_residents_type_them(
    big_units: list[Unit], typed: str, expected: list[str]
) -> None:
    found = find_places(descendants(big_units, "BD"), typed)
    assert [f.unit.code for f in found] == expected


def test_initials_shared_by_two_villages_give_a_short_list(big_units: list[Unit]) -> None:
    found = find_places(descendants(big_units, "BD"), "mjc")
    names = [f.unit.name for f in found]
    assert names[0] == "毛家冲村" and len(names) >= 2
    assert all(f.unit.level == "community" for f in found)  # not also their grids


def test_a_name_in_three_towns_lists_all_three(big_units: list[Unit]) -> None:
    found = find_places(descendants(big_units, "BD"), "石桥村")
    exact = [f.unit.parent_code for f in found if f.unit.name == "石桥村"]
    assert exact == ["BD-T01", "BD-T02", "BD-T03"]
    assert [f.unit.name for f in found][:3] == ["石桥村"] * 3  # exact names first


def test_search_stays_below_the_place_shown(big_units: list[Unit]) -> None:
    elsewhere = find_places(descendants(big_units, "BD-T02"), "毛家冲")
    assert elsewhere == []
    grids = find_places(descendants(big_units, MJC), "第二")
    assert [f.unit.code for f in grids] == [f"{MJC}-G2"]


def test_nothing_found_for_a_place_that_is_not_there(big_units: list[Unit]) -> None:
    scope = descendants(big_units, "BD")
    assert find_places(scope, "纽约") == []
    assert find_places(scope, "x") == []  # one letter says too little
    assert find_places(scope, "!!") == []


# Through the conversation --------------------------------------------------------------------


@pytest.fixture
async def district(backend: str, tmp_path: Path, big_roster: Path) -> AsyncIterator[Database]:
    async with database(backend, tmp_path, migrated=True, seeded=False) as db:
        await import_roster(db, big_roster)
        yield db


@pytest.fixture
def talk(district: Database, clock: ManualClock) -> Harness:
    harness = Harness(district, clock)
    harness.languages[RESIDENT] = "zh-hans"
    return harness


def step_value(data: str) -> str:
    return data.split(":", 2)[2] if data.startswith("c:") else data


def values(message: object) -> list[str]:
    return [step_value(b.data) for b in message.buttons]  # type: ignore[attr-defined]


async def choose(harness: Harness, value: str) -> None:
    await harness.tap(RESIDENT, value=value)


async def home_of(db: Database) -> str | None:
    async with db.session() as session:
        account = (
            await session.exec(select(Account).where(Account.telegram_id == RESIDENT))
        ).first()
        return account.home_grid_code if account else None


async def test_picker_pages_keep_the_order_and_never_pass_twelve(talk: Harness) -> None:
    await talk.say(RESIDENT, "/start")
    await choose(talk, "yes")
    towns = talk.sender.messages(RESIDENT)[-1]
    places = [v for v in values(towns) if v.startswith("BD-")]
    assert len(places) == PAGE_SIZE and "next" in values(towns) and "prev" not in values(towns)
    assert await talk.tap(RESIDENT, value="next") == []  # the same message, turned
    assert [v for v in values(towns) if v.startswith("BD-")] == ["BD-T13"]
    await choose(talk, "prev")
    await choose(talk, "BD-T01")

    villages: list[str] = []
    picker = talk.sender.messages(RESIDENT)[-1]
    t = translator("zh_CN")
    for page in range(1, 6):
        assert t._("Page {page} of {pages}", page=page, pages=5) in picker.text
        on_page = [v for v in values(picker) if v.startswith("BD-")]
        assert 0 < len(on_page) <= PAGE_SIZE
        villages += on_page
        if page < 5:
            await choose(talk, "next")
    assert villages == [f"BD-T01-V{i:03d}" for i in range(1, 52)]  # all 51, in order, once

    # A restart keeps the page: /start shows page 5 again.
    await choose(talk, "prev")
    await choose(talk, "prev")  # page 3
    shown = picker.text, values(picker)
    restarted = Harness(talk.db, talk.clock, languages=talk.languages)
    _, *closed, again = await restarted.say(RESIDENT, "/start")
    assert (again.text, values(again)) == shown
    assert [m.buttons for m in closed] == [[]]  # the copy shown before loses its buttons

    # A choice replaces the picker's buttons with what was chosen.
    await restarted.tap(RESIDENT, value="BD-T01-V030")
    closed = restarted.sender.messages(RESIDENT)[-2]
    assert closed.buttons == [] and "✔" in closed.text
    grids = restarted.sender.messages(RESIDENT)[-1]
    assert [v for v in values(grids) if v.startswith("BD-")] == [
        f"BD-T01-V030-G{g}" for g in range(1, 5)
    ]


async def test_typing_a_village_finds_it_in_one_message(talk: Harness) -> None:
    t = translator("zh_CN")
    await talk.say(RESIDENT, "/start")
    await choose(talk, "yes")

    (several,) = await talk.say(RESIDENT, "mjc")
    assert values(several)[0] == MJC and len(values(several)) >= 2
    assert "毛家冲村 · 凤鸣镇" in [b.text for b in several.buttons]

    (one,) = await talk.say(RESIDENT, "毛家衝")  # traditional
    assert one.text == t._("Is this the place? <b>{place}</b>", place="凤鸣镇 › 毛家冲村")
    assert values(one) == [MJC]
    assert several.buttons == []  # the earlier list's buttons are gone

    await talk.tap(RESIDENT, value=MJC)
    assert one.buttons == [] and "毛家冲村" in one.text
    pickers = [m for m in talk.sender.messages(RESIDENT) if m.message.ref in ("picker", "pickfind")]
    assert all(not m.buttons for m in pickers[:-1])  # nothing left to tap but the newest
    grids = talk.sender.messages(RESIDENT)[-1]
    assert [v for v in values(grids) if v.startswith("BD-")] == [
        f"{MJC}-G{g}" for g in (1, 2, 3, 4)
    ]

    (nothing,) = await talk.say(RESIDENT, "第九")
    assert nothing.text == t._(
        "I found no place called “{text}” in {place}. Please check the name, or choose with "
        "the buttons above.",
        text="第九",
        place="毛家冲村",
    )
    assert grids.buttons  # the picker keeps its buttons

    (photo_answer,) = await talk.send(RESIDENT, "photo", file_id="p1")
    assert photo_answer.text == t._("Please type the name of the place, or tap one of the buttons.")
    (grid,) = await talk.say(RESIDENT, "第二网格")
    assert values(grid) == [f"{MJC}-G2"]
    await talk.tap(RESIDENT, value=f"{MJC}-G2")
    assert await home_of(talk.db) == f"{MJC}-G2"


async def test_a_forged_place_from_another_town_is_refused(talk: Harness) -> None:
    t = translator("zh_CN")
    await talk.say(RESIDENT, "/start")
    await choose(talk, "yes")
    await choose(talk, "BD-T02")
    data = talk.button(RESIDENT, value="next")[1]
    nonce = data.split(":")[1]
    await talk.press(RESIDENT, f"c:{nonce}:{MJC}")  # a village of 凤鸣镇, not of 青山镇
    assert talk.last_answer == t._("That choice is no longer available. Please choose again.")
    assert await home_of(talk.db) is None


async def test_a_family_members_picker_asks_where_she_lives(
    harness: Harness,
) -> None:
    t = translator("zh_CN")
    user = 930002
    harness.languages[user] = "zh-hans"
    await harness.say(user, "/start")
    await harness.tap(user, value="yes")
    await harness.tap(user, value="QS-JB")
    await harness.tap(user, value="QS-JB-TH")
    await harness.tap(user, value="QS-JB-TH-01")
    await harness.tap(user, value="family")
    await harness.say(user, "陈淑芬")
    _, towns = await harness.tap(user, value="mother")
    assert towns.text.splitlines()[0] == t._("Choose the street or town where she lives:")
    assert towns.text.startswith("请选择她所在的")
    (villages,) = await harness.tap(user, value="QS-FM")
    assert villages.text.splitlines()[0] == t._(
        "{place}: choose the community or village where she lives:", place="凤鸣镇"
    )
    (found,) = await harness.say(user, "毛家冲")
    await harness.tap(user, value="QS-FM-MJ")
    grids = harness.sender.messages(user)[-1]
    assert grids.text.splitlines()[0] == t._(
        "{place}: choose the grid where she lives:", place="毛家冲村"
    )
    assert found.buttons == []
