"""Offers to volunteers and claiming (handlers/offers.py, schedules/offers.py): the holder
offers a need with a note, claim cards reach the matching volunteers only, the first press
wins, the others' cards say "taken", the offer widens to the town, take back, give back,
/board, a unit claiming a shared need, and stale or forged presses."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlmodel import col, select

from domain.claims import card_chats, take
from domain.i18n import translator
from handlers.offers import TAKEN, WITHDRAWN
from schedules.offers import run_offers
from storage.database import Database
from storage.models import (
    Account,
    Beneficiary,
    Claim,
    Organisation,
    Request,
    RequestEvent,
    Volunteer,
)
from tests.harness import ZONE, Harness
from tests.test_conversation_onboarding import register, tr
from tests.test_conversation_report import report_need

RESIDENT = 900001
WANG = 700000001  # grid member of QS-JB-TH-01 (repair, safety, errand)
LI = 700000002  # the other grid member of QS-JB-TH-01
V1, V2, V3 = 910001, 910002, 910003  # volunteers of Tianhe Community
V_LY = 910004  # a volunteer of Liuyuan Community, the same town
V_FM = 910005  # a volunteer of Fengming Town, another town
V_PAUSED = 910006


async def make_volunteer(
    harness: Harness,
    user: int,
    *,
    unit: str = "QS-JB-TH",
    categories: str = "repair;errand",
    status: str = "approved",
    **fields: object,
) -> int:
    await register(harness, user)
    async with harness.db.transaction() as session:
        account = (await session.exec(select(Account).where(Account.telegram_id == user))).one()
        volunteer = Volunteer(
            account_id=account.id,
            name=f"Vol {user}",
            phone=f"139{user:08d}",
            unit_code=unit,
            categories=categories,
            status=status,
            created_at=harness.clock.now(),
            **fields,  # type: ignore[arg-type]
        )
        session.add(volunteer)
        await session.flush()
        assert volunteer.id is not None
        return volunteer.id


async def a_need(harness: Harness, category: str = "repair", text: str = "The tap leaks") -> int:
    await harness.say(WANG, "/start")
    await register(harness, RESIDENT)
    await report_need(harness, RESIDENT, category=category, text=text)
    async with harness.db.transaction() as session:
        request = (await session.exec(select(Request).order_by(col(Request.id).desc()))).first()
        assert request is not None and request.id is not None
        beneficiary = await session.get(Beneficiary, request.beneficiary_id)
        assert beneficiary is not None
        beneficiary.phone = "13712345678"
        session.add(beneficiary)
        return request.id


async def claims(harness: Harness) -> list[Claim]:
    async with harness.db.session() as session:
        return list((await session.exec(select(Claim).order_by(col(Claim.id)))).all())


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


def card_of(harness: Harness, user: int, claim_id: int):  # type: ignore[no-untyped-def]
    (card,) = [m for m in harness.sender.messages(user) if m.message.ref == f"claim:{claim_id}"]
    return card


def task_card_of(harness: Harness):  # type: ignore[no-untyped-def]
    """Wang's newest task card."""
    return [m for m in harness.sender.messages(WANG) if (m.message.ref or "").startswith("card:")][
        -1
    ]


def claim_cards(harness: Harness, user: int) -> list[object]:
    return [m for m in harness.sender.messages(user) if (m.message.ref or "").startswith("claim:")]


def data(message) -> list[str]:  # type: ignore[no-untyped-def]
    return [b.data for b in message.buttons]


async def offer(harness: Harness, request_id: int, note: str | None = "Bring a wrench") -> None:
    await harness.press(WANG, f"of:offer:{request_id}")
    if note is None:
        await harness.tap(WANG, value="skip")
    else:
        await harness.say(WANG, note)


async def test_offer_with_a_note_reaches_the_matching_volunteers_only(harness: Harness) -> None:
    await make_volunteer(harness, V1)
    await make_volunteer(harness, V2, categories="repair")
    await make_volunteer(harness, V3, categories="companionship")
    await make_volunteer(harness, V_LY, unit="QS-JB-LY")
    await make_volunteer(harness, V_PAUSED, status="paused")
    rid = await a_need(harness)
    t = tr(harness, WANG)
    task_card = task_card_of(harness)
    assert f"of:offer:{rid}" in data(task_card)

    (prompt,) = await harness.press(WANG, f"of:offer:{rid}")
    assert "HY000001" in prompt.text
    (done,) = await harness.say(WANG, "Bring a wrench")
    assert done.text.startswith(
        t.ngettext(
            "📣 {ref} is offered to {n} volunteer of {area}. You stay responsible for it; you "
            "will hear who takes it.",
            "📣 {ref} is offered to {n} volunteers of {area}. You stay responsible for it; you "
            "will hear who takes it.",
            2,
            ref="HY000001",
            area="天河社区",
        )
    )

    (claim,) = await claims(harness)
    assert (claim.state, claim.note, claim.reach_unit_code) == (
        "offered",
        "Bring a wrench",
        "QS-JB-TH",
    )
    assert claim.widen_at == harness.clock.now() + timedelta(hours=24)
    assert claim.next_due_at == claim.widen_at
    request = await request_row(harness, rid)
    assert (request.claim_id, request.status) == (claim.id, "in_progress")  # accepted too
    assert await actions(harness, rid) == ["create", "route", "accept", "offer"]

    assert claim.id is not None
    for user in (V1, V2):
        card = card_of(harness, user, claim.id)
        assert "The tap leaks" in card.text and "Bring a wrench" in card.text
        assert "天河社区" in card.text
        assert "user900001" not in card.text and "13712345678" not in card.text
        assert "第一网格" not in card.text  # the village, not the grid
        assert data(card) == [f"of:take:{claim.id}"]
    for user in (V3, V_LY, V_PAUSED):
        assert not claim_cards(harness, user)
    assert t._("Withdraw offer") in [b.text for b in task_card.buttons]
    assert f"of:offer:{rid}" not in data(task_card)


async def test_an_errand_is_offered_automatically(harness: Harness) -> None:
    await make_volunteer(harness, V1, categories="errand")
    rid = await a_need(harness, category="errand", text="Pick up my prescription")
    (claim,) = await claims(harness)
    assert (claim.state, claim.offered_by_staff_id, claim.request_id) == ("offered", None, rid)
    assert claim.id is not None
    assert "Pick up my prescription" in card_of(harness, V1, claim.id).text
    request = await request_row(harness, rid)
    assert (request.status, request.claim_id) == ("assigned", claim.id)  # still to accept


async def test_no_auto_offer_when_no_volunteer_could_see_it(harness: Harness) -> None:
    await make_volunteer(harness, V_FM, unit="QS-FM-MJ", categories="errand")
    await a_need(harness, category="errand")
    assert await claims(harness) == []


async def test_a_safety_hazard_is_never_offered(harness: Harness) -> None:
    await make_volunteer(harness, V1, categories="repair;errand")
    rid = await a_need(harness, category="safety", text="Loose power line")
    task_card = task_card_of(harness)
    assert not [d for d in data(task_card) if d.startswith("of:")]
    await harness.press(WANG, f"of:offer:{rid}")
    assert harness.last_answer is not None and "never" in translator("en")._(
        "{category} needs are staff's own work; they are never offered to volunteers."
    )
    assert await claims(harness) == []


async def test_first_press_wins_and_the_others_cards_say_taken(harness: Harness) -> None:
    await make_volunteer(harness, V1)
    await make_volunteer(harness, V2)
    rid = await a_need(harness)
    await offer(harness, rid)
    (claim,) = await claims(harness)
    assert claim.id is not None
    first, second = card_of(harness, V1, claim.id), card_of(harness, V2, claim.id)

    # Two presses in the same second: one claimant.
    await harness.press(V1, f"of:take:{claim.id}", first.message_id)
    await harness.press(V2, f"of:take:{claim.id}", second.message_id)
    t2 = tr(harness, V2)
    assert harness.last_answer == t2._(
        "Someone else was quicker, or it is no longer on offer. Thank you all the same!"
    )
    (claim,) = await claims(harness)
    async with harness.db.session() as session:
        v1 = (await session.exec(select(Volunteer).where(Volunteer.phone == f"139{V1:08d}"))).one()
    assert (claim.state, claim.volunteer_id) == ("claimed", v1.id)
    assert claim.claimed_at == harness.clock.now()

    # The winner sees whom and where; the other's card only says it is taken.
    assert "user900001" in first.text and "13712345678" in first.text
    assert f"cw:done:{claim.id}" in data(first) and f"of:give:{claim.id}" in data(first)
    assert second.text == t2._(TAKEN, ref="HY000001") and second.buttons == []

    # The holder is told who (name, phone), the card shows it; the resident hears a first name.
    t = tr(harness, WANG)
    told = [m.text for m in harness.sender.messages(WANG) if "Vol 910001" in m.text]
    assert told and "13900910001" in told[0]
    task_card = task_card_of(harness)
    assert t._("🙋 Claimed by {who}", who="Vol 910001 · ☎ 13900910001") in task_card.text
    assert f"of:back:{rid}" in data(task_card)
    tr_ = tr(harness, RESIDENT)
    assert harness.last_text(RESIDENT) == tr_._(
        "🙋 Your request <b>{ref}</b> was taken on by {who}, who will be in touch with you.",
        ref="HY000001",
        who=tr_._("volunteer {name}", name="Vol"),
    )
    assert (await actions(harness, rid))[-1] == "claim"

    # A second press by the winner changes nothing.
    await harness.press(V1, f"of:take:{claim.id}", first.message_id)
    assert (await claims(harness))[0].volunteer_id == v1.id


async def test_take_is_atomic_across_two_sessions(db: Database, harness: Harness) -> None:
    await make_volunteer(harness, V1)
    await make_volunteer(harness, V2)
    rid = await a_need(harness)
    await offer(harness, rid)
    (claim,) = await claims(harness)
    assert claim.id is not None
    claim_id = claim.id
    now = harness.clock.now()

    async def press(volunteer_id: int) -> bool:
        async with db.transaction() as session:
            return await take(session, claim_id, now, volunteer_id=volunteer_id)

    results = await asyncio.gather(press(1), press(2))
    assert sorted(results) == [False, True]
    (claim,) = await claims(harness)
    assert claim.state == "claimed" and claim.volunteer_id == (1 if results[0] else 2)


async def test_the_offer_widens_to_the_town_after_the_time(harness: Harness) -> None:
    await make_volunteer(harness, V1)
    await make_volunteer(harness, V_LY, unit="QS-JB-LY")
    await make_volunteer(harness, V_FM, unit="QS-FM-MJ")
    rid = await a_need(harness)
    await offer(harness, rid, note=None)
    (claim,) = await claims(harness)
    assert claim.id is not None and claim.note is None
    assert await run_offers(harness.db, harness.clock, ZONE) is not None
    assert not claim_cards(harness, V_LY)

    harness.clock.advance(timedelta(hours=24, minutes=1))
    report = await run_offers(harness.db, harness.clock, ZONE)
    assert (report.widened, report.cards) == (1, 1)
    await harness.outbox.deliver_due()
    assert "The tap leaks" in card_of(harness, V_LY, claim.id).text
    assert len(claim_cards(harness, V1)) == 1  # not twice
    assert not claim_cards(harness, V_FM)
    (claim,) = await claims(harness)
    assert (claim.reach_unit_code, claim.widen_at, claim.next_due_at) == ("QS-JB", None, None)
    assert (await actions(harness, rid))[-1] == "widen"
    assert (await run_offers(harness.db, harness.clock, ZONE)).widened == 0


async def test_nobody_matches_the_holder_is_told_once(harness: Harness) -> None:
    rid = await a_need(harness)
    await harness.press(WANG, f"of:offer:{rid}")
    (done,) = await harness.say(WANG, "skip")
    t = tr(harness, WANG)
    assert done.text.startswith(
        t._(
            "📣 {ref} is on offer, but no volunteer of {area} offers this yet.",
            ref="HY000001",
            area="天河社区",
        )
    )
    (claim,) = await claims(harness)
    assert claim.note is None
    harness.clock.advance(timedelta(hours=25))
    await run_offers(harness.db, harness.clock, ZONE)
    await harness.outbox.deliver_due()
    nobody = t._(
        "📣 {ref}: no volunteer offers this kind of help in the town yet. It stays on "
        "offer (new volunteers see it on /board); you may withdraw the offer and "
        "handle it yourself.",
        ref="HY000001",
    )
    assert harness.texts(WANG).count(nobody) == 1
    harness.clock.advance(timedelta(hours=25))
    await run_offers(harness.db, harness.clock, ZONE)
    await harness.outbox.deliver_due()
    assert harness.texts(WANG).count(nobody) == 1


async def test_withdraw_edits_the_cards(harness: Harness) -> None:
    await make_volunteer(harness, V1)
    rid = await a_need(harness)
    await offer(harness, rid)
    (claim,) = await claims(harness)
    assert claim.id is not None
    await harness.press(WANG, f"of:withdraw:{rid}")
    (claim,) = await claims(harness)
    assert claim.state == "withdrawn"
    card = card_of(harness, V1, claim.id)
    assert card.text == tr(harness, V1)._(WITHDRAWN, ref="HY000001") and card.buttons == []
    task_card = task_card_of(harness)
    assert f"of:offer:{rid}" in data(task_card)  # may be offered again
    await harness.press(V1, f"of:take:{claim.id}")
    assert (await claims(harness))[0].state == "withdrawn"


async def test_take_back_hides_the_details_from_the_claimant(harness: Harness) -> None:
    await make_volunteer(harness, V1)
    rid = await a_need(harness)
    await offer(harness, rid)
    (claim,) = await claims(harness)
    assert claim.id is not None
    await harness.press(V1, f"of:take:{claim.id}")
    await harness.press(WANG, f"of:back:{rid}")
    (claim,) = await claims(harness)
    assert claim.state == "taken_back"
    card = card_of(harness, V1, claim.id)
    assert card.buttons == [] and "13712345678" not in card.text and "user900001" not in card.text
    assert harness.last_text(V1) == card.text
    assert (await request_row(harness, rid)).claim_id is None
    task_card = task_card_of(harness)
    assert f"of:offer:{rid}" in data(task_card)
    assert (await actions(harness, rid))[-2:] == ["claim", "take_back"]
    # The claimant's old buttons do nothing now.
    await harness.press(V1, f"of:give:{claim.id}")
    assert (await claims(harness))[0].state == "taken_back"


async def test_give_back_offers_it_once_more_to_the_others(harness: Harness) -> None:
    await make_volunteer(harness, V1)
    await make_volunteer(harness, V2)
    rid = await a_need(harness)
    await offer(harness, rid)
    first, *_ = await claims(harness)
    assert first.id is not None
    await harness.press(V1, f"of:take:{first.id}")
    await harness.press(V1, f"of:give:{first.id}")
    old, new = await claims(harness)
    assert (old.state, new.state, new.reach_unit_code) == ("released", "offered", "QS-JB-TH")
    assert new.id is not None
    assert (await request_row(harness, rid)).claim_id == new.id
    assert "The tap leaks" in card_of(harness, V2, new.id).text
    assert not [m for m in harness.sender.messages(V1) if m.message.ref == f"claim:{new.id}"]
    assert card_of(harness, V1, first.id).buttons == []
    t = tr(harness, WANG)
    assert any(
        t._("It is offered to the other volunteers once more.") in text
        for text in harness.texts(WANG)
    )
    # V2 takes it and gives it back too: not offered a third time.
    await harness.press(V2, f"of:take:{new.id}")
    await harness.press(V2, f"of:give:{new.id}")
    assert [c.state for c in await claims(harness)] == ["released", "released"]
    assert (await request_row(harness, rid)).claim_id is None


async def test_resolving_closes_the_claim_and_its_cards(harness: Harness) -> None:
    await make_volunteer(harness, V1)
    await make_volunteer(harness, V2)
    rid = await a_need(harness)
    await offer(harness, rid)
    (claim,) = await claims(harness)
    assert claim.id is not None
    await harness.press(V1, f"of:take:{claim.id}")
    await harness.press(WANG, f"t:resolve:{rid}")
    await harness.say(WANG, "Done by staff after all")
    (claim,) = await claims(harness)
    assert claim.state == "closed"
    card = card_of(harness, V1, claim.id)
    assert card.buttons == [] and "13712345678" not in card.text
    assert "HY000001" in card.text


async def test_board_pages_the_offers_of_the_area(harness: Harness) -> None:
    await make_volunteer(harness, V1, categories="errand")
    await harness.say(WANG, "/start")
    await register(harness, RESIDENT)
    for n in range(12):
        await report_need(harness, RESIDENT, category="errand", text=f"Errand {n + 1}")
    assert len(await claims(harness)) == 12

    (page,) = await harness.say(V1, "/board")
    assert "HY000012" in page.text and "HY000008" in page.text and "HY000007" not in page.text
    assert page.text.index("HY000012") < page.text.index("HY000008")  # newest first
    assert [d for d in data(page) if d.startswith("of:board")] == ["of:board:5"]
    (page,) = await harness.press(V1, "of:board:5")
    assert "HY000007" in page.text and "HY000003" in page.text
    assert [d for d in data(page) if d.startswith("of:board")] == ["of:board:0", "of:board:10"]
    (page,) = await harness.press(V1, "of:board:10")
    assert "HY000002" in page.text and "HY000001" in page.text
    assert [d for d in data(page) if d.startswith("of:board")] == ["of:board:5"]

    # Claimed from the board: the full card comes (they had the card already).
    take_data = next(d for d in data(page) if d.startswith("of:take:"))
    await harness.press(V1, take_data)
    assert sum(c.state == "claimed" for c in await claims(harness)) == 1
    (page,) = await harness.say(V1, "/board")
    assert len([d for d in data(page) if d.startswith("of:take:")]) == 5

    # A resident who is no volunteer is pointed to /volunteer; a forged page is refused.
    (pointer,) = await harness.say(RESIDENT, "/board")
    assert "/volunteer" in pointer.text
    await harness.press(V1, "of:board:x")
    assert harness.last_answer == tr(harness, V1)._("This button is no longer active.")


async def test_an_empty_board(harness: Harness) -> None:
    await make_volunteer(harness, V1)
    (reply,) = await harness.say(V1, "/board")
    assert reply.text == tr(harness, V1)._(
        "📋 Nothing is on offer in your area just now. Thank you for being ready!"
    )


async def test_a_unit_claims_a_shared_need(harness: Harness) -> None:
    async with harness.db.transaction() as session:
        body = Organisation(name="青石建设集团", kind="enterprise", created_at=harness.clock.now())
        session.add(body)
        await session.flush()
        body_id = body.id
    await make_volunteer(harness, V1, organisation_id=body_id, is_contact=True)
    await make_volunteer(harness, V2, organisation_id=body_id)
    rid = await a_need(harness, text="The lane has no street light")
    async with harness.db.transaction() as session:
        request = await session.get(Request, rid)
        assert request is not None
        request.shared_at = harness.clock.now()
        session.add(request)
    await offer(harness, rid)
    (claim,) = await claims(harness)
    assert claim.id is not None
    assert f"of:unit:{claim.id}" in data(card_of(harness, V1, claim.id))
    assert f"of:unit:{claim.id}" not in data(card_of(harness, V2, claim.id))

    await harness.press(V2, f"of:unit:{claim.id}")  # forged: not the contact person
    assert (await claims(harness))[0].state == "offered"
    await harness.press(V1, f"of:unit:{claim.id}")
    (claim,) = await claims(harness)
    assert (claim.state, claim.organisation_id) == ("claimed", body_id)
    t = tr(harness, RESIDENT)
    assert harness.last_text(RESIDENT) == t._(
        "🙋 Your request <b>{ref}</b> was taken on by {who}, who will be in touch with you.",
        ref="HY000001",
        who="青石建设集团",
    )


async def test_stale_and_forged_presses_change_nothing(harness: Harness) -> None:
    await make_volunteer(harness, V1)
    rid = await a_need(harness)
    t = tr(harness, WANG)
    for forged in ("of:take:999", "of:take:abc", "of:offer:99999999999999", "of:nope:1"):
        await harness.press(V1, forged)
        assert harness.last_answer == t._("This button is no longer active.")
    await harness.say(LI, "/start")
    await harness.press(LI, f"of:offer:{rid}")  # not the holder
    assert harness.last_answer == t._("This task is not assigned to you.")
    await harness.press(RESIDENT, f"of:withdraw:{rid}")
    assert await claims(harness) == []
    await offer(harness, rid)
    await harness.press(WANG, f"of:offer:{rid}")  # a second offer of the same need
    assert harness.last_answer == t._("It is already offered to volunteers.")
    (claim,) = await claims(harness)
    assert claim.id is not None
    await harness.press(RESIDENT, f"of:take:{claim.id}")  # no volunteer
    await harness.press(WANG, f"of:back:{rid}")  # nobody holds it
    assert harness.last_answer == t._("Nobody holds it now.")
    (claim,) = await claims(harness)
    assert claim.state == "offered"
    assert await card_chats_of(harness, claim.id) == 1


async def card_chats_of(harness: Harness, claim_id: int) -> int:
    async with harness.db.session() as session:
        return len(await card_chats(session, claim_id))


async def test_claim_cards_wait_for_the_end_of_quiet_hours(harness: Harness) -> None:
    await make_volunteer(harness, V1, categories="errand")
    await harness.say(WANG, "/start")
    await register(harness, RESIDENT)
    harness.clock.advance(timedelta(hours=12))  # 22:00 in Shanghai
    await report_need(harness, RESIDENT, category="errand", text="Pick up my prescription")
    (claim,) = await claims(harness)
    assert claim.state == "offered" and claim.id is not None
    assert claim_cards(harness, V1) == []  # the volunteer is asleep
    harness.clock.advance(timedelta(hours=10, minutes=5))  # 08:05
    await harness.outbox.deliver_due()
    assert "Pick up my prescription" in card_of(harness, V1, claim.id).text


async def test_a_health_need_is_offered_without_its_details(harness: Harness) -> None:
    await make_volunteer(harness, V1, categories="health")
    rid = await a_need(harness, text="Insulin injections after my operation")
    async with harness.db.transaction() as session:
        request = await session.get(Request, rid)
        assert request is not None
        request.category = "health"
        session.add(request)
    await offer(harness, rid, note="A nurse is best")
    (claim,) = await claims(harness)
    assert claim.id is not None
    card = card_of(harness, V1, claim.id)
    assert "Insulin" not in card.text and "A nurse is best" in card.text
    (board,) = await harness.say(V1, "/board")
    assert "HY000001" in board.text and "Insulin" not in board.text
    await harness.press(V1, f"of:take:{claim.id}")
    assert "Insulin" in card.text  # the claimant sees it


async def test_a_volunteer_without_the_card_claims_from_the_board(harness: Harness) -> None:
    rid = await a_need(harness)
    await offer(harness, rid)
    (claim,) = await claims(harness)
    assert claim.id is not None
    await make_volunteer(harness, V1)  # approved after the offer went out
    assert claim_cards(harness, V1) == []
    (board,) = await harness.say(V1, "/board")
    assert f"of:take:{claim.id}" in data(board)
    await harness.press(V1, f"of:take:{claim.id}")
    card = card_of(harness, V1, claim.id)
    assert "user900001" in card.text and f"of:give:{claim.id}" in data(card)
    assert (await claims(harness))[0].state == "claimed"


async def test_a_cancelled_need_closes_its_offer(harness: Harness) -> None:
    from domain.lifecycle import Action
    from domain.requests import transition

    await make_volunteer(harness, V1)
    rid = await a_need(harness)
    await offer(harness, rid)
    (claim,) = await claims(harness)
    assert claim.id is not None
    async with harness.db.transaction() as session:
        request = await session.get(Request, rid)
        assert request is not None
        await transition(session, request, Action.CANCEL, harness.clock.now())
    await harness.outbox.deliver_due()
    (claim,) = await claims(harness)
    assert (claim.state, claim.ended_at) == ("closed", harness.clock.now())
    assert (await request_row(harness, rid)).claim_id is None
    card = card_of(harness, V1, claim.id)
    assert card.buttons == [] and "HY000001" in card.text
