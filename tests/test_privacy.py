"""Personal data (PIPL): the consent question says who sees what and keeps what was chosen; a
health or counselling need asks again; a family member's entry records that the resident told
them; /mydata; /forget by the resident and by a coordinator for a resident who phoned; retention
by the worker; who opened a phone number, and /phonelog."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import col, select

from bot.cli import export_command
from bot.settings import SettingsError, load_settings
from domain.clock import ManualClock
from domain.metrics import rates
from domain.privacy import ERASED_NAME, scrub_note
from schedules.retention import apply_retention
from storage.database import Database
from storage.models import (
    Account,
    Beneficiary,
    ConversationState,
    InboxUpdate,
    OutboxMessage,
    PhoneAccess,
    Request,
    RequestEvent,
    Staff,
)
from tests.harness import Harness
from tests.test_conversation_escalation import at, request_row, tick
from tests.test_conversation_family import add_mother
from tests.test_conversation_onboarding import (
    CONSENT,
    LANGUAGES,
    account_of,
    choose,
    register,
    tr,
    values,
)
from tests.test_conversation_report import report_need
from tests.test_ledger import NOW, district, make_district  # noqa: F401 - the fixture
from tests.test_verdict import add_mother_without_the_bot, resolve
from tests.test_verdict import setup as verdict_setup

RESIDENT = 900001  # lives in Tianhe Grid 1
OTHER = 900004
WANG = 700000001  # grid member, Tianhe Grid 1 (repair)
ZHANG = 700000003  # grid member, Tianhe Grid 2 (where the resident's mother lives)
XU = 700000011  # coordinator, Tianhe community
SUN = 700000012  # coordinator, Liuyuan community (another community)
CAO = 700000026  # district admin


@pytest.fixture(params=LANGUAGES)
def lang(request: pytest.FixtureRequest, harness: Harness) -> str:
    for user in (RESIDENT, OTHER, WANG, ZHANG, XU, SUN, CAO):
        harness.languages[user] = request.param
    return str(request.param)


async def staff_start(harness: Harness, *users: int) -> None:
    for user in users:
        await harness.say(user, "/start")


def outbox_texts(rows: list[OutboxMessage]) -> list[str]:
    return [str(row.payload.get("text", "")) for row in rows]


async def outbox_of(harness: Harness, chat_id: int) -> list[OutboxMessage]:
    async with harness.db.session() as session:
        rows = await session.exec(
            select(OutboxMessage)
            .where(OutboxMessage.chat_id == chat_id)
            .order_by(col(OutboxMessage.id))
        )
        return list(rows.all())


# Consent -------------------------------------------------------------------------------------


async def test_consent_names_who_sees_what_and_keeps_the_choice(
    harness: Harness, lang: str
) -> None:
    t = tr(harness, RESIDENT)
    (consent,) = await harness.say(RESIDENT, "/start")
    assert consent.text == t._(CONSENT)
    for who in ("grid member", "community", "town", "department", "district office", "/forget"):
        assert who in CONSENT  # the English original names each, and the catalog translates it
    assert values(consent) == ["yes", "no"]
    await choose(harness, RESIDENT, "yes")
    first = harness.sender.messages(RESIDENT)[0]
    # The question lost its buttons and shows what was chosen.
    assert first.message_id == consent.message_id and first.edits == 1
    assert first.buttons == []
    assert first.text == t._(CONSENT) + "\n\n<b>" + t._("✅ I agree") + "</b>"

    await harness.say(OTHER, "/start")
    await choose(harness, OTHER, "no")
    assert harness.sender.messages(OTHER)[0].buttons == []
    assert harness.sender.messages(OTHER)[0].text.endswith("<b>" + t._("No, thanks") + "</b>")
    assert await account_of(harness, OTHER) is None


async def test_help_names_the_data_commands_for_whoever_may_use_them(harness: Harness) -> None:
    await register(harness, RESIDENT)
    resident = "\n".join(m.text for m in await harness.say(RESIDENT, "/help"))
    assert "/mydata" in resident and "/forget" in resident and "/phonelog" not in resident
    coordinator = "\n".join(m.text for m in await harness.say(XU, "/help"))
    assert "/forget" in coordinator and "/phonelog" not in coordinator
    admin = "\n".join(m.text for m in await harness.say(CAO, "/help"))
    assert "/phonelog" in admin


# A health or counselling need asks again -------------------------------------------------------


async def test_a_health_need_is_sent_only_after_a_separate_yes(harness: Harness, lang: str) -> None:
    await register(harness, RESIDENT)
    await harness.press(RESIDENT, "m:report")
    await choose(harness, RESIDENT, "living")
    await choose(harness, RESIDENT, "health")
    await harness.say(RESIDENT, "My blood pressure medicine has run out")
    (question,) = await choose(harness, RESIDENT, "submit")
    assert values(question) == ["send", "back", "cancel"]
    if lang == "en":
        assert "the district's department for it" in question.text
    assert await requests(harness) == []  # nothing sent yet

    (confirm,) = await choose(harness, RESIDENT, "back")
    assert values(confirm) == ["submit", "edit", "cancel"]
    await choose(harness, RESIDENT, "submit")
    await choose(harness, RESIDENT, "send")
    (request,) = await requests(harness)
    assert request.category == "health"
    assert request.sensitive_consent_at == harness.clock.now()

    # Cancelling at the question sends nothing.
    await harness.press(RESIDENT, "m:report")
    await choose(harness, RESIDENT, "emotional")
    await choose(harness, RESIDENT, "counseling")
    await harness.say(RESIDENT, "I cannot sleep since my husband died")
    await choose(harness, RESIDENT, "submit")
    await choose(harness, RESIDENT, "cancel")
    assert len(await requests(harness)) == 1

    # Other needs do not ask.
    await report_need(harness, RESIDENT)
    assert [r.sensitive_consent_at for r in await requests(harness)] == [harness.clock.now(), None]


async def requests(harness: Harness) -> list[Request]:
    async with harness.db.session() as session:
        return list((await session.exec(select(Request).order_by(col(Request.id)))).all())


async def test_a_family_member_is_kept_only_after_the_told_them_tick(
    harness: Harness, lang: str
) -> None:
    await register(harness, RESIDENT)
    await harness.press(RESIDENT, "m:family")
    await harness.say(RESIDENT, "Chen Guilan")
    await choose(harness, RESIDENT, "mother")
    for place in ("QS-JB", "QS-JB-TH", "QS-JB-TH-02"):
        await choose(harness, RESIDENT, place)
    (ask,) = await harness.say(RESIDENT, "13800009999")
    assert values(ask) == ["told", "cancel"]
    again, repeated = await harness.say(RESIDENT, "yes")  # typed: the buttons are asked for
    assert again.text == tr(harness, RESIDENT)._(
        "Please use the buttons above, or send /cancel to stop."
    )
    assert repeated.text == ask.text and values(repeated) == ["told", "cancel"]
    async with harness.db.session() as session:
        assert (await session.exec(select(Beneficiary))).all() == []
    harness.clock.advance(timedelta(minutes=3))
    await choose(harness, RESIDENT, "told")
    async with harness.db.session() as session:
        (mother,) = (await session.exec(select(Beneficiary))).all()
    assert (mother.name, mother.phone, mother.informed_at) == (
        "Chen Guilan",
        "13800009999",
        harness.clock.now(),
    )


# /mydata ---------------------------------------------------------------------------------------


async def test_mydata_is_a_message_and_a_file(harness: Harness, lang: str) -> None:
    t = tr(harness, RESIDENT)
    await staff_start(harness, WANG)
    await register(harness, RESIDENT)
    await report_need(harness, RESIDENT, text="The kitchen tap leaks")
    await add_mother(harness, RESIDENT)
    await choose(harness, RESIDENT, "cancel")
    message, document = await harness.say(RESIDENT, "/mydata")
    assert t._("<b>What Huiyin keeps about you</b>") in message.text
    assert "Chen Guilan" in message.text and "13800009999" in message.text
    assert t._("you told them on {date}", date="2026-11-30 10:00") in message.text
    assert "HY000001" in message.text and "The kitchen tap leaks" in message.text

    assert document.message.upload_kind == "document"
    assert document.message.upload_name == "huiyin-mydata.json"
    data = json.loads(document.message.upload_bytes)
    assert data["account"]["display_name"] == f"user{RESIDENT}"
    assert data["account"]["home_grid"] == "QS-JB-TH-01"
    people = {p["name"]: p for p in data["people"]}
    assert people["Chen Guilan"]["phone"] == "13800009999"
    assert people["Chen Guilan"]["told_at"] is not None
    (request,) = data["requests"]
    assert (request["reference"], request["description"]) == ("HY000001", "The kitchen tap leaks")
    assert [e["action"] for e in request["timeline"]] == ["create", "route"]

    # Someone else's data is not in it.
    await register(harness, OTHER)
    _message, other = await harness.say(OTHER, "/mydata")
    assert "Chen Guilan" not in other.message.upload_bytes.decode()
    assert json.loads(other.message.upload_bytes)["requests"] == []


# /forget ---------------------------------------------------------------------------------------


async def closed_and_open(harness: Harness) -> None:
    """HY000001 resolved by Wang, rated satisfied with a comment, closed; HY000002 for the
    resident's mother (registered with a phone), open with Zhang."""
    await staff_start(harness, WANG, ZHANG, XU, SUN)
    await register(harness, RESIDENT)
    await report_need(harness, RESIDENT, text="The kitchen tap leaks at Lane 5 No. 3")
    await harness.press(WANG, "t:accept:1")
    await harness.press(WANG, "t:resolve:1")
    await harness.say(WANG, "Replaced the washer for Mrs Chen")
    harness.clock.set(at(11, 30, 11))
    await tick(harness)
    await harness.press(RESIDENT, "rv:s:1:y")
    await harness.press(RESIDENT, "rv:f:1:y:s")
    await harness.say(RESIDENT, "Thank you Mr Wang")
    await add_mother(harness, RESIDENT)
    await choose(harness, RESIDENT, "living")
    await choose(harness, RESIDENT, "repair")
    await harness.say(RESIDENT, "Her window is broken")
    await choose(harness, RESIDENT, "submit")


async def figures(harness: Harness, request_id: int) -> object:
    async with harness.db.session() as session:
        return await rates(session, col(Request.id) == request_id, harness.clock.now())


async def assert_erased(harness: Harness, account_id: int) -> None:
    async with harness.db.session() as session:
        account = await session.get(Account, account_id)
        assert account is not None
        assert account.erased_at == harness.clock.now()
        assert (account.telegram_id, account.chat_id) == (-account_id, -account_id)
        assert not (account.display_name or account.consent_at or account.home_grid_code)
        people = (
            await session.exec(
                select(Beneficiary).where(Beneficiary.owner_account_id == account_id)
            )
        ).all()
        assert people and {(b.name, b.phone) for b in people} == {(ERASED_NAME, None)}
        closed, withdrawn = (await session.exec(select(Request).order_by(col(Request.id)))).all()
        assert (closed.status, closed.solved, closed.satisfaction) == ("closed", True, "satisfied")
        assert (closed.description, closed.result_note, closed.verdict_comment) == ("", None, None)
        assert withdrawn.status == "cancelled" and withdrawn.description == ""
        notes = [
            e.note for e in (await session.exec(select(RequestEvent))).all() if e.note is not None
        ]
        assert not [n for n in notes if "Chen" in n or "Wang" in n or "washer" in n]
        assert "solved:y\nsatisfaction:satisfied\nby:reporter" in notes
        assert "why:erased" in notes
        assert await session.get(ConversationState, RESIDENT) is None


async def test_forget_erases_the_resident_and_keeps_the_figures(
    harness: Harness, lang: str
) -> None:
    t = tr(harness, RESIDENT)
    await closed_and_open(harness)
    before = await figures(harness, 1)
    account = await account_of(harness, RESIDENT)
    assert account is not None and account.id is not None

    # What a webhook replica took in and handled earlier (the inbox keeps it for a while).
    async with harness.db.transaction() as session:
        for update_id, chat_id in ((1, RESIDENT), (2, OTHER)):
            session.add(
                InboxUpdate(
                    update_id=update_id,
                    chat_id=chat_id,
                    payload={"message": {"text": "my phone is 13800009999"}},
                    received_at=harness.clock.now() - timedelta(minutes=5),
                    processed_at=harness.clock.now() - timedelta(minutes=5),
                )
            )
    (question,) = await harness.say(RESIDENT, "/forget")
    assert values(question) == ["erase", "cancel"]
    (done,) = await choose(harness, RESIDENT, "erase")
    async with harness.db.session() as session:
        assert [u.chat_id for u in (await session.exec(select(InboxUpdate))).all()] == [OTHER]
    assert done.text == t._(
        "Done: your data has been erased and your consent withdrawn. Huiyin will not write to "
        "you again. If you need help later, send /start to begin afresh."
    )
    await assert_erased(harness, account.id)
    assert await figures(harness, 1) == before  # the closed request counts as it did

    # Zhang, who held HY000002, is told, and its card shows it withdrawn, without buttons.
    t_zhang = tr(harness, ZHANG)
    told = harness.sender.messages(ZHANG)[-1]
    assert told.text == t_zhang._(
        "{ref} is withdrawn: the resident withdrew their consent and their data was erased. "
        "Nothing more needs doing.",
        ref="HY000002",
    )
    card = next(m for m in harness.sender.messages(ZHANG) if "HY000002" in m.text and m.edits)
    assert not [b for b in card.buttons if b.data.startswith("t:")]

    # What was sent to the resident keeps no text, except the last line saying it is done.
    rows = await outbox_of(harness, RESIDENT)
    assert set(outbox_texts(rows[:-1])) == {""}
    assert outbox_texts(rows[-1:]) == [done.text]

    # A stranger again: consent is asked for anew; /mydata has nothing.
    (consent,) = await harness.say(RESIDENT, "/start")
    assert values(consent) == ["yes", "no"]
    (nothing,) = await harness.say(RESIDENT, "/mydata")
    assert nothing.text == t._("Welcome! Please send /start to begin.")


async def test_a_coordinator_erases_a_resident_who_phoned(harness: Harness, lang: str) -> None:
    await closed_and_open(harness)
    account = await account_of(harness, RESIDENT)
    assert account is not None and account.id is not None
    t_xu = tr(harness, XU)

    (usage,) = await harness.say(XU, "/forget")
    assert "/forget HY000123" in usage.text
    (refused,) = await harness.say(WANG, "/forget HY000001")  # a grid member
    assert refused.text == tr(harness, WANG)._(
        "Your roster entry is kept by the district office; please ask them to change or "
        "remove it. Residents who ask by phone to be erased: their community coordinator can "
        "do it with /forget and a request's reference."
    )
    (elsewhere,) = await harness.say(SUN, "/forget HY000001")  # another community's
    assert elsewhere.text == tr(harness, SUN)._(
        "There is no request {ref} in your area.", ref="HY000001"
    )
    (question,) = await harness.say(XU, "/forget HY000001")
    assert values(question) == ["erase", "cancel"]
    assert f"user{RESIDENT}" in question.text
    before = len(harness.sender.messages(RESIDENT))
    await choose(harness, XU, "erase")
    assert harness.sender.messages(XU)[-1].text.startswith(
        t_xu._(
            "✅ The resident who reported {ref} is erased: {withdrawn} open request(s) "
            "withdrawn, {count} request(s) anonymised.",
            ref="HY000001",
            withdrawn=1,
            count=2,
        )
    )
    (told,) = harness.sender.messages(RESIDENT)[before:]
    assert told.text == tr(harness, RESIDENT)._(
        "Done: your data has been erased and your consent withdrawn. Huiyin will not write to "
        "you again. If you need help later, send /start to begin afresh."
    )
    await assert_erased(harness, account.id)
    async with harness.db.session() as session:
        xu = (await session.exec(select(Staff).where(Staff.telegram_id == XU))).one()
        events = (
            await session.exec(select(RequestEvent).where(RequestEvent.action == "cancel"))
        ).all()
    assert [(e.actor_staff_id, e.note) for e in events] == [(xu.id, "why:erased")]
    (again,) = await harness.say(XU, "/forget HY000001")
    assert again.text == t_xu._(
        "The resident who reported {ref} has already been erased.", ref="HY000001"
    )


def test_scrub_note_keeps_codes_only() -> None:
    assert scrub_note("why:reopened\nThe tap still drips, call 138") == "why:reopened"
    assert scrub_note("solved:y\nsatisfaction:satisfied\nby:reporter") == (
        "solved:y\nsatisfaction:satisfied\nby:reporter"
    )
    assert scrub_note("Replaced the washer") is None
    assert scrub_note("nobody") == "nobody"
    assert scrub_note(None) is None


# Retention -------------------------------------------------------------------------------------


async def test_retention_prunes_sent_texts_then_anonymises_ended_requests(
    harness: Harness,
) -> None:
    await closed_and_open(harness)
    before = await figures(harness, 1)
    retain = {"outbox_days": 30, "closed_days": 1095}

    report = await apply_retention(harness.db, harness.clock, **retain)
    assert (report.pruned_messages, report.anonymised_requests) == (0, 0)

    harness.clock.advance(timedelta(days=31))
    report = await apply_retention(harness.db, harness.clock, **retain)
    assert report.pruned_messages > 0 and report.anonymised_requests == 0
    # Replies and notices are deleted; what stays is each card's newest sent row, emptied.
    assert report.deleted_messages > 0
    async with harness.db.session() as session:
        rows = (await session.exec(select(OutboxMessage))).all()
    assert rows and all(row.ref_key for row in rows)
    assert len({(row.chat_id, row.ref_key) for row in rows}) == len(rows)
    assert {row.payload["text"] for row in rows} == {""}
    assert all(row.sent_message_id for row in rows if row.status == "sent")
    assert (await request_row(harness, 1)).description != ""
    again = await apply_retention(harness.db, harness.clock, **retain)
    assert (again.pruned_messages, again.anonymised_requests) == (0, 0)

    # A card sent before the pruning is still edited in place.
    await harness.press(ZHANG, "t:accept:2")
    card = next(m for m in harness.sender.messages(ZHANG) if "HY000002" in m.text and m.edits)
    assert card.edits >= 1

    harness.clock.advance(timedelta(days=1095))
    report = await apply_retention(harness.db, harness.clock, **retain)
    assert report.anonymised_requests == 1  # HY000001; HY000002 is still open
    closed = await request_row(harness, 1)
    assert (closed.description, closed.result_note, closed.verdict_comment) == ("", None, None)
    assert closed.anonymised_at == harness.clock.now()
    assert (await request_row(harness, 2)).description == "Her window is broken"
    assert await figures(harness, 1) == before


# Who opened a phone number -----------------------------------------------------------------------


async def accesses(db: Database) -> list[tuple[str, str | None, int | None, int]]:
    async with db.session() as session:
        rows = await session.exec(
            select(PhoneAccess, Staff)
            .join(Staff, col(Staff.id) == col(PhoneAccess.staff_id), isouter=True)
            .order_by(col(PhoneAccess.id))
        )
        return [(a.channel, s.name if s else None, a.request_id, a.numbers) for a, s in rows]


async def test_the_phone_button_is_recorded_and_listed_for_the_admin(
    harness: Harness, lang: str
) -> None:
    await staff_start(harness, WANG, XU, CAO)
    await register(harness, RESIDENT)
    await add_mother(harness, RESIDENT)
    await choose(harness, RESIDENT, "living")
    await choose(harness, RESIDENT, "repair")
    await harness.say(RESIDENT, "Her window is broken")
    await choose(harness, RESIDENT, "submit")
    async with harness.db.session() as session:
        holder_id = (await session.exec(select(Request.assignee_staff_id))).one()
        holder = await session.get(Staff, holder_id)
    assert holder is not None and holder.telegram_id is not None
    (contact,) = await harness.press(holder.telegram_id, "t:phone:1")
    assert contact.message.contact_phone == "13800009999"
    assert await accesses(harness.db) == [("contact_card", holder.name, 1, 1)]
    # Someone else's button shows nothing and records nothing.
    await harness.press(XU, "t:phone:1")
    assert len(await accesses(harness.db)) == 1

    t = tr(harness, CAO)
    (listing,) = await harness.say(CAO, "/phonelog")
    assert holder.name in listing.text and "HY000001" in listing.text
    assert t._("📞 contact card") in listing.text
    (refused,) = await harness.say(XU, "/phonelog")
    assert refused.text == tr(harness, XU)._("/phonelog is for the district office.")


async def test_a_follow_up_call_hands_over_the_number_and_is_recorded(harness: Harness) -> None:
    await verdict_setup(harness)  # in English
    harness.languages[CAO] = "en"
    await add_mother_without_the_bot(harness)
    await resolve(harness, WANG)
    harness.clock.set(at(11, 30, 11))
    await tick(harness)  # the mother does not use the bot: Li is asked to call her
    assert await accesses(harness.db) == [("follow_up_call", "李秀英", 1, 1)]
    await tick(harness)  # given once
    assert len(await accesses(harness.db)) == 1
    (listing,) = await harness.say(CAO, "/phonelog")
    assert "📞 follow-up call" in listing.text


async def test_exports_with_full_numbers_are_recorded(
    harness: Harness,
    db: Database,
    district: dict[str, int],  # noqa: F811
    tmp_path: Path,
) -> None:
    await harness.outbox.deliver_due()
    await harness.say(XU, "/export 2026-11")
    # Xu holds one request with a phone number: the ledger shows that one in full.
    assert await accesses(db) == [("export", "徐国庆", None, 1)]
    out = tmp_path / "ledger.xlsx"
    settings = load_settings(_env_file=None, database_url=db.url)
    assert await export_command(db, settings, "QS", "2026-11", out, "zh", ManualClock(NOW)) == 0
    assert (await accesses(db))[-1] == ("cli_export", None, None, 3)
    (listing,) = await harness.say(CAO, "/phonelog")
    assert "QS 2026-11" in listing.text


async def test_no_record_when_no_full_number_is_shown(harness: Harness, db: Database) -> None:
    await make_district(db)
    await harness.outbox.deliver_due()
    await harness.say(SUN, "/export 2026-11")  # Liuyuan: Sun holds nothing
    assert await accesses(db) == []
    (listing,) = await harness.say(CAO, "/phonelog")
    assert listing.text == tr(harness, CAO)._("No one has opened a phone number yet.")


def test_retention_settings_are_checked_at_start() -> None:
    settings = load_settings(_env_file=None)
    assert (settings.retention_outbox_days, settings.retention_closed_days) == (30, 1095)
    with pytest.raises(SettingsError) as refused:
        load_settings(_env_file=None, retention_closed_days=7, retention_outbox_days=0)
    lines = str(refused.value).splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "HUIYIN_RETENTION_OUTBOX_DAYS",
        "HUIYIN_RETENTION_CLOSED_DAYS",
    ]


async def test_a_linked_family_member_who_forgets_leaves_the_residents_entry(
    harness: Harness,
) -> None:
    mother_user = 900003
    await register(harness, RESIDENT)
    await add_mother(harness, RESIDENT)
    await choose(harness, RESIDENT, "cancel")
    async with harness.db.session() as session:
        (entry,) = (await session.exec(select(Beneficiary))).all()
    await harness.press(RESIDENT, f"bl:{entry.id}")
    line = harness.sender.messages(RESIDENT)[-1].text
    code = line.split("/start ")[1].split("<")[0]
    await harness.say(mother_user, f"/start {code}")
    await choose(harness, mother_user, "yes")
    async with harness.db.session() as session:
        linked = await session.get(Beneficiary, entry.id)
    assert linked is not None and linked.account_id is not None

    await harness.say(mother_user, "/forget")
    await choose(harness, mother_user, "erase")
    async with harness.db.session() as session:
        kept = await session.get(Beneficiary, entry.id)
        resident = (
            await session.exec(select(Account).where(Account.telegram_id == RESIDENT))
        ).one()
    assert kept is not None
    assert (kept.name, kept.phone, kept.account_id) == ("Chen Guilan", "13800009999", None)
    assert resident.erased_at is None and resident.display_name == f"user{RESIDENT}"
