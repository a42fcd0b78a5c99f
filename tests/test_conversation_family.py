"""Reporting for a family member far from home, and following one's requests."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import col, select

from domain.requests import submit_request
from storage.models import Account, Beneficiary, Request, Staff
from tests.harness import Harness
from tests.test_conversation_onboarding import LANGUAGES, MENU, choose, register, tr, values
from tests.test_conversation_report import report_need

WORKER = 900002  # a migrant worker living in Fengming Town, Maojiachong Village
HUANG = 700000008  # grid member of QS-FM-MJ-02: elder_care; family_link
ZHANG = 700000003  # grid member of QS-JB-TH-02
WANG = 700000001  # grid member of QS-JB-TH-01


@pytest.fixture(params=LANGUAGES)
async def worker(request: pytest.FixtureRequest, harness: Harness) -> int:
    harness.languages[WORKER] = request.param
    await register(harness, WORKER, "QS-FM-MJ-01")
    return WORKER


async def add_mother(harness: Harness, user: int, phone: str | None = "138-0000-9999") -> None:
    """From the menu, through the family form, up to the report's first step."""
    await harness.press(user, "m:family")
    await harness.say(user, "Chen Guilan")
    await choose(harness, user, "mother")
    for place in ("QS-JB", "QS-JB-TH", "QS-JB-TH-02"):
        await choose(harness, user, place)
    if phone is None:
        await choose(harness, user, "skip")
    else:
        await harness.say(user, phone)
    await choose(harness, user, "told")


async def family_members(harness: Harness) -> list[Beneficiary]:
    async with harness.db.session() as session:
        rows = await session.exec(
            select(Beneficiary)
            .where(col(Beneficiary.is_self).is_(False))
            .order_by(col(Beneficiary.id))
        )
        return list(rows.all())


async def test_family_form_saves_the_member_and_routes_by_their_grid(
    harness: Harness, worker: int
) -> None:
    t = tr(harness, worker)
    (ask_name,) = await harness.press(worker, "m:family")
    assert ask_name.text == t._("What is your family member's name?")
    assert values(ask_name) == ["cancel"]

    (ask_relation,) = await harness.say(worker, "Chen <Guilan>")
    assert ask_relation.text == t._("How is {name} related to you?", name="Chen &lt;Guilan&gt;")
    assert values(ask_relation) == [
        "father",
        "mother",
        "grandparent",
        "spouse",
        "child",
        "relative",
        "cancel",
    ]

    where, towns = await choose(harness, worker, "mother")
    assert where.text == t._("Where does {name} live?", name="Chen &lt;Guilan&gt;")
    assert values(towns) == ["QS-FM", "QS-JB", "cancel"]
    await choose(harness, worker, "QS-JB")
    await choose(harness, worker, "QS-JB-TH")
    (ask_phone,) = await choose(harness, worker, "QS-JB-TH-02")
    assert values(ask_phone) == ["skip", "cancel"]

    (wrong,) = await harness.say(worker, "call my brother")
    assert wrong.text == t._(
        "That does not look like a phone number. Type digits only, or tap Skip."
    )
    (informed,) = await harness.say(worker, "138 0000 9999")
    assert values(informed) == ["told", "cancel"]
    assert await family_members(harness) == []  # nothing kept before the tick
    saved, kinds = await choose(harness, worker, "told")
    assert saved.text == t._(
        "Saved {name}. Next time you can choose them straight away.", name="Chen &lt;Guilan&gt;"
    )
    assert kinds.text == (
        t._("For {name}.", name="Chen &lt;Guilan&gt;") + " " + t._("What kind of help is needed?")
    )

    (member,) = await family_members(harness)
    assert (member.name, member.relation, member.grid_code, member.phone) == (
        "Chen <Guilan>",
        "mother",
        "QS-JB-TH-02",
        "13800009999",
    )

    await choose(harness, worker, "emotional")
    await choose(harness, worker, "family_link")
    (confirm,) = await harness.say(worker, "A video call with me on Sunday")
    assert t._("For: {who}", who="Chen &lt;Guilan&gt;") in confirm.text
    await choose(harness, worker, "submit")

    async with harness.db.session() as session:
        (request,) = (await session.exec(select(Request))).all()
        zhang = (await session.exec(select(Staff).where(Staff.telegram_id == ZHANG))).one()
    assert (request.grid_code, request.beneficiary_id, request.assignee_staff_id) == (
        "QS-JB-TH-02",
        member.id,
        zhang.id,
    )
    assert harness.sender.messages(HUANG) == []  # not the worker's own grid

    (card,) = harness.sender.messages(ZHANG)
    t_zhang = tr(harness, ZHANG)
    assert f"Chen &lt;Guilan&gt; ({t_zhang._('Mother')}) · ☎ 13800009999" in card.text
    assert "user900002" in card.text  # who reported it
    assert [b.data for b in card.buttons] == [
        "t:accept:1",
        "t:complex:1",
        "t:decline:1",
        "t:urgent:1",
        "of:offer:1",  # 📣 Offer to volunteers (handlers/offers.py)
        "t:phone:1",
    ]


async def test_card_shows_the_relation_in_the_assignees_language(
    harness: Harness, worker: int
) -> None:
    harness.languages[ZHANG] = "en"
    await harness.say(ZHANG, "/start")
    await add_mother(harness, worker)
    await choose(harness, worker, "emotional")
    await choose(harness, worker, "companionship")
    await harness.say(worker, "Please visit her")
    await choose(harness, worker, "submit")
    card = harness.sender.messages(ZHANG)[-1]
    assert "Chen Guilan (Mother)" in card.text


async def test_phone_is_optional(harness: Harness, worker: int) -> None:
    await add_mother(harness, worker, phone=None)
    (member,) = await family_members(harness)
    assert member.phone is None


async def test_saved_member_is_offered_next_time_and_the_reporter_hears_back(
    harness: Harness, worker: int
) -> None:
    t = tr(harness, worker)
    await add_mother(harness, worker)
    await choose(harness, worker, "cancel")
    (member,) = await family_members(harness)

    (chooser,) = await harness.press(worker, "m:family")
    assert chooser.text == t._("Who is the request for?")
    assert values(chooser) == [f"b{member.id}", "add", "link", "cancel"]
    assert chooser.buttons[0].text == f"Chen Guilan ({t._('Mother')})"

    await choose(harness, worker, f"b{member.id}")
    await choose(harness, worker, "living")
    await choose(harness, worker, "repair")
    await harness.say(worker, "Her roof leaks")
    await choose(harness, worker, "submit")
    assert len(await family_members(harness)) == 1  # chosen, not added again

    await harness.tap(ZHANG, "✅")  # accept
    notice = harness.sender.messages(worker)[-1]
    assert notice.text.startswith(
        t._(
            "👍 Your request <b>{ref}</b> has been accepted by {who}. They will be in touch.",
            ref="HY000001",
            who=f"张伟 ({t._('grid member')})",
        )
    )
    assert [b.data for b in notice.buttons] == ["v:1"]


# My requests --------------------------------------------------------------------------------


async def file_requests(harness: Harness, user: int, count: int) -> list[int]:
    """`count` requests by `user`, an hour apart, straight through the domain service."""
    async with harness.db.transaction() as session:
        account = (await session.exec(select(Account).where(Account.telegram_id == user))).one()
        beneficiary = Beneficiary(
            owner_account_id=account.id or 0,
            is_self=True,
            name="Me",
            grid_code="QS-FM-MJ-01",
            created_at=harness.clock.now(),
        )
        session.add(beneficiary)
        await session.flush()
        ids = []
        for index in range(count):
            request, _route = await submit_request(
                session,
                reporter=account,
                beneficiary=beneficiary,
                kind="living",
                category="repair",
                description=f"need {index}",
                media_kind=None,
                media_file_id=None,
                now=harness.clock.now() + timedelta(hours=index),
            )
            ids.append(request.id or 0)
        return ids


async def test_my_requests_lists_newest_first_with_pages_of_eight(
    harness: Harness, worker: int
) -> None:
    t = tr(harness, worker)
    ids = await file_requests(harness, worker, 10)
    newest_first = list(reversed(ids))

    (page,) = await harness.press(worker, "m:mine")
    assert page.text.startswith(t._("<b>Your requests</b> (newest first)"))
    assert [b.data for b in page.buttons] == (
        [f"v:{i}" for i in newest_first[:8]] + ["m:mine:8", "m:home"]
    )
    assert page.text.index("HY000010") < page.text.index("HY000003")

    (second,) = await harness.press(worker, "m:mine:8")
    assert [b.data for b in second.buttons] == [f"v:{i}" for i in newest_first[8:]] + ["m:home"]


async def test_my_requests_when_there_are_none(harness: Harness, worker: int) -> None:
    t = tr(harness, worker)
    (menu,) = await harness.press(worker, "m:mine")
    assert menu.text == t._("You have no requests yet.")
    assert values(menu) == MENU


async def test_tapping_a_request_shows_its_timeline(harness: Harness, worker: int) -> None:
    t = tr(harness, worker)
    await report_need(harness, worker)
    (listing,) = await harness.press(worker, "m:mine")
    (timeline,) = await harness.press(worker, listing.buttons[0].data)
    assert t._("<b>Timeline</b>") in timeline.text
    assert t._("Submitted") in timeline.text
    assert t._("Sent to {assignee}", assignee=f"赵军 ({t._('grid member')})") in timeline.text
    assert [b.data for b in timeline.buttons] == ["m:mine", "m:home"]


async def test_someone_elses_request_is_not_shown(harness: Harness, worker: int) -> None:
    t = tr(harness, worker)
    await register(harness, 900003)
    await report_need(harness, 900003)
    before = len(harness.sender.messages(worker))
    assert await harness.press(worker, "v:1") == []
    assert harness.last_answer == t._("This request is not available.")
    assert len(harness.sender.messages(worker)) == before


async def test_phone_longer_than_twenty_characters_is_refused(
    harness: Harness, worker: int
) -> None:
    t = tr(harness, worker)
    await harness.press(worker, "m:family")
    await harness.say(worker, "Chen Guilan")
    await choose(harness, worker, "mother")
    for place in ("QS-JB", "QS-JB-TH", "QS-JB-TH-02"):
        await choose(harness, worker, place)
    (refused,) = await harness.say(worker, "+" + "1" * 20)
    assert refused.text == t._(
        "That does not look like a phone number. Type digits only, or tap Skip."
    )
    assert await family_members(harness) == []
    await harness.say(worker, "+" + "1" * 19)
    await choose(harness, worker, "told")
    (member,) = await family_members(harness)
    assert member.phone == "+" + "1" * 19
