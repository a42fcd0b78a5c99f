"""What the python-telegram-bot and aiogram channels share: reading a user's action out of an
update, and delivering through the Bot API.

Both frameworks model Telegram's objects with the same field names, so these functions take
either framework's objects; each channel adds only what its framework does differently (finding
the command entity, telling attachments apart, building keyboards, mapping errors).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from bot.channels.telegram_html import MEDIA_KINDS, fit_html, fit_plain, visible_length
from bot.channels.types import (
    MAX_CALLBACK_ANSWER,
    MAX_CAPTION,
    MAX_TEXT,
    DeliveryRefused,
    Inbound,
    Outbound,
)

logger = logging.getLogger(__name__)

HTML = "HTML"


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
        return Inbound(kind="location", **common)
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


class BotApiSender(ABC):
    """Delivers `Outbound` messages through a framework's bot (the `Sender` protocol).

    python-telegram-bot and aiogram name the Bot API's methods and parameters alike, so the
    delivery rules live here once: HTML parse mode, text never over Telegram's limits, buttons
    on the last message, a caption that does not fit sent as a text of its own. A subclass
    says how its framework builds keyboards and which of its errors mean retry or refusal.
    """

    def __init__(self, bot: Any) -> None:
        self.bot = bot

    @abstractmethod
    def reply_markup(self, message: Outbound) -> Any:
        """Inline buttons, a contact-request keyboard, a keyboard removal, or None."""

    @abstractmethod
    def inline_keyboard(self, message: Outbound) -> Any:
        """The inline buttons alone (an edit cannot carry a reply keyboard)."""

    @abstractmethod
    def delivery_errors(self, action: str) -> AbstractContextManager[None]:
        """Turn the framework's errors into DeliveryRetry / DeliveryRefused / NotModified."""

    @abstractmethod
    def input_file(self, name: str, content: bytes) -> Any:
        """The framework's object for a file uploaded from bytes (multipart)."""

    @abstractmethod
    def bot_command(self, name: str, description: str) -> Any:
        """The framework's BotCommand."""

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
        with self.delivery_errors(f"edit {message.chat_id}/{message_id}"):
            await self.bot.edit_message_text(
                chat_id=message.chat_id,
                message_id=message_id,
                text=fit_html(message.text, MAX_TEXT),
                parse_mode=HTML,
                reply_markup=self.inline_keyboard(message),
            )

    async def answer_callback(self, callback_id: str, text: str | None, alert: bool) -> None:
        try:
            with self.delivery_errors(f"answer callback {callback_id}"):
                await self.bot.answer_callback_query(
                    callback_id,
                    text=fit_plain(text, MAX_CALLBACK_ANSWER) if text else None,
                    show_alert=alert,
                )
        except DeliveryRefused as refused:
            if "query is too old" not in str(refused).lower():
                raise
            # The press was handled; only the spinner's answer came too late.
            logger.info("callback %s answered too late: %s", callback_id, refused)

    async def _send_text(self, chat_id: int, text: str, markup: Any) -> int:
        with self.delivery_errors(f"send to {chat_id}"):
            sent = await self.bot.send_message(
                chat_id=chat_id,
                text=fit_html(text, MAX_TEXT),
                parse_mode=HTML,
                reply_markup=markup,
            )
        return sent.message_id

    async def _send_contact(self, message: Outbound, markup: Any) -> int:
        with self.delivery_errors(f"send contact to {message.chat_id}"):
            sent = await self.bot.send_contact(
                chat_id=message.chat_id,
                phone_number=message.contact_phone,
                first_name=message.contact_name or message.contact_phone,
                reply_markup=markup,
            )
        return sent.message_id

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
        with self.delivery_errors(f"send {kind} to {message.chat_id}"):
            sent = await send(
                chat_id=message.chat_id,
                caption=caption,
                parse_mode=HTML if caption else None,
                reply_markup=file_markup,
                **{kind: file},
            )
        if caption_fits:
            return sent.message_id
        return await self._send_text(message.chat_id, message.text, markup)
