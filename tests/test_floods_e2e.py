"""End to end, on both frameworks: a resident over the per-person limits (issue 10, item 3) is
answered politely, in their language, by the real python-telegram-bot and aiogram stacks: the
hourly submission limit keeps the need on its confirm step, and the per-minute update limit
answers a message and a button press once. The limits come from the settings
(HUIYIN_LIMIT_*), as in production."""

from __future__ import annotations

import json
from collections.abc import Awaitable
from pathlib import Path

import pytest
from sqlmodel import col, select

from domain.i18n import translator
from storage.models import ConversationState, Request
from tests.fake_bot_api import RecordedCall
from tests.test_e2e_telegram import RESIDENT, Start, User, bot_running, chat_of, starts

FLOOD_ANSWER = (
    "You are sending messages faster than I can take them, so I did not act on that one. "
    "Please wait a minute, then send it again; where you were is kept."
)


async def offers(user: User, value: str, action: Awaitable[object]) -> None:
    """Do `action` and wait until the bot has sent the user a button for `value`."""
    mark = len(user.fake.calls)
    await action
    await user.fake.wait_for(
        "sendMessage",
        lambda c: chat_of(c) == user.user_id and value in button_values(c),
        after=mark,
    )


def button_values(call: RecordedCall) -> list[str]:
    markup = call.params.get("reply_markup") or {}
    if isinstance(markup, str):
        markup = json.loads(markup)
    return [
        str(button.get("callback_data", "")).rpartition(":")[2]
        for row in markup.get("inline_keyboard", [])
        for button in row
    ]


@pytest.mark.parametrize("start", starts("workday-1000"))
@pytest.mark.parametrize("language", ["en", "zh-hans"])
async def test_a_resident_over_the_limits_is_answered_politely(
    start: Start, language: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUIYIN_LIMIT_SUBMISSIONS_PER_HOUR", "1")
    monkeypatch.setenv("HUIYIN_LIMIT_UPDATES_PER_MINUTE", "14")
    t = translator("en" if language == "en" else "zh_CN")
    async with bot_running(tmp_path, start) as running:
        fake = running.fake
        resident = User(fake, RESIDENT, language=language)
        await resident.say("/start", "")
        await offers(resident, "QS-JB", resident.tap("yes"))  # counted from here (the account)
        await offers(resident, "QS-JB-TH", resident.tap("QS-JB"))  # 1
        await offers(resident, "QS-JB-TH-01", resident.tap("QS-JB-TH"))  # 2
        await offers(resident, "report", resident.tap("QS-JB-TH-01"))  # 3
        await offers(resident, "living", resident.tap("report"))  # 4
        await offers(resident, "repair", resident.tap("living"))  # 5
        await resident.tap("repair", "")  # 6
        await resident.say("The tap leaks", "The tap leaks")  # 7
        await offers(resident, "report", resident.tap("submit", "HY000001"))  # 8
        await offers(resident, "living", resident.tap("report"))  # 9
        await offers(resident, "repair", resident.tap("living"))  # 10
        await resident.tap("repair", "")  # 11
        await resident.say("The light is out", "The light is out")  # 12
        over_hour = t.ngettext(
            "You have sent {n} request in the last hour, as many as one person can send in "
            "an hour. This one is kept: tap ✅ Submit again after {time}. If it is an "
            "emergency, please call your community office or 110/120.",
            "You have sent {n} requests in the last hour, as many as one person can send in "
            "an hour. This one is kept: tap ✅ Submit again after {time}. If it is an "
            "emergency, please call your community office or 110/120.",
            1,
            time="11:00",
        )
        await resident.tap("submit", over_hour)  # 13
        await resident.say("hello", t._("Please use the buttons above, or send /cancel to stop."))
        # 15: over the minute's limit: the press is answered, and one message says why.
        mark = len(fake.calls)
        answer = await resident.tap("submit", t._(FLOOD_ANSWER))
        callback = next(
            c
            for c in fake.calls[mark:]
            if c.method == "answerCallbackQuery" and c.params.get("text")
        )
        assert callback.params["text"] == t._(FLOOD_ANSWER)[:200]
        assert answer.params["text"] == t._(FLOOD_ANSWER)
        await running.stop()
        async with running.db.session() as session:
            requests = (await session.exec(select(Request).order_by(col(Request.id)))).all()
            assert [r.description for r in requests] == ["The tap leaks"]
            state = await session.get(ConversationState, RESIDENT)
            assert state is not None and state.step == "confirm"
            assert state.data["description"] == "The light is out"
