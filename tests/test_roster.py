"""Roster import: the sample district, idempotent re-imports, in-place edits and every refusal."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, func, select

from storage.database import Database
from storage.models import Staff, Unit
from storage.roster import (
    PACKAGED_SAMPLE_DISTRICT,
    POST_CODES,
    ROLE_LEVEL,
    ImportSummary,
    RosterRefused,
    RowError,
    import_roster,
    sample_district_dir,
)

UNITS_HEADER = "code,level,parent,name,name_en"
PEOPLE_HEADER = "name,phone,telegram_id,role,unit,posts"

# A small valid roster, one unit of each level and one person in each role; the refusal cases
# below edit single lines of it, so their line numbers refer to these lists (header = line 1).
BASE_UNITS = [
    UNITS_HEADER,
    "D,district,,District,",
    "T,town,D,Town,",
    "C,community,T,Community,",
    "G,grid,C,Grid,",
    "P,department,D,Department,",
]
BASE_PEOPLE = [
    PEOPLE_HEADER,
    "Grid Member,10001,101,grid_member,G,repair;safety",
    "Coordinator,10002,,coordinator,C,",
    "Town Officer,10003,103,town_officer,T,",
    "Dept,10004,104,department,P,health",
    "Admin,10005,105,admin,D,",
]
ALL_POSTS = " ".join(POST_CODES)
PHONE_RULE = "use 5 to 20 digits, optionally starting with +, without spaces or dashes"
TELEGRAM_RULE = "is not a positive whole number; leave it empty if the person has not joined yet"


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/t.db")
    await database.upgrade()
    yield database
    await database.dispose()


@pytest.fixture
def sample_copy(tmp_path: Path) -> Path:
    target = tmp_path / "roster"
    target.mkdir()
    for name in ("units.csv", "people.csv"):
        shutil.copyfile(sample_district_dir() / name, target / name)
    return target


def edited(lines: list[str], changes: Mapping[int, str | None]) -> list[str]:
    """`lines` with line n (1-based) replaced, or deleted for None; n past the end appends."""
    result: list[str | None] = list(lines)
    for number, text in sorted(changes.items()):
        if number <= len(result):
            result[number - 1] = text
        else:
            result.append(text)
    return [line for line in result if line is not None]


def write_roster(
    directory: Path,
    units: list[str],
    people: list[str],
    *,
    encoding: str = "utf-8",
    newline: str = "\n",
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "units.csv").write_bytes((newline.join(units) + newline).encode(encoding))
    (directory / "people.csv").write_bytes((newline.join(people) + newline).encode(encoding))
    return directory


def replace_in(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


async def snapshot(db: Database) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    async with db.session() as session:
        units = (await session.exec(select(Unit).order_by(col(Unit.code)))).all()
        staff = (await session.exec(select(Staff).order_by(col(Staff.id)))).all()
        return [u.model_dump() for u in units], [s.model_dump() for s in staff]


async def counts(db: Database) -> tuple[int, int]:
    async with db.session() as session:
        units = (await session.exec(select(func.count()).select_from(Unit))).one()
        staff = (await session.exec(select(func.count()).select_from(Staff))).one()
        return units, staff


async def staff_by_phone(db: Database, phone: str) -> Staff:
    async with db.session() as session:
        return (await session.exec(select(Staff).where(Staff.phone == phone))).one()


async def refused(db: Database, directory: Path) -> list[str]:
    with pytest.raises(RosterRefused) as caught:
        await import_roster(db, directory)
    return [str(e) for e in caught.value.errors]


def data_rows(path: Path) -> int:
    return len(path.read_text(encoding="utf-8-sig").splitlines()) - 1


# --- the sample district ---------------------------------------------------------------------


async def test_sample_district_imports(db: Database) -> None:
    directory = sample_district_dir()
    assert data_rows(directory / "units.csv") == 25
    assert data_rows(directory / "people.csv") == 26

    summary = await import_roster(db, directory)

    assert summary == ImportSummary(units_added=25, staff_added=26)
    assert await counts(db) == (25, 26)
    async with db.session() as session:
        grid = await session.get(Unit, "QS-JB-QJ-01")
        assert grid is not None
        assert (grid.level, grid.parent_code, grid.name_en) == (
            "grid",
            "QS-JB-QJ",
            "Qianjin Grid 1",
        )
        district = await session.get(Unit, "QS")
        assert district is not None
        assert district.parent_code is None
    unjoined = await staff_by_phone(db, "13800000013")
    assert (unjoined.name, unjoined.telegram_id, unjoined.role) == ("马卫东", None, "coordinator")
    department = await staff_by_phone(db, "13800000019")
    assert department.post_list == [
        "assistance",
        "elder_care",
        "companionship",
        "family_link",
        "errand",
    ]
    assert department.active


async def test_reimport_changes_nothing(db: Database) -> None:
    await import_roster(db, sample_district_dir())
    before = await snapshot(db)

    summary = await import_roster(db, sample_district_dir())

    assert summary == ImportSummary(units_unchanged=25, staff_unchanged=26)
    assert await snapshot(db) == before


async def test_edited_file_updates_in_place(db: Database, sample_copy: Path) -> None:
    await import_roster(db, sample_copy)
    units_before, staff_before = await snapshot(db)
    replace_in(
        sample_copy / "people.csv",
        "王建华,13800000001,700000001,grid_member,QS-JB-TH-01,repair;safety;errand",
        "王建国,13800000001,700000001,grid_member,QS-JB-TH-01,repair;health",
    )
    replace_in(sample_copy / "units.csv", "Tianhe Grid 2", "Tianhe Second Grid")

    summary = await import_roster(db, sample_copy)

    assert summary == ImportSummary(
        units_updated=1, units_unchanged=24, staff_updated=1, staff_unchanged=25
    )
    units_after, staff_after = await snapshot(db)
    assert [s["id"] for s in staff_after] == [s["id"] for s in staff_before]
    changed = await staff_by_phone(db, "13800000001")
    assert (changed.name, changed.posts) == ("王建国", "repair;health")
    assert changed.id == staff_before[0]["id"]
    assert changed.telegram_id == 700000001
    assert [s for s in staff_after if s["phone"] != "13800000001"] == [
        s for s in staff_before if s["phone"] != "13800000001"
    ]
    grid = next(u for u in units_after if u["code"] == "QS-JB-TH-02")
    assert grid["name_en"] == "Tianhe Second Grid"
    assert [u for u in units_after if u["code"] != "QS-JB-TH-02"] == [
        u for u in units_before if u["code"] != "QS-JB-TH-02"
    ]


async def test_refusal_leaves_existing_roster_unchanged(db: Database, sample_copy: Path) -> None:
    await import_roster(db, sample_copy)
    before = await snapshot(db)
    # One good edit and one bad one: the good one must not be written either.
    replace_in(sample_copy / "people.csv", "王建华", "王建国")
    replace_in(sample_copy / "people.csv", "QS-JB-TH-02,\n", "QS-JB-TH-02,plumbing\n")

    errors = await refused(db, sample_copy)

    assert errors == [f"people.csv:4: unknown post 'plumbing'; use codes from: {ALL_POSTS}"]
    assert await snapshot(db) == before


# --- what the files may look like --------------------------------------------------------------


async def test_bom_and_crlf_accepted(db: Database, tmp_path: Path) -> None:
    units = (sample_district_dir() / "units.csv").read_text(encoding="utf-8").splitlines()
    people = (sample_district_dir() / "people.csv").read_text(encoding="utf-8").splitlines()
    # What Excel writes for "CSV UTF-8": a byte-order mark and CRLF line endings.
    directory = write_roster(
        tmp_path / "excel", units, people, encoding="utf-8-sig", newline="\r\n"
    )
    assert (directory / "units.csv").read_bytes().startswith(b"\xef\xbb\xbfcode,")

    summary = await import_roster(db, directory)

    assert summary == ImportSummary(units_added=25, staff_added=26)
    async with db.session() as session:
        assert await session.get(Unit, "QS") is not None


async def test_whitespace_blank_lines_and_quotes(db: Database, tmp_path: Path) -> None:
    units = [
        " code , level ,parent,name,name_en",
        "D , district ,, District ,",
        "",
        'T,town,D,"Town, North",  North Town  ',
        ",,,,",
    ]
    people = [
        PEOPLE_HEADER,
        "  Officer , +8613800000001 , 42 , town_officer , T , repair ; safety ; repair ;",
    ]
    directory = write_roster(tmp_path / "r", units, people)

    assert await import_roster(db, directory) == ImportSummary(units_added=2, staff_added=1)

    async with db.session() as session:
        town = await session.get(Unit, "T")
        assert town is not None
        assert (town.name, town.name_en, town.parent_code) == ("Town, North", "North Town", "D")
    officer = await staff_by_phone(db, "+8613800000001")
    assert (officer.name, officer.telegram_id, officer.role) == ("Officer", 42, "town_officer")
    assert officer.posts == "repair;safety"


async def test_line_numbers_count_blank_lines(db: Database, tmp_path: Path) -> None:
    directory = write_roster(
        tmp_path / "r", [*BASE_UNITS[:3], "", "", "X,grid,T,Grid,"], BASE_PEOPLE[:1]
    )

    assert await refused(db, directory) == [
        "units.csv:6: a grid belongs under a community, but parent T is a town"
    ]


REFUSALS = [
    # headers
    pytest.param(
        {1: "code,level,parent,name"},
        {},
        ["units.csv:1: missing column name_en; expected the header " + UNITS_HEADER],
        id="units-missing-column",
    ),
    pytest.param(
        {1: UNITS_HEADER + ",note"},
        {},
        ["units.csv:1: unexpected column note; expected the header " + UNITS_HEADER],
        id="units-extra-column",
    ),
    pytest.param(
        {},
        {1: "name,phone,role,unit,posts"},
        ["people.csv:1: missing column telegram_id; expected the header " + PEOPLE_HEADER],
        id="people-missing-column",
    ),
    pytest.param(
        {},
        {1: PEOPLE_HEADER + ",email"},
        ["people.csv:1: unexpected column email; expected the header " + PEOPLE_HEADER],
        id="people-extra-column",
    ),
    pytest.param(
        {},
        {7: "X,10006,,grid_member,G,repair,safety"},
        [
            "people.csv:7: expected 6 fields (name,phone,telegram_id,role,unit,posts), found 7; "
            "a value containing a comma must be in double quotes"
        ],
        id="field-count",
    ),
    # units: required fields and levels
    pytest.param({7: ",grid,C,Grid 2,"}, {}, ["units.csv:7: code is empty"], id="unit-no-code"),
    pytest.param({7: "G2,,C,Grid 2,"}, {}, ["units.csv:7: level is empty"], id="unit-no-level"),
    pytest.param({7: "G2,grid,C,,"}, {}, ["units.csv:7: name is empty"], id="unit-no-name"),
    pytest.param(
        {7: "G2,village,C,Grid 2,"},
        {},
        [
            "units.csv:7: unknown level 'village'; "
            "use one of district, town, community, grid, department"
        ],
        id="unit-unknown-level",
    ),
    # units: the tree
    pytest.param(
        {2: "D,district,T,District,"},
        {},
        ["units.csv:2: a district has no parent, but parent is T; leave it empty"],
        id="district-with-parent",
    ),
    pytest.param(
        {7: "T2,town,,Town 2,"},
        {},
        [
            "units.csv:7: parent is empty; only the district may have no parent, "
            "a town belongs under a district"
        ],
        id="unit-without-parent",
    ),
    pytest.param(
        {7: "D2,district,,Other District,"},
        {},
        ["units.csv:7: a second district; there must be exactly one (D is on line 2)"],
        id="two-districts",
    ),
    pytest.param(
        {2: None, 3: None, 4: None, 5: None, 6: None},
        {2: None, 3: None, 4: None, 5: None, 6: None},
        ["units.csv:1: no district: exactly one unit must have level district and an empty parent"],
        id="no-district",
    ),
    pytest.param(
        {7: "G2,grid,X,Grid 2,"},
        {},
        ["units.csv:7: parent X is not a unit in units.csv or in the database"],
        id="unknown-parent",
    ),
    pytest.param(
        {7: "G2,grid,T,Grid 2,"},
        {},
        ["units.csv:7: a grid belongs under a community, but parent T is a town"],
        id="grid-under-town",
    ),
    pytest.param(
        {7: "C2,community,D,Community 2,"},
        {},
        ["units.csv:7: a community belongs under a town, but parent D is a district"],
        id="community-under-district",
    ),
    pytest.param(
        {7: "T2,town,P,Town 2,"},
        {},
        ["units.csv:7: a town belongs under a district, but parent P is a department"],
        id="town-under-department",
    ),
    pytest.param(
        {7: "P2,department,T,Department 2,"},
        {},
        ["units.csv:7: a department belongs under a district, but parent T is a town"],
        id="department-under-town",
    ),
    pytest.param(
        {7: "G,grid,C,Grid again,"},
        {},
        ["units.csv:7: duplicate code G (first on line 5)"],
        id="duplicate-unit-code",
    ),
    # people: required fields
    pytest.param({}, {7: ",10006,,grid_member,G,"}, ["people.csv:7: name is empty"], id="no-name"),
    pytest.param({}, {7: "X,,,grid_member,G,"}, ["people.csv:7: phone is empty"], id="no-phone"),
    pytest.param({}, {7: "X,10006,,,G,"}, ["people.csv:7: role is empty"], id="no-role"),
    pytest.param({}, {7: "X,10006,,grid_member,,"}, ["people.csv:7: unit is empty"], id="no-unit"),
    # people: roles and units
    pytest.param(
        {},
        {7: "X,10006,,volunteer,G,"},
        [
            "people.csv:7: unknown role 'volunteer'; "
            "use one of grid_member, coordinator, town_officer, department, admin"
        ],
        id="unknown-role",
    ),
    pytest.param(
        {},
        {7: "X,10006,,grid_member,NOPE,"},
        ["people.csv:7: unit NOPE is not in units.csv or in the database"],
        id="unknown-unit",
    ),
    pytest.param(
        {},
        {7: "X,10006,,grid_member,C,"},
        ["people.csv:7: role grid_member belongs to a grid, but unit C is a community"],
        id="grid-member-at-community",
    ),
    pytest.param(
        {},
        {7: "X,10006,,coordinator,G,"},
        ["people.csv:7: role coordinator belongs to a community, but unit G is a grid"],
        id="coordinator-at-grid",
    ),
    pytest.param(
        {},
        {7: "X,10006,,town_officer,D,"},
        ["people.csv:7: role town_officer belongs to a town, but unit D is a district"],
        id="town-officer-at-district",
    ),
    pytest.param(
        {},
        {7: "X,10006,,department,T,"},
        ["people.csv:7: role department belongs to a department, but unit T is a town"],
        id="department-at-town",
    ),
    pytest.param(
        {},
        {7: "X,10006,,admin,P,"},
        ["people.csv:7: role admin belongs to a district, but unit P is a department"],
        id="admin-at-department",
    ),
    # people: phones
    *[
        pytest.param(
            {},
            {7: f"X,{phone},,grid_member,G,"},
            [f"people.csv:7: phone '{phone}' is not a phone number: {PHONE_RULE}"],
            id=f"phone-{label}",
        )
        for label, phone in [
            ("dashes", "138-0000-0001"),
            ("space", "138 00000001"),
            ("letters", "1380000000x"),
            ("short", "1234"),
            ("long", "1" * 21),
            ("plus-inside", "86+13800000001"),
            ("excel-float", "1.38E+10"),
        ]
    ],
    pytest.param(
        {},
        {7: "X,10001,,grid_member,G,"},
        ["people.csv:7: duplicate phone 10001 (first on line 2)"],
        id="duplicate-phone",
    ),
    # people: telegram ids
    *[
        pytest.param(
            {},
            {7: f"X,10006,{value},grid_member,G,"},
            [f"people.csv:7: telegram_id '{value}' {TELEGRAM_RULE}"],
            id=f"telegram-{label}",
        )
        for label, value in [
            ("text", "abc"),
            ("zero", "0"),
            ("negative", "-5"),
            ("float", "700000001.0"),
            ("too-big", str(2**63)),
        ]
    ],
    pytest.param(
        {},
        {7: "X,10006,101,grid_member,G,"},
        ["people.csv:7: duplicate telegram_id 101 (first on line 2)"],
        id="duplicate-telegram-id",
    ),
    # people: posts
    pytest.param(
        {},
        {7: "X,10006,,grid_member,G,repair;plumbing"},
        [f"people.csv:7: unknown post 'plumbing'; use codes from: {ALL_POSTS}"],
        id="unknown-post",
    ),
    pytest.param(
        {},
        {7: "X,10006,,grid_member,G,repair；safety"},
        [
            "people.csv:7: unknown post 'repair；safety' (separate posts with ';'); "
            f"use codes from: {ALL_POSTS}"
        ],
        id="full-width-semicolon",
    ),
    pytest.param(
        {},
        {7: "X,10006,,grid_member,G,Repair"},
        [f"people.csv:7: unknown post 'Repair'; use codes from: {ALL_POSTS}"],
        id="post-case",
    ),
]


@pytest.mark.parametrize(("unit_changes", "people_changes", "expected"), REFUSALS)
async def test_refusal(
    db: Database,
    tmp_path: Path,
    unit_changes: dict[int, str | None],
    people_changes: dict[int, str | None],
    expected: list[str],
) -> None:
    directory = write_roster(
        tmp_path / "r", edited(BASE_UNITS, unit_changes), edited(BASE_PEOPLE, people_changes)
    )

    assert await refused(db, directory) == expected
    assert await counts(db) == (0, 0)


async def test_base_roster_is_valid(db: Database, tmp_path: Path) -> None:
    # The refusal cases rely on every error coming from their one edit.
    directory = write_roster(tmp_path / "r", BASE_UNITS, BASE_PEOPLE)

    assert await import_roster(db, directory) == ImportSummary(units_added=5, staff_added=5)


async def test_all_problems_reported_together_in_order(db: Database, tmp_path: Path) -> None:
    units = edited(BASE_UNITS, {3: "T,town,D,,", 7: "G2,grid,T,Grid 2,"})
    people = edited(
        BASE_PEOPLE,
        {2: "Grid Member,10001,101,grid_member,G,repair;plumbing", 7: "X,1-2,x,boss,G,"},
    )
    directory = write_roster(tmp_path / "r", units, people)

    errors = await refused(db, directory)

    assert errors == [
        "units.csv:3: name is empty",
        "units.csv:7: a grid belongs under a community, but parent T is a town",
        f"people.csv:2: unknown post 'plumbing'; use codes from: {ALL_POSTS}",
        f"people.csv:7: phone '1-2' is not a phone number: {PHONE_RULE}",
        f"people.csv:7: telegram_id 'x' {TELEGRAM_RULE}",
        "people.csv:7: unknown role 'boss'; "
        "use one of grid_member, coordinator, town_officer, department, admin",
    ]
    assert await counts(db) == (0, 0)


async def test_unreadable_units_do_not_flood_people_errors(db: Database, tmp_path: Path) -> None:
    directory = write_roster(tmp_path / "r", ["code;level;parent;name;name_en"], BASE_PEOPLE)

    errors = await refused(db, directory)

    assert errors == [
        "units.csv:1: missing columns code, level, parent, name, name_en; "
        f"expected the header {UNITS_HEADER}",
        "units.csv:1: unexpected column code;level;parent;name;name_en; "
        f"expected the header {UNITS_HEADER}",
    ]


async def test_missing_and_empty_files(db: Database, tmp_path: Path) -> None:
    directory = tmp_path / "r"
    directory.mkdir()
    (directory / "units.csv").write_bytes(b"")

    errors = await refused(db, directory)

    assert errors == [
        f"units.csv:1: the file is empty; expected the header {UNITS_HEADER}",
        f"people.csv: file not found in {directory}",
    ]


async def test_not_utf8_refused(db: Database, tmp_path: Path) -> None:
    # Excel on a Chinese Windows saves plain "CSV" in GBK.
    directory = write_roster(tmp_path / "r", BASE_UNITS, BASE_PEOPLE)
    (directory / "people.csv").write_bytes(
        "\n".join([*BASE_PEOPLE, "王五,10006,,grid_member,G,"]).encode("gbk")
    )

    errors = await refused(db, directory)

    assert errors == [
        "people.csv:7: not UTF-8 text; save the file as UTF-8 (in Excel: Save As, 'CSV UTF-8')"
    ]


def test_row_error_text() -> None:
    assert str(RowError("people.csv", 5, "phone is empty")) == "people.csv:5: phone is empty"
    assert str(RowError("units.csv", 0, "file not found")) == "units.csv: file not found"
    refusal = RosterRefused([RowError("people.csv", 5, "phone is empty")])
    assert "people.csv:5: phone is empty" in str(refusal)


# --- rows already in the database ------------------------------------------------------------


async def test_telegram_id_from_invite_is_kept(db: Database) -> None:
    await import_roster(db, sample_district_dir())
    async with db.transaction() as session:
        joined = (await session.exec(select(Staff).where(Staff.phone == "13800000013"))).one()
        joined.telegram_id = 700000013
        session.add(joined)
    before = await snapshot(db)

    summary = await import_roster(db, sample_district_dir())

    assert summary == ImportSummary(units_unchanged=25, staff_unchanged=26)
    assert (await staff_by_phone(db, "13800000013")).telegram_id == 700000013
    assert await snapshot(db) == before


async def test_telegram_id_in_file_replaces_database_value(db: Database, sample_copy: Path) -> None:
    await import_roster(db, sample_copy)
    replace_in(sample_copy / "people.csv", "13800000013,,", "13800000013,700000113,")
    replace_in(sample_copy / "people.csv", "13800000001,700000001,", "13800000001,700000101,")

    summary = await import_roster(db, sample_copy)

    assert summary == ImportSummary(units_unchanged=25, staff_updated=2, staff_unchanged=24)
    assert (await staff_by_phone(db, "13800000013")).telegram_id == 700000113
    assert (await staff_by_phone(db, "13800000001")).telegram_id == 700000101


async def test_telegram_ids_may_swap(db: Database, tmp_path: Path) -> None:
    await import_roster(db, write_roster(tmp_path / "a", BASE_UNITS, BASE_PEOPLE))
    people = edited(
        BASE_PEOPLE,
        {
            4: "Town Officer,10003,104,town_officer,T,",
            5: "Dept,10004,103,department,P,health",
        },
    )

    summary = await import_roster(db, write_roster(tmp_path / "b", BASE_UNITS, people))

    assert summary.staff_updated == 2
    assert (await staff_by_phone(db, "10003")).telegram_id == 104
    assert (await staff_by_phone(db, "10004")).telegram_id == 103


async def test_telegram_id_taken_in_database(db: Database, tmp_path: Path) -> None:
    await import_roster(db, write_roster(tmp_path / "a", BASE_UNITS, BASE_PEOPLE))
    before = await snapshot(db)
    people = [
        PEOPLE_HEADER,
        "Grid Member,10001,,grid_member,G,repair;safety",
        "Newcomer,10006,101,grid_member,G,",
        "Other,10007,103,grid_member,G,",
    ]

    errors = await refused(db, write_roster(tmp_path / "b", BASE_UNITS, people))

    assert errors == [
        "people.csv:3: telegram_id 101 already belongs to Grid Member (10001) in the database, "
        "on line 2, which leaves it empty",
        "people.csv:4: telegram_id 103 already belongs to Town Officer (10003) in the database, "
        "who is not in this file",
    ]
    assert await snapshot(db) == before


async def test_rows_absent_from_file_are_left_alone(db: Database, tmp_path: Path) -> None:
    await import_roster(db, write_roster(tmp_path / "a", BASE_UNITS, BASE_PEOPLE))
    before_units, before_staff = await snapshot(db)

    summary = await import_roster(db, write_roster(tmp_path / "b", BASE_UNITS[:3], BASE_PEOPLE[:2]))

    assert summary == ImportSummary(units_unchanged=2, staff_unchanged=1)
    assert await snapshot(db) == (before_units, before_staff)


async def test_parent_and_unit_may_already_be_in_database(db: Database, tmp_path: Path) -> None:
    await import_roster(db, write_roster(tmp_path / "a", BASE_UNITS, BASE_PEOPLE))
    # A file with only the new grid: its parent and the district are already in the database.
    units = [UNITS_HEADER, "G2,grid,C,Grid 2,"]
    people = [
        PEOPLE_HEADER,
        "New Member,10006,,grid_member,G2,",
        "Coordinator,10002,,coordinator,C,",
    ]

    summary = await import_roster(db, write_roster(tmp_path / "b", units, people))

    assert summary == ImportSummary(units_added=1, staff_added=1, staff_unchanged=1)
    assert (await staff_by_phone(db, "10006")).unit_code == "G2"


async def test_second_district_against_database(db: Database, tmp_path: Path) -> None:
    await import_roster(db, write_roster(tmp_path / "a", BASE_UNITS, BASE_PEOPLE))

    errors = await refused(
        db, write_roster(tmp_path / "b", [UNITS_HEADER, "D2,district,,Other,"], [PEOPLE_HEADER])
    )

    assert errors == [
        "units.csv:2: a second district; there must be exactly one (D is already in the database)"
    ]


async def test_level_change_must_not_strand_database_rows(db: Database, tmp_path: Path) -> None:
    await import_roster(db, write_roster(tmp_path / "a", BASE_UNITS, BASE_PEOPLE))
    before = await snapshot(db)

    errors = await refused(
        db, write_roster(tmp_path / "b", [UNITS_HEADER, "T,department,D,Town,"], [PEOPLE_HEADER])
    )

    assert errors == [
        "units.csv:2: C (a community in the database, not in this file) belongs under a town, "
        "and would be left under this department",
        "units.csv:2: Town Officer (10003, a town_officer in the database, not in people.csv) "
        "serves this unit, which would become a department",
    ]
    assert await snapshot(db) == before


async def test_unit_moves_under_new_parent(db: Database, tmp_path: Path) -> None:
    await import_roster(db, write_roster(tmp_path / "a", BASE_UNITS, BASE_PEOPLE))
    # The new town comes later in the file than the community that moves under it.
    units = [*BASE_UNITS[:3], "C,community,T2,Community,", *BASE_UNITS[5:], "T2,town,D,Town 2,"]

    summary = await import_roster(db, write_roster(tmp_path / "b", units, [PEOPLE_HEADER]))

    assert (summary.units_added, summary.units_updated) == (1, 1)
    async with db.session() as session:
        community = await session.get(Unit, "C")
        assert community is not None
        assert community.parent_code == "T2"


# --- helpers shared with the demo and the domain ----------------------------------------------


def test_sample_district_dir_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUIYIN_SAMPLE_DISTRICT", str(tmp_path))
    assert sample_district_dir() == tmp_path

    monkeypatch.setenv("HUIYIN_SAMPLE_DISTRICT", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="HUIYIN_SAMPLE_DISTRICT"):
        sample_district_dir()

    monkeypatch.delenv("HUIYIN_SAMPLE_DISTRICT")
    assert (sample_district_dir() / "units.csv").is_file()


def test_codes_match_the_domain() -> None:
    catalog = pytest.importorskip("domain.catalog")
    routing = pytest.importorskip("domain.routing")
    assert set(POST_CODES) == set(catalog.CATEGORY_CODES)
    assert {str(level.value): role for level, role in routing.ROLE_AT_LEVEL.items()} == {
        level: role for role, level in ROLE_LEVEL.items()
    }


def test_packaged_sample_district_matches_the_shared_one() -> None:
    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "sample-district"
    if not shared.is_dir():
        pytest.skip("no shared/ beside the repository")
    for name in ("units.csv", "people.csv"):
        packaged = (PACKAGED_SAMPLE_DISTRICT / name).read_bytes()
        assert packaged == (shared / name).read_bytes(), f"{name}: copy shared/ into storage/"
