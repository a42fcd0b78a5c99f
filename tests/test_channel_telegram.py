"""The Telegram channels, python-telegram-bot and aiogram, tested as one.

Most tests take the `channel` fixture, parametrised over both frameworks, so every expectation
holds for `telegram_aiogram` and `telegram_ptb` alike; a few compare the two directly (the same
Inbound from the same update, the same requests on the wire, the same errors for the same
refusals). Everything talks HTTP to the loopback Bot API fake on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import telegram
from aiogram import Bot as AiogramBot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramUnauthorizedError
from aiogram.types import BufferedInputFile
from aiogram.types import Update as AiogramUpdate
from aiogram.utils.token import TokenValidationError
from telegram.constants import MessageAttachmentType

from bot.channels.telegram_aiogram import (
    ATTACHMENT_FIELDS,
    AiogramSender,
    run_aiogram_polling,
)
from bot.channels.telegram_aiogram import inbound_from_update as aiogram_inbound
from bot.channels.telegram_ptb import PtbSender, run_ptb_polling
from bot.channels.telegram_ptb import inbound_from_update as ptb_inbound
from domain.messages import (
    Button,
    DeliveryRefused,
    DeliveryRetry,
    HandleResult,
    Inbound,
    NotModified,
    Outbound,
    Sender,
)
from tests.fake_bot_api import FakeBotApi, UploadedFile, started_fake

USER = 2001
GROUP = -100777
BASE_MESSAGE: dict[str, Any] = {
    "date": 1_700_000_000,
    "chat": {"id": USER, "type": "private"},
    "from": {"id": USER, "is_bot": False, "first_name": "A"},
}

RunPolling = Callable[..., Awaitable[None]]


# --------------------------------------------------------------------------------------------
# The two channels behind one face


@dataclass(frozen=True)
class Channel:
    name: str
    parse: Callable[[dict[str, Any]], Inbound | None]
    run_polling: RunPolling


def _parse_ptb(body: dict[str, Any]) -> Inbound | None:
    update = telegram.Update.de_json(body, None)
    assert update is not None
    return ptb_inbound(update)


def _parse_aiogram(body: dict[str, Any]) -> Inbound | None:
    return aiogram_inbound(AiogramUpdate.model_validate(body))


PTB = Channel("ptb", _parse_ptb, run_ptb_polling)
AIOGRAM = Channel("aiogram", _parse_aiogram, run_aiogram_polling)


@pytest.fixture(params=[PTB, AIOGRAM], ids=lambda channel: channel.name)
def channel(request: pytest.FixtureRequest) -> Channel:
    return request.param


@pytest.fixture
async def fake_api() -> AsyncIterator[FakeBotApi]:
    fake = await started_fake()
    yield fake
    await fake.stop()


async def _open_sender(name: str, fake: FakeBotApi) -> tuple[Sender, Callable[[], Awaitable[Any]]]:
    """A sender of the named framework talking to `fake`, and how to close it."""
    if name == "ptb":
        ptb_bot = telegram.Bot(
            fake.token,
            base_url=f"{fake.base_url}/bot",
            base_file_url=f"{fake.base_url}/file/bot",
        )
        await ptb_bot.initialize()
        return PtbSender(ptb_bot), ptb_bot.shutdown
    session = _LoopbackSession(api=TelegramAPIServer.from_base(fake.base_url))
    return AiogramSender(AiogramBot(fake.token, session=session)), session.close


class _LoopbackSession(AiohttpSession):
    """aiogram's session without the 250 ms pause its close() leaves for TLS connections."""

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


@pytest.fixture
async def sender(channel: Channel, fake_api: FakeBotApi) -> AsyncIterator[Sender]:
    fake_api.known_chat(USER)
    opened, close = await _open_sender(channel.name, fake_api)
    yield opened
    await close()


def inbound_of_last(fake: FakeBotApi, channel: Channel) -> Inbound | None:
    return channel.parse(fake.pending_updates[-1])


def card(text: str, *rows: tuple[Button, ...], **fields: Any) -> Outbound:
    return Outbound(chat_id=USER, text=text, buttons=tuple(rows), **fields)


# --------------------------------------------------------------------------------------------
# inbound_from_update


async def test_text(fake_api: FakeBotApi, channel: Channel) -> None:
    update_id = fake_api.push_text(USER, "你好", language_code="en", first_name="阿明")
    inbound = inbound_of_last(fake_api, channel)
    assert inbound == Inbound(
        kind="text",
        user_id=USER,
        chat_id=USER,
        chat_type="private",
        language="en",
        display_name="阿明",
        text="你好",
        message_id=1,
        update_id=update_id,
    )
    assert type(inbound.chat_type) is str


@pytest.mark.parametrize(
    ("text", "command", "args"),
    [
        ("/start", "start", ""),
        ("/Start@huiyin_test_bot  join  grid 3 ", "start", "join  grid 3"),
        ("/help@Huiyin_Test_Bot", "help", ""),
        ("/report 楼道灯坏了", "report", "楼道灯坏了"),
    ],
)
async def test_command(
    fake_api: FakeBotApi, channel: Channel, text: str, command: str, args: str
) -> None:
    fake_api.push_text(USER, text)
    inbound = inbound_of_last(fake_api, channel)
    assert inbound is not None
    assert (inbound.kind, inbound.command, inbound.args, inbound.text) == (
        "command",
        command,
        args,
        text,
    )


async def test_command_entity_counts_utf16_units(fake_api: FakeBotApi, channel: Channel) -> None:
    # The entity covers "/start" only; an astral emoji right after it is two UTF-16 units.
    fake_api.push_update(
        {
            "message": {
                **BASE_MESSAGE,
                "message_id": 8,
                "text": "/start😀 x",
                "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
            }
        }
    )
    inbound = inbound_of_last(fake_api, channel)
    assert inbound is not None
    assert (inbound.kind, inbound.command, inbound.args) == ("command", "start", "😀 x")


async def test_slash_without_a_command_entity_is_text(
    fake_api: FakeBotApi, channel: Channel
) -> None:
    fake_api.push_update(
        {
            "message": {
                **BASE_MESSAGE,
                "message_id": 9,
                "text": "see /start",
                "entities": [{"type": "bot_command", "offset": 4, "length": 6}],
            }
        }
    )
    inbound = inbound_of_last(fake_api, channel)
    assert inbound is not None and inbound.kind == "text" and inbound.command == ""


async def test_group_message(fake_api: FakeBotApi, channel: Channel) -> None:
    fake_api.push_text(USER, "hi", chat_id=GROUP, chat_type="supergroup")
    inbound = inbound_of_last(fake_api, channel)
    assert inbound is not None
    assert (inbound.user_id, inbound.chat_id, inbound.chat_type) == (USER, GROUP, "supergroup")


async def test_display_name_joins_first_and_last(fake_api: FakeBotApi, channel: Channel) -> None:
    fake_api.push_update(
        {
            "message": {
                **BASE_MESSAGE,
                "message_id": 4,
                "from": {"id": USER, "is_bot": False, "first_name": "Ming", "last_name": "Wang"},
                "text": "hi",
            }
        }
    )
    inbound = inbound_of_last(fake_api, channel)
    assert inbound is not None and inbound.display_name == "Ming Wang"
    assert inbound.language is None


async def test_button(fake_api: FakeBotApi, channel: Channel, sender: Sender) -> None:
    message_id = await sender.send(card("pick", (Button("A", data="pick:a"),)))
    callback_id = fake_api.push_callback(USER, message_id, "pick:a", language_code="zh-hant")
    inbound = inbound_of_last(fake_api, channel)
    assert inbound is not None
    assert (inbound.kind, inbound.button_data, inbound.callback_id) == (
        "button",
        "pick:a",
        callback_id,
    )
    assert (inbound.message_id, inbound.chat_id, inbound.user_id) == (message_id, USER, USER)
    assert inbound.language == "zh-hant" and inbound.display_name == "用户"
    assert inbound.update_id == fake_api.pending_updates[-1]["update_id"]


@pytest.mark.parametrize(
    ("message", "chat_id", "chat_type", "message_id"),
    [
        # An old message Telegram no longer shows the bot: `date` is 0.
        ({"message_id": 3, "date": 0, "chat": {"id": GROUP, "type": "group"}}, GROUP, "group", 3),
        (None, USER, "private", None),  # a button under an inline-mode message
    ],
    ids=["inaccessible-message", "inline-message"],
)
async def test_button_without_a_full_message(
    fake_api: FakeBotApi,
    channel: Channel,
    message: dict[str, Any] | None,
    chat_id: int,
    chat_type: str,
    message_id: int | None,
) -> None:
    query: dict[str, Any] = {
        "id": "777",
        "from": BASE_MESSAGE["from"],
        "chat_instance": "-42",
        "data": "x",
    }
    if message is not None:
        query["message"] = message
    else:
        query["inline_message_id"] = "AAAA"
    fake_api.push_update({"callback_query": query})
    inbound = inbound_of_last(fake_api, channel)
    assert inbound is not None
    assert (inbound.kind, inbound.chat_id, inbound.chat_type, inbound.message_id) == (
        "button",
        chat_id,
        chat_type,
        message_id,
    )


async def test_contact(fake_api: FakeBotApi, channel: Channel) -> None:
    fake_api.push_contact(USER, "+8613800000000")
    inbound = inbound_of_last(fake_api, channel)
    assert inbound is not None
    assert (inbound.kind, inbound.contact_phone, inbound.contact_user_id) == (
        "contact",
        "+8613800000000",
        USER,
    )
    fake_api.push_contact(USER, "+8613900000000", own=False)
    inbound = inbound_of_last(fake_api, channel)
    assert inbound is not None and inbound.contact_user_id is None


async def test_photo_takes_the_largest_size(fake_api: FakeBotApi, channel: Channel) -> None:
    fake_api.push_photo(USER, caption="积水")
    sizes = fake_api.pending_updates[-1]["message"]["photo"]
    largest = max(sizes, key=lambda size: size["width"] * size["height"])
    inbound = inbound_of_last(fake_api, channel)
    assert inbound is not None
    assert (inbound.kind, inbound.file_id, inbound.text) == ("photo", largest["file_id"], "积水")
    fake_api.push_photo(USER)
    inbound = inbound_of_last(fake_api, channel)
    assert inbound is not None and inbound.text == ""


async def test_voice(fake_api: FakeBotApi, channel: Channel) -> None:
    fake_api.push_voice(USER, duration=5)
    voice_id = fake_api.pending_updates[-1]["message"]["voice"]["file_id"]
    inbound = inbound_of_last(fake_api, channel)
    assert inbound is not None
    assert (inbound.kind, inbound.file_id, inbound.text) == ("voice", voice_id, "")


async def test_location(fake_api: FakeBotApi, channel: Channel) -> None:
    fake_api.push_location(USER, 31.2, 121.5)
    inbound = inbound_of_last(fake_api, channel)
    assert inbound is not None and inbound.kind == "location" and inbound.user_id == USER


async def test_sticker_is_unsupported(fake_api: FakeBotApi, channel: Channel) -> None:
    fake_api.push_sticker(USER)
    inbound = inbound_of_last(fake_api, channel)
    assert inbound is not None and inbound.kind == "unsupported"
    assert inbound.update_id is not None and inbound.language == "zh-hans"


@pytest.mark.parametrize(
    ("attachment", "caption"),
    [
        ({"document": {"file_id": "D1", "file_unique_id": "u1"}}, ""),
        (
            {
                "video": {
                    "file_id": "V1",
                    "file_unique_id": "u2",
                    "width": 640,
                    "height": 480,
                    "duration": 3,
                },
                "caption": "录像",
            },
            "录像",
        ),
        ({"dice": {"emoji": "🎲", "value": 4}}, ""),
        (
            {
                "venue": {
                    "location": {"latitude": 31.2, "longitude": 121.5},
                    "title": "居委会",
                    "address": "1 Road",
                },
                "location": {"latitude": 31.2, "longitude": 121.5},
            },
            None,  # a venue carries a location too: it is a location
        ),
    ],
    ids=["document", "video-with-caption", "dice", "venue"],
)
async def test_other_attachments(
    fake_api: FakeBotApi, channel: Channel, attachment: dict[str, Any], caption: str | None
) -> None:
    fake_api.push_update({"message": {**BASE_MESSAGE, "message_id": 3, **attachment}})
    inbound = inbound_of_last(fake_api, channel)
    assert inbound is not None
    if caption is None:
        assert inbound.kind == "location"
    else:
        assert (inbound.kind, inbound.text) == ("unsupported", caption)


@pytest.mark.parametrize(
    "body",
    [
        {
            "edited_message": {
                **BASE_MESSAGE,
                "message_id": 1,
                "edit_date": 1_700_000_001,
                "text": "changed",
            }
        },
        {
            "channel_post": {
                "message_id": 1,
                "date": 1_700_000_000,
                "chat": {"id": -100, "type": "channel", "title": "C"},
                "text": "post",
            }
        },
        {
            "message": {
                **BASE_MESSAGE,
                "message_id": 2,
                "chat": {"id": GROUP, "type": "supergroup", "title": "G"},
                "new_chat_members": [{"id": 5, "is_bot": False, "first_name": "B"}],
            }
        },
        {
            "message": {
                **BASE_MESSAGE,
                "message_id": 2,
                "chat": {"id": GROUP, "type": "supergroup", "title": "G"},
                "pinned_message": {
                    "message_id": 1,
                    "date": 0,
                    "chat": {"id": GROUP, "type": "supergroup"},
                },
            }
        },
    ],
    ids=["edited", "channel-post", "service-message", "pin"],
)
async def test_updates_a_conversation_does_not_see(
    fake_api: FakeBotApi, channel: Channel, body: dict[str, Any]
) -> None:
    fake_api.push_update(body)
    assert inbound_of_last(fake_api, channel) is None


def test_unsupported_attachments_are_the_ones_ptb_knows() -> None:
    assert tuple(kind.value for kind in MessageAttachmentType) == ATTACHMENT_FIELDS


async def test_both_frameworks_read_every_update_alike(fake_api: FakeBotApi) -> None:
    fake_api.known_chat(USER)
    fake_api.push_text(USER, "plain")
    fake_api.push_text(USER, "/Start@huiyin_test_bot a  b ", chat_id=GROUP, chat_type="group")
    fake_api.push_contact(USER, "+8613800000000")
    fake_api.push_photo(USER, caption="c")
    fake_api.push_voice(USER)
    fake_api.push_location(USER, 1.0, 2.0)
    fake_api.push_sticker(USER)
    opened, close = await _open_sender("aiogram", fake_api)
    try:
        sent = await opened.send(card("x", (Button("A", data="a"),)))
    finally:
        await close()
    fake_api.push_callback(USER, sent, "a")
    updates = fake_api.pending_updates
    assert len(updates) == 8
    for body in updates:
        assert PTB.parse(body) == AIOGRAM.parse(body), body


# --------------------------------------------------------------------------------------------
# The senders


async def test_send_with_buttons(fake_api: FakeBotApi, sender: Sender) -> None:
    message_id = await sender.send(
        card(
            "<b>工单</b> #12",
            (Button("接单", data="take:12"), Button("详情", url="https://example.org/t/12")),
        )
    )
    stored = fake_api.message(USER, message_id)
    assert stored.text == "<b>工单</b> #12" and stored.parse_mode == "HTML"
    assert stored.reply_markup == {
        "inline_keyboard": [
            [
                {"text": "接单", "callback_data": "take:12"},
                {"text": "详情", "url": "https://example.org/t/12"},
            ]
        ]
    }


async def test_request_contact_and_remove_keyboard(fake_api: FakeBotApi, sender: Sender) -> None:
    asking = await sender.send(card("请分享手机号", request_contact="分享手机号"))
    assert fake_api.message(USER, asking).reply_markup == {
        "keyboard": [[{"text": "分享手机号", "request_contact": True}]],
        "resize_keyboard": True,
        "one_time_keyboard": True,
    }
    thanked = await sender.send(card("谢谢", remove_keyboard=True))
    assert fake_api.message(USER, thanked).reply_markup == {"remove_keyboard": True}


async def test_inline_buttons_win_over_a_reply_keyboard(
    fake_api: FakeBotApi, sender: Sender
) -> None:
    message_id = await sender.send(card("x", (Button("A", data="a"),), request_contact="分享"))
    assert fake_api.message(USER, message_id).reply_markup == {
        "inline_keyboard": [[{"text": "A", "callback_data": "a"}]]
    }


async def test_contact_card(fake_api: FakeBotApi, sender: Sender) -> None:
    message_id = await sender.send(
        card("ignored", contact_phone="+8613800000000", contact_name="王网格员")
    )
    stored = fake_api.message(USER, message_id)
    assert stored.kind == "contact"
    assert stored.contact == {"phone_number": "+8613800000000", "first_name": "王网格员"}


async def test_edit_and_not_modified(fake_api: FakeBotApi, sender: Sender) -> None:
    buttons = (Button("确认", data="ok"),)
    message_id = await sender.send(card("待处理", buttons))
    await sender.edit(card("<i>已处理</i>", buttons), message_id)
    stored = fake_api.message(USER, message_id)
    assert (stored.text, stored.edited) == ("<i>已处理</i>", True)
    assert stored.reply_markup == {"inline_keyboard": [[{"text": "确认", "callback_data": "ok"}]]}
    with pytest.raises(NotModified):
        await sender.edit(card("<i>已处理</i>", buttons), message_id)
    await sender.edit(card("<i>已处理</i>"), message_id)  # dropping the buttons is a change
    assert fake_api.message(USER, message_id).reply_markup is None


async def test_edit_of_a_vanished_message_is_refused(sender: Sender) -> None:
    with pytest.raises(DeliveryRefused) as refused:
        await sender.edit(card("x"), 4242)
    assert "message to edit not found" in str(refused.value).lower()
    assert refused.value.blocked is False


async def test_flood_control_is_retry_after(fake_api: FakeBotApi, sender: Sender) -> None:
    fake_api.fail_next("sendMessage", 429, "Too Many Requests: retry after 7", retry_after=7)
    with pytest.raises(DeliveryRetry) as retry:
        await sender.send(card("x"))
    assert retry.value.after == 7.0


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_retried(fake_api: FakeBotApi, sender: Sender, status: int) -> None:
    fake_api.fail_next("sendMessage", status, "Internal Server Error")
    with pytest.raises(DeliveryRetry) as retry:
        await sender.send(card("x"))
    assert retry.value.after is None


async def test_blocked_user_is_refused_for_good(fake_api: FakeBotApi, sender: Sender) -> None:
    fake_api.fail_next("sendMessage", 403, "Forbidden: bot was blocked by the user")
    with pytest.raises(DeliveryRefused) as refused:
        await sender.send(card("x"))
    assert refused.value.blocked is True


async def test_unknown_chat_is_refused_but_not_blocked(sender: Sender) -> None:
    with pytest.raises(DeliveryRefused) as refused:
        await sender.send(Outbound(chat_id=555, text="x"))
    assert refused.value.blocked is False and "chat not found" in str(refused.value).lower()


async def test_bad_html_is_refused(sender: Sender) -> None:
    with pytest.raises(DeliveryRefused) as refused:
        await sender.send(card("a <p> b"))
    assert "can't parse entities" in str(refused.value).lower()


async def test_an_unreachable_server_is_retried(fake_api: FakeBotApi, channel: Channel) -> None:
    fake_api.known_chat(USER)
    opened, close = await _open_sender(channel.name, fake_api)
    try:
        await fake_api.stop()  # nothing listens on that port any more
        with pytest.raises(DeliveryRetry) as retry:
            await opened.send(card("x"))
        assert retry.value.after is None
    finally:
        await close()


async def test_long_text_is_cut_not_refused(fake_api: FakeBotApi, sender: Sender) -> None:
    message_id = await sender.send(card("<b>" + "长" * 5000 + "</b>"))
    stored = fake_api.message(USER, message_id)
    assert len(stored.plain_text) == 4096 and stored.plain_text.endswith("…")
    assert stored.text.endswith("</b>…")


async def test_long_edit_is_cut_not_refused(fake_api: FakeBotApi, sender: Sender) -> None:
    message_id = await sender.send(card("short"))
    await sender.edit(card("x" * 5000), message_id)
    stored = fake_api.message(USER, message_id)
    assert len(stored.plain_text) == 4096 and stored.plain_text.endswith("…")


async def test_photo_with_a_caption_that_fits(fake_api: FakeBotApi, sender: Sender) -> None:
    fake_api.push_photo(USER)
    photo_id = fake_api.pending_updates[-1]["message"]["photo"][-1]["file_id"]
    message_id = await sender.send(
        card(
            "<b>现场</b>照片",
            (Button("关闭", data="close"),),
            media_kind="photo",
            media_file_id=photo_id,
        )
    )
    stored = fake_api.message(USER, message_id)
    assert (stored.kind, stored.caption, stored.file_id) == ("photo", "<b>现场</b>照片", photo_id)
    assert stored.reply_markup is not None
    assert len(fake_api.messages(USER)) == 1


async def test_long_caption_is_split(fake_api: FakeBotApi, sender: Sender) -> None:
    fake_api.push_photo(USER)
    photo_id = fake_api.pending_updates[-1]["message"]["photo"][-1]["file_id"]
    long_text = "描述" * 600  # 1200 characters
    message_id = await sender.send(
        card(long_text, (Button("关闭", data="close"),), media_kind="photo", media_file_id=photo_id)
    )
    photo, text = fake_api.messages(USER)
    assert (photo.kind, photo.caption, photo.reply_markup) == ("photo", "", None)
    assert (text.kind, text.text, text.message_id) == ("text", long_text, message_id)
    assert text.reply_markup == {"inline_keyboard": [[{"text": "关闭", "callback_data": "close"}]]}


async def test_voice_is_forwarded_with_its_caption(fake_api: FakeBotApi, sender: Sender) -> None:
    fake_api.push_voice(USER)
    voice_id = fake_api.pending_updates[-1]["message"]["voice"]["file_id"]
    message_id = await sender.send(card("居民留言", media_kind="voice", media_file_id=voice_id))
    stored = fake_api.message(USER, message_id)
    assert (stored.kind, stored.caption) == ("voice", "居民留言")


async def test_unknown_media_kind_sends_the_text(fake_api: FakeBotApi, sender: Sender) -> None:
    message_id = await sender.send(card("只有文字", media_kind="video", media_file_id="V1"))
    stored = fake_api.message(USER, message_id)
    assert (stored.kind, stored.text) == ("text", "只有文字")


async def test_answer_callback(fake_api: FakeBotApi, sender: Sender) -> None:
    message_id = await sender.send(card("x", (Button("A", data="a"),)))
    callback_id = fake_api.push_callback(USER, message_id, "a")
    await sender.answer_callback(callback_id, "好" * 300, alert=True)
    call = fake_api.calls_of("answerCallbackQuery")[-1]
    assert call.ok and len(call.params["text"]) == 200 and call.params["show_alert"] is True
    # A second answer is "too old": logged, not raised, since the press was already handled.
    await sender.answer_callback(callback_id, None, alert=False)
    assert fake_api.calls_of("answerCallbackQuery")[-1].ok is False


async def test_answer_callback_server_error_is_retry(fake_api: FakeBotApi, sender: Sender) -> None:
    fake_api.fail_next("answerCallbackQuery", 500, "Internal Server Error")
    with pytest.raises(DeliveryRetry):
        await sender.answer_callback("1", None, alert=False)


# ---- the two senders side by side


async def _deliver_everything(sender: Sender, fake: FakeBotApi) -> None:
    """Every kind of delivery, successes and refusals, against a fresh fake."""
    fake.known_chat(USER)
    fake.push_photo(USER)
    photo_id = fake.pending_updates[-1]["message"]["photo"][-1]["file_id"]
    fake.push_voice(USER)
    voice_id = fake.pending_updates[-1]["message"]["voice"]["file_id"]
    buttons = (Button("接单", data="take:1"), Button("链接", url="https://example.org/x"))
    deliveries: list[Outbound] = [
        card("<b>工单</b> &amp; 详情", buttons),
        card("分享", request_contact="分享手机号"),
        card("好", remove_keyboard=True),
        card("both", buttons, request_contact="分享"),
        card("x", contact_phone="+8613800000000"),
        card("x", contact_phone="+8613800000000", contact_name="王"),
        card("<i>照片</i>", buttons, media_kind="photo", media_file_id=photo_id),
        card("", media_kind="photo", media_file_id=photo_id),
        card("描述" * 600, buttons, media_kind="photo", media_file_id=photo_id),
        card("留言", media_kind="voice", media_file_id=voice_id),
        card("only text", media_kind="video", media_file_id="V"),
        card("<b>" + "长" * 5000 + "</b>"),
    ]
    sent = [await sender.send(message) for message in deliveries]
    for refused in (card("a <p> b"), Outbound(chat_id=555, text="x")):
        with pytest.raises(DeliveryRefused):
            await sender.send(refused)
    await sender.edit(card("<i>改</i>", buttons), sent[0])
    await sender.edit(card("<i>改</i>"), sent[0])
    with pytest.raises(NotModified):
        await sender.edit(card("<i>改</i>"), sent[0])
    callback_id = fake.push_callback(USER, sent[0], "take:1")
    await sender.answer_callback(callback_id, "已接单", alert=False)
    await sender.answer_callback(callback_id, None, alert=True)  # too old: swallowed


async def test_both_senders_make_the_same_requests() -> None:
    requests: dict[str, list[tuple[str, dict[str, Any], bool]]] = {}
    for name in ("ptb", "aiogram"):
        async with FakeBotApi() as fake:
            opened, close = await _open_sender(name, fake)
            try:
                await _deliver_everything(opened, fake)
            finally:
                await close()
            requests[name] = [
                (call.method, call.params, call.ok) for call in fake.calls if call.method != "getMe"
            ]
    assert len(requests["aiogram"]) == 20
    assert requests["aiogram"] == requests["ptb"]


@pytest.mark.parametrize(
    ("status", "description", "retry_after"),
    [
        (429, "Too Many Requests: retry after 7", 7),
        (500, "Internal Server Error", None),
        (502, "Bad Gateway", None),
        (403, "Forbidden: bot was blocked by the user", None),
        (403, "Forbidden: bot was kicked from the group chat", None),
        (400, "Bad Request: chat not found", None),
        (400, "Bad Request: BUTTON_DATA_INVALID", None),
        (400, "Bad Request: message is not modified: specified new message content", None),
        (401, "Unauthorized", None),
        (404, "Not Found", None),
        (409, "Conflict: terminated by other getUpdates request", None),
        (413, "Request Entity Too Large", None),
        (418, "I'm a teapot", None),
    ],
)
async def test_both_senders_fail_alike(
    status: int, description: str, retry_after: int | None
) -> None:
    outcomes = []
    for name in ("ptb", "aiogram"):
        async with FakeBotApi() as fake:
            fake.known_chat(USER)
            opened, close = await _open_sender(name, fake)
            fake.fail_next("sendMessage", status, description, retry_after=retry_after)
            try:
                with pytest.raises((DeliveryRetry, DeliveryRefused, NotModified)) as failure:
                    await opened.send(card("x"))
            finally:
                await close()
        error = failure.value
        outcomes.append(
            (
                type(error),
                str(error),
                getattr(error, "after", None),
                getattr(error, "blocked", None),
            )
        )
    assert outcomes[0] == outcomes[1]


# --------------------------------------------------------------------------------------------
# The fake reads what aiogram sends


async def test_fake_reads_an_aiogram_upload(fake_api: FakeBotApi) -> None:
    fake_api.known_chat(USER)
    session = AiohttpSession(api=TelegramAPIServer.from_base(fake_api.base_url))
    bot = AiogramBot(fake_api.token, session=session)
    try:
        sent = await bot.send_photo(
            USER,
            BufferedInputFile(b"\xff\xd8jpeg", filename="p.jpg"),
            caption="<b>c</b>",
            parse_mode="HTML",
        )
    finally:
        await session.close()
    call = fake_api.calls_of("sendPhoto")[-1]
    assert call.ok and isinstance(call.params["photo"], UploadedFile)
    assert call.params["photo"].content == b"\xff\xd8jpeg"
    assert fake_api.message(USER, sent.message_id).plain_text == "c"


# --------------------------------------------------------------------------------------------
# Polling end to end


class EchoBot:
    """A tiny conversation: echoes texts, offers a button on commands, answers presses."""

    def __init__(self) -> None:
        self.sender: Sender | None = None
        self.seen: list[Inbound] = []

    async def on_started(self, sender: Sender) -> None:
        self.sender = sender

    async def handle(self, inbound: Inbound) -> HandleResult:
        assert self.sender is not None, "handle ran before on_started"
        self.seen.append(inbound)
        if inbound.kind == "button":
            if inbound.button_data == "explode":
                raise RuntimeError("the handler broke")
            return HandleResult(callback_answer=f"pressed {inbound.button_data}")
        if inbound.kind == "command":
            await self.sender.send(
                Outbound(
                    chat_id=inbound.chat_id,
                    text=f"command {inbound.command} [{html.escape(inbound.args)}]",
                    buttons=((Button("Press", data="p:1"), Button("Boom", data="explode")),),
                )
            )
            return HandleResult()
        await self.sender.send(
            Outbound(chat_id=inbound.chat_id, text=f"echo: {html.escape(inbound.text)}")
        )
        return HandleResult()


def start_polling(
    channel: Channel,
    fake: FakeBotApi,
    handle: Callable[[Inbound], Awaitable[HandleResult]],
    stop: asyncio.Event,
    *,
    on_started: Callable[[Any], Awaitable[None]] | None = None,
    poll_timeout: int = 5,
    token: str | None = None,
) -> asyncio.Task[None]:
    return asyncio.create_task(
        channel.run_polling(
            token or fake.token,
            fake.base_url,
            handle,
            on_started=on_started,
            stop=stop,
            poll_timeout=poll_timeout,
        )
    )


async def test_polling_end_to_end(fake_api: FakeBotApi, channel: Channel) -> None:
    echo = EchoBot()
    stop = asyncio.Event()
    polling = start_polling(channel, fake_api, echo.handle, stop, on_started=echo.on_started)
    try:
        fake_api.push_text(USER, "你好 <world> & co")
        reply = await fake_api.wait_for("sendMessage")
        assert reply.ok and reply.params["text"] == "echo: 你好 &lt;world&gt; &amp; co"
        assert reply.params["parse_mode"] == "HTML"

        fake_api.push_text(USER, "/Start@huiyin_test_bot grid 7")
        offer = await fake_api.wait_for(
            "sendMessage", lambda call: call.params["text"].startswith("command")
        )
        assert offer.params["text"] == "command start [grid 7]"
        card_id = offer.result_or_error["message_id"]

        pressed = fake_api.push_callback(USER, card_id, "p:1")
        answer = await fake_api.wait_for(
            "answerCallbackQuery", lambda call: call.params["callback_query_id"] == pressed
        )
        assert answer.ok and answer.params["text"] == "pressed p:1"

        broken = fake_api.push_callback(USER, card_id, "explode")
        answer = await fake_api.wait_for(
            "answerCallbackQuery", lambda call: call.params["callback_query_id"] == broken
        )
        assert answer.ok and "text" not in answer.params  # the spinner still stops

        fake_api.push_sticker(USER)  # handled as "unsupported": echoed with no text
        for word in ("one", "two", "three"):
            fake_api.push_text(USER, word)
        await fake_api.wait_for("sendMessage", lambda call: call.params["text"] == "echo: three")
    finally:
        stop.set()
        await asyncio.wait_for(polling, timeout=10)

    echoes = [call.params["text"] for call in fake_api.calls_of("sendMessage")]
    assert echoes[-4:] == ["echo: ", "echo: one", "echo: two", "echo: three"]
    assert [inbound.kind for inbound in echo.seen] == [
        "text",
        "command",
        "button",
        "button",
        "unsupported",
        "text",
        "text",
        "text",
    ]
    methods = [call.method for call in fake_api.calls]
    assert methods.index("getMe") < methods.index("deleteWebhook") < methods.index("getUpdates")
    polls = [call for call in fake_api.calls_of("getUpdates") if call.ok]
    assert all(call.params["allowed_updates"] == ["message", "callback_query"] for call in polls)
    assert polls[-1].params["timeout"] == 0  # the last poll only confirms
    assert fake_api.pending_updates == []  # the final poll confirmed everything handled
    assert all(call.ok for call in fake_api.calls), fake_api.dump_calls()


async def test_updates_are_handled_one_at_a_time(fake_api: FakeBotApi, channel: Channel) -> None:
    """A slow first update holds the others back, even when they arrive in one batch."""
    release = asyncio.Event()
    entered = asyncio.Event()
    running = 0
    most_at_once = 0
    seen: list[str] = []

    async def handle(inbound: Inbound) -> HandleResult:
        nonlocal running, most_at_once
        running += 1
        most_at_once = max(most_at_once, running)
        seen.append(inbound.text)
        if inbound.text == "slow":
            entered.set()
            await release.wait()
        running -= 1
        return HandleResult()

    for text in ("slow", "a", "b", "c"):
        fake_api.push_text(USER, text)
    stop = asyncio.Event()
    polling = start_polling(channel, fake_api, handle, stop)
    try:
        await asyncio.wait_for(entered.wait(), timeout=10)
        await fake_api.wait_until_polling()  # the next poll waits; a, b, c are still queued
        assert seen == ["slow"]
    finally:
        release.set()
        stop.set()
        await asyncio.wait_for(polling, timeout=10)
    assert seen == ["slow", "a", "b", "c"] and most_at_once == 1


async def test_stop_finishes_the_updates_already_fetched(
    fake_api: FakeBotApi, channel: Channel
) -> None:
    """Stopping mid-update lets it finish, handles the rest of the batch and confirms it."""
    release = asyncio.Event()
    entered = asyncio.Event()
    seen: list[str] = []

    async def handle(inbound: Inbound) -> HandleResult:
        seen.append(inbound.text)
        if inbound.text == "slow":
            entered.set()
            await release.wait()
        return HandleResult()

    for text in ("slow", "after-1", "after-2"):
        fake_api.push_text(USER, text)
    stop = asyncio.Event()
    polling = start_polling(channel, fake_api, handle, stop, poll_timeout=30)
    try:
        await asyncio.wait_for(entered.wait(), timeout=10)
        stop.set()
        confirm = await fake_api.wait_for("getUpdates", lambda call: call.params["timeout"] == 0)
        assert confirm.ok and not polling.done() and seen == ["slow"]
    finally:
        release.set()
        await asyncio.wait_for(polling, timeout=10)
    assert seen == ["slow", "after-1", "after-2"]
    assert fake_api.pending_updates == []


async def test_both_frameworks_poll_alike() -> None:
    """The same calls with the same parameters, from getMe to the confirming getUpdates."""
    calls: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for channel in (PTB, AIOGRAM):
        async with FakeBotApi() as fake:
            echo = EchoBot()
            stop = asyncio.Event()
            fake.push_text(USER, "hi")
            polling = start_polling(channel, fake, echo.handle, stop, on_started=echo.on_started)
            try:
                await fake.wait_for("sendMessage")
                await fake.wait_until_polling()
            finally:
                stop.set()
                await asyncio.wait_for(polling, timeout=10)
            assert all(call.ok for call in fake.calls), fake.dump_calls()
            calls[channel.name] = [(call.method, call.params) for call in fake.calls]
    assert [method for method, _ in calls["aiogram"]] == [
        "getMe",
        "deleteWebhook",
        "getUpdates",
        "sendMessage",
        "getUpdates",  # the long poll was abandoned; this one confirms
    ]
    assert calls["aiogram"] == calls["ptb"]


async def test_polling_stops_promptly_when_idle(fake_api: FakeBotApi, channel: Channel) -> None:
    started = asyncio.Event()

    async def on_started(sender: Sender) -> None:
        started.set()

    async def handle(inbound: Inbound) -> HandleResult:
        return HandleResult()

    stop = asyncio.Event()
    polling = start_polling(channel, fake_api, handle, stop, on_started=on_started, poll_timeout=30)
    await asyncio.wait_for(started.wait(), timeout=10)
    await fake_api.wait_until_polling()
    stop.set()
    await asyncio.wait_for(polling, timeout=5)


async def test_polling_survives_a_failed_poll(fake_api: FakeBotApi, channel: Channel) -> None:
    echo = EchoBot()
    stop = asyncio.Event()
    fake_api.fail_next("getUpdates", 502, "Bad Gateway")
    polling = start_polling(channel, fake_api, echo.handle, stop, on_started=echo.on_started)
    try:
        fake_api.push_text(USER, "still here")
        reply = await fake_api.wait_for("sendMessage")  # after a one-second back-off
        assert reply.params["text"] == "echo: still here"
    finally:
        stop.set()
        await asyncio.wait_for(polling, timeout=10)
    assert [call.ok for call in fake_api.calls_of("getUpdates")][:2] == [False, True]


async def test_a_wrong_token_fails_before_polling(fake_api: FakeBotApi, channel: Channel) -> None:
    async def handle(inbound: Inbound) -> HandleResult:
        raise AssertionError("no update can arrive")

    stop = asyncio.Event()
    polling = start_polling(channel, fake_api, handle, stop, token="42:not-the-fakes-token")
    # Each framework raises its own "bad token" error; neither gets as far as polling.
    with pytest.raises((telegram.error.InvalidToken, TelegramUnauthorizedError)):
        await asyncio.wait_for(polling, timeout=10)
    assert [call.method for call in fake_api.calls] == ["getMe"]


async def test_on_started_failure_ends_polling(fake_api: FakeBotApi, channel: Channel) -> None:
    async def on_started(sender: Sender) -> None:
        raise RuntimeError("cannot start")

    async def handle(inbound: Inbound) -> HandleResult:
        return HandleResult()

    stop = asyncio.Event()
    polling = start_polling(channel, fake_api, handle, stop, on_started=on_started)
    with pytest.raises(RuntimeError, match="cannot start"):
        await asyncio.wait_for(polling, timeout=10)
    assert not fake_api.calls_of("getUpdates")


async def test_aiogram_wants_a_well_formed_token(fake_api: FakeBotApi) -> None:
    async def handle(inbound: Inbound) -> HandleResult:
        return HandleResult()

    with pytest.raises(TokenValidationError):
        await run_aiogram_polling("not-a-token", fake_api.base_url, handle, stop=asyncio.Event())
    assert fake_api.calls == []
