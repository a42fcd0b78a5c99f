"""A message while the database is busy: retried, and never silently lost.

Another process holding SQLite's write lock is played by a plain `sqlite3` connection inside
`BEGIN EXCLUSIVE`. The dispatcher's back-off is injected, so nothing here waits for real.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import select

from bot.channels.memory import MemorySender
from bot.dispatcher import Dispatcher
from domain.clock import ManualClock
from domain.i18n import translator
from domain.messages import Inbound
from schedules.outbox import OutboxSender
from storage.database import Database
from storage.models import ConversationState
from storage.roster import import_roster, sample_district_dir
from tests.harness import ZONE

RESIDENT = 950000001


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> Database:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/busy.db", busy_timeout_ms=20)
    await db.upgrade()
    await import_roster(db, sample_district_dir())
    return db


@pytest.fixture
def other_process(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(tmp_path / "busy.db", isolation_level=None, timeout=0)
    yield connection
    connection.close()


def start(update_id: int) -> Inbound:
    return Inbound(
        kind="command",
        user_id=RESIDENT,
        chat_id=RESIDENT,
        language="en",
        text="/start",
        command="start",
        update_id=update_id,
    )


async def test_busy_throughout_the_user_is_asked_to_send_again(
    sqlite_db: Database, other_process: sqlite3.Connection, clock: ManualClock
) -> None:
    sender = MemorySender()
    dispatcher = Dispatcher(sqlite_db, clock, ZONE, direct_sender=sender)
    waits: list[float] = []

    async def no_wait(seconds: float) -> None:
        waits.append(seconds)

    dispatcher.sleep = no_wait
    other_process.execute("BEGIN EXCLUSIVE")
    result = await dispatcher.handle(start(1))
    other_process.execute("ROLLBACK")

    t = translator("en")
    busy = t._("Sorry, the system is busy right now. Please send that again in a minute.")
    assert [m.text for m in sender.messages(RESIDENT)] == [busy]
    assert result.callback_answer == busy[:200]
    assert len(waits) == 4 and waits == sorted(waits), "backs off before giving up"
    async with sqlite_db.session() as session:
        assert (await session.exec(select(ConversationState))).all() == []

    # Sent again once the database is free, it is handled as usual.
    await dispatcher.handle(start(2))
    await OutboxSender(sqlite_db, sender, clock).deliver_due()
    assert "Do you agree?" in sender.messages(RESIDENT)[-1].text
    await sqlite_db.dispose()


async def test_busy_for_a_moment_the_message_is_handled_after_a_retry(
    sqlite_db: Database, other_process: sqlite3.Connection, clock: ManualClock
) -> None:
    sender = MemorySender()
    dispatcher = Dispatcher(sqlite_db, clock, ZONE, direct_sender=sender)

    async def other_process_finishes(_seconds: float) -> None:
        if other_process.in_transaction:
            other_process.execute("COMMIT")

    dispatcher.sleep = other_process_finishes
    other_process.execute("BEGIN EXCLUSIVE")
    await dispatcher.handle(start(1))
    await OutboxSender(sqlite_db, sender, clock).deliver_due()
    texts = [m.text for m in sender.messages(RESIDENT)]
    assert len(texts) == 1 and "Do you agree?" in texts[0]
    await sqlite_db.dispose()
