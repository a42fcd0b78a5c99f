"""Deadlines and escalation as people see them, with an injected clock and the sweep called
directly: a request nobody accepts climbs the ladder day by day; an urgent one escalates within
the hour, at night; passing up by hand; pulling a request down with /reassign; the clock that
waits for the resident's answer; quiet hours for residents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import col, select

from bot.channels.memory import ShownMessage
from domain.deadlines import DEFAULT_POLICY
from domain.labels import LEVEL_LABELS
from schedules.sweep import SweepReport, sweep
from storage.models import Request, RequestEvent, Staff
from tests.harness import Harness
from tests.test_conversation_onboarding import LANGUAGES, register, tr
from tests.test_conversation_report import report_need

ZONE = ZoneInfo("Asia/Shanghai")
RESIDENT = 900001
WANG = 700000001  # grid member, Tianhe Grid 1 (repair; safety; errand)
LI = 700000002  # the other grid member of Tianhe Grid 1
XU = 700000011  # coordinator, Tianhe community
SUN = 700000012  # coordinator, Liuyuan community (not Tianhe)
HU = 700000017  # town officer, Jiangbei Street
LUO = 700000022  # district housing bureau: housing; repair
STAFF = (WANG, LI, XU, HU, LUO)


def at(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=ZONE).astimezone(UTC)


async def tick(harness: Harness) -> SweepReport:
    """One sweep tick at the clock's time, then the outbox delivered."""
    report = await sweep(harness.db, harness.clock, ZONE, DEFAULT_POLICY)
    await harness.outbox.deliver_due()
    return report


async def run_until(harness: Harness, end: datetime, step: timedelta = timedelta(minutes=30)):
    """Tick every `step` (as the scheduler would, if more sparsely) until `end`."""
    while harness.clock.now() < end:
        harness.clock.advance(min(step, end - harness.clock.now()))
        await tick(harness)


async def request_row(harness: Harness, request_id: int = 1) -> Request:
    async with harness.db.session() as session:
        request = await session.get(Request, request_id)
        assert request is not None
        return request


async def events(harness: Harness, request_id: int = 1) -> list[RequestEvent]:
    async with harness.db.session() as session:
        rows = await session.exec(
            select(RequestEvent)
            .where(RequestEvent.request_id == request_id)
            .order_by(col(RequestEvent.id))
        )
        return list(rows.all())


async def staff_id(harness: Harness, telegram_id: int) -> int:
    async with harness.db.session() as session:
        staff = (await session.exec(select(Staff).where(Staff.telegram_id == telegram_id))).one()
        assert staff.id is not None
        return staff.id


def new_cards(harness: Harness, user: int) -> list[ShownMessage]:
    return [m for m in harness.sender.messages(user) if m.message.ref]


def containing(harness: Harness, user: int, text: str) -> list[ShownMessage]:
    return [m for m in harness.sender.messages(user) if text in m.text]


@pytest.fixture(params=LANGUAGES)
async def people(request: pytest.FixtureRequest, harness: Harness) -> Harness:
    """Staff who have opened the bot and a registered resident of Tianhe Grid 1, all speaking
    one language; Monday 30 November 2026, 10:00 in Shanghai."""
    for user in (*STAFF, RESIDENT, SUN):
        harness.languages[user] = request.param
    for user in (*STAFF, SUN):
        await harness.say(user, "/start")
    await register(harness, RESIDENT)
    return harness


# Climbing the ladder --------------------------------------------------------------------------


async def test_an_unaccepted_request_climbs_the_ladder_day_by_day(people: Harness) -> None:
    harness = people
    await report_need(harness, RESIDENT, text="The kitchen tap leaks")  # Monday 10:00
    (wang_card,) = new_cards(harness, WANG)
    t = tr(harness, WANG)
    assert t._("⏳ Accept by: {time}", time="2026-12-01 10:00") in wang_card.text
    assert t._("⏳ Resolve by: {time}", time="2026-12-09 10:00") in wang_card.text

    # Nobody accepts, from Monday to Thursday; the sweep ticks every half hour.
    ladder = [(WANG, XU, "grid", 1), (XU, HU, "community", 2), (HU, LUO, "town", 3)]
    for _owner, above, level, day in ladder:
        await run_until(harness, at(12, day, 10))
        t = tr(harness, above)
        (above_card,) = new_cards(harness, above)  # each level gets its card once
        assert above_card.text.startswith(
            "<b>"
            + t._(
                "⏫ Escalated to you: {why} at the {level} level",
                why=t._("not accepted in time"),
                level=t._(LEVEL_LABELS[level]),
            )
            + "</b>"
        )
    await run_until(harness, at(12, 3, 12))
    for owner, above, _level, _day in ladder:
        t = tr(harness, owner)
        assert len(containing(harness, owner, "⏰")) == 1  # reminded once
        (card,) = new_cards(harness, owner)
        assert card.text.startswith(t._("This task has moved on."))
        (moved,) = containing(harness, owner, "⏫")
        assert moved.text == t._(
            "⏫ {ref} was {why}, so it has gone up to {who}.",
            ref="HY000001",
            why=t._("not accepted in time"),
            who=(await label(harness, above, t)),
        )
    luo_card = new_cards(harness, LUO)[0]
    assert [b.data for b in luo_card.buttons][:2] == ["t:accept:1", "t:complex:1"]

    request = await request_row(harness)
    assert (request.level, request.assignee_staff_id) == (
        "department",
        await staff_id(harness, LUO),
    )
    assert [(e.action, e.to_level, e.note) for e in await events(harness)] == [
        ("create", "grid", None),
        ("route", "grid", None),
        ("remind", "grid", "clock:accept"),
        ("escalate", "community", "why:accept_overdue"),
        ("remind", "community", "clock:accept"),
        ("escalate", "town", "why:accept_overdue"),
        ("remind", "town", "clock:accept"),
        ("escalate", "department", "why:accept_overdue"),
    ]

    # The resident was told each time, where it went.
    t = tr(harness, RESIDENT)
    notices = containing(harness, RESIDENT, "⏫")
    assert [n.text for n in notices] == [
        t._(
            "⏫ Your request <b>{ref}</b> is now with {who}, at the {level} level, "
            "so that it gets done.",
            ref="HY000001",
            who=await label(harness, who, t),
            level=t._(LEVEL_LABELS[level]),
        )
        for who, level in ((XU, "community"), (HU, "town"), (LUO, "department"))
    ]
    (timeline,) = await harness.press(RESIDENT, "v:1")
    assert t._("not accepted in time") in timeline.text


async def label(harness: Harness, telegram_id: int, t: object) -> str:
    from domain.labels import staff_label

    async with harness.db.session() as session:
        staff = (await session.exec(select(Staff).where(Staff.telegram_id == telegram_id))).one()
    return staff_label(t, staff)  # type: ignore[arg-type]


async def test_an_urgent_safety_request_escalates_within_the_hour_at_night(
    harness: Harness,
) -> None:
    harness.clock.set(at(11, 30, 23))  # Monday, 23:00
    for user in (WANG, XU, RESIDENT):
        harness.languages[user] = "en"
    await harness.say(WANG, "/start")
    await harness.say(XU, "/start")
    await register(harness, RESIDENT)
    await report_need(harness, RESIDENT, category="safety", text="Sparks from the meter box")
    (card,) = new_cards(harness, WANG)
    assert "🚨 Urgent" in card.text
    assert "⏳ Accept by: 2026-12-01 00:00" in card.text
    assert "t:urgent:1" not in [b.data for b in card.buttons]

    harness.clock.set(at(11, 30, 23, 44))
    assert (await tick(harness)).total == 0
    harness.clock.set(at(11, 30, 23, 45))
    await tick(harness)
    (reminder,) = containing(harness, WANG, "⏰")  # delivered at once, at night
    assert reminder.text == (
        "⏰ Reminder: please accept <b>HY000001</b> (Safety hazard) by 2026-12-01 00:00."
    )
    assert [b.data for b in reminder.buttons] == ["v:1"]

    harness.clock.set(at(12, 1, 0))  # midnight: an hour after it came in
    report = await tick(harness)
    assert report.actions == [(1, "escalate:grid->community")]
    (xu_card,) = new_cards(harness, XU)
    assert xu_card.text.startswith("<b>⏫ Escalated to you: not accepted in time at the grid level")
    assert "⏳ Accept by: 2026-12-01 01:00" in xu_card.text
    # Urgent: the resident is told now, quiet hours or not.
    assert harness.last_text(RESIDENT).startswith(
        "⏫ Your request <b>HY000001</b> is now with 徐国庆"
    )


# Passing up and pulling down ------------------------------------------------------------------


async def test_pass_up_by_hand_after_accepting(harness: Harness) -> None:
    for user in (WANG, XU, RESIDENT):
        harness.languages[user] = "en"
    await harness.say(WANG, "/start")
    await harness.say(XU, "/start")
    await register(harness, RESIDENT)
    await report_need(harness, RESIDENT)
    await harness.press(WANG, "t:accept:1")
    harness.clock.advance(timedelta(hours=2))

    (prompt,) = await harness.press(WANG, "t:decline:1")
    assert prompt.text == (
        "HY000001: why can this level not meet the need? It goes to the level above at once."
    )
    (done,) = await harness.say(WANG, "The whole building's riser pipe is broken")
    assert done.text == "↩ HY000001 was passed to 徐国庆 (community coordinator)."

    (xu_card,) = new_cards(harness, XU)
    assert xu_card.text.startswith(
        "<b>↩ Passed on by 王建华: The whole building's riser pipe is broken</b>"
    )
    request = await request_row(harness)
    assert (request.status, request.level) == ("assigned", "community")
    assert request.accept_due_at == at(12, 1, 12)  # a fresh working day for the coordinator
    last = (await events(harness))[-1]
    assert (last.action, last.note) == (
        "escalate",
        "why:pass_up\nThe whole building's riser pipe is broken",
    )
    assert harness.last_text(RESIDENT).startswith(
        "⏫ Your request <b>HY000001</b> is now with 徐国庆 (community coordinator), "
        "at the community / village level"
    )
    (timeline,) = await harness.press(RESIDENT, "v:1")
    assert "passed up by hand; The whole building&#x27;s" in timeline.text or (
        "passed up by hand; The whole building's riser pipe is broken" in timeline.text
    )


async def passed_to_xu(harness: Harness) -> None:
    for user in (WANG, LI, XU, SUN, RESIDENT):
        harness.languages[user] = "en"
        await harness.say(user, "/start") if user != RESIDENT else None
    await register(harness, RESIDENT)
    await report_need(harness, RESIDENT)
    await harness.press(WANG, "t:decline:1")
    await harness.say(WANG, "Needs a plumber from the community")


async def test_the_coordinator_pulls_a_request_down_to_a_named_grid_member(
    harness: Harness,
) -> None:
    await passed_to_xu(harness)
    harness.clock.advance(timedelta(hours=1))

    (listing,) = await harness.say(XU, "/reassign")
    assert listing.text == "Which request do you want to reassign?"
    assert [b.data for b in listing.buttons] == ["r:1"]
    (choices,) = await harness.press(XU, "r:1")
    assert choices.text == "HY000001 is with 徐国庆 (community coordinator). Who should have it?"
    li, wang, zhang = [await staff_id(harness, u) for u in (LI, WANG, 700000003)]
    assert [b.data for b in choices.buttons] == [f"r:1:{li}", f"r:1:{wang}", f"r:1:{zhang}"]

    (done,) = await harness.press(XU, f"r:1:{li}")
    assert done.text == "🔄 HY000001 is now with 李秀英 (grid member)."
    (li_card,) = new_cards(harness, LI)
    assert li_card.text.startswith("<b>📌 Given to you by 徐国庆</b>")
    assert [b.data for b in li_card.buttons][:2] == ["t:accept:1", "t:complex:1"]
    request = await request_row(harness)
    assert (request.level, request.assignee_staff_id, request.status) == ("grid", li, "assigned")
    assert request.accept_due_at == at(12, 1, 11)
    (xu_card,) = new_cards(harness, XU)
    assert xu_card.text.startswith("This task has moved on.")
    assert harness.last_text(RESIDENT).startswith(
        "🔄 Your request <b>HY000001</b> is now with 李秀英 (grid member)."
    )
    last = (await events(harness))[-1]
    assert (last.action, last.from_level, last.to_level, last.actor_staff_id) == (
        "reassign",
        "community",
        "grid",
        await staff_id(harness, XU),
    )

    # A second tap on the same button changes nothing.
    assert await harness.press(XU, f"r:1:{li}") == []
    assert harness.last_answer == "HY000001 is already with 李秀英."
    assert [e.action for e in await events(harness)].count("reassign") == 1


async def test_reassign_by_name_and_who_may(harness: Harness) -> None:
    await passed_to_xu(harness)
    (refused,) = await harness.say(WANG, "/reassign HY000001")
    assert refused.text == "/reassign is for coordinators and the levels above them."
    (elsewhere,) = await harness.say(SUN, "/reassign HY000001")
    assert elsewhere.text == "There is no request HY000001 in your area."
    assert await harness.press(SUN, f"r:1:{await staff_id(harness, LI)}") == []
    assert harness.last_answer == "This request is not available."

    (done,) = await harness.say(XU, "/reassign HY000001 王建华")
    assert done.text == "🔄 HY000001 is now with 王建华 (grid member)."
    assert (await request_row(harness)).assignee_staff_id == await staff_id(harness, WANG)
    # The request is at the grid now: the coordinator may still move it.
    nobody, choices = await harness.say(XU, "/reassign HY000001 Nobody")
    assert nobody.text == "No one called Nobody can take HY000001. Choose below:"
    assert choices.text.startswith("HY000001 is with 王建华 (grid member).")


# The clock waits for the resident ---------------------------------------------------------------


async def test_the_clock_pauses_while_waiting_for_the_resident(harness: Harness) -> None:
    for user in (WANG, RESIDENT):
        harness.languages[user] = "en"
    await harness.say(WANG, "/start")
    await register(harness, RESIDENT)
    await report_need(harness, RESIDENT)
    await harness.press(WANG, "t:accept:1")
    harness.clock.set(at(12, 8, 10))  # Tuesday next week: 9 working hours left to resolve
    await tick(harness)  # the 75% reminder (Mon 7 Dec) goes out now

    (prompt,) = await harness.press(WANG, "t:ask:1")
    assert prompt.text.startswith("HY000001: what would you like to ask the resident?")
    (sent,) = await harness.say(WANG, "Is the leak under the sink or at the tap?")
    assert sent.text == (
        "❓ Your question on HY000001 was sent to the resident. The clock is paused until "
        "they answer."
    )
    question = harness.sender.messages(RESIDENT)[-1]
    assert question.text == (
        "❓ 王建华 (grid member) has a question about your request <b>HY000001</b>:\n"
        "Is the leak under the sink or at the tap?"
    )
    assert [b.data for b in question.buttons] == ["q:1", "v:1"]
    (card,) = new_cards(harness, WANG)
    assert "⏸ Waiting for the resident's answer since 2026-12-08 10:00" in card.text
    assert "t:resume:1" in [b.data for b in card.buttons]

    # A week passes: no reminder, no escalation while the clock is paused.
    await run_until(harness, at(12, 15, 10), step=timedelta(hours=2))
    request = await request_row(harness)
    assert (request.level, request.next_due_at) == ("grid", None)
    assert len(containing(harness, WANG, "⏰")) == 1

    (ask,) = await harness.press(RESIDENT, "q:1")
    assert ask.text.startswith("Please send your answer about HY000001")
    (thanks,) = await harness.say(RESIDENT, "Under the sink, at the pipe joint")
    assert thanks.text.startswith("Thank you. Your answer was passed to 王建华 (grid member).")
    assert containing(harness, WANG, "💬")[0].text == (
        "💬 The resident answered about <b>HY000001</b>:\nUnder the sink, at the pipe joint"
    )
    request = await request_row(harness)
    assert request.paused_at is None
    assert request.resolve_due_at == at(12, 16, 10)  # the 9 working hours that were left
    assert [e.action for e in await events(harness)][-3:] == ["remind", "wait", "answer"]
    (card,) = new_cards(harness, WANG)
    assert "t:ask:1" in [b.data for b in card.buttons]

    harness.clock.set(at(12, 16, 10))
    assert (await tick(harness)).actions == [(1, "escalate:grid->community")]


async def test_staff_can_restart_the_clock_without_an_answer(harness: Harness) -> None:
    harness.languages[WANG] = "en"
    await harness.say(WANG, "/start")
    await register(harness, RESIDENT)
    await report_need(harness, RESIDENT)
    await harness.press(WANG, "t:accept:1")
    await harness.press(WANG, "t:ask:1")
    await harness.say(WANG, "When are you at home?")
    assert (await request_row(harness)).paused_at is not None
    harness.clock.advance(timedelta(hours=1))
    await harness.press(WANG, "t:resume:1")
    assert harness.last_answer == "The clock runs again."
    assert (await request_row(harness)).paused_at is None
    await harness.press(WANG, "t:resume:1")
    assert harness.last_answer == "The clock is already running."
    assert [e.action for e in await events(harness)][-2:] == ["wait", "resume"]


# Accepting as complex, marking urgent ---------------------------------------------------------


async def test_accept_as_complex_gives_fifteen_working_days(harness: Harness) -> None:
    for user in (WANG, RESIDENT):
        harness.languages[user] = "en"
    await harness.say(WANG, "/start")
    await register(harness, RESIDENT)
    await report_need(harness, RESIDENT)
    assert await harness.press(WANG, "t:complex:1") == []
    assert harness.last_answer == "Accepted as complex"
    request = await request_row(harness)
    assert (request.status, request.priority) == ("in_progress", "complex")
    assert request.resolve_due_at == at(12, 21, 10)
    assert harness.last_text(RESIDENT).endswith(
        "It needs more work than usual; the aim is to finish by 2026-12-21 10:00."
    )
    assert (await events(harness))[-1].note == "priority:complex"


async def test_mark_urgent_shortens_the_clocks(harness: Harness) -> None:
    harness.languages[WANG] = "en"
    await harness.say(WANG, "/start")
    await register(harness, RESIDENT)
    await report_need(harness, RESIDENT)
    harness.clock.advance(timedelta(minutes=20))
    await harness.press(WANG, "t:urgent:1")
    assert harness.last_answer == "Marked urgent: the urgent deadlines apply."
    request = await request_row(harness)
    assert (request.priority, request.accept_due_at) == ("urgent", at(11, 30, 11, 20))
    (card,) = new_cards(harness, WANG)
    assert "t:urgent:1" not in [b.data for b in card.buttons]
    await harness.press(WANG, "t:urgent:1")
    assert harness.last_answer == "It is already marked urgent."
    harness.clock.set(at(11, 30, 11, 20))
    assert (await tick(harness)).actions == [(1, "escalate:grid->community")]


# Quiet hours ----------------------------------------------------------------------------------


async def test_a_notice_at_night_waits_for_the_morning(harness: Harness) -> None:
    for user in (WANG, RESIDENT):
        harness.languages[user] = "en"
    await harness.say(WANG, "/start")
    await register(harness, RESIDENT)
    await report_need(harness, RESIDENT)  # 10:00
    harness.clock.set(at(11, 30, 22))
    before = len(harness.sender.messages(RESIDENT))
    await harness.press(WANG, "t:accept:1")  # a grid member working late
    assert len(harness.sender.messages(RESIDENT)) == before  # not at 22:00

    harness.clock.set(at(12, 1, 7, 59))
    await harness.outbox.deliver_due()
    assert len(harness.sender.messages(RESIDENT)) == before
    harness.clock.set(at(12, 1, 8))
    await harness.outbox.deliver_due()
    assert harness.last_text(RESIDENT).startswith(
        "👍 Your request <b>HY000001</b> has been accepted"
    )


async def test_a_resident_who_writes_at_night_gets_what_waited_first(harness: Harness) -> None:
    for user in (WANG, RESIDENT):
        harness.languages[user] = "en"
    await harness.say(WANG, "/start")
    await register(harness, RESIDENT)
    await report_need(harness, RESIDENT)
    harness.clock.set(at(11, 30, 22))
    await harness.press(WANG, "t:accept:1")
    harness.clock.set(at(11, 30, 23, 30))
    shown = await harness.say(RESIDENT, "/menu")
    notice, menu = shown
    assert notice.text.startswith("👍 Your request <b>HY000001</b> has been accepted")
    assert menu.text == "What would you like to do?"


async def test_a_resident_still_in_the_chat_is_not_kept_waiting(harness: Harness) -> None:
    for user in (WANG, RESIDENT):
        harness.languages[user] = "en"
    harness.clock.set(at(11, 30, 21, 40))
    await harness.say(WANG, "/start")
    await register(harness, RESIDENT)
    await report_need(harness, RESIDENT)  # 21:40
    harness.clock.set(at(11, 30, 21, 55))
    await harness.press(WANG, "t:accept:1")
    assert harness.last_text(RESIDENT).startswith(
        "👍 Your request <b>HY000001</b> has been accepted"
    )


async def test_a_request_no_one_could_be_reached_for_is_routed_by_hand(harness: Harness) -> None:
    await passed_to_xu(harness)
    async with harness.db.transaction() as session:  # as if no one had been reachable at all
        request = await session.get(Request, 1)
        assert request is not None
        request.status, request.assignee_staff_id, request.level = "new", None, "grid"
        request.next_due_at = request.accept_due_at = request.resolve_due_at = None
        session.add(request)
    (choices,) = await harness.say(XU, "/reassign HY000001")
    assert choices.text == "HY000001 is with nobody yet. Who should have it?"
    await harness.press(XU, f"r:1:{await staff_id(harness, LI)}")
    request = await request_row(harness)
    assert (request.status, request.assignee_staff_id) == ("assigned", await staff_id(harness, LI))
    assert request.accept_due_at == at(12, 1, 10)
    last = (await events(harness))[-1]
    assert (last.action, last.actor_staff_id) == ("route", await staff_id(harness, XU))
    assert len(new_cards(harness, LI)) == 1
