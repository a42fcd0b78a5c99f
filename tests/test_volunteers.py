"""Volunteers: joining with /volunteer or a community's link, the coordinator's approval (报到审核),
pause and resume, leaving (what they hold goes back to its holder), and /volunteers for
coordinators, paged at the scale of a real district."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlmodel import col, select

from domain.clock import ManualClock
from storage.database import Database
from storage.models import (
    Account,
    Claim,
    ConversationState,
    Organisation,
    Request,
    RequestEvent,
    Staff,
    Volunteer,
)
from storage.roster import import_roster
from tests.big_district import write_district
from tests.harness import Harness
from tests.test_conversation_onboarding import CONSENT, choose, register, tr, values
from tests.test_conversation_report import report_need

RESIDENT = 900001
OTHER = 900002
WANG = 700000001  # grid member of QS-JB-TH-01 (repair)
XU = 700000011  # coordinator of 天河社区 QS-JB-TH
SUN = 700000012  # coordinator of 柳园社区 QS-JB-LY
HU = 700000017  # town officer of 江北街道 QS-JB
SECOND = 700000099  # a second coordinator of QS-JB-TH, added by the test


async def volunteers(harness: Harness) -> list[Volunteer]:
    async with harness.db.session() as session:
        return list((await session.exec(select(Volunteer).order_by(col(Volunteer.id)))).all())


async def apply(
    harness: Harness, user: int, cats: tuple[str, ...] = ("companionship", "errand")
) -> None:
    """A resident of Tianhe Grid 1 applies for their home community, as a party member."""
    await register(harness, user)
    await harness.say(user, "/volunteer")
    await choose(harness, user, "home")
    for code in cats:
        await choose(harness, user, code)
    await choose(harness, user, "done")
    await choose(harness, user, "yes")


def card_of(harness: Harness, staff: int) -> tuple[int | None, str]:
    (card,) = [
        m for m in harness.sender.messages(staff) if (m.message.ref or "").startswith("vol:")
    ]
    return card.message_id, card.text


async def add_second_coordinator(harness: Harness) -> None:
    async with harness.db.transaction() as session:
        session.add(
            Staff(
                name="邓小梅",
                phone="13800000099",
                telegram_id=SECOND,
                role="coordinator",
                unit_code="QS-JB-TH",
                opened_at=harness.clock.now() - timedelta(days=3),
            )
        )


async def test_apply_and_approve(harness: Harness) -> None:
    harness.names[RESIDENT] = "陈晓"
    await apply(harness, RESIDENT)
    t = tr(harness, RESIDENT)
    assert harness.last_text(RESIDENT) == t._(
        "📨 Thank you! Your application to volunteer in {place} has gone to the "
        "coordinator. You will hear here when it is decided.",
        place="江北街道 › 天河社区",
    )
    (volunteer,) = await volunteers(harness)
    assert (volunteer.status, volunteer.unit_code, volunteer.categories) == (
        "pending",
        "QS-JB-TH",
        "errand;companionship",
    )
    assert volunteer.party_member and volunteer.name == "陈晓"

    # The coordinator's card: who, where, what, party member; two buttons.
    message_id, text = card_of(harness, XU)
    assert "陈晓" in text and "天河社区" in text and t._("Party member") in text
    card = harness.sender.messages(XU)[-1]
    assert [b.data for b in card.buttons] == [f"va:{volunteer.id}:yes", f"va:{volunteer.id}:no"]
    assert not [m for m in harness.sender.messages(SUN) if (m.message.ref or "").startswith("vol:")]

    await harness.press(XU, f"va:{volunteer.id}:yes", message_id)
    assert harness.last_answer == tr(harness, XU)._("Approved")
    (volunteer,) = await volunteers(harness)
    assert volunteer.status == "approved" and volunteer.decided_at == harness.clock.now()
    assert card.buttons == [] and tr(harness, XU)._("✅ Approved by {name}", name="徐国庆") in (
        card.text
    )
    assert harness.last_text(RESIDENT) == t._(
        "✅ Welcome! You are now a volunteer. Needs in the kinds of help you offer will be "
        "offered to you here to claim. /volunteer shows your profile."
    )
    # /volunteer now shows the profile.
    (profile,) = await harness.say(RESIDENT, "/volunteer")
    assert t._("🙋 <b>Your volunteer profile</b>") in profile.text
    assert [b.data for b in profile.buttons] == ["vp:pause", "vp:cats", "vp:leave"]


async def test_decline_tells_the_applicant(harness: Harness) -> None:
    await apply(harness, RESIDENT)
    (volunteer,) = await volunteers(harness)
    message_id, _ = card_of(harness, XU)
    await harness.press(XU, f"va:{volunteer.id}:no", message_id)
    (volunteer,) = await volunteers(harness)
    assert volunteer.status == "declined"
    assert "/volunteer" in harness.last_text(RESIDENT)
    # They may apply again: the same row goes back to pending.
    await harness.say(RESIDENT, "/volunteer")
    await choose(harness, RESIDENT, "home")
    await choose(harness, RESIDENT, "done")  # the categories chosen before are kept
    await choose(harness, RESIDENT, "no")
    (volunteer,) = await volunteers(harness)
    assert (volunteer.status, volunteer.party_member) == ("pending", False)


async def test_two_coordinators_tap_one_decides(harness: Harness) -> None:
    await add_second_coordinator(harness)
    await apply(harness, RESIDENT)
    (volunteer,) = await volunteers(harness)
    first_id, _ = card_of(harness, XU)
    second_id, _ = card_of(harness, SECOND)
    await harness.press(SECOND, f"va:{volunteer.id}:yes", second_id)
    assert harness.last_answer == tr(harness, SECOND)._("Approved")
    # The other coordinator's copy says who decided; their late tap changes nothing.
    (xu_card,) = [m for m in harness.sender.messages(XU) if m.message_id == first_id]
    assert xu_card.buttons == []
    assert tr(harness, XU)._("✅ Approved by {name}", name="邓小梅") in xu_card.text
    before = len(harness.sender.messages(RESIDENT))
    await harness.press(XU, f"va:{volunteer.id}:no", first_id)
    assert harness.last_answer == tr(harness, XU)._("✅ Approved by {name}", name="邓小梅")
    (volunteer,) = await volunteers(harness)
    assert volunteer.status == "approved"
    assert len(harness.sender.messages(RESIDENT)) == before  # told once


async def test_forged_and_foreign_decisions_are_refused(harness: Harness) -> None:
    await apply(harness, RESIDENT)
    (volunteer,) = await volunteers(harness)
    await harness.say(SUN, "/start")
    await harness.press(SUN, f"va:{volunteer.id}:yes")  # another community's coordinator
    assert harness.last_answer == tr(harness, SUN)._(
        "Only the community's coordinator or the town's officer decides this."
    )
    await harness.press(XU, "va:99999999999999:yes")
    assert harness.last_answer == tr(harness, XU)._("This button is no longer active.")
    await harness.press(XU, f"va:{volunteer.id}:maybe")
    assert harness.last_answer == tr(harness, XU)._("This button is no longer active.")
    await harness.press(RESIDENT, f"va:{volunteer.id}:yes")  # the applicant themself
    (volunteer,) = await volunteers(harness)
    assert volunteer.status == "pending"
    # The town officer may decide too.
    await harness.say(HU, "/start")
    await harness.press(HU, f"va:{volunteer.id}:yes")
    (volunteer,) = await volunteers(harness)
    assert volunteer.status == "approved"


async def test_no_reachable_coordinator_asks_the_town_officer(harness: Harness) -> None:
    async with harness.db.transaction() as session:
        xu = (await session.exec(select(Staff).where(Staff.telegram_id == XU))).one()
        xu.refused_at, xu.refused_reason = harness.clock.now(), "blocked"
        session.add(xu)
    await apply(harness, RESIDENT)
    assert card_of(harness, HU)[1]
    assert not [m for m in harness.sender.messages(XU) if (m.message.ref or "").startswith("vol:")]


async def approved(harness: Harness, user: int = RESIDENT) -> Volunteer:
    await apply(harness, user)
    (volunteer,) = [v for v in await volunteers(harness) if v.status == "pending"]
    await harness.press(XU, f"va:{volunteer.id}:yes")
    async with harness.db.session() as session:
        found = await session.get(Volunteer, volunteer.id)
        assert found is not None
        return found


async def test_pause_and_resume(harness: Harness) -> None:
    volunteer = await approved(harness)
    t = tr(harness, RESIDENT)
    (profile,) = await harness.say(RESIDENT, "/volunteer")
    await harness.press(RESIDENT, "vp:pause", profile.message_id)
    async with harness.db.session() as session:
        row = await session.get(Volunteer, volunteer.id)
        assert row is not None and (row.status, row.paused_at) == ("paused", harness.clock.now())
    assert [b.data for b in profile.buttons] == ["vp:resume", "vp:cats", "vp:leave"]
    await harness.press(RESIDENT, "vp:pause", profile.message_id)  # a second tap
    assert harness.last_answer == t._("This button is no longer active.")
    await harness.press(RESIDENT, "vp:resume", profile.message_id)
    async with harness.db.session() as session:
        row = await session.get(Volunteer, volunteer.id)
        assert row is not None and (row.status, row.paused_at) == ("approved", None)


async def test_edit_categories(harness: Harness) -> None:
    volunteer = await approved(harness)
    (profile,) = await harness.say(RESIDENT, "/volunteer")
    await harness.press(RESIDENT, "vp:cats", profile.message_id)
    (cats,) = [m for m in harness.sender.messages(RESIDENT) if m.message.ref == "volcats"][-1:]
    assert "safety" not in [v for v in values(cats)]
    await choose(harness, RESIDENT, "errand")  # off
    await choose(harness, RESIDENT, "repair")  # on
    await choose(harness, RESIDENT, "done")
    async with harness.db.session() as session:
        row = await session.get(Volunteer, volunteer.id)
        assert row is not None and row.categories == "repair;companionship"


async def claimed_by(harness: Harness, volunteer: Volunteer) -> None:
    """Another resident's repair need, held by Wang, claimed by the volunteer."""
    await harness.say(WANG, "/start")
    await register(harness, OTHER)
    await report_need(harness, OTHER, text="The kitchen tap leaks")
    async with harness.db.transaction() as session:
        request = (await session.exec(select(Request))).one()
        claim = Claim(
            request_id=request.id or 0,
            state="claimed",
            offered_at=harness.clock.now(),
            reach_unit_code="QS-JB-TH",
            volunteer_id=volunteer.id,
            claimed_at=harness.clock.now(),
        )
        session.add(claim)
        await session.flush()
        request.claim_id = claim.id
        session.add(request)


async def test_leave_releases_a_held_claim_and_tells_the_holder(harness: Harness) -> None:
    volunteer = await approved(harness)
    await claimed_by(harness, volunteer)
    (profile,) = await harness.say(RESIDENT, "/volunteer")
    (confirm,) = await harness.press(RESIDENT, "vp:leave", profile.message_id)
    t = tr(harness, RESIDENT)
    assert (
        t.ngettext(
            "{n} need you hold goes back to the staff member who holds it.",
            "{n} needs you hold go back to the staff who hold them.",
            1,
        )
        in confirm.text
    )
    await choose(harness, RESIDENT, "yes")
    async with harness.db.session() as session:
        row = await session.get(Volunteer, volunteer.id)
        assert row is not None and (row.status, row.left_at) == ("left", harness.clock.now())
        claim_row = (await session.exec(select(Claim))).one()
        assert claim_row.state == "released"
        request_row = (await session.exec(select(Request))).one()
        assert request_row.claim_id is None
        events = (await session.exec(select(RequestEvent.action))).all()
        assert "release" in events
    assert harness.last_text(WANG) == tr(harness, WANG)._(
        "👋 {name}, the volunteer who had claimed <b>{ref}</b>, has left the volunteers. "
        "The need is yours alone again.",
        name=volunteer.name,
        ref="HY000001",
    )
    assert profile.buttons == []
    # A stale profile button after leaving.
    await harness.press(RESIDENT, "vp:pause", profile.message_id)
    assert harness.last_answer == t._("This button is no longer active.")


async def test_forget_erases_the_profile_and_releases_the_claim(harness: Harness) -> None:
    volunteer = await approved(harness)
    await claimed_by(harness, volunteer)
    (kept, _file) = await harness.say(RESIDENT, "/mydata")
    assert (
        tr(harness, RESIDENT)._(
            "Volunteer profile: {name}, serving {place} ({status}); /volunteer shows it.",
            name=volunteer.name,
            place="江北街道 › 天河社区",
            status=tr(harness, RESIDENT)._("approved"),
        )
        in kept.text
    )
    assert b'"volunteer"' in (_file.message.upload_bytes or b"")
    await harness.say(RESIDENT, "/forget")
    await choose(harness, RESIDENT, "erase")
    async with harness.db.session() as session:
        row = await session.get(Volunteer, volunteer.id)
        assert row is not None
        assert (row.status, row.name, row.phone, row.telegram_id) == ("left", "", None, None)
        assert (await session.exec(select(Claim))).one().state == "released"
    assert harness.last_text(WANG) == tr(harness, WANG)._(
        "👋 The volunteer who had claimed <b>{ref}</b> withdrew their consent and is no "
        "longer a volunteer. The need is yours alone again.",
        ref="HY000001",
    )


async def test_volunteer_link_for_a_newcomer_goes_through_consent(harness: Harness) -> None:
    consent = (await harness.say(RESIDENT, "/start v_qs-jb-ly"))[-1]
    assert consent.text == tr(harness, RESIDENT)._(CONSENT)
    await choose(harness, RESIDENT, "yes")
    await choose(harness, RESIDENT, "health")
    await choose(harness, RESIDENT, "done")
    await choose(harness, RESIDENT, "no")
    (volunteer,) = await volunteers(harness)
    assert (volunteer.unit_code, volunteer.status) == ("QS-JB-LY", "pending")
    assert card_of(harness, SUN)[1]
    async with harness.db.session() as session:
        account = (await session.exec(select(Account))).one()
        assert account.consent_at is not None
    # The link again: the application waits; no conversation is left open.
    (reply,) = await harness.say(RESIDENT, "/start v_QS-JB-LY")
    assert reply.text == tr(harness, RESIDENT)._(
        "⏳ Your application to volunteer in {place} is waiting for the coordinator. "
        "You will hear here when it is decided.",
        place="江北街道 › 柳园社区",
    )
    async with harness.db.session() as session:
        assert (await session.exec(select(ConversationState))).first() is None


async def test_volunteer_link_for_a_resident_goes_to_the_categories(harness: Harness) -> None:
    await register(harness, RESIDENT)
    (cats,) = await harness.say(RESIDENT, "/start v_QS-FM-MJ")
    assert "companionship" in values(cats) and "safety" not in values(cats)
    await choose(harness, RESIDENT, "companionship")
    await choose(harness, RESIDENT, "done")
    await choose(harness, RESIDENT, "yes")
    (volunteer,) = await volunteers(harness)
    assert volunteer.unit_code == "QS-FM-MJ"


async def test_unknown_volunteer_link_is_answered_politely(harness: Harness) -> None:
    shown = await harness.say(RESIDENT, "/start v_NOWHERE")
    assert shown[0].text == tr(harness, RESIDENT)._(
        "That volunteer link is not valid (the community may have changed its code). "
        "You can still offer your help with /volunteer."
    )
    assert shown[-1].text == tr(harness, RESIDENT)._(CONSENT)  # the usual /start goes on
    assert await volunteers(harness) == []


async def test_group_chat_and_newcomers(harness: Harness) -> None:
    (reply,) = await harness.say(RESIDENT, "/volunteer", chat_id=-100500, chat_type="group")
    assert "private" in reply.text or "私聊" in reply.text
    (reply,) = await harness.say(OTHER, "/volunteer")
    assert reply.text == tr(harness, OTHER)._("Welcome! Please send /start to begin.")
    assert await volunteers(harness) == []


async def test_organisation_is_chosen_from_a_paged_list(harness: Harness) -> None:
    async with harness.db.transaction() as session:
        for number in range(11):
            session.add(
                Organisation(
                    name=f"单位{number:02d}",
                    kind="enterprise",
                    unit_code="QS-JB" if number % 2 else None,
                    created_at=harness.clock.now(),
                )
            )
        session.add(
            Organisation(
                name="别处", kind="social", unit_code="QS-FM", created_at=harness.clock.now()
            )
        )
    await register(harness, RESIDENT)
    await harness.say(RESIDENT, "/volunteer")
    await choose(harness, RESIDENT, "home")
    await choose(harness, RESIDENT, "errand")
    await choose(harness, RESIDENT, "done")
    (page,) = await choose(harness, RESIDENT, "no")
    assert values(page) == [str(n) for n in range(1, 9)] + ["next", "none", "cancel"]
    await choose(harness, RESIDENT, "next")
    page = harness.sender.messages(RESIDENT)[-1]
    assert values(page) == ["9", "10", "11", "prev", "none", "cancel"]  # not 别处 (another town)
    await choose(harness, RESIDENT, "10")
    (volunteer,) = await volunteers(harness)
    assert volunteer.organisation_id == 10


async def test_volunteers_list_for_the_coordinator(harness: Harness) -> None:
    await apply(harness, RESIDENT)
    harness.dispatcher.bot_username = "huiyin_bot"
    (listing,) = await harness.say(XU, "/volunteers")
    t = tr(harness, XU)
    assert (
        t._(
            "🔗 Forward this link to people who want to volunteer here: {url}",
            url="https://t.me/huiyin_bot?start=v_QS-JB-TH",
        )
        in listing.text
    )
    assert [b.data for b in listing.buttons] == ["va:1:yes", "va:1:no"]
    await harness.press(XU, "va:1:yes", listing.message_id)
    (volunteer,) = await volunteers(harness)
    assert volunteer.status == "approved"
    (reply,) = await harness.say(WANG, "/volunteers")
    assert reply.text == tr(harness, WANG)._(
        "/volunteers is for community coordinators, town officers and the district office."
    )
    (reply,) = await harness.say(XU, "/volunteers QS-JB-LY")
    assert "QS-JB-LY" in reply.text and not reply.buttons


async def test_volunteers_list_pages_through_a_big_district(
    empty_db: Database, clock: ManualClock, tmp_path: Path
) -> None:
    write_district(tmp_path / "roster")
    await import_roster(empty_db, tmp_path / "roster")
    officer_id = 931500
    async with empty_db.transaction() as session:
        officer = (
            await session.exec(
                select(Staff).where(Staff.role == "town_officer", Staff.unit_code == "BD-T01")
            )
        ).one()
        officer.telegram_id = officer_id
        officer.opened_at = clock.now() - timedelta(days=1)
        session.add(officer)
        villages = [f"BD-T01-V{n:03d}" for n in range(1, 51)]
        for number in range(3000):
            session.add(
                Volunteer(
                    name=f"志愿者{number:04d}",
                    unit_code=villages[number % len(villages)],
                    categories="errand",
                    status="pending" if number % 100 == 0 else "approved",
                    created_at=clock.now(),
                )
            )
    harness = Harness(empty_db, clock)
    (listing,) = await harness.say(officer_id, "/volunteers")
    t = tr(harness, officer_id)
    assert t._("page {page} of {pages}", page=1, pages=300) in listing.text
    assert listing.text.count("•") == 10
    # Pending first, each with its two buttons; then the pager.
    assert [b.data for b in listing.buttons[:2]] == ["va:1:yes", "va:1:no"]
    assert listing.buttons[-1].data == "vl:10:"
    assert t._("waiting for approval") + ": 30" in listing.text
    await harness.press(officer_id, "vl:2990:", listing.message_id)
    assert t._("page {page} of {pages}", page=300, pages=300) in listing.text
    assert [b.data for b in listing.buttons] == ["vl:2980:"]
    await harness.press(officer_id, "vl:7:", listing.message_id)  # forged
    assert harness.last_answer == t._("This button is no longer active.")


async def test_leaving_takes_the_details_off_the_claim_card(harness: Harness) -> None:
    """Found with the end-to-end test: a volunteer who leaves hands back what they hold, and
    their claim card loses the beneficiary's name and phone and its buttons (it kept them)."""
    from domain.claims import HANDED_BACK
    from tests import test_offers as offers

    await offers.make_volunteer(harness, offers.V1)
    rid = await offers.a_need(harness)
    await offers.offer(harness, rid, note=None)
    (claim,) = await offers.claims(harness)
    assert claim.id is not None
    await harness.press(offers.V1, f"of:take:{claim.id}")
    assert "13712345678" in offers.card_of(harness, offers.V1, claim.id).text
    (profile,) = await harness.say(offers.V1, "/volunteer")
    await harness.press(offers.V1, "vp:leave", profile.message_id)
    await choose(harness, offers.V1, "yes")
    assert (await offers.claims(harness))[0].state == "released"
    card = offers.card_of(harness, offers.V1, claim.id)
    assert card.buttons == [] and "13712345678" not in card.text
    assert card.text == tr(harness, offers.V1)._(HANDED_BACK, ref="HY000001")
