"""Roster import of the supply side: organisations.csv and volunteers.csv beside units.csv and
people.csv (both optional), checked all or nothing with `file:line: reason`, re-imported without
change, and imported volunteers recognised when they open the bot."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import col, func, select

from domain.clock import ManualClock
from storage.database import Database
from storage.models import Account, ConversationState, Organisation, Volunteer
from storage.roster import ImportSummary, RosterRefused, import_roster, sample_district_dir
from tests.harness import Harness
from tests.test_conversation_onboarding import choose, register, tr
from tests.test_roster import BASE_PEOPLE, BASE_UNITS, write_roster

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
ORGANISATIONS_HEADER = "name,name_en,kind,unit"
VOLUNTEERS_HEADER = "name,phone,telegram_id,unit,categories,party_member,organisation,contact"
ORGANISATIONS = [
    ORGANISATIONS_HEADER,
    "区供电公司,District Power Co.,enterprise,",
    "天河志愿服务队,Tianhe Volunteers,social,C",
]
VOLUNTEERS = [
    VOLUNTEERS_HEADER,
    "刘晓红,13900000001,,C,companionship;errand,yes,区供电公司,yes",
    "周文,13900000002,800001,T,repair,,,",
    "陈阿姨,+8613900000003,,C,elder_care,否,天河志愿服务队,",
]


def supply(directory: Path, organisations: list[str] | None, volunteers: list[str] | None) -> Path:
    write_roster(directory, BASE_UNITS, BASE_PEOPLE)
    if organisations is not None:
        (directory / "organisations.csv").write_text("\n".join(organisations) + "\n", "utf-8")
    if volunteers is not None:
        (directory / "volunteers.csv").write_text("\n".join(volunteers) + "\n", "utf-8")
    return directory


async def all_volunteers(db: Database) -> list[Volunteer]:
    async with db.session() as session:
        return list((await session.exec(select(Volunteer).order_by(col(Volunteer.id)))).all())


async def test_import_and_reimport(empty_db: Database, tmp_path: Path) -> None:
    directory = supply(tmp_path / "r", ORGANISATIONS, VOLUNTEERS)
    summary = await import_roster(empty_db, directory, NOW)
    assert summary == ImportSummary(
        units_added=5, staff_added=5, organisations_added=2, volunteers_added=3
    )
    assert "organisations: 2 added" in str(summary) and "volunteers: 3 added" in str(summary)
    liu, zhou, chen = await all_volunteers(empty_db)
    async with empty_db.session() as session:
        power = (
            await session.exec(select(Organisation).where(Organisation.name == "区供电公司"))
        ).one()
    assert (liu.status, liu.source, liu.unit_code, liu.categories) == (
        "approved",
        "roster",
        "C",
        "companionship;errand",
    )
    assert (liu.party_member, liu.organisation_id, liu.is_contact) == (True, power.id, True)
    assert (zhou.telegram_id, zhou.unit_code, zhou.party_member) == (800001, "T", False)
    assert chen.phone == "+8613900000003" and chen.account_id is None

    again = await import_roster(empty_db, directory, NOW)
    assert again == ImportSummary(
        units_unchanged=5, staff_unchanged=5, organisations_unchanged=2, volunteers_unchanged=3
    )
    # An edited row is updated in place; a status the volunteer chose is kept.
    async with empty_db.transaction() as session:
        row = await session.get(Volunteer, liu.id)
        assert row is not None
        row.status = "paused"
        session.add(row)
    edited = [*VOLUNTEERS]
    edited[1] = "刘晓红,13900000001,,C,companionship,yes,,"
    supply(tmp_path / "r", ORGANISATIONS, edited)
    summary = await import_roster(empty_db, directory, NOW)
    assert (summary.volunteers_updated, summary.volunteers_unchanged) == (1, 2)
    liu, _, _ = await all_volunteers(empty_db)
    assert (liu.categories, liu.organisation_id, liu.status) == ("companionship", None, "paused")


async def test_old_directories_stay_valid(empty_db: Database, tmp_path: Path) -> None:
    directory = supply(tmp_path / "r", None, None)
    assert await import_roster(empty_db, directory, NOW) == ImportSummary(
        units_added=5, staff_added=5
    )


REFUSALS = [
    pytest.param(
        None,
        {2: "刘晓红,13900000001,,G,companionship,,,"},
        ["volunteers.csv:2: unit G is a grid; a volunteer serves a community or a town"],
        id="grid-unit",
    ),
    pytest.param(
        None,
        {2: "刘晓红,13900000001,,C,safety;walks,maybe,,yes"},
        [
            "volunteers.csv:2: category 'safety' is never offered to volunteers (staff handle it)",
            "volunteers.csv:2: unknown category 'walks'; use codes from: repair sanitation "
            "health elder_care assistance errand housing employment training agriculture "
            "policy companionship family_link counseling mediation other",
            "volunteers.csv:2: party_member 'maybe' is not yes or no (leave it empty for no)",
            "volunteers.csv:2: contact is yes but no organisation is given",
        ],
        id="bad-values",
    ),
    pytest.param(
        None,
        {3: "周文,13900000001,800001,T,repair,,,", 4: "陈阿姨,12,,X,,,别处,"},
        [
            "volunteers.csv:3: duplicate phone 13900000001 (first on line 2)",
            "volunteers.csv:4: phone '12' is not a phone number: use 5 to 20 digits, "
            "optionally starting with +, without spaces or dashes",
        ],
        id="duplicate-and-bad-phone",
    ),
    pytest.param(
        None,
        {4: "陈阿姨,13900000004,,X,,,别处,"},
        [
            "volunteers.csv:4: organisation '别处' is not in organisations.csv or in the database",
            "volunteers.csv:4: unit X is not in units.csv or in the database",
        ],
        id="unknown-unit-and-organisation",
    ),
    pytest.param(
        {2: "区供电公司,,factory,", 3: "天河志愿服务队,,social,G", 4: "天河志愿服务队,,social,"},
        {2: "刘晓红,13900000001,,C,companionship,,,"},
        [
            "organisations.csv:2: unknown kind 'factory'; use one of department, enterprise, "
            "social",
            "organisations.csv:3: unit G is a grid; an organisation serves a town, a community "
            "or (left empty) the whole district",
            "organisations.csv:4: duplicate name 天河志愿服务队 (first on line 3)",
        ],
        id="organisations",
    ),
]


@pytest.mark.parametrize(("organisation_changes", "volunteer_changes", "expected"), REFUSALS)
async def test_refusal(
    tmp_path: Path,
    organisation_changes: dict[int, str] | None,
    volunteer_changes: dict[int, str],
    expected: list[str],
) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/t.db")
    await db.upgrade()
    try:
        organisations = [*ORGANISATIONS]
        for line, text in (organisation_changes or {}).items():
            if line > len(organisations):
                organisations.append(text)
            else:
                organisations[line - 1] = text
        volunteers = [*VOLUNTEERS]
        for line, text in volunteer_changes.items():
            volunteers[line - 1] = text
        directory = supply(tmp_path / "r", organisations, volunteers)
        with pytest.raises(RosterRefused) as caught:
            await import_roster(db, directory, NOW)
        assert [str(e) for e in caught.value.errors] == expected
        async with db.session() as session:
            assert (await session.exec(select(func.count()).select_from(Volunteer))).one() == 0
    finally:
        await db.dispose()


async def test_bad_header_is_refused(empty_db: Database, tmp_path: Path) -> None:
    directory = supply(tmp_path / "r", None, ["name,phone,unit", "刘晓红,13900000001,C"])
    with pytest.raises(RosterRefused) as caught:
        await import_roster(empty_db, directory, NOW)
    assert str(caught.value.errors[0]).startswith("volunteers.csv:1: missing columns")


# Recognised when they open the bot ---------------------------------------------------------------


@pytest.fixture
async def with_volunteers(db: Database, tmp_path: Path) -> Database:
    """The sample district with two imported volunteers of 天河社区."""
    directory = tmp_path / "roster"
    directory.mkdir()
    for name in ("units.csv", "people.csv"):
        shutil.copyfile(sample_district_dir() / name, directory / name)
    (directory / "volunteers.csv").write_text(
        VOLUNTEERS_HEADER + "\n"
        "刘晓红,13900000001,,QS-JB-TH,companionship,yes,,\n"
        "周文,13900000002,900002,QS-JB-TH,repair,,,\n",
        "utf-8",
    )
    await import_roster(db, directory, NOW)
    return db


async def test_shared_contact_binds_an_imported_volunteer(
    with_volunteers: Database, clock: ManualClock
) -> None:
    harness = Harness(with_volunteers, clock)
    resident = 900001
    await register(harness, resident)
    shown = await harness.say(resident, "/volunteer")  # offers the number button first
    assert shown[0].message.request_contact
    (reply,) = await harness.send(
        resident, "contact", contact_phone="+86 139 0000 0001", contact_user_id=resident
    )
    assert reply.text == tr(harness, resident)._(
        "✅ Your number matches the volunteer roster of {place}: you are a volunteer. "
        "/volunteer shows your profile.",
        place="江北街道 › 天河社区",
    )
    async with with_volunteers.session() as session:
        account = (await session.exec(select(Account).where(Account.telegram_id == resident))).one()
        volunteer = (await session.exec(select(Volunteer).where(Volunteer.name == "刘晓红"))).one()
        assert (volunteer.account_id, volunteer.telegram_id) == (account.id, resident)
        assert (await session.exec(select(ConversationState))).first() is None
    (profile,) = await harness.say(resident, "/volunteer")
    assert tr(harness, resident)._("🙋 <b>Your volunteer profile</b>") in profile.text


async def test_volunteer_with_a_telegram_id_is_recognised(
    with_volunteers: Database, clock: ManualClock
) -> None:
    harness = Harness(with_volunteers, clock)
    await harness.say(900002, "/start")
    greeting = await choose(harness, 900002, "yes")
    assert tr(harness, 900002)._(
        "🙋 Your community has registered you as a volunteer of {place}. /volunteer "
        "shows your profile.",
        place="江北街道 › 天河社区",
    ) in [m.text for m in greeting]
    async with with_volunteers.session() as session:
        volunteer = (await session.exec(select(Volunteer).where(Volunteer.name == "周文"))).one()
        assert volunteer.account_id is not None
    (profile,) = await harness.say(900002, "/volunteer")
    assert [b.data for b in profile.buttons] == ["vp:pause", "vp:cats", "vp:leave"]
    # A newcomer who is not on the roster is offered to share their number first.
    await register(harness, 900003)
    shown = await harness.say(900003, "/volunteer")
    assert shown[0].message.request_contact
    await choose(harness, 900003, "home")
