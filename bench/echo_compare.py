"""Huiyin's cost per update against a bare echo bot, on the same loopback fake of the Bot API
and on both frameworks.

    .venv/bin/python bench/echo_compare.py [--updates 1000] [--users 50] [--rounds 1]

For each framework (python-telegram-bot, aiogram) three bots are fed the same text updates by
tests/fake_bot_api.py's `FakeBotApi` on 127.0.0.1, one bot at a time:

- a bare echo bot of that framework, its own minimal handler answering each text with the text
  (PTB: `Application` with one `MessageHandler`; aiogram: a `Dispatcher` with one message
  handler and `start_polling`), each with the framework's defaults;
- Huiyin's real stack: `bot.app.run_bot` (polling into the inbox, the dispatcher, the worker
  and its outbox sender) on a fresh SQLite database with the sample district imported, on an
  injected clock standing at a working morning, as tests/test_e2e_telegram.py starts it, with
  the sender's rate limits lifted (the fake has none, nor have the echo bots).

The users are grid members added to the sample district's roster. Every user first writes
/start (Huiyin: the greeting of a staff member) and one text, untimed; then `--updates` texts
from `--users` users are queued at once, and the time runs until every one of them has been
answered (one `sendMessage` each: the echo, or Huiyin's "to report a need, tap the button
below").

Printed for each framework: updates/s of each bot and their ratio (Huiyin's seconds per update
over the echo's), the CPU time per update of the process and its ratio (the fake's share
included; on a busy machine the wall time says more about the neighbours than about the bot),
and Huiyin's SQL statements and commits per update (counted with SQLAlchemy engine events, as
bench/replay.py does; the worker's own runs in that time included). `run()` returns the
figures (tests/test_echo_compare.py).

This is a measurement, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import event
from sqlalchemy.engine import Engine

from tests.fake_bot_api import FakeBotApi

FIRST_USER = 960_000_001
# A working Wednesday morning, after the digest's hour (as the e2e tests' "workday-1000").
MOMENT = datetime(2026, 12, 2, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
FRAMEWORKS = ("ptb", "aiogram")
TIMEOUT = 600.0


@dataclass
class Run:
    """One bot fed the updates."""

    bot: str  # "echo" or "huiyin"
    framework: str
    updates: int
    seconds: float
    cpu_seconds: float  # the process's, the fake Bot API's share included
    statements: int = 0
    commits: int = 0

    @property
    def per_second(self) -> float:
        return self.updates / self.seconds if self.seconds else 0.0


@dataclass
class Figures:
    updates: int
    users: int
    runs: list[Run] = field(default_factory=list)

    def of(self, bot: str, framework: str) -> list[Run]:
        return [r for r in self.runs if r.bot == bot and r.framework == framework]


class Meter:
    """SQL statements and commits of every engine in the process, while counting."""

    def __init__(self) -> None:
        self.counting = False
        self.statements = 0
        self.commits = 0
        # With --top: the statements by their text (the first 160 characters), to find the
        # ones run most often.
        self.texts: Counter[str] | None = None

    def __enter__(self) -> Meter:
        event.listen(Engine, "before_cursor_execute", self._executed)
        event.listen(Engine, "commit", self._committed)
        return self

    def __exit__(self, *exc_info: object) -> None:
        event.remove(Engine, "before_cursor_execute", self._executed)
        event.remove(Engine, "commit", self._committed)

    def _executed(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if self.counting:
            self.statements += 1
            if self.texts is not None:
                self.texts[" ".join(statement.split())[:160]] += 1

    def _committed(self, *_args: Any) -> None:
        if self.counting:
            self.commits += 1


def replies(fake: FakeBotApi, users: set[int]) -> int:
    return sum(
        1
        for call in fake.calls
        if call.ok
        and call.method.lower() == "sendmessage"
        and int(call.params.get("chat_id", 0)) in users
    )


async def wait_replies(fake: FakeBotApi, users: set[int], wanted: int) -> None:
    """Until `wanted` messages have been sent to the users (checked as calls come in)."""
    async with asyncio.timeout(TIMEOUT):
        while replies(fake, users) < wanted:
            await fake.wait_for(
                "sendMessage", after=len(fake.calls), timeout=TIMEOUT
            )  # the next call


async def feed(
    fake: FakeBotApi, updates: int, users: int, meter: Meter | None = None
) -> tuple[float, float, int, int]:
    """Every user says /start and then one text, untimed: how many messages a text gets back
    (one, from both; checked). Then the texts, timed until each has had its answer. Returns
    the seconds (wall and this process's CPU), statements and commits."""
    people = [FIRST_USER + n for n in range(users)]
    chats = set(people)
    for person in people:
        fake.push_text(person, "/start")
    await wait_replies(fake, chats, users)
    await asyncio.sleep(0.5)  # whatever else the greeting brings arrives
    before = replies(fake, chats)
    for person in people:
        fake.push_text(person, "你好")
    await wait_replies(fake, chats, before + users)
    await asyncio.sleep(0.5)
    answers, odd = divmod(replies(fake, chats) - before, users)
    assert answers >= 1 and not odd, "every text should get the same answer"
    before = replies(fake, chats)
    if meter is not None:
        meter.statements = meter.commits = 0
        meter.counting = True
    began, cpu = time.perf_counter(), time.process_time()
    for n in range(updates):
        fake.push_text(people[n % users], f"你好 {n}")
    await wait_replies(fake, chats, before + updates * answers)
    seconds = time.perf_counter() - began
    cpu = time.process_time() - cpu
    if meter is not None:
        meter.counting = False
        return seconds, cpu, meter.statements, meter.commits
    return seconds, cpu, 0, 0


# The bare echo bots ------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def echo_ptb(fake: FakeBotApi) -> AsyncIterator[None]:
    from telegram import Update
    from telegram.ext import ApplicationBuilder, ContextTypes, MessageHandler, filters

    async def echo(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None and update.message.text is not None
        await update.message.reply_text(update.message.text)

    application = (
        ApplicationBuilder()
        .token(fake.token)
        .base_url(f"{fake.base_url}/bot")
        .base_file_url(f"{fake.base_url}/file/bot")
        .build()
    )
    application.add_handler(MessageHandler(filters.TEXT, echo))
    async with application:
        await application.start()
        assert application.updater is not None
        await application.updater.start_polling(timeout=10)
        try:
            yield
        finally:
            await application.updater.stop()
            await application.stop()


@contextlib.asynccontextmanager
async def echo_aiogram(fake: FakeBotApi) -> AsyncIterator[None]:
    from aiogram import Bot, Dispatcher, F
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer
    from aiogram.types import Message

    bot = Bot(fake.token, session=AiohttpSession(api=TelegramAPIServer.from_base(fake.base_url)))
    dispatcher = Dispatcher()

    @dispatcher.message(F.text)
    async def echo(message: Message) -> None:
        assert message.text is not None
        await message.answer(message.text, parse_mode=None)

    polling = asyncio.create_task(
        dispatcher.start_polling(bot, handle_signals=False, polling_timeout=10)
    )
    try:
        yield
    finally:
        await dispatcher.stop_polling()
        await polling
        await bot.session.close()


# Huiyin ---------------------------------------------------------------------------------------


def write_roster(directory: Path, users: int) -> Path:
    """The sample district with the bench's users as grid members of its grids (Huiyin answers
    a grid member's text with one message, as the echo does)."""
    from storage.roster import sample_district_dir

    directory.mkdir(parents=True, exist_ok=True)
    sample = sample_district_dir()
    shutil.copy(sample / "units.csv", directory / "units.csv")
    with (sample / "units.csv").open(encoding="utf-8") as handle:
        grids = [row["code"] for row in csv.DictReader(handle) if row["level"] == "grid"]
    with (sample / "people.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    for n in range(users):
        rows.append(
            {
                "name": f"网格员{n + 1}",
                "phone": f"139{n + 1:08d}",
                "telegram_id": str(FIRST_USER + n),
                "role": "grid_member",
                "unit": grids[n % len(grids)],
                "posts": "",
            }
        )
    with (directory / "people.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return directory


@contextlib.asynccontextmanager
async def huiyin(
    fake: FakeBotApi, framework: str, workdir: Path, users: int
) -> AsyncIterator[None]:
    from bot.app import run_bot
    from bot.settings import load_settings
    from domain.clock import ManualClock
    from storage.database import Database
    from storage.roster import import_roster

    url = f"sqlite+aiosqlite:///{workdir}/echo_compare_{framework}.db"
    db = Database(url)
    await db.upgrade()
    await import_roster(db, write_roster(workdir / "roster", users))
    await db.dispose()
    settings = load_settings(
        _env_file=None,
        bot_token=fake.token,
        telegram_api_url=fake.base_url,
        database_url=url,
        framework=framework,
        # The fake has no rate limit and neither have the echo bots: Telegram's limits (30
        # messages/s, one a second per chat) would make this a measure of them.
        send_rate_total=100_000.0,
        send_rate_per_chat=100_000.0,
    )
    stop = asyncio.Event()
    running = asyncio.create_task(run_bot(settings, stop=stop, clock=ManualClock(MOMENT)))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(running, 60)


Starter = Callable[[FakeBotApi], contextlib.AbstractAsyncContextManager[None]]


async def one(
    bot: str, framework: str, start: Starter, updates: int, users: int, meter: Meter | None
) -> Run:
    async with FakeBotApi() as fake, start(fake):
        await fake.wait_until_polling(timeout=60)
        seconds, cpu, statements, commits = await feed(fake, updates, users, meter)
    return Run(bot, framework, updates, seconds, cpu, statements, commits)


def forget_databases(workdir: Path) -> None:
    """Each Huiyin run starts on a fresh database."""
    for leftover in workdir.glob("*.db*"):
        leftover.unlink()


async def run(
    updates: int = 1000,
    users: int = 50,
    rounds: int = 1,
    frameworks: tuple[str, ...] = FRAMEWORKS,
    progress: Callable[[Run], Awaitable[None] | None] | None = None,
    top: Counter[str] | None = None,
) -> Figures:
    """Feed each bot `updates` texts from `users` users, `rounds` times; return the figures
    (and count Huiyin's statements by their text in `top`)."""
    figures = Figures(updates, users)
    echoes: dict[str, Starter] = {"ptb": echo_ptb, "aiogram": echo_aiogram}
    with tempfile.TemporaryDirectory() as workdir, Meter() as meter:
        meter.texts = top
        for _ in range(rounds):
            for framework in frameworks:
                bots: list[tuple[str, Starter, Meter | None]] = [
                    ("echo", echoes[framework], None),
                    (
                        "huiyin",
                        lambda fake, fw=framework: huiyin(fake, fw, Path(workdir), users),
                        meter,
                    ),
                ]
                for name, start, counted in bots:
                    done = await one(name, framework, start, updates, users, counted)
                    figures.runs.append(done)
                    if progress is not None:
                        shown = progress(done)
                        if shown is not None:
                            await shown
                    forget_databases(Path(workdir))
    return figures


def show(figures: Figures) -> None:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"{figures.updates} text updates from {figures.users} users, loopback fake Bot API; "
        f"load average now {load}"
    )
    print(f"{'framework':<10}{'echo upd/s':>12}{'Huiyin upd/s':>14}{'wall ×':>8}"
          f"{'echo CPU ms':>13}{'Huiyin CPU ms':>15}{'CPU ×':>7}"
          f"{'SQL/update':>12}{'commits/update':>16}")  # fmt: skip
    for framework in FRAMEWORKS:
        echo, ours = figures.of("echo", framework), figures.of("huiyin", framework)
        if not echo or not ours:
            continue
        for e, h in zip(echo, ours, strict=True):
            print(
                f"{framework:<10}{e.per_second:12.1f}{h.per_second:14.1f}"
                f"{h.seconds / e.seconds:8.2f}{1000 * e.cpu_seconds / e.updates:13.2f}"
                f"{1000 * h.cpu_seconds / h.updates:15.2f}{h.cpu_seconds / e.cpu_seconds:7.2f}"
                f"{h.statements / h.updates:12.2f}"
                f"{h.commits / h.updates:16.2f}"
            )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=1000)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=1, help="run every bot this many times")
    parser.add_argument("--framework", choices=FRAMEWORKS, default=None, help="only this one")
    parser.add_argument(
        "--top", type=int, default=0, help="also list Huiyin's N most frequent statements"
    )
    args = parser.parse_args()

    def progress(done: Run) -> None:
        print(
            f"  {done.framework} {done.bot}: {done.per_second:.1f} updates/s, "
            f"{1000 * done.cpu_seconds / done.updates:.2f} ms CPU per update",
            flush=True,
        )

    frameworks = (args.framework,) if args.framework else FRAMEWORKS
    texts: Counter[str] | None = Counter() if args.top else None
    figures = await run(args.updates, args.users, args.rounds, frameworks, progress, texts)
    show(figures)
    if texts:
        per = sum(len(figures.of("huiyin", f)) for f in frameworks) * args.updates
        print(f"\nHuiyin: the {args.top} statements run most often (per update)")
        for shape, count in texts.most_common(args.top):
            print(f"{count / per:8.2f}  {shape}")


if __name__ == "__main__":
    asyncio.run(main())
