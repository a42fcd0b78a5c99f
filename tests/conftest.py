"""Shared fixtures: a migrated database with the sample district, an injected clock."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.clock import ManualClock
from storage.database import Database
from storage.roster import import_roster, sample_district_dir
from tests.harness import Harness

POSTGRES_URL = os.environ.get("HUIYIN_TEST_POSTGRES_URL", "")


@asynccontextmanager
async def postgres_database() -> AsyncIterator[Database]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    server = make_url(POSTGRES_URL)
    name = f"huiyin_test_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(server, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    db = Database(server.set(database=name).render_as_string(hide_password=False))
    try:
        yield db
    finally:
        await db.dispose()
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
async def any_empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """An empty database on SQLite, and on PostgreSQL when HUIYIN_TEST_POSTGRES_URL is set."""
    if request.param == "sqlite":
        db = Database(f"sqlite+aiosqlite:///{tmp_path}/huiyin.db")
        yield db
        await db.dispose()
        return
    if not POSTGRES_URL:
        pytest.skip("HUIYIN_TEST_POSTGRES_URL is not set")
    async with postgres_database() as db:
        yield db


@pytest.fixture
async def empty_db(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/huiyin.db")
    await db.upgrade()
    yield db
    await db.dispose()


@pytest.fixture
async def db(empty_db: Database) -> Database:
    await import_roster(empty_db, sample_district_dir())
    return empty_db


@pytest.fixture
def clock() -> ManualClock:
    # 10:00 on a Monday in Asia/Shanghai
    return ManualClock(datetime(2026, 11, 30, 2, 0, tzinfo=UTC))


@pytest.fixture
def harness(db: Database, clock: ManualClock) -> Harness:
    return Harness(db, clock)
