"""Floods (issue 10, item 3), as people see them: per-person limits answered politely in the
user's language without losing what they typed; one summary card for a burst of needs from one
person, on arrival and on escalation; a coordinator's nuisance mark and the screening of the
marked person's needs, on the timeline."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import col, select

from domain.floods import NO_LIMITS, Limits, next_submission_at
from domain.lifecycle import Status
from storage.models import Account, ConversationState, Request, RequestEvent
from tests.harness import Harness
from tests.test_conversation_escalation import HU, STAFF, WANG, XU, run_until
from tests.test_conversation_onboarding import LANGUAGES, choose, register, tr
from tests.test_conversation_report import report_need

RESIDENT = 900001
OTHER = 900002
SUN = 700000012  # coordinator of Liuyuan community, not Tianhe
ADMIN = 700000026  # the district admin


@pytest.fixture(params=LANGUAGES)
async def resident(request: pytest.FixtureRequest, harness: Harness) -> int:
    """A resident of Tianhe Grid 1 at the main menu, speaking English or Chinese; the staff
    speak English."""
    harness.languages[RESIDENT] = request.param
    for person in (*STAFF, SUN):
        harness.languages[person] = "en"
    await register(harness, RESIDENT, "QS-JB-TH-01")
    for person in (*STAFF, SUN):
        await harness.say(person, "/start")
    harness.clock.advance(timedelta(minutes=5))
    return RESIDENT


async def all_requests(harness: Harness) -> list[Request]:
    async with harness.db.session() as session:
        return list((await session.exec(select(Request).order_by(col(Request.id)))).all())


async def events_of(harness: Harness, request_id: int) -> list[RequestEvent]:
    async with harness.db.session() as session:
        rows = await session.exec(
            select(RequestEvent)
            .where(RequestEvent.request_id == request_id)
            .order_by(col(RequestEvent.id))
        )
        return list(rows.all())


def limit(harness: Harness, **values: object) -> None:
    harness.dispatcher.limits = Limits(**values)  # type: ignore[arg-type]


# Per-person limits ---------------------------------------------------------------------------


async def test_a_need_over_the_hourly_limit_is_kept_and_can_be_sent_later(
    harness: Harness, resident: int
) -> None:
    t = tr(harness, resident)
    limit(harness, submissions_per_hour=2)
    await report_need(harness, resident, text="First")
    harness.clock.advance(timedelta(minutes=10))
    await report_need(harness, resident, text="Second")
    harness.clock.advance(timedelta(minutes=10))
    shown = await report_need(harness, resident, text="The third, typed with care")

    assert len(await all_requests(harness)) == 2
    # 10:05 + 60 minutes: the first need leaves the hour at 11:05 (Asia/Shanghai).
    assert shown[-1].text == t.ngettext(
        "You have sent {n} request in the last hour, as many as one person can send in "
        "an hour. This one is kept: tap ✅ Submit again after {time}. If it is an emergency, "
        "please call your community office or 110/120.",
        "You have sent {n} requests in the last hour, as many as one person can send in "
        "an hour. This one is kept: tap ✅ Submit again after {time}. If it is an emergency, "
        "please call your community office or 110/120.",
        2,
        time="11:05",
    )
    assert harness.last_answer == t._("Not sent yet")
    async with harness.db.session() as session:
        state = await session.get(ConversationState, resident)
        assert state is not None and state.step == "confirm"
        assert state.data["description"] == "The third, typed with care"

    # Pressing again too early changes nothing.
    await choose(harness, resident, "submit")
    assert len(await all_requests(harness)) == 2

    harness.clock.advance(timedelta(minutes=41))
    await choose(harness, resident, "submit")
    requests = await all_requests(harness)
    assert [r.description for r in requests] == ["First", "Second", "The third, typed with care"]


async def test_the_next_submission_time_counts_the_last_hour_only(
    harness: Harness, resident: int
) -> None:
    await report_need(harness, resident, text="One")
    async with harness.db.session() as session:
        account = (await session.exec(select(Account).where(Account.telegram_id == resident))).one()
        now = harness.clock.now()
        assert await next_submission_at(session, account, now, 0) is None
        assert await next_submission_at(session, account, now, 2) is None
        blocked = await next_submission_at(session, account, now, 1)
        assert blocked is not None and blocked - now <= timedelta(hours=1, minutes=1)
        assert await next_submission_at(session, account, now + timedelta(hours=1), 1) is None


async def test_updates_over_the_minute_limit_get_one_polite_answer_and_nothing_else(
    harness: Harness, resident: int
) -> None:
    t = tr(harness, resident)
    limit(harness, updates_per_minute=4)
    await harness.press(resident, "m:report")  # 1
    await choose(harness, resident, "living")  # 2
    await choose(harness, resident, "repair")  # 3
    await harness.say(resident, "Too early?")  # 4: still taken (the description step)
    answer = t._(
        "You are sending messages faster than I can take them, so I did not act on that "
        "one. Please wait a minute, then send it again; where you were is kept."
    )
    first_over = await choose(harness, resident, "edit")  # 5: over
    assert [m.text for m in first_over] == [answer]
    assert harness.last_answer == answer[:200]
    assert await harness.say(resident, "more") == []  # 6: silent
    assert await harness.press(resident, "m:mine") == []  # 7: silent, but the spinner stops
    assert harness.last_answer == answer[:200]
    async with harness.db.session() as session:
        state = await session.get(ConversationState, resident)
        assert state is not None and state.step == "confirm"
        assert state.data["description"] == "Too early?"

    harness.clock.advance(timedelta(seconds=61))
    await choose(harness, resident, "submit")
    assert [r.description for r in await all_requests(harness)] == ["Too early?"]


async def test_staff_are_not_limited(harness: Harness, resident: int) -> None:
    limit(harness, updates_per_minute=2, submissions_per_hour=1)
    for _ in range(5):
        shown = await harness.say(WANG, "/tasks")
        assert shown, "staff always get an answer"


# One summary card for a burst ----------------------------------------------------------------


async def test_a_burst_of_needs_is_one_summary_card_that_opens_each(
    harness: Harness, resident: int
) -> None:
    limit(harness, burst_window=timedelta(minutes=30))
    before = len(harness.sender.messages(WANG))
    for number in range(1, 6):
        await report_need(harness, resident, text=f"Need number {number}")
        harness.clock.advance(timedelta(seconds=10))
    requests = await all_requests(harness)
    assert {r.assignee_staff_id for r in requests} == {requests[0].assignee_staff_id}
    shown = harness.sender.messages(WANG)[before:]
    assert len(shown) == 2, [m.text for m in shown]
    card, summary = shown
    assert card.message.ref == f"card:1:{requests[0].assignee_staff_id}"
    assert summary.text.startswith(
        "<b>🗂 5 tasks from the same person, user900001, in the last 30 minutes</b>"
    )
    for request in requests:
        assert request.reference in summary.text
        assert f"v:{request.id}" in [b.data for b in summary.buttons]
    assert "/nuisance HY000001" in summary.text
    assert summary.edits == 3  # updated in place for needs 3, 4 and 5

    # Each need opens as its own card, with its actions, and the summary stays one message.
    opened = await harness.press(WANG, "v:4", summary.message_id)
    assert len(opened) == 1 and "HY000004" in opened[0].text
    accept = next(b.data for b in opened[0].buttons if b.data == "t:accept:4")
    await harness.press(WANG, accept, opened[0].message_id)
    assert (await all_requests(harness))[3].status == Status.IN_PROGRESS

    # Someone else's need is a card of its own; and so is this resident's, once the window
    # has passed.
    harness.languages[OTHER] = "en"
    await register(harness, OTHER, "QS-JB-TH-01")
    count = len(harness.sender.messages(WANG))
    await report_need(harness, OTHER, text="Another person")
    assert [m.message.ref for m in harness.sender.messages(WANG)[count:]] == ["card:6:1"]
    harness.clock.advance(timedelta(minutes=31))
    await report_need(harness, resident, text="Later")
    assert harness.sender.messages(WANG)[-1].message.ref == "card:7:1"


async def test_without_a_window_each_need_has_its_own_card(harness: Harness, resident: int) -> None:
    harness.dispatcher.limits = NO_LIMITS
    before = len(harness.sender.messages(WANG))
    for number in range(3):
        await report_need(harness, resident, text=f"Need {number}")
    refs = [m.message.ref for m in harness.sender.messages(WANG)[before:]]
    assert refs == ["card:1:1", "card:2:1", "card:3:1"]


async def test_a_burst_escalates_as_one_summary_card(harness: Harness, resident: int) -> None:
    from schedules.sweep import sweep
    from tests.test_conversation_escalation import ZONE

    window = timedelta(minutes=30)
    limit(harness, burst_window=window)
    for number in range(1, 5):
        await report_need(harness, resident, text=f"Leak {number}")
    wang_before = len(harness.sender.messages(WANG))
    xu_before = len(harness.sender.messages(XU))

    # Nobody accepts: the next working day the four needs go up together.
    from domain.deadlines import DEFAULT_POLICY

    async def burst_tick() -> None:
        await sweep(harness.db, harness.clock, ZONE, DEFAULT_POLICY, burst_window=window)
        await harness.outbox.deliver_due()

    while not all(r.level == "community" for r in await all_requests(harness)):
        harness.clock.advance(timedelta(minutes=30))
        await burst_tick()

    xu_new = harness.sender.messages(XU)[xu_before:]
    refs = [m.message.ref for m in xu_new if m.message.ref]
    assert len(refs) == 2, [m.text for m in xu_new]
    assert refs[0] == "card:1:" + str((await all_requests(harness))[0].assignee_staff_id)
    assert refs[1].startswith("burst:")
    assert "🗂 4 tasks from the same person" in xu_new[-1].text or any(
        "🗂 4 tasks" in m.text for m in xu_new
    )
    # The grid member's card of its own (the first need's) shows it moved on, and the first
    # need's reminder and notice stand for the burst: the needs they saw only in the summary
    # get no card, reminder or notice one by one (the timeline says why).
    wang_new = harness.sender.messages(WANG)[wang_before:]
    assert not any(m.message.ref or m.message.edit_ref for m in wang_new), [
        (m.text[:80], m.message.ref, m.message.edit_ref) for m in wang_new
    ]
    assert [m.text.split("</b>")[0][-8:] for m in wang_new if "⏰" in m.text] == ["HY000001"]
    assert [m.text for m in wang_new if "has gone up to" in m.text] == [
        m.text for m in wang_new if "HY000001 was not accepted in time" in m.text
    ]
    assert len([m for m in wang_new if "has gone up to" in m.text]) == 1
    reminders = [e.note for e in await events_of(harness, 3) if e.action == "remind"]
    assert reminders == ["clock:accept\nburst:summary"]
    status = await harness.say(XU, "/status HY000003")
    assert "not sent on its own: the need is in a summary card with others" in status[0].text

    # At the top, the admin is told of the first need's missed deadline, not of each.
    while not all(r.level == "district" for r in await all_requests(harness)):
        harness.clock.advance(timedelta(minutes=30))
        await burst_tick()
    admin_before = len(harness.sender.messages(ADMIN))
    while not any(e.action == "overdue" for e in await events_of(harness, 4)):
        harness.clock.advance(timedelta(minutes=30))
        await burst_tick()
    warnings = [m.text for m in harness.sender.messages(ADMIN)[admin_before:] if "⚠" in m.text]
    assert len(warnings) == 1 and "HY000001" in warnings[0]
    overdue = [e.note for e in await events_of(harness, 4) if e.action == "overdue"]
    assert overdue == ["why:accept_overdue\nwhy:nobody_above\nburst:summary"]
    assert harness.sender.messages(WANG)[wang_before - 2].text.startswith("This task has moved on.")


async def test_escalation_without_a_window_sends_a_card_each(
    harness: Harness, resident: int
) -> None:
    for number in range(1, 4):
        await report_need(harness, resident, text=f"Leak {number}")
    xu_before = len(harness.sender.messages(XU))
    await run_until(harness, harness.clock.now() + timedelta(days=2))
    cards = [m for m in harness.sender.messages(XU)[xu_before:] if m.message.ref]
    assert len(cards) == 3


# Nuisance and screening ----------------------------------------------------------------------


async def test_a_coordinator_marks_a_nuisance_and_screens_their_needs(
    harness: Harness, resident: int
) -> None:
    t = tr(harness, resident)
    await report_need(harness, resident, text="A first need")  # HY000001, with Wang

    # Not theirs to mark: a grid member, a coordinator of another community.
    assert (
        "/nuisance is for community coordinators" in (await harness.say(WANG, "/nuisance"))[0].text
    )
    refused = await harness.say(SUN, "/nuisance HY000001")
    assert refused[0].text == "There is no request HY000001 in your area."

    marked = await harness.say(XU, "/nuisance HY000001")
    assert marked[0].text.startswith("🚫 user900001, who reported HY000001, is marked")
    async with harness.db.session() as session:
        account = (await session.exec(select(Account).where(Account.telegram_id == resident))).one()
        assert account.nuisance_at == harness.clock.now()
    flag = (await events_of(harness, 1))[-1]
    assert (flag.action, flag.note) == ("flag", "nuisance:on")
    listed = await harness.say(XU, "/nuisance")
    assert "user900001 (latest: HY000001)" in listed[0].text

    # Their next need goes to the coordinator to review; the grid member hears nothing.
    wang_before = len(harness.sender.messages(WANG))
    shown = await report_need(harness, resident, text="A second need")
    assert shown[-1].text.startswith(
        t._(
            "✅ Received. Your reference number is <b>{ref}</b>. You will hear from us when "
            "someone takes it on.",
            ref="HY000002",
        )
    )
    second = (await all_requests(harness))[1]
    assert second.status == Status.NEW and second.next_due_at is None
    assert harness.sender.messages(WANG)[wang_before:] == []
    screen_card = harness.sender.messages(XU)[-1]
    assert screen_card.text.startswith("<b>🔍 To review first: user900001 was marked")
    assert [b.data for b in screen_card.buttons] == ["sc:pass:2", "sc:close:2"]
    assert [(e.action, e.note) for e in await events_of(harness, 2)] == [
        ("create", None),
        ("screen", "screen:held"),
    ]

    # Someone else cannot screen it; the coordinator passes it on to the normal route.
    await harness.press(WANG, "sc:pass:2")
    assert harness.last_answer == "This request is not waiting for your review."
    await harness.press(XU, "sc:pass:2", screen_card.message_id)
    second = (await all_requests(harness))[1]
    assert second.status == Status.ASSIGNED and second.level == "grid"
    assert harness.sender.messages(WANG)[-1].message.ref == f"card:2:{second.assignee_staff_id}"
    moved = t._("🔄 Your request <b>{ref}</b> is now with {who}.", ref="HY000002", who="\x00")
    assert harness.sender.messages(resident)[-1].text.startswith(moved.split("\x00")[0])
    assert ("route", "screen:passed") in [(e.action, e.note) for e in await events_of(harness, 2)]
    assert screen_card.text.startswith("This task has moved on.")
    await harness.press(XU, "sc:pass:2", screen_card.message_id)  # a second tap
    assert harness.last_answer == "This request is not waiting for your review."

    # A third need: closed with a note, which the resident reads; it counts as withdrawn.
    await report_need(harness, resident, text="A third need")
    await harness.press(XU, "sc:close:3")
    await harness.say(XU, "   ")
    assert harness.last_text(XU) == "Please type a short note."
    await harness.say(XU, "Already fixed last week")
    third = (await all_requests(harness))[2]
    assert third.status == Status.CANCELLED
    assert harness.last_text(XU) == "✖ HY000003 is closed with your note."
    assert harness.sender.messages(resident)[-1].text == t._(
        "Your request <b>{ref}</b> was closed after review: {note}",
        ref="HY000003",
        note="Already fixed last week",
    )
    closing = (await events_of(harness, 3))[-1]
    assert (closing.action, closing.note) == ("cancel", "screen:closed\nAlready fixed last week")

    # The resident's own timeline leaves the mark out; the coordinator's shows it.
    timeline = await harness.press(resident, "v:1")
    assert "nuisance" not in timeline[0].text.lower() and "标记" not in timeline[0].text
    status = await harness.say(XU, "/status HY000001")
    assert "marked as a nuisance" in status[0].text

    # Unmarked: needs take the normal route again, and the timeline says so.
    unmarked = await harness.say(XU, "/nuisance HY000002 off")
    assert unmarked[0].text.startswith("✅ user900001 is no longer marked")
    assert (await events_of(harness, 2))[-1].note == "nuisance:off"
    await report_need(harness, resident, text="A fourth need")
    fourth = (await all_requests(harness))[3]
    assert fourth.status == Status.ASSIGNED and fourth.level == "grid"
    assert (await harness.say(XU, "/nuisance HY000001 off"))[0].text == (
        "user900001 is not marked as a nuisance."
    )


async def test_the_unmark_button_and_a_marker_out_of_reach(harness: Harness, resident: int) -> None:
    await report_need(harness, resident, text="Something")
    await harness.say(XU, "/nuisance HY000001")
    listed = await harness.say(XU, "/nuisance")
    assert [b.data for b in listed[0].buttons] == ["nz:1"]
    await harness.press(SUN, "nz:1")
    assert harness.last_answer == "This request is not available."
    await harness.press(XU, "nz:1", listed[0].message_id)
    assert harness.last_text(XU).startswith("✅ user900001 is no longer marked")

    # Marked by the town officer, who then blocks the bot: a coordinator over the grid screens.
    await harness.say(HU, "/nuisance HY000001")
    harness.sender.blocked.add(HU)
    await harness.say(HU, "/tasks")  # a reply Telegram refuses: Hu is out of reach
    await report_need(harness, resident, text="Screened by the community")
    second = (await all_requests(harness))[1]
    assert second.status == Status.NEW
    assert harness.sender.messages(XU)[-1].text.startswith("<b>🔍 To review first")
    assert [b.data for b in harness.sender.messages(XU)[-1].buttons] == [
        "sc:pass:2",
        "sc:close:2",
    ]


# Settings ------------------------------------------------------------------------------------


def test_the_limits_come_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.settings import SettingsError, load_settings
    from domain.floods import DEFAULT_LIMITS

    for name in ("SUBMISSIONS_PER_HOUR", "UPDATES_PER_MINUTE"):
        monkeypatch.delenv(f"HUIYIN_LIMIT_{name}", raising=False)
    monkeypatch.delenv("HUIYIN_BURST_WINDOW_MINUTES", raising=False)
    assert load_settings(_env_file=None).flood_limits == DEFAULT_LIMITS
    monkeypatch.setenv("HUIYIN_LIMIT_SUBMISSIONS_PER_HOUR", "0")
    monkeypatch.setenv("HUIYIN_LIMIT_UPDATES_PER_MINUTE", "12")
    monkeypatch.setenv("HUIYIN_BURST_WINDOW_MINUTES", "0")
    assert load_settings(_env_file=None).flood_limits == Limits(
        submissions_per_hour=0, updates_per_minute=12, burst_window=timedelta(0)
    )
    monkeypatch.setenv("HUIYIN_LIMIT_UPDATES_PER_MINUTE", "-1")
    with pytest.raises(SettingsError, match="HUIYIN_LIMIT_UPDATES_PER_MINUTE"):
        load_settings(_env_file=None)
