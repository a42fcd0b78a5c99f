"""The per-process roster cache (storage.roster_cache): units read once, then from memory; an
import, in this process or another, makes every process read them again."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlmodel import select

from domain.i18n import translator
from domain.labels import unit_name
from domain.lifecycle import Level
from domain.routing import units_on_ladder
from storage.database import Database
from storage.models import RosterVersion
from storage.roster import import_roster, sample_district_dir


@contextmanager
def units_statements(db: Database) -> Iterator[list[str]]:
    """The statements run on `db` that read the units or the roster's version."""
    seen: list[str] = []

    def executed(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "FROM units" in statement or "roster_version" in statement:
            seen.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", executed)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", executed)


class Ticks:
    """An injected monotonic clock for the cache's look at the roster's version."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def ladder(db: Database, grid: str) -> dict[Level, str]:
    async with db.session() as session:
        return await units_on_ladder(session, grid)


async def name(db: Database, code: str) -> str:
    async with db.session() as session:
        return await unit_name(session, translator("zh_CN"), code)


async def test_units_are_read_once_per_process(db: Database) -> None:
    with units_statements(db) as seen:
        first = await ladder(db, "QS-JB-TH-01")
        again = await ladder(db, "QS-JB-TH-01")
        other = await ladder(db, "QS-JB-QJ-01")
        label = await name(db, "QS-JB-TH")
    assert first == again
    assert first[Level.GRID] == "QS-JB-TH-01" and first[Level.COMMUNITY] == "QS-JB-TH"
    assert other[Level.TOWN] == first[Level.TOWN]
    assert label
    # The version, then the whole tree once; nothing more for four look-ups.
    assert len(seen) == 2, seen


async def test_units_without_a_cache_still_read(db: Database) -> None:
    """A session not made by `Database` (no cache) reads the table as before."""
    from sqlmodel.ext.asyncio.session import AsyncSession

    async with AsyncSession(db.engine) as session:
        chain = await units_on_ladder(session, "QS-JB-TH-01")
    assert chain[Level.GRID] == "QS-JB-TH-01"


async def test_an_import_here_is_seen_at_once(db: Database, tmp_path: Path) -> None:
    before = await name(db, "QS-JB-TH")
    directory = tmp_path / "roster"
    shutil.copytree(sample_district_dir(), directory)
    units = directory / "units.csv"
    units.write_text(units.read_text(encoding="utf-8").replace(before, "新名社区"), "utf-8")
    await import_roster(db, directory)
    assert await name(db, "QS-JB-TH") == "新名社区"


async def test_an_import_elsewhere_is_seen_within_the_check_interval(
    db: Database, tmp_path: Path
) -> None:
    """Another process (here a second `Database` on the same store) imports; this one reads
    the version again only after `check_every` and then reads the units again."""
    ticks = Ticks()
    db.roster.check_every = 10.0
    db.roster.monotonic = ticks
    db.roster.forget()
    before = await name(db, "QS-JB-TH")
    async with db.session() as session:
        version = (await session.exec(select(RosterVersion.version))).one()

    directory = tmp_path / "roster"
    shutil.copytree(sample_district_dir(), directory)
    units = directory / "units.csv"
    units.write_text(units.read_text(encoding="utf-8").replace(before, "新名社区"), "utf-8")
    other = Database(db.url, name="other-process")
    try:
        await import_roster(other, directory)
    finally:
        await other.dispose()
    async with db.session() as session:
        assert (await session.exec(select(RosterVersion.version))).one() == version + 1

    ticks.now = 5.0
    assert await name(db, "QS-JB-TH") == before  # not looked yet
    ticks.now = 10.5
    assert await name(db, "QS-JB-TH") == "新名社区"
