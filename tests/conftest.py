"""Shared fixtures: a migrated database with the sample district, an injected clock."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import make_url, text, update
from sqlmodel import SQLModel, col

from domain.clock import ManualClock
from storage.database import Database
from storage.models import Staff
from storage.roster import import_roster, sample_district_dir
from tests.harness import Harness
from tests.scratch_postgres import drop_database, recreate_database, scratch_database

POSTGRES_URL = os.environ.get("HUIYIN_TEST_POSTGRES_URL", "")


@asynccontextmanager
async def postgres_database() -> AsyncIterator[Database]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    async with scratch_database(POSTGRES_URL, "huiyin_test") as url:
        db = Database(url)
        try:
            yield db
        finally:
            await db.dispose()


# Creating and migrating a PostgreSQL database per test costs seconds (CREATE DATABASE waits for
# a checkpoint); tests instead share one migrated database per session and start from empty
# tables (TRUNCATE ... RESTART IDENTITY), which takes milliseconds.
_SHARED: dict[str, Database] = {}


async def shared_postgres() -> Database:
    if "db" not in _SHARED:
        name = f"huiyin_test_shared_{os.getpid()}"
        url = await recreate_database(
            make_url(POSTGRES_URL).set(database=name).render_as_string(False)
        )
        db = Database(url)
        await db.upgrade()
        _SHARED["db"] = db
    return _SHARED["db"]


async def emptied(db: Database) -> Database:
    tables = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    async with db.engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    # Each test runs in its own event loop; pooled connections belong to the last one.
    await db.engine.dispose()
    db.roster.forget()  # the last test's units
    return db


async def _drop_shared() -> None:
    db = _SHARED.pop("db")
    await db.dispose()
    await drop_database(db.url)


@pytest.fixture(scope="session", autouse=True)
def drop_shared_postgres() -> Iterator[None]:
    yield
    if _SHARED:
        asyncio.run(_drop_shared())


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """Tests that take a database run on SQLite, and on PostgreSQL when
    HUIYIN_TEST_POSTGRES_URL is set."""
    if request.param == "postgresql" and not POSTGRES_URL:
        pytest.skip("HUIYIN_TEST_POSTGRES_URL is not set")
    return str(request.param)


@asynccontextmanager
async def database(
    backend: str, tmp_path: Path, *, migrated: bool, seeded: bool, opened: bool = True
) -> AsyncIterator[Database]:
    if backend == "postgresql":
        if not migrated:
            async with postgres_database() as db:
                yield db
            return
        db = await emptied(await shared_postgres())
        if seeded:
            await import_roster(db, sample_district_dir())
            if opened:
                await everyone_opened(db)
        try:
            yield db
        finally:
            await db.engine.dispose()
        return
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/huiyin.db")
    try:
        if migrated:
            await db.upgrade()
        if seeded:
            await import_roster(db, sample_district_dir())
            if opened:
                await everyone_opened(db)
        yield db
    finally:
        await db.dispose()


# When the roster's staff opened the bot in the `db` fixture: a district that has run for a while.
OPENED_AT = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)


async def everyone_opened(db: Database) -> None:
    """Every roster entry with a Telegram id has opened the bot (see domain.reach)."""
    async with db.transaction() as session:
        await session.exec(
            update(Staff).where(col(Staff.telegram_id).is_not(None)).values(opened_at=OPENED_AT)
        )  # type: ignore[call-overload]


@pytest.fixture
async def any_empty_db(backend: str, tmp_path: Path) -> AsyncIterator[Database]:
    """A database with no tables at all (for the migration tests)."""
    async with database(backend, tmp_path, migrated=False, seeded=False) as db:
        yield db


@pytest.fixture
async def empty_db(backend: str, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated, empty database."""
    async with database(backend, tmp_path, migrated=True, seeded=False) as db:
        yield db


@pytest.fixture
async def db(backend: str, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated database holding the sample district's roster."""
    async with database(backend, tmp_path, migrated=True, seeded=True) as db:
        yield db


@pytest.fixture
async def unopened_db(backend: str, tmp_path: Path) -> AsyncIterator[Database]:
    """The sample district on the day it switches on: nobody has opened the bot yet."""
    async with database(backend, tmp_path, migrated=True, seeded=True, opened=False) as db:
        yield db


@pytest.fixture
def clock() -> ManualClock:
    # 10:00 on a Monday in Asia/Shanghai
    return ManualClock(datetime(2026, 11, 30, 2, 0, tzinfo=UTC))


@pytest.fixture
def harness(db: Database, clock: ManualClock) -> Harness:
    return Harness(db, clock)
