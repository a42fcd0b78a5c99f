"""Reporting a need: kind → category → describe (text, voice, photo) → confirm → submitted; the
assignee's card; editing, going back, cancelling at every step, and resuming after a restart."""

from __future__ import annotations

import pytest
from sqlmodel import col, select, update

from bot.channels.memory import ShownMessage
from domain.catalog import categories_of
from storage.models import Beneficiary, ConversationState, Request, RequestEvent, Staff
from tests.harness import Harness
from tests.test_conversation_onboarding import (
    LANGUAGES,
    MENU,
    choice,
    choose,
    register,
    tr,
    values,
)

RESIDENT = 900001
WANG = 700000001  # grid member of QS-JB-TH-01 for repair; safety; errand
LI = 700000002  # grid member of QS-JB-TH-01 for elder_care; companionship; family_link


@pytest.fixture(params=LANGUAGES)
async def resident(request: pytest.FixtureRequest, harness: Harness) -> int:
    """A resident of Tianhe Grid 1 at the main menu, speaking English or Chinese."""
    harness.languages[RESIDENT] = request.param
    await register(harness, RESIDENT, "QS-JB-TH-01")
    return RESIDENT


async def report_need(
    harness: Harness,
    user: int,
    category: str = "repair",
    text: str = "The kitchen tap leaks",
    kind: str = "living",
) -> list[ShownMessage]:
    """Go from the menu to a submitted request; return what the user saw on submitting."""
    await harness.press(user, "m:report")
    await choose(harness, user, kind)
    await choose(harness, user, category)
    await harness.say(user, text)
    return await choose(harness, user, "submit")


async def requests(harness: Harness) -> list[Request]:
    async with harness.db.session() as session:
        return list((await session.exec(select(Request).order_by(col(Request.id)))).all())


async def conversation_state(harness: Harness, user: int) -> ConversationState | None:
    async with harness.db.session() as session:
        return await session.get(ConversationState, user)


async def test_report_by_text_reaches_the_grid_member(harness: Harness, resident: int) -> None:
    t = tr(harness, resident)
    (kinds,) = await harness.press(resident, "m:report")
    assert kinds.text == t._("What kind of help is needed?")
    assert values(kinds) == ["living", "development", "emotional", "cancel"]

    (categories,) = await choose(harness, resident, "living")
    assert categories.text == t._("Which of these is closest?")
    assert values(categories) == [c.code for c in categories_of("living")] + ["back", "cancel"]

    (describe,) = await choose(harness, resident, "repair")
    assert describe.text.startswith(f"<b>{t._('Home repairs (water, power)')}</b>\n")
    assert values(describe) == ["back", "cancel"]

    (confirm,) = await harness.say(resident, "The kitchen tap <leaks>")
    assert t._("Details: {text}", text="The kitchen tap &lt;leaks&gt;") in confirm.text
    assert t._("For: {who}", who=t._("yourself")) in confirm.text
    assert values(confirm) == ["submit", "edit", "cancel"]

    (done,) = await choose(harness, resident, "submit")
    assert harness.last_answer == t._("Submitted")
    assert done.text == t._(
        "✅ Submitted. Your reference number is <b>{ref}</b>.\n"
        "{who} will handle it. You will hear from us when it is accepted.",
        ref="HY000001",
        who=f"王建华 ({t._('grid member')})",
    )
    assert values(done) == MENU

    (request,) = await requests(harness)
    async with harness.db.session() as session:
        wang = (await session.exec(select(Staff).where(Staff.telegram_id == WANG))).one()
        events = (await session.exec(select(RequestEvent).order_by(col(RequestEvent.id)))).all()
    assert (request.status, request.level, request.category, request.kind) == (
        "assigned",
        "grid",
        "repair",
        "living",
    )
    assert (request.assignee_staff_id, request.description) == (wang.id, "The kitchen tap <leaks>")
    assert [(e.action, e.to_status, e.assignee_staff_id) for e in events] == [
        ("create", "new", None),
        ("route", "assigned", wang.id),
    ]
    assert await conversation_state(harness, resident) is None

    (card,) = harness.sender.messages(WANG)
    assert "<b>HY000001</b>" in card.text and "The kitchen tap &lt;leaks&gt;" in card.text
    assert [b.data for b in card.buttons] == [
        "t:accept:1",
        "t:complex:1",
        "t:decline:1",
        "t:urgent:1",
        "of:offer:1",  # 📣 Offer to volunteers (handlers/offers.py)
    ]
    assert harness.sender.messages(LI) == []


async def test_category_picks_the_grid_member_with_that_post(
    harness: Harness, resident: int
) -> None:
    await report_need(
        harness, resident, category="companionship", kind="emotional", text="My neighbour is lonely"
    )
    assert harness.sender.messages(WANG) == []
    (card,) = harness.sender.messages(LI)
    assert [b.data for b in card.buttons] == [
        "t:accept:1",
        "t:complex:1",
        "t:decline:1",
        "t:urgent:1",
        "of:offer:1",  # 📣 Offer to volunteers (handlers/offers.py)
    ]


async def test_report_by_voice_forwards_the_voice_message(harness: Harness, resident: int) -> None:
    t = tr(harness, resident)
    await harness.press(resident, "m:report")
    await choose(harness, resident, "living")
    await choose(harness, resident, "repair")
    (confirm,) = await harness.send(resident, "voice", file_id="voice-file-1")
    assert t._("🎤 with your voice message") in confirm.text
    await choose(harness, resident, "submit")

    (request,) = await requests(harness)
    assert (request.media_kind, request.media_file_id, request.description) == (
        "voice",
        "voice-file-1",
        "",
    )
    voice, card = harness.sender.messages(WANG)
    assert (voice.message.media_kind, voice.message.media_file_id) == ("voice", "voice-file-1")
    assert [b.data for b in card.buttons] == [
        "t:accept:1",
        "t:complex:1",
        "t:decline:1",
        "t:urgent:1",
        "of:offer:1",  # 📣 Offer to volunteers (handlers/offers.py)
    ]


async def test_report_by_photo_takes_the_caption_as_description(
    harness: Harness, resident: int
) -> None:
    t = tr(harness, resident)
    await harness.press(resident, "m:report")
    await choose(harness, resident, "living")
    await choose(harness, resident, "safety")
    (confirm,) = await harness.send(resident, "photo", file_id="photo-1", text="Loose wires")
    assert t._("🖼 with your photo") in confirm.text
    assert t._("Details: {text}", text="Loose wires") in confirm.text
    await choose(harness, resident, "submit")

    (request,) = await requests(harness)
    assert (request.media_kind, request.media_file_id, request.description) == (
        "photo",
        "photo-1",
        "Loose wires",
    )
    photo, _card = harness.sender.messages(WANG)
    assert (photo.message.media_kind, photo.message.media_file_id) == ("photo", "photo-1")


async def test_changing_the_details_before_submitting(harness: Harness, resident: int) -> None:
    t = tr(harness, resident)
    await harness.press(resident, "m:report")
    await choose(harness, resident, "living")
    await choose(harness, resident, "repair")
    await harness.say(resident, "The tap leaks")
    (describe,) = await choose(harness, resident, "edit")
    assert values(describe) == ["back", "cancel"]
    (confirm,) = await harness.say(resident, "The tap leaks and the sink is blocked")
    assert t._("Details: {text}", text="The tap leaks and the sink is blocked") in confirm.text
    await choose(harness, resident, "submit")
    (request,) = await requests(harness)
    assert request.description == "The tap leaks and the sink is blocked"


async def test_back_buttons_return_to_the_previous_step(harness: Harness, resident: int) -> None:
    await harness.press(resident, "m:report")
    await choose(harness, resident, "development")
    await choose(harness, resident, "training")
    (categories,) = await choose(harness, resident, "back")
    assert values(categories)[:4] == ["employment", "training", "agriculture", "policy"]
    (kinds,) = await choose(harness, resident, "back")
    assert values(kinds) == ["living", "development", "emotional", "cancel"]


async def walk_to(harness: Harness, user: int, step: str) -> None:
    await harness.press(user, "m:report")
    if step == "kind":
        return
    await choose(harness, user, "living")
    if step == "category":
        return
    await choose(harness, user, "repair")
    if step == "describe":
        return
    await harness.say(user, "The tap leaks")


@pytest.mark.parametrize("step", ["kind", "category", "describe", "confirm"])
@pytest.mark.parametrize("how", ["button", "command"])
async def test_cancel_at_any_step_submits_nothing(
    harness: Harness, resident: int, step: str, how: str
) -> None:
    t = tr(harness, resident)
    await walk_to(harness, resident, step)
    if how == "button":
        (menu,) = await choose(harness, resident, "cancel")
        assert harness.last_answer == t._("Cancelled")
    else:
        (menu,) = await harness.say(resident, "/cancel")
    assert menu.text == t._("Cancelled; nothing was submitted.")
    assert values(menu) == MENU
    assert await requests(harness) == []
    assert await conversation_state(harness, resident) is None
    assert harness.sender.messages(WANG) == []


@pytest.mark.parametrize("step", ["category", "describe", "confirm"])
async def test_start_after_a_restart_resumes_the_same_step(
    harness: Harness, resident: int, step: str
) -> None:
    t = tr(harness, resident)
    await walk_to(harness, resident, step)
    before = harness.sender.messages(resident)[-1]

    restarted = Harness(harness.db, harness.clock, languages=harness.languages)
    welcome, shown = await restarted.say(resident, "/start")
    assert welcome.text == t._("Welcome back! Let's continue where you left off.")
    assert (shown.text, [b.data for b in shown.buttons]) == (
        before.text,
        [b.data for b in before.buttons],
    )

    if step == "category":
        await choose(restarted, resident, "repair")
    if step in ("category", "describe"):
        await restarted.say(resident, "The tap leaks")
    await choose(restarted, resident, "submit")
    (request,) = await requests(harness)
    assert (request.category, request.description, request.status) == (
        "repair",
        "The tap leaks",
        "assigned",
    )


async def test_nobody_reachable_still_registers_the_request(
    harness: Harness, resident: int
) -> None:
    t = tr(harness, resident)
    async with harness.db.transaction() as session:
        await session.exec(update(Staff).values(telegram_id=None))  # type: ignore[call-overload]
    (done,) = await report_need(harness, resident)
    assert done.text.startswith(
        t._(
            "✅ Received. Your reference number is <b>{ref}</b>. No staff member is "
            "connected to Huiyin yet, so please also call your community office.",
            ref="HY000001",
        )
    )
    (request,) = await requests(harness)
    assert (request.status, request.assignee_staff_id) == ("new", None)


async def test_long_telegram_name_fits_the_beneficiary_record(harness: Harness) -> None:
    long_name = "Maximilian " * 9  # 99 characters: Telegram allows first + last name of 64 each
    await harness.say(RESIDENT, "/start g_QS-JB-TH-01")
    await harness.press(RESIDENT, choice(harness, RESIDENT, "yes"), display_name=long_name)
    await report_need(harness, RESIDENT)
    async with harness.db.session() as session:
        (beneficiary,) = (await session.exec(select(Beneficiary))).all()
    assert beneficiary.is_self and beneficiary.name == long_name[:50]
    (request,) = await requests(harness)
    assert request.beneficiary_id == beneficiary.id
