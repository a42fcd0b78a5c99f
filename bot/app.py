"""Running the bot: build everything from the settings, migrate, then serve.

Three shapes, one code path each:

- polling (the default): one process polls Telegram and runs the worker;
- webhook (`--webhook URL`): replicas take updates in through the inbox; with `--role all`
  the replica also runs the worker, with `--role web` it leaves that to a worker process;
- worker (`--role worker`): the outbox sender and the ticks, and nothing else.

Whatever the shape, the worker runs under `Leadership`: on PostgreSQL exactly one process in
the deployment is the active worker. Nothing is built at import time; `run_bot` is the one entry
point `huiyin run` calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

from bot.channels.telegram_common import BotApiSender
from bot.channels.webhook import TelegramApp, WebhookServer, derive_secret, serve
from bot.dispatcher import Dispatcher
from bot.settings import Settings
from domain import charts
from domain.clock import Clock, SystemClock
from domain.messages import DeliveryRefused, DeliveryRetry, HandleResult, Inbound, Sender
from schedules.leadership import Leadership
from schedules.outbox import SendLimits
from schedules.worker import Worker
from storage.database import Database
from storage.inbox import RETRY_WINDOW, forget_processed

log = logging.getLogger(__name__)

Role = Literal["all", "web", "worker"]
RECOVERY_SECONDS = 30.0
# Ledgers asked for with /export are looked for this often (a cheap indexed read).
EXPORT_POLL_SECONDS = 2.0


async def run_bot(
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    clock: Clock | None = None,
    role: Role = "all",
    webhook_url: str | None = None,
    holder: str | None = None,
) -> None:
    """Serve until `stop` is set (or SIGINT/SIGTERM)."""
    assert settings.bot_token is not None
    if role == "web" and not webhook_url:
        raise ValueError("--role web needs --webhook URL: polling has one consumer per bot")
    stop = stop or asyncio.Event()
    clock = clock or SystemClock()
    charts.use_font(settings.chart_font)
    _stop_on_signals(stop)
    db = Database(settings.database_url)
    try:
        await db.upgrade()
        leadership = Leadership(db, clock, holder=holder)
        if role == "worker":
            await _run_worker_only(settings, db, clock, leadership, stop)
        elif webhook_url:
            await _run_webhook(settings, db, clock, leadership, stop, webhook_url, role)
        else:
            await _run_polling(settings, db, clock, leadership, stop)
    finally:
        stop.set()
        await db.dispose()


async def _run_polling(
    settings: Settings, db: Database, clock: Clock, leadership: Leadership, stop: asyncio.Event
) -> None:
    assert settings.bot_token is not None
    dispatcher = Dispatcher(
        db,
        clock,
        settings.zone,
        policy=settings.policy,
        bot_username=settings.bot_username,
        place_radius_m=settings.place_radius_m,
    )
    background: list[asyncio.Task[None]] = []

    async def start_delivery(sender: Sender) -> None:
        await introduce(sender, dispatcher, settings)
        worker = build_worker(db, sender, clock, settings)
        dispatcher.on_commit = worker.outbox.wake.set
        dispatcher.direct_sender = sender
        background.append(asyncio.create_task(leadership.run(stop, worker.run), name="worker"))

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


async def _run_webhook(
    settings: Settings,
    db: Database,
    clock: Clock,
    leadership: Leadership,
    stop: asyncio.Event,
    webhook_url: str,
    role: Role,
) -> None:
    assert settings.bot_token is not None
    dispatcher = Dispatcher(
        db,
        clock,
        settings.zone,
        use_inbox=True,
        policy=settings.policy,
        bot_username=settings.bot_username,
        place_radius_m=settings.place_radius_m,
    )
    secret = settings.webhook_secret or derive_secret(settings.bot_token)
    async with open_telegram_app(settings, dispatcher.handle) as app:
        dispatcher.direct_sender = app.sender
        await introduce(app.sender, dispatcher, settings)
        path = urlsplit(webhook_url).path or "/"
        server = WebhookServer(db=db, clock=clock, app=app, path=path, secret=secret)
        stop_serving = await serve(server.web_app(), settings.webhook_host, settings.webhook_port)
        tasks: list[asyncio.Task[None]] = []
        try:
            await app.set_webhook(webhook_url, secret)
            log.info(
                "webhook %s set; listening on %s:%s (role %s)",
                webhook_url,
                settings.webhook_host,
                settings.webhook_port,
                role,
            )
            if role == "all":
                worker = build_worker(db, app.sender, clock, settings)
                dispatcher.on_commit = worker.outbox.wake.set
                tasks.append(asyncio.create_task(leadership.run(stop, worker.run)))
            tasks.append(asyncio.create_task(_recover_inbox(server, db, clock, stop)))
            await stop.wait()
        finally:
            await stop_serving()
            await server.settle()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task


async def _recover_inbox(
    server: WebhookServer, db: Database, clock: Clock, stop: asyncio.Event
) -> None:
    """Pick up updates a replica took in and did not finish, and forget old handled ones."""
    while not stop.is_set():
        try:
            now = clock.now()
            await server.recover(now - timedelta(seconds=RECOVERY_SECONDS))
            await forget_processed(db, now - RETRY_WINDOW)
        except Exception:
            log.exception("inbox recovery failed; trying again")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), RECOVERY_SECONDS)


async def _run_worker_only(
    settings: Settings, db: Database, clock: Clock, leadership: Leadership, stop: asyncio.Event
) -> None:
    async def no_updates(_inbound: Inbound) -> HandleResult:
        return HandleResult()

    async with open_telegram_app(settings, no_updates) as app:
        worker = build_worker(db, app.sender, clock, settings)
        await leadership.run(stop, worker.run)


@contextlib.asynccontextmanager
async def open_telegram_app(
    settings: Settings, handle: Callable[[Inbound], Awaitable[HandleResult]]
) -> AsyncIterator[TelegramApp]:
    """The configured framework's bot, initialised, without polling."""
    assert settings.bot_token is not None
    opener: Any
    if settings.framework == "aiogram":
        from bot.channels.telegram_aiogram import open_aiogram_app as opener
    else:
        from bot.channels.telegram_ptb import open_ptb_app as opener
    async with opener(settings.bot_token, settings.telegram_api_url, handle) as app:
        yield app


async def introduce(sender: Sender, dispatcher: Dispatcher, settings: Settings) -> None:
    """Tell Telegram the command menu, and learn the bot's username for t.me links (unless
    HUIYIN_BOT_USERNAME names it). Neither is worth refusing to start over."""
    if not isinstance(sender, BotApiSender):
        return
    from handlers.menu import command_menus

    try:
        username = await sender.introduce(command_menus())
    except (DeliveryRetry, DeliveryRefused) as error:
        log.warning("could not set the command menu or read the bot's name: %s", error)
        return
    if not settings.bot_username and username:
        dispatcher.bot_username = username


def build_worker(db: Database, sender: Sender, clock: Clock, settings: Settings) -> Worker:
    """The background work and its ticks; every periodic job is registered here."""
    worker = Worker(
        db,
        sender,
        clock,
        settings.zone,
        outbox_interval=settings.outbox_interval_seconds,
        limits=SendLimits(
            per_second=settings.send_rate_total, per_chat_per_second=settings.send_rate_per_chat
        ),
    )
    from schedules.refusals import refusal_handler
    from schedules.sweep import sweep

    policy = settings.policy
    worker.outbox.on_refused = refusal_handler(clock, settings.zone, policy)

    async def sweep_deadlines() -> object:
        report = await sweep(db, clock, settings.zone, policy)
        if report.total:
            worker.outbox.wake.set()  # reminders and escalation notices go out at once
        return report

    worker.every("sweep", settings.sweep_interval_seconds, sweep_deadlines)

    from schedules.digest import send_digests

    async def morning_digest() -> object:
        report = await send_digests(db, clock, settings.zone, policy, settings.digest_at)
        if report.sent:
            worker.outbox.wake.set()
        return report

    worker.daily("digest", settings.digest_at, morning_digest)

    from schedules.exports import run_exports

    async def exports() -> object:
        answered = await run_exports(db, clock, settings.zone)
        if answered:
            worker.outbox.wake.set()
        return answered

    worker.every("exports", EXPORT_POLL_SECONDS, exports)
    return worker


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for name in ("SIGINT", "SIGTERM"):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(getattr(signal, name), stop.set)
