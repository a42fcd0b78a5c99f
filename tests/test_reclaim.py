"""A process that starts releases the outbox claims of a process of the deployment that is gone,
so that process's chats go on at once instead of after the 60 s claim timeout; a live process's
claims are left alone (PostgreSQL: alive means connected; SQLite: one process, so every claim
but its own is a dead one's).

What a dead process took into the inbox is handled at start-up too, with the clock standing
still: by a webhook replica (below) and by polling (tests/test_polling_inbox.py).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from sqlmodel import col, select

from bot.channels.memory import MemorySender
from domain.clock import ManualClock
from domain.messages import Outbound
from domain.outbox import enqueue
from schedules.outbox import OutboxSender
from storage.database import Database
from storage.inbox import take_in
from storage.models import InboxUpdate, OutboxMessage
from storage.outbox import release_dead_claims
from tests.fake_bot_api import FakeBotApi
from tests.test_webhook import STARTED_AT, prepared, pushed, replica

CHAT = 5001


class Arrivals(MemorySender):
    def __init__(self) -> None:
        super().__init__()
        self.arrived = asyncio.Event()

    async def send(self, message: Outbound) -> int:
        message_id = await super().send(message)
        self.arrived.set()
        return message_id


async def claimed_rows(db: Database, clock: ManualClock, holder: str, texts: list[str]) -> None:
    async with db.transaction() as session:
        for text in texts:
            enqueue(session, Outbound(chat_id=CHAT, text=text), clock.now())
    async with db.transaction() as session:
        rows = (await session.exec(select(OutboxMessage))).all()
        for row in rows:
            if row.payload.get("text") in texts:
                row.claimed_at = clock.now()
                row.claimed_by = holder
                session.add(row)


async def test_a_starting_worker_sends_what_a_dead_process_held_at_once(
    db: Database, clock: ManualClock
) -> None:
    await claimed_rows(db, clock, "huiyin:gone-host:4242", ["held by the dead", "and after it"])
    sender = Arrivals()
    outbox = OutboxSender(db, sender, clock)  # claim timeout 60 s; the clock stands still
    stop = asyncio.Event()
    running = asyncio.create_task(outbox.run(stop, interval=0.05))
    try:
        await asyncio.wait_for(sender.arrived.wait(), 10)
        await outbox.deliver_due()
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)
    assert [m.text for m in sender.messages(CHAT)] == ["held by the dead", "and after it"]
    async with db.session() as session:
        rows = (await session.exec(select(OutboxMessage))).all()
    assert {row.status for row in rows} == {"sent"}


async def test_claims_of_the_living_are_left_alone(db: Database, clock: ManualClock) -> None:
    """On PostgreSQL a process that is still connected keeps its claims; on SQLite the process
    itself is the only living one."""
    if db.engine.dialect.name == "postgresql":
        alive = Database(db.url, name="huiyin:alive-host:7")
        connection = await alive.engine.connect()  # it is up and connected
        living = alive.name
    else:
        alive, connection, living = None, None, db.name
    try:
        await claimed_rows(db, clock, living, ["mine"])
        await claimed_rows(db, clock, "huiyin:gone-host:4242", ["the dead one's"])
        assert await release_dead_claims(db) == 1
        async with db.session() as session:
            rows = (await session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id)))).all()
        assert [(row.payload["text"], row.claimed_by) for row in rows] == [
            ("mine", living),
            ("the dead one's", None),
        ]
        assert rows[1].claimed_at is None
    finally:
        if connection is not None and alive is not None:
            await connection.close()
            await alive.dispose()
    if alive is not None:
        # Gone now: the next start releases its claim too.
        assert await release_dead_claims(db) == 1


async def test_a_claim_of_unknown_origin_still_times_out(db: Database, clock: ManualClock) -> None:
    """Rows claimed before claims were signed: on PostgreSQL nobody can say whose they are, so
    they wait for the claim timeout as before; SQLite's one process releases them."""
    await claimed_rows(db, clock, "x", ["old claim"])
    async with db.transaction() as session:
        row = (await session.exec(select(OutboxMessage))).one()
        row.claimed_by = None
        session.add(row)
    released = await release_dead_claims(db)
    assert released == (0 if db.engine.dialect.name == "postgresql" else 1)
    sender = MemorySender()
    outbox = OutboxSender(db, sender, clock)
    clock.advance(timedelta(minutes=2))
    assert await outbox.deliver_due() == 1


async def test_a_starting_replica_handles_what_a_dead_one_took_in(tmp_path: Path) -> None:
    """An update a replica wrote to the inbox and died before handling is handled by the next
    replica that starts, at once (the clock stands still: no 30 s recovery wait)."""
    url = f"sqlite+aiosqlite:///{tmp_path}/hook.db"
    db = await prepared(url)
    async with FakeBotApi() as fake:
        update = pushed(fake, "/start")
        assert await take_in(db, update, STARTED_AT)  # the dead replica got this far
        async with replica(fake, url, "ptb"):
            await fake.wait_for(
                "sendMessage", lambda c: "Do you agree?" in c.params["text"], timeout=20
            )
    async with db.session() as session:
        row = await session.get(InboxUpdate, update["update_id"])
        assert row is not None and row.processed_at is not None
    await db.dispose()
