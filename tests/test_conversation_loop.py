"""Issue 16: nothing a person says is lost, no dead buttons stay behind, and the family member
a need is for is kept in the loop.

- Words or a voice note sent instead of a tap (the verdict, a staff question, a follow-up call)
  are taken as the comment or the answer; for the verdict the one-tap question is asked again.
- After a choice (confirm, the verdict's questions) the pressed message keeps its text and
  shows what was chosen instead of its buttons; a second tap edits nothing; a task card's older
  copy loses its buttons; a double tap on a card sends no "not modified" edit.
- "Already rated" says who rated it and when.
- A linked family member hears the progress notices, sees the needs filed for them under
  "My requests" and may answer a staff question; the reporter sees who is linked and removes it.
- A bare voice comment stays a voice: on its timeline entry, not as words in the comment column.
"""

from __future__ import annotations

import re

import pytest
from sqlmodel import col, select

from bot.channels.memory import ShownMessage
from domain.deadlines import DEFAULT_POLICY
from domain.labels import staff_label
from domain.messages import Outbound
from domain.reach import Refusal
from schedules.refusals import handle_refusal
from storage.models import Beneficiary, OutboxMessage, Request, Staff
from tests.harness import ZONE, Harness
from tests.test_conversation_escalation import at, containing, events, request_row, tick
from tests.test_conversation_onboarding import LANGUAGES, choice, choose, register, tr, values
from tests.test_conversation_report import report_need
from tests.test_verdict import (
    ASK,
    LI,
    MOTHER,
    RESIDENT,
    WANG,
    XU,
    add_mother_without_the_bot,
    callback,
    resolve,
    setup,
)

CODE = re.compile(r"b_([A-Za-z0-9_-]+)")


def newest_with(harness: Harness, user: int, data: str) -> ShownMessage:
    """The newest message in the user's chat that has (or had) a button with `data`."""
    for shown in reversed(harness.sender.messages(user)):
        if any(b.data == data for b in shown.buttons):
            return shown
    raise AssertionError(f"no button {data!r} for {user}")


async def tap(harness: Harness, user: int, data: str) -> list[ShownMessage]:
    """Press the button with `data` on the newest message that shows it (its message id sent
    along, as Telegram does)."""
    shown = newest_with(harness, user, data)
    return await harness.press(user, data, shown.message_id)


async def tap_step(
    harness: Harness, user: int, value: str
) -> tuple[ShownMessage, list[ShownMessage]]:
    data = choice(harness, user, value)
    shown = newest_with(harness, user, data)
    return shown, await harness.press(user, data, shown.message_id)


async def asked_for_verdict(harness: Harness, language: str) -> None:
    await setup(harness, language)
    await report_need(harness, RESIDENT)
    await resolve(harness, WANG)
    harness.clock.set(at(11, 30, 11))
    await tick(harness)


# Typed words are kept ----------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
async def test_words_typed_instead_of_a_tap_are_the_comment_and_the_question_comes_again(
    harness: Harness, language: str
) -> None:
    await asked_for_verdict(harness, language)
    t = tr(harness, RESIDENT)
    (again,) = await harness.say(RESIDENT, "还是有点漏")
    assert again.text == t._(
        "Thank you, your words on <b>{ref}</b> are kept with the request. One more tap, "
        "please: is it solved?",
        ref="HY000001",
    )
    assert values(again) == ["rv:s:1:y", "rv:s:1:n"]
    request = await request_row(harness)
    assert (request.verdict_comment, request.status, request.rated_at) == (
        "还是有点漏",
        "resolved",
        None,
    )
    comment = [e for e in await events(harness) if e.action == "comment"]
    assert [(e.note, e.actor_account_id is not None) for e in comment] == [("还是有点漏", True)]

    # The tap then: the words are the reason the new holder reads.
    await tap(harness, RESIDENT, "rv:s:1:n")
    assert again.buttons == []  # replaced by the choice
    assert again.text.endswith("\n\n" + t._("❌ Not solved"))
    await tap(harness, RESIDENT, "rv:f:1:n:u")
    request = await request_row(harness)
    assert (request.status, request.solved, request.reopen_count) == ("assigned", False, 1)
    assert request.verdict_comment == "还是有点漏"
    reopened = [e for e in await events(harness) if e.action == "reopen"]
    assert [e.note for e in reopened] == ["why:reopened\n还是有点漏"]
    tx = tr(harness, XU)
    card = containing(harness, XU, "HY000001")[-1]
    assert (
        tx._("🔁 Reopened: the resident says it is not solved or not satisfactory") + ": 还是有点漏"
        in card.text
    )


async def test_a_voice_note_instead_of_a_tap_stays_a_voice(harness: Harness) -> None:
    await asked_for_verdict(harness, "en")
    (again,) = await harness.send(RESIDENT, "voice", file_id="voice-instead-of-a-tap")
    assert values(again) == ["rv:s:1:y", "rv:s:1:n"]
    comment = [e for e in await events(harness) if e.action == "comment"]
    assert [(e.note, e.media_kind, e.media_file_id) for e in comment] == [
        (None, "voice", "voice-instead-of-a-tap")
    ]
    assert (await request_row(harness)).verdict_comment is None
    # Stickers and files are still not taken: the usual polite answer.
    (menu,) = await harness.send(RESIDENT, "unsupported")
    assert "stickers" in menu.text


async def test_a_bare_voice_comment_after_the_verdict_is_kept_as_a_voice(harness: Harness) -> None:
    await asked_for_verdict(harness, "en")
    await tap(harness, RESIDENT, "rv:s:1:y")
    await tap(harness, RESIDENT, "rv:f:1:y:s")
    (thanks,) = await harness.send(RESIDENT, "voice", file_id="voice-thanks")
    assert thanks.text == "Thank you! Your words were passed on."
    request = await request_row(harness)
    assert request.verdict_comment is None
    comment = [e for e in await events(harness) if e.action == "comment"]
    assert [(e.note, e.media_kind, e.media_file_id) for e in comment] == [
        (None, "voice", "voice-thanks")
    ]
    (timeline,) = await harness.press(RESIDENT, "v:1")
    assert any(b.data == f"rv:p:{comment[0].id}" for b in timeline.buttons)


async def test_typed_words_on_a_follow_up_call_are_a_note_and_the_buttons_come_again(
    harness: Harness,
) -> None:
    await setup(harness)
    await add_mother_without_the_bot(harness)
    await resolve(harness, WANG)
    harness.clock.set(at(11, 30, 11))
    await tick(harness)
    (again,) = await harness.say(LI, "Her son was there too")
    assert again.text == (
        "Noted on the timeline of <b>HY000001</b>. Please record the resident's answer: "
        "is it solved?"
    )
    assert values(again) == ["fu:s:1:y", "fu:s:1:n"]
    comment = [e for e in await events(harness) if e.action == "comment"]
    assert [(e.note, e.actor_staff_id is not None) for e in comment] == [
        ("by:staff\nHer son was there too", True)
    ]
    assert (await request_row(harness)).verdict_comment is None  # the resident's words only
    await tap(harness, LI, "fu:s:1:y")
    assert again.buttons == [] and again.text.endswith("\n\n✅ Solved")
    await tap(harness, LI, "fu:f:1:y:s")
    assert (await request_row(harness)).verdict_by == "staff"


@pytest.mark.parametrize("language", LANGUAGES)
async def test_an_answer_typed_without_the_answer_button_reaches_the_holder(
    harness: Harness, language: str
) -> None:
    await setup(harness, language)
    await report_need(harness, RESIDENT)
    await harness.press(WANG, "t:accept:1")
    await harness.press(WANG, "t:ask:1")
    await harness.say(WANG, "Is the leak under the sink or at the tap?")
    assert (await request_row(harness)).paused_at is not None
    t, tw = tr(harness, RESIDENT), tr(harness, WANG)
    (thanks,) = await harness.say(RESIDENT, "At the tap")
    assert thanks.text == t._(
        "Thank you. Your answer was passed to {who}.",
        who=await staff_label_of(harness, WANG, RESIDENT),
    )
    assert (await request_row(harness)).paused_at is None  # the clock runs again
    assert tw._(
        "💬 The resident answered about <b>{ref}</b>:\n{answer}",
        ref="HY000001",
        answer="At the tap",
    ) in harness.texts(WANG)
    answers = [e for e in await events(harness) if e.action == "answer"]
    assert [e.note for e in answers] == ["At the tap"]
    # Nothing waits any more: further words get the menu, as before.
    (menu,) = await harness.say(RESIDENT, "hello")
    assert menu.text == t._("To tell us about a need, tap “Report a need” below.")


async def staff_label_of(harness: Harness, telegram_id: int, reader: int) -> str:
    async with harness.db.session() as session:
        staff = (await session.exec(select(Staff).where(Staff.telegram_id == telegram_id))).one()
    return staff_label(tr(harness, reader), staff)


# Old keyboards go ---------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
async def test_the_confirm_message_shows_the_choice_instead_of_its_buttons(
    harness: Harness, language: str
) -> None:
    await setup(harness, language)
    t = tr(harness, RESIDENT)
    await harness.press(RESIDENT, "m:report")
    await choose(harness, RESIDENT, "living")
    await choose(harness, RESIDENT, "repair")
    await harness.say(RESIDENT, "The kitchen tap leaks")
    confirm, _ = await tap_step(harness, RESIDENT, "edit")
    assert confirm.buttons == []
    assert confirm.text.endswith("\n\n" + t._("✏ Change the details"))
    await harness.say(RESIDENT, "The kitchen tap leaks badly")
    confirm, _ = await tap_step(harness, RESIDENT, "submit")
    assert confirm.buttons == [] and confirm.text.endswith("\n\n" + t._("✅ Submitted"))
    assert confirm.edits == 1
    # A second tap on it (a stale client) edits nothing more.
    data = confirm.message.text  # unchanged below
    await harness.press(RESIDENT, "c:0:submit", confirm.message_id)
    assert callback(harness) == t._("This button is no longer active.")
    assert (confirm.edits, confirm.message.text) == (1, data)

    # Cancel leaves a line saying so.
    await harness.press(RESIDENT, "m:report")
    await choose(harness, RESIDENT, "living")
    await choose(harness, RESIDENT, "repair")
    await harness.say(RESIDENT, "Another one")
    confirm, _ = await tap_step(harness, RESIDENT, "cancel")
    assert confirm.buttons == [] and confirm.text.endswith("\n\n" + t._("✖ Cancelled"))


@pytest.mark.parametrize("language", LANGUAGES)
async def test_the_verdict_questions_lose_their_buttons_once_answered(
    harness: Harness, language: str
) -> None:
    await asked_for_verdict(harness, language)
    t = tr(harness, RESIDENT)
    question = newest_with(harness, RESIDENT, "rv:s:1:y")
    assert question.text.startswith(t._(ASK, ref="HY000001"))
    (how,) = await tap(harness, RESIDENT, "rv:s:1:y")
    assert question.buttons == [] and question.text.endswith("\n\n" + t._("✅ Solved"))
    await tap(harness, RESIDENT, "rv:f:1:y:f")
    assert how.buttons == [] and how.text.endswith("\n\n" + t._("🙂 Fairly satisfied"))
    assert (how.edits, question.edits) == (1, 1)

    # A tap on the old buttons later (another device) says who rated it and when.
    await harness.press(RESIDENT, "rv:s:1:n", question.message_id)
    assert callback(harness) == t._(
        "Thank you, you already rated this on {time}.", time="2026-11-30 11:00"
    )
    assert question.edits == 1  # its buttons went already: no second edit


async def test_a_tap_after_the_rating_takes_the_buttons_away(harness: Harness) -> None:
    """The mother rated; her son's question still had buttons: a tap on it removes them and
    says who rated it and when."""
    await setup(harness)
    await add_mother_without_the_bot(harness)
    code = await link_code(harness)
    await harness.say(MOTHER, f"/start b_{code}")
    await choose(harness, MOTHER, "yes")
    await resolve(harness, WANG)
    harness.clock.set(at(11, 30, 11))
    await tick(harness)
    await tap(harness, MOTHER, "rv:s:1:y")
    harness.clock.set(at(11, 30, 11, 5))
    await tap(harness, MOTHER, "rv:f:1:y:s")
    question = newest_with(harness, RESIDENT, "rv:s:1:y")
    await tap(harness, RESIDENT, "rv:s:1:y")
    assert callback(harness) == "Thank you, user900003 already rated this on 2026-11-30 11:05."
    assert question.buttons == [] and question.edits == 1


async def test_a_double_tap_on_a_card_sends_no_second_edit(harness: Harness) -> None:
    await setup(harness, "en")
    await report_need(harness, RESIDENT)
    card = newest_with(harness, WANG, "t:accept:1")
    await tap(harness, WANG, "t:accept:1")
    assert card.edits == 1 and "t:resolve:1" in values(card)
    await harness.press(WANG, "t:accept:1", card.message_id)  # the second tap of a double tap
    assert callback(harness) == "This task has already moved on: Being handled."
    assert card.edits == 1
    wang = await staff_id_of(harness, WANG)
    async with harness.db.session() as session:
        rows = await session.exec(
            select(OutboxMessage).where(OutboxMessage.ref_key == f"card:1:{wang}")
        )
        assert len(rows.all()) == 2  # the card and one edit, nothing "not modified"


async def test_an_older_copy_of_a_card_keeps_no_buttons(harness: Harness) -> None:
    await setup(harness, "en")
    await report_need(harness, RESIDENT)
    first = newest_with(harness, WANG, "t:accept:1")
    (again,) = await harness.press(WANG, "v:1")  # "Open the task": a new copy of the card
    assert "t:accept:1" in values(again)
    assert first.buttons == [] and first.edits == 1
    assert first.text.startswith("<b>🆕 New task</b>")
    # A tap on the old copy's (stale) button, after the task moved on, strips nothing more.
    await tap(harness, WANG, "t:accept:1")
    assert "t:resolve:1" in values(again)
    await harness.press(WANG, "t:accept:1", first.message_id)
    assert first.edits == 1


async def staff_id_of(harness: Harness, telegram_id: int) -> int:
    async with harness.db.session() as session:
        staff = (await session.exec(select(Staff).where(Staff.telegram_id == telegram_id))).one()
        assert staff.id is not None
        return staff.id


# Family members kept in the loop ------------------------------------------------------------


async def link_code(harness: Harness) -> str:
    async with harness.db.session() as session:
        member = (
            await session.exec(select(Beneficiary).where(Beneficiary.name == "Chen Guilan"))
        ).one()
    shown = await harness.press(RESIDENT, f"bl:{member.id}")
    match = CODE.search(shown[-1].text)
    assert match is not None
    return match.group(1)


@pytest.mark.parametrize("language", LANGUAGES)
async def test_a_linked_mother_hears_sees_and_answers_until_the_link_is_removed(
    harness: Harness, language: str
) -> None:
    await setup(harness, language)
    await add_mother_without_the_bot(harness)
    harness.languages[MOTHER] = language
    await harness.say(MOTHER, f"/start b_{await link_code(harness)}")
    await choose(harness, MOTHER, "yes")
    tm, t = tr(harness, MOTHER), tr(harness, RESIDENT)

    # She hears what her son hears.
    await harness.press(WANG, "t:accept:1")
    accepted = tm._(
        "👍 Your request <b>{ref}</b> has been accepted by {who}. They will be in touch.",
        ref="HY000001",
        who=await staff_label_of(harness, WANG, MOTHER),
    )
    assert accepted in harness.texts(MOTHER)
    assert t._(
        "👍 Your request <b>{ref}</b> has been accepted by {who}. They will be in touch.",
        ref="HY000001",
        who=await staff_label_of(harness, WANG, RESIDENT),
    ) in harness.texts(RESIDENT)

    # She sees it under My requests, with who filed it, and its timeline.
    (listing,) = await harness.press(MOTHER, "m:mine")
    assert "<b>HY000001</b>" in listing.text
    assert tm._("filed for you by {name}", name=f"user{RESIDENT}") in listing.text
    (timeline,) = await harness.press(MOTHER, "v:1")
    assert tm._("<b>Timeline</b>") in timeline.text

    # A staff question reaches her too, and she may answer it.
    await harness.press(WANG, "t:ask:1")
    await harness.say(WANG, "When are you at home?")
    question = newest_with(harness, MOTHER, "q:1")
    assert "When are you at home?" in question.text
    await tap(harness, MOTHER, "q:1")
    await harness.say(MOTHER, "Every morning")
    answers = [e for e in await events(harness) if e.action == "answer"]
    assert [e.note for e in answers] == ["Every morning"]
    assert (await request_row(harness)).paused_at is None

    # Her son sees who is linked, and removes the link.
    await harness.press(RESIDENT, "m:family")
    (listing,) = await choose(harness, RESIDENT, "link")
    member_id = (await request_row(harness)).beneficiary_id
    assert (
        t._(
            "✅ {name} is linked (Telegram: {account}).",
            name="Chen Guilan",
            account=f"user{MOTHER}",
        )
        in listing.text
    )
    shown = await tap(harness, RESIDENT, f"bu:{member_id}")
    assert callback(harness) == t._("Link removed")
    assert listing.buttons == []  # the old list's buttons went
    assert shown[-1].text.startswith(t._("The link for {name} was removed.", name="Chen Guilan"))
    assert f"bl:{member_id}" in values(shown[-1])
    assert harness.texts(MOTHER)[-1] == tm._(
        "{proxy} removed your link to the family entry “{name}” on Huiyin: you will no longer "
        "hear about the requests filed for it.",
        proxy=f"user{RESIDENT}",
        name="Chen Guilan",
    )
    async with harness.db.session() as session:
        member = await session.get(Beneficiary, member_id)
        assert member is not None and member.account_id is None

    # From then on she neither hears, nor sees, nor answers.
    before = len(harness.texts(MOTHER))
    await harness.press(WANG, "t:resolve:1")
    await harness.say(WANG, "Replaced the washer")
    assert len(harness.texts(MOTHER)) == before
    (menu,) = await harness.press(MOTHER, "m:mine")
    assert menu.text == tm._("You have no requests yet.")
    assert await harness.press(MOTHER, "v:1") == []
    assert callback(harness) == tm._("This request is not available.")
    # A second tap on the removal button of the old list.
    await harness.press(RESIDENT, f"bu:{member_id}")
    assert callback(harness) == t._("{name} is not linked any more.", name="Chen Guilan")


async def test_someone_else_cannot_remove_a_link(harness: Harness) -> None:
    await setup(harness)
    await add_mother_without_the_bot(harness)
    await harness.say(MOTHER, f"/start b_{await link_code(harness)}")
    await choose(harness, MOTHER, "yes")
    member_id = (await request_row(harness)).beneficiary_id
    for user, data in ((MOTHER, f"bu:{member_id}"), (RESIDENT, "bu:9999"), (RESIDENT, "bu:x")):
        await harness.press(user, data)
        assert callback(harness) == "This family member is not in your list."
    async with harness.db.session() as session:
        member = await session.get(Beneficiary, member_id)
        assert member is not None and member.account_id is not None
    assert await requests_seen_by(harness, MOTHER) == ["HY000001"]


async def requests_seen_by(harness: Harness, user: int) -> list[str]:
    (listing,) = await harness.press(user, "m:mine")
    return re.findall(r"<b>(HY\d+)</b>", listing.text)


async def test_the_requests_of_a_resident_not_linked_stay_private(harness: Harness) -> None:
    await setup(harness)
    await add_mother_without_the_bot(harness)
    await register(harness, MOTHER)
    assert await harness.press(MOTHER, "v:1") == []
    async with harness.db.session() as session:
        rows = await session.exec(select(Request).order_by(col(Request.id)))
        assert [r.reference for r in rows.all()] == ["HY000001"]
    (menu,) = await harness.press(MOTHER, "m:mine")
    assert menu.text == "You have no requests yet."


async def test_a_refused_edit_of_an_old_card_copy_does_not_move_the_task(harness: Harness) -> None:
    """Taking the buttons off an older copy of a card is an edit: if Telegram refuses it (the
    grid member blocked the bot), it is not taken for a new card nobody received."""
    await setup(harness, "en")
    await report_need(harness, RESIDENT)
    wang = await staff_id_of(harness, WANG)
    row = OutboxMessage(
        chat_id=WANG,
        payload=Outbound(chat_id=WANG, text="old copy", edit_message_id=1).to_payload(),
        ref_key=f"card:1:{wang}",
        created_at=harness.clock.now(),
        next_attempt_at=harness.clock.now(),
    )
    async with harness.db.transaction() as session:
        await handle_refusal(
            session,
            row,
            Refusal.BLOCKED,
            first=True,
            now=harness.clock.now(),
            zone=ZONE,
            policy=DEFAULT_POLICY,
        )
    request = await request_row(harness)
    assert request.assignee_staff_id == wang
    assert [e.action for e in await events(harness)] == ["create", "route"]
