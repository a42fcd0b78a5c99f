"""The Telegram channel over aiogram (3.x), the twin of `bot.channels.telegram_ptb`.

The same three pieces with the same behaviour: `inbound_from_update` turns an aiogram `Update`
into the channel-neutral `Inbound`; `AiogramSender` delivers `Outbound` messages through an
`aiogram.Bot` and turns aiogram's errors into `DeliveryRetry` / `DeliveryRefused` /
`NotModified` (with the reasons python-telegram-bot would give); `run_aiogram_polling` runs
long polling in the caller's event loop and feeds every update, one at a time, to a `handle`
coroutine.

The polling loop is not `Dispatcher.start_polling`: stopping that cancels the update being
handled, drops the rest of the fetched batch and never confirms the last batch to Telegram.
Here, as in python-telegram-bot, a fetcher queues updates and confirms them with the next
`getUpdates`; on stop the long poll is cancelled, one last `getUpdates` confirms everything
fetched, and every queued update is still handled before the function returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import MessageEntityType
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)

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
ALLOWED_UPDATES = ["message", "callback_query"]

# What python-telegram-bot's `Message.effective_attachment` looks at (its MessageAttachmentType,
# in the same order): a message with any of these and no text is "unsupported", not a service
# message.
ATTACHMENT_FIELDS = (
    "animation",
    "audio",
    "contact",
    "dice",
    "document",
    "game",
    "invoice",
    "live_photo",
    "location",
    "paid_media",
    "passport_data",
    "photo",
    "poll",
    "sticker",
    "story",
    "successful_payment",
    "video",
    "video_note",
    "voice",
    "venue",
)


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
        has_attachment=any(getattr(message, name, None) for name in ATTACHMENT_FIELDS),
    )


def _leading_command(message: Message) -> tuple[str, str] | None:
    """(`/command@bot`, the rest stripped) when the text starts with a bot_command entity."""
    entities = message.entities
    if not entities or message.text is None:
        return None
    first = entities[0]
    if first.type != MessageEntityType.BOT_COMMAND or first.offset != 0:
        return None
    command_text = first.extract_from(message.text)  # offsets count UTF-16 units
    return command_text, message.text[len(command_text) :].strip()


# --------------------------------------------------------------------------------------------
# Errors, worded as python-telegram-bot words them


def _description(error: TelegramAPIError) -> str:
    """The server's description as python-telegram-bot reports it (`TelegramError.message`).

    PTB drops an "Error: ", "[Error]: " or "Bad Request: " prefix and then capitalizes, so both
    channels store the same `last_error` for the same refusal.
    """
    message = error.message
    stripped = message.removeprefix("Error: ").removeprefix("[Error]: ")
    stripped = stripped.removeprefix("Bad Request: ")
    return stripped.capitalize() if stripped != message else message


@contextlib.contextmanager
def _delivery_errors(action: str) -> Iterator[None]:
    """Turn aiogram's exceptions into the channel-neutral ones the outbox understands.

    The mapping is python-telegram-bot's (see `telegram_ptb._delivery_errors`): 429 waits, 400
    is refused ("message is not modified" is `NotModified`), 403 is refused as blocked, 401/404
    (a bad token) and a migrated group are refused; everything else (network, 5xx, 409, other
    codes, an unreadable answer) is worth another try.
    """
    try:
        yield
    except TelegramRetryAfter as error:
        reason = f"{action}: Flood control exceeded. Retry in {error.retry_after} seconds"
        raise DeliveryRetry(reason, after=float(error.retry_after)) from error
    except TelegramMigrateToChat as error:
        reason = f"{action}: Group migrated to supergroup. New chat id: {error.migrate_to_chat_id}"
        raise DeliveryRefused(reason) from error
    except TelegramBadRequest as error:
        description = _description(error)
        if "message is not modified" in description.lower():
            raise NotModified(description) from error
        raise DeliveryRefused(f"{action}: {description}") from error
    except TelegramForbiddenError as error:
        raise DeliveryRefused(f"{action}: {_description(error)}", blocked=True) from error
    except (TelegramUnauthorizedError, TelegramNotFound) as error:
        raise DeliveryRefused(f"{action}: {_description(error)}") from error
    except (TelegramNetworkError, TelegramServerError, TelegramConflictError) as error:
        raise DeliveryRetry(f"{action}: {_description(error)}") from error
    except TelegramAPIError as error:  # any other status code: PTB's NetworkError
        raise DeliveryRetry(f"{action}: {_description(error)}") from error
    except ClientDecodeError as error:  # an unreadable server answer: worth another try
        raise DeliveryRetry(f"{action}: Invalid server response") from error


# --------------------------------------------------------------------------------------------
# Outbound


def _inline_keyboard(message: Outbound) -> InlineKeyboardMarkup | None:
    if not message.buttons:
        return None
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(text=button.text, url=button.url)
                if button.url
                else InlineKeyboardButton(text=button.text, callback_data=button.data)
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
            keyboard=[[KeyboardButton(text=message.request_contact, request_contact=True)]],
            resize_keyboard=True,
            one_time_keyboard=True,
        )
    if message.remove_keyboard:
        return ReplyKeyboardRemove(remove_keyboard=True)
    return None


class AiogramSender(BotApiSender):
    """Delivers `Outbound` messages through an aiogram `Bot`."""

    bot: Bot

    def reply_markup(self, message: Outbound) -> ReplyMarkup | None:
        return _reply_markup(message)

    def inline_keyboard(self, message: Outbound) -> InlineKeyboardMarkup | None:
        return _inline_keyboard(message)

    def delivery_errors(self, action: str) -> AbstractContextManager[None]:
        return _delivery_errors(action)

    def input_file(self, name: str, content: bytes) -> BufferedInputFile:
        return BufferedInputFile(content, filename=name)

    def bot_command(self, name: str, description: str) -> BotCommand:
        return BotCommand(command=name, description=description)


# --------------------------------------------------------------------------------------------
# Polling

Handle = Callable[[Inbound], Awaitable[HandleResult]]


class _Offset:
    """The next update id to ask for; asking for it confirms every update before it.

    It starts at 0 (Telegram's default, and what PTB sends) so both channels poll alike.
    """

    def __init__(self) -> None:
        self.value = 0


def build_aiogram(
    token: str, api_url: str, handle: Handle
) -> tuple[Bot, Dispatcher, AiogramSender]:
    """The aiogram bot and a dispatcher with one handler (messages and presses) feeding `handle`."""
    bot = Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(api_url)))
    sender = AiogramSender(bot)
    dispatcher = Dispatcher()

    async def on_event(event: Message | CallbackQuery, event_update: Update) -> None:
        inbound = inbound_from_update(event_update)
        if inbound is None:
            return
        result = HandleResult()
        try:
            result = await handle(inbound)
        except Exception:
            logger.exception("handling update %s (%s) failed", inbound.update_id, inbound.kind)
        if inbound.kind == "button":
            await _answer_press(sender, inbound, result)

    dispatcher.message.register(on_event)
    dispatcher.callback_query.register(on_event)
    return bot, dispatcher, sender


class AiogramApp:
    """The bot without polling: for webhook replicas and the worker."""

    def __init__(self, bot: Bot, dispatcher: Dispatcher, sender: AiogramSender) -> None:
        self.bot = bot
        self.dispatcher = dispatcher
        self.sender = sender

    async def feed(self, payload: dict[str, Any]) -> None:
        """Handle one update as Telegram sent it, through the whole framework."""
        update = Update.model_validate(payload, context={"bot": self.bot})
        await self.dispatcher.feed_update(self.bot, update)

    async def set_webhook(self, url: str, secret: str) -> None:
        await self.bot.set_webhook(url=url, secret_token=secret, allowed_updates=ALLOWED_UPDATES)


@contextlib.asynccontextmanager
async def open_aiogram_app(token: str, api_url: str, handle: Handle) -> AsyncIterator[AiogramApp]:
    bot, dispatcher, sender = build_aiogram(token, api_url, handle)
    try:
        await bot.me()  # getMe, as python-telegram-bot's initialize(): a bad token fails here
        yield AiogramApp(bot, dispatcher, sender)
    finally:
        await bot.session.close()


async def run_aiogram_polling(
    token: str,
    api_url: str,
    handle: Handle,
    *,
    on_started: Callable[[AiogramSender], Awaitable[None]] | None = None,
    stop: asyncio.Event,
    poll_timeout: int = 10,
) -> None:
    """Long-poll `api_url` until `stop` is set, handing each update to `handle` in order.

    Runs in the caller's event loop. The same contract and the same calls as `run_ptb_polling`:
    getMe, then `on_started` (before the first update is fetched, so `handle` can rely on
    whatever it sets up), then deleteWebhook, then getUpdates in a loop. On stop the long poll
    is abandoned, a last getUpdates confirms everything fetched, and every update already
    fetched is handled before this returns. `token` must look like `<digits>:<text>`.
    """
    bot, dispatcher, sender = build_aiogram(token, api_url, handle)

    queue: asyncio.Queue[Update | None] = asyncio.Queue()
    offset = _Offset()
    try:
        await bot.me()  # getMe, as PTB's initialize(): a bad token fails here
        consumer = asyncio.create_task(
            _handle_queued(bot, dispatcher, queue), name="aiogram:handle"
        )
        try:
            if on_started is not None:
                await on_started(sender)
            await bot.delete_webhook()  # as PTB: pending updates are kept
            await _poll_until_stopped(bot, queue, offset, stop, poll_timeout)
        finally:
            queue.put_nowait(None)  # handle everything fetched so far, then end
            await consumer
    finally:
        await bot.session.close()


async def _poll_until_stopped(
    bot: Bot,
    queue: asyncio.Queue[Update | None],
    offset: _Offset,
    stop: asyncio.Event,
    poll_timeout: int,
) -> None:
    fetcher = asyncio.create_task(
        _fetch_updates(bot, queue, offset, poll_timeout), name="aiogram:fetch"
    )
    stopping = asyncio.create_task(stop.wait(), name="aiogram:stop")
    failure: BaseException | None = None
    try:
        await asyncio.wait((fetcher, stopping), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        fetcher.cancel()
        # `asyncio.wait` neither raises the fetcher's error nor swallows our own cancellation.
        await asyncio.wait((fetcher,))
        failure = None if fetcher.cancelled() else fetcher.exception()
        if failure is None:  # also when the caller cancels us, as PTB's stop() would
            await _confirm_fetched(bot, offset)
    if failure is not None:
        raise failure


async def _fetch_updates(
    bot: Bot, queue: asyncio.Queue[Update | None], offset: _Offset, poll_timeout: int
) -> None:
    """Queue updates as they come, retrying failures the way PTB's network_retry_loop does."""
    request_timeout = int(bot.session.timeout + poll_timeout)
    interval = 0.0
    while True:
        try:
            updates = await bot.get_updates(
                offset=offset.value,
                timeout=poll_timeout,
                allowed_updates=ALLOWED_UPDATES,
                request_timeout=request_timeout,
            )
        except TelegramRetryAfter as error:
            interval = error.retry_after + 0.5
            logger.warning("polling: flood control, retrying in %s s", interval)
        except (TelegramUnauthorizedError, TelegramNotFound):
            logger.critical("polling: invalid token; polling stops")
            raise
        except TelegramNetworkError as error:
            if isinstance(error.__cause__, TimeoutError):
                interval = 0.0  # a timed-out long poll is retried at once
            else:
                logger.error("polling: %s", error)
                interval = 1.0 if interval == 0 else min(30.0, 1.5 * interval)
        except (TelegramAPIError, ClientDecodeError) as error:
            logger.error("polling: %s", error)
            interval = 1.0 if interval == 0 else min(30.0, 1.5 * interval)
        else:
            for update in updates:
                queue.put_nowait(update)
            if updates:
                offset.value = updates[-1].update_id + 1
            interval = 0.0
            continue
        if interval:
            await asyncio.sleep(interval)


async def _confirm_fetched(bot: Bot, offset: _Offset) -> None:
    """One last getUpdates so Telegram does not send the updates fetched so far again."""
    try:
        await bot.get_updates(offset=offset.value, timeout=0, allowed_updates=ALLOWED_UPDATES)
    except (TelegramAPIError, ClientDecodeError):
        logger.exception("polling: confirming the fetched updates failed; they may come again")


async def _handle_queued(
    bot: Bot, dispatcher: Dispatcher, queue: asyncio.Queue[Update | None]
) -> None:
    """Feed queued updates to the dispatcher strictly one at a time, until the None marker."""
    while (update := await queue.get()) is not None:
        try:
            await dispatcher.feed_update(bot, update)
        except Exception:
            logger.exception("update %s could not be handled", update.update_id)


async def _answer_press(sender: AiogramSender, inbound: Inbound, result: HandleResult) -> None:
    """Always answer a press, with no text when there is none, so the spinner stops."""
    try:
        await sender.answer_callback(
            inbound.callback_id, result.callback_answer, result.callback_alert
        )
    except (DeliveryRetry, DeliveryRefused, NotModified) as error:
        logger.warning("answering callback %s failed: %s", inbound.callback_id, error)
