"""The outbox sender against Telegram's flood control: how close to 30 messages a second it
delivers a backlog, and how many 429s it provokes on the way.

    .venv/bin/python bench/send_rate.py                       # 600 one-message chats, then 60 × 10
    .venv/bin/python bench/send_rate.py --chats 300 --per-chat 2 --latency 0.08

The worker's sender (`schedules.outbox.OutboxSender.run` with the default `SendLimits`) runs on
the real clock against an in-process Bot API that answers after `--latency` seconds and enforces
the limits as Telegram documents them (TELEGRAM-FACTS.md: about 30 messages a second in all,
about one a second per chat with short bursts tolerated): a send that would make more than 30
in any window of one second, or more than 3 + t to one chat in any t seconds (a burst of three,
then one a second), is refused with 429 and `retry_after` = 1. The backlog is written
before the sender starts (a morning's digests, a sweep's escalations).

Printed per case: wall time from start to the last message shown, messages per second (and as a
share of 30), the 429s, the longest gap between two sends while rows were still due, and the
statements and commits the sender ran (per message). SQLite in a temporary directory, or with
`--postgres URL` a database of that server made for the run (`huiyin_bench_send`, dropped and
created again; the default pool of 5 + 10 connections). The
longest gap includes the limits' own pauses: 30 go in one second, then the window moves on.

This is a measurement, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import tempfile
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, make_url

from domain.clock import SystemClock
from domain.messages import DeliveryRetry, Outbound
from domain.outbox import enqueue
from schedules.outbox import OutboxSender, SendLimits
from storage.database import Database
from tests.scratch_postgres import recreate_database

GLOBAL_PER_SECOND = 30
CHAT_BURST = 3  # to one chat at once; then one a second


class FloodControlledBotApi:
    """Answers sends after `latency` seconds; refuses with a 429 what breaks the limits."""

    def __init__(self, latency: float, expected: int) -> None:
        self.latency = latency
        self.expected = expected
        self.all_shown = asyncio.Event()
        self.sent: list[tuple[float, int]] = []  # (monotonic time, chat)
        self.recent: deque[float] = deque()
        self.by_chat: dict[int, tuple[float, float]] = {}  # chat: (allowance, when)
        self.too_many = 0

    def _admit(self, chat_id: int, now: float) -> bool:
        while self.recent and now - self.recent[0] >= 1.0:
            self.recent.popleft()
        allowance, at = self.by_chat.get(chat_id, (float(CHAT_BURST), now))
        allowance = min(float(CHAT_BURST), allowance + (now - at))
        if len(self.recent) >= GLOBAL_PER_SECOND or allowance < 1.0:
            return False
        self.recent.append(now)
        self.by_chat[chat_id] = (allowance - 1.0, now)
        return True

    async def send(self, message: Outbound) -> int:
        # Counted when the call leaves the sender: a loaded machine delays the event loop, and
        # timing the arrival after a sleep would measure that delay rather than the sender.
        now = time.monotonic()
        if not self._admit(message.chat_id, now):
            self.too_many += 1
            await asyncio.sleep(self.latency)
            raise DeliveryRetry("Too Many Requests: retry after 1", after=1.0)
        self.sent.append((now, message.chat_id))
        if len(self.sent) >= self.expected:
            self.all_shown.set()
        await asyncio.sleep(self.latency)
        return len(self.sent)

    async def edit(self, message: Outbound, message_id: int) -> None:
        await self.send(message)

    async def answer_callback(self, callback_id: str, text: str | None, alert: bool) -> None:
        return None


async def fresh_database(postgres: str | None) -> Database:
    if postgres is None:
        return Database(f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/send_rate.db")
    url = make_url(postgres).set(database="huiyin_bench_send")
    return Database(await recreate_database(url.render_as_string(hide_password=False)))


async def measure(chats: int, per_chat: int, latency: float, postgres: str | None) -> None:
    db = await fresh_database(postgres)
    await db.upgrade()
    clock = SystemClock()
    total = chats * per_chat
    async with db.transaction() as session:
        for n in range(per_chat):
            for chat in range(chats):
                enqueue(session, Outbound(chat_id=10_000 + chat, text=f"{n}"), clock.now())
    api = FloodControlledBotApi(latency, total)
    sender = OutboxSender(db, api, clock, limits=SendLimits())
    counts = {"statements": 0, "commits": 0}

    def statement(*_: Any) -> None:
        counts["statements"] += 1

    def commit(*_: Any) -> None:
        counts["commits"] += 1

    event.listen(db.engine.sync_engine, "before_cursor_execute", statement)
    event.listen(db.engine.sync_engine, "commit", commit)
    stop = asyncio.Event()
    started = time.monotonic()
    runner = asyncio.create_task(sender.run(stop, interval=2.0))
    with contextlib.suppress(TimeoutError):  # a sender that stalls is reported, not awaited
        await asyncio.wait_for(api.all_shown.wait(), timeout=total / 5 + 60)
    finished = time.monotonic()
    stop.set()
    await runner
    await db.engine.dispose()
    times = [at for at, _chat in api.sent]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    wall = (times[-1] if times else finished) - started
    rate = len(api.sent) / wall if wall > 0 else 0.0
    print(
        f"{'PostgreSQL' if postgres else 'SQLite':<10} {chats:>5} chats × {per_chat:<3} "
        f"latency {latency * 1000:>4.0f} ms: "
        f"{len(api.sent):>5}/{total} shown in {wall:6.1f} s = {rate:5.1f} msg/s "
        f"({rate / GLOBAL_PER_SECOND:4.0%} of 30), {api.too_many} × 429, "
        f"longest gap {max(gaps, default=0.0) * 1000:5.0f} ms, "
        f"{counts['statements']} statements ({counts['statements'] / max(1, total):.2f}/msg), "
        f"{counts['commits']} commits",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, nargs="+", default=[600, 60])
    parser.add_argument("--per-chat", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--latency", type=float, default=0.05, help="seconds a call takes")
    parser.add_argument("--postgres", help="a server URL (postgresql+asyncpg://…)")
    args = parser.parse_args()
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    for chats, per_chat in zip(args.chats, args.per_chat, strict=True):
        asyncio.run(measure(chats, per_chat, args.latency, args.postgres))


if __name__ == "__main__":
    main()
