"""Running the bot: build everything from the settings, migrate, then poll and deliver.

Nothing is built at import time; `run_bot` is the one entry point `huiyin run` calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from bot.channels.types import Sender
from bot.clock import Clock, SystemClock
from bot.dispatcher import Dispatcher
from bot.settings import Settings
from schedules.outbox import SendLimits
from schedules.worker import Worker
from storage.database import Database

log = logging.getLogger(__name__)


async def run_bot(
    settings: Settings, *, stop: asyncio.Event | None = None, clock: Clock | None = None
) -> None:
    """Poll the Bot API until `stop` is set (or SIGINT/SIGTERM), delivering the outbox alongside."""
    assert settings.bot_token is not None
    stop = stop or asyncio.Event()
    clock = clock or SystemClock()
    _stop_on_signals(stop)
    db = Database(settings.database_url)
    await db.upgrade()
    dispatcher = Dispatcher(db, clock, settings.zone)
    background: list[asyncio.Task[None]] = []

    async def start_delivery(sender: Sender) -> None:
        worker = build_worker(db, sender, clock, settings)
        dispatcher.on_commit = worker.outbox.wake.set
        dispatcher.direct_sender = sender
        background.append(asyncio.create_task(worker.run(stop), name="worker"))
        log.info("bot started; delivering the outbox every %ss", settings.outbox_interval_seconds)

    if settings.framework == "aiogram":
        from bot.channels.telegram_aiogram import run_aiogram_polling as run_polling
    else:
        from bot.channels.telegram_ptb import run_ptb_polling as run_polling
    try:
        await run_polling(
            settings.bot_token,
            settings.telegram_api_url,
            dispatcher.handle,
            on_started=start_delivery,
            stop=stop,
        )
    finally:
        stop.set()
        for task in background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await db.dispose()


def build_worker(db: Database, sender: Sender, clock: Clock, settings: Settings) -> Worker:
    """The background work and its ticks; every periodic job is registered here."""
    return Worker(
        db,
        sender,
        clock,
        settings.zone,
        outbox_interval=settings.outbox_interval_seconds,
        limits=SendLimits(
            per_second=settings.send_rate_total, per_chat_per_second=settings.send_rate_per_chat
        ),
    )


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for name in ("SIGINT", "SIGTERM"):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(getattr(signal, name), stop.set)
