"""A loopback fake of the Telegram Bot API, for tests that run a real bot framework end to end.

`FakeBotApi` is an aiohttp server on 127.0.0.1 that speaks the real JSON envelopes, keeps an
update queue with getUpdates' offset and long-poll semantics, stores the messages the bot sends
(so edits change them), and refuses what Telegram refuses, with Telegram's own descriptions
(see /work/shared/TELEGRAM-FACTS.md). Tests feed user actions with the `push_*` methods, inject
failures with `fail_next`, and await the bot's calls with `wait_for` instead of sleeping.

Nothing here talks to any address but 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

DEFAULT_TOKEN = "123456789:TEST-token-for-loopback-fake-00"
BOT_USERNAME = "huiyin_test_bot"
BOT_FIRST_NAME = "Huiyin Test"

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64
MAX_CALLBACK_ANSWER = 200
MAX_INLINE_BUTTONS = 100
MAX_INLINE_BUTTONS_PER_ROW = 8
MAX_COMMANDS = 100

METHOD_NAMES = (
    "getMe",
    "getUpdates",
    "deleteWebhook",
    "setWebhook",
    "getWebhookInfo",
    "setMyCommands",
    "getMyCommands",
    "sendMessage",
    "editMessageText",
    "editMessageReplyMarkup",
    "answerCallbackQuery",
    "sendPhoto",
    "sendVoice",
    "sendDocument",
    "sendContact",
    "sendChatAction",
    "getFile",
)
CANONICAL_METHOD = {name.lower(): name for name in METHOD_NAMES}

NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
CHAT_NOT_FOUND = "Bad Request: chat not found"
BLOCKED = "Forbidden: bot was blocked by the user"
MESSAGE_TOO_LONG = "Bad Request: message is too long"
MESSAGE_TEXT_EMPTY = "Bad Request: message text is empty"
CAPTION_TOO_LONG = "Bad Request: message caption is too long"
BUTTON_DATA_INVALID = "Bad Request: BUTTON_DATA_INVALID"
BUTTON_URL_INVALID = "Bad Request: BUTTON_URL_INVALID"
MARKUP_UNPARSABLE = "Bad Request: can't parse reply keyboard markup JSON object"
TOO_MANY_BUTTONS = "Bad Request: too many inline keyboard buttons"
INLINE_KEYBOARD_EXPECTED = "Bad Request: inline keyboard expected"
MESSAGE_TO_EDIT_NOT_FOUND = "Bad Request: message to edit not found"
NO_TEXT_TO_EDIT = "Bad Request: there is no text in the message to edit"
QUERY_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"
CALLBACK_ANSWER_TOO_LONG = "Bad Request: MESSAGE_TOO_LONG"
WRONG_FILE_ID = "Bad Request: wrong file identifier/HTTP URL specified"
IMAGE_PROCESS_FAILED = "Bad Request: IMAGE_PROCESS_FAILED"
FILE_TOO_BIG = "Request Entity Too Large"
MAX_PHOTO_UPLOAD = 10 * 1024 * 1024
MAX_DOCUMENT_UPLOAD = 50 * 1024 * 1024
# What an uploaded photo must start with for Telegram to read it as an image.
IMAGE_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8", b"GIF8", b"RIFF")
INVALID_FILE_ID = "Bad Request: invalid file_id"
POLL_CONFLICT = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance "
    "is running"
)

# Parameters whose form/query values are text even when they look like JSON numbers or literals.
TEXT_PARAMS = frozenset(
    {
        "text",
        "caption",
        "parse_mode",
        "first_name",
        "last_name",
        "phone_number",
        "vcard",
        "callback_query_id",
        "file_id",
        "photo",
        "voice",
        "document",
        "action",
        "url",
        "language_code",
        "inline_message_id",
        "business_connection_id",
        "secret_token",
    }
)

CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)

INLINE_BUTTON_ACTIONS = frozenset(
    {
        "callback_data",
        "url",
        "login_url",
        "switch_inline_query",
        "switch_inline_query_current_chat",
        "switch_inline_query_chosen_chat",
        "callback_game",
        "pay",
        "web_app",
        "copy_text",
    }
)
BUTTON_URL_SCHEMES = frozenset({"http", "https", "tg"})
COMMAND_PATTERN = re.compile(r"[a-z0-9_]{1,32}")


# --------------------------------------------------------------------------------------------
# Recorded calls and stored messages


@dataclass(slots=True)
class RecordedCall:
    """One request the bot made, as the fake understood it."""

    method: str
    params: dict[str, Any]
    ok: bool
    result_or_error: Any
    status: int = 200


@dataclass(slots=True)
class StoredMessage:
    """A message the bot sent; edits change it in place."""

    message_id: int
    text: str
    reply_markup: dict[str, Any] | None
    kind: str = "text"
    caption: str = ""
    edited: bool = False
    chat_id: int = 0
    date: int = 0
    parse_mode: str | None = None
    plain_text: str = ""
    entities: list[dict[str, Any]] = field(default_factory=list)
    file_id: str = ""
    contact: dict[str, Any] | None = None

    @property
    def inline_markup(self) -> dict[str, Any] | None:
        """The part of the markup that belongs to the message (reply keyboards do not)."""
        if self.reply_markup is not None and "inline_keyboard" in self.reply_markup:
            return self.reply_markup
        return None


@dataclass(slots=True)
class FakeFile:
    file_id: str
    file_unique_id: str
    kind: str
    file_path: str
    content: bytes
    file_name: str = ""
    mime_type: str = ""
    width: int = 0
    height: int = 0
    duration: int = 0


class ApiError(Exception):
    """A refusal, carried to the envelope writer."""

    def __init__(self, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after

    def envelope(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.status,
            "description": self.description,
        }
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def bad_request(description: str) -> ApiError:
    return ApiError(400, description)


@dataclass(slots=True)
class _InjectedFailure:
    status: int
    description: str
    retry_after: int | None
    remaining: int


# --------------------------------------------------------------------------------------------
# HTML as Telegram parses it

HTML_TAG_ENTITY = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "code": "code",
    "pre": "pre",
    "a": "text_link",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_NAMED_CHARACTER_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_CHARACTER_ENTITY = re.compile(r"&(?:#([0-9]{1,7})|#[xX]([0-9a-fA-F]{1,6})|([a-zA-Z]+));")
_START_TAG = re.compile(r"<([a-zA-Z][a-zA-Z0-9-]*)((?:\s[^>]*)?)>")
_END_TAG = re.compile(r"</([a-zA-Z][a-zA-Z0-9-]*)\s*>")
_ATTRIBUTE = re.compile(r"""\s*([a-zA-Z][a-zA-Z0-9_-]*)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s"'>]+))?""")


class EntityParseError(Exception):
    """Text that Telegram's HTML parser refuses."""


def _utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode())


def _decode_character_entity(match: re.Match[str]) -> str | None:
    decimal, hexadecimal, name = match.groups()
    if name is not None:
        return _NAMED_CHARACTER_ENTITIES.get(name)
    code_point = int(decimal) if decimal is not None else int(hexadecimal, 16)
    if code_point == 0 or code_point > 0x10FFFF or 0xD800 <= code_point <= 0xDFFF:
        return None
    return chr(code_point)


def _unescape_attribute(raw: str, text: str, index: int) -> str:
    if raw[:1] in ("'", '"'):
        raw = raw[1:-1]
    pieces: list[str] = []
    position = 0
    while position < len(raw):
        if raw[position] == "&":
            match = _CHARACTER_ENTITY.match(raw, position)
            decoded = _decode_character_entity(match) if match else None
            if match is None or decoded is None:
                raise EntityParseError(
                    "Can't find end of the character entity starting at byte offset "
                    f"{_byte_offset(text, index)}"
                )
            pieces.append(decoded)
            position = match.end()
        else:
            pieces.append(raw[position])
            position += 1
    return "".join(pieces)


def _parse_attributes(raw: str, tag: str, text: str, index: int) -> dict[str, str]:
    attributes: dict[str, str] = {}
    position = 0
    while position < len(raw):
        if raw[position:].strip() == "":
            break
        match = _ATTRIBUTE.match(raw, position)
        if match is None or match.end() == position:
            raise EntityParseError(
                f'Empty attribute name in the tag "{tag}" at byte offset '
                f"{_byte_offset(text, index)}"
            )
        value = match.group(2)
        attributes[match.group(1).lower()] = (
            "" if value is None else _unescape_attribute(value, text, index)
        )
        position = match.end()
    return attributes


@dataclass(slots=True)
class _OpenTag:
    name: str
    entity: dict[str, Any] | None
    start: int


def parse_html(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Parse Telegram HTML into (plain text, entities); raise EntityParseError like Telegram.

    Stricter than Telegram on one point: a `&` that does not start a character entity is an
    error, so unescaped user text shows up in tests instead of in production.
    """
    plain: list[str] = []
    entities: list[dict[str, Any]] = []
    open_tags: list[_OpenTag] = []
    utf16_position = 0
    index = 0
    while index < len(text):
        char = text[index]
        if char == "<":
            end_match = _END_TAG.match(text, index)
            if end_match is not None:
                name = end_match.group(1).lower()
                if not open_tags:
                    raise EntityParseError(
                        f"Unexpected end tag at byte offset {_byte_offset(text, index)}"
                    )
                top = open_tags.pop()
                if top.name != name:
                    raise EntityParseError(
                        f"Unmatched end tag at byte offset {_byte_offset(text, index)}, "
                        f'expected "</{top.name}>", found "</{name}>"'
                    )
                if top.entity is not None and utf16_position > top.start:
                    top.entity["offset"] = top.start
                    top.entity["length"] = utf16_position - top.start
                    entities.append(top.entity)
                index = end_match.end()
                continue
            if text.startswith("</", index):
                raise EntityParseError(
                    f"Unclosed end tag at byte offset {_byte_offset(text, index)}"
                )
            start_match = _START_TAG.match(text, index)
            if start_match is None:
                if ">" not in text[index:] and re.match(r"<[a-zA-Z]", text[index:]):
                    raise EntityParseError(
                        f"Unclosed start tag at byte offset {_byte_offset(text, index)}"
                    )
                shown = re.match(r"<([^\s>]*)", text[index:])
                tag_text = shown.group(1) if shown else ""
                raise EntityParseError(
                    f'Unsupported start tag "{tag_text}" at byte offset {_byte_offset(text, index)}'
                )
            name = start_match.group(1).lower()
            if name not in HTML_TAG_ENTITY:
                raise EntityParseError(
                    f'Unsupported start tag "{name}" at byte offset {_byte_offset(text, index)}'
                )
            attributes = _parse_attributes(start_match.group(2), name, text, index)
            entity = _entity_for_tag(name, attributes, open_tags, text, index)
            open_tags.append(_OpenTag(name, entity, utf16_position))
            index = start_match.end()
            continue
        if char == "&":
            match = _CHARACTER_ENTITY.match(text, index)
            decoded = _decode_character_entity(match) if match else None
            if match is None or decoded is None:
                raise EntityParseError(
                    "Can't find end of the character entity starting at byte offset "
                    f"{_byte_offset(text, index)}"
                )
            plain.append(decoded)
            utf16_position += _utf16_length(decoded)
            index = match.end()
            continue
        plain.append(char)
        utf16_position += _utf16_length(char)
        index += 1
    if open_tags:
        raise EntityParseError(
            f'Can\'t find end tag corresponding to start tag "{open_tags[-1].name}"'
        )
    entities.sort(key=lambda entity: (entity["offset"], -entity["length"]))
    return "".join(plain), entities


def _entity_for_tag(
    name: str, attributes: dict[str, str], open_tags: list[_OpenTag], text: str, index: int
) -> dict[str, Any] | None:
    entity_type = HTML_TAG_ENTITY[name]
    if name == "a":
        if not attributes.get("href"):
            raise EntityParseError(
                f'Can\'t find href in the tag "a" at byte offset {_byte_offset(text, index)}'
            )
        return {"type": entity_type, "url": attributes["href"]}
    if name == "span" and attributes.get("class") != "tg-spoiler":
        raise EntityParseError(
            f'Unsupported start tag "span" at byte offset {_byte_offset(text, index)}'
        )
    if name == "tg-emoji":
        return {"type": entity_type, "custom_emoji_id": attributes.get("emoji-id", "")}
    if name == "blockquote" and "expandable" in attributes:
        return {"type": "expandable_blockquote"}
    if name == "code" and open_tags and open_tags[-1].name == "pre":
        language = attributes.get("class", "")
        pre_entity = open_tags[-1].entity
        if language.startswith("language-") and pre_entity is not None:
            pre_entity["language"] = language.removeprefix("language-")
        return None
    return {"type": entity_type}


# --------------------------------------------------------------------------------------------
# Reply markup as Telegram checks it


def check_reply_markup(value: Any, *, inline_only: bool = False) -> dict[str, Any] | None:
    """Return the decoded markup, or raise the ApiError Telegram answers for it."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise bad_request(MARKUP_UNPARSABLE) from None
    if not isinstance(value, dict):
        raise bad_request(MARKUP_UNPARSABLE)
    if "inline_keyboard" in value:
        _check_inline_keyboard(value["inline_keyboard"])
        return value
    if inline_only:
        raise bad_request(INLINE_KEYBOARD_EXPECTED)
    if "keyboard" in value:
        _check_reply_keyboard(value["keyboard"])
        return value
    if value.get("remove_keyboard") is True or value.get("force_reply") is True:
        return value
    raise bad_request(MARKUP_UNPARSABLE)


def _is_list_of_lists(rows: Any) -> bool:
    return isinstance(rows, list) and all(isinstance(row, list) for row in rows)


def _check_inline_keyboard(rows: Any) -> None:
    if not _is_list_of_lists(rows):
        raise bad_request(MARKUP_UNPARSABLE)
    for row in rows:
        for button in row:
            if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                raise bad_request(MARKUP_UNPARSABLE)
            if not button["text"]:
                raise bad_request(MARKUP_UNPARSABLE)
            actions = INLINE_BUTTON_ACTIONS.intersection(button)
            if len(actions) != 1:
                raise bad_request(MARKUP_UNPARSABLE)
            if "callback_data" in button:
                data = button["callback_data"]
                if not isinstance(data, str):
                    raise bad_request(MARKUP_UNPARSABLE)
                if not data or len(data.encode()) > MAX_CALLBACK_DATA:
                    raise bad_request(BUTTON_DATA_INVALID)
            if "url" in button:
                url = button["url"]
                if not isinstance(url, str):
                    raise bad_request(MARKUP_UNPARSABLE)
                parts = urlsplit(url)
                scheme = parts.scheme.lower()
                if scheme not in BUTTON_URL_SCHEMES or (scheme != "tg" and not parts.netloc):
                    raise bad_request(BUTTON_URL_INVALID)
    if any(len(row) > MAX_INLINE_BUTTONS_PER_ROW for row in rows):
        raise bad_request(TOO_MANY_BUTTONS)
    if sum(len(row) for row in rows) > MAX_INLINE_BUTTONS:
        raise bad_request(TOO_MANY_BUTTONS)


def _check_reply_keyboard(rows: Any) -> None:
    if not _is_list_of_lists(rows):
        raise bad_request(MARKUP_UNPARSABLE)
    for row in rows:
        for button in row:
            if isinstance(button, str) and button:
                continue
            if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                raise bad_request(MARKUP_UNPARSABLE)
            if not button["text"]:
                raise bad_request(MARKUP_UNPARSABLE)


# --------------------------------------------------------------------------------------------
# The fake server


class FakeBotApi:
    """A Telegram Bot API server on 127.0.0.1 that records calls and refuses like Telegram."""

    def __init__(self, token: str = DEFAULT_TOKEN) -> None:
        self.token = token
        self.bot_id = int(token.split(":", 1)[0])
        self.calls: list[RecordedCall] = []
        self.commands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.webhook_deleted = 0
        self._chats: dict[int, dict[str, Any]] = {}
        self._blocked: set[int] = set()
        self._messages: dict[int, dict[int, StoredMessage]] = {}
        self._last_message_id: dict[int, int] = {}
        self._updates: list[dict[str, Any]] = []
        self._next_update_id = 1
        self._files: dict[str, FakeFile] = {}
        self._file_counter = itertools.count(1)
        self._open_callbacks: dict[str, dict[str, Any]] = {}
        self._callback_counter = itertools.count(1)
        self._failures: dict[str, _InjectedFailure] = {}
        self._allowed_updates: list[str] | None = None
        self._poll_generation = 0
        self._updates_changed = asyncio.Event()
        self._recorded = asyncio.Condition()
        self._poll_state = asyncio.Condition()
        self._polls_waiting = 0
        self._closing = False
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self.webhook_url = ""
        self.webhook_secret = ""
        self._methods: dict[str, Callable[[dict[str, Any]], Any]] = {
            "getme": self._get_me,
            "getupdates": self._get_updates,
            "deletewebhook": self._delete_webhook,
            "setwebhook": self._set_webhook,
            "getwebhookinfo": self._get_webhook_info,
            "setmycommands": self._set_my_commands,
            "getmycommands": self._get_my_commands,
            "sendmessage": self._send_message,
            "editmessagetext": self._edit_message_text,
            "editmessagereplymarkup": self._edit_message_reply_markup,
            "answercallbackquery": self._answer_callback_query,
            "sendphoto": self._send_photo,
            "sendvoice": self._send_voice,
            "senddocument": self._send_document,
            "sendcontact": self._send_contact,
            "sendchataction": self._send_chat_action,
            "getfile": self._get_file,
        }

    # ---- lifecycle

    async def start(self) -> str:
        app = web.Application(client_max_size=50 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{file_path:.+}", self._handle_file)
        # handler_cancellation: a long poll whose client went away must not linger and
        # answer a later getUpdates with a conflict.
        self._runner = web.AppRunner(
            app,
            handle_signals=False,
            shutdown_timeout=1.0,
            handler_cancellation=True,
            access_log=None,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"
        return self.base_url

    async def stop(self) -> None:
        self._closing = True
        self._signal_updates()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeBotApi:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # ---- what the bot sees

    @property
    def bot_user(self) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": BOT_FIRST_NAME,
            "username": BOT_USERNAME,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def known_chat(
        self, chat_id: int, *, chat_type: str = "private", first_name: str = "用户"
    ) -> None:
        """Let the bot send to a chat no update has mentioned yet."""
        self._register_chat(chat_id, chat_type, first_name)

    def block(self, chat_id: int) -> None:
        """The user blocks the bot: every method aimed at their chat is refused with 403, as
        Telegram does, until they write again (which unblocks a bot)."""
        self._blocked.add(chat_id)

    def messages(self, chat_id: int) -> list[StoredMessage]:
        """The messages the bot sent to a chat, in order, as they are now."""
        return list(self._messages.get(chat_id, {}).values())

    def message(self, chat_id: int, message_id: int) -> StoredMessage:
        return self._messages[chat_id][message_id]

    def file_of(self, stored: StoredMessage) -> FakeFile:
        """The file a photo, voice or document message carries (an upload keeps its bytes)."""
        return self._files[stored.file_id]

    def calls_of(self, method: str) -> list[RecordedCall]:
        wanted = method.lower()
        return [call for call in self.calls if call.method.lower() == wanted]

    @property
    def pending_updates(self) -> list[dict[str, Any]]:
        """Updates queued and not yet confirmed by a getUpdates offset."""
        return list(self._updates)

    def fail_next(
        self,
        method: str,
        status: int,
        description: str,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """Make the next `times` calls of `method` fail with this status and description."""
        self._failures[method.lower()] = _InjectedFailure(status, description, retry_after, times)

    async def wait_for(
        self,
        method: str,
        predicate: Callable[[RecordedCall], bool] = lambda call: True,
        *,
        after: int = 0,
        timeout: float = 10.0,  # noqa: ASYNC109 - the brief's API; a test reads better with it
    ) -> RecordedCall:
        """Await the first recorded call of `method` at index >= `after` matching `predicate`."""
        wanted = method.lower()
        scanned = after
        async with self._recorded:
            try:
                async with asyncio.timeout(timeout):
                    while True:
                        for call in self.calls[scanned:]:
                            if call.method.lower() == wanted and predicate(call):
                                return call
                        scanned = max(scanned, len(self.calls))
                        await self._recorded.wait()
            except TimeoutError:
                raise AssertionError(
                    f"no matching {method} call (from index {after}) within {timeout}s; "
                    f"recent calls:\n{self.dump_calls()}"
                ) from None

    async def wait_until_polling(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Await a getUpdates long poll that is waiting for updates."""
        async with self._poll_state:
            try:
                async with asyncio.timeout(timeout):
                    await self._poll_state.wait_for(lambda: self._polls_waiting > 0)
            except TimeoutError:
                raise AssertionError(
                    f"no getUpdates long poll within {timeout}s; recent calls:\n{self.dump_calls()}"
                ) from None

    def dump_calls(self, last: int = 20) -> str:
        start = max(0, len(self.calls) - last)
        lines = []
        for index, call in enumerate(self.calls[start:], start):
            outcome = "ok" if call.ok else f"FAILED {call.status}"
            params = json.dumps(call.params, ensure_ascii=False, default=str)
            if len(params) > 300:
                params = params[:300] + "…"
            lines.append(f"  [{index}] {call.method} {outcome} {params}")
            if not call.ok:
                lines.append(f"        -> {call.result_or_error.get('description')}")
        return "\n".join(lines) or "  (none)"

    # ---- feeding updates

    def push_text(
        self,
        user_id: int,
        text: str,
        *,
        chat_id: int | None = None,
        chat_type: str = "private",
        language_code: str = "zh-hans",
        first_name: str = "用户",
    ) -> int:
        message = self._user_message(user_id, chat_id, chat_type, language_code, first_name)
        message["text"] = text
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0]
            message["entities"] = [
                {"type": "bot_command", "offset": 0, "length": _utf16_length(command)}
            ]
        return self._queue({"message": message})

    def push_callback(
        self,
        user_id: int,
        message_id: int,
        data: str,
        *,
        chat_id: int | None = None,
        language_code: str = "zh-hans",
        first_name: str = "用户",
    ) -> str:
        """Press a button on a message the bot sent; return the callback query id."""
        chat = user_id if chat_id is None else chat_id
        stored = self._messages.get(chat, {}).get(message_id)
        if stored is None:
            raise LookupError(f"the bot sent no message {message_id} to chat {chat}")
        callback_id = f"{self.bot_id}{next(self._callback_counter):08d}"
        query = {
            "id": callback_id,
            "from": self._user(user_id, first_name, language_code),
            "chat_instance": f"-{abs(chat)}0042",
            "message": self._message_object(stored),
            "data": data,
        }
        self._open_callbacks[callback_id] = query
        self._queue({"callback_query": query})
        return callback_id

    def push_contact(
        self,
        user_id: int,
        phone: str,
        *,
        own: bool = True,
        chat_id: int | None = None,
        chat_type: str = "private",
        language_code: str = "zh-hans",
        first_name: str = "用户",
    ) -> int:
        message = self._user_message(user_id, chat_id, chat_type, language_code, first_name)
        contact: dict[str, Any] = {"phone_number": phone, "first_name": first_name}
        if own:
            contact["user_id"] = user_id
        message["contact"] = contact
        return self._queue({"message": message})

    def push_photo(
        self,
        user_id: int,
        caption: str = "",
        *,
        chat_id: int | None = None,
        chat_type: str = "private",
        language_code: str = "zh-hans",
        first_name: str = "用户",
    ) -> int:
        message = self._user_message(user_id, chat_id, chat_type, language_code, first_name)
        small = self._new_file("photo", b"\xff\xd8fake-small-jpeg", width=90, height=67)
        large = self._new_file("photo", b"\xff\xd8fake-large-jpeg", width=1280, height=960)
        message["photo"] = [self._photo_size(small), self._photo_size(large)]
        if caption:
            message["caption"] = caption
        return self._queue({"message": message})

    def push_voice(
        self,
        user_id: int,
        duration: int = 3,
        *,
        chat_id: int | None = None,
        chat_type: str = "private",
        language_code: str = "zh-hans",
        first_name: str = "用户",
    ) -> int:
        message = self._user_message(user_id, chat_id, chat_type, language_code, first_name)
        voice = self._new_file("voice", b"OggSfake-voice", duration=duration)
        message["voice"] = self._voice_object(voice)
        return self._queue({"message": message})

    def push_sticker(
        self,
        user_id: int,
        *,
        chat_id: int | None = None,
        chat_type: str = "private",
        language_code: str = "zh-hans",
        first_name: str = "用户",
    ) -> int:
        message = self._user_message(user_id, chat_id, chat_type, language_code, first_name)
        sticker = self._new_file("sticker", b"RIFFfake-webp", width=512, height=512)
        message["sticker"] = {
            "file_id": sticker.file_id,
            "file_unique_id": sticker.file_unique_id,
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": "👍",
            "file_size": len(sticker.content),
        }
        return self._queue({"message": message})

    def push_location(
        self,
        user_id: int,
        lat: float,
        lon: float,
        *,
        chat_id: int | None = None,
        chat_type: str = "private",
        language_code: str = "zh-hans",
        first_name: str = "用户",
    ) -> int:
        message = self._user_message(user_id, chat_id, chat_type, language_code, first_name)
        message["location"] = {"latitude": lat, "longitude": lon}
        return self._queue({"message": message})

    def push_update(self, update: dict[str, Any]) -> int:
        """Queue any update body (without update_id), for shapes the helpers do not cover."""
        for value in update.values():
            chat = value.get("chat") if isinstance(value, dict) else None
            if isinstance(chat, dict) and isinstance(chat.get("id"), int):
                self._chats.setdefault(chat["id"], dict(chat))
        return self._queue(dict(update))

    # ---- building objects

    def _user(self, user_id: int, first_name: str, language_code: str) -> dict[str, Any]:
        user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        if language_code:
            user["language_code"] = language_code
        return user

    def _register_chat(self, chat_id: int, chat_type: str, first_name: str) -> dict[str, Any]:
        chat = self._chats.get(chat_id)
        if chat is None:
            chat = {"id": chat_id, "type": chat_type}
            if chat_type == "private":
                chat["first_name"] = first_name
            else:
                chat["title"] = f"Test {chat_type} {chat_id}"
            self._chats[chat_id] = chat
        return chat

    def _next_message_id(self, chat_id: int) -> int:
        message_id = self._last_message_id.get(chat_id, 0) + 1
        self._last_message_id[chat_id] = message_id
        return message_id

    def _user_message(
        self,
        user_id: int,
        chat_id: int | None,
        chat_type: str,
        language_code: str,
        first_name: str,
    ) -> dict[str, Any]:
        chat_key = user_id if chat_id is None else chat_id
        chat = self._register_chat(chat_key, chat_type, first_name)
        self._blocked.discard(chat_key)  # writing to a bot one blocked unblocks it
        return {
            "message_id": self._next_message_id(chat_key),
            "from": self._user(user_id, first_name, language_code),
            "chat": dict(chat),
            "date": int(time.time()),
        }

    def _queue(self, body: dict[str, Any]) -> int:
        update_id = self._next_update_id
        self._next_update_id += 1
        self._updates.append({"update_id": update_id, **body})
        self._signal_updates()
        return update_id

    def _signal_updates(self) -> None:
        """Wake every waiting long poll: each waits on the event that was current when it began."""
        changed, self._updates_changed = self._updates_changed, asyncio.Event()
        changed.set()

    def _new_file(
        self,
        kind: str,
        content: bytes,
        *,
        width: int = 0,
        height: int = 0,
        duration: int = 0,
        extension: str | None = None,
    ) -> FakeFile:
        number = next(self._file_counter)
        folder = {"photo": "photos", "voice": "voice", "sticker": "stickers"}.get(kind, "documents")
        suffix = extension or {"photo": "jpg", "voice": "oga", "sticker": "webp"}.get(kind, "bin")
        fake = FakeFile(
            file_id=f"{kind.upper()}-FILE-{number:06d}-AgADBAAD",
            file_unique_id=f"U{kind[:2]}{number:06d}",
            kind=kind,
            file_path=f"{folder}/file_{number}.{suffix}",
            content=content,
            width=width,
            height=height,
            duration=duration,
        )
        self._files[fake.file_id] = fake
        return fake

    def _photo_size(self, photo: FakeFile) -> dict[str, Any]:
        return {
            "file_id": photo.file_id,
            "file_unique_id": photo.file_unique_id,
            "width": photo.width,
            "height": photo.height,
            "file_size": len(photo.content),
        }

    def _document_object(self, document: FakeFile) -> dict[str, Any]:
        body: dict[str, Any] = {
            "file_id": document.file_id,
            "file_unique_id": document.file_unique_id,
            "file_size": len(document.content),
        }
        if document.file_name:
            body["file_name"] = document.file_name
        if document.mime_type:
            body["mime_type"] = document.mime_type
        return body

    def _voice_object(self, voice: FakeFile) -> dict[str, Any]:
        return {
            "file_id": voice.file_id,
            "file_unique_id": voice.file_unique_id,
            "duration": voice.duration,
            "mime_type": "audio/ogg",
            "file_size": len(voice.content),
        }

    def _message_object(self, stored: StoredMessage) -> dict[str, Any]:
        message: dict[str, Any] = {
            "message_id": stored.message_id,
            "from": self.bot_user,
            "chat": dict(self._chats[stored.chat_id]),
            "date": stored.date,
        }
        if stored.edited:
            message["edit_date"] = int(time.time())
        if stored.kind == "text":
            message["text"] = stored.plain_text
            if stored.entities:
                message["entities"] = stored.entities
        elif stored.kind == "photo":
            message["photo"] = [self._photo_size(self._files[stored.file_id])]
        elif stored.kind == "voice":
            message["voice"] = self._voice_object(self._files[stored.file_id])
        elif stored.kind == "document":
            message["document"] = self._document_object(self._files[stored.file_id])
        elif stored.kind == "contact":
            message["contact"] = stored.contact
        if stored.kind in ("photo", "voice", "document") and stored.plain_text:
            message["caption"] = stored.plain_text
            if stored.entities:
                message["caption_entities"] = stored.entities
        if stored.inline_markup is not None:
            message["reply_markup"] = stored.inline_markup
        return message

    # ---- HTTP plumbing

    async def _handle_api(self, request: web.Request) -> web.Response:
        raw_method = request.match_info["method"]
        canonical = CANONICAL_METHOD.get(raw_method.lower(), raw_method)
        try:
            params = await self._read_params(request)
        except ValueError:
            params = {}
            error = bad_request("Bad Request: can't parse request parameters")
            return await self._respond(canonical, params, error)
        if request.match_info["token"] != self.token:
            return await self._respond(canonical, params, ApiError(401, "Unauthorized"))
        handler = self._methods.get(raw_method.lower())
        if handler is None:
            return await self._respond(canonical, params, ApiError(404, "Not Found"))
        failure = self._failures.get(raw_method.lower())
        if failure is not None:
            failure.remaining -= 1
            if failure.remaining <= 0:
                del self._failures[raw_method.lower()]
            error = ApiError(failure.status, failure.description, failure.retry_after)
            return await self._respond(canonical, params, error)
        try:
            result = await handler(params)
        except ApiError as error:
            return await self._respond(canonical, params, error)
        return await self._respond(canonical, params, result)

    async def _respond(self, method: str, params: dict[str, Any], outcome: Any) -> web.Response:
        if isinstance(outcome, ApiError):
            body = outcome.envelope()
            call = RecordedCall(method, params, False, body, outcome.status)
            status = outcome.status
        else:
            body = {"ok": True, "result": outcome}
            call = RecordedCall(method, params, True, outcome, 200)
            status = 200
        async with self._recorded:
            self.calls.append(call)
            self._recorded.notify_all()
        return web.json_response(body, status=status, dumps=_dumps)

    async def _read_params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = {
            key: _decode_form_value(key, value) for key, value in request.query.items()
        }
        if not request.can_read_body:
            return params
        if request.content_type == "application/json":
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("JSON body is not an object")
            for key, value in body.items():
                params[key] = _decode_json_body_value(key, value)
            return params
        form = await request.post()
        uploads: dict[str, web.FileField] = {}
        for key, value in form.items():
            if isinstance(value, web.FileField):
                uploads[key] = value
            else:
                params[key] = _decode_form_value(key, value)
        for key, upload in uploads.items():
            # aiogram names uploads `attach://<name>`; python-telegram-bot uses the field itself.
            referring = [k for k, v in params.items() if v == f"attach://{key}"]
            content = upload.file.read()
            for name in referring or [key]:
                params[name] = UploadedFile(upload.filename, upload.content_type, content)
        return params

    async def _handle_file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response(ApiError(401, "Unauthorized").envelope(), status=401)
        path = request.match_info["file_path"]
        for fake in self._files.values():
            if fake.file_path == path:
                return web.Response(body=fake.content, content_type="application/octet-stream")
        return web.json_response(ApiError(404, "Not Found").envelope(), status=404)

    # ---- shared checks

    def _chat_of(self, params: dict[str, Any]) -> int:
        if "chat_id" not in params or params["chat_id"] in ("", None):
            raise bad_request("Bad Request: chat_id is empty")
        chat_id = params["chat_id"]
        if not isinstance(chat_id, int) or chat_id not in self._chats:
            raise bad_request(CHAT_NOT_FOUND)
        if chat_id in self._blocked:
            raise ApiError(403, BLOCKED)
        return chat_id

    def _parse_text(
        self, text: Any, parse_mode: Any, *, limit: int, too_long: str
    ) -> tuple[str, list[dict[str, Any]]]:
        if not isinstance(text, str):
            text = "" if text is None else str(text)
        if isinstance(parse_mode, str) and parse_mode.lower() == "html":
            try:
                plain, entities = parse_html(text)
            except EntityParseError as error:
                raise bad_request(f"Bad Request: can't parse entities: {error}") from None
        else:
            plain, entities = text, []
        if len(plain) > limit:
            raise bad_request(too_long)
        return plain, entities

    def _message_text(self, params: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        plain, entities = self._parse_text(
            params.get("text"), params.get("parse_mode"), limit=MAX_TEXT, too_long=MESSAGE_TOO_LONG
        )
        if not plain.strip():
            raise bad_request(MESSAGE_TEXT_EMPTY)
        return plain, entities

    def _caption(self, params: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        return self._parse_text(
            params.get("caption") or "",
            params.get("parse_mode"),
            limit=MAX_CAPTION,
            too_long=CAPTION_TOO_LONG,
        )

    def _store(self, stored: StoredMessage) -> dict[str, Any]:
        self._messages.setdefault(stored.chat_id, {})[stored.message_id] = stored
        return self._message_object(stored)

    def _media_file(self, params: dict[str, Any], kind: str) -> FakeFile:
        value = params.get(kind)
        if isinstance(value, UploadedFile):
            return self._uploaded_file(kind, value)
        if isinstance(value, str) and value:
            known = self._files.get(value)
            if known is not None and known.kind == kind:
                return known
            if value.startswith(("http://", "https://")):
                return self._new_file(kind, b"fetched " + value.encode(), width=800, height=600)
        raise bad_request(WRONG_FILE_ID)

    def _uploaded_file(self, kind: str, upload: UploadedFile) -> FakeFile:
        """Keep an uploaded file's bytes; refuse what Telegram refuses (a photo that is not
        an image, a file over the upload limit)."""
        limit = MAX_PHOTO_UPLOAD if kind == "photo" else MAX_DOCUMENT_UPLOAD
        if len(upload.content) > limit:
            raise ApiError(413, FILE_TOO_BIG)
        if kind == "photo" and not upload.content.startswith(IMAGE_SIGNATURES):
            raise bad_request(IMAGE_PROCESS_FAILED)
        if not upload.content:
            raise bad_request("Bad Request: file must be non-empty")
        suffix = upload.filename.rsplit(".", 1)[-1] if "." in upload.filename else None
        fake = self._new_file(
            kind, upload.content, width=800, height=600, duration=1, extension=suffix
        )
        fake.file_name = upload.filename
        fake.mime_type = upload.content_type
        return fake

    def _stored_for_edit(self, params: dict[str, Any]) -> StoredMessage:
        chat_id = self._chat_of(params)
        message_id = params.get("message_id")
        stored = self._messages.get(chat_id, {}).get(message_id)  # type: ignore[arg-type]
        if stored is None:
            raise bad_request(MESSAGE_TO_EDIT_NOT_FOUND)
        return stored

    # ---- methods

    async def _get_me(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.bot_user

    async def _set_webhook(self, params: dict[str, Any]) -> bool:
        url = str(params.get("url") or "")
        if url and not url.startswith("https://"):
            raise bad_request("Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        secret = str(params.get("secret_token") or "")
        if secret and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise bad_request("Bad Request: secret token contains unallowed characters")
        self.webhook_url, self.webhook_secret = url, secret
        if isinstance(params.get("allowed_updates"), list):
            self._allowed_updates = params["allowed_updates"] or None
        return True

    async def _get_webhook_info(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": self.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }

    def take_updates(self) -> list[dict[str, Any]]:
        """Remove and return the queued updates, as Telegram does when it delivers them to a
        webhook instead of getUpdates."""
        taken, self._updates = self._updates, []
        return taken

    async def _delete_webhook(self, params: dict[str, Any]) -> bool:
        self.webhook_url = self.webhook_secret = ""
        self.webhook_deleted += 1
        if params.get("drop_pending_updates") is True:
            self._updates.clear()
        return True

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        if self.webhook_url:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset, limit, timeout = (params.get(name) or 0 for name in ("offset", "limit", "timeout"))
        if not all(isinstance(value, int | float) for value in (offset, limit, timeout)):
            raise bad_request("Bad Request: wrong parameter type in getUpdates")
        offset, limit = int(offset), min(max(int(limit), 1), 100) if limit else 100
        if isinstance(params.get("allowed_updates"), list):
            self._allowed_updates = params["allowed_updates"] or None
        self._poll_generation += 1
        generation = self._poll_generation
        self._signal_updates()  # an older long poll still waiting is now terminated
        if offset > 0:
            self._updates = [update for update in self._updates if update["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]
        deadline = asyncio.get_running_loop().time() + max(float(timeout), 0.0)
        while True:
            if generation != self._poll_generation:
                raise ApiError(409, POLL_CONFLICT)
            ready = self._deliverable(limit)
            remaining = deadline - asyncio.get_running_loop().time()
            if ready or remaining <= 0 or self._closing:
                return ready
            changed = self._updates_changed
            async with self._poll_state:
                self._polls_waiting += 1
                self._poll_state.notify_all()
            try:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await changed.wait()
            finally:
                self._polls_waiting -= 1

    def _deliverable(self, limit: int) -> list[dict[str, Any]]:
        if self._allowed_updates is None:
            return self._updates[:limit]
        allowed = set(self._allowed_updates)
        chosen = [u for u in self._updates if allowed.intersection(u.keys() - {"update_id"})]
        return chosen[:limit]

    async def _set_my_commands(self, params: dict[str, Any]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise bad_request("Bad Request: can't parse commands JSON object")
        if len(commands) > MAX_COMMANDS:
            raise bad_request("Bad Request: too many commands")
        for command in commands:
            if not isinstance(command, dict):
                raise bad_request("Bad Request: can't parse BotCommand")
            name = command.get("command")
            if not isinstance(name, str) or not COMMAND_PATTERN.fullmatch(name):
                raise bad_request("Bad Request: BOT_COMMAND_INVALID")
            description = command.get("description")
            if not isinstance(description, str) or not description.strip():
                raise bad_request("Bad Request: command description must be non-empty")
            if len(description) > 256:
                raise bad_request("Bad Request: command description is too long")
        self.commands[self._commands_key(params)] = commands
        return True

    async def _get_my_commands(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        return self.commands.get(self._commands_key(params), [])

    @staticmethod
    def _commands_key(params: dict[str, Any]) -> tuple[str, str]:
        scope = params.get("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), params.get("language_code") or ""

    async def _send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._chat_of(params)
        plain, entities = self._message_text(params)
        markup = check_reply_markup(params.get("reply_markup"))
        return self._store(
            StoredMessage(
                message_id=self._next_message_id(chat_id),
                text=params["text"],
                reply_markup=markup,
                chat_id=chat_id,
                date=int(time.time()),
                parse_mode=params.get("parse_mode"),
                plain_text=plain,
                entities=entities,
            )
        )

    async def _send_media(self, params: dict[str, Any], kind: str) -> dict[str, Any]:
        chat_id = self._chat_of(params)
        plain, entities = self._caption(params)
        markup = check_reply_markup(params.get("reply_markup"))
        media = self._media_file(params, kind)
        return self._store(
            StoredMessage(
                message_id=self._next_message_id(chat_id),
                text="",
                reply_markup=markup,
                kind=kind,
                caption=params.get("caption") or "",
                chat_id=chat_id,
                date=int(time.time()),
                parse_mode=params.get("parse_mode"),
                plain_text=plain,
                entities=entities,
                file_id=media.file_id,
            )
        )

    async def _send_photo(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self._send_media(params, "photo")

    async def _send_voice(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self._send_media(params, "voice")

    async def _send_document(self, params: dict[str, Any]) -> dict[str, Any]:
        return await self._send_media(params, "document")

    async def _send_contact(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._chat_of(params)
        phone = params.get("phone_number")
        first_name = params.get("first_name")
        if not isinstance(phone, str) or not phone.strip():
            raise bad_request("Bad Request: phone number is empty")
        if not isinstance(first_name, str) or not first_name.strip():
            raise bad_request("Bad Request: first name is empty")
        markup = check_reply_markup(params.get("reply_markup"))
        contact: dict[str, Any] = {"phone_number": phone, "first_name": first_name}
        if params.get("last_name"):
            contact["last_name"] = params["last_name"]
        return self._store(
            StoredMessage(
                message_id=self._next_message_id(chat_id),
                text="",
                reply_markup=markup,
                kind="contact",
                chat_id=chat_id,
                date=int(time.time()),
                contact=contact,
            )
        )

    async def _send_chat_action(self, params: dict[str, Any]) -> bool:
        self._chat_of(params)
        if params.get("action") not in CHAT_ACTIONS:
            raise bad_request("Bad Request: wrong parameter action in request")
        return True

    async def _edit_message_text(self, params: dict[str, Any]) -> dict[str, Any]:
        stored = self._stored_for_edit(params)
        if stored.kind != "text":
            raise bad_request(NO_TEXT_TO_EDIT)
        plain, entities = self._message_text(params)
        markup = check_reply_markup(params.get("reply_markup"), inline_only=True)
        if (plain, entities, markup) == (stored.plain_text, stored.entities, stored.inline_markup):
            raise bad_request(NOT_MODIFIED)
        stored.text = params["text"]
        stored.plain_text = plain
        stored.entities = entities
        stored.parse_mode = params.get("parse_mode")
        stored.reply_markup = markup
        stored.edited = True
        return self._message_object(stored)

    async def _edit_message_reply_markup(self, params: dict[str, Any]) -> dict[str, Any]:
        stored = self._stored_for_edit(params)
        markup = check_reply_markup(params.get("reply_markup"), inline_only=True)
        if markup == stored.inline_markup:
            raise bad_request(NOT_MODIFIED)
        stored.reply_markup = markup
        stored.edited = True
        return self._message_object(stored)

    async def _answer_callback_query(self, params: dict[str, Any]) -> bool:
        text = params.get("text") or ""
        if len(str(text)) > MAX_CALLBACK_ANSWER:
            raise bad_request(CALLBACK_ANSWER_TOO_LONG)
        callback_id = params.get("callback_query_id")
        if not isinstance(callback_id, str) or callback_id not in self._open_callbacks:
            raise bad_request(QUERY_TOO_OLD)
        del self._open_callbacks[callback_id]
        return True

    async def _get_file(self, params: dict[str, Any]) -> dict[str, Any]:
        fake = self._files.get(params.get("file_id") or "")
        if fake is None:
            raise bad_request(INVALID_FILE_ID)
        return {
            "file_id": fake.file_id,
            "file_unique_id": fake.file_unique_id,
            "file_size": len(fake.content),
            "file_path": fake.file_path,
        }


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """A file part of a multipart request."""

    filename: str
    content_type: str
    content: bytes


def _decode_form_value(key: str, value: str) -> Any:
    """Form and query values are strings; everything but plain text fields is JSON-encoded."""
    if key in TEXT_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _decode_json_body_value(key: str, value: Any) -> Any:
    if isinstance(value, str) and key not in TEXT_PARAMS:
        stripped = value.lstrip()
        if stripped.startswith(("{", "[")):
            try:
                return json.loads(value)
            except ValueError:
                return value
    return value


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


async def started_fake(token: str = DEFAULT_TOKEN) -> FakeBotApi:
    """A started FakeBotApi; test files wrap this in their own fixture."""
    fake = FakeBotApi(token)
    await fake.start()
    return fake
