"""Several processes on one PostgreSQL: exactly one active worker, a standby that takes over and
finishes what was due (once), and webhook replicas sharing one conversation.

These run when HUIYIN_TEST_POSTGRES_URL is set (`.ci/run` sets it). Each "process" has its own
`Database` (its own connection pool), as separate processes would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import col, select

from bot.channels.memory import MemorySender
from domain.clock import ManualClock
from domain.messages import Outbound
from domain.outbox import enqueue
from schedules.leadership import Leadership
from schedules.outbox import SendLimits
from schedules.worker import Worker
from storage.database import Database
from storage.models import OutboxMessage, WorkerLease
from storage.roster import import_roster, sample_district_dir
from tests.conftest import POSTGRES_URL, postgres_database
from tests.fake_bot_api import FakeBotApi
from tests.test_webhook import STARTED_AT, pushed, replica

pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason="HUIYIN_TEST_POSTGRES_URL is not set")
ZONE = ZoneInfo("Asia/Shanghai")
UNLIMITED = SendLimits(per_second=10_000, per_chat_per_second=10_000, chat_burst=10_000)


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    async with postgres_database() as db:
        await db.upgrade()
        await import_roster(db, sample_district_dir())
        yield db.url


class HangingSender(MemorySender):
    """A wedged worker: every send hangs (the network stalled, then the process died)."""

    def __init__(self) -> None:
        super().__init__()
        self.hung = asyncio.Event()

    async def send(self, message: Outbound) -> int:
        self.hung.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


class CountingSender(MemorySender):
    """Delivers like the memory channel and says when `expected` messages have arrived."""

    def __init__(self, expected: int) -> None:
        super().__init__()
        self.expected = expected
        self.all_arrived = asyncio.Event()

    async def send(self, message: Outbound) -> int:
        message_id = await super().send(message)
        if sum(len(chat) for chat in self.chats.values()) >= self.expected:
            self.all_arrived.set()
        return message_id


def start_worker(
    url: str, name: str, clock: ManualClock, sender: MemorySender, stop: asyncio.Event
) -> tuple[Leadership, asyncio.Task[None], Worker]:
    db = Database(url)
    worker = Worker(db, sender, clock, ZONE, outbox_interval=0.05, limits=UNLIMITED)
    worker.outbox.claim_timeout = timedelta(seconds=30)
    leadership = Leadership(db, clock, holder=name, retry_seconds=0.05, heartbeat_seconds=0.1)
    return leadership, asyncio.create_task(leadership.run(stop, worker.run)), worker


async def test_one_active_worker_and_a_standby_that_takes_over(pg_url: str) -> None:
    clock = ManualClock()
    db = Database(pg_url)
    async with db.transaction() as session:
        for n in range(20):
            enqueue(session, Outbound(chat_id=1000 + n % 4, text=f"message {n}"), clock.now())

    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    sender_a, sender_b = HangingSender(), CountingSender(expected=20)
    lead_a, task_a, worker_a = start_worker(pg_url, "worker-a", clock, sender_a, stop_a)
    await asyncio.wait_for(lead_a.active.wait(), 10)
    lead_b, task_b, worker_b = start_worker(pg_url, "worker-b", clock, sender_b, stop_b)
    await asyncio.wait_for(sender_a.hung.wait(), 10)
    # B stands by while A holds the lease.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(lead_b.active.wait(), 0.5)
    async with db.session() as session:
        lease = await session.get(WorkerLease, "worker")
        assert lease is not None and lease.holder == "worker-a"

    # A dies in the middle of a send: its task is gone and its connections close.
    task_a.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task_a
    await worker_a.db.dispose()
    await asyncio.wait_for(lead_b.active.wait(), 10)
    async with db.session() as session:
        lease = await session.get(WorkerLease, "worker")
        assert lease is not None and lease.holder == "worker-b"

    # A's claims expire; B delivers everything, each message once.
    clock.advance(timedelta(minutes=2))
    await asyncio.wait_for(sender_b.all_arrived.wait(), 10)
    await worker_b.outbox.deliver_due()  # waits for the batch in flight to be recorded
    async with db.session() as session:
        pending = (
            await session.exec(select(OutboxMessage).where(OutboxMessage.status != "sent"))
        ).all()
    assert not pending
    delivered = [m.text for chat in sender_b.chats.values() for m in chat]
    assert sorted(delivered) == sorted(f"message {n}" for n in range(20))
    assert sender_a.chats == {}
    for chat_id, shown in sender_b.chats.items():
        numbers = [int(m.text.split()[1]) for m in shown]
        assert numbers == sorted(numbers), f"chat {chat_id} out of order: {numbers}"
    stop_b.set()
    await task_b
    await worker_b.db.dispose()
    await db.dispose()


async def test_two_active_workers_never_send_a_row_twice(pg_url: str) -> None:
    """Even without the lease (say, a split brain), claims keep each row to one sender."""
    clock = ManualClock()
    db = Database(pg_url)
    async with db.transaction() as session:
        for n in range(60):
            enqueue(session, Outbound(chat_id=2000 + n % 12, text=f"m{n}"), clock.now())
    senders = [MemorySender(), MemorySender()]
    workers = [
        Worker(Database(pg_url), sender, clock, ZONE, limits=UNLIMITED) for sender in senders
    ]
    await asyncio.gather(*(w.outbox.deliver_due() for w in workers))
    await asyncio.gather(*(w.outbox.deliver_due() for w in workers))
    delivered = [m.text for s in senders for chat in s.chats.values() for m in chat]
    assert sorted(delivered) == sorted(f"m{n}" for n in range(60))
    async with db.session() as session:
        statuses = set((await session.exec(select(OutboxMessage.status))).all())
        sent_ids = (
            await session.exec(select(OutboxMessage.id).where(col(OutboxMessage.status) == "sent"))
        ).all()
    assert statuses == {"sent"} and len(sent_ids) == 60
    for worker in workers:
        await worker.db.dispose()
    await db.dispose()


async def test_two_web_replicas_in_alternation_keep_one_conversation(pg_url: str) -> None:
    clock = ManualClock(STARTED_AT)  # one time for the whole deployment, not the real one
    async with (
        FakeBotApi() as fake,
        replica(fake, pg_url, "ptb", role="web", clock=clock) as first,
        replica(fake, pg_url, "aiogram", role="web", clock=clock) as second,
        # A slow outbox tick: replies arrive promptly only if the NOTIFY wakes the worker.
        replica(fake, pg_url, "ptb", role="worker", outbox_interval=60, clock=clock) as _worker,
    ):
        resident = 930000001
        replicas = [first, second]
        steps = ["/start", "yes", "QS-JB", "QS-JB-TH", "QS-JB-TH-01"]
        expected = [
            "Do you agree?",
            "Choose the street or town",
            "choose your community",
            "choose your grid",
            "You are registered in",
        ]
        for index, (step, wanted) in enumerate(zip(steps, expected, strict=True)):
            mark = len(fake.calls)
            if step.startswith("/"):
                update = pushed(fake, step, user=resident)
            else:
                message, data = last_button(fake, resident, step)
                fake.push_callback(resident, message, data, language_code="en")
                [update] = fake.take_updates()
            assert await replicas[index % 2].post(update) == 200
            await fake.wait_for(
                "sendMessage",
                lambda c, wanted=wanted: (
                    c.params.get("chat_id") == resident and wanted in c.params["text"]
                ),
                after=mark,
                timeout=15,
            )


def last_button(fake: FakeBotApi, chat: int, value: str) -> tuple[int, str]:
    for message in reversed(fake.messages(chat)):
        for row in (message.inline_markup or {}).get("inline_keyboard", []):
            for button in row:
                if button.get("callback_data", "").endswith(f":{value}"):
                    return message.message_id, button["callback_data"]
    raise AssertionError(f"no button {value}")
