"""The Telegram channel over aiogram (3.x): what this framework does differently from the shape
in `bot.channels.telegram_common`, behaving as `bot.channels.telegram_ptb` does.

`inbound_from_update` reads an aiogram `Update` (the command entity counted in UTF-16 units,
attachments as python-telegram-bot sees them); `AiogramSender` builds aiogram's keyboards,
uploads and commands and maps aiogram's exceptions with the reasons python-telegram-bot would
give; `AiogramApp` feeds an aiogram `Dispatcher` and polls; `open_aiogram_app` and
`run_aiogram_polling` are the entry points.

The polling loop is not `Dispatcher.start_polling`: stopping that cancels the update being
handled, drops the rest of the fetched batch and never confirms the last batch to Telegram.
Here, as in python-telegram-bot, a fetcher queues updates and confirms them with the next
`getUpdates`; on stop the long poll is cancelled, one last `getUpdates` confirms everything
fetched, and every queued update is still handled before polling ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import MessageEntityType
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
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

logger = logging.getLogger(__name__)

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
    """The user action in `update`, or None (see `telegram_common.read_update`)."""
    return read_update(update, _leading_command, _has_attachment)


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


def _has_attachment(message: Message) -> bool:
    return any(getattr(message, name, None) for name in ATTACHMENT_FIELDS)


# --------------------------------------------------------------------------------------------
# Outbound


def _description(error: TelegramAPIError) -> str:
    """The server's description as python-telegram-bot reports it (`TelegramError.message`).

    PTB drops an "Error: ", "[Error]: " or "Bad Request: " prefix and then capitalizes, so both
    channels store the same `last_error` for the same refusal.
    """
    message = error.message
    stripped = message.removeprefix("Error: ").removeprefix("[Error]: ")
    stripped = stripped.removeprefix("Bad Request: ")
    return stripped.capitalize() if stripped != message else message


class AiogramSender(BotApiSender):
    """Delivers `Outbound` messages through an aiogram `Bot`."""

    bot: Bot
    api_errors = (TelegramAPIError, ClientDecodeError)

    def failure(self, error: Exception) -> Failure:
        """python-telegram-bot's mapping (`PtbSender.failure`), in its words: 429 waits, 400 is
        a bad request, 403 is blocked, 401/404 (a bad token) and a migrated group are refused;
        everything else (network, 5xx, 409, other codes, an unreadable answer) is retried."""
        if isinstance(error, ClientDecodeError):
            return Failure("retry", "Invalid server response")
        assert isinstance(error, TelegramAPIError)
        if isinstance(error, TelegramRetryAfter):
            reason = f"Flood control exceeded. Retry in {error.retry_after} seconds"
            return Failure("retry", reason, retry_after=float(error.retry_after))
        if isinstance(error, TelegramMigrateToChat):
            reason = f"Group migrated to supergroup. New chat id: {error.migrate_to_chat_id}"
            return Failure("refused", reason)
        if isinstance(error, TelegramBadRequest):
            return Failure("bad request", _description(error))
        if isinstance(error, TelegramForbiddenError):
            return Failure("blocked", _description(error))
        if isinstance(error, TelegramUnauthorizedError | TelegramNotFound):
            return Failure("refused", _description(error))
        return Failure("retry", _description(error))

    def url_button(self, text: str, url: str) -> InlineKeyboardButton:
        return InlineKeyboardButton(text=text, url=url)

    def callback_button(self, text: str, data: str) -> InlineKeyboardButton:
        return InlineKeyboardButton(text=text, callback_data=data)

    def inline_markup(self, rows: list[list[Any]]) -> InlineKeyboardMarkup:
        return InlineKeyboardMarkup(inline_keyboard=rows)

    def contact_keyboard(self, label: str) -> ReplyKeyboardMarkup:
        return ReplyKeyboardMarkup(
            keyboard=[[KeyboardButton(text=label, request_contact=True)]],
            resize_keyboard=True,
            one_time_keyboard=True,
        )

    def location_keyboard(self, label: str) -> ReplyKeyboardMarkup:
        return ReplyKeyboardMarkup(
            keyboard=[[KeyboardButton(text=label, request_location=True)]],
            resize_keyboard=True,
            one_time_keyboard=True,
        )

    def keyboard_removal(self) -> ReplyKeyboardRemove:
        return ReplyKeyboardRemove(remove_keyboard=True)

    def input_file(self, name: str, content: bytes) -> BufferedInputFile:
        return BufferedInputFile(content, filename=name)

    def bot_command(self, name: str, description: str) -> BotCommand:
        return BotCommand(command=name, description=description)


# --------------------------------------------------------------------------------------------
# Running


class RecordingSession(AiohttpSession):
    """aiogram's HTTP session, recording each accepted answer's raw `result` in RAW_RESULT
    before aiogram reads it (see `BotApiSender.call`)."""

    def check_response(self, bot: Bot, method: Any, status_code: int, content: str) -> Any:
        with contextlib.suppress(Exception):
            answer = self.json_loads(content)
            if isinstance(answer, dict) and answer.get("ok") is True and 200 <= status_code < 300:
                RAW_RESULT.set(answer.get("result"))
        return super().check_response(bot, method, status_code, content)


def build_aiogram(
    token: str, api_url: str, handle: Handle, *, request_timeout: float = REQUEST_TIMEOUT
) -> tuple[Bot, Dispatcher, AiogramSender]:
    """The aiogram bot and a dispatcher with one handler (messages and presses) feeding `handle`.
    A whole request is cut at `request_timeout` (a long poll gets its `timeout` on top)."""
    session = RecordingSession(api=TelegramAPIServer.from_base(api_url), timeout=request_timeout)
    bot = Bot(token, session=session)
    sender = AiogramSender(bot)
    dispatcher = Dispatcher()

    async def on_event(event: Message | CallbackQuery, event_update: Update) -> None:
        await handle_inbound(inbound_from_update(event_update), handle, sender)

    dispatcher.message.register(on_event)
    dispatcher.callback_query.register(on_event)
    return bot, dispatcher, sender


class AiogramApp(BotApiApp[AiogramSender]):
    """The bot and its dispatcher, initialised; polling queues what it fetches for `handling`."""

    def __init__(self, bot: Bot, dispatcher: Dispatcher, sender: AiogramSender) -> None:
        self.bot = bot
        self.dispatcher = dispatcher
        self.sender = sender
        self._queue: asyncio.Queue[Update | None] = asyncio.Queue()
        # The next update id to ask for; asking for it confirms every update before it. It
        # starts at 0 (Telegram's default, and what PTB sends) so both channels poll alike.
        self._offset = 0

    async def feed(self, payload: dict[str, Any]) -> None:
        update = Update.model_validate(payload, context={"bot": self.bot})
        await self.dispatcher.feed_update(self.bot, update)

    async def get_updates(self, offset: int, poll_seconds: int) -> Any:
        return await self.bot.get_updates(
            offset=offset,
            timeout=poll_seconds,
            allowed_updates=list(ALLOWED_UPDATES),
            request_timeout=int(self.bot.session.timeout + poll_seconds),
        )

    @contextlib.asynccontextmanager
    async def handling(self) -> AsyncIterator[None]:
        consumer = asyncio.create_task(self._handle_queued(), name="aiogram:handle")
        try:
            yield
        finally:
            self._queue.put_nowait(None)  # handle everything fetched so far, then end
            await consumer

    async def poll(self, stop: asyncio.Event, poll_timeout: int) -> None:
        await self.bot.delete_webhook()  # as PTB: pending updates are kept
        fetcher = asyncio.create_task(self._fetch_updates(poll_timeout), name="aiogram:fetch")
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
                await self._confirm_fetched()
        if failure is not None:
            raise failure

    async def _fetch_updates(self, poll_timeout: int) -> None:
        """Queue updates as they come, retrying failures the way PTB's network_retry_loop does."""
        request_timeout = int(self.bot.session.timeout + poll_timeout)
        interval = 0.0
        while True:
            try:
                updates = await self.bot.get_updates(
                    offset=self._offset,
                    timeout=poll_timeout,
                    allowed_updates=list(ALLOWED_UPDATES),
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
                    self._queue.put_nowait(update)
                if updates:
                    self._offset = updates[-1].update_id + 1
                interval = 0.0
                continue
            if interval:
                await asyncio.sleep(interval)

    async def _confirm_fetched(self) -> None:
        """One last getUpdates so Telegram does not send the updates fetched so far again."""
        try:
            await self.bot.get_updates(
                offset=self._offset, timeout=0, allowed_updates=list(ALLOWED_UPDATES)
            )
        except (TelegramAPIError, ClientDecodeError):
            logger.exception("polling: confirming the fetched updates failed; they may come again")

    async def _handle_queued(self) -> None:
        """Feed queued updates to the dispatcher strictly one at a time, until the None marker."""
        while (update := await self._queue.get()) is not None:
            try:
                await self.dispatcher.feed_update(self.bot, update)
            except Exception:
                logger.exception("update %s could not be handled", update.update_id)


@contextlib.asynccontextmanager
async def open_aiogram_app(
    token: str, api_url: str, handle: Handle, *, request_timeout: float = REQUEST_TIMEOUT
) -> AsyncIterator[AiogramApp]:
    bot, dispatcher, sender = build_aiogram(token, api_url, handle, request_timeout=request_timeout)
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
    """Long-poll `api_url` until `stop` is set, handing each update to `handle` in order (see
    `telegram_common.run_polling`): the same calls as `run_ptb_polling` (getMe, `on_started`,
    deleteWebhook, getUpdates in a loop). `token` must look like `<digits>:<text>`."""
    await run_polling(
        open_aiogram_app(token, api_url, handle),
        on_started=on_started,
        stop=stop,
        poll_timeout=poll_timeout,
    )
