"""Shared fixtures: a migrated database with the sample district, an injected clock."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.clock import ManualClock
from storage.database import Database
from storage.roster import import_roster, sample_district_dir
from tests.harness import Harness


def database_urls() -> list[str]:
    urls = ["sqlite"]
    if os.environ.get("HUIYIN_TEST_POSTGRES_URL"):
        urls.append("postgresql")
    return urls


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
