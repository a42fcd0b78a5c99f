"""Reachability: only people who opened the bot get tasks; a task card Telegram refuses moves
the need on in the same outbox pass; someone who comes back hears what waited for them; a
resident who blocked the bot gets a follow-up call instead of messages."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import col, select

from domain.clock import ManualClock
from domain.deadlines import DEFAULT_POLICY
from domain.lifecycle import Level
from domain.reach import Reach, Refusal, reach_of, record_refusal, refusal_of
from domain.routing import Skip, route_request
from schedules.sweep import sweep
from storage.database import Database
from storage.models import Account, OutboxMessage, Request, RequestEvent, Staff
from tests.conftest import OPENED_AT
from tests.harness import ZONE, Harness
from tests.test_conversation_onboarding import register
from tests.test_conversation_report import report_need

RESIDENT = 900001
WANG = 700000001  # grid member of QS-JB-TH-01 (repair)
LI = 700000002  # the other grid member of QS-JB-TH-01
XU = 700000011  # coordinator of QS-JB-TH


async def staff_by_telegram(db: Database, telegram_id: int) -> Staff:
    async with db.session() as session:
        return (await session.exec(select(Staff).where(Staff.telegram_id == telegram_id))).one()


async def the_request(db: Database) -> Request:
    async with db.session() as session:
        return (await session.exec(select(Request))).one()


async def timeline(db: Database) -> list[tuple[str, str | None]]:
    async with db.session() as session:
        rows = await session.exec(
            select(RequestEvent.action, RequestEvent.note).order_by(col(RequestEvent.id))
        )
        return [(action, note) for action, note in rows.all()]


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        ("Forbidden: bot was blocked by the user", Refusal.BLOCKED),
        ("Forbidden: user is deactivated", Refusal.DEACTIVATED),
        ("Bad Request: chat not found", Refusal.CHAT_NOT_FOUND),
        ("Forbidden: bot can't initiate conversation with a user", Refusal.CHAT_NOT_FOUND),
        ("Bad Request: can't parse entities: unclosed tag", None),
        ("Bad Request: message is too long", None),
    ],
)
def test_what_a_refusal_says_about_the_person(description: str, expected: Refusal | None) -> None:
    assert refusal_of(f"send to 42: {description}") == expected


async def test_nobody_who_has_not_opened_the_bot_is_given_a_need(unopened_db: Database) -> None:
    async with unopened_db.session() as session:
        assert await route_request(session, "QS-JB-TH-01", "repair") is None
    async with unopened_db.transaction() as session:
        xu = (await session.exec(select(Staff).where(Staff.telegram_id == XU))).one()
        assert reach_of(xu) is Reach.NOT_OPENED
        xu.opened_at = OPENED_AT
        session.add(xu)
    async with unopened_db.session() as session:
        route = await route_request(session, "QS-JB-TH-01", "repair")
    assert route is not None and route.staff.telegram_id == XU
    assert route.level is Level.COMMUNITY
    assert route.skipped == [Skip(Level.GRID, "unreachable")]


async def test_first_message_opens_and_a_later_one_clears_a_refusal(
    unopened_db: Database, clock: ManualClock
) -> None:
    harness = Harness(unopened_db, clock)
    assert reach_of(await staff_by_telegram(unopened_db, WANG)) is Reach.NOT_OPENED
    await harness.say(WANG, "/start")
    wang = await staff_by_telegram(unopened_db, WANG)
    assert reach_of(wang) is Reach.REACHABLE and wang.opened_at == harness.clock.now()

    async with unopened_db.transaction() as session:
        assert await record_refusal(session, WANG, Refusal.BLOCKED, harness.clock.now())
        assert not await record_refusal(session, WANG, Refusal.BLOCKED, harness.clock.now())
    wang = await staff_by_telegram(unopened_db, WANG)
    assert reach_of(wang) is Reach.REFUSED and wang.refused_reason == "blocked"

    harness.clock.advance(timedelta(hours=1))
    await harness.say(WANG, "hello again")
    wang = await staff_by_telegram(unopened_db, WANG)
    assert reach_of(wang) is Reach.REACHABLE and wang.refused_reason is None
    # Opening is the first time, not the latest.
    assert wang.opened_at == harness.clock.now() - timedelta(hours=1)


async def test_a_refused_task_card_moves_on_in_the_same_outbox_pass(harness: Harness) -> None:
    """Wang opened the bot once, then blocked it: his card is refused, and the need goes to
    Li (the same grid) before the resident's submission has finished delivering."""
    harness.languages.update({RESIDENT: "en", WANG: "en", LI: "en"})
    harness.sender.blocked.add(WANG)
    await register(harness, RESIDENT)
    shown = await report_need(harness, RESIDENT, text="The kitchen tap leaks")
    # Routing chose Wang, as the roster says; Telegram then refused his card.
    assert "王建华 (grid member) will handle it" in shown[0].text

    request = await the_request(harness.db)
    li = await staff_by_telegram(harness.db, LI)
    assert request.assignee_staff_id == li.id and request.level == "grid"
    assert request.accept_due_at is not None and request.status == "assigned"
    wang = await staff_by_telegram(harness.db, WANG)
    assert reach_of(wang) is Reach.REFUSED and wang.refused_reason == "blocked"

    [card] = [m for m in harness.sender.messages(LI) if m.message.ref]
    assert "新任务" in card.text and "HY000001" in card.text  # Li has not written: Chinese
    assert [b.data for b in card.buttons][:2] == ["t:accept:1", "t:complex:1"]
    notices = harness.texts(RESIDENT)
    assert "now with 李秀英" in notices[-1]
    assert not any("blocked" in text or "王建华" in text for text in notices[-1:])
    assert await timeline(harness.db) == [
        ("create", None),
        ("route", None),
        ("reassign", "why:unreachable:blocked"),
    ]
    async with harness.db.session() as session:
        failed = (
            await session.exec(select(OutboxMessage).where(OutboxMessage.status == "failed"))
        ).all()
    assert [row.chat_id for row in failed] == [WANG]

    # Nothing more is written to Wang until he writes again.
    await harness.tap(LI, value="t:accept")
    assert harness.sender.messages(WANG) == []


async def test_a_refused_card_climbs_when_no_one_at_the_level_can_be_reached(
    harness: Harness,
) -> None:
    harness.languages[RESIDENT] = "en"
    harness.sender.blocked.update({WANG, LI})
    await register(harness, RESIDENT)
    await report_need(harness, RESIDENT, text="The kitchen tap leaks")

    request = await the_request(harness.db)
    xu = await staff_by_telegram(harness.db, XU)
    assert request.assignee_staff_id == xu.id and request.level == "community"
    assert any("HY000001" in m.text and m.message.ref for m in harness.sender.messages(XU))
    assert "at the community / village level" in harness.texts(RESIDENT)[-1]
    events = await timeline(harness.db)
    assert [action for action, _note in events] == ["create", "route", "reassign", "reassign"]


async def test_staff_who_come_back_hear_what_waited_for_them(harness: Harness) -> None:
    harness.languages.update({RESIDENT: "en", WANG: "en"})
    await register(harness, RESIDENT)
    await report_need(harness, RESIDENT, text="The kitchen tap leaks")
    await report_need(harness, RESIDENT, text="The door lock is broken")
    # Wang blocked the bot after both cards reached him; the reminders are refused.
    async with harness.db.transaction() as session:
        await record_refusal(session, WANG, Refusal.BLOCKED, harness.clock.now())

    shown = await harness.say(WANG, "/start")
    texts = [m.text for m in shown]
    assert texts[0].startswith("Welcome, 王建华")
    assert texts[1] == "📌 2 tasks are waiting for you:"
    assert [("HY000001" in t, "HY000002" in t) for t in texts[2:]] == [(True, False), (False, True)]
    assert all(t.startswith("<b>📌 Waiting for you</b>") for t in texts[2:])
    assert [b.data for b in shown[2].buttons][:1] == ["t:accept:1"]

    # Only once: the next message is answered as usual.
    again = await harness.say(WANG, "/start")
    assert [m.text for m in again if "waiting" in m.text] == []


async def test_a_resident_who_blocked_the_bot_gets_a_follow_up_call(harness: Harness) -> None:
    harness.languages.update({RESIDENT: "en", WANG: "en", LI: "en"})
    await harness.say(WANG, "/start")
    await register(harness, RESIDENT)
    await report_need(harness, RESIDENT, text="The kitchen tap leaks")
    await harness.tap(WANG, value="t:accept")
    harness.sender.blocked.add(RESIDENT)

    # The first refused notice tells the holder; the resident's account is marked.
    await harness.tap(WANG, value="t:ask")
    shown = await harness.say(WANG, "Which tap is it?")
    assert any("The resident could not be told about <b>HY000001</b>" in m.text for m in shown)
    async with harness.db.session() as session:
        account = (await session.exec(select(Account).where(Account.telegram_id == RESIDENT))).one()
    assert account.blocked_at == harness.clock.now()

    # From then on staff are not told "the resident has been told".
    await harness.tap(WANG, value="t:resume")
    await harness.tap(WANG, value="t:resolve")
    shown = await harness.say(WANG, "Replaced the washer")
    assert "The resident could not be told" in shown[-1].text
    assert "has been told" not in shown[-1].text

    # The verdict goes to a follow-up call by the other grid member, not to the resident.
    harness.clock.advance(timedelta(hours=2))
    before = len(harness.texts(RESIDENT))
    await sweep(harness.db, harness.clock, ZONE, DEFAULT_POLICY)
    await harness.outbox.deliver_due()
    assert len(harness.texts(RESIDENT)) == before
    request = await the_request(harness.db)
    assert request.followup_staff_id == (await staff_by_telegram(harness.db, LI)).id
    # Li never wrote to the bot in this test, so he reads Chinese (the district's language).
    assert any("<b>HY000001</b>" in t and "回访" in t for t in harness.texts(LI))


async def test_more_waiting_tasks_than_cards_point_to_the_list(harness: Harness) -> None:
    harness.languages.update({RESIDENT: "en", WANG: "en"})
    await register(harness, RESIDENT)
    for number in range(7):
        await report_need(harness, RESIDENT, text=f"Leak number {number}")
    async with harness.db.transaction() as session:
        await record_refusal(session, WANG, Refusal.CHAT_NOT_FOUND, harness.clock.now())

    shown = await harness.say(WANG, "/start")
    assert shown[1].text == (
        "📌 7 tasks are waiting for you:\nThe first 5 are below; /tasks lists them all."
    )
    cards = [m for m in shown if m.message.ref]
    assert [m.message.ref for m in cards] == [f"card:{n}:1" for n in range(1, 6)]
