"""The shape every Telegram channel shares, written once; a framework's file adds only what it
does differently.

A channel reads a framework's updates into the channel-neutral `Inbound`, hands each to a
`handle` coroutine, and delivers `Outbound` messages (the `Sender` protocol). python-telegram-bot
and aiogram model the Bot API's objects and methods with the same names, so most of that lives
here and takes either framework's objects:

- reading an update: `read_update`, `inbound_from_message`, `inbound_from_callback`;
- handling it: `handle_inbound` (a failure is logged; a button press is always answered);
- delivering: `BotApiSender` (HTML, Telegram's limits, which keyboard a message carries,
  captions, uploads, the command menu) and what a failed call means (`Failure`,
  `delivery_error`: retry, not modified, refused, blocked);
- running: `BotApiApp` (one update fed through the framework; raw updates fetched), `poll_into`
  (the polling `huiyin run` does: each batch kept, in the inbox, before the next getUpdates
  confirms it) and `run_polling` (the channel alone, handling in memory what it fetched: no
  database, so a crash loses what was fetched; `huiyin run` does not use it).

A framework's file (`telegram_ptb`, `telegram_aiogram`) writes the rest: finding the command
entity and telling attachments apart; a `BotApiSender` subclass with small factories (buttons,
keyboards, an upload, a BotCommand) and the table of which of its exceptions mean what; a
`BotApiApp` subclass that feeds its dispatcher and fetches updates; and how to build and open
its bot. A third Bot API framework writes the same. A channel that is not Telegram (a web chat,
WeChat) implements `Sender`, reads its events into `Inbound` and hands them on with
`handle_inbound`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Literal, TypeVar

from bot.channels.telegram_html import MEDIA_KINDS, fit_html, fit_plain, visible_length
from domain.messages import (
    MAX_CALLBACK_ANSWER,
    MAX_CAPTION,
    MAX_TEXT,
    DeliveryRefused,
    DeliveryRetry,
    HandleResult,
    Inbound,
    NotModified,
    Outbound,
    Sender,
)

logger = logging.getLogger(__name__)

HTML = "HTML"
# The updates a conversation sees; polling and the webhook ask Telegram for these alone.
ALLOWED_UPDATES = ("message", "callback_query")

Handle = Callable[[Inbound], Awaitable[HandleResult]]

# Every Bot API request is cut after this many seconds, on both frameworks alike (a long poll
# gets its own `timeout` on top); a hung request then counts as a failure to retry.
REQUEST_TIMEOUT = 10.0
# Telegram drops a button press's answer after about 15 s; a failed answer is retried within it.
CALLBACK_WINDOW = 15.0
CALLBACK_RETRY_FIRST = 0.25

# The `result` of the last Bot API answer that said ok, as the server sent it (JSON): set by each
# framework's transport (`telegram_ptb.RecordingRequest`, `telegram_aiogram.RecordingSession`)
# before the framework reads it into its objects, so a send the server accepted is known to be
# sent even when that reading fails. A context variable: each task sees its own last answer.
RAW_RESULT: ContextVar[Any] = ContextVar("huiyin_raw_result", default=None)


def message_id_of(sent: Any) -> int:
    """The message id in a send's answer: the framework's Message, or the raw JSON (0 when an
    accepted answer does not say it)."""
    if isinstance(sent, dict):
        value = sent.get("message_id")
        return value if isinstance(value, int) and not isinstance(value, bool) else 0
    value = getattr(sent, "message_id", 0)
    return value if isinstance(value, int) else 0


# --------------------------------------------------------------------------------------------
# Inbound


def read_update(
    update: Any,
    leading_command: Callable[[Any], tuple[str, str] | None],
    has_attachment: Callable[[Any], bool],
) -> Inbound | None:
    """The user action in a framework's `update`, or None for updates a conversation does not
    see: edited messages, channel posts and service messages (members joining, pins, ...).

    `leading_command` finds a message's command (`/name@bot` and the rest) and `has_attachment`
    tells an attachment from a service message, the two things the frameworks do differently.
    """
    if update.callback_query is not None:
        return inbound_from_callback(update.update_id, update.callback_query)
    message = update.message
    if message is None or message.from_user is None:
        return None
    return inbound_from_message(
        update.update_id,
        message,
        leading_command(message),
        has_attachment=has_attachment(message),
    )


def inbound_from_message(
    update_id: int, message: Any, command: tuple[str, str] | None, *, has_attachment: bool
) -> Inbound | None:
    """The action in a message: a command (`command` is its `/name@bot` text and the rest),
    a text, a shared contact, a photo, a voice message, a location, or something unsupported
    (`has_attachment`: a sticker, a file, ...). Service messages give None."""
    user = message.from_user
    common: dict[str, Any] = {
        "user_id": user.id,
        "chat_id": message.chat.id,
        "chat_type": str(message.chat.type),
        "language": user.language_code,
        "display_name": user.full_name,
        "message_id": message.message_id,
        "update_id": update_id,
    }
    if message.text is not None:
        if command is not None:
            command_text, args = command
            name = command_text[1:].split("@", 1)[0].lower()
            return Inbound(kind="command", text=message.text, command=name, args=args, **common)
        return Inbound(kind="text", text=message.text, **common)
    if message.contact is not None:
        return Inbound(
            kind="contact",
            contact_phone=message.contact.phone_number,
            contact_user_id=message.contact.user_id,
            **common,
        )
    if message.photo:
        largest = max(message.photo, key=lambda size: size.width * size.height)
        return Inbound(kind="photo", file_id=largest.file_id, text=message.caption or "", **common)
    if message.voice is not None:
        return Inbound(
            kind="voice", file_id=message.voice.file_id, text=message.caption or "", **common
        )
    if message.location is not None:
        return Inbound(
            kind="location",
            latitude=float(message.location.latitude),
            longitude=float(message.location.longitude),
            **common,
        )
    if has_attachment:
        return Inbound(kind="unsupported", text=message.caption or "", **common)
    return None


def inbound_from_callback(update_id: int, query: Any) -> Inbound:
    """A button press. The message is absent for a button on an inline-mode message, whose
    answer goes to the user."""
    user = query.from_user
    message = query.message
    chat_id = message.chat.id if message is not None else user.id
    chat_type = str(message.chat.type) if message is not None else "private"
    return Inbound(
        kind="button",
        user_id=user.id,
        chat_id=chat_id,
        chat_type=chat_type,
        language=user.language_code,
        display_name=user.full_name,
        button_data=query.data or "",
        callback_id=query.id,
        message_id=message.message_id if message is not None else None,
        update_id=update_id,
    )


async def handle_inbound(inbound: Inbound | None, handle: Handle, sender: Sender) -> None:
    """Hand one user action to `handle`. A failure is logged, not raised, so the updates after
    it are still handled; a button press is always answered (with no text when `handle` gives
    none, or failed) so the spinner stops, and a failed answer is only logged."""
    if inbound is None:
        return
    result = HandleResult()
    try:
        result = await handle(inbound)
    except Exception:
        logger.exception("handling update %s (%s) failed", inbound.update_id, inbound.kind)
    if inbound.kind != "button":
        return
    await answer_press(sender, inbound.callback_id, result)


async def answer_press(
    sender: Sender,
    callback_id: str,
    result: HandleResult,
    *,
    window: float = CALLBACK_WINDOW,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> bool:
    """Answer a button press; a temporary failure (network, 5xx, 429) is tried again, sooner
    each time than Telegram's `window` closes, and given up once it has. A refusal is only
    logged. True when the answer was taken."""
    deadline = monotonic() + window
    pause = CALLBACK_RETRY_FIRST
    attempt = 0
    while True:
        attempt += 1
        try:
            await sender.answer_callback(callback_id, result.callback_answer, result.callback_alert)
            return True
        except (DeliveryRefused, NotModified) as error:
            logger.warning("answering callback %s failed: %s", callback_id, error)
            return False
        except DeliveryRetry as error:
            wait = error.after if error.after is not None else pause
            if monotonic() + wait >= deadline:
                logger.warning(
                    "answering callback %s failed %s times; its window is over: %s",
                    callback_id,
                    attempt,
                    error,
                )
                return False
            logger.info("answering callback %s failed, trying again: %s", callback_id, error)
            await sleep(wait)
            pause = min(pause * 2, 4.0)


# --------------------------------------------------------------------------------------------
# Failures


@dataclass(frozen=True, slots=True)
class Failure:
    """What one of a framework's exceptions means for delivery: `verdict` is "retry" (network,
    5xx, 429 with `retry_after` seconds, anything unknown), "bad request" (a 400), "blocked"
    (a 403: the user blocked the bot) or "refused" (a bad token, a migrated group).
    `description` is the server's reason as python-telegram-bot words it, so both channels
    record the same reason for the same refusal."""

    verdict: Literal["retry", "bad request", "blocked", "refused"]
    description: str
    retry_after: float | None = None


def delivery_error(action: str, failure: Failure) -> DeliveryRetry | DeliveryRefused | NotModified:
    """The channel-neutral exception the outbox understands for a failed `action`: an edit
    to the content already shown is NotModified, any other bad request is refused."""
    reason = f"{action}: {failure.description}"
    if failure.verdict == "retry":
        return DeliveryRetry(reason, after=failure.retry_after)
    not_modified = "message is not modified" in failure.description.lower()
    if failure.verdict == "bad request" and not_modified:
        return NotModified(failure.description)
    return DeliveryRefused(reason, blocked=failure.verdict == "blocked")


# --------------------------------------------------------------------------------------------
# Outbound


class BotApiSender(ABC):
    """Delivers `Outbound` messages through a framework's bot (the `Sender` protocol).

    python-telegram-bot and aiogram name the Bot API's methods and parameters alike, so the
    delivery rules live here once: HTML parse mode, text never over Telegram's limits, buttons
    on the last message, a caption that does not fit sent as a text of its own, which keyboard
    a message carries. A subclass builds its framework's objects (the factories below) and says
    which of its errors mean what (`api_errors`, `failure`).
    """

    # The framework's exceptions `failure` reads; any other exception passes through.
    api_errors: ClassVar[tuple[type[Exception], ...]]

    def __init__(self, bot: Any) -> None:
        self.bot = bot

    @abstractmethod
    def failure(self, error: Exception) -> Failure:
        """What `error` (one of `api_errors`) means: the framework's mapping table."""

    @abstractmethod
    def url_button(self, text: str, url: str) -> Any:
        """An inline button that opens `url`."""

    @abstractmethod
    def callback_button(self, text: str, data: str) -> Any:
        """An inline button whose press comes back with `data`."""

    @abstractmethod
    def inline_markup(self, rows: list[list[Any]]) -> Any:
        """Rows of inline buttons as the framework's InlineKeyboardMarkup."""

    @abstractmethod
    def contact_keyboard(self, label: str) -> Any:
        """A reply keyboard of one button that shares the user's phone number: resized, gone
        after one use."""

    @abstractmethod
    def location_keyboard(self, label: str) -> Any:
        """A reply keyboard of one button that shares where the user is: resized, gone after
        one use."""

    @abstractmethod
    def keyboard_removal(self) -> Any:
        """The framework's ReplyKeyboardRemove."""

    @abstractmethod
    def input_file(self, name: str, content: bytes) -> Any:
        """The framework's object for a file uploaded from bytes (multipart)."""

    @abstractmethod
    def bot_command(self, name: str, description: str) -> Any:
        """The framework's BotCommand."""

    @contextlib.contextmanager
    def delivery_errors(self, action: str) -> Iterator[None]:
        """Turn the framework's errors into DeliveryRetry / DeliveryRefused / NotModified."""
        try:
            yield
        except self.api_errors as error:
            raise delivery_error(action, self.failure(error)) from error

    async def call(self, action: str, request: Callable[[], Awaitable[Any]]) -> Any:
        """Make one Bot API call; its errors become the channel-neutral ones.

        When the server accepted the call but its answer cannot be read into the framework's
        objects (a field of a shape the framework does not know), the call happened all the
        same: the raw result is returned and the oddity logged, never raised, so the outbox
        does not send it again."""
        RAW_RESULT.set(None)
        try:
            return await request()
        except Exception as error:
            raw = RAW_RESULT.get()
            if raw is not None:
                logger.warning(
                    "%s: accepted by the Bot API, but its answer could not be read (%s: %s)",
                    action,
                    type(error).__name__,
                    error,
                )
                return raw
            if isinstance(error, self.api_errors):
                raise delivery_error(action, self.failure(error)) from error
            raise

    def inline_keyboard(self, message: Outbound) -> Any:
        """The inline buttons alone, or None (an edit cannot carry a reply keyboard)."""
        if not message.buttons:
            return None
        return self.inline_markup(
            [
                [
                    self.url_button(button.text, button.url)
                    if button.url
                    else self.callback_button(button.text, button.data)
                    for button in row
                ]
                for row in message.buttons
            ]
        )

    def reply_markup(self, message: Outbound) -> Any:
        """Inline buttons, a contact- or location-request keyboard, a keyboard removal, or
        None."""
        inline = self.inline_keyboard(message)
        if inline is not None:
            if message.request_contact or message.request_location or message.remove_keyboard:
                # A message carries one markup; the inline buttons are what the card needs.
                logger.warning(
                    "chat %s: inline buttons win over the reply keyboard on one message",
                    message.chat_id,
                )
            return inline
        if message.request_contact:
            return self.contact_keyboard(message.request_contact)
        if message.request_location:
            return self.location_keyboard(message.request_location)
        if message.remove_keyboard:
            return self.keyboard_removal()
        return None

    async def introduce(self, menus: Mapping[str | None, Sequence[tuple[str, str]]]) -> str:
        """Set the command menu Telegram shows, per language (None: everyone else), and return
        the bot's username (for t.me links)."""
        for language, commands in menus.items():
            with self.delivery_errors("setMyCommands"):
                await self.bot.set_my_commands(
                    [self.bot_command(name, text) for name, text in commands],
                    language_code=language,
                )
        with self.delivery_errors("getMe"):
            me = await self.bot.get_me()
        return str(me.username or "")

    async def send(self, message: Outbound) -> int:
        markup = self.reply_markup(message)
        if message.contact_phone:
            return await self._send_contact(message, markup)
        if message.upload_kind is not None:
            return await self._send_upload(message, markup)
        if message.media_kind in MEDIA_KINDS and message.media_file_id:
            return await self._send_media(message, markup)
        if message.media_kind is not None:
            logger.warning(
                "chat %s: cannot attach media %r (%r); sending the text alone",
                message.chat_id,
                message.media_kind,
                message.media_file_id,
            )
        return await self._send_text(message.chat_id, message.text, markup)

    async def edit(self, message: Outbound, message_id: int) -> None:
        await self.call(
            f"edit {message.chat_id}/{message_id}",
            lambda: self.bot.edit_message_text(
                chat_id=message.chat_id,
                message_id=message_id,
                text=fit_html(message.text, MAX_TEXT),
                parse_mode=HTML,
                reply_markup=self.inline_keyboard(message),
            ),
        )

    async def answer_callback(self, callback_id: str, text: str | None, alert: bool) -> None:
        try:
            await self.call(
                f"answer callback {callback_id}",
                lambda: self.bot.answer_callback_query(
                    callback_id,
                    text=fit_plain(text, MAX_CALLBACK_ANSWER) if text else None,
                    show_alert=alert,
                ),
            )
        except DeliveryRefused as refused:
            if "query is too old" not in str(refused).lower():
                raise
            # The press was handled; only the spinner's answer came too late.
            logger.info("callback %s answered too late: %s", callback_id, refused)

    async def _send_text(self, chat_id: int, text: str, markup: Any) -> int:
        sent = await self.call(
            f"send to {chat_id}",
            lambda: self.bot.send_message(
                chat_id=chat_id,
                text=fit_html(text, MAX_TEXT),
                parse_mode=HTML,
                reply_markup=markup,
            ),
        )
        return message_id_of(sent)

    async def _send_contact(self, message: Outbound, markup: Any) -> int:
        sent = await self.call(
            f"send contact to {message.chat_id}",
            lambda: self.bot.send_contact(
                chat_id=message.chat_id,
                phone_number=message.contact_phone,
                first_name=message.contact_name or message.contact_phone,
                reply_markup=markup,
            ),
        )
        return message_id_of(sent)

    async def _send_upload(self, message: Outbound, markup: Any) -> int:
        assert message.upload_kind is not None
        upload = self.input_file(message.upload_name, message.upload_bytes)
        return await self._send_file(message, markup, message.upload_kind, upload)

    async def _send_media(self, message: Outbound, markup: Any) -> int:
        assert message.media_kind is not None
        return await self._send_file(message, markup, message.media_kind, message.media_file_id)

    async def _send_file(self, message: Outbound, markup: Any, kind: str, file: Any) -> int:
        """A photo, voice message or document (`send_<kind>`, its file in the `<kind>`
        parameter: a file id or an upload), the text as its caption when it fits."""
        caption_fits = visible_length(message.text) <= MAX_CAPTION
        caption = message.text if caption_fits and message.text.strip() else None
        # The buttons go on the last message, so a long text keeps them under itself.
        file_markup = markup if caption_fits else None
        send = getattr(self.bot, f"send_{kind}")
        sent = await self.call(
            f"send {kind} to {message.chat_id}",
            lambda: send(
                chat_id=message.chat_id,
                caption=caption,
                parse_mode=HTML if caption else None,
                reply_markup=file_markup,
                **{kind: file},
            ),
        )
        if caption_fits:
            return message_id_of(sent)
        return await self._send_text(message.chat_id, message.text, markup)


# --------------------------------------------------------------------------------------------
# Running

SenderT = TypeVar("SenderT", bound=BotApiSender)


class BotApiApp(ABC, Generic[SenderT]):
    """A framework's bot, initialised: fed one update at a time by a webhook replica (the
    `webhook.TelegramApp` protocol), or fetching its own updates in `run_polling`."""

    sender: SenderT

    @abstractmethod
    async def feed(self, payload: dict[str, Any]) -> None:
        """Handle one update as Telegram sent it, through the whole framework."""

    @abstractmethod
    async def get_updates(self, offset: int, poll_seconds: int) -> Any:
        """One getUpdates call for `ALLOWED_UPDATES`, through the framework's transport (which
        records the raw answer in RAW_RESULT)."""

    async def fetch(self, offset: int, poll_seconds: int) -> list[dict[str, Any]]:
        """The updates from `offset` on, as Telegram sent them (JSON), whatever the framework
        makes of them: one it cannot read is still recorded, and fails alone when handled."""
        RAW_RESULT.set(None)
        try:
            await self.get_updates(offset, poll_seconds)
        except Exception as error:
            if not isinstance(RAW_RESULT.get(), list):
                raise
            logger.warning("polling: updates the framework cannot read (%s)", error)
        raw = RAW_RESULT.get()
        return [
            update
            for update in (raw if isinstance(raw, list) else [])
            if isinstance(update, dict)
            and isinstance(update.get("update_id"), int)
            and not isinstance(update.get("update_id"), bool)
        ]

    async def delete_webhook(self) -> None:
        """Polling and a webhook exclude each other; pending updates are kept."""
        await self.sender.call("deleteWebhook", lambda: self.sender.bot.delete_webhook())

    @abstractmethod
    def handling(self) -> AbstractAsyncContextManager[None]:
        """While inside, updates `poll` fetches are handled strictly one at a time, in order;
        leaving waits until every update fetched so far has been handled."""

    @abstractmethod
    async def poll(self, stop: asyncio.Event, poll_timeout: int) -> None:
        """Long-poll getUpdates (`poll_timeout` seconds a call, `ALLOWED_UPDATES` only) until
        `stop` is set, queueing what comes for `handling`, and confirm to Telegram what was
        fetched before returning."""

    async def set_webhook(self, url: str, secret: str) -> None:
        await self.sender.bot.set_webhook(
            url=url, secret_token=secret, allowed_updates=list(ALLOWED_UPDATES)
        )


async def run_polling(
    opening: AbstractAsyncContextManager[BotApiApp[SenderT]],
    *,
    on_started: Callable[[SenderT], Awaitable[None]] | None,
    stop: asyncio.Event,
    poll_timeout: int,
) -> None:
    """Long-poll until `stop` is set, handing each update to the app's `handle` in order.

    Runs in the caller's event loop. Opening the app calls getMe (a bad token fails there);
    `on_started` gets the sender before the first update is fetched, so `handle` can rely on
    whatever it sets up; on stop every update already fetched is handled before this returns.
    """
    async with opening as app, app.handling():
        if on_started is not None:
            await on_started(app.sender)
        await app.poll(stop, poll_timeout)


Keep = Callable[[list[dict[str, Any]]], Awaitable[None]]
POLL_RETRY_FIRST = 1.0
POLL_RETRY_MOST = 30.0


async def poll_into(
    app: BotApiApp[Any], keep: Keep, *, stop: asyncio.Event, poll_timeout: int
) -> None:
    """Long-poll getUpdates until `stop` is set, handing each batch to `keep` (which records it,
    in the inbox) before the next call's offset confirms the batch to Telegram: an update is
    never confirmed before it is safely kept, so a crash at any point loses nothing. A batch
    `keep` fails on is fetched again. On stop the long poll is abandoned and one last
    getUpdates confirms what was kept. A bad token ends polling; other failures are retried
    (after the `retry_after` a 429 asks for, else with a growing pause)."""
    await app.delete_webhook()
    offset = 0
    pause = 0.0
    while not stop.is_set():
        fetching = asyncio.create_task(app.fetch(offset, poll_timeout), name="poll:fetch")
        stopping = asyncio.create_task(stop.wait(), name="poll:stop")
        try:
            await asyncio.wait({fetching, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not fetching.done():
                fetching.cancel()
                await asyncio.wait({fetching})
        if fetching.cancelled():
            break
        try:
            updates = fetching.result()
            if updates:
                await keep(updates)
                offset = max(update["update_id"] for update in updates) + 1
            pause = 0.0
            continue
        except Exception as error:
            pause = _poll_pause(app, error, pause)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), pause)
    try:
        await app.fetch(offset, 0)
    except Exception as error:
        logger.warning("polling: confirming the kept updates failed (%s); they come again", error)


def _poll_pause(app: BotApiApp[Any], error: Exception, last: float) -> float:
    """How long to wait after a failed poll; a bad token is raised."""
    growing = POLL_RETRY_FIRST if last == 0 else min(POLL_RETRY_MOST, 1.5 * last)
    if not isinstance(error, app.sender.api_errors):
        logger.error("polling: %s: %s", type(error).__name__, error)
        return growing
    failure = app.sender.failure(error)
    if failure.verdict == "refused":
        logger.critical("polling: %s; polling stops", failure.description)
        raise error
    if failure.retry_after is not None:
        logger.warning("polling: flood control, retrying in %s s", failure.retry_after)
        return failure.retry_after + 0.5
    logger.error("polling: %s", failure.description)
    return growing
