"""The Telegram channel over python-telegram-bot (22.x).

Three pieces: `inbound_from_update` turns a PTB `Update` into the channel-neutral `Inbound`;
`PtbSender` delivers `Outbound` messages through a `telegram.Bot` and turns PTB's errors into
`DeliveryRetry` / `DeliveryRefused` / `NotModified`; `run_ptb_polling` runs long polling in the
caller's event loop and feeds every update, one at a time, to a `handle` coroutine.

Texts are Telegram HTML. The sender never lets a text past Telegram's limits: a caption that
is too long becomes a separate message, and a text over 4096 visible characters is cut at a
place that keeps the HTML well-formed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dtm
import logging
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractContextManager
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
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.ext import Application, ApplicationBuilder, ContextTypes, TypeHandler

from bot.channels.telegram_common import BotApiSender, inbound_from_callback, inbound_from_message
from bot.channels.types import (
    DeliveryRefused,
    DeliveryRetry,
    HandleResult,
    Inbound,
    NotModified,
    Outbound,
)

logger = logging.getLogger(__name__)

ReplyMarkup = InlineKeyboardMarkup | ReplyKeyboardMarkup | ReplyKeyboardRemove


# --------------------------------------------------------------------------------------------
# Inbound


def inbound_from_update(update: Update) -> Inbound | None:
    """The user action in `update`, or None for updates a conversation does not see.

    Edited messages, channel posts and service messages (members joining, pins, ...) are None.
    """
    if update.callback_query is not None:
        return inbound_from_callback(update.update_id, update.callback_query)
    message = update.message
    if message is None or message.from_user is None:
        return None
    return inbound_from_message(
        update.update_id,
        message,
        _leading_command(message),
        has_attachment=message.effective_attachment is not None,
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


@contextlib.contextmanager
def _delivery_errors(action: str) -> Iterator[None]:
    """Turn PTB's exceptions into the channel-neutral ones the outbox understands."""
    try:
        yield
    except RetryAfter as error:
        raise DeliveryRetry(f"{action}: {error}", after=_retry_after_seconds(error)) from error
    except BadRequest as error:  # before NetworkError: PTB makes BadRequest a NetworkError
        if "message is not modified" in error.message.lower():
            raise NotModified(error.message) from error
        raise DeliveryRefused(f"{action}: {error.message}") from error
    except Forbidden as error:
        raise DeliveryRefused(f"{action}: {error.message}", blocked=True) from error
    except (InvalidToken, ChatMigrated) as error:
        raise DeliveryRefused(f"{action}: {error.message}") from error
    except NetworkError as error:  # also TimedOut, and every 5xx answer
        raise DeliveryRetry(f"{action}: {error.message}") from error
    except TelegramError as error:  # an unreadable server answer: worth another try
        raise DeliveryRetry(f"{action}: {error.message}") from error


def _inline_keyboard(message: Outbound) -> InlineKeyboardMarkup | None:
    if not message.buttons:
        return None
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(button.text, url=button.url)
                if button.url
                else InlineKeyboardButton(button.text, callback_data=button.data)
                for button in row
            ]
            for row in message.buttons
        ]
    )


def _reply_markup(message: Outbound) -> ReplyMarkup | None:
    inline = _inline_keyboard(message)
    if inline is not None:
        if message.request_contact or message.remove_keyboard:
            # A message carries one markup; the inline buttons are what the card needs.
            logger.warning(
                "chat %s: inline buttons win over the reply keyboard on one message",
                message.chat_id,
            )
        return inline
    if message.request_contact:
        return ReplyKeyboardMarkup(
            [[KeyboardButton(message.request_contact, request_contact=True)]],
            resize_keyboard=True,
            one_time_keyboard=True,
        )
    if message.remove_keyboard:
        return ReplyKeyboardRemove()
    return None


class PtbSender(BotApiSender):
    """Delivers `Outbound` messages through a python-telegram-bot `Bot`."""

    bot: Bot

    def reply_markup(self, message: Outbound) -> ReplyMarkup | None:
        return _reply_markup(message)

    def inline_keyboard(self, message: Outbound) -> InlineKeyboardMarkup | None:
        return _inline_keyboard(message)

    def delivery_errors(self, action: str) -> AbstractContextManager[None]:
        return _delivery_errors(action)

    def input_file(self, name: str, content: bytes) -> InputFile:
        return InputFile(content, filename=name)

    def bot_command(self, name: str, description: str) -> BotCommand:
        return BotCommand(name, description)


# --------------------------------------------------------------------------------------------
# Polling

Handle = Callable[[Inbound], Awaitable[HandleResult]]
ALLOWED_UPDATES = [Update.MESSAGE, Update.CALLBACK_QUERY]


def build_ptb_application(
    token: str, api_url: str, handle: Handle
) -> tuple[Application[Any, Any, Any, Any, Any, Any], PtbSender]:
    """The python-telegram-bot application with one handler that feeds `handle`."""
    application = (
        ApplicationBuilder()
        .token(token)
        .base_url(f"{api_url}/bot")
        .base_file_url(f"{api_url}/file/bot")
        # One update at a time keeps each chat's conversation in order.
        .concurrent_updates(False)
        # Scheduling belongs to the app's own scheduler, not to PTB's job queue.
        .job_queue(None)
        .build()
    )
    sender = PtbSender(application.bot)

    async def on_update(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        if not isinstance(update, Update):
            return
        inbound = inbound_from_update(update)
        if inbound is None:
            return
        result = HandleResult()
        try:
            result = await handle(inbound)
        except Exception:
            logger.exception("handling update %s (%s) failed", inbound.update_id, inbound.kind)
        if inbound.kind == "button":
            await _answer_press(sender, inbound, result)

    application.add_handler(TypeHandler(Update, on_update))
    return application, sender


async def run_ptb_polling(
    token: str,
    api_url: str,
    handle: Handle,
    *,
    on_started: Callable[[PtbSender], Awaitable[None]] | None = None,
    stop: asyncio.Event,
    poll_timeout: int = 10,
) -> None:
    """Long-poll `api_url` until `stop` is set, handing each update to `handle` in order.

    Runs in the caller's event loop (unlike `Application.run_polling`, which owns the loop).
    `on_started` gets the sender once the bot is initialised and before the first update is
    fetched, so `handle` can rely on whatever it sets up.
    """
    application, sender = build_ptb_application(token, api_url, handle)
    async with application:
        await application.start()
        try:
            if on_started is not None:
                await on_started(sender)
            assert application.updater is not None  # the builder always makes one
            await application.updater.start_polling(
                timeout=poll_timeout,
                allowed_updates=ALLOWED_UPDATES,
            )
            await stop.wait()
        finally:
            if application.updater is not None and application.updater.running:
                await application.updater.stop()
            if application.running:
                await application.stop()


class PtbApp:
    """The application without polling: for webhook replicas and the worker."""

    def __init__(
        self, application: Application[Any, Any, Any, Any, Any, Any], sender: PtbSender
    ) -> None:
        self.application = application
        self.sender = sender

    async def feed(self, payload: dict[str, Any]) -> None:
        """Handle one update as Telegram sent it, through the whole framework."""
        update = Update.de_json(payload, self.application.bot)
        await self.application.process_update(update)

    async def set_webhook(self, url: str, secret: str) -> None:
        await self.application.bot.set_webhook(
            url=url, secret_token=secret, allowed_updates=ALLOWED_UPDATES
        )


@contextlib.asynccontextmanager
async def open_ptb_app(token: str, api_url: str, handle: Handle) -> AsyncIterator[PtbApp]:
    application, sender = build_ptb_application(token, api_url, handle)
    async with application:  # initialize (getMe) and shutdown
        yield PtbApp(application, sender)


async def _answer_press(sender: PtbSender, inbound: Inbound, result: HandleResult) -> None:
    """Always answer a press, with no text when there is none, so the spinner stops."""
    try:
        await sender.answer_callback(
            inbound.callback_id, result.callback_answer, result.callback_alert
        )
    except (DeliveryRetry, DeliveryRefused, NotModified) as error:
        logger.warning("answering callback %s failed: %s", inbound.callback_id, error)
