"""Coordinator look-ups (/status, /overdue, /find) on a prepared district: what each kind of
staff sees, that nothing outside their area shows or moves (also through forged buttons),
pagination, masked phones in lists and full ones on a request the viewer may act on, and
passing a request up from the status card."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.dialects import postgresql
from sqlmodel import col, select

from bot.channels.memory import ShownMessage
from domain.deadlines import DEFAULT_POLICY, pause_clocks
from domain.i18n import Translator, translator
from domain.labels import LEVEL_LABELS, NOTE_LABELS, STATUS_LABELS, staff_label
from domain.lifecycle import Action
from domain.requests import note_event, submit_request, transition
from domain.verdicts import close_request, record_verdict, reopen
from handlers.lookup import PAGE, find_clause, like, span
from schedules.sweep import sweep
from storage.models import Account, Beneficiary, Request, RequestEvent, Staff
from tests.harness import ZONE, Harness
from tests.test_conversation_onboarding import choice, tr

WANG = 700000001  # grid member, Tianhe Grid 1 (repair; safety; errand)
ZHANG = 700000003  # grid member, Tianhe Grid 2
LIU = 700000004  # grid member, Liuyuan Grid 1
XU = 700000011  # coordinator, Tianhe community (QS-JB-TH)
SUN = 700000012  # coordinator, Liuyuan community
CHENG = 700000014  # coordinator, Maojiachong village (the other town)
LEI = 700000015  # coordinator, Hujiawan village (no requests)
HU = 700000017  # town officer, Jiangbei Street (QS-JB)
LUO = 700000022  # district housing bureau: housing; repair
HAN = 700000025  # district urban management: sanitation; safety
CAO = 700000026  # district admin
RESIDENT = 900001
SON = 900002  # reports for his father, who does not use the bot
OTHER = 900003  # a resident of Liuyuan

MONDAY = datetime(2026, 11, 30, 10, 0, tzinfo=ZONE).astimezone(UTC)
TUESDAY_11 = datetime(2026, 12, 1, 11, 0, tzinfo=ZONE).astimezone(UTC)
TUESDAY_13 = datetime(2026, 12, 1, 13, 0, tzinfo=ZONE).astimezone(UTC)


@dataclass
class District:
    """The prepared requests, by name (their ids)."""

    tap: int  # Tianhe Grid 1, repair; missed its accept deadline, now with Xu (community)
    escort: int  # Tianhe Grid 2, elder care for the son's father; accepted, on time
    light: int  # Liuyuan Grid 1, repair; missed its accept deadline, now with Sun
    field: int  # Maojiachong (the other town), agriculture; missed, now with Cheng
    gas: int  # Tianhe Grid 1, safety (urgent); its accept hour ran out, not yet swept
    discount: int  # Tianhe Grid 1, errand; accepted, on time; "100%" in the description
    stairs: int  # Tianhe Grid 2, safety (urgent); accepted, then waiting on the resident


async def account(harness: Harness, telegram_id: int, name: str, grid: str) -> Account:
    async with harness.db.transaction() as session:
        found = (
            await session.exec(select(Account).where(Account.telegram_id == telegram_id))
        ).first()
        if found is None:
            found = Account(
                telegram_id=telegram_id,
                chat_id=telegram_id,
                display_name=name,
                consent_at=harness.clock.now(),
                home_grid_code=grid,
                created_at=harness.clock.now(),
            )
            session.add(found)
        return found


async def submit(
    harness: Harness,
    reporter: int,
    *,
    grid: str,
    category: str,
    who: str,
    phone: str,
    description: str,
    reporter_name: str = "",
    relation: str = "",
) -> int:
    """A request as the bot registers it (routed, clocks started), for `who` in `grid`."""
    await account(harness, reporter, reporter_name or who, grid)
    async with harness.db.transaction() as session:
        owner = (await session.exec(select(Account).where(Account.telegram_id == reporter))).one()
        assert owner.id is not None
        beneficiary = Beneficiary(
            owner_account_id=owner.id,
            is_self=not relation,
            name=who,
            relation=relation,
            grid_code=grid,
            phone=phone,
            created_at=harness.clock.now(),
        )
        session.add(beneficiary)
        await session.flush()
        request, route = await submit_request(
            session,
            reporter=owner,
            beneficiary=beneficiary,
            kind="living",
            category=category,
            description=description,
            media_kind=None,
            media_file_id=None,
            now=harness.clock.now(),
            zone=ZONE,
            policy=DEFAULT_POLICY,
        )
        assert route is not None and request.id is not None
        return request.id


async def accept(harness: Harness, request_id: int, *, pause: bool = False) -> None:
    async with harness.db.transaction() as session:
        request = await session.get(Request, request_id)
        assert request is not None
        await transition(
            session,
            request,
            Action.ACCEPT,
            harness.clock.now(),
            actor_staff_id=request.assignee_staff_id,
        )
        if pause:
            pause_clocks(request, harness.clock.now())
            note_event(
                session,
                request,
                Action.WAIT,
                harness.clock.now(),
                actor_staff_id=request.assignee_staff_id,
                note="Which floor?",
            )
        session.add(request)


@pytest.fixture
async def district(harness: Harness) -> District:
    """Monday 10:00: four requests come in, one is accepted at once. Tuesday 11:00: the accept
    deadlines of three have passed and the sweep has moved them up; two urgent ones arrive
    (one accepted and then paused). Tuesday 13:00: the unaccepted urgent one is an hour late
    and not yet swept. Everyone speaks English unless a test says otherwise."""
    for user in (WANG, ZHANG, LIU, XU, SUN, CHENG, HU, LUO, HAN, CAO, RESIDENT, SON, OTHER):
        harness.languages[user] = "en"
    harness.clock.set(MONDAY)
    tap = await submit(
        harness,
        RESIDENT,
        grid="QS-JB-TH-01",
        category="repair",
        who="王秀兰",
        phone="13912340001",
        description="The kitchen tap leaks",
    )
    escort = await submit(
        harness,
        SON,
        grid="QS-JB-TH-02",
        category="elder_care",
        who="李大爷",
        phone="13912340002",
        description="Needs someone to go with him to the clinic",
        reporter_name="陈小明",
        relation="father",
    )
    light = await submit(
        harness,
        OTHER,
        grid="QS-JB-LY-01",
        category="repair",
        who="赵阿姨",
        phone="13912340003",
        description="The stairwell light is broken",
    )
    field = await submit(
        harness,
        OTHER,
        grid="QS-FM-MJ-01",
        category="agriculture",
        who="钱叔",
        phone="13912340004",
        description="Seedlings for the spring",
    )
    await accept(harness, escort)
    stairs = await submit(
        harness,
        SON,
        grid="QS-JB-TH-02",
        category="safety",
        who="李大爷",
        phone="13912340002",
        description="A loose handrail on the stairs",
        relation="father",
    )
    await accept(harness, stairs, pause=True)
    harness.clock.set(TUESDAY_11)
    await sweep(harness.db, harness.clock, ZONE, DEFAULT_POLICY)
    gas = await submit(
        harness,
        RESIDENT,
        grid="QS-JB-TH-01",
        category="safety",
        who="王秀兰",
        phone="13912340001",
        description="Smell of gas in the corridor",
    )
    discount = await submit(
        harness,
        RESIDENT,
        grid="QS-JB-TH-01",
        category="errand",
        who="王秀兰",
        phone="13912340001",
        description="Pick up medicine, 100% paid already",
    )
    await accept(harness, discount)
    harness.clock.set(TUESDAY_13)
    await harness.outbox.deliver_due()  # the cards and notices so far, out of the way
    return District(tap, escort, light, field, gas, discount, stairs)


def ref(request_id: int) -> str:
    return f"HY{request_id:06d}"


def opened(message: ShownMessage) -> list[str]:
    """The references a list offers to open (its 📄 buttons), in order."""
    return [b.data.removeprefix("s:") for b in message.buttons if b.data.startswith("s:")]


def ids(*request_ids: int) -> list[str]:
    return [str(i) for i in request_ids]


async def request_row(harness: Harness, request_id: int) -> Request:
    async with harness.db.session() as session:
        request = await session.get(Request, request_id)
        assert request is not None
        return request


async def staff_of(harness: Harness, telegram_id: int) -> Staff:
    async with harness.db.session() as session:
        return (await session.exec(select(Staff).where(Staff.telegram_id == telegram_id))).one()


async def events(harness: Harness, request_id: int) -> list[RequestEvent]:
    async with harness.db.session() as session:
        rows = await session.exec(
            select(RequestEvent)
            .where(RequestEvent.request_id == request_id)
            .order_by(col(RequestEvent.id))
        )
        return list(rows.all())


async def label(harness: Harness, telegram_id: int, t: Translator) -> str:
    return staff_label(t, await staff_of(harness, telegram_id))


# Who may -----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["/status HY000001", "/overdue", "/find 王秀兰"])
@pytest.mark.parametrize("user", [WANG, RESIDENT], ids=["grid-member", "resident"])
async def test_grid_members_and_residents_are_refused(
    harness: Harness, district: District, command: str, user: int
) -> None:
    if user == RESIDENT:
        await harness.say(RESIDENT, "/start")  # a registered resident, known to the bot
    (answer,) = await harness.say(user, command)
    assert answer.text == (
        "/status, /overdue and /find are for community coordinators, town officers, "
        "district departments and the district office."
    )
    assert answer.buttons == []
    assert "13912340001" not in answer.text


# /status -----------------------------------------------------------------------------------


async def test_status_card_for_the_coordinator_holding_it(
    harness: Harness, district: District
) -> None:
    """The tap request missed its accept deadline at grid level and went up to Xu: he sees
    everything, the full phone number, the timeline, and what he may do."""
    t = tr(harness, XU)
    (card,) = await harness.say(XU, f"/status {ref(district.tap)}")
    lines = card.text.split("\n")
    assert lines[0] == f"<b>{ref(district.tap)}</b> · Home repairs (water, power) (Daily living)"
    assert lines[1] == "Status: Waiting to be accepted · Level: community / village"
    assert "📍 Jiangbei Street › Tianhe Community › Tianhe Grid 1" in lines
    assert "👤 For: 王秀兰 · ☎ 13912340001" in lines
    assert "📝 The kitchen tap leaks" in lines
    assert f"Handled by: {await label(harness, XU, t)}" in lines
    assert "⏳ Accept by: 2026-12-02 11:00" in lines
    timeline = lines[lines.index("<b>Timeline</b>") + 1 :]
    assert timeline == [
        "2026-11-30 10:00 · Submitted",
        f"2026-11-30 10:00 · Sent to {await label(harness, WANG, t)}",
        f"2026-12-01 11:00 · Escalated to {await label(harness, XU, t)} — not accepted in time",
    ]
    assert [b.data for b in card.buttons] == [
        f"r:{district.tap}",
        f"su:{district.tap}",
        f"sh:{district.tap}",
        f"v:{district.tap}",
    ]
    assert [b.text for b in card.buttons] == [
        "🔄 Reassign",
        "⬆ Pass up",
        "🤝 Mark as a shared need",
        "Open the task",
    ]


async def test_status_by_number_or_button_and_the_family_reporter(
    harness: Harness, district: District
) -> None:
    """A bare number works as a reference, and so does the 📄 button; a request filed by a son
    for his father names both."""
    (by_number,) = await harness.say(XU, f"/status {district.escort}")
    (by_button,) = await harness.press(XU, f"s:{district.escort}")
    assert by_number.text == by_button.text
    assert "👤 For: 李大爷 (Father) · ☎ 13912340002" in by_number.text
    assert "🙋 Reported by: 陈小明 (family member, via Telegram)" in by_number.text
    # With Zhang, at grid level: Xu may reassign it or pass it up, but it is not his task.
    assert [b.data for b in by_number.buttons] == [
        f"r:{district.escort}",
        f"su:{district.escort}",
        f"sh:{district.escort}",
    ]


@pytest.mark.parametrize(
    ("viewer", "visible"),
    [
        (XU, "tap escort gas discount stairs"),
        (SUN, "light"),
        (HU, "tap escort light gas discount stairs"),
        (LUO, "tap light"),  # housing and repair
        (HAN, "gas stairs"),  # safety
        (CAO, "tap escort light field gas discount stairs"),
    ],
    ids=["coordinator", "other-coordinator", "town-officer", "department", "safety-dept", "admin"],
)
async def test_status_shows_only_the_area(
    harness: Harness, district: District, viewer: int, visible: str
) -> None:
    for name in ("tap", "escort", "light", "field", "gas", "discount", "stairs"):
        request_id = getattr(district, name)
        (answer,) = await harness.say(viewer, f"/status {ref(request_id)}")
        if name in visible.split():
            assert answer.text.startswith(f"<b>{ref(request_id)}</b>"), name
        else:
            # Exactly what a reference that does not exist gets: nothing leaks.
            assert answer.text == f"There is no request {ref(request_id)} in your area.", name
            assert answer.buttons == []
    (missing,) = await harness.say(viewer, "/status HY999999")
    assert missing.text == "There is no request HY999999 in your area."


async def test_status_bad_input(harness: Harness, district: District) -> None:
    (usage,) = await harness.say(XU, "/status")
    assert usage.text == "Send /status and a reference, for example /status HY000123."
    (garbled,) = await harness.say(XU, "/status <b>x</b>" + "y" * 40)
    assert garbled.text == f"There is no request &lt;b&gt;x&lt;/b&gt;{'y' * 12} in your area."


async def test_visible_but_above_the_viewer_shows_a_masked_phone_and_no_actions(
    harness: Harness, district: District
) -> None:
    """Once the tap request is with the town, Xu still follows it but may not move it."""
    await harness.press(XU, f"su:{district.tap}")
    await harness.say(XU, "Needs the street office's plumber")
    (card,) = await harness.say(XU, f"/status {ref(district.tap)}")
    assert "👤 For: 王秀兰 · ☎ 139****0001" in card.text
    assert "13912340001" not in card.text
    assert card.buttons == []
    (town,) = await harness.say(HU, f"/status {ref(district.tap)}")
    assert "☎ 13912340001" in town.text


async def test_a_forged_status_button_shows_nothing(harness: Harness, district: District) -> None:
    for data in (f"s:{district.light}", f"s:{district.field}", "s:999999", "s:abc", "s:"):
        assert await harness.press(XU, data) == []
        assert harness.last_answer == "This request is not available."
        assert harness.results[-1].callback_alert
    assert await harness.press(WANG, f"s:{district.tap}") == []
    assert harness.last_answer == "This request is not available."


async def test_the_verdict_shows_on_the_card(harness: Harness, district: District) -> None:
    async with harness.db.transaction() as session:
        for request_id, satisfaction in ((district.discount, "fairly"), (district.escort, None)):
            request = await session.get(Request, request_id)
            assert request is not None
            await transition(session, request, Action.RESOLVE, harness.clock.now(), note="Done")
            if satisfaction is not None:
                await record_verdict(
                    session,
                    request,
                    harness.clock.now(),
                    solved=True,
                    satisfaction=satisfaction,
                    by="reporter",
                )
                request.verdict_comment = "Quick, <thanks>"
            await close_request(session, request, harness.clock.now())
    (rated,) = await harness.say(XU, f"/status {ref(district.discount)}")
    assert "⭐ Verdict: solved · fairly satisfied · by the reporter" in rated.text.split("\n")
    assert "💬 Comment: Quick, &lt;thanks&gt;" in rated.text.split("\n")
    assert rated.buttons == []  # closed: nothing to do
    (unrated,) = await harness.say(XU, f"/status {ref(district.escort)}")
    assert "⭐ Verdict: not rated in time" in unrated.text.split("\n")
    (open_one,) = await harness.say(XU, f"/status {ref(district.gas)}")
    assert "⭐" not in open_one.text


async def test_the_timeline_keeps_the_last_twenty_entries(
    harness: Harness, district: District
) -> None:
    async with harness.db.transaction() as session:
        request = await session.get(Request, district.discount)
        assert request is not None
        for minute in range(25):
            note_event(
                session,
                request,
                Action.REMIND,
                TUESDAY_11 + timedelta(minutes=minute),
                note="clock:resolve",
            )
    (card,) = await harness.say(XU, f"/status {ref(district.discount)}")
    lines = card.text.split("\n")
    timeline = lines[lines.index("<b>Timeline</b>") + 1 :]
    # 3 entries of its own (submitted, sent, accepted) and 25 reminders: 8 are left out.
    assert timeline[0] == "(8 earlier entries not shown)"
    assert len(timeline) == 21
    assert timeline[-1].startswith("2026-12-01 11:24 · Reminder sent to")


# /overdue ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("viewer", "expected"),
    [
        (XU, "tap gas"),
        (SUN, "light"),
        (CHENG, "field"),
        (HU, "tap light gas"),
        (LUO, "tap light"),
        (HAN, "gas"),
        (CAO, "tap light field gas"),
    ],
    ids=["coordinator", "other-coordinator", "other-town", "town", "dept", "safety-dept", "admin"],
)
async def test_overdue_lists_the_area_longest_overdue_first(
    harness: Harness, district: District, viewer: int, expected: str
) -> None:
    """The three missed their accept deadline on Tuesday at 10:00 (the sweep moved them up at
    11:00); the urgent gas request is late since 12:00. Accepted requests on time, and the paused
    one, are not overdue."""
    (answer,) = await harness.say(viewer, "/overdue")
    names = expected.split()
    assert opened(answer) == ids(*(getattr(district, n) for n in names))
    n = len(names)
    head = "overdue request in your area" if n == 1 else "overdue requests in your area"
    assert answer.text.startswith(f"<b>{n} {head}</b>, longest overdue first")


async def test_overdue_lines_mask_phones_and_offer_actions(
    harness: Harness, district: District
) -> None:
    t = tr(harness, HU)
    (answer,) = await harness.say(HU, "/overdue")
    assert "13912340001" not in answer.text
    assert answer.text.split("\n")[1:] == [
        f"• <b>{ref(district.tap)}</b> Home repairs (water, power) — Waiting to be accepted",
        f"   👤 王秀兰 ☎ 139****0001 · 📍 Tianhe Grid 1 · {await label(harness, XU, t)}",
        "   ⏰ overdue 3 h 0 min (since 2026-12-01 10:00)",
        f"• <b>{ref(district.light)}</b> Home repairs (water, power) — Waiting to be accepted",
        f"   👤 赵阿姨 ☎ 139****0003 · 📍 Liuyuan Grid 1 · {await label(harness, SUN, t)}",
        "   ⏰ overdue 3 h 0 min (since 2026-12-01 10:00)",
        f"• <b>{ref(district.gas)}</b> Safety hazard — Waiting to be accepted",
        f"   👤 王秀兰 ☎ 139****0001 · 📍 Tianhe Grid 1 · {await label(harness, WANG, t)}",
        "   ⏰ overdue 1 h 0 min (since 2026-12-01 12:00)",
    ]
    rows = [[b.data for b in row] for row in answer.message.buttons]
    assert rows == [
        [f"s:{i}", f"r:{i}", f"su:{i}"] for i in (district.tap, district.light, district.gas)
    ]
    # "Reassign" is /reassign's own button: it offers who in Hu's area can take it.
    (offer,) = await harness.press(HU, f"r:{district.gas}")
    assert offer.text == (
        f"{ref(district.gas)} is with {await label(harness, WANG, t)}. Who should have it?"
    )


async def test_overdue_reads_the_history_once_swept(harness: Harness, district: District) -> None:
    """The sweep moves the gas request up at once; it stays overdue from the deadline it
    missed, not from the new holder's fresh clock. Once resolved it leaves the list."""
    await sweep(harness.db, harness.clock, ZONE, DEFAULT_POLICY)
    assert (await request_row(harness, district.gas)).level == "community"
    answer = (await harness.say(XU, "/overdue"))[-1]  # after Xu's new task card
    assert opened(answer) == ids(district.tap, district.gas)
    assert "⏰ overdue 3 h 0 min (since 2026-12-01 10:00)" in answer.text
    assert "⏰ overdue 1 h 0 min (since 2026-12-01 12:00)" in answer.text
    async with harness.db.transaction() as session:
        request = await session.get(Request, district.tap)
        assert request is not None
        await transition(session, request, Action.ACCEPT, harness.clock.now())
        await transition(session, request, Action.RESOLVE, harness.clock.now(), note="Fixed")
    (answer,) = await harness.say(XU, "/overdue")
    assert opened(answer) == ids(district.gas)


async def test_a_reopened_request_starts_a_new_round(harness: Harness, district: District) -> None:
    """What the tap request missed before it was resolved is behind it once the resident
    reopens it: with fresh clocks at the level above, it is not overdue."""
    async with harness.db.transaction() as session:
        request = await session.get(Request, district.tap)
        assert request is not None
        await transition(session, request, Action.ACCEPT, harness.clock.now())
        await transition(session, request, Action.RESOLVE, harness.clock.now(), note="Fixed")
    harness.clock.advance(timedelta(hours=2))
    async with harness.db.transaction() as session:
        request = await session.get(Request, district.tap)
        assert request is not None
        await reopen(session, request, harness.clock.now(), ZONE, DEFAULT_POLICY, reason="Leaks")
    assert (await request_row(harness, district.tap)).status == "assigned"
    answer = (await harness.say(HU, "/overdue"))[-1]
    assert opened(answer) == ids(district.light, district.gas)


async def test_nothing_overdue(harness: Harness, district: District) -> None:
    """Hujiawan village has no requests at all (and its coordinator reads Chinese)."""
    harness.languages[LEI] = "zh-hans"
    t = tr(harness, LEI)
    (answer,) = await harness.say(LEI, "/overdue")
    assert (
        answer.text
        == t._("✅ Nothing is overdue in your area.")
        == "✅ 您负责的区域里没有超时的需求。"
    )


# /find -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("viewer", "text", "expected"),
    [
        (XU, "王秀兰", "discount gas tap"),  # beneficiary name, newest first
        (XU, "陈小明", "stairs escort"),  # the resident who reported (for his father)
        (XU, "李大", "stairs escort"),  # part of a name
        (XU, "2340002", "stairs escort"),  # part of a phone number
        (XU, "139 1234 0001", "discount gas tap"),  # typed with spaces
        (XU, "１２３４", "discount gas stairs escort tap"),  # full-width digits
        (XU, "TAP kitchen", "tap"),  # words of the description, any order and case
        (XU, "100%", "discount"),  # % is a character, not a wildcard
        (XU, "%%", ""),  # not "anything"
        (XU, "__", ""),  # not "any two characters"
        (XU, "_", ""),  # too short (answered politely, below)
        (XU, "赵阿姨", ""),  # another community's resident
        (XU, "stairwell", ""),  # another community's description
        (SUN, "赵阿姨", "light"),
        (HU, "1234", "discount gas stairs light escort tap"),
        (LUO, "1234", "light tap"),
        (CAO, "seedlings", "field"),
    ],
)
async def test_find_in_the_area(
    harness: Harness, district: District, viewer: int, text: str, expected: str
) -> None:
    answer = (await harness.say(viewer, f"/find {text}"))[-1]
    names = expected.split()
    assert opened(answer) == ids(*(getattr(district, n) for n in names))
    if names:
        assert "13912340001" not in answer.text and "13912340002" not in answer.text
        assert "139****000" in answer.text


async def test_find_by_reference(harness: Harness, district: District) -> None:
    for text in (ref(district.gas), str(district.gas), f"#{district.gas}"):
        (answer,) = await harness.say(XU, f"/find {text}")
        assert district.gas in [int(i) for i in opened(answer)], text
    (answer,) = await harness.say(XU, f"/find {ref(district.light)}")
    assert opened(answer) == []
    assert answer.text.startswith(f"Nothing in your area matches “{ref(district.light)}”.")


async def test_find_bad_input(harness: Harness, district: District) -> None:
    (usage,) = await harness.say(XU, "/find")
    assert usage.text.startswith("Send /find and what to look for")
    (short,) = await harness.say(XU, "/find x")
    assert short.text == "Please search with at least 2 characters, or a reference."
    (long,) = await harness.say(XU, "/find " + "长" * 51)
    assert long.text == "Please search with at most 50 characters."
    (html,) = await harness.say(XU, "/find <i>x</i>")
    assert html.text.startswith("Nothing in your area matches “&lt;i&gt;x&lt;/i&gt;”.")


async def test_typing_under_the_results_searches_again(
    harness: Harness, district: District
) -> None:
    await harness.say(XU, "/find 王秀兰")
    (again,) = await harness.say(XU, "陈小明")
    assert opened(again) == ids(district.stairs, district.escort)
    (stopped,) = await harness.say(XU, "/cancel")
    assert opened(stopped) == []
    (menu,) = await harness.say(XU, "陈小明")  # no longer a search
    assert opened(menu) == []


def test_find_clause() -> None:
    """What each kind of text is looked for in (compiled for PostgreSQL, to read the SQL)."""
    assert like("100%_x\\") == "%100\\%\\_x\\\\%"

    def sql(text: str) -> str:
        compiled = find_clause(text).compile(
            dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
        )
        return str(compiled)

    assert sql("x") == "false"  # too short to search, and no reference
    assert sql("HY000012").startswith("requests.id = 12 OR")
    assert "phone" not in sql("ab_1234")
    assert "beneficiaries.phone LIKE '%%13800001234%%'" in sql("138-0000-1234")
    assert "beneficiaries.phone" not in sql("123")  # under 4 digits: a reference only


# Pagination --------------------------------------------------------------------------------


async def many(harness: Harness, count: int) -> list[int]:
    """`count` repair requests in Tianhe Grid 1, a minute apart, Monday from 10:00."""
    made = []
    for n in range(count):
        harness.clock.set(MONDAY + timedelta(minutes=n))
        made.append(
            await submit(
                harness,
                RESIDENT,
                grid="QS-JB-TH-01",
                category="repair",
                who=f"住户{n:02d}",
                phone=f"1370000{n:04d}",
                description=f"Roof leak number {n}",
            )
        )
    return made


async def test_overdue_pages(harness: Harness) -> None:
    harness.languages[XU] = "en"
    made = await many(harness, 2 * PAGE + 3)
    harness.clock.set(TUESDAY_13)  # every accept deadline passed; no sweep yet
    (first,) = await harness.say(XU, "/overdue")
    assert first.text.startswith(
        "<b>23 overdue requests in your area</b>, longest overdue first · page 1 of 3"
    )
    assert opened(first) == ids(*made[:PAGE])
    assert [b.data for b in first.message.buttons[-1]] == ["ov:10"]
    (second,) = await harness.press(XU, "ov:10")
    assert opened(second) == ids(*made[PAGE : 2 * PAGE])
    assert [b.text for b in second.message.buttons[-1]] == ["◀ Previous", "Next ▶"]
    assert [b.data for b in second.message.buttons[-1]] == ["ov:0", "ov:20"]
    (third,) = await harness.press(XU, "ov:20")
    assert opened(third) == ids(*made[2 * PAGE :])
    assert "page 3 of 3" in third.text
    # A page past the end (the list got shorter) shows the last one.
    (beyond,) = await harness.press(XU, "ov:990")
    assert opened(beyond) == opened(third)
    for forged in ("ov:5", "ov:abc", "ov:-10", "ov:", "ov:1" + "0" * 30):
        assert await harness.press(XU, forged) == []
        assert harness.last_answer == "This button is no longer active."
    # Another community's coordinator paging gets their own (empty) area, not Xu's.
    harness.languages[SUN] = "en"
    (other,) = await harness.press(SUN, "ov:10")
    assert other.text == "✅ Nothing is overdue in your area."


async def test_find_pages_keep_the_text(harness: Harness) -> None:
    harness.languages[XU] = "en"
    made = list(reversed(await many(harness, 2 * PAGE + 3)))  # newest first
    (first,) = await harness.say(XU, "/find roof leak")
    assert first.text.startswith("<b>23 requests</b> in your area match “roof leak” · page 1 of 3")
    assert opened(first) == ids(*made[:PAGE])
    page_data = [b.data for b in first.message.buttons[-1]]
    assert len(page_data) == 1 and page_data[0].endswith(":p:10")
    assert len(page_data[0].encode()) <= 64 and "roof" not in page_data[0]
    (second,) = await harness.press(XU, page_data[0])
    assert opened(second) == ids(*made[PAGE : 2 * PAGE])
    (third,) = await harness.press(XU, choice(harness, XU, "p:20"))
    assert opened(third) == ids(*made[2 * PAGE :])
    (back,) = await harness.press(XU, choice(harness, XU, "p:10"))
    assert opened(back) == opened(second)
    # The first page's button belongs to an earlier step: refused, nothing shown.
    assert await harness.press(XU, page_data[0]) == []
    assert harness.last_answer == "This button is no longer active."
    # A forged value under the current step is refused too.
    nonce = choice(harness, XU, "p:0").split(":")[1]
    for value in ("p:7", "p:x", "q:10"):
        assert await harness.press(XU, f"c:{nonce}:{value}") == []
        assert harness.last_answer == "This button is no longer active."


# Pass up -----------------------------------------------------------------------------------


async def test_town_officer_passes_up_a_grid_members_request(
    harness: Harness, district: District
) -> None:
    """Hu passes the gas request (with Wang, grid level) up: the community has it now, the
    event names Hu, Wang and the resident are told, and Xu gets a task card."""
    t = tr(harness, HU)
    (prompt,) = await harness.press(HU, f"su:{district.gas}")
    assert prompt.text == (
        f"{ref(district.gas)}: why should it go up to the community / village level? "
        "It moves there at once, and the resident is told."
    )
    assert (await request_row(harness, district.gas)).level == "grid"  # not before the reason
    (done,) = await harness.say(HU, "Wang is on leave today")
    assert done.text == f"↩ {ref(district.gas)} was passed to {await label(harness, XU, t)}."

    request = await request_row(harness, district.gas)
    xu, hu = await staff_of(harness, XU), await staff_of(harness, HU)
    assert (request.level, request.assignee_staff_id, request.status) == (
        "community",
        xu.id,
        "assigned",
    )
    last = (await events(harness, district.gas))[-1]
    assert (last.action, last.actor_staff_id, last.note) == (
        "escalate",
        hu.id,
        "why:pass_up\nWang is on leave today",
    )
    # Wang and Xu never opened a chat with the bot: their messages are in Chinese.
    zh = translator("zh_CN")
    assert harness.last_text(WANG) == zh._(
        "⬆ {ref} was passed up to {who} by {name}: {reason}",
        ref=ref(district.gas),
        who=await label(harness, XU, zh),
        name="胡海涛",
        reason="Wang is on leave today",
    )
    lead = zh._("↩ Passed on by {name}: {reason}", name="胡海涛", reason="Wang is on leave today")
    assert harness.last_text(XU).startswith(f"<b>{lead}</b>")
    assert f"<b>{ref(district.gas)}</b>" in harness.last_text(RESIDENT)
    # The timeline names who passed it up.
    (card,) = await harness.say(HU, f"/status {ref(district.gas)}")
    assert card.text.endswith(
        f"2026-12-01 13:00 · Escalated to {await label(harness, XU, t)} — passed up by hand; "
        "Wang is on leave today (by 胡海涛)"
    )


async def test_the_holder_passing_up_declines_as_on_the_task_card(
    harness: Harness, district: District
) -> None:
    await harness.press(XU, f"su:{district.tap}")
    await harness.say(XU, "Needs the street office's plumber")
    request = await request_row(harness, district.tap)
    hu = await staff_of(harness, HU)
    assert (request.level, request.assignee_staff_id) == ("town", hu.id)
    last = (await events(harness, district.tap))[-1]
    assert (last.action, last.note) == ("decline", "Needs the street office's plumber")


async def test_cancelling_the_reason_changes_nothing(harness: Harness, district: District) -> None:
    before = await events(harness, district.gas)
    await harness.press(HU, f"su:{district.gas}")
    await harness.press(HU, choice(harness, HU, "cancel"))
    assert harness.last_answer == "Cancelled"
    (answer,) = await harness.say(HU, "Wang is on leave today")  # no longer a reason
    assert "passed" not in answer.text
    assert await events(harness, district.gas) == before


async def test_forged_pass_up_buttons_change_nothing(harness: Harness, district: District) -> None:
    """Outside the area: as if it did not exist. Inside but above the viewer, not open, or
    with nobody above: a reason, and nothing moves."""
    before = {i: await events(harness, i) for i in (district.light, district.field)}
    for data in (f"su:{district.light}", f"su:{district.field}", "su:999999", "su:x"):
        assert await harness.press(XU, data) == []
        assert harness.last_answer == "This request is not available."
    assert await harness.press(WANG, f"su:{district.gas}") == []
    assert harness.last_answer == "This request is not available."
    assert await harness.press(XU, f"r:{district.light}") == []  # /reassign checks too
    assert harness.last_answer == "This request is not available."
    assert {i: await events(harness, i) for i in before} == before

    # Hu's request now (the town level) is beyond Xu.
    await harness.press(XU, f"su:{district.tap}")
    await harness.say(XU, "Needs the street office's plumber")
    assert await harness.press(XU, f"su:{district.tap}") == []
    assert harness.last_answer == (
        f"{ref(district.tap)} is at a level above yours: you can follow it, but not move it."
    )
    # Resolved: not open.
    async with harness.db.transaction() as session:
        request = await session.get(Request, district.discount)
        assert request is not None
        await transition(session, request, Action.RESOLVE, harness.clock.now(), note="Done")
    assert await harness.press(XU, f"su:{district.discount}") == []
    assert harness.last_answer == f"{ref(district.discount)} is no longer open."


async def test_a_request_that_moved_while_the_reason_was_typed_is_left_alone(
    harness: Harness, district: District
) -> None:
    await harness.press(XU, f"su:{district.gas}")
    async with harness.db.transaction() as session:
        request = await session.get(Request, district.gas)
        assert request is not None
        await transition(session, request, Action.ACCEPT, harness.clock.now())
        await transition(session, request, Action.RESOLVE, harness.clock.now(), note="Done")
    before = await events(harness, district.gas)
    (answer,) = await harness.say(XU, "Too late for this")
    assert answer.text == f"{ref(district.gas)} is no longer open.\nNothing was changed."
    assert await events(harness, district.gas) == before


# Both languages ----------------------------------------------------------------------------


async def test_chinese_status_overdue_and_find(harness: Harness, district: District) -> None:
    harness.languages[XU] = "zh-hans"
    t = tr(harness, XU)
    assert t.language == "zh_CN"
    (card,) = await harness.say(XU, f"/status {ref(district.tap)}")
    assert t._("<b>Timeline</b>") in card.text.split("\n")
    assert (
        t._(
            "Status: {status} · Level: {level}",
            status=t._(STATUS_LABELS["assigned"]),
            level=t._(LEVEL_LABELS["community"]),
        )
        in card.text
    )
    assert t._(NOTE_LABELS["why:accept_overdue"]) in card.text
    assert [b.text for b in card.buttons] == [
        t._("🔄 Reassign"),
        t._("⬆ Pass up"),
        t._("🤝 Mark as a shared need"),
        t._("Open the task"),
    ]

    (overdue,) = await harness.say(XU, "/overdue")
    assert overdue.text.startswith("<b>您负责的区域里有 2 件超时需求</b>，超时最久的在前")
    assert "⏰ 已超时 3小时0分钟（自 2026-12-01 10:00 起）" in overdue.text

    (found,) = await harness.say(XU, "/find 李大")
    assert found.text.startswith("您负责的区域里有 <b>2 件需求</b>与“李大”相符")
    (none,) = await harness.say(XU, "/find 赵阿姨")
    assert none.text.startswith("您负责的区域里没有与“赵阿姨”相符的需求。")


def test_spans_read_naturally() -> None:
    en, zh = translator("en"), translator("zh_CN")
    assert span(en, timedelta(minutes=5)) == "5 min"
    assert span(en, timedelta(hours=2, minutes=3)) == "2 h 3 min"
    assert span(en, timedelta(days=3, hours=4, minutes=59)) == "3 d 4 h"
    assert span(zh, timedelta(days=3, hours=4)) == "3天4小时"
    assert span(en, timedelta(seconds=-5)) == "0 min"


async def test_help_shows_the_area_commands_only_to_those_with_an_area(harness: Harness) -> None:
    (coordinator,) = [m for m in await harness.say(XU, "/help") if "/help" in m.text]
    for command in ("/status", "/overdue", "/find", "/stats", "/export", "/reassign"):
        assert command in coordinator.text
    (member,) = [m for m in await harness.say(WANG, "/help") if "/help" in m.text]
    assert "/tasks" in member.text and "/status" not in member.text
    (resident,) = [m for m in await harness.say(RESIDENT, "/help") if "/help" in m.text]
    assert "/join" in resident.text and "/tasks" not in resident.text
    assert "/status" not in resident.text


BIG = (2**31, 2**31 + 1, 2**63 - 1, 13912340001, 10**12 - 1)


async def test_big_numbers_are_phones_or_nothing(
    harness: Harness, district: District, caplog: pytest.LogCaptureFixture
) -> None:
    """On PostgreSQL an id column holds 32 bits: a mobile number typed to /find, or a reference
    or button id of 2**31 and more, is answered (as a phone, or as nothing there), never sent
    to the database as an id to fail there, with a traceback carrying the phone."""
    # /find with an 11-digit number looks for the phone, however it is written.
    for text in ("13912340001", "139 1234 0001", "139-1234-0001", "１３９１２３４０００１"):
        (found,) = await harness.say(XU, f"/find {text}")
        assert opened(found) == ids(district.discount, district.gas, district.tap), text
    (none,) = await harness.say(XU, "/find 13800000000")
    assert none.text.startswith("Nothing in your area matches “13800000000”.")
    await harness.say(XU, "/cancel")
    for number in BIG:
        for reference in (str(number), f"HY{number}", f"#{number}"):
            (status,) = await harness.say(XU, f"/status {reference}")
            assert status.text == f"There is no request {reference[:20]} in your area."
            (reassign,) = await harness.say(XU, f"/reassign {reference}")
            assert reassign.text == f"There is no request {reference[:20]} in your area."
    # Forged buttons carrying a big id: each refused as any unknown id is.
    for number in BIG:
        for data, answer in (
            (f"s:{number}", "This request is not available."),
            (f"su:{number}", "This request is not available."),
            (f"r:{number}", "This button is no longer active."),
            (f"r:{district.tap}:{number}", "This button is no longer active."),
            (f"t:acc:{number}", "This button is no longer active."),
        ):
            assert await harness.press(XU, data) == [], data
            assert harness.last_answer == answer, data
        for user, data in (
            (RESIDENT, f"v:{number}"),
            (RESIDENT, f"rv:y:{number}"),
            (RESIDENT, f"bl:{number}"),
            (RESIDENT, f"m:mine:{number}"),
            (XU, f"fu:call:{number}"),
            (XU, f"tl:{number}"),
            (XU, f"tm:{number}"),
            (XU, f"ov:{number}"),
            (WANG, f"q:{number}"),
        ):
            await harness.press(user, data)
            assert "went wrong" not in (harness.last_answer or ""), data
            assert all("went wrong" not in t for t in harness.texts(user)), data
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "13912340001" not in caplog.text
