"""Rating the level above (一定双评), through the channel-neutral conversations with an injected
clock: the question goes once, to the right person, after a pass-up by hand and after an
escalation on a missed deadline; a need resolved where it was never passed up asks no one;
quiet hours hold the question to the morning; no answer in 7 days lapses as not rated; the
first answer counts; a note follows; a reopening asks no one twice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import col, select

from domain.deadlines import DEFAULT_POLICY
from schedules.ratings import RatingsReport, run_ratings
from storage.models import RequestEvent, UpwardRating
from tests.harness import Harness
from tests.test_conversation_escalation import (
    HU,
    LI,
    RESIDENT,
    WANG,
    XU,
    ZONE,
    at,
    events,
    run_until,
    staff_id,
    tick,
)
from tests.test_conversation_onboarding import LANGUAGES, register, tr
from tests.test_conversation_report import report_need

QUESTION = (
    "⭐ <b>{ref}</b> ({category}), which your unit passed up, was resolved by {unit}. "
    "How did {unit} handle it?"
)


async def rate_tick(harness: Harness) -> RatingsReport:
    report = await run_ratings(harness.db, harness.clock, ZONE, DEFAULT_POLICY)
    await harness.outbox.deliver_due()
    return report


async def ratings(harness: Harness) -> list[UpwardRating]:
    async with harness.db.session() as session:
        rows = await session.exec(select(UpwardRating).order_by(col(UpwardRating.id)))
        return list(rows.all())


def questions(harness: Harness, user: int) -> list[str]:
    return [m.text for m in harness.sender.messages(user) if m.text.startswith("⭐")]


@pytest.fixture(params=LANGUAGES)
async def people(request: pytest.FixtureRequest, harness: Harness) -> Harness:
    for user in (WANG, LI, XU, HU, RESIDENT):
        harness.languages[user] = request.param
    for user in (WANG, LI, XU, HU):
        await harness.say(user, "/start")
    await register(harness, RESIDENT)
    return harness


async def resolve(harness: Harness, user: int, note: str = "Fixed the riser pipe") -> None:
    await harness.press(user, "t:accept:1")
    await harness.press(user, "t:resolve:1")
    await harness.say(user, note)


async def test_passed_up_by_hand_the_grid_member_rates_the_community_once(
    people: Harness,
) -> None:
    harness = people
    await report_need(harness, RESIDENT)  # Monday 10:00, to Wang
    await harness.press(WANG, "t:accept:1")
    await harness.press(WANG, "t:decline:1")
    await harness.say(WANG, "The whole building's riser pipe is broken")
    harness.clock.advance(timedelta(hours=3))
    await resolve(harness, XU)

    t = tr(harness, WANG)
    unit = "Tianhe Community" if t.language == "en" else "天河社区"
    expected = t._(QUESTION, ref="HY000001", category=t._("Home repairs (water, power)"), unit=unit)
    (question,) = [m for m in harness.sender.messages(WANG) if m.text.startswith("⭐")]
    assert question.text.startswith(expected), question.text
    assert [b.data for b in question.buttons] == ["ra:1:s", "ra:1:f", "ra:1:u"]
    assert questions(harness, XU) == [] and questions(harness, LI) == []
    assert questions(harness, HU) == []

    (row,) = await ratings(harness)
    assert (row.rater_unit_code, row.rated_unit_code, row.how, row.state) == (
        "QS-JB-TH-01",
        "QS-JB-TH",
        "pass_up",
        "asked",
    )
    assert row.rater_staff_id == await staff_id(harness, WANG)
    assert row.due_at == at(11, 30, 13) + timedelta(days=7)

    # Someone else's tap is refused and changes nothing.
    await harness.press(XU, "ra:1:u")
    assert harness.results[-1].callback_answer == tr(harness, XU)._("This question is not for you.")
    (note_prompt,) = await harness.press(WANG, "ra:1:f")
    assert note_prompt.text == t._(
        "Noted on {ref}. Would you like to add a line or a voice note about how it was "
        "handled? (optional)",
        ref="HY000001",
    )
    (thanks,) = await harness.say(WANG, "Took a while, but the plumber was good")
    assert thanks.text.startswith(t._("Noted on the request's timeline. Thank you!"))
    await harness.press(WANG, "ra:1:s")  # a second tap: the first answer counts
    assert harness.results[-1].callback_answer == t._("Thank you, this has already been answered.")

    (row,) = await ratings(harness)
    assert (row.state, row.rating, row.comment) == (
        "rated",
        "fairly",
        "Took a while, but the plumber was good",
    )
    wang_id = await staff_id(harness, WANG)
    tail = [(e.action, e.actor_staff_id, e.note) for e in await events(harness)][-3:]
    assert tail == [
        ("rate_ask", wang_id, None),
        ("rate_above", wang_id, "satisfaction:fairly"),
        ("rate_note", wang_id, "Took a while, but the plumber was good"),
    ]
    # Staff see it on the timeline; the resident's own timeline leaves it out.
    (status,) = await harness.say(XU, "/status HY000001")
    assert tr(harness, XU)._("Rated from below by {actor}", actor="王建华") in status.text
    (mine,) = await harness.press(RESIDENT, "v:1")
    assert tr(harness, RESIDENT)._("Rated from below by {actor}", actor="王建华") not in mine.text

    # Nothing more is due, ever: the tick has nothing to do, and the question does not lapse.
    harness.clock.advance(timedelta(days=8))
    assert (await rate_tick(harness)).total == 0


async def test_escalated_on_deadlines_each_unit_left_behind_rates_the_town(
    people: Harness,
) -> None:
    harness = people
    await report_need(harness, RESIDENT)  # Monday 10:00; nobody accepts
    await run_until(harness, at(12, 2, 10, 30))  # grid → community (Tue), → town (Wed)
    assert (await events(harness))[-1].to_level == "town"
    await resolve(harness, HU, "Sent the street's maintenance team")

    wang, xu = await staff_id(harness, WANG), await staff_id(harness, XU)
    rows = await ratings(harness)
    assert [(r.rater_unit_code, r.rater_staff_id, r.rated_unit_code, r.how) for r in rows] == [
        ("QS-JB-TH-01", wang, "QS-JB", "escalation"),
        ("QS-JB-TH", xu, "QS-JB", "escalation"),
    ]
    t = tr(harness, WANG)
    unit = "Jiangbei Street" if t.language == "en" else "江北街道"
    assert [q.split("\n")[0] for q in questions(harness, WANG)] == [
        t._(QUESTION, ref="HY000001", category=t._("Home repairs (water, power)"), unit=unit)
    ]
    assert len(questions(harness, XU)) == 1
    assert questions(harness, LI) == [] and questions(harness, HU) == []

    # The resident is not satisfied: reopened one level up (to the department), resolved
    # there; no unit is asked a second time about this need.
    await tick(harness)
    harness.clock.set(at(12, 2, 12))
    await tick(harness)
    await harness.press(RESIDENT, "rv:s:1:y")
    await harness.press(RESIDENT, "rv:f:1:y:u")
    async with harness.db.session() as session:
        reopened = (
            await session.exec(select(RequestEvent).where(RequestEvent.action == "reopen"))
        ).first()
    assert reopened is not None and reopened.to_level == "department"
    assert len(await ratings(harness)) == 2
    assert len(questions(harness, WANG)) == 1 and len(questions(harness, XU)) == 1


async def test_resolved_where_it_arrived_asks_no_one(people: Harness) -> None:
    harness = people
    await report_need(harness, RESIDENT)
    await resolve(harness, WANG)
    assert await ratings(harness) == []
    assert questions(harness, XU) == [] and questions(harness, WANG) == []


async def test_quiet_hours_hold_the_question_and_seven_days_without_answer_lapse(
    people: Harness,
) -> None:
    harness = people
    await report_need(harness, RESIDENT)
    await harness.press(WANG, "t:decline:1")  # passed up before accepting: a decline
    await harness.say(WANG, "Needs the community's plumber")
    harness.clock.set(at(11, 30, 22))  # the coordinator works late
    await resolve(harness, XU)
    (row,) = await ratings(harness)
    assert (row.state, row.how, row.due_at) == ("pending", "pass_up", at(12, 1, 8))
    assert questions(harness, WANG) == []

    harness.clock.set(at(12, 1, 7, 59))
    assert (await rate_tick(harness)).total == 0
    assert questions(harness, WANG) == []
    harness.clock.set(at(12, 1, 8))
    assert (await rate_tick(harness)).asked == 1
    assert len(questions(harness, WANG)) == 1
    assert (await rate_tick(harness)).total == 0  # asked once

    harness.clock.set(at(12, 8, 7, 59))
    assert (await rate_tick(harness)).total == 0
    harness.clock.set(at(12, 8, 8))
    assert (await rate_tick(harness)).lapsed == 1
    assert (await rate_tick(harness)).total == 0
    (row,) = await ratings(harness)
    assert (row.state, row.rating) == ("lapsed", None)
    assert (await events(harness))[-1].action == "rate_lapsed"

    await harness.press(WANG, "ra:1:s")  # too late
    t = tr(harness, WANG)
    assert harness.results[-1].callback_answer == t._(
        "This question is closed: it was not answered within 7 days."
    )
    (row,) = await ratings(harness)
    assert row.state == "lapsed"


async def test_the_note_may_be_a_voice_message_and_a_photo_is_refused_politely(
    people: Harness,
) -> None:
    harness = people
    await report_need(harness, RESIDENT)
    await harness.press(WANG, "t:decline:1")
    await harness.say(WANG, "Needs the community's plumber")
    await resolve(harness, XU)
    await harness.press(WANG, "ra:1:u")
    t = tr(harness, WANG)
    (refusal,) = await harness.send(WANG, "photo", file_id="photo-1")
    assert refusal.text == t._("Please type a few words or send a voice message.")
    (thanks,) = await harness.send(WANG, "voice", file_id="voice-1")
    assert thanks.text.startswith(t._("Noted on the request's timeline. Thank you!"))
    (row,) = await ratings(harness)
    assert (row.rating, row.comment) == ("not_satisfied", t._("(a voice message)"))
    note = (await events(harness))[-1]
    assert (note.action, note.media_kind, note.media_file_id) == ("rate_note", "voice", "voice-1")
