"""A place name's pinyin is read with pypinyin's phrase dictionary once, at the roster import,
and kept with the unit (`units.syllables`); the bot reads what residents type character by
character and never loads that dictionary (about 43 MiB of its memory, issue 14)."""

from __future__ import annotations

import shutil
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import select

from domain.places import find_places, keys_of, syllables_of, unit_keys
from storage.database import Database
from storage.models import Unit
from storage.pinyin import name_reading, readings_elsewhere
from storage.roster import import_roster, sample_district_dir
from tests.test_lazy_imports import run_fresh


def roster_with(tmp_path: Path, *rows: str) -> Path:
    directory = tmp_path / "roster"
    shutil.copytree(sample_district_dir(), directory)
    with (directory / "units.csv").open("a", encoding="utf-8") as units:
        units.writelines(row + "\n" for row in rows)
    return directory


async def test_the_import_keeps_each_names_phrase_reading(
    empty_db: Database, tmp_path: Path
) -> None:
    directory = roster_with(tmp_path, "QS-JB-CQ,community,QS-JB,重庆社区,Chongqing Community")
    await import_roster(empty_db, directory)
    async with empty_db.session() as session:
        units = {u.code: u for u in (await session.exec(select(Unit))).all()}
    assert units["QS-JB-CQ"].syllables == "chong qing she qu"  # a phrase: not "zhong qing"
    assert units["QS-JB-TH"].syllables == "tian he she qu"
    assert all(u.syllables == name_reading(u.name) for u in units.values())
    # Typed text is read character by character; the stored reading still answers it.
    assert syllables_of("重庆") == ("zhong", "qing")
    found = find_places(list(units.values()), "chongqing")
    assert [f.unit.code for f in found] == ["QS-JB-CQ"]
    assert unit_keys(units["QS-JB-CQ"]) == keys_of("重庆社区", "Chongqing Community")


async def test_an_upgraded_database_reads_its_units_names(any_empty_db: Database) -> None:
    db = any_empty_db
    await db.upgrade("0021")
    async with db.engine.begin() as conn:
        await conn.execute(
            sa.text("INSERT INTO units (code, level, name, name_en) VALUES (:c, :l, :n, '')"),
            [
                {"c": "D", "l": "district", "n": "青石区"},
                {"c": "D-CQ", "l": "town", "n": "重庆镇"},
                {"c": "D-X", "l": "town", "n": "X"},
            ],
        )
    await db.upgrade()
    async with db.engine.connect() as conn:
        rows = dict((await conn.execute(sa.text("SELECT code, syllables FROM units"))).all())
    assert rows == {"D": "qing shi qu", "D-CQ": "chong qing zhen", "D-X": ""}


def test_names_are_read_the_same_in_a_child_process() -> None:
    names = ["重庆社区", "长沙村", "毛家冲村第一网格", "ABC", ""]
    assert readings_elsewhere(names) == [name_reading(n) for n in names]


# The bot's side, in a fresh interpreter (this one has long loaded the phrase dictionary): units
# as the import stored them, a search by characters, pinyin and a homophone; then, as the demo
# does in the bot's own process, a roster name read with phrases after all. Typed characters
# that place names read more than one way answer in each reading (长乐: zhang le, chang le).
SEARCH = """
import asyncio, sys, tempfile
from storage.database import Database
from storage.models import Unit
from storage.roster_cache import all_units
from domain.places import find_places

async def main():
    db = Database(f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/readings.db")
    await db.upgrade()
    async with db.transaction() as session:
        session.add(Unit(code="D", level="district", name="青石区", syllables="qing shi qu"))
        await session.flush()
        session.add(Unit(code="D-CQ", level="town", parent_code="D", name="重庆镇",
                         syllables="chong qing zhen"))
        session.add(Unit(code="D-ZS", level="town", parent_code="D", name="中山镇",
                         syllables="zhong shan zhen"))
        session.add(Unit(code="D-CL", level="town", parent_code="D", name="常乐镇",
                         syllables="chang le zhen"))
    async with db.session() as session:
        units = [u for u in await all_units(session) if u.code != "D"]
    for typed in ("重庆", "chongqing", "cqz", "虫庆", "zhongshan", "长乐"):
        print(typed, [f.unit.code for f in find_places(units, typed)])
    print("phrases", "pypinyin.phrases_dict" in sys.modules, "pypinyin" in sys.modules)
    from storage.pinyin import name_reading
    print("import", name_reading("重庆镇"))
    await db.dispose()

asyncio.run(main())
"""


def test_the_bots_place_search_does_not_load_the_phrase_dictionary(tmp_path: Path) -> None:
    assert run_fresh(SEARCH, tmp_path).splitlines() == [
        "重庆 ['D-CQ']",
        "chongqing ['D-CQ']",
        "cqz ['D-CQ']",
        "虫庆 ['D-CQ']",
        "zhongshan ['D-ZS']",
        "长乐 ['D-CL']",  # a homophone: 长 alone reads zhang, in 长乐 chang
        "phrases False True",
        "import chong qing zhen",
    ]
