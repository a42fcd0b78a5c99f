"""The Telegram channel over python-telegram-bot (22.x): what this framework does differently
from the shape in `bot.channels.telegram_common`.

`inbound_from_update` reads a PTB `Update` (PTB finds the command entity and the attachment);
`PtbSender` builds PTB's keyboards, uploads and commands and maps PTB's exceptions (its table
is the reference aiogram's follows); `PtbApp` feeds PTB's `Application` and polls with its
`Updater`; `open_ptb_app` and `run_ptb_polling` are the entry points.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dtm
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from telegram import (
    Bot,
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    KeyboardButton,
    Message,
    MessageEntity,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    RetryAfter,
    TelegramError,
)
from telegram.ext import Application, ApplicationBuilder, ContextTypes, TypeHandler
from telegram.request import BaseRequest, HTTPXRequest, RequestData

from bot.channels.telegram_common import (
    ALLOWED_UPDATES,
    RAW_RESULT,
    REQUEST_TIMEOUT,
    BotApiApp,
    BotApiSender,
    Failure,
    Handle,
    handle_inbound,
    read_update,
    run_polling,
)
from domain.messages import Inbound

PtbApplication = Application[Any, Any, Any, Any, Any, Any]


# --------------------------------------------------------------------------------------------
# Inbound


def inbound_from_update(update: Update) -> Inbound | None:
    """The user action in `update`, or None (see `telegram_common.read_update`)."""
    return read_update(
        update, _leading_command, lambda message: message.effective_attachment is not None
    )


def _leading_command(message: Message) -> tuple[str, str] | None:
    """(`/command@bot`, the rest stripped) when the text starts with a bot_command entity."""
    entities = message.entities
    if not entities:
        return None
    first = entities[0]
    if first.type != MessageEntity.BOT_COMMAND or first.offset != 0:
        return None
    command_text = message.parse_entity(first)
    return command_text, (message.text or "")[len(command_text) :].strip()


# --------------------------------------------------------------------------------------------
# Outbound


def _retry_after_seconds(error: RetryAfter) -> float:
    with warnings.catch_warnings():
        # PTB 22 warns that `retry_after` will become a timedelta; both shapes are handled.
        warnings.simplefilter("ignore")
        value = error.retry_after
    if isinstance(value, dtm.timedelta):
        return value.total_seconds()
    return float(value)


class PtbSender(BotApiSender):
    """Delivers `Outbound` messages through a python-telegram-bot `Bot`."""

    bot: Bot
    api_errors = (TelegramError,)

    def failure(self, error: Exception) -> Failure:
        assert isinstance(error, TelegramError)
        if isinstance(error, RetryAfter):
            return Failure("retry", error.message, retry_after=_retry_after_seconds(error))
        if isinstance(error, BadRequest):  # before NetworkError: PTB makes BadRequest one
            return Failure("bad request", error.message)
        if isinstance(error, Forbidden):
            return Failure("blocked", error.message)
        if isinstance(error, InvalidToken | ChatMigrated):
            return Failure("refused", error.message)
        # NetworkError (also TimedOut, and every 5xx answer), Conflict, an unreadable answer.
        return Failure("retry", error.message)

    def url_button(self, text: str, url: str) -> InlineKeyboardButton:
        return InlineKeyboardButton(text, url=url)

    def callback_button(self, text: str, data: str) -> InlineKeyboardButton:
        return InlineKeyboardButton(text, callback_data=data)

    def inline_markup(self, rows: list[list[Any]]) -> InlineKeyboardMarkup:
        return InlineKeyboardMarkup(rows)

    def contact_keyboard(self, label: str) -> ReplyKeyboardMarkup:
        return ReplyKeyboardMarkup(
            [[KeyboardButton(label, request_contact=True)]],
            resize_keyboard=True,
            one_time_keyboard=True,
        )

    def location_keyboard(self, label: str) -> ReplyKeyboardMarkup:
        return ReplyKeyboardMarkup(
            [[KeyboardButton(label, request_location=True)]],
            resize_keyboard=True,
            one_time_keyboard=True,
        )

    def keyboard_removal(self) -> ReplyKeyboardRemove:
        return ReplyKeyboardRemove()

    def input_file(self, name: str, content: bytes) -> InputFile:
        return InputFile(content, filename=name)

    def bot_command(self, name: str, description: str) -> BotCommand:
        return BotCommand(name, description)


# --------------------------------------------------------------------------------------------
# Running


class RecordingRequest(HTTPXRequest):
    """PTB's HTTP transport, recording each accepted answer's raw `result` in RAW_RESULT before
    PTB reads it (see `BotApiSender.call`)."""

    async def post(
        self,
        url: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> Any:
        result = await super().post(
            url,
            request_data,
            read_timeout=read_timeout,
            write_timeout=write_timeout,
            connect_timeout=connect_timeout,
            pool_timeout=pool_timeout,
        )
        RAW_RESULT.set(result)
        return result


def _request(timeout: float, pool: int) -> RecordingRequest:
    """Every phase of a request (connect, write, read, waiting for a pooled connection) cut at
    `timeout`, as aiogram cuts a whole request."""
    return RecordingRequest(
        connection_pool_size=pool,
        connect_timeout=timeout,
        read_timeout=timeout,
        write_timeout=timeout,
        pool_timeout=timeout,
    )


def build_ptb_application(
    token: str, api_url: str, handle: Handle, *, request_timeout: float = REQUEST_TIMEOUT
) -> tuple[PtbApplication, PtbSender]:
    """The python-telegram-bot application with one handler that feeds `handle`."""
    application = (
        ApplicationBuilder()
        .token(token)
        .base_url(f"{api_url}/bot")
        .base_file_url(f"{api_url}/file/bot")
        # The same pool PTB builds by default (256), with our timeouts.
        .request(_request(request_timeout, 256))
        .get_updates_request(_request(request_timeout, 2))
        # One update at a time keeps each chat's conversation in order.
        .concurrent_updates(False)
        # Scheduling belongs to the app's own scheduler, not to PTB's job queue.
        .job_queue(None)
        .build()
    )
    sender = PtbSender(application.bot)

    async def on_update(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        if isinstance(update, Update):
            await handle_inbound(inbound_from_update(update), handle, sender)

    application.add_handler(TypeHandler(Update, on_update))
    return application, sender


class PtbApp(BotApiApp[PtbSender]):
    """The application, initialised: PTB's own update queue handles what its updater fetches."""

    def __init__(self, application: PtbApplication, sender: PtbSender) -> None:
        self.application = application
        self.sender = sender

    async def feed(self, payload: dict[str, Any]) -> None:
        update = Update.de_json(payload, self.application.bot)
        await self.application.process_update(update)

    async def get_updates(self, offset: int, poll_seconds: int) -> Any:
        return await self.application.bot.get_updates(
            offset=offset, timeout=poll_seconds, allowed_updates=list(ALLOWED_UPDATES)
        )

    @contextlib.asynccontextmanager
    async def handling(self) -> AsyncIterator[None]:
        await self.application.start()
        try:
            yield
        finally:
            if self.application.running:
                await self.application.stop()

    async def poll(self, stop: asyncio.Event, poll_timeout: int) -> None:
        updater = self.application.updater
        assert updater is not None  # the builder always makes one
        try:
            # deleteWebhook first (pending updates are kept), then getUpdates in a loop.
            await updater.start_polling(timeout=poll_timeout, allowed_updates=list(ALLOWED_UPDATES))
            await stop.wait()
        finally:
            if updater.running:
                await updater.stop()


@contextlib.asynccontextmanager
async def open_ptb_app(
    token: str, api_url: str, handle: Handle, *, request_timeout: float = REQUEST_TIMEOUT
) -> AsyncIterator[PtbApp]:
    application, sender = build_ptb_application(
        token, api_url, handle, request_timeout=request_timeout
    )
    async with application:  # initialize (getMe) and shutdown
        yield PtbApp(application, sender)


async def run_ptb_polling(
    token: str,
    api_url: str,
    handle: Handle,
    *,
    on_started: Callable[[PtbSender], Awaitable[None]] | None = None,
    stop: asyncio.Event,
    poll_timeout: int = 10,
) -> None:
    """Long-poll `api_url` until `stop` is set, handing each update to `handle` in order (see
    `telegram_common.run_polling`). Unlike `Application.run_polling`, this does not own the
    event loop."""
    await run_polling(
        open_ptb_app(token, api_url, handle),
        on_started=on_started,
        stop=stop,
        poll_timeout=poll_timeout,
    )
