"""Migrations: the stairway (up, down, up again) and the schema matching the models."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlmodel import SQLModel, select

from domain.messages import Outbound
from domain.outbox import enqueue
from storage.database import Database, alembic_config
from storage.models import Staff
from storage.roster import import_roster, sample_district_dir

NOW = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)


def revisions() -> list[str]:
    script = ScriptDirectory.from_config(alembic_config())
    return [r.revision for r in reversed(list(script.walk_revisions()))]


async def table_names(db: Database) -> set[str]:
    async with db.engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))


async def test_stairway_up_down_up(any_empty_db: Database) -> None:
    db = any_empty_db
    chain = revisions()
    assert chain, "there must be at least one migration"
    for index, revision in enumerate(chain):
        await db.upgrade(revision)
        await db.downgrade(chain[index - 1] if index else "base")
        if index == 0:
            assert await table_names(db) <= {"alembic_version"}
        await db.upgrade(revision)
    assert {"requests", "request_events", "outbox", "staff"} <= await table_names(db)


async def test_schema_matches_models(any_empty_db: Database) -> None:
    await any_empty_db.upgrade()

    def differences(connection: object) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})  # type: ignore[arg-type]
        return compare_metadata(context, SQLModel.metadata)

    async with any_empty_db.engine.connect() as conn:
        diff = await conn.run_sync(differences)
    assert diff == [], f"models and migrations disagree: {diff}"


async def sqlite_statistics(db: Database) -> dict[str, int]:
    """SQLite's row count per table as ANALYZE last saw it (nothing before the first one)."""
    async with db.engine.connect() as conn:
        if not (
            await conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'")
        ).first():
            return {}
        rows = await conn.exec_driver_sql("SELECT tbl, stat FROM sqlite_stat1")
        return {table: int(stat.split()[0]) for table, stat in rows.all()}


async def test_sqlite_statistics_follow_migrations_and_roster_imports(
    any_empty_db: Database,
) -> None:
    """SQLite gathers no statistics by itself: the migrations (at every start) and a roster
    import refresh them, so its planner sees the tables as they are."""
    db = any_empty_db
    if not db.url.startswith("sqlite"):
        pytest.skip("PostgreSQL's autovacuum keeps its own statistics")
    await db.upgrade()
    assert "staff" not in await sqlite_statistics(db)  # nothing to count yet

    summary = await import_roster(db, sample_district_dir())
    async with db.session() as session:
        staff = len((await session.exec(select(Staff))).all())
    assert staff == summary.staff_added > 0
    assert (await sqlite_statistics(db))["staff"] == staff

    async with db.transaction() as session:
        for n in range(30):
            enqueue(session, Outbound(chat_id=n % 3, text="hello"), NOW)
    assert "outbox" not in await sqlite_statistics(db)
    await db.upgrade()  # as at the next start: nothing to migrate, the statistics refreshed
    assert (await sqlite_statistics(db))["outbox"] == 30
