"""PostgreSQL databases made for one test or one bench run, and dropped after it.

The tests (tests/conftest.py) and the benches (bench/*.py, run with PYTHONPATH=.) share these:
each used to carry its own copy of the same CREATE/DROP DATABASE block. Statements that
create or drop a database cannot run in a transaction, hence the AUTOCOMMIT engine, opened on
the server's maintenance database `postgres`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine


async def _administer(url: str, *statements: str) -> None:
    admin = create_async_engine(
        make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT"
    )
    try:
        async with admin.connect() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await admin.dispose()


async def recreate_database(url: str) -> str:
    """Drop the database `url` names, if it is there, and create it empty; return `url` (with
    its password, for `Database`). Point it at a database of its own: its rows are gone."""
    name = make_url(url).database
    await _administer(
        url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'
    )
    return make_url(url).render_as_string(hide_password=False)


async def create_scratch_database(server_url: str, prefix: str) -> str:
    """Create an empty database of a new name (`prefix` and random letters) on the server
    `server_url` reaches; return its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    await _administer(server_url, f'CREATE DATABASE "{name}"')
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


async def drop_database(url: str) -> None:
    """Drop the database `url` names, closing whatever connections are left on it."""
    await _administer(url, f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


@asynccontextmanager
async def scratch_database(server_url: str, prefix: str) -> AsyncIterator[str]:
    """The URL of a new empty database, dropped when the block ends (the caller disposes of
    its own engines first)."""
    url = await create_scratch_database(server_url, prefix)
    try:
        yield url
    finally:
        await drop_database(url)
