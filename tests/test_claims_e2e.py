"""Offer → claim → done → verdict, end to end through the real python-telegram-bot and aiogram
stacks: a volunteer joins by link and is approved, a second comes from the roster's
volunteers.csv; a son reports a repair for his mother, the grid member offers it (📣), both
volunteers get a claim card without the mother's name or phone, the first "🙋" wins and sees
them, the other card says "taken"; the volunteer reports it done, the holder confirms, the son
gives his verdict and the volunteer is told it."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from domain.deadlines import DEFAULT_POLICY
from schedules.sweep import sweep
from storage.models import Claim, Request, Volunteer
from storage.roster import sample_district_dir
from tests.test_e2e_telegram import (
    WANG,
    ZONE,
    Running,
    Start,
    User,
    bot_running,
    chat_of,
    events_of,
    starts,
)

XU = 700000011  # coordinator of 天河社区 QS-JB-TH
APPLICANT = 931201  # joins by the community's volunteer link
ZHOU = 931202  # on the roster's volunteers.csv
SON = 931203  # reports for his mother, who lives in Tianhe Grid 1
MOTHER, PHONE = "陈淑芬", "13912345678"
LINE = "Fixed the tap with a new washer"


@pytest.fixture
async def running(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Running]:
    """The bot on the sample district plus a volunteers.csv with one volunteer of Tianhe."""
    roster = tmp_path / "roster"
    shutil.copytree(sample_district_dir(), roster)
    (roster / "volunteers.csv").write_text(
        "name,phone,telegram_id,unit,categories,party_member,organisation,contact\n"
        f"周文,13900000002,{ZHOU},QS-JB-TH,repair;errand,yes,,\n",
        "utf-8",
    )
    start: Start = request.param
    async with bot_running(tmp_path, start, roster=roster) as started:
        yield started


async def join_by_link(running: Running, applicant: User, xu: User) -> None:
    """The volunteer link, the repair category, the coordinator's one tap."""
    fake = running.fake
    await applicant.say("/start v_QS-JB-TH", "Do you agree?")
    await applicant.tap("yes", "Which kinds of help will you offer?")
    await applicant.tap("repair", "Which kinds", method="editMessageText")
    await applicant.tap("done", "Are you a member of the Communist Party")
    mark = len(fake.calls)
    await applicant.tap("no", "Your application to volunteer in")
    await xu.expect("A volunteer applies", after=mark)
    mark = len(fake.calls)
    message, data = xu.button("yes")
    assert data.startswith("va:")
    await xu.press(message.message_id, data)
    await applicant.expect("Welcome! You are now a volunteer", after=mark)


async def son_reports_for_his_mother(son: User) -> None:
    await son.say("/start g_QS-JB-TH-01", "Do you agree?")
    await son.tap("yes", "You are registered in")
    await son.tap("family", "What is your family member's name?")
    await son.say(MOTHER, f"How is {MOTHER} related to you?")
    await son.tap("mother", "Choose the street or town where she lives:")
    await son.tap("QS-JB", "choose the community or village where she lives")
    await son.tap("QS-JB-TH", "choose the grid where she lives")
    await son.tap("QS-JB-TH-01", "A phone number for")
    await son.say(PHONE, MOTHER)
    await son.tap("told", "What kind of help")
    await son.tap("living", "Which of these")
    await son.tap("repair", "Please describe")
    await son.say("Her kitchen tap leaks", "Please check")
    await son.tap("submit", "HY000001")


@pytest.mark.parametrize("running", starts("workday-1000"), indirect=True)
async def test_offer_claim_done_and_the_verdict(running: Running) -> None:
    fake, db = running.fake, running.db
    wang, xu = User(fake, WANG), User(fake, XU)
    applicant, zhou, son = User(fake, APPLICANT), User(fake, ZHOU), User(fake, SON)
    await wang.say("/start", "You are registered as")
    await xu.say("/start", "You are registered as")
    await zhou.say("/start", "Do you agree?")
    await zhou.tap("yes", "registered you as a volunteer")
    await join_by_link(running, applicant, xu)

    mark = len(fake.calls)
    await son_reports_for_his_mother(son)
    card = await wang.expect("New task", after=mark)
    assert MOTHER in card.params["text"]  # the holder sees whom it is for

    # The grid member offers it, without a note: both volunteers get a claim card.
    await wang.tap("of:offer", "a note for the volunteers")
    mark = len(fake.calls)
    await wang.tap("skip", "is offered to 2 volunteers of")
    offers = {
        volunteer.user_id: await volunteer.expect("Can you help?", after=mark)
        for volunteer in (applicant, zhou)
    }
    for offer in offers.values():
        text = offer.params["text"]
        assert "HY000001" in text and "Her kitchen tap leaks" in text
        assert MOTHER not in text and PHONE not in text
    await son.expect("has been accepted by 王建华", after=mark)

    # The link's volunteer takes it: the name and phone now; the other card says "taken".
    mark = len(fake.calls)
    await applicant.tap("of:take", "is yours", method="editMessageText")
    mine = fake.message(APPLICANT, offers[APPLICANT].result_or_error["message_id"])
    assert MOTHER in mine.text and PHONE in mine.text
    taken = await zhou.expect("was taken by someone else", after=mark, method="editMessageText")
    assert taken.params["message_id"] == offers[ZHOU].result_or_error["message_id"]
    shown = fake.message(ZHOU, offers[ZHOU].result_or_error["message_id"])
    assert shown.inline_markup is None and MOTHER not in shown.text
    await wang.expect("was claimed by", after=mark)
    await son.expect("was taken on by", after=mark)
    # A late press of the other card changes nothing.
    answer = await zhou.press(offers[ZHOU].result_or_error["message_id"], "of:take:1")
    assert "Someone else was quicker" in answer.params.get("text", "")

    # Done with a line, the hours skipped; the holder confirms.
    await applicant.tap("cw:done", "what did you do?")
    await applicant.say(LINE, "how many hours")
    mark = len(fake.calls)
    await applicant.tap("skip", "holder is asked to confirm")
    holder_card = await wang.expect(LINE, after=mark)
    assert "Confirm done" in str(holder_card.params["reply_markup"])
    mark = len(fake.calls)
    await wang.tap("cw:ok")
    await son.expect(f"Result: {LINE}", after=mark)
    await applicant.expect("confirmed your work on HY000001", after=mark)
    # No longer theirs: the claim card loses the mother's name, phone and the buttons.
    card_id = offers[APPLICANT].result_or_error["message_id"]
    plain = await applicant.expect("confirmed your work", after=mark, method="editMessageText")
    assert plain.params["message_id"] == card_id
    shown = fake.message(APPLICANT, card_id)
    assert shown.inline_markup is None and MOTHER not in shown.text and PHONE not in shown.text

    # The verdict round: the son is asked, answers solved and satisfied; the volunteer told.
    mark = len(fake.calls)
    running.clock.advance(timedelta(hours=2))
    await sweep(db, running.clock, ZONE, DEFAULT_POLICY)
    await son.expect("Is it solved?", after=mark)
    question, data = son.button("rv:s:1")
    assert data == "rv:s:1:y"
    await son.press(question.message_id, data, "How satisfied")
    mark = len(fake.calls)
    how, _ = son.button("rv:f:1:y")
    await son.press(how.message_id, "rv:f:1:y:s")
    await applicant.expect("solved, and they were satisfied", after=mark)
    assert not [c for c in fake.calls[mark:] if chat_of(c) == ZHOU]
    record = await applicant.say("/mine", "Your service record")
    assert "Claims: 1 · done: 1" in record.params["text"]
    assert "the resident was satisfied" in record.params["text"]

    events = await events_of(db, 1)
    assert events[:5] == ["create", "route", "accept", "offer", "claim"]
    assert events[5:] == ["claim_done", "resolve", "ask_verdict", "follow_up", "verdict", "close"]
    await running.stop()
    async with db.session() as session:
        request = await session.get(Request, 1)
        assert request is not None
        assert (request.status, request.result_note, request.claim_id) == ("closed", LINE, None)
        claim = await session.get(Claim, 1)
        assert claim is not None
        by_link = select(Volunteer).where(Volunteer.telegram_id == APPLICANT)
        joined = (await session.exec(by_link)).one()
        assert (claim.state, claim.volunteer_id, claim.done_note, claim.hours) == (
            "confirmed",
            joined.id,
            LINE,
            None,
        )
        assert (claim.solved, claim.satisfaction) == (True, "satisfied")
