"""Head-of-line blocking in the outbox: how long an unrelated resident's reply waits while one
chat drains a backlog of 60 messages at Telegram's one message a second.

    .venv/bin/python bench/head_of_line.py [--backlog 60] [--backend both] [--latency-ms 40]

The outbox sender runs as the worker runs it (`OutboxSender.run`, woken after each handled
update, Telegram's limits: 30 a second in all, 1 a second per chat with a burst of 3), on the
real clock, delivering through a sender that takes `--latency-ms` per call as the Bot API does.
Case 1: chat B's reply alone. Case 2: chat A has `--backlog` messages queued and its drain has
begun; one second later B's reply is written. Printed: how long B's reply waited from being
written (and woken for) to being accepted, and how many of A's were still queued then.
`--before` also runs both cases with the outbox sender as it was before per-chat delivery
(schedules/outbox.py at commit ad3e0ea, read from git), for comparison.

PostgreSQL: HUIYIN_BENCH_DATABASE_URL (by default
postgresql+asyncpg://postgres@127.0.0.1:5432/huiyin_bench_hol; dropped and created again).
SQLite: a file in a temporary directory.

This is a measurement, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from domain.clock import SystemClock
from domain.messages import Outbound
from domain.outbox import enqueue
from schedules.outbox import OutboxSender, SendLimits
from storage.database import Database
from tests.scratch_postgres import recreate_database

DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/huiyin_bench_hol"
BEFORE = "ad3e0ea"  # the last commit with one delivery lock for every chat
ROOT = Path(__file__).resolve().parent.parent
CHAT_A = 1001
CHAT_B = 2002


class TimedSender:
    """Takes `latency` seconds per call, as the Bot API does, and notes when each chat's
    messages were accepted."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.accepted: dict[int, list[float]] = {}
        self.b_arrived = asyncio.Event()
        self._next_id = 0

    async def send(self, message: Outbound) -> int:
        await asyncio.sleep(self.latency)
        self.accepted.setdefault(message.chat_id, []).append(time.perf_counter())
        if message.chat_id == CHAT_B:
            self.b_arrived.set()
        self._next_id += 1
        return self._next_id

    async def edit(self, message: Outbound, message_id: int) -> None:
        await asyncio.sleep(self.latency)

    async def answer_callback(self, callback_id: str, text: str | None, alert: bool) -> None:
        await asyncio.sleep(self.latency)


async def fresh_database(backend: str) -> Database:
    if backend == "sqlite":
        db = Database(f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/hol.db")
    else:
        url = os.environ.get("HUIYIN_BENCH_DATABASE_URL", DEFAULT_URL)
        db = Database(await recreate_database(url))
    await db.upgrade()
    return db


async def write(db: Database, chat_id: int, texts: list[str]) -> None:
    async with db.transaction() as session:
        for text_ in texts:
            enqueue(session, Outbound(chat_id=chat_id, text=text_), SystemClock().now())


def sender_before() -> ModuleType:
    """schedules/outbox.py as it was at BEFORE, loaded under a name of its own."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{BEFORE}:schedules/outbox.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "outbox_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("outbox_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["outbox_before"] = module
    spec.loader.exec_module(module)
    return module


async def case(
    backend: str, backlog: int, latency: float, module: ModuleType | None = None
) -> tuple[float, int]:
    """B's wait in seconds, and how many of A's messages were still queued when B's went."""
    db = await fresh_database(backend)
    sender = TimedSender(latency)
    outbox: Any
    if module is None:
        outbox = OutboxSender(db, sender, SystemClock(), limits=SendLimits())
    else:
        outbox = module.OutboxSender(db, sender, SystemClock(), limits=module.SendLimits())
    stop = asyncio.Event()
    running = asyncio.create_task(outbox.run(stop, interval=2.0))
    try:
        if backlog:
            await write(db, CHAT_A, [f"A {n}" for n in range(backlog)])
            outbox.wake.set()
            await asyncio.sleep(1.0)  # A's drain is under way
        await write(db, CHAT_B, ["B: your request was received"])
        written = time.perf_counter()
        outbox.wake.set()  # as the dispatcher does after its commit
        await asyncio.wait_for(sender.b_arrived.wait(), 600)
        waited = sender.accepted[CHAT_B][0] - written
        a_left = backlog - len(sender.accepted.get(CHAT_A, []))
    finally:
        stop.set()
        await asyncio.wait_for(running, 120)
        await db.dispose()
    return waited, a_left


async def measure(
    backend: str, backlog: int, latency: float, module: ModuleType | None = None
) -> None:
    alone, _ = await case(backend, 0, latency, module)
    behind, a_left = await case(backend, backlog, latency, module)
    which = "per-chat delivery" if module is None else f"one delivery lock ({BEFORE})"
    print(f"\n{backend}, {which}: Bot API latency {latency * 1000:.0f} ms per call")
    print(f"  B's reply with no backlog:                 waited {alone * 1000:,.0f} ms")
    print(
        f"  B's reply while A drains {backlog} messages:     waited {behind * 1000:,.0f} ms "
        f"({a_left} of A's still queued when B's went out)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backlog", type=int, default=60)
    parser.add_argument("--backend", choices=("postgresql", "sqlite", "both"), default="both")
    parser.add_argument("--latency-ms", type=float, default=40.0)
    parser.add_argument("--before", action="store_true", help=f"also run the sender of {BEFORE}")
    args = parser.parse_args()
    backends = ("postgresql", "sqlite") if args.backend == "both" else (args.backend,)
    before = sender_before() if args.before else None
    for backend in backends:
        asyncio.run(measure(backend, args.backlog, args.latency_ms / 1000))
        if before is not None:
            asyncio.run(measure(backend, args.backlog, args.latency_ms / 1000, before))


if __name__ == "__main__":
    main()
