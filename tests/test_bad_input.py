"""What people send that the bot did not ask for: too much text, stickers, unknown commands,
stale or forged buttons, group chats, and anything before /start."""

from __future__ import annotations

import pytest
from sqlmodel import select

from storage.models import Account, ConversationState, Request
from tests.harness import Harness
from tests.test_conversation_onboarding import LANGUAGES, MENU, choice, choose, register, tr, values

RESIDENT = 900001


@pytest.fixture(params=LANGUAGES)
def lang(request: pytest.FixtureRequest, harness: Harness) -> str:
    harness.languages[RESIDENT] = request.param
    return request.param


async def at_describe_step(harness: Harness, *, registered: bool = False) -> ConversationState:
    if not registered:
        await register(harness, RESIDENT)
    await harness.press(RESIDENT, "m:report")
    await choose(harness, RESIDENT, "living")
    await choose(harness, RESIDENT, "repair")
    state = await conversation_state(harness)
    assert state is not None and state.step == "describe"
    return state


async def conversation_state(harness: Harness) -> ConversationState | None:
    async with harness.db.session() as session:
        return await session.get(ConversationState, RESIDENT)


async def no_requests(harness: Harness) -> bool:
    async with harness.db.session() as session:
        return (await session.exec(select(Request))).first() is None


async def test_over_long_description_is_refused_and_the_step_kept(
    harness: Harness, lang: str
) -> None:
    t = tr(harness, RESIDENT)
    before = await at_describe_step(harness)
    (refusal,) = await harness.say(RESIDENT, "漏" * 1001)
    assert refusal.text == t._(
        "That is {length} characters; please keep it under {limit}. "
        "You can also send a voice message instead.",
        length=1001,
        limit=1000,
    )
    after = await conversation_state(harness)
    assert after is not None and (after.step, after.nonce) == ("describe", before.nonce)

    (confirm,) = await harness.say(RESIDENT, "漏" * 1000)  # the limit itself is fine
    assert values(confirm) == ["submit", "edit", "cancel"]


async def test_unknown_command(harness: Harness, lang: str) -> None:
    t = tr(harness, RESIDENT)
    (reply,) = await harness.say(RESIDENT, "/frobnicate now")
    assert reply.text == t._(
        "Sorry, I don't know the command /{name}. Send /help to see what I can do.",
        name="frobnicate",
    )


async def test_sticker_at_the_menu_is_answered_with_the_menu(harness: Harness, lang: str) -> None:
    t = tr(harness, RESIDENT)
    await register(harness, RESIDENT)
    (reply,) = await harness.send(RESIDENT, "unsupported")
    assert reply.text == t._(
        "I can't read stickers or files here, sorry. Please use the buttons below."
    )
    assert values(reply) == MENU


async def test_sticker_in_the_describe_step_keeps_the_step(harness: Harness, lang: str) -> None:
    t = tr(harness, RESIDENT)
    before = await at_describe_step(harness)
    (reply,) = await harness.send(RESIDENT, "unsupported")
    assert reply.text == t._("I can take text, a voice message or a photo here. Please try again.")
    after = await conversation_state(harness)
    assert after is not None and (after.step, after.nonce) == ("describe", before.nonce)


async def test_stale_step_button_is_refused(harness: Harness, lang: str) -> None:
    t = tr(harness, RESIDENT)
    await register(harness, RESIDENT)
    await harness.press(RESIDENT, "m:report")
    stale = choice(harness, RESIDENT, "development")
    await choose(harness, RESIDENT, "living")
    before = await conversation_state(harness)

    assert await harness.press(RESIDENT, stale) == []
    assert harness.last_answer == t._("This button is no longer active.")
    after = await conversation_state(harness)
    assert after is not None and before is not None
    assert (after.step, after.data, after.nonce) == ("category", before.data, before.nonce)


async def test_forged_submit_button_submits_nothing(harness: Harness, lang: str) -> None:
    t = tr(harness, RESIDENT)
    await register(harness, RESIDENT)
    assert await harness.press(RESIDENT, "c:123:submit") == []
    assert harness.last_answer == t._("This button is no longer active.")

    # (Registered already: the picker's buttons are gone, replaced by the place chosen.)
    await at_describe_step(harness, registered=True)
    await harness.say(RESIDENT, "The tap leaks")
    state = await conversation_state(harness)
    assert state is not None and state.step == "confirm"
    assert await harness.press(RESIDENT, f"c:{state.nonce + 1}:submit") == []
    assert harness.last_answer == t._("This button is no longer active.")
    assert await no_requests(harness)


async def test_group_chat_gets_the_private_only_answer(harness: Harness, lang: str) -> None:
    t = tr(harness, RESIDENT)
    group = -100123
    (reply,) = await harness.say(RESIDENT, "/start", chat_id=group, chat_type="group")
    assert reply.text == t._(
        "I work in private chats only, to keep residents' details private. "
        "Please open a chat with me and send /start."
    )
    assert await harness.press(RESIDENT, "m:report", chat_id=group, chat_type="group") == []
    assert harness.last_answer == t._("Please talk to me in a private chat.")
    async with harness.db.session() as session:
        assert (await session.exec(select(Account))).first() is None
        assert (await session.exec(select(ConversationState))).first() is None


async def test_text_before_start_asks_for_start(harness: Harness, lang: str) -> None:
    t = tr(harness, RESIDENT)
    (reply,) = await harness.say(RESIDENT, "hello, my tap leaks")
    assert reply.text == t._("Welcome! Please send /start to begin.")
    async with harness.db.session() as session:
        assert (await session.exec(select(Account))).first() is None


async def test_buttons_before_consent_do_nothing(harness: Harness, lang: str) -> None:
    t = tr(harness, RESIDENT)
    assert await harness.press(RESIDENT, "m:report") == []
    assert harness.last_answer == t._("This button is no longer active.")

    await harness.say(RESIDENT, "/start")
    assert await harness.press(RESIDENT, "m:report") == []
    assert await harness.press(RESIDENT, "t:accept:1") == []
    assert await harness.press(RESIDENT, "v:1") == []
    (again,) = await harness.say(RESIDENT, "/my")
    assert again.text == t._("Welcome! Please send /start to begin.")
    async with harness.db.session() as session:
        assert (await session.exec(select(Account))).first() is None


async def test_text_at_the_consent_step_shows_the_question_again(
    harness: Harness, lang: str
) -> None:
    t = tr(harness, RESIDENT)
    await harness.say(RESIDENT, "/start")
    hint, consent = await harness.say(RESIDENT, "yes")
    assert hint.text == t._("Please use the buttons above, or send /cancel to stop.")
    assert values(consent) == ["yes", "no"]


async def test_unknown_command_is_quoted_safely(harness: Harness, lang: str) -> None:
    t = tr(harness, RESIDENT)
    (reply,) = await harness.say(RESIDENT, "/x<b>")
    assert reply.text == t._(
        "Sorry, I don't know the command /{name}. Send /help to see what I can do.",
        name="x&lt;b&gt;",
    )


@pytest.mark.parametrize(
    "number", ["²", "9" * 40, "-1", ""], ids=["unicode-digit", "huge", "negative", "empty"]
)
async def test_garbled_numbers_in_buttons_are_refused_not_crashed(
    harness: Harness, lang: str, number: str
) -> None:
    t = tr(harness, RESIDENT)
    await register(harness, RESIDENT)
    assert await harness.press(RESIDENT, f"v:{number}") == []
    assert harness.last_answer == t._("This request is not available.")
    assert await harness.press(RESIDENT, f"t:accept:{number}") == []
    assert harness.last_answer == t._("This button is no longer active.")
    (first_page,) = await harness.press(RESIDENT, f"m:mine:{number}")
    assert first_page.text == t._("You have no requests yet.")
