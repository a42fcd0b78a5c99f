"""The outbox's retention on a big outbox: how long the card look-ups take before and after the
sent rows older than the retention period are deleted, and how long the deleting takes.

    .venv/bin/python bench/outbox_prune.py [--rows 100000] [--days 90] [--backend both]

An outbox of `--rows` sent rows written evenly over `--days` days up to now, a quarter of them
one busy chat's (as in the issue's "25,000 rows for a chat"), the rest spread over 2,000 chats;
half the messages are cards (a `ref_key`, a send and three edits: four rows), the other half
replies without a key (one row). Then, with statistics fresh (ANALYZE), the median of 200 calls of
`latest_sent_message_id` (a card of the busy chat, and one of another chat) and of 50 calls of
`handlers.cards.in_touch` for the busy chat; then `schedules.retention.forget_outbox` with the
default 30 days, timed, and the same look-ups again.

PostgreSQL: HUIYIN_BENCH_DATABASE_URL (by default
postgresql+asyncpg://postgres@127.0.0.1:5432/huiyin_bench_prune; dropped and created again).
SQLite: a file in a temporary directory.

This is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert
from sqlmodel import func, select

from domain.messages import Outbound
from handlers.cards import in_touch
from schedules.retention import forget_outbox
from storage.database import Database
from storage.models import OutboxMessage
from storage.outbox import latest_sent_message_id
from tests.scratch_postgres import recreate_database

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/huiyin_bench_prune"
NOW = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
BUSY = 700_000_001
RETENTION = timedelta(days=30)


async def fresh_database(backend: str) -> Database:
    if backend == "sqlite":
        db = Database(f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/prune.db")
    else:
        url = os.environ.get("HUIYIN_BENCH_DATABASE_URL", DEFAULT_URL)
        db = Database(await recreate_database(url))
    await db.upgrade()
    return db


async def fill(db: Database, rows: int, days: int) -> list[tuple[int, str]]:
    """The outbox; returns the cards (chat, ref key)."""
    rng = random.Random(14)
    payload = Outbound(chat_id=0, text="您的需求已由网格员受理，编号 HY000001。" * 3).to_payload()
    step = timedelta(days=days) / rows
    cards: list[tuple[int, str]] = []
    batch: list[dict[str, object]] = []
    n = 0
    while n < rows:
        chat = BUSY if rng.random() < 0.25 else 800_000_000 + rng.randrange(2000)
        group: list[str | None] = [None]
        if rng.random() < 0.5:
            ref = f"card:{n}:1"
            cards.append((chat, ref))
            group = [ref] * 4
        for ref_key in group:
            created = NOW - timedelta(days=days) + step * n
            batch.append(
                {
                    "chat_id": chat,
                    "payload": payload,
                    "ref_key": ref_key,
                    "status": "sent",
                    "attempts": 1,
                    "created_at": created,
                    "next_attempt_at": created,
                    "sent_at": created,
                    "sent_message_id": n + 1,
                }
            )
            n += 1
        if len(batch) >= 5000 or n >= rows:
            async with db.engine.begin() as conn:
                await conn.execute(insert(OutboxMessage), batch)
            batch = []
    return cards


async def analyze(db: Database) -> None:
    async with db.engine.begin() as conn:
        await conn.exec_driver_sql("ANALYZE")


async def median_ms(calls: int, call: Callable[[], Awaitable[object]]) -> float:
    times = []
    for _ in range(calls):
        began = time.perf_counter()
        await call()
        times.append(time.perf_counter() - began)
    return 1000 * statistics.median(times)


async def lookups(db: Database, busy_card: tuple[int, str], other_card: tuple[int, str]) -> str:
    async with db.session() as session:
        busy = await median_ms(200, lambda: latest_sent_message_id(session, *busy_card))
        other = await median_ms(200, lambda: latest_sent_message_id(session, *other_card))
        touch = await median_ms(50, lambda: in_touch(session, BUSY, NOW))
        count = (await session.exec(select(func.count()).select_from(OutboxMessage))).one()
    return (
        f"{count:>9,} rows  latest_sent_message_id: busy chat {busy:6.2f} ms, another chat "
        f"{other:6.2f} ms;  in_touch (busy chat) {touch:6.2f} ms"
    )


async def measure(backend: str, rows: int, days: int) -> None:
    db = await fresh_database(backend)
    try:
        cards = await fill(db, rows, days)
        await analyze(db)
        # Cards from the retained month: they must still be found after the prune.
        recent = cards[-len(cards) // 4 :]
        busy_card = next(c for c in recent if c[0] == BUSY)
        other_card = next(c for c in recent if c[0] != BUSY)
        print(f"{backend}, before: {await lookups(db, busy_card, other_card)}")
        began = time.perf_counter()
        deleted = await forget_outbox(db, NOW - RETENTION)
        seconds = time.perf_counter() - began
        await analyze(db)
        print(f"{backend}, after:  {await lookups(db, busy_card, other_card)}")
        print(f"{backend}: the prune deleted {deleted:,} rows in {seconds:.1f} s")
    finally:
        await db.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args()
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    for backend in backends:
        await measure(backend, args.rows, args.days)


if __name__ == "__main__":
    asyncio.run(main())
