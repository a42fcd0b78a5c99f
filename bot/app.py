"""Running the bot: build everything from the settings, migrate, then serve.

Three shapes, one code path each:

- polling (the default): one process polls Telegram and runs the worker; each update is
  written to the inbox before the next getUpdates confirms it, and handled from there, so a
  crash between fetching and handling loses nothing (a restart handles it, once);
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

from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from bot.channels.telegram_common import BotApiApp, BotApiSender, poll_into
from bot.channels.webhook import TelegramApp, WebhookServer, derive_secret, serve
from bot.dispatcher import Dispatcher
from bot.memory import trim
from bot.settings import Settings
from domain import charts
from domain.clock import Clock, SystemClock
from domain.messages import DeliveryRefused, DeliveryRetry, HandleResult, Inbound, Sender
from schedules.leadership import Leadership
from schedules.outbox import SendLimits
from schedules.worker import Worker
from storage.database import Database
from storage.inbox import (
    RETRY_WINDOW,
    InboxDrains,
    forget_processed,
    parallel_drains,
    take_in_all,
)

log = logging.getLogger(__name__)

Role = Literal["all", "web", "worker"]
RECOVERY_SECONDS = 30.0
POLL_TIMEOUT = 10
# Ledgers asked for with /export are looked for this often (a cheap indexed read).
EXPORT_POLL_SECONDS = 2.0


class StartupError(RuntimeError):
    """The bot cannot start, for a reason one line says (the database or the Bot API cannot be
    reached, the token is refused); `huiyin` prints the line, not a traceback."""


def database_label(url: str) -> str:
    """The database URL without its password, for a message."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "HUIYIN_DATABASE_URL"


async def open_database(url: str, **options: Any) -> Database:
    """The database, migrated to the newest schema; StartupError when it cannot be reached.
    `options` go to Database (pool size, overflow, the process's name)."""
    db = Database(url, **options)
    try:
        await db.upgrade()
    except (OSError, SQLAlchemyError) as error:
        await db.dispose()
        reason = getattr(error, "orig", None) or error
        raise StartupError(
            f"Cannot reach the database at {database_label(url)}: {reason} "
            "(check HUIYIN_DATABASE_URL and that the database server is running)."
        ) from error
    return db


def bot_api_problem(error: BaseException, api_url: str) -> str | None:
    """One line for a failure to reach or use the Bot API at start, or None for anything else.
    The frameworks' own errors are looked for along the chain of causes."""
    from aiogram.exceptions import TelegramNetworkError, TelegramUnauthorizedError
    from telegram.error import InvalidToken, NetworkError

    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, InvalidToken | TelegramUnauthorizedError):
            return "The Bot API refused the bot token (HUIYIN_BOT_TOKEN): check it with @BotFather."
        if isinstance(current, NetworkError | TelegramNetworkError):
            return (
                f"Cannot reach the Telegram Bot API at {api_url}: {current} "
                "(check HUIYIN_TELEGRAM_API_URL and the network)."
            )
        current = current.__cause__ or current.__context__
    return None


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
    db = await open_database(
        settings.database_url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        name=holder,
    )
    try:
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
    """Poll Telegram into the inbox and handle each chat's updates from there (as a webhook
    replica does), with the worker alongside. What a crash left in the inbox is handled first."""
    assert settings.bot_token is not None
    dispatcher = Dispatcher(
        db,
        clock,
        settings.zone,
        use_inbox=True,
        policy=settings.policy,
        bot_username=settings.bot_username,
        review_weights=settings.weights,
        limits=settings.flood_limits,
        place_radius_m=settings.place_radius_m,
        offer_rules=settings.offer_rules,
        claim_confirm_after=settings.claim_confirm_after,
    )
    tasks: list[asyncio.Task[None]] = []
    async with open_telegram_app(settings, dispatcher.handle) as app:
        dispatcher.direct_sender = app.sender
        await introduce(app.sender, dispatcher, settings)
        worker = build_worker(db, app.sender, clock, settings)
        dispatcher.on_commit = worker.outbox.wake.set
        tasks.append(asyncio.create_task(leadership.run(stop, worker.run), name="worker"))
        drains = _drains(db, app, clock, settings)

        async def keep(updates: list[dict[str, Any]]) -> None:
            for chat_id in await take_in_all(db, updates, clock.now()):
                drains.handle_soon(chat_id)

        try:
            tasks.append(asyncio.create_task(_recover_inbox(drains, db, clock, stop)))
            assert isinstance(app, BotApiApp)
            await poll_into(app, keep, stop=stop, poll_timeout=POLL_TIMEOUT)
        except asyncio.CancelledError:
            drains.cancel()  # not a clean stop: what is under way stays in the inbox
            raise
        finally:
            stop.set()
            await drains.settle()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task


def _drains(db: Database, app: TelegramApp, clock: Clock, settings: Settings) -> InboxDrains:
    parallel = parallel_drains(settings.database_pool_size, settings.database_max_overflow)
    return InboxDrains(db, app.feed, clock.now, parallel=parallel)


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
        review_weights=settings.weights,
        limits=settings.flood_limits,
        place_radius_m=settings.place_radius_m,
        offer_rules=settings.offer_rules,
        claim_confirm_after=settings.claim_confirm_after,
    )
    secret = settings.webhook_secret or derive_secret(settings.bot_token)
    async with open_telegram_app(settings, dispatcher.handle) as app:
        dispatcher.direct_sender = app.sender
        await introduce(app.sender, dispatcher, settings)
        path = urlsplit(webhook_url).path or "/"
        drains = _drains(db, app, clock, settings)
        health_db = Database(settings.database_url, pool_size=1, max_overflow=0, name=db.name)
        server = WebhookServer(
            db=db,
            clock=clock,
            app=app,
            path=path,
            secret=secret,
            drains=drains,
            health_db=health_db,
        )
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
            tasks.append(asyncio.create_task(_recover_inbox(drains, db, clock, stop)))
            await stop.wait()
        except asyncio.CancelledError:
            drains.cancel()
            raise
        finally:
            await stop_serving()
            await server.settle()
            await health_db.dispose()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task


async def _recover_inbox(
    drains: InboxDrains, db: Database, clock: Clock, stop: asyncio.Event
) -> None:
    """At start, handle every update a stopped or crashed process took in and did not finish;
    then, now and again, pick up what a replica left behind, and forget old handled ones."""
    first = True
    while not stop.is_set():
        try:
            now = clock.now()
            # At start-up everything pending: no other process of ours is handling it, or its
            # chat's lock makes this wait, and the update is then found handled.
            since = None if first else now - timedelta(seconds=RECOVERY_SECONDS)
            chats = await drains.recover(since)
            if first and chats:
                log.warning("inbox: handling updates a stopped process left, in %s chats", chats)
            first = False
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
    async with opener(
        settings.bot_token,
        settings.telegram_api_url,
        handle,
        request_timeout=settings.request_timeout_seconds,
    ) as app:
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


# Retention runs at start and then every six hours (each run does what fell due since).
RETENTION_INTERVAL_SECONDS = 6 * 3600


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
        report = await sweep(
            db, clock, settings.zone, policy, burst_window=settings.flood_limits.burst_window
        )
        if report.total:
            worker.outbox.wake.set()  # reminders and escalation notices go out at once
        return report

    worker.every("sweep", settings.sweep_interval_seconds, sweep_deadlines)

    from schedules.claim_confirm import confirm_due

    async def claims_confirmed() -> object:
        report = await confirm_due(db, clock, settings.zone, policy)
        if report.confirmed:
            worker.outbox.wake.set()
        return report

    worker.every("claim_confirm", settings.sweep_interval_seconds, claims_confirmed)

    from schedules.digest import send_digests

    async def morning_digest() -> object:
        report = await send_digests(db, clock, settings.zone, policy, settings.digest_at)
        if report.sent:
            worker.outbox.wake.set()
        trim()  # a big job: what it freed goes back to the system (bot.memory)
        return report

    worker.daily("digest", settings.digest_at, morning_digest)

    from schedules.exports import run_exports

    async def exports() -> object:
        answered = await run_exports(db, clock, settings.zone)
        if answered:
            worker.outbox.wake.set()
        return answered

    worker.every("exports", EXPORT_POLL_SECONDS, exports)

    from schedules.ratings import run_ratings

    async def ratings_from_below() -> object:
        report = await run_ratings(db, clock, settings.zone, policy)
        if report.asked:
            worker.outbox.wake.set()
        return report

    worker.every("ratings", settings.sweep_interval_seconds, ratings_from_below)

    from schedules.offers import run_offers

    async def widen_offers() -> object:
        report = await run_offers(db, clock, settings.zone, policy)
        if report.total:
            worker.outbox.wake.set()
        return report

    worker.every("offers", settings.sweep_interval_seconds, widen_offers)

    from schedules.retention import apply_retention

    async def retention() -> object:
        report = await apply_retention(
            db,
            clock,
            outbox_days=settings.retention_outbox_days,
            closed_days=settings.retention_closed_days,
        )
        trim()  # every six hours: what the work since then freed goes back to the system
        return report

    worker.every("retention", RETENTION_INTERVAL_SECONDS, retention)
    return worker


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for name in ("SIGINT", "SIGTERM"):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(getattr(signal, name), stop.set)
