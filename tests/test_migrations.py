"""Migrations: the stairway (up, down, up again) and the schema matching the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlmodel import SQLModel

from storage.database import Database, alembic_config


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
