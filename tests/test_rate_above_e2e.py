"""Rating the level above through the real python-telegram-bot and aiogram stacks: a grid member
passes a need up, the community's coordinator resolves it, and the grid member gets the
one-tap question, taps it, and adds a line; a second tap is refused."""

from __future__ import annotations

import pytest
from sqlmodel import select

from storage.models import UpwardRating
from tests.test_e2e_telegram import RESIDENT, WANG, Running, User, starts
from tests.test_e2e_telegram import running as running  # the fixture, re-exported
from tests.test_reach_e2e import XU, report_repair, staff


def rating_button(user: User, data: str) -> int:
    """The message carrying the rating button `data` (not a step button, so found whole)."""
    for message in reversed(user.fake.messages(user.user_id)):
        for row in (message.inline_markup or {}).get("inline_keyboard", []):
            if any(button.get("callback_data") == data for button in row):
                return message.message_id
    raise AssertionError(f"no button {data!r} in chat {user.user_id}")


@pytest.mark.parametrize("running", starts("workday-1000"), indirect=True)
async def test_the_grid_member_rates_how_the_community_handled_what_they_passed_up(
    running: Running,
) -> None:
    fake = running.fake
    wang, xu, resident = User(fake, WANG), User(fake, XU), User(fake, RESIDENT)
    await wang.say("/start", "You are registered as")
    await xu.say("/start", "You are registered as")
    await report_repair(resident)
    mark = len(fake.calls)
    await resident.tap("submit", "王建华 (grid member) will handle it")
    await wang.expect("New task", after=mark)

    await wang.tap("t:decline", "why can this level not meet the need?")
    mark = len(fake.calls)
    await wang.say("The riser pipe is broken", "was passed to 徐国庆")
    await xu.expect("Passed on by 王建华", after=mark)
    await xu.tap("t:accept", "Being handled", method="editMessageText")
    await xu.tap("t:resolve", "what was done?")
    mark = len(fake.calls)
    await xu.say("A plumber replaced the riser", "is marked resolved")

    question = await wang.expect("which your unit passed up, was resolved by", after=mark)
    assert question.params["text"].startswith(
        "⭐ <b>HY000001</b> (Home repairs (water, power)), which your unit passed up, was "
        "resolved by Tianhe Community. How did Tianhe Community handle it?"
    )
    assert not any(
        "which your unit passed up" in str(c.params.get("text"))
        for c in fake.calls[mark:]
        if c.params.get("chat_id") in (XU, RESIDENT)
    )

    message_id = rating_button(wang, "ra:1:s")
    await wang.press(message_id, "ra:1:s", "Would you like to add a line or a voice note")
    await wang.say("Quick and careful", "Noted on the request's timeline")
    mark = len(fake.calls)
    answer = await wang.press(message_id, "ra:1:u")
    assert answer.params.get("text") == "Thank you, this has already been answered."

    async with running.db.session() as session:
        (row,) = (await session.exec(select(UpwardRating))).all()
    assert (row.state, row.rating, row.comment, row.how) == (
        "rated",
        "satisfied",
        "Quick and careful",
        "pass_up",
    )
    assert row.rater_staff_id == (await staff(running, WANG)).id
    assert (row.rater_unit_code, row.rated_unit_code) == ("QS-JB-TH-01", "QS-JB-TH")
