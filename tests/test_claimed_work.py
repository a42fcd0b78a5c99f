"""After a claim (handlers/claimed_work.py): the volunteer reports the need done (a line or a
voice note, and the hours), the holder confirms it or sends it back, or it counts as done after
the time (schedules/claim_confirm.py); the need is resolved and the verdict credited to the
claimant; reminders go to the volunteer; /mine, the area's figures in /stats, the ledger's
"Volunteers" sheet and the digest's unclaimed offers. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import col, select

from domain.claims import ClaimState, take
from domain.deadlines import DEFAULT_POLICY
from domain.labels import category_label, format_time
from domain.volunteers import VolunteerStatus
from schedules.claim_confirm import confirm_due
from storage.models import Account, Claim, Organisation, Request, RequestEvent, Staff, Volunteer
from tests.harness import ZONE, Harness
from tests.test_conversation_escalation import tick
from tests.test_conversation_onboarding import LANGUAGES, choose, register, tr, values
from tests.test_conversation_report import report_need

RESIDENT = 900001  # lives in Tianhe Grid 1
VOL = 900002  # a volunteer of Tianhe community
OTHER_VOL = 900005
WANG = 700000001  # grid member, Tianhe Grid 1 (repair): the holder
LI = 700000002  # the other grid member
XU = 700000011  # coordinator, Tianhe community
LINE = "Fixed the tap with a new washer"


async def make_volunteer(harness: Harness, user: int, name: str) -> int:
    await register(harness, user)
    async with harness.db.transaction() as session:
        account = (await session.exec(select(Account).where(Account.telegram_id == user))).one()
        volunteer = Volunteer(
            account_id=account.id,
            name=name,
            unit_code="QS-JB-TH",
            categories="repair;errand",
            status=VolunteerStatus.APPROVED.value,
            created_at=harness.clock.now(),
        )
        session.add(volunteer)
        await session.flush()
        assert volunteer.id is not None
        return volunteer.id


async def offer_and_take(
    harness: Harness, request_id: int, volunteer_id: int, organisation_id: int | None = None
) -> int:
    """What the offers engineer's flow does: an offer, taken by the volunteer."""
    now = harness.clock.now()
    async with harness.db.transaction() as session:
        wang = (await session.exec(select(Staff).where(Staff.telegram_id == WANG))).one()
        claim = Claim(
            request_id=request_id,
            state=ClaimState.OFFERED.value,
            offered_by_staff_id=wang.id,
            offered_at=now,
            reach_unit_code="QS-JB-TH",
        )
        session.add(claim)
        await session.flush()
        assert claim.id is not None
        request = await session.get(Request, request_id)
        assert request is not None
        request.claim_id = claim.id
        session.add(request)
        assert await take(
            session, claim.id, now, volunteer_id=volunteer_id, organisation_id=organisation_id
        )
        return claim.id


@pytest.fixture(params=LANGUAGES)
async def claimed(request: pytest.FixtureRequest, harness: Harness) -> tuple[int, int]:
    """A repair need of the resident, held by Wang (assigned), claimed by the volunteer."""
    for user in (RESIDENT, VOL, OTHER_VOL, WANG, LI, XU):
        harness.languages[user] = request.param
    for user in (WANG, LI, XU):
        await harness.say(user, "/start")
    await register(harness, RESIDENT)
    await report_need(harness, RESIDENT)
    volunteer_id = await make_volunteer(harness, VOL, "张志愿")
    return 1, await offer_and_take(harness, 1, volunteer_id)


async def claim_row(harness: Harness, claim_id: int) -> Claim:
    async with harness.db.session() as session:
        claim = await session.get(Claim, claim_id)
        assert claim is not None
        return claim


async def request_row(harness: Harness, request_id: int = 1) -> Request:
    async with harness.db.session() as session:
        request = await session.get(Request, request_id)
        assert request is not None
        return request


async def actions(harness: Harness, request_id: int = 1) -> list[str]:
    async with harness.db.session() as session:
        rows = await session.exec(
            select(RequestEvent.action)
            .where(RequestEvent.request_id == request_id)
            .order_by(col(RequestEvent.id))
        )
        return list(rows.all())


async def report_done(harness: Harness, claim_id: int, line: str = LINE, hours: str = "2") -> None:
    await harness.press(VOL, f"cw:done:{claim_id}")
    await harness.say(VOL, line)
    await choose(harness, VOL, hours)


async def test_done_with_a_line_and_hours_asks_the_holder(
    harness: Harness, claimed: tuple[int, int]
) -> None:
    _, claim_id = claimed
    t = tr(harness, VOL)
    (prompt,) = await harness.press(VOL, f"cw:done:{claim_id}")
    assert "HY000001" in prompt.text and values(prompt) == ["cancel"]
    (hours,) = await harness.say(VOL, LINE)
    assert values(hours) == ["1", "2", "4", "skip"]
    assert (await claim_row(harness, claim_id)).state == "claimed"  # not before the hours
    await choose(harness, VOL, "2")

    claim = await claim_row(harness, claim_id)
    now = harness.clock.now()
    assert (claim.state, claim.done_note, claim.hours) == ("done", LINE, 2.0)
    assert claim.done_at == now
    assert claim.confirm_due_at == claim.next_due_at == now + timedelta(hours=48)
    assert (await actions(harness))[-1] == "claim_done"
    assert harness.last_text(VOL) == t._(
        "✅ Thank you! {ref} is reported done. The holder is asked to confirm; without an "
        "answer it counts as done by {time}.",
        ref="HY000001",
        time=format_time(now + timedelta(hours=48), ZONE),
    )

    card = harness.sender.messages(WANG)[-1]
    assert LINE in card.text and "张志愿" in card.text
    assert [b.data for b in card.buttons] == [f"cw:ok:{claim_id}", f"cw:no:{claim_id}"]
    # A second tap of the old Done button: politely refused, nothing changes.
    await harness.press(VOL, f"cw:done:{claim_id}")
    assert harness.last_answer == t._(
        "You have already reported it done; the holder is asked to confirm."
    )


async def test_done_with_a_voice_note(harness: Harness, claimed: tuple[int, int]) -> None:
    _, claim_id = claimed
    await harness.press(VOL, f"cw:done:{claim_id}")
    await harness.send(VOL, "voice", file_id="VOICE-1")
    await choose(harness, VOL, "skip")
    claim = await claim_row(harness, claim_id)
    assert (claim.state, claim.done_note, claim.hours) == ("done", None, None)
    assert (claim.done_media_kind, claim.done_media_file_id) == ("voice", "VOICE-1")
    voice, card = harness.sender.messages(WANG)[-2:]
    assert voice.message.media_file_id == "VOICE-1"
    assert tr(harness, WANG)._("(a voice message, above)") in card.text
    async with harness.db.session() as session:
        event = (
            await session.exec(select(RequestEvent).where(RequestEvent.action == "claim_done"))
        ).one()
    assert event.media_file_id == "VOICE-1"


async def test_only_the_claimant_reports_and_only_the_holder_confirms(
    harness: Harness, claimed: tuple[int, int]
) -> None:
    _, claim_id = claimed
    await make_volunteer(harness, OTHER_VOL, "李志愿")
    await harness.press(OTHER_VOL, f"cw:done:{claim_id}")
    assert harness.last_answer == tr(harness, OTHER_VOL)._("This is not a need you hold.")
    await harness.press(RESIDENT, "cw:done:999999999999999")
    assert harness.last_answer == tr(harness, RESIDENT)._("This button is no longer active.")
    await report_done(harness, claim_id)
    await harness.press(LI, f"cw:ok:{claim_id}")
    assert harness.last_answer == tr(harness, LI)._("This task is not assigned to you.")
    assert (await claim_row(harness, claim_id)).state == "done"


async def test_the_holder_confirms_and_the_need_is_resolved(
    harness: Harness, claimed: tuple[int, int]
) -> None:
    _, claim_id = claimed
    await report_done(harness, claim_id)
    card = harness.sender.messages(WANG)[-1]
    await harness.press(WANG, f"cw:ok:{claim_id}", card.message_id)
    t = tr(harness, WANG)
    assert harness.last_answer == t._("Confirmed")
    claim = await claim_row(harness, claim_id)
    assert (claim.state, claim.confirmed_at) == ("confirmed", harness.clock.now())
    request = await request_row(harness)
    assert (request.status, request.result_note, request.claim_id) == ("resolved", LINE, None)
    assert request.verdict_stage == "ask"  # the usual verdict round
    assert (await actions(harness))[-3:] == ["claim_done", "accept", "resolve"]
    assert not card.buttons  # the card's buttons went
    resident_t = tr(harness, RESIDENT)
    assert harness.last_text(RESIDENT) == resident_t._(
        "✅ Your request <b>{ref}</b> has been resolved.\nResult: {note}",
        ref="HY000001",
        note=LINE,
    )
    assert "HY000001" in harness.last_text(VOL)
    # A second tap: told it is settled, nothing moves.
    await harness.press(WANG, f"cw:ok:{claim_id}")
    assert harness.last_answer == t._(
        "This has already been settled: {state}.", state=t._("confirmed")
    )
    assert (await actions(harness)).count("resolve") == 1


async def test_not_done_yet_goes_back_to_the_volunteer_with_the_reason(
    harness: Harness, claimed: tuple[int, int]
) -> None:
    _, claim_id = claimed
    await report_done(harness, claim_id)
    await harness.press(WANG, f"cw:no:{claim_id}")
    await harness.say(WANG, "The tap still drips")
    claim = await claim_row(harness, claim_id)
    assert (claim.state, claim.next_due_at, claim.confirm_due_at) == ("claimed", None, None)
    told = harness.sender.messages(VOL)[-1]
    assert "The tap still drips" in told.text
    assert [b.data for b in told.buttons] == [f"cw:done:{claim_id}"]
    assert (await request_row(harness)).status == "assigned"
    # The volunteer can report it again.
    await report_done(harness, claim_id, line="Replaced the whole tap", hours="4")
    assert (await claim_row(harness, claim_id)).state == "done"


async def test_unconfirmed_work_counts_as_done_after_the_time(
    harness: Harness, claimed: tuple[int, int]
) -> None:
    _, claim_id = claimed
    await report_done(harness, claim_id)
    harness.clock.advance(timedelta(hours=47))
    report = await confirm_due(harness.db, harness.clock, ZONE, DEFAULT_POLICY)
    assert report.confirmed == []
    harness.clock.advance(timedelta(hours=1))
    report = await confirm_due(harness.db, harness.clock, ZONE, DEFAULT_POLICY)
    assert report.confirmed == [claim_id]
    again = await confirm_due(harness.db, harness.clock, ZONE, DEFAULT_POLICY)
    assert again.confirmed == []  # exactly once
    await harness.outbox.deliver_due()
    claim = await claim_row(harness, claim_id)
    assert claim.state == "confirmed"
    request = await request_row(harness)
    assert (request.status, request.result_note) == ("resolved", LINE)
    assert "HY000001" in harness.last_text(WANG)
    assert "HY000001" in harness.last_text(VOL)
    # The holder's old card: a late tap is answered politely.
    await harness.press(WANG, f"cw:ok:{claim_id}")
    t = tr(harness, WANG)
    assert harness.last_answer == t._(
        "This has already been settled: {state}.", state=t._("confirmed")
    )


async def test_the_verdict_is_credited_to_the_claimant(
    harness: Harness, claimed: tuple[int, int]
) -> None:
    _, claim_id = claimed
    await report_done(harness, claim_id)
    await harness.press(WANG, f"cw:ok:{claim_id}")
    harness.clock.advance(timedelta(hours=1))
    await tick(harness)  # the resident is asked
    await harness.press(RESIDENT, "rv:s:1:y")
    await harness.press(RESIDENT, "rv:f:1:y:s")
    claim = await claim_row(harness, claim_id)
    assert (claim.solved, claim.satisfaction) == (True, "satisfied")
    await harness.outbox.deliver_due()
    t = tr(harness, VOL)
    assert t._(
        "🌟 The resident's verdict on {ref}: solved, and they were satisfied. Thank you!",
        ref="HY000001",
    ) in harness.texts(VOL)


async def test_the_reminder_goes_to_the_volunteer(
    harness: Harness, claimed: tuple[int, int]
) -> None:
    await harness.press(WANG, "t:accept:1")
    request = await request_row(harness)
    assert request.resolve_remind_at is not None
    harness.clock.set(request.resolve_remind_at)
    before_wang = len(harness.sender.messages(WANG))
    report = await tick(harness)
    assert (1, "remind:resolve") in report.actions
    reminder = harness.sender.messages(VOL)[-1]
    assert "HY000001" in reminder.text
    assert [b.data for b in reminder.buttons] == [f"cw:done:{claimed[1]}"]
    assert len(harness.sender.messages(WANG)) == before_wang
    async with harness.db.session() as session:
        event = (
            await session.exec(select(RequestEvent).where(RequestEvent.action == "remind"))
        ).one()
    assert event.note == "clock:resolve\nto:claimant"


async def test_mine_shows_what_they_hold_did_and_their_totals(
    harness: Harness, claimed: tuple[int, int]
) -> None:
    _, claim_id = claimed
    t = tr(harness, VOL)
    (shown,) = await harness.say(VOL, "/mine")
    assert "HY000001" in shown.text
    assert [b.data for b in shown.buttons] == [f"cw:done:{claim_id}"]
    await report_done(harness, claim_id)
    await harness.press(WANG, f"cw:ok:{claim_id}")
    harness.clock.advance(timedelta(hours=1))
    await tick(harness)
    await harness.press(RESIDENT, "rv:s:1:y")
    await harness.press(RESIDENT, "rv:f:1:y:f")
    (shown,) = await harness.say(VOL, "/mine")
    assert t._("the resident was fairly satisfied") in shown.text
    assert t._("Claims: {claims} · done: {done} · hours: {hours}", claims=1, done=1, hours="2") in (
        shown.text
    )
    assert (
        t._(
            "Residents satisfied: {satisfied} of {rated} rated ({rate})",
            satisfied=1,
            rated=1,
            rate="100%",
        )
        in shown.text
    )
    (other,) = await harness.say(RESIDENT, "/mine")
    assert "/volunteer" in other.text


async def test_mine_pages_what_they_did(harness: Harness, claimed: tuple[int, int]) -> None:
    """Seven confirmed claims: five on the first page, two on the next."""
    _, first = claimed
    async with harness.db.transaction() as session:
        volunteer = (await session.exec(select(Volunteer))).one()
        base = await session.get(Claim, first)
        assert base is not None
        base.state = "confirmed"
        base.confirmed_at = harness.clock.now()
        session.add(base)
        for n in range(6):
            session.add(
                Claim(
                    request_id=1,
                    state="confirmed",
                    offered_at=harness.clock.now(),
                    reach_unit_code="QS-JB-TH",
                    volunteer_id=volunteer.id,
                    claimed_at=harness.clock.now(),
                    confirmed_at=harness.clock.now() + timedelta(minutes=n),
                )
            )
    (page,) = await harness.say(VOL, "/mine")
    assert page.text.count("HY000001") == 5
    assert [b.data for b in page.buttons] == ["cw:page:5"]
    (second,) = await harness.press(VOL, "cw:page:5")
    assert second.text.count("HY000001") == 2
    assert [b.data for b in second.buttons] == ["cw:page:0"]


async def confirmed_and_rated(harness: Harness, claim_id: int, satisfaction: str = "s") -> None:
    await report_done(harness, claim_id)
    await harness.press(WANG, f"cw:ok:{claim_id}")
    harness.clock.advance(timedelta(hours=1))
    await tick(harness)
    await harness.press(RESIDENT, "rv:s:1:y")
    await harness.press(RESIDENT, f"rv:f:1:y:{satisfaction}")


async def test_stats_shows_the_volunteers_of_the_area(
    harness: Harness, claimed: tuple[int, int]
) -> None:
    _, claim_id = claimed
    await confirmed_and_rated(harness, claim_id)
    shown = await harness.say(XU, "/stats")
    t = tr(harness, XU)
    record = t._(
        "claims {claims} · done {done} · {hours} h · satisfaction {satisfaction}",
        claims=1,
        done=1,
        hours="2",
        satisfaction=t._(
            "{percent}% ({numerator}/{denominator})", percent=100, numerator=1, denominator=1
        ),
    )
    (block,) = [m for m in shown if "张志愿" in m.text]
    assert block.text == "\n".join(
        [t._("🙋 <b>Volunteers and units</b>: {record}", record=record), f"• 张志愿: {record}"]
    )


async def test_stats_without_claims_says_nothing_of_volunteers(
    harness: Harness, claimed: tuple[int, int]
) -> None:
    shown = await harness.say(LI, "/stats")  # a grid member: no area
    assert not [m for m in shown if "张志愿" in m.text]
    shown = await harness.say(XU, "/stats 2026-10")  # a month before any claim
    assert shown and not [m for m in shown if "🙋" in m.text]


async def test_the_ledger_has_a_volunteers_sheet(
    harness: Harness, claimed: tuple[int, int]
) -> None:
    import io

    from openpyxl import load_workbook

    from domain.areas import area_of
    from domain.i18n import translator
    from domain.ledger import Viewer, write_ledger
    from domain.reports import parse_period

    _, claim_id = claimed
    await confirmed_and_rated(harness, claim_id, "u")  # not satisfied: reopened
    # A unit claims too, through a contact person whose name looks like a formula.
    async with harness.db.transaction() as session:
        unit = Organisation(name="=HYPERLINK(1)", kind="enterprise", created_at=harness.clock.now())
        session.add(unit)
        await session.flush()
        unit_id = unit.id
    contact = await make_volunteer(harness, OTHER_VOL, "+李联系人")
    await offer_and_take(harness, 1, contact, organisation_id=unit_id)
    buffer = io.BytesIO()
    async with harness.db.session() as session:
        xu = (await session.exec(select(Staff).where(Staff.telegram_id == XU))).one()
        area = await area_of(session, xu)
        assert area is not None
        period = parse_period("", harness.clock.now(), ZONE)
        assert period is not None
        await write_ledger(
            session,
            area,
            period,
            buffer,
            t=translator("en"),
            zone=ZONE,
            viewer=Viewer(staff_id=xu.id),
            now=harness.clock.now(),
        )
    buffer.seek(0)
    sheet = load_workbook(buffer).worksheets[2]
    assert sheet.title == "Volunteers"
    rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert rows[0] == [
        "Volunteer or unit",
        "Kind",
        "Serves",
        "Party member",
        "Claims",
        "Done",
        "Hours",
        "Rated",
        "Satisfied",
        "Satisfaction rate",
    ]
    assert rows[1][:1] + rows[1][4:] == ["张志愿", 1, 1, 2, 1, 0, 0]
    assert rows[2][:2] + rows[2][4:] == ["=HYPERLINK(1)", "Unit", 1, 0, 0, 0, 0, "—"]
    assert rows[3][:1] + rows[3][4:9] == ["Total", 2, 1, 2, 1, 0]
    cell = sheet["A3"]
    assert (cell.data_type, cell.quotePrefix) == ("s", True)


async def test_the_digest_names_offers_nobody_claimed_for_a_day(harness: Harness) -> None:
    from datetime import time

    from schedules.digest import send_digests

    harness.languages[XU] = harness.languages[RESIDENT] = "en"
    await harness.say(XU, "/start")
    await harness.say(WANG, "/start")
    await register(harness, RESIDENT)
    await report_need(harness, RESIDENT)
    async with harness.db.transaction() as session:
        session.add(
            Claim(
                request_id=1,
                state="offered",
                offered_at=harness.clock.now(),
                reach_unit_code="QS-JB-TH",
            )
        )
    # Tuesday 08:30: offered on Monday 10:00, not yet a day.
    harness.clock.advance(timedelta(hours=22, minutes=30))
    await send_digests(harness.db, harness.clock, ZONE, DEFAULT_POLICY, time(8, 30))
    await harness.outbox.deliver_due()
    t = tr(harness, XU)
    label = t._("📣 Offered, unclaimed for a day")
    assert not [text for text in harness.texts(XU) if label in text]
    # Wednesday 08:30.
    harness.clock.advance(timedelta(days=1))
    await send_digests(harness.db, harness.clock, ZONE, DEFAULT_POLICY, time(8, 30))
    await harness.outbox.deliver_due()
    (digest,) = [text for text in harness.texts(XU) if label in text]
    assert f"{label}: <b>1</b> — HY000001" in digest


async def test_the_confirm_time_is_a_setting(
    harness: Harness, claimed: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.settings import SettingsError, load_settings

    assert load_settings(_env_file=None).claim_confirm_after == timedelta(hours=48)
    monkeypatch.setenv("HUIYIN_CLAIM_CONFIRM_HOURS", "6")
    settings = load_settings(_env_file=None)
    assert settings.claim_confirm_after == timedelta(hours=6)
    monkeypatch.setenv("HUIYIN_CLAIM_CONFIRM_HOURS", "0")
    with pytest.raises(SettingsError, match="HUIYIN_CLAIM_CONFIRM_HOURS"):
        load_settings(_env_file=None)

    harness.dispatcher.claim_confirm_after = settings.claim_confirm_after
    _, claim_id = claimed
    await report_done(harness, claim_id)
    claim = await claim_row(harness, claim_id)
    assert claim.confirm_due_at == harness.clock.now() + timedelta(hours=6)


async def test_a_claim_taken_back_mid_report_changes_nothing(
    harness: Harness, claimed: tuple[int, int]
) -> None:
    _, claim_id = claimed
    await harness.press(VOL, f"cw:done:{claim_id}")
    await harness.say(VOL, LINE)
    async with harness.db.transaction() as session:  # the holder took it back meanwhile
        claim = await session.get(Claim, claim_id)
        assert claim is not None
        claim.state = ClaimState.TAKEN_BACK.value
        session.add(claim)
    await choose(harness, VOL, "2")
    t = tr(harness, VOL)
    assert harness.last_text(VOL) == t._("This need has moved on; nothing was changed.")
    claim = await claim_row(harness, claim_id)
    assert (claim.state, claim.done_note) == ("taken_back", None)
    assert "claim_done" not in await actions(harness)


async def test_not_done_yet_without_a_reason(harness: Harness, claimed: tuple[int, int]) -> None:
    _, claim_id = claimed
    await report_done(harness, claim_id)
    await harness.press(WANG, f"cw:no:{claim_id}")
    await choose(harness, WANG, "skip")
    assert (await claim_row(harness, claim_id)).state == "claimed"
    t = tr(harness, VOL)
    assert harness.last_text(VOL) == "\n".join(
        [
            t._("↩ {ref} is not done yet, says the holder.", ref="HY000001"),
            t._("Please finish it and tap Done again, or give it back if you cannot."),
        ]
    )


async def test_reported_work_on_a_need_that_ended_is_closed_not_confirmed(
    harness: Harness, claimed: tuple[int, int]
) -> None:
    _, claim_id = claimed
    await report_done(harness, claim_id)
    async with harness.db.transaction() as session:
        request = await session.get(Request, 1)
        assert request is not None
        request.status = "cancelled"
        session.add(request)
    harness.clock.advance(timedelta(hours=49))
    report = await confirm_due(harness.db, harness.clock, ZONE, DEFAULT_POLICY)
    assert (report.confirmed, report.closed) == ([], [claim_id])
    claim = await claim_row(harness, claim_id)
    assert (claim.state, claim.next_due_at) == ("closed", None)
    assert (await request_row(harness)).claim_id is None


async def test_mine_lists_at_most_ten_held_needs(
    harness: Harness, claimed: tuple[int, int]
) -> None:
    async with harness.db.transaction() as session:
        volunteer = (await session.exec(select(Volunteer))).one()
        for _ in range(11):
            session.add(
                Claim(
                    request_id=1,
                    state="claimed",
                    offered_at=harness.clock.now(),
                    reach_unit_code="QS-JB-TH",
                    volunteer_id=volunteer.id,
                    claimed_at=harness.clock.now(),
                )
            )
    (shown,) = await harness.say(VOL, "/mine")
    assert len(shown.buttons) == 10
    assert tr(harness, VOL)._("… and {count} more.", count=2) in shown.text


async def test_the_reminder_after_reporting_done_asks_nothing_more(
    harness: Harness, claimed: tuple[int, int]
) -> None:
    await harness.press(WANG, "t:accept:1")
    await report_done(harness, claimed[1])
    request = await request_row(harness)
    assert request.resolve_remind_at is not None
    harness.clock.set(request.resolve_remind_at)
    before_wang = len(harness.sender.messages(WANG))
    await tick(harness)
    reminder = harness.sender.messages(VOL)[-1]
    t = tr(harness, VOL)
    assert reminder.text == t._(
        "⏰ <b>{ref}</b> ({category}) is due by {time}; you reported it done and the holder "
        "has not confirmed it yet. Nothing more is needed from you.",
        ref="HY000001",
        category=category_label(t, "repair"),
        time=format_time(request.resolve_due_at, ZONE),
    )
    assert not reminder.buttons
    assert len(harness.sender.messages(WANG)) == before_wang


async def test_a_unit_claim_is_named_for_the_unit_on_the_holders_card(
    harness: Harness, claimed: tuple[int, int]
) -> None:
    _, first = claimed
    async with harness.db.transaction() as session:
        unit = Organisation(
            name="区供电公司",
            name_en="District Power Co.",
            kind="enterprise",
            created_at=harness.clock.now(),
        )
        session.add(unit)
        await session.flush()
        unit_id = unit.id
        claim = await session.get(Claim, first)
        assert claim is not None
        claim.organisation_id = unit_id
        session.add(claim)
    await report_done(harness, first)
    card = harness.sender.messages(WANG)[-1]
    unit_name = "District Power Co." if harness.languages[WANG] == "en" else "区供电公司"
    assert f"{unit_name} (张志愿)" in card.text


async def test_resolving_from_the_task_card_after_done_confirms_the_claim(
    harness: Harness, claimed: tuple[int, int]
) -> None:
    """The holder may resolve with the task card's own button rather than "Confirm done": the
    reported work is then confirmed all the same, and the verdict will be the claimant's."""
    _, claim_id = claimed
    await report_done(harness, claim_id)
    await harness.press(WANG, "t:accept:1")
    await harness.press(WANG, "t:resolve:1")
    await harness.say(WANG, "Checked the volunteer's work")
    claim = await claim_row(harness, claim_id)
    assert (claim.state, claim.confirmed_at) == ("confirmed", harness.clock.now())
    assert (await request_row(harness)).status == "resolved"
    harness.clock.advance(timedelta(hours=1))
    await tick(harness)
    await harness.press(RESIDENT, "rv:s:1:y")
    await harness.press(RESIDENT, "rv:f:1:y:s")
    assert (await claim_row(harness, claim_id)).satisfaction == "satisfied"


@pytest.mark.parametrize("by", ["holder", "time"])
async def test_confirmed_work_takes_the_details_off_the_claimants_card(
    harness: Harness, by: str
) -> None:
    """Found by the end-to-end test: once the work is confirmed the volunteer no longer holds
    the need, so their claim card loses the beneficiary's name and phone and its buttons (it
    kept them before), whether the holder confirmed or the time did."""
    from tests import test_offers as offers

    await offers.make_volunteer(harness, VOL)
    rid = await offers.a_need(harness)
    await offers.offer(harness, rid, note=None)
    (claim,) = await offers.claims(harness)
    assert claim.id is not None
    await harness.press(VOL, f"cw:done:{claim.id}")  # not yet theirs: refused
    await harness.press(VOL, f"of:take:{claim.id}")
    assert "13712345678" in offers.card_of(harness, VOL, claim.id).text
    await report_done(harness, claim.id, hours="skip")
    card = offers.card_of(harness, VOL, claim.id)
    assert "13712345678" in card.text  # reported done, still held: the details stay
    if by == "holder":
        await harness.press(WANG, f"cw:ok:{claim.id}")
    else:
        harness.clock.advance(timedelta(hours=48))
        report = await confirm_due(harness.db, harness.clock, ZONE, DEFAULT_POLICY)
        assert report.confirmed == [claim.id]
        await harness.outbox.deliver_due()
    assert (await claim_row(harness, claim.id)).state == "confirmed"
    card = offers.card_of(harness, VOL, claim.id)
    assert card.buttons == []
    assert "13712345678" not in card.text and "user900001" not in card.text
    t = tr(harness, VOL)
    if by == "holder":
        expected = t._(
            "✅ {who} confirmed your work on {ref}: thank you! The resident is asked for their "
            "verdict.",
            who="王建华 (" + t._("grid member") + ")",
            ref="HY000001",
        )
    else:
        expected = t._(
            "✅ {ref} counts as done: thank you! The resident is asked for their verdict.",
            ref="HY000001",
        )
    assert card.text == expected and harness.last_text(VOL) == expected
