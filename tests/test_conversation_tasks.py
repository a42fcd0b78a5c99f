"""What staff do with a task: accept, resolve with a note, pass it up; and the refusals of
buttons that are not theirs, stale, or pressed twice."""

from __future__ import annotations

import pytest
from sqlmodel import col, select

from storage.models import ConversationState, Request, RequestEvent, Staff
from tests.harness import Harness
from tests.test_conversation_onboarding import LANGUAGES, register, tr, values
from tests.test_conversation_report import report_need

RESIDENT = 900001
WANG = 700000001  # grid member of QS-JB-TH-01 (repair)
LI = 700000002  # the other grid member of QS-JB-TH-01
XU = 700000011  # coordinator of QS-JB-TH


@pytest.fixture(params=LANGUAGES)
async def task(request: pytest.FixtureRequest, harness: Harness) -> int:
    """A repair request from a resident of Tianhe Grid 1, assigned to Wang; both speak the
    same language."""
    harness.languages[RESIDENT] = harness.languages[WANG] = request.param
    await harness.say(WANG, "/start")
    await register(harness, RESIDENT)
    await report_need(harness, RESIDENT, text="The kitchen tap leaks")
    (stored,) = await all_requests(harness)
    assert stored.id is not None
    return stored.id


async def all_requests(harness: Harness) -> list[Request]:
    async with harness.db.session() as session:
        return list((await session.exec(select(Request).order_by(col(Request.id)))).all())


async def request_row(harness: Harness, request_id: int) -> Request:
    async with harness.db.session() as session:
        request = await session.get(Request, request_id)
        assert request is not None
        return request


async def actions(harness: Harness, request_id: int) -> list[str]:
    async with harness.db.session() as session:
        rows = await session.exec(
            select(RequestEvent.action)
            .where(RequestEvent.request_id == request_id)
            .order_by(col(RequestEvent.id))
        )
        return list(rows.all())


async def staff_id(harness: Harness, telegram_id: int) -> int | None:
    async with harness.db.session() as session:
        return (await session.exec(select(Staff).where(Staff.telegram_id == telegram_id))).one().id


def card(harness: Harness, telegram_id: int) -> list[str]:
    """The buttons of the newest task card in a staff chat."""
    return [b.data for b in harness.sender.messages(telegram_id)[-1].buttons]


async def test_accept_tells_the_resident_and_updates_the_card(harness: Harness, task: int) -> None:
    t = tr(harness, WANG)
    (task_card,) = [m for m in harness.sender.messages(WANG) if m.message.ref]
    assert await harness.press(WANG, f"t:accept:{task}", task_card.message_id) == []
    assert harness.last_answer == t._("Accepted")

    assert task_card.edits == 1
    assert [b.data for b in task_card.buttons] == [
        f"t:resolve:{task}",
        f"t:ask:{task}",
        f"t:decline:{task}",
        f"t:urgent:{task}",
        f"of:offer:{task}",  # 📣 Offer to volunteers (handlers/offers.py)
    ]
    assert t._("Being handled") in task_card.text

    request = await request_row(harness, task)
    assert (request.status, request.accepted_at) == ("in_progress", harness.clock.now())
    assert await actions(harness, task) == ["create", "route", "accept"]

    notice = harness.sender.messages(RESIDENT)[-1]
    assert notice.text == t._(
        "👍 Your request <b>{ref}</b> has been accepted by {who}. They will be in touch.",
        ref="HY000001",
        who=f"王建华 ({t._('grid member')})",
    )


async def test_resolve_asks_for_a_note_and_passes_it_to_the_resident(
    harness: Harness, task: int
) -> None:
    t = tr(harness, WANG)
    await harness.press(WANG, f"t:accept:{task}")
    (prompt,) = await harness.press(WANG, f"t:resolve:{task}")
    assert prompt.text == t._(
        "{ref}: in a sentence, what was done? The resident will see this note.", ref="HY000001"
    )
    assert values(prompt) == ["cancel"]
    assert (await request_row(harness, task)).status == "in_progress"  # not before the note

    (done,) = await harness.say(WANG, "Replaced the washer")
    assert done.text == t._(
        "✅ {ref} is marked resolved. The resident has been told.", ref="HY000001"
    )
    request = await request_row(harness, task)
    assert (request.status, request.result_note) == ("resolved", "Replaced the washer")
    assert await actions(harness, task) == ["create", "route", "accept", "resolve"]
    assert card(harness, WANG) == []  # nothing more to do on the card

    notice = harness.sender.messages(RESIDENT)[-1]
    assert notice.text == t._(
        "✅ Your request <b>{ref}</b> has been resolved.\nResult: {note}",
        ref="HY000001",
        note="Replaced the washer",
    )


async def test_not_mine_passes_the_task_to_the_coordinator(harness: Harness, task: int) -> None:
    t = tr(harness, WANG)
    (task_card,) = [m for m in harness.sender.messages(WANG) if m.message.ref]
    (prompt,) = await harness.press(WANG, f"t:decline:{task}")
    assert prompt.text == t._(
        "{ref}: why can this level not meet the need? It goes to the level above at once.",
        ref="HY000001",
    )

    (passed,) = await harness.say(WANG, "This is a landlord matter")
    xu_label = f"徐国庆 ({t._('community coordinator')})"
    assert passed.text == t._("↩ {ref} was passed to {who}.", ref="HY000001", who=xu_label)

    assert task_card.text.startswith(t._("This task has moved on."))
    assert task_card.buttons == []

    (xu_card,) = harness.sender.messages(XU)
    assert "<b>HY000001</b>" in xu_card.text
    assert [b.data for b in xu_card.buttons] == [
        f"t:accept:{task}",
        f"t:complex:{task}",
        f"t:decline:{task}",
        f"t:urgent:{task}",
        f"of:offer:{task}",  # 📣 Offer to volunteers (handlers/offers.py)
    ]

    request = await request_row(harness, task)
    xu = await staff_id(harness, XU)
    assert (request.status, request.level, request.assignee_staff_id) == (
        "assigned",
        "community",
        xu,
    )
    async with harness.db.session() as session:
        decline = (
            await session.exec(select(RequestEvent).where(RequestEvent.action == "decline"))
        ).one()
    assert (decline.actor_staff_id, decline.assignee_staff_id, decline.note) == (
        await staff_id(harness, WANG),
        xu,
        "This is a landlord matter",
    )
    assert (decline.from_level, decline.to_level) == ("grid", "community")

    # Wang's stale card no longer works for him.
    assert await harness.press(WANG, f"t:accept:{task}") == []
    assert harness.last_answer == t._("This task is not assigned to you.")


async def test_cancelling_the_note_changes_nothing(harness: Harness, task: int) -> None:
    await harness.press(WANG, f"t:decline:{task}")
    await harness.say(WANG, "/cancel")
    assert (await request_row(harness, task)).status == "assigned"
    assert await actions(harness, task) == ["create", "route"]
    async with harness.db.session() as session:
        assert await session.get(ConversationState, WANG) is None


@pytest.mark.parametrize("presser", [LI, RESIDENT], ids=["other-grid-member", "resident"])
@pytest.mark.parametrize("action", ["accept", "decline", "resolve", "phone"])
async def test_forged_task_button_is_refused(
    harness: Harness, task: int, presser: int, action: str
) -> None:
    await harness.say(presser, "/start")
    harness.languages[presser] = "en"
    before = len(harness.sender.messages(presser))
    assert await harness.press(presser, f"t:{action}:{task}") == []
    assert harness.last_answer == "This task is not assigned to you."
    assert harness.results[-1].callback_alert
    assert len(harness.sender.messages(presser)) == before
    assert (await request_row(harness, task)).status == "assigned"
    assert await actions(harness, task) == ["create", "route"]


async def test_double_tap_on_accept_acts_once(harness: Harness, task: int) -> None:
    t = tr(harness, WANG)
    notices_before = len(harness.sender.messages(RESIDENT))
    await harness.press(WANG, f"t:accept:{task}")
    await harness.press(WANG, f"t:accept:{task}")
    assert harness.last_answer == t._(
        "This task has already moved on: {status}.", status=t._("Being handled")
    )
    assert await actions(harness, task) == ["create", "route", "accept"]
    assert len(harness.sender.messages(RESIDENT)) == notices_before + 1
    (task_card,) = [m for m in harness.sender.messages(WANG) if m.message.ref]
    assert task_card.edits == 1


async def test_tasks_lists_the_open_ones(harness: Harness, task: int) -> None:
    t = tr(harness, WANG)
    await report_need(harness, RESIDENT, category="safety", text="Loose wires")
    await report_need(harness, RESIDENT, category="errand", text="Pension papers")
    await harness.press(WANG, f"t:accept:{task}")
    await harness.press(WANG, "t:accept:3")
    await harness.press(WANG, "t:resolve:3")
    await harness.say(WANG, "Filed the papers")

    (listing,) = await harness.say(WANG, "/tasks")
    assert listing.text.startswith(t.ngettext("<b>{n} open task</b>", "<b>{n} open tasks</b>", 2))
    assert "HY000001" in listing.text and "HY000002" in listing.text
    assert "HY000003" not in listing.text
    assert [b.data for b in listing.buttons] == [f"v:{task}", "v:2"]

    (again,) = await harness.press(WANG, "v:2")
    assert [b.data for b in again.buttons] == ["t:accept:2", "t:complex:2", "t:decline:2"]


async def test_tasks_for_a_resident_points_to_join(harness: Harness, task: int) -> None:
    t = tr(harness, RESIDENT)
    (reply,) = await harness.say(RESIDENT, "/tasks")
    assert reply.text == t._(
        "/tasks is for staff. Staff members can link their roster entry with /join."
    )


async def test_view_button_of_someone_elses_request_is_refused(harness: Harness, task: int) -> None:
    stranger = 900009
    harness.languages[stranger] = "en"
    await register(harness, stranger)
    for presser in (stranger, LI):
        harness.languages[presser] = "en"
        assert await harness.press(presser, f"v:{task}") == []
        assert harness.last_answer == "This request is not available."
    assert await harness.press(stranger, "v:999") == []
    assert harness.last_answer == "This request is not available."
