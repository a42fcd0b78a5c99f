"""Tests for the loopback Bot API fake: its envelopes, refusals, update queue and helpers.

Every request goes through a plain aiohttp client, so these tests pin down what any framework
pointed at the fake will see.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.fake_bot_api import (
    BUTTON_DATA_INVALID,
    BUTTON_URL_INVALID,
    CAPTION_TOO_LONG,
    CHAT_NOT_FOUND,
    MARKUP_UNPARSABLE,
    MESSAGE_TEXT_EMPTY,
    MESSAGE_TO_EDIT_NOT_FOUND,
    MESSAGE_TOO_LONG,
    NOT_MODIFIED,
    POLL_CONFLICT,
    QUERY_TOO_OLD,
    TOO_MANY_BUTTONS,
    FakeBotApi,
    started_fake,
)

USER = 1001
OTHER_USER = 1002


@pytest.fixture
async def fake_api() -> AsyncIterator[FakeBotApi]:
    fake = await started_fake()
    yield fake
    await fake.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


class Api:
    """Plain HTTP calls against the fake, in the encodings real clients use."""

    def __init__(self, fake: FakeBotApi, session: aiohttp.ClientSession) -> None:
        self.fake = fake
        self.session = session

    def url(self, method: str, token: str | None = None) -> str:
        return f"{self.fake.base_url}/bot{token or self.fake.token}/{method}"

    async def json(self, method: str, **params: Any) -> tuple[int, dict[str, Any]]:
        async with self.session.post(self.url(method), json=params) as response:
            return response.status, await response.json()

    async def form(self, method: str, **params: Any) -> tuple[int, dict[str, Any]]:
        encoded = {
            key: value if isinstance(value, str) else json.dumps(value)
            for key, value in params.items()
        }
        async with self.session.post(self.url(method), data=encoded) as response:
            return response.status, await response.json()

    async def query(self, method: str, **params: str) -> tuple[int, dict[str, Any]]:
        async with self.session.get(self.url(method), params=params) as response:
            return response.status, await response.json()

    async def send(self, text: str, **params: Any) -> tuple[int, dict[str, Any]]:
        return await self.json("sendMessage", chat_id=USER, text=text, **params)


@pytest.fixture
def api(fake_api: FakeBotApi, session: aiohttp.ClientSession) -> Api:
    fake_api.known_chat(USER)
    return Api(fake_api, session)


def refused(outcome: tuple[int, dict[str, Any]], description: str, status: int = 400) -> bool:
    code, body = outcome
    assert body["ok"] is False, body
    assert code == status == body["error_code"], body
    assert body["description"] == description, body
    return True


def inline(*rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"inline_keyboard": list(rows)}


# ---- envelope and transport


async def test_get_me_returns_the_bot_user(api: Api) -> None:
    status, body = await api.query("getMe")
    assert status == 200 and body["ok"] is True
    me = body["result"]
    assert me["id"] == 123456789 and me["is_bot"] is True
    assert me["username"] == "huiyin_test_bot" and me["first_name"]
    assert "can_join_groups" in me


async def test_method_names_are_case_insensitive_and_recorded_canonically(api: Api) -> None:
    status, _ = await api.query("GETME")
    assert status == 200
    assert api.fake.calls[-1].method == "getMe"


async def test_wrong_token_is_unauthorized(api: Api) -> None:
    async with api.session.get(api.url("getMe", token="1:wrong")) as response:
        body = await response.json()
        assert response.status == 401
    assert body == {"ok": False, "error_code": 401, "description": "Unauthorized"}


async def test_unknown_method_is_not_found(api: Api) -> None:
    outcome = await api.json("sendDice", chat_id=USER)
    assert refused(outcome, "Not Found", status=404)


async def test_form_values_are_json_decoded_but_text_stays_text(api: Api) -> None:
    keyboard = inline([{"text": "A", "callback_data": "a"}])
    status, body = await api.form(
        "sendMessage", chat_id=str(USER), text="123", reply_markup=keyboard
    )
    assert status == 200, body
    call = api.fake.calls[-1]
    assert call.params == {"chat_id": USER, "text": "123", "reply_markup": keyboard}
    assert body["result"]["reply_markup"] == keyboard


async def test_query_string_parameters_are_accepted(api: Api) -> None:
    status, body = await api.query("sendMessage", chat_id=str(USER), text="via query")
    assert status == 200 and body["result"]["text"] == "via query"


async def test_json_body_with_markup_as_string_is_decoded(api: Api) -> None:
    keyboard = inline([{"text": "A", "callback_data": "a"}])
    status, _ = await api.send("hi", reply_markup=json.dumps(keyboard))
    assert status == 200
    assert api.fake.calls[-1].params["reply_markup"] == keyboard


async def test_multipart_upload_creates_a_file(api: Api) -> None:
    form = aiohttp.FormData()
    form.add_field("chat_id", str(USER))
    form.add_field("caption", "a picture")
    form.add_field("photo", b"\xff\xd8jpeg", filename="p.jpg", content_type="image/jpeg")
    async with api.session.post(api.url("sendPhoto"), data=form) as response:
        body = await response.json()
    assert body["ok"] is True, body
    file_id = body["result"]["photo"][0]["file_id"]
    status, file_body = await api.json("getFile", file_id=file_id)
    assert status == 200
    download = f"{api.fake.base_url}/file/bot{api.fake.token}/{file_body['result']['file_path']}"
    async with api.session.get(download) as response:
        assert await response.read() == b"\xff\xd8jpeg"


async def test_attach_references_from_aiogram_are_resolved(api: Api) -> None:
    form = aiohttp.FormData()
    form.add_field("chat_id", str(USER))
    form.add_field("voice", "attach://upload1")
    form.add_field("upload1", b"OggS", filename="v.ogg", content_type="audio/ogg")
    async with api.session.post(api.url("sendVoice"), data=form) as response:
        body = await response.json()
    assert body["ok"] is True, body
    assert api.fake.messages(USER)[-1].kind == "voice"


# ---- text refusals


async def test_unknown_chat_is_refused(api: Api) -> None:
    assert refused(await api.json("sendMessage", chat_id=99999, text="hi"), CHAT_NOT_FOUND)


async def test_chat_becomes_known_from_an_update(api: Api) -> None:
    api.fake.push_text(OTHER_USER, "hello")
    status, _ = await api.json("sendMessage", chat_id=OTHER_USER, text="hi")
    assert status == 200


async def test_text_limit_is_4096_characters(api: Api) -> None:
    assert (await api.send("字" * 4096))[0] == 200
    assert refused(await api.send("字" * 4097), MESSAGE_TOO_LONG)


async def test_text_limit_counts_after_entity_parsing(api: Api) -> None:
    tagged = "<b>" + "x" * 4095 + "</b>&amp;"
    assert (await api.send(tagged, parse_mode="HTML"))[0] == 200
    assert refused(await api.send("<i>" + "x" * 4097 + "</i>", parse_mode="HTML"), MESSAGE_TOO_LONG)


async def test_empty_text_is_refused(api: Api) -> None:
    assert refused(await api.send(""), MESSAGE_TEXT_EMPTY)
    assert refused(await api.send("   \n"), MESSAGE_TEXT_EMPTY)
    assert refused(await api.send("<b></b>", parse_mode="HTML"), MESSAGE_TEXT_EMPTY)
    assert refused(await api.json("sendMessage", chat_id=USER), MESSAGE_TEXT_EMPTY)


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("<p>x</p>", 'Unsupported start tag "p" at byte offset 0'),
        ("a < b", 'Unsupported start tag "" at byte offset 2'),
        ("<b>x", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<b>x</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("Tom & Jerry", "Can't find end of the character entity starting at byte offset 4"),
        ("&nbsp;", "Can't find end of the character entity starting at byte offset 0"),
        ("<a>link</a>", 'Can\'t find href in the tag "a" at byte offset 0'),
        ("<br>", 'Unsupported start tag "br" at byte offset 0'),
        ("你<b", "Unclosed start tag at byte offset 3"),
    ],
)
async def test_malformed_html_is_refused(api: Api, text: str, detail: str) -> None:
    outcome = await api.send(text, parse_mode="HTML")
    assert refused(outcome, f"Bad Request: can't parse entities: {detail}")


async def test_well_formed_html_gives_plain_text_and_entities(api: Api) -> None:
    text = (
        '<b>粗</b> <i>i</i> <a href="https://example.org/?a=1&amp;b=2">link</a> '
        "<code>&lt;x&gt;</code> <tg-spoiler>s</tg-spoiler> <blockquote>q</blockquote> &#128512;"
    )
    status, body = await api.send(text, parse_mode="HTML")
    assert status == 200, body
    result = body["result"]
    assert result["text"] == "粗 i link <x> s q 😀"
    kinds = [(entity["type"], entity["offset"], entity["length"]) for entity in result["entities"]]
    assert kinds == [
        ("bold", 0, 1),
        ("italic", 2, 1),
        ("text_link", 4, 4),
        ("code", 9, 3),
        ("spoiler", 13, 1),
        ("blockquote", 15, 1),
    ]
    assert result["entities"][2]["url"] == "https://example.org/?a=1&b=2"
    assert api.fake.messages(USER)[-1].text == text


async def test_without_parse_mode_html_is_not_checked(api: Api) -> None:
    status, body = await api.send("a < b & <p>")
    assert status == 200 and body["result"]["text"] == "a < b & <p>"


# ---- reply markup refusals


async def test_callback_data_limits(api: Api) -> None:
    ok_data = "数" * 21  # 63 bytes
    status, _ = await api.send("x", reply_markup=inline([{"text": "A", "callback_data": ok_data}]))
    assert status == 200
    too_long = inline([{"text": "A", "callback_data": "x" * 65}])
    assert refused(await api.send("x", reply_markup=too_long), BUTTON_DATA_INVALID)
    empty = inline([{"text": "A", "callback_data": ""}])
    assert refused(await api.send("x", reply_markup=empty), BUTTON_DATA_INVALID)


@pytest.mark.parametrize(
    "markup",
    [
        "not json",
        "[1, 2]",
        {"inline_keyboard": [{"text": "A", "callback_data": "a"}]},
        {"inline_keyboard": "rows"},
        inline([{"callback_data": "a"}]),
        inline([{"text": "A"}]),
        inline([{"text": "A", "callback_data": "a", "url": "https://example.org"}]),
        inline(["A"]),
        {"keyboard": [{"text": "A"}]},
        {"something": True},
    ],
)
async def test_malformed_markup_is_refused(api: Api, markup: Any) -> None:
    encoded = markup if isinstance(markup, str) else json.dumps(markup)
    outcome = await api.form("sendMessage", chat_id=str(USER), text="x", reply_markup=encoded)
    assert refused(outcome, MARKUP_UNPARSABLE)


async def test_reply_keyboards_and_removal_are_accepted(api: Api) -> None:
    contact_keyboard = {
        "keyboard": [[{"text": "Share", "request_contact": True}]],
        "resize_keyboard": True,
        "one_time_keyboard": True,
    }
    status, body = await api.send("x", reply_markup=contact_keyboard)
    assert status == 200
    assert "reply_markup" not in body["result"]  # only inline keyboards belong to a message
    assert api.fake.messages(USER)[-1].reply_markup == contact_keyboard
    assert (await api.send("y", reply_markup={"remove_keyboard": True}))[0] == 200


async def test_too_many_inline_buttons(api: Api) -> None:
    def button(n: int) -> dict[str, str]:
        return {"text": str(n), "callback_data": str(n)}

    row_of_nine = inline([button(n) for n in range(9)])
    assert refused(await api.send("x", reply_markup=row_of_nine), TOO_MANY_BUTTONS)
    rows = [[button(r * 8 + c) for c in range(8)] for r in range(13)]  # 104 buttons
    assert refused(await api.send("x", reply_markup=inline(*rows)), TOO_MANY_BUTTONS)
    assert (await api.send("x", reply_markup=inline(*rows[:12], [button(1)] * 4)))[0] == 200


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("https://example.org/a", True),
        ("http://example.org", True),
        ("tg://user?id=1001", True),
        ("tel:+8613800000000", False),
        ("javascript:alert(1)", False),
        ("example.org", False),
    ],
)
async def test_url_button_schemes(api: Api, url: str, accepted: bool) -> None:
    outcome = await api.send("x", reply_markup=inline([{"text": "Go", "url": url}]))
    if accepted:
        assert outcome[0] == 200
    else:
        assert refused(outcome, BUTTON_URL_INVALID)


# ---- edits


async def _sent_id(api: Api, text: str, **params: Any) -> int:
    status, body = await api.send(text, **params)
    assert status == 200, body
    return int(body["result"]["message_id"])


async def test_edit_changes_the_stored_message(api: Api) -> None:
    keyboard = inline([{"text": "A", "callback_data": "a"}])
    message_id = await _sent_id(api, "before", reply_markup=keyboard)
    status, body = await api.json(
        "editMessageText",
        chat_id=USER,
        message_id=message_id,
        text="<b>after</b>",
        parse_mode="HTML",
        reply_markup=keyboard,
    )
    assert status == 200 and body["result"]["text"] == "after"
    assert body["result"]["edit_date"] > 0
    stored = api.fake.message(USER, message_id)
    assert (stored.text, stored.edited, stored.reply_markup) == ("<b>after</b>", True, keyboard)


async def test_edit_without_markup_removes_the_buttons(api: Api) -> None:
    keyboard = inline([{"text": "A", "callback_data": "a"}])
    message_id = await _sent_id(api, "same", reply_markup=keyboard)
    status, _ = await api.json("editMessageText", chat_id=USER, message_id=message_id, text="same")
    assert status == 200
    assert api.fake.message(USER, message_id).reply_markup is None


async def test_edit_with_same_content_is_not_modified(api: Api) -> None:
    keyboard = inline([{"text": "A", "callback_data": "a"}])
    message_id = await _sent_id(api, "<b>x</b>", parse_mode="HTML", reply_markup=keyboard)
    outcome = await api.json(
        "editMessageText",
        chat_id=USER,
        message_id=message_id,
        text="<strong>x</strong>",
        parse_mode="HTML",
        reply_markup=keyboard,
    )
    assert refused(outcome, NOT_MODIFIED)
    assert NOT_MODIFIED.startswith("Bad Request: message is not modified: specified new")


async def test_edit_of_unknown_message_is_refused(api: Api) -> None:
    outcome = await api.json("editMessageText", chat_id=USER, message_id=777, text="x")
    assert refused(outcome, MESSAGE_TO_EDIT_NOT_FOUND)


async def test_edit_with_a_reply_keyboard_is_refused(api: Api) -> None:
    message_id = await _sent_id(api, "x")
    outcome = await api.json(
        "editMessageText",
        chat_id=USER,
        message_id=message_id,
        text="y",
        reply_markup={"keyboard": [["A"]]},
    )
    assert refused(outcome, "Bad Request: inline keyboard expected")


async def test_edit_reply_markup(api: Api) -> None:
    message_id = await _sent_id(api, "x")
    keyboard = inline([{"text": "A", "callback_data": "a"}])
    status, _ = await api.json(
        "editMessageReplyMarkup", chat_id=USER, message_id=message_id, reply_markup=keyboard
    )
    assert status == 200
    outcome = await api.json(
        "editMessageReplyMarkup", chat_id=USER, message_id=message_id, reply_markup=keyboard
    )
    assert refused(outcome, NOT_MODIFIED)


# ---- media, contacts, commands, files


async def test_caption_limit(api: Api) -> None:
    api.fake.push_photo(USER)
    photo_id = api.fake.pending_updates[-1]["message"]["photo"][-1]["file_id"]
    ok = await api.json("sendPhoto", chat_id=USER, photo=photo_id, caption="c" * 1024)
    assert ok[0] == 200 and ok[1]["result"]["caption"] == "c" * 1024
    outcome = await api.json("sendPhoto", chat_id=USER, photo=photo_id, caption="c" * 1025)
    assert refused(outcome, CAPTION_TOO_LONG)


async def test_unknown_or_mismatched_file_id_is_refused(api: Api) -> None:
    api.fake.push_photo(USER)
    photo_id = api.fake.pending_updates[-1]["message"]["photo"][-1]["file_id"]
    wrong = "Bad Request: wrong file identifier/HTTP URL specified"
    assert refused(await api.json("sendPhoto", chat_id=USER, photo="nope"), wrong)
    assert refused(await api.json("sendVoice", chat_id=USER, voice=photo_id), wrong)


async def test_send_contact_and_chat_action(api: Api) -> None:
    status, body = await api.json(
        "sendContact", chat_id=USER, phone_number="+8613800000000", first_name="网格员"
    )
    assert status == 200 and body["result"]["contact"]["phone_number"] == "+8613800000000"
    assert api.fake.messages(USER)[-1].kind == "contact"
    assert (await api.json("sendChatAction", chat_id=USER, action="typing"))[0] == 200
    outcome = await api.json("sendChatAction", chat_id=USER, action="dancing")
    assert refused(outcome, "Bad Request: wrong parameter action in request")


async def test_commands_are_checked_and_stored(api: Api) -> None:
    commands = [{"command": "start", "description": "开始"}]
    assert (await api.form("setMyCommands", commands=commands))[0] == 200
    status, body = await api.json("getMyCommands")
    assert status == 200 and body["result"] == commands
    bad = [{"command": "Start", "description": "x"}]
    assert refused(
        await api.json("setMyCommands", commands=bad), "Bad Request: BOT_COMMAND_INVALID"
    )
    empty = [{"command": "help", "description": ""}]
    outcome = await api.json("setMyCommands", commands=empty)
    assert refused(outcome, "Bad Request: command description must be non-empty")


async def test_get_file_of_unknown_id(api: Api) -> None:
    assert refused(await api.json("getFile", file_id="nope"), "Bad Request: invalid file_id")


# ---- callbacks


async def test_callback_answers(api: Api) -> None:
    message_id = await _sent_id(
        api, "x", reply_markup=inline([{"text": "A", "callback_data": "a"}])
    )
    callback_id = api.fake.push_callback(USER, message_id, "a")
    too_long = await api.json("answerCallbackQuery", callback_query_id=callback_id, text="x" * 201)
    assert refused(too_long, "Bad Request: MESSAGE_TOO_LONG")
    first = await api.json("answerCallbackQuery", callback_query_id=callback_id, text="x" * 200)
    assert first == (200, {"ok": True, "result": True})
    again = await api.json("answerCallbackQuery", callback_query_id=callback_id)
    assert refused(again, QUERY_TOO_OLD)
    assert refused(await api.json("answerCallbackQuery", callback_query_id="42"), QUERY_TOO_OLD)


async def test_callback_carries_the_stored_message(api: Api) -> None:
    keyboard = inline([{"text": "A", "callback_data": "a"}])
    message_id = await _sent_id(api, "<b>card</b>", parse_mode="HTML", reply_markup=keyboard)
    api.fake.push_callback(USER, message_id, "a", language_code="en")
    query = api.fake.pending_updates[-1]["callback_query"]
    assert query["data"] == "a" and query["chat_instance"]
    assert query["from"]["id"] == USER and query["from"]["language_code"] == "en"
    message = query["message"]
    assert message["message_id"] == message_id
    assert message["from"]["is_bot"] is True
    assert message["chat"]["id"] == USER and message["date"] > 0
    assert message["text"] == "card" and message["entities"][0]["type"] == "bold"
    assert message["reply_markup"] == keyboard


async def test_callback_on_a_message_never_sent_is_a_test_error(fake_api: FakeBotApi) -> None:
    with pytest.raises(LookupError):
        fake_api.push_callback(USER, 5, "a")


# ---- update queue


async def test_pushed_updates_have_consecutive_ids_and_per_chat_message_ids(
    fake_api: FakeBotApi,
) -> None:
    first = fake_api.push_text(USER, "a")
    second = fake_api.push_text(OTHER_USER, "b")
    third = fake_api.push_text(USER, "c")
    assert (second, third) == (first + 1, first + 2)
    updates = fake_api.pending_updates
    assert [u["message"]["message_id"] for u in updates] == [1, 1, 2]
    assert updates[0]["message"]["chat"] == {"id": USER, "type": "private", "first_name": "用户"}
    assert updates[0]["message"]["from"]["language_code"] == "zh-hans"


async def test_push_shapes(fake_api: FakeBotApi) -> None:
    fake_api.push_text(USER, "/start@huiyin_test_bot go")
    fake_api.push_contact(USER, "+8613800000000")
    fake_api.push_contact(USER, "+8613900000000", own=False)
    fake_api.push_photo(USER, caption="看")
    fake_api.push_voice(USER, duration=7)
    fake_api.push_sticker(USER)
    fake_api.push_location(USER, 31.23, 121.47)
    fake_api.push_text(USER, "hi", chat_id=-100500, chat_type="supergroup")
    messages = [update["message"] for update in fake_api.pending_updates]
    assert messages[0]["entities"] == [{"type": "bot_command", "offset": 0, "length": 22}]
    assert messages[1]["contact"]["user_id"] == USER
    assert "user_id" not in messages[2]["contact"]
    assert len(messages[3]["photo"]) == 2 and messages[3]["caption"] == "看"
    assert {"file_id", "file_unique_id", "width", "height"} <= messages[3]["photo"][0].keys()
    assert messages[4]["voice"]["duration"] == 7
    sticker = messages[5]["sticker"]
    assert sticker["type"] == "regular" and sticker["is_animated"] is False
    assert sticker["is_video"] is False and sticker["width"] and sticker["height"]
    assert messages[6]["location"] == {"latitude": 31.23, "longitude": 121.47}
    assert messages[7]["chat"]["type"] == "supergroup" and messages[7]["chat"]["title"]
    assert "entities" not in messages[7]


async def test_offset_confirms_and_limit_caps(api: Api) -> None:
    ids = [api.fake.push_text(USER, str(n)) for n in range(5)]
    status, body = await api.json("getUpdates", limit=2)
    assert status == 200 and [u["update_id"] for u in body["result"]] == ids[:2]
    _, body = await api.json("getUpdates")
    assert [u["update_id"] for u in body["result"]] == ids  # nothing confirmed yet
    _, body = await api.json("getUpdates", offset=ids[3])
    assert [u["update_id"] for u in body["result"]] == ids[3:]
    _, body = await api.json("getUpdates", offset=ids[-1] + 1)
    assert body["result"] == []
    assert api.fake.pending_updates == []


async def test_negative_offset_keeps_the_last_updates(api: Api) -> None:
    ids = [api.fake.push_text(USER, str(n)) for n in range(3)]
    _, body = await api.json("getUpdates", offset=-1)
    assert [u["update_id"] for u in body["result"]] == ids[-1:]


async def test_long_poll_returns_as_soon_as_an_update_arrives(api: Api) -> None:
    poll = asyncio.create_task(api.json("getUpdates", timeout=30))
    await api.fake.wait_until_polling()
    update_id = api.fake.push_text(USER, "wake up")
    status, body = await asyncio.wait_for(poll, timeout=5)
    assert status == 200 and [u["update_id"] for u in body["result"]] == [update_id]


async def test_long_poll_times_out_empty(api: Api) -> None:
    status, body = await api.json("getUpdates", timeout=1)
    assert (status, body) == (200, {"ok": True, "result": []})


async def test_a_second_poller_terminates_the_first(api: Api) -> None:
    first = asyncio.create_task(api.json("getUpdates", timeout=30))
    second = asyncio.create_task(api.json("getUpdates", timeout=30))
    done, _ = await asyncio.wait({first, second}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
    assert len(done) == 1
    finished = done.pop()
    assert refused(finished.result(), POLL_CONFLICT, status=409)
    api.fake.push_text(USER, "x")
    remaining = second if finished is first else first
    status, body = await asyncio.wait_for(remaining, timeout=5)
    assert status == 200 and len(body["result"]) == 1


async def test_allowed_updates_filters_delivery(api: Api) -> None:
    keyboard = inline([{"text": "A", "callback_data": "a"}])
    message_id = await _sent_id(api, "x", reply_markup=keyboard)
    api.fake.push_callback(USER, message_id, "a")
    text_id = api.fake.push_text(USER, "t")
    _, body = await api.form("getUpdates", allowed_updates=["message"])
    assert [u["update_id"] for u in body["result"]] == [text_id]


# ---- failure injection and waiting


async def test_fail_next_injects_429_with_retry_after(api: Api) -> None:
    api.fake.fail_next(
        "sendmessage", 429, "Too Many Requests: retry after 7", retry_after=7, times=2
    )
    for _ in range(2):
        status, body = await api.send("x")
        assert status == 429
        assert body == {
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 7",
            "parameters": {"retry_after": 7},
        }
    assert (await api.send("x"))[0] == 200
    assert [call.ok for call in api.fake.calls_of("sendMessage")] == [False, False, True]


async def test_fail_next_other_statuses(api: Api) -> None:
    api.fake.fail_next("sendMessage", 403, "Forbidden: bot was blocked by the user")
    assert refused(await api.send("x"), "Forbidden: bot was blocked by the user", status=403)
    api.fake.fail_next("sendMessage", 500, "Internal Server Error")
    assert refused(await api.send("x"), "Internal Server Error", status=500)


async def test_wait_for_finds_a_later_call(api: Api) -> None:
    waiter = asyncio.create_task(
        api.fake.wait_for("sendMessage", lambda call: call.params["text"] == "second")
    )
    await api.send("first")
    await api.send("second")
    call = await asyncio.wait_for(waiter, timeout=5)
    assert call.ok and call.params["text"] == "second"


async def test_wait_for_respects_after(api: Api) -> None:
    await api.send("old")
    mark = len(api.fake.calls)
    waiter = asyncio.create_task(api.fake.wait_for("sendMessage", after=mark))
    await api.send("new")
    assert (await asyncio.wait_for(waiter, timeout=5)).params["text"] == "new"


async def test_wait_for_times_out_with_a_readable_dump(api: Api) -> None:
    await api.send("only this")
    with pytest.raises(AssertionError) as raised:
        await api.fake.wait_for("editMessageText", timeout=0.05)
    assert "no matching editMessageText" in str(raised.value)
    assert "sendMessage ok" in str(raised.value) and "only this" in str(raised.value)


async def test_binds_only_loopback(fake_api: FakeBotApi) -> None:
    assert fake_api.base_url.startswith("http://127.0.0.1:")
