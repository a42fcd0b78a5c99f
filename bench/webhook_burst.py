"""A burst of chats at one webhook replica: 200 residents writing 3 messages each, all at once.

    .venv/bin/python bench/webhook_burst.py [--chats 200] [--updates 3] [--backend both]
                                            [--role web]

One replica (`huiyin run --webhook`, `--role web` by default, as in issue 10), a process of its
own, on the loopback fake of the Bot API, with the default settings (a pool of 5 + 10
overflow). Every update is POSTed at once, as Telegram does when many people write in the same
second; /healthz is asked every 100 ms throughout. Printed: the HTTP answers (and how long
Telegram waited for them), /healthz's answers and slowest time, how long until every update was
handled, and how many apologies ("something went wrong", "busy") the residents would have been
sent, and how often the replica's log says its connection pool ran dry.

PostgreSQL: HUIYIN_BENCH_DATABASE_URL (by default
postgresql+asyncpg://postgres@127.0.0.1:5432/huiyin_bench_burst; dropped and created again).
SQLite: a file in a temporary directory.

This is a measurement, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import func
from sqlmodel import col, select

from bot.channels.webhook import SECRET_HEADER, derive_secret
from domain.i18n import translator
from storage.database import Database
from storage.models import InboxUpdate, OutboxMessage
from storage.roster import import_roster, sample_district_dir
from tests.fake_bot_api import FakeBotApi
from tests.scratch_postgres import recreate_database

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/huiyin_bench_burst"
PUBLIC_URL = "https://huiyin.example.invalid/telegram/hook"
FIRST_CHAT = 970000001
TEXTS = ("/start", "/help", "hello", "/my", "/cancel")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def fresh_postgres() -> str:
    return await recreate_database(os.environ.get("HUIYIN_BENCH_DATABASE_URL", DEFAULT_URL))


async def prepare(url: str) -> None:
    db = Database(url)
    await db.upgrade()
    await import_roster(db, sample_district_dir())
    await db.dispose()


async def pending(url: str) -> int:
    db = Database(url, pool_size=1, max_overflow=0, name="huiyin:bench-probe")
    try:
        async with db.session() as session:
            result = await session.exec(
                select(func.count())
                .select_from(InboxUpdate)
                .where(col(InboxUpdate.processed_at).is_(None))
            )
            return int(result.one())
    finally:
        await db.dispose()


async def apologies(url: str) -> int:
    en, zh = translator("en"), translator("zh_CN")
    words = set()
    for t in (en, zh):
        words.add(t._("Sorry, the system is busy right now. Please send that again in a minute."))
        words.add(
            t._(
                "Sorry, something went wrong on our side. Please try again; if it keeps "
                "happening, send /start."
            )
        )
    db = Database(url, pool_size=1, max_overflow=0, name="huiyin:bench-probe")
    try:
        async with db.session() as session:
            payloads = (await session.exec(select(OutboxMessage.payload))).all()
    finally:
        await db.dispose()
    return sum(1 for payload in payloads if payload.get("text") in words)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


async def measure(
    backend: str, chats: int, per_chat: int, role: str, framework: str, connections: int
) -> None:
    if backend == "postgresql":
        url = await fresh_postgres()
    else:
        url = f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/burst.db"
    await prepare(url)
    port = free_port()
    async with FakeBotApi() as fake:
        for n in range(chats):
            for text_ in (TEXTS * per_chat)[:per_chat]:
                fake.push_text(FIRST_CHAT + n, text_, language_code="en")
        updates = fake.take_updates()
        env = {
            **os.environ,
            "HUIYIN_BOT_TOKEN": fake.token,
            "HUIYIN_TELEGRAM_API_URL": fake.base_url,
            "HUIYIN_DATABASE_URL": url,
            "HUIYIN_WEBHOOK_HOST": "127.0.0.1",
            "HUIYIN_WEBHOOK_PORT": str(port),
            "HUIYIN_FRAMEWORK": framework,
            "PYTHONPATH": str(ROOT),
        }
        workdir = Path(tempfile.mkdtemp())
        log_file = (workdir / "replica.log").open("w")
        # The replica is a process of its own, as in production: its event loop is not the
        # one sending the burst and playing Telegram.
        replica = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            "--webhook",
            PUBLIC_URL,
            "--role",
            role,
            env=env,
            cwd=workdir,
            stdout=log_file,
            stderr=log_file,
        )
        await fake.wait_for("setWebhook", timeout=60)
        base = f"http://127.0.0.1:{port}"
        headers = {SECRET_HEADER: derive_secret(fake.token)}
        answers: list[tuple[int, float]] = []
        checks: list[tuple[int, float]] = []
        # Telegram opens at most `max_connections` (40 unless setWebhook says otherwise) to a
        # webhook at once; the load balancer's health probe comes on a connection of its own.
        connector = aiohttp.TCPConnector(limit=connections)
        async with (
            aiohttp.ClientSession(connector=connector) as http,
            aiohttp.ClientSession() as prober,
        ):

            async def post(update: dict[str, Any]) -> None:
                began = time.perf_counter()
                async with http.post(
                    f"{base}/telegram/hook", json=update, headers=headers
                ) as answer:
                    await answer.read()
                    answers.append((answer.status, time.perf_counter() - began))

            async def probe(done: asyncio.Event) -> None:
                while not done.is_set():
                    asked = time.perf_counter()
                    async with prober.get(f"{base}/healthz") as answer:
                        await answer.read()
                        checks.append((answer.status, time.perf_counter() - asked))
                    await asyncio.sleep(0.1)

            # The balancer has been probing all along: its connection is open before the burst.
            async with prober.get(f"{base}/healthz") as answer:
                await answer.read()
            done = asyncio.Event()
            probing = asyncio.create_task(probe(done))
            began = time.perf_counter()
            await asyncio.gather(*(post(update) for update in updates))
            while await pending(url):  # noqa: ASYNC110 - the database is what is watched
                await asyncio.sleep(0.2)
            handled = time.perf_counter() - began
            done.set()
            await probing
        replica.send_signal(signal.SIGTERM)
        await asyncio.wait_for(replica.wait(), 120)
    log_file.close()
    pool_dry = (workdir / "replica.log").read_text(errors="replace").count("QueuePool limit")
    sorry = await apologies(url)
    latencies = sorted(seconds for _, seconds in answers)
    health = sorted(seconds for _, seconds in checks)
    print(
        f"\n{backend}, one --role {role} replica ({framework}), {chats} chats x {per_chat} updates"
    )
    print(f"  webhook answers:  {dict(Counter(status for status, _ in answers))}")
    print(
        "  answered, counted from the burst's start (waiting for one of the connections "
        f"included): median {ms(statistics.median(latencies))}, "
        f"p95 {ms(latencies[int(0.95 * (len(latencies) - 1))])}, last {ms(latencies[-1])}"
    )
    print(f"  every update handled after {handled:.1f} s")
    print(
        f"  /healthz:         {len(checks)} asked, answers "
        f"{dict(Counter(status for status, _ in checks))}, slowest {ms(health[-1])}, "
        f"median {ms(statistics.median(health))}"
    )
    print(f"  apologies queued: {sorry};  'QueuePool limit' in the replica's log: {pool_dry}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chats", type=int, default=200)
    parser.add_argument("--updates", type=int, default=3, help="updates per chat")
    parser.add_argument("--backend", choices=("postgresql", "sqlite", "both"), default="both")
    parser.add_argument("--role", choices=("web", "all"), default="web")
    parser.add_argument("--framework", choices=("ptb", "aiogram"), default="ptb")
    parser.add_argument(
        "--connections", type=int, default=40, help="Telegram's max_connections (default 40)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    backends = ("postgresql", "sqlite") if args.backend == "both" else (args.backend,)
    for backend in backends:
        asyncio.run(
            measure(backend, args.chats, args.updates, args.role, args.framework, args.connections)
        )


if __name__ == "__main__":
    main()
