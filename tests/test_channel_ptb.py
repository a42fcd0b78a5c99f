"""Tests for the python-telegram-bot channel, against the loopback Bot API fake.

`inbound_from_update` is checked on updates the fake builds (the same JSON Telegram sends);
`PtbSender` and `run_ptb_polling` talk HTTP to the fake, so the limits and errors they meet
are Telegram's.
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import AsyncIterator
from typing import Any

import pytest
from telegram import Bot, Update

from bot.channels.telegram_ptb import (
    PtbSender,
    fit_html,
    inbound_from_update,
    run_ptb_polling,
    visible_length,
)
from bot.channels.types import (
    Button,
    DeliveryRefused,
    DeliveryRetry,
    HandleResult,
    Inbound,
    NotModified,
    Outbound,
)
from tests.fake_bot_api import FakeBotApi, parse_html, started_fake

USER = 2001
GROUP = -100777


@pytest.fixture
async def fake_api() -> AsyncIterator[FakeBotApi]:
    fake = await started_fake()
    yield fake
    await fake.stop()


@pytest.fixture
async def ptb_bot(fake_api: FakeBotApi) -> AsyncIterator[Bot]:
    bot = Bot(
        fake_api.token,
        base_url=f"{fake_api.base_url}/bot",
        base_file_url=f"{fake_api.base_url}/file/bot",
    )
    async with bot:
        yield bot


@pytest.fixture
def sender(ptb_bot: Bot, fake_api: FakeBotApi) -> PtbSender:
    fake_api.known_chat(USER)
    return PtbSender(ptb_bot)


def last_update(fake: FakeBotApi, bot: Bot) -> Update:
    update = Update.de_json(fake.pending_updates[-1], bot)
    assert update is not None
    return update


def inbound_of_last(fake: FakeBotApi, bot: Bot) -> Inbound | None:
    return inbound_from_update(last_update(fake, bot))


def card(text: str, *rows: tuple[Button, ...], **fields: Any) -> Outbound:
    return Outbound(chat_id=USER, text=text, buttons=tuple(rows), **fields)


# ---- inbound_from_update


async def test_text(fake_api: FakeBotApi, ptb_bot: Bot) -> None:
    update_id = fake_api.push_text(USER, "你好", language_code="en", first_name="阿明")
    inbound = inbound_of_last(fake_api, ptb_bot)
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
    fake_api: FakeBotApi, ptb_bot: Bot, text: str, command: str, args: str
) -> None:
    fake_api.push_text(USER, text)
    inbound = inbound_of_last(fake_api, ptb_bot)
    assert inbound is not None
    assert (inbound.kind, inbound.command, inbound.args) == ("command", command, args)


async def test_slash_without_a_command_entity_is_text(fake_api: FakeBotApi, ptb_bot: Bot) -> None:
    fake_api.push_update(
        {
            "message": {
                "message_id": 9,
                "date": 1_700_000_000,
                "chat": {"id": USER, "type": "private"},
                "from": {"id": USER, "is_bot": False, "first_name": "A"},
                "text": "see /start",
                "entities": [{"type": "bot_command", "offset": 4, "length": 6}],
            }
        }
    )
    inbound = inbound_of_last(fake_api, ptb_bot)
    assert inbound is not None and inbound.kind == "text" and inbound.command == ""


async def test_group_message(fake_api: FakeBotApi, ptb_bot: Bot) -> None:
    fake_api.push_text(USER, "hi", chat_id=GROUP, chat_type="supergroup")
    inbound = inbound_of_last(fake_api, ptb_bot)
    assert inbound is not None
    assert (inbound.user_id, inbound.chat_id, inbound.chat_type) == (USER, GROUP, "supergroup")


async def test_button(fake_api: FakeBotApi, ptb_bot: Bot, sender: PtbSender) -> None:
    message_id = await sender.send(card("pick", (Button("A", data="pick:a"),)))
    callback_id = fake_api.push_callback(USER, message_id, "pick:a", language_code="zh-hant")
    inbound = inbound_of_last(fake_api, ptb_bot)
    assert inbound is not None
    assert (inbound.kind, inbound.button_data, inbound.callback_id) == (
        "button",
        "pick:a",
        callback_id,
    )
    assert (inbound.message_id, inbound.chat_id, inbound.user_id) == (message_id, USER, USER)
    assert inbound.language == "zh-hant" and inbound.display_name == "用户"
    assert inbound.update_id == fake_api.pending_updates[-1]["update_id"]


async def test_contact(fake_api: FakeBotApi, ptb_bot: Bot) -> None:
    fake_api.push_contact(USER, "+8613800000000")
    inbound = inbound_of_last(fake_api, ptb_bot)
    assert inbound is not None
    assert (inbound.kind, inbound.contact_phone, inbound.contact_user_id) == (
        "contact",
        "+8613800000000",
        USER,
    )
    fake_api.push_contact(USER, "+8613900000000", own=False)
    inbound = inbound_of_last(fake_api, ptb_bot)
    assert inbound is not None and inbound.contact_user_id is None


async def test_photo_takes_the_largest_size(fake_api: FakeBotApi, ptb_bot: Bot) -> None:
    fake_api.push_photo(USER, caption="积水")
    sizes = fake_api.pending_updates[-1]["message"]["photo"]
    largest = max(sizes, key=lambda size: size["width"] * size["height"])
    inbound = inbound_of_last(fake_api, ptb_bot)
    assert inbound is not None
    assert (inbound.kind, inbound.file_id, inbound.text) == ("photo", largest["file_id"], "积水")
    fake_api.push_photo(USER)
    inbound = inbound_of_last(fake_api, ptb_bot)
    assert inbound is not None and inbound.text == ""


async def test_voice(fake_api: FakeBotApi, ptb_bot: Bot) -> None:
    fake_api.push_voice(USER, duration=5)
    voice_id = fake_api.pending_updates[-1]["message"]["voice"]["file_id"]
    inbound = inbound_of_last(fake_api, ptb_bot)
    assert inbound is not None
    assert (inbound.kind, inbound.file_id, inbound.text) == ("voice", voice_id, "")


async def test_location(fake_api: FakeBotApi, ptb_bot: Bot) -> None:
    fake_api.push_location(USER, 31.2, 121.5)
    inbound = inbound_of_last(fake_api, ptb_bot)
    assert inbound is not None and inbound.kind == "location" and inbound.user_id == USER


async def test_sticker_is_unsupported(fake_api: FakeBotApi, ptb_bot: Bot) -> None:
    fake_api.push_sticker(USER)
    inbound = inbound_of_last(fake_api, ptb_bot)
    assert inbound is not None and inbound.kind == "unsupported"
    assert inbound.update_id is not None and inbound.language == "zh-hans"


async def test_document_is_unsupported(fake_api: FakeBotApi, ptb_bot: Bot) -> None:
    fake_api.push_update(
        {
            "message": {
                "message_id": 3,
                "date": 1_700_000_000,
                "chat": {"id": USER, "type": "private"},
                "from": {"id": USER, "is_bot": False, "first_name": "A"},
                "document": {"file_id": "D1", "file_unique_id": "u1"},
            }
        }
    )
    inbound = inbound_of_last(fake_api, ptb_bot)
    assert inbound is not None and inbound.kind == "unsupported"


@pytest.mark.parametrize(
    "body",
    [
        {
            "edited_message": {
                "message_id": 1,
                "date": 1_700_000_000,
                "edit_date": 1_700_000_001,
                "chat": {"id": USER, "type": "private"},
                "from": {"id": USER, "is_bot": False, "first_name": "A"},
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
                "message_id": 2,
                "date": 1_700_000_000,
                "chat": {"id": GROUP, "type": "supergroup", "title": "G"},
                "from": {"id": USER, "is_bot": False, "first_name": "A"},
                "new_chat_members": [{"id": 5, "is_bot": False, "first_name": "B"}],
            }
        },
    ],
    ids=["edited", "channel-post", "service-message"],
)
async def test_updates_a_conversation_does_not_see(
    fake_api: FakeBotApi, ptb_bot: Bot, body: dict[str, Any]
) -> None:
    fake_api.push_update(body)
    assert inbound_of_last(fake_api, ptb_bot) is None


# ---- fitting HTML


def test_fit_html_keeps_short_text() -> None:
    assert fit_html("<b>a</b> &amp; b", 10) == "<b>a</b> &amp; b"


@pytest.mark.parametrize(
    "text",
    [
        "x" * 5000,
        "<b>" + "粗" * 5000 + "</b>",
        "&lt;" * 5000,
        '<a href="https://example.org/?a=1&amp;b=2">' + "y" * 4094 + "</a>&amp;&amp;&amp;",
        "<blockquote><i>" + "q" * 3000 + "</i>" + "&#128512;" * 3000 + "</blockquote>",
    ],
)
def test_fit_html_cuts_to_valid_html_of_the_limit(text: str) -> None:
    fitted = fit_html(text, 4096)
    plain, _ = parse_html(fitted)
    assert len(plain) == 4096 == visible_length(fitted)
    assert plain.endswith("…")


# ---- PtbSender


async def test_send_with_buttons(fake_api: FakeBotApi, sender: PtbSender) -> None:
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


async def test_request_contact_and_remove_keyboard(fake_api: FakeBotApi, sender: PtbSender) -> None:
    asking = await sender.send(card("请分享手机号", request_contact="分享手机号"))
    assert fake_api.message(USER, asking).reply_markup == {
        "keyboard": [[{"text": "分享手机号", "request_contact": True}]],
        "resize_keyboard": True,
        "one_time_keyboard": True,
    }
    thanked = await sender.send(card("谢谢", remove_keyboard=True))
    assert fake_api.message(USER, thanked).reply_markup == {"remove_keyboard": True}


async def test_contact_card(fake_api: FakeBotApi, sender: PtbSender) -> None:
    message_id = await sender.send(
        card("ignored", contact_phone="+8613800000000", contact_name="王网格员")
    )
    stored = fake_api.message(USER, message_id)
    assert stored.kind == "contact"
    assert stored.contact == {"phone_number": "+8613800000000", "first_name": "王网格员"}


async def test_edit_and_not_modified(fake_api: FakeBotApi, sender: PtbSender) -> None:
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


async def test_edit_of_a_vanished_message_is_refused(sender: PtbSender) -> None:
    with pytest.raises(DeliveryRefused) as refused:
        await sender.edit(card("x"), 4242)
    assert "message to edit not found" in str(refused.value).lower()
    assert refused.value.blocked is False


# PTB itself warns while building RetryAfter (its retry_after is becoming a timedelta).
@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_flood_control_is_retry_after(fake_api: FakeBotApi, sender: PtbSender) -> None:
    fake_api.fail_next("sendMessage", 429, "Too Many Requests: retry after 7", retry_after=7)
    with pytest.raises(DeliveryRetry) as retry:
        await sender.send(card("x"))
    assert retry.value.after == 7.0


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_retried(
    fake_api: FakeBotApi, sender: PtbSender, status: int
) -> None:
    fake_api.fail_next("sendMessage", status, "Internal Server Error")
    with pytest.raises(DeliveryRetry) as retry:
        await sender.send(card("x"))
    assert retry.value.after is None


async def test_blocked_user_is_refused_for_good(fake_api: FakeBotApi, sender: PtbSender) -> None:
    fake_api.fail_next("sendMessage", 403, "Forbidden: bot was blocked by the user")
    with pytest.raises(DeliveryRefused) as refused:
        await sender.send(card("x"))
    assert refused.value.blocked is True


async def test_unknown_chat_is_refused_but_not_blocked(sender: PtbSender) -> None:
    with pytest.raises(DeliveryRefused) as refused:
        await sender.send(Outbound(chat_id=555, text="x"))
    assert refused.value.blocked is False and "chat not found" in str(refused.value).lower()


async def test_bad_html_is_refused(sender: PtbSender) -> None:
    with pytest.raises(DeliveryRefused) as refused:
        await sender.send(card("a <p> b"))
    assert "can't parse entities" in str(refused.value).lower()


async def test_long_text_is_cut_not_refused(fake_api: FakeBotApi, sender: PtbSender) -> None:
    message_id = await sender.send(card("<b>" + "长" * 5000 + "</b>"))
    stored = fake_api.message(USER, message_id)
    assert len(stored.plain_text) == 4096 and stored.plain_text.endswith("…")
    assert stored.text.endswith("</b>…")


async def test_photo_with_a_caption_that_fits(fake_api: FakeBotApi, sender: PtbSender) -> None:
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


async def test_long_caption_is_split(fake_api: FakeBotApi, sender: PtbSender) -> None:
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


async def test_voice_is_forwarded_with_its_caption(fake_api: FakeBotApi, sender: PtbSender) -> None:
    fake_api.push_voice(USER)
    voice_id = fake_api.pending_updates[-1]["message"]["voice"]["file_id"]
    message_id = await sender.send(card("居民留言", media_kind="voice", media_file_id=voice_id))
    stored = fake_api.message(USER, message_id)
    assert (stored.kind, stored.caption) == ("voice", "居民留言")


async def test_answer_callback(fake_api: FakeBotApi, sender: PtbSender) -> None:
    message_id = await sender.send(card("x", (Button("A", data="a"),)))
    callback_id = fake_api.push_callback(USER, message_id, "a")
    await sender.answer_callback(callback_id, "好" * 300, alert=True)
    call = fake_api.calls_of("answerCallbackQuery")[-1]
    assert call.ok and len(call.params["text"]) == 200 and call.params["show_alert"] is True
    # A second answer is "too old": logged, not raised, since the press was already handled.
    await sender.answer_callback(callback_id, None, alert=False)
    assert fake_api.calls_of("answerCallbackQuery")[-1].ok is False


async def test_answer_callback_server_error_is_retry(
    fake_api: FakeBotApi, sender: PtbSender
) -> None:
    fake_api.fail_next("answerCallbackQuery", 500, "Internal Server Error")
    with pytest.raises(DeliveryRetry):
        await sender.answer_callback("1", None, alert=False)


# ---- run_ptb_polling end to end


class EchoBot:
    """A tiny conversation: echoes texts, offers a button on commands, answers presses."""

    def __init__(self) -> None:
        self.sender: PtbSender | None = None
        self.seen: list[Inbound] = []

    async def on_started(self, sender: PtbSender) -> None:
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


async def test_polling_end_to_end(fake_api: FakeBotApi) -> None:
    echo = EchoBot()
    stop = asyncio.Event()
    polling = asyncio.create_task(
        run_ptb_polling(
            fake_api.token,
            fake_api.base_url,
            echo.handle,
            on_started=echo.on_started,
            stop=stop,
            poll_timeout=5,
        )
    )
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

        for word in ("one", "two", "three"):
            fake_api.push_text(USER, word)
        await fake_api.wait_for("sendMessage", lambda call: call.params["text"] == "echo: three")
    finally:
        stop.set()
        await asyncio.wait_for(polling, timeout=10)

    echoes = [
        call.params["text"] for call in fake_api.calls_of("sendMessage") if call.params["text"]
    ]
    assert echoes[-3:] == ["echo: one", "echo: two", "echo: three"]
    assert [inbound.kind for inbound in echo.seen] == [
        "text",
        "command",
        "button",
        "button",
        "text",
        "text",
        "text",
    ]
    assert fake_api.calls_of("deleteWebhook") and fake_api.calls_of("getMe")
    polls = [call for call in fake_api.calls_of("getUpdates") if call.ok]
    assert all(call.params["allowed_updates"] == ["message", "callback_query"] for call in polls)
    assert fake_api.pending_updates == []  # the final poll confirmed everything handled
    assert all(call.ok for call in fake_api.calls), fake_api.dump_calls()


async def test_polling_stops_promptly_when_idle(fake_api: FakeBotApi) -> None:
    started = asyncio.Event()

    async def on_started(sender: PtbSender) -> None:
        started.set()

    async def handle(inbound: Inbound) -> HandleResult:
        return HandleResult()

    stop = asyncio.Event()
    polling = asyncio.create_task(
        run_ptb_polling(
            fake_api.token,
            fake_api.base_url,
            handle,
            on_started=on_started,
            stop=stop,
            poll_timeout=30,
        )
    )
    await asyncio.wait_for(started.wait(), timeout=10)
    await fake_api.wait_until_polling()
    stop.set()
    await asyncio.wait_for(polling, timeout=5)
