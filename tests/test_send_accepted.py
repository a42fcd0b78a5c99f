"""What the Bot API accepted is sent, once; a press is answered within its window; a hung request
is cut at the same time on both frameworks.

Both channels (python-telegram-bot and aiogram), as `run_bot` opens them, talk to the loopback
fake of the Bot API; the fake is made to answer oddly (a reply its frameworks cannot read), to
fail (502), or to hang.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
from sqlmodel import select

from bot.channels.telegram_aiogram import open_aiogram_app
from bot.channels.telegram_common import BotApiApp, answer_press
from bot.channels.telegram_ptb import open_ptb_app
from domain.clock import ManualClock
from domain.messages import DeliveryRetry, HandleResult, Inbound, Outbound
from domain.outbox import enqueue
from schedules.outbox import OutboxSender
from storage.database import Database
from storage.models import OutboxMessage
from tests.fake_bot_api import FakeBotApi

CHAT = 3001
FRAMEWORKS = ("ptb", "aiogram")
Method = Callable[[dict[str, Any]], Awaitable[Any]]


async def no_updates(_inbound: Inbound) -> HandleResult:
    return HandleResult()


def opened(
    framework: str, fake: FakeBotApi, request_timeout: float = 10.0
) -> AbstractAsyncContextManager[BotApiApp[Any]]:
    opener = open_ptb_app if framework == "ptb" else open_aiogram_app
    return opener(fake.token, fake.base_url, no_updates, request_timeout=request_timeout)


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi() as api:
        api.known_chat(CHAT)
        yield api


def answer_oddly(fake: FakeBotApi, method: str, mangle: Callable[[Any], Any]) -> None:
    """The fake does what `method` asks and says ok, with a `result` of another shape."""
    original: Method = fake._methods[method]

    async def odd(params: dict[str, Any]) -> Any:
        return mangle(await original(params))

    fake._methods[method] = odd


def contact_of_another_shape(result: dict[str, Any]) -> dict[str, Any]:
    contact = result["contact"]
    return {**result, "contact": {"phone": contact["phone_number"], "name": 7}}


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_an_accepted_send_with_an_unreadable_reply_is_sent_once(
    fake: FakeBotApi, framework: str, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The 📞 card: Telegram took it, the reply's contact is of a shape the framework cannot
    read. The row is sent, and never sent again."""
    answer_oddly(fake, "sendcontact", contact_of_another_shape)
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/odd.db")
    await db.upgrade()
    clock = ManualClock()
    async with db.transaction() as session:
        enqueue(
            session,
            Outbound(chat_id=CHAT, text="", contact_phone="13912345678", contact_name="陈淑芬"),
            clock.now(),
        )
        enqueue(session, Outbound(chat_id=CHAT, text="after the card"), clock.now())
    async with opened(framework, fake) as app:
        outbox = OutboxSender(db, app.sender, clock)
        assert await outbox.deliver_due() == 2
        assert await outbox.deliver_due() == 0
    assert len(fake.calls_of("sendContact")) == 1
    assert [c.params["text"] for c in fake.calls_of("sendMessage")] == ["after the card"]
    async with db.session() as session:
        rows = (await session.exec(select(OutboxMessage).order_by(OutboxMessage.id))).all()
    assert [(row.status, row.attempts) for row in rows] == [("sent", 1), ("sent", 1)]
    # The message id is read from the raw reply all the same.
    assert rows[0].sent_message_id == fake.messages(CHAT)[0].message_id
    assert "accepted by the Bot API, but its answer could not be read" in caplog.text
    await db.dispose()


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_a_refusal_is_still_a_refusal(fake: FakeBotApi, framework: str) -> None:
    """Only an ok answer counts as sent: a 502 is retried, not taken for a send."""
    fake.fail_next("sendMessage", 502, "Bad Gateway")
    async with opened(framework, fake) as app:
        with pytest.raises(DeliveryRetry):
            await app.sender.send(Outbound(chat_id=CHAT, text="hello"))
        assert await app.sender.send(Outbound(chat_id=CHAT, text="hello")) > 0


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_a_failed_answer_to_a_press_is_tried_again(fake: FakeBotApi, framework: str) -> None:
    async with opened(framework, fake) as app:
        message_id = await app.sender.send(Outbound(chat_id=CHAT, text="card"))
        callback_id = fake.push_callback(CHAT, message_id, "p:1")
        fake.fail_next("answerCallbackQuery", 502, "Bad Gateway", times=2)
        answered = await answer_press(
            app.sender, callback_id, HandleResult(callback_answer="Accepted")
        )
    assert answered
    calls = fake.calls_of("answerCallbackQuery")
    assert [call.ok for call in calls] == [False, False, True]
    assert calls[-1].params["text"] == "Accepted"


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_answering_a_press_stops_when_its_window_is_over(
    fake: FakeBotApi, framework: str
) -> None:
    """The window is counted on an injected clock: each pause moves it on, and once the next
    pause would pass the window the answer is given up (it could no longer be shown)."""
    now = 0.0
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        nonlocal now
        pauses.append(seconds)
        now += seconds

    async with opened(framework, fake) as app:
        message_id = await app.sender.send(Outbound(chat_id=CHAT, text="card"))
        callback_id = fake.push_callback(CHAT, message_id, "p:1")
        fake.fail_next("answerCallbackQuery", 502, "Bad Gateway", times=100)
        answered = await answer_press(
            app.sender, callback_id, HandleResult(), monotonic=lambda: now, sleep=sleep
        )
    assert not answered
    assert 0 < sum(pauses) < 15.0
    assert len(fake.calls_of("answerCallbackQuery")) == len(pauses) + 1


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_a_hung_request_is_cut_at_the_timeout(fake: FakeBotApi, framework: str) -> None:
    """Both frameworks cut a request the server never answers at the configured timeout and
    report it as a failure to retry, so the outbox moves on (and retries later)."""
    hung = asyncio.Event()
    original: Method = fake._methods["sendmessage"]

    async def hang(params: dict[str, Any]) -> Any:
        if params.get("text") == "hang":
            hung.set()
            await asyncio.Event().wait()
        return await original(params)

    fake._methods["sendmessage"] = hang
    async with opened(framework, fake, request_timeout=0.5) as app:
        # The guard is generous; the request itself must end at its own 0.5 s timeout.
        with pytest.raises(DeliveryRetry):
            await asyncio.wait_for(app.sender.send(Outbound(chat_id=CHAT, text="hang")), 20)
        assert hung.is_set()
        assert await app.sender.send(Outbound(chat_id=CHAT, text="next")) > 0
