"""Roster import: load a district's `units.csv` and `people.csv` into the units and staff tables,
and, when they are there, `organisations.csv` and `volunteers.csv` (docs/roster.md) into the
organisations and volunteers tables (keyed by name and by phone; volunteers come in approved).

The format is described in `shared/data/sample-district/README.md`. Both files are UTF-8, with or
without the byte-order mark Excel writes. The import is all or nothing: every row of both files is
checked first, against the files and against what the database already holds, and if anything is
wrong `RosterRefused` lists every problem as `file:line: reason` and nothing is written. Otherwise
all changes are written in one transaction.

Units are keyed by `code` and staff by `phone`, so re-importing the same files changes nothing and
an edited row is updated in place (a person keeps their id, and with it their open tasks).

What the import never does:

- It does not delete. Units and staff that are in the database but not in the files are left as
  they are; to retire someone, deactivate them instead.
- It does not clear a Telegram id. A person whose `telegram_id` is empty in the file but who has
  already joined (through an invite link or by sharing their contact) keeps the id the database has.
- It does not touch `Staff.active`; new people start active.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.database import Database
from storage.models import Account, Organisation, Staff, Unit, Volunteer
from storage.pinyin import name_reading
from storage.roster_cache import raise_roster_version

UNITS_FILE = "units.csv"
PEOPLE_FILE = "people.csv"
# The supply side, both optional (docs/roster.md): units that claim as a body, and volunteers.
ORGANISATIONS_FILE = "organisations.csv"
VOLUNTEERS_FILE = "volunteers.csv"
ORGANISATION_COLUMNS: tuple[str, ...] = ("name", "name_en", "kind", "unit")
VOLUNTEER_COLUMNS: tuple[str, ...] = (
    "name",
    "phone",
    "telegram_id",
    "unit",
    "categories",
    "party_member",
    "organisation",
    "contact",
)
# Kept in step with `domain.volunteers` (OrganisationKind, NEVER_OFFERED).
ORGANISATION_KINDS: tuple[str, ...] = ("department", "enterprise", "social")
NEVER_OFFERED: tuple[str, ...] = ("safety",)
YES = ("yes", "y", "true", "1", "是", "x")
NO = ("no", "n", "false", "0", "否", "")
UNIT_COLUMNS: tuple[str, ...] = ("code", "level", "parent", "name", "name_en")
# Where a grid is (docs/roster.md): a point in two optional columns, an outline in a GeoJSON file.
UNIT_POINT_COLUMNS: tuple[str, ...] = ("lat", "lon")
OUTLINES_FILE = "grids.geojson"
OUTLINE_TYPES = ("Polygon", "MultiPolygon")
MAX_OUTLINE_BYTES = 200_000  # one grid's outline; a village's is a few kilobytes
PEOPLE_COLUMNS: tuple[str, ...] = ("name", "phone", "telegram_id", "role", "unit", "posts")

LEVELS: tuple[str, ...] = ("district", "town", "community", "grid", "department")
PARENT_LEVEL: dict[str, str] = {
    "town": "district",
    "community": "town",
    "grid": "community",
    "department": "district",
}
# Parents always sit one rank above their children, so inserting by rank satisfies the foreign key.
LEVEL_RANK: dict[str, int] = {"district": 0, "town": 1, "department": 1, "community": 2, "grid": 3}

ROLE_LEVEL: dict[str, str] = {
    "grid_member": "grid",
    "coordinator": "community",
    "town_officer": "town",
    "department": "department",
    "admin": "district",
}

# Kept in step with `domain.catalog`; storage does not import the rules above it.
POST_CODES: tuple[str, ...] = (
    "repair",
    "sanitation",
    "health",
    "elder_care",
    "assistance",
    "errand",
    "safety",
    "housing",
    "employment",
    "training",
    "agriculture",
    "policy",
    "companionship",
    "family_link",
    "counseling",
    "mediation",
    "other",
)

# Column widths of the tables; SQLite would accept longer values but PostgreSQL would not.
MAX_CODE = 32
MAX_UNIT_NAME = 100
MAX_STAFF_NAME = 50
MAX_POSTS = 500
PHONE_MIN, PHONE_MAX = 5, 20
MAX_TELEGRAM_ID = 2**63 - 1  # BIGINT

SAMPLE_DISTRICT_ENV = "HUIYIN_SAMPLE_DISTRICT"
_FILE_ORDER = {UNITS_FILE: 0, PEOPLE_FILE: 1, ORGANISATIONS_FILE: 2, VOLUNTEERS_FILE: 3}


@dataclass(frozen=True)
class RowError:
    """One problem in one row. `line` is 1-based (the header is line 1); 0 means the whole file."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        if self.line <= 0:
            return f"{self.file}: {self.reason}"
        return f"{self.file}:{self.line}: {self.reason}"


class RosterRefused(Exception):
    """The files were not imported; `errors` lists every problem found."""

    def __init__(self, errors: Sequence[RowError]) -> None:
        self.errors: list[RowError] = list(errors)
        count = len(self.errors)
        lines = "\n".join(str(e) for e in self.errors)
        super().__init__(f"roster refused, {count} problem{'s' if count != 1 else ''}:\n{lines}")


@dataclass
class ImportSummary:
    units_added: int = 0
    units_updated: int = 0
    units_unchanged: int = 0
    staff_added: int = 0
    staff_updated: int = 0
    staff_unchanged: int = 0
    organisations_added: int = 0
    organisations_updated: int = 0
    organisations_unchanged: int = 0
    volunteers_added: int = 0
    volunteers_updated: int = 0
    volunteers_unchanged: int = 0

    def __str__(self) -> str:
        text = (
            f"units: {self.units_added} added, {self.units_updated} updated, "
            f"{self.units_unchanged} unchanged; staff: {self.staff_added} added, "
            f"{self.staff_updated} updated, {self.staff_unchanged} unchanged"
        )
        organisations = (
            self.organisations_added,
            self.organisations_updated,
            self.organisations_unchanged,
        )
        if any(organisations):
            text += "; organisations: {} added, {} updated, {} unchanged".format(*organisations)
        volunteers = (self.volunteers_added, self.volunteers_updated, self.volunteers_unchanged)
        if any(volunteers):
            text += "; volunteers: {} added, {} updated, {} unchanged".format(*volunteers)
        return text


PACKAGED_SAMPLE_DISTRICT = Path(__file__).resolve().parent / "sample_district"


def sample_district_dir() -> Path:
    """Where the sample district's roster lives: $HUIYIN_SAMPLE_DISTRICT, else the project's
    shared copy next to the repository, else the copy packaged with Huiyin (so `huiyin demo`
    works from a plain install; a test keeps the two copies equal)."""
    override = os.environ.get(SAMPLE_DISTRICT_ENV)
    if override:
        path = Path(override)
        if not path.is_dir():
            raise FileNotFoundError(f"{SAMPLE_DISTRICT_ENV}={override} is not a directory")
        return path
    repo = Path(__file__).resolve().parents[1]
    candidates = [
        repo.parent / "shared" / "data" / "sample-district",
        PACKAGED_SAMPLE_DISTRICT,
    ]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"sample district not found (tried {tried}); set {SAMPLE_DISTRICT_ENV} to the directory "
        f"holding {UNITS_FILE} and {PEOPLE_FILE}"
    )


@dataclass
class _UnitRow:
    line: int
    code: str
    level: str | None  # None when missing or not a known level: later checks skip it
    parent: str | None
    name: str
    name_en: str
    point: tuple[float, float] | None = None
    outline: str | None = None


@dataclass
class _PersonRow:
    line: int
    name: str
    phone: str
    telegram_id: int | None
    role: str | None  # None when missing or not a known role
    unit: str
    posts: str


class _Errors:
    def __init__(self) -> None:
        self.items: list[RowError] = []

    def add(self, file: str, line: int, reason: str) -> None:
        self.items.append(RowError(file, line, reason))

    def sorted(self) -> list[RowError]:
        # Stable, so several problems on one row keep the order they were found in.
        return sorted(self.items, key=lambda e: (_FILE_ORDER.get(e.file, 2), e.file, e.line))


async def import_roster(
    db: Database, directory: Path, now: datetime | None = None
) -> ImportSummary:
    """Check both files completely, then upsert them in one transaction; see the module docstring.
    `organisations.csv` and `volunteers.csv` are read too when they are there; `now` is when new
    organisations and volunteers are recorded (the wall clock when not given, at the terminal).

    Raises `RosterRefused` (with every problem found) without writing anything if any row is wrong.
    """
    directory = Path(directory)
    now = now or datetime.now(UTC)
    errors = _Errors()
    unit_records = _read_csv(
        directory, UNITS_FILE, UNIT_COLUMNS, errors, optional=UNIT_POINT_COLUMNS
    )
    people_records = _read_csv(directory, PEOPLE_FILE, PEOPLE_COLUMNS, errors)
    units = _parse_units(unit_records or [], errors)
    with_points = bool(unit_records) and all("lat" in v for _, v in unit_records or [])
    outlines = _read_outlines(directory, errors)
    people = _parse_people(people_records or [], errors)
    organisation_records = (
        _read_csv(directory, ORGANISATIONS_FILE, ORGANISATION_COLUMNS, errors)
        if (directory / ORGANISATIONS_FILE).exists()
        else []
    )
    volunteer_records = (
        _read_csv(directory, VOLUNTEERS_FILE, VOLUNTEER_COLUMNS, errors)
        if (directory / VOLUNTEERS_FILE).exists()
        else []
    )
    organisations = _parse_organisations(organisation_records or [], errors)
    volunteers = _parse_volunteers(volunteer_records or [], errors)

    # Reading the existing rows inside the writing transaction keeps the checks and the writes
    # consistent with each other; a refusal rolls back a transaction that wrote nothing.
    async with db.transaction() as session:
        db_units = {u.code: u for u in (await session.exec(select(Unit))).all()}
        db_staff = {s.phone: s for s in (await session.exec(select(Staff))).all()}

        file_units = _check_units(units, db_units, errors, units_readable=unit_records is not None)
        _check_outlines(outlines, file_units, errors)
        levels = {code: unit.level for code, unit in db_units.items()}
        levels.update({code: row.level for code, row in file_units.items()})
        _check_people(
            people,
            levels,
            db_staff,
            errors,
            units_readable=unit_records is not None,
        )
        _check_existing_rows_still_fit(file_units, db_units, people, db_staff, levels, errors)
        db_organisations = {o.name: o for o in (await session.exec(select(Organisation))).all()}
        every_volunteer = list((await session.exec(select(Volunteer))).all())
        db_volunteers = {v.phone: v for v in every_volunteer if v.phone}
        _check_organisations(organisations, levels, errors, units_readable=unit_records is not None)
        known_organisations = set(db_organisations) | {o.name for o in organisations}
        _check_volunteers(
            volunteers,
            levels,
            known_organisations,
            every_volunteer,
            errors,
            units_readable=unit_records is not None,
        )
        if errors.items:
            raise RosterRefused(errors.sorted())

        summary = ImportSummary()
        await _write_units(session, file_units.values(), db_units, summary, with_points, outlines)
        await _write_staff(session, people, db_staff, summary)
        await _write_organisations(session, organisations, db_organisations, summary, now)
        await _write_volunteers(session, volunteers, db_volunteers, summary, now)
        await raise_roster_version(session)
    db.roster.forget()
    await db.analyze()  # the roster's tables may have changed size many times over
    return summary


def _read_csv(
    directory: Path,
    filename: str,
    columns: Sequence[str],
    errors: _Errors,
    *,
    optional: Sequence[str] = (),
) -> list[tuple[int, dict[str, str]]] | None:
    """The data rows as (line, {column: stripped value}); None if the file cannot be read at all.
    `optional` columns may be left out of the file (then they are not in the rows)."""
    path = directory / filename
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        errors.add(filename, 0, f"file not found in {directory}")
        return None
    except OSError as exc:
        errors.add(filename, 0, f"cannot be read: {exc.strerror or exc}")
        return None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        errors.add(
            filename,
            line,
            "not UTF-8 text; save the file as UTF-8 (in Excel: Save As, 'CSV UTF-8')",
        )
        return None

    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            errors.add(filename, 1, f"the file is empty; expected the header {','.join(columns)}")
            return None
        names = [h.strip().lower() for h in header]
        header_problems = _header_problems(names, columns, optional)
        if header_problems:
            for problem in header_problems:
                errors.add(filename, 1, problem)
            return None

        records: list[tuple[int, dict[str, str]]] = []
        previous_end = reader.line_num
        for fields in reader:
            # A quoted value may span lines; report the line the record starts on.
            line = previous_end + 1
            previous_end = reader.line_num
            if not any(f.strip() for f in fields):
                continue  # blank line, or a row Excel left as only commas
            if len(fields) != len(names):
                errors.add(
                    filename,
                    line,
                    f"expected {len(names)} fields ({','.join(names)}), found {len(fields)}; "
                    "a value containing a comma must be in double quotes",
                )
                continue
            records.append((line, {n: f.strip() for n, f in zip(names, fields, strict=True)}))
    except csv.Error as exc:
        errors.add(filename, reader.line_num, f"malformed CSV: {exc}")
        return None
    return records


def _header_problems(
    names: Sequence[str], columns: Sequence[str], optional: Sequence[str] = ()
) -> list[str]:
    problems: list[str] = []
    expected = f"expected the header {','.join(columns)}"
    present = [c for c in optional if c in names]
    if present and len(present) != len(optional):
        problems.append(f"columns {', '.join(optional)} go together")
    missing = [c for c in columns if c not in names]
    columns = (*columns, *optional)
    if missing:
        problems.append(f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    extra = [
        (n if n else f"(unnamed column {i})")
        for i, n in enumerate(names, start=1)
        if n not in columns
    ]
    if extra:
        problems.append(f"unexpected column{'s' if len(extra) > 1 else ''} {', '.join(extra)}")
    repeated = [n for n, count in Counter(names).items() if count > 1 and n in columns]
    if repeated:
        problems.append(f"column{'s' if len(repeated) > 1 else ''} {', '.join(repeated)} repeated")
    return [f"{p}; {expected}" for p in problems]


def _require(
    values: dict[str, str], names: Iterable[str], file: str, line: int, errors: _Errors
) -> bool:
    ok = True
    for name in names:
        if not values[name]:
            errors.add(file, line, f"{name} is empty")
            ok = False
    return ok


def _too_long(value: str, limit: int, what: str, file: str, line: int, errors: _Errors) -> None:
    if len(value) > limit:
        errors.add(file, line, f"{what} is {len(value)} characters long; at most {limit} allowed")


def _parse_units(records: list[tuple[int, dict[str, str]]], errors: _Errors) -> list[_UnitRow]:
    rows: list[_UnitRow] = []
    for line, v in records:
        _require(v, ("code", "level", "name"), UNITS_FILE, line, errors)
        level: str | None = v["level"]
        if level and level not in LEVELS:
            errors.add(UNITS_FILE, line, f"unknown level {level!r}; use one of {', '.join(LEVELS)}")
            level = None
        _too_long(v["code"], MAX_CODE, "code", UNITS_FILE, line, errors)
        _too_long(v["name"], MAX_UNIT_NAME, "name", UNITS_FILE, line, errors)
        _too_long(v["name_en"], MAX_UNIT_NAME, "name_en", UNITS_FILE, line, errors)
        if not v["code"]:
            continue  # nothing can refer to it; the empty code is already reported
        point = _parse_point(v.get("lat", ""), v.get("lon", ""), line, errors)
        rows.append(
            _UnitRow(
                line=line,
                code=v["code"],
                level=level or None,
                parent=v["parent"] or None,
                name=v["name"],
                name_en=v["name_en"],
                point=point,
            )
        )
    return rows


def _parse_point(lat: str, lon: str, line: int, errors: _Errors) -> tuple[float, float] | None:
    if not lat and not lon:
        return None
    try:
        point = (float(lat), float(lon))
    except ValueError:
        errors.add(UNITS_FILE, line, "lat and lon must both be numbers in degrees, or both empty")
        return None
    if not (-90 <= point[0] <= 90 and -180 <= point[1] <= 180):
        errors.add(UNITS_FILE, line, f"lat {lat}, lon {lon} is not a place on Earth")
        return None
    return point


def _read_outlines(directory: Path, errors: _Errors) -> dict[str, tuple[int, str]]:
    """The grids' outlines from `grids.geojson` (optional): code → (feature number, geometry
    as GeoJSON text). A FeatureCollection whose features carry `properties.code` and a Polygon
    or MultiPolygon geometry in longitude, latitude order."""
    path = directory / OUTLINES_FILE
    if not path.exists():
        return {}
    import shapely.geometry  # with numpy, loaded for the outlines file, not at start

    try:
        document = json.loads(path.read_bytes().decode("utf-8-sig"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        errors.add(OUTLINES_FILE, 0, f"not readable GeoJSON: {exc}")
        return {}
    features = document.get("features") if isinstance(document, dict) else None
    if not isinstance(features, list):
        errors.add(OUTLINES_FILE, 0, "expected a FeatureCollection with a list of features")
        return {}
    outlines: dict[str, tuple[int, str]] = {}
    for number, feature in enumerate(features, start=1):
        properties = feature.get("properties") if isinstance(feature, dict) else None
        geometry = feature.get("geometry") if isinstance(feature, dict) else None
        code = properties.get("code") if isinstance(properties, dict) else None
        if not isinstance(code, str) or not code:
            errors.add(OUTLINES_FILE, number, "feature has no properties.code (a grid's code)")
            continue
        if not isinstance(geometry, dict) or geometry.get("type") not in OUTLINE_TYPES:
            errors.add(
                OUTLINES_FILE, number, f"{code}: the geometry must be a Polygon or MultiPolygon"
            )
            continue
        try:
            shape = shapely.geometry.shape(geometry)
        except (ValueError, TypeError, AttributeError, IndexError) as exc:
            errors.add(OUTLINES_FILE, number, f"{code}: unreadable geometry ({exc})")
            continue
        bounds = shape.bounds
        if shape.is_empty or not shape.is_valid:
            errors.add(OUTLINES_FILE, number, f"{code}: the outline is empty or crosses itself")
            continue
        if not (-180 <= bounds[0] <= bounds[2] <= 180 and -90 <= bounds[1] <= bounds[3] <= 90):
            errors.add(OUTLINES_FILE, number, f"{code}: coordinates must be longitude, latitude")
            continue
        text = json.dumps(geometry, separators=(",", ":"))
        if len(text) > MAX_OUTLINE_BYTES:
            errors.add(OUTLINES_FILE, number, f"{code}: the outline has too many points")
            continue
        if code in outlines:
            errors.add(
                OUTLINES_FILE,
                number,
                f"{code}: a second outline (first is feature {outlines[code][0]})",
            )
            continue
        outlines[code] = (number, text)
    return outlines


def _check_outlines(
    outlines: dict[str, tuple[int, str]],
    file_units: dict[str, _UnitRow],
    errors: _Errors,
) -> None:
    """An outline goes with its grid's row in units.csv."""
    for code, (number, _) in outlines.items():
        level = file_units[code].level if code in file_units else None
        if level != "grid":
            errors.add(OUTLINES_FILE, number, f"{code} is not a grid in {UNITS_FILE}")


def _check_units(
    rows: list[_UnitRow], db_units: dict[str, Unit], errors: _Errors, *, units_readable: bool
) -> dict[str, _UnitRow]:
    """Cross-row checks on units.csv; returns the file's units by code (first occurrence wins)."""
    by_code: dict[str, _UnitRow] = {}
    for row in rows:
        first = by_code.get(row.code)
        if first is not None:
            errors.add(
                UNITS_FILE, row.line, f"duplicate code {row.code} (first on line {first.line})"
            )
        else:
            by_code[row.code] = row

    def level_of(code: str) -> str | None:
        if code in by_code:
            return by_code[code].level
        return db_units[code].level if code in db_units else None

    for row in by_code.values():
        if row.level == "district":
            if row.parent is not None:
                errors.add(
                    UNITS_FILE,
                    row.line,
                    f"a district has no parent, but parent is {row.parent}; leave it empty",
                )
            continue
        if row.parent is None:
            if row.level is not None:
                errors.add(
                    UNITS_FILE,
                    row.line,
                    f"parent is empty; only the district may have no parent, "
                    f"a {row.level} belongs under a {PARENT_LEVEL[row.level]}",
                )
            continue
        if row.parent not in by_code and row.parent not in db_units:
            errors.add(
                UNITS_FILE,
                row.line,
                f"parent {row.parent} is not a unit in {UNITS_FILE} or in the database",
            )
            continue
        parent_level = level_of(row.parent)
        if row.level is not None and parent_level is not None:
            wanted = PARENT_LEVEL[row.level]
            if parent_level != wanted:
                errors.add(
                    UNITS_FILE,
                    row.line,
                    f"a {row.level} belongs under a {wanted}, "
                    f"but parent {row.parent} is a {parent_level}",
                )

    districts = [r for r in by_code.values() if r.level == "district"]
    db_districts = [
        u for code, u in db_units.items() if u.level == "district" and code not in by_code
    ]
    if len(districts) + len(db_districts) == 0:
        # A row with an unreadable level may be the district; its own error says enough.
        if units_readable and all(r.level is not None for r in by_code.values()):
            errors.add(
                UNITS_FILE,
                1,
                "no district: exactly one unit must have level district and an empty parent",
            )
    else:
        for extra in districts[1:]:
            errors.add(
                UNITS_FILE,
                extra.line,
                f"a second district; there must be exactly one "
                f"({districts[0].code} is on line {districts[0].line})",
            )
        if districts and db_districts:
            errors.add(
                UNITS_FILE,
                districts[0].line,
                f"a second district; there must be exactly one "
                f"({db_districts[0].code} is already in the database)",
            )
    return by_code


def _parse_telegram_id(value: str) -> int | None:
    """The id, or None for an empty value; raises ValueError for anything else."""
    if not value:
        return None
    if not value.isdecimal() or not value.isascii():
        raise ValueError
    number = int(value)
    if not 0 < number <= MAX_TELEGRAM_ID:
        raise ValueError
    return number


def _parse_people(records: list[tuple[int, dict[str, str]]], errors: _Errors) -> list[_PersonRow]:
    rows: list[_PersonRow] = []
    for line, v in records:
        complete = _require(v, ("name", "phone", "role", "unit"), PEOPLE_FILE, line, errors)
        _too_long(v["name"], MAX_STAFF_NAME, "name", PEOPLE_FILE, line, errors)

        phone = v["phone"]
        digits = phone.removeprefix("+")
        if phone and not (
            digits.isascii() and digits.isdecimal() and PHONE_MIN <= len(phone) <= PHONE_MAX
        ):
            errors.add(
                PEOPLE_FILE,
                line,
                f"phone {phone!r} is not a phone number: use {PHONE_MIN} to {PHONE_MAX} "
                "digits, optionally starting with +, without spaces or dashes",
            )
            complete = False

        telegram_id: int | None = None
        try:
            telegram_id = _parse_telegram_id(v["telegram_id"])
        except ValueError:
            errors.add(
                PEOPLE_FILE,
                line,
                f"telegram_id {v['telegram_id']!r} is not a positive whole number; "
                "leave it empty if the person has not joined yet",
            )

        role: str | None = v["role"] or None
        if role is not None and role not in ROLE_LEVEL:
            errors.add(
                PEOPLE_FILE, line, f"unknown role {role!r}; use one of {', '.join(ROLE_LEVEL)}"
            )
            role = None

        posts: list[str] = []
        for post in (p.strip() for p in v["posts"].split(";")):
            if not post or post in posts:
                continue
            if post not in POST_CODES:
                hint = ""
                if "；" in post or "," in post or "，" in post:
                    hint = " (separate posts with ';')"
                errors.add(
                    PEOPLE_FILE,
                    line,
                    f"unknown post {post!r}{hint}; use codes from: {' '.join(POST_CODES)}",
                )
                continue
            posts.append(post)
        joined_posts = ";".join(posts)
        _too_long(joined_posts, MAX_POSTS, "posts", PEOPLE_FILE, line, errors)

        if complete:
            rows.append(
                _PersonRow(
                    line=line,
                    name=v["name"],
                    phone=phone,
                    telegram_id=telegram_id,
                    role=role,
                    unit=v["unit"],
                    posts=joined_posts,
                )
            )
    return rows


def _check_people(
    rows: list[_PersonRow],
    levels: dict[str, str | None],
    db_staff: dict[str, Staff],
    errors: _Errors,
    *,
    units_readable: bool,
) -> None:
    first_by_phone: dict[str, _PersonRow] = {}
    for row in rows:
        first = first_by_phone.get(row.phone)
        if first is not None:
            errors.add(
                PEOPLE_FILE, row.line, f"duplicate phone {row.phone} (first on line {first.line})"
            )
        else:
            first_by_phone[row.phone] = row

        # Without a readable units.csv every unit would look unknown; its own error says enough.
        if not units_readable:
            continue
        if row.unit not in levels:
            errors.add(
                PEOPLE_FILE, row.line, f"unit {row.unit} is not in {UNITS_FILE} or in the database"
            )
            continue
        level = levels[row.unit]
        if row.role is not None and level is not None and ROLE_LEVEL[row.role] != level:
            errors.add(
                PEOPLE_FILE,
                row.line,
                f"role {row.role} belongs to a {ROLE_LEVEL[row.role]}, "
                f"but unit {row.unit} is a {level}",
            )

    # Telegram ids must be unique across the staff table as it will be after the import:
    # the file's ids, plus the ids the database keeps for everyone else.
    file_phones = set(first_by_phone)
    kept: dict[int, Staff] = {}
    for phone, staff in db_staff.items():
        if staff.telegram_id is None:
            continue
        row = first_by_phone.get(phone)
        if row is None or row.telegram_id is None:
            kept[staff.telegram_id] = staff
    first_by_telegram: dict[int, _PersonRow] = {}
    for row in rows:
        if row.telegram_id is None or first_by_phone.get(row.phone) is not row:
            continue
        first = first_by_telegram.get(row.telegram_id)
        if first is not None:
            errors.add(
                PEOPLE_FILE,
                row.line,
                f"duplicate telegram_id {row.telegram_id} (first on line {first.line})",
            )
            continue
        first_by_telegram[row.telegram_id] = row
        holder = kept.get(row.telegram_id)
        if holder is not None and holder.phone != row.phone:
            where = (
                f"on line {first_by_phone[holder.phone].line}, which leaves it empty"
                if holder.phone in file_phones
                else "who is not in this file"
            )
            errors.add(
                PEOPLE_FILE,
                row.line,
                f"telegram_id {row.telegram_id} already belongs to {holder.name} "
                f"({holder.phone}) in the database, {where}",
            )


def _check_existing_rows_still_fit(
    file_units: dict[str, _UnitRow],
    db_units: dict[str, Unit],
    people: list[_PersonRow],
    db_staff: dict[str, Staff],
    levels: dict[str, str | None],
    errors: _Errors,
) -> None:
    """Changing a unit's level must not strand rows that stay in the database untouched."""
    for code, unit in db_units.items():
        if code in file_units or unit.parent_code not in file_units:
            continue
        parent = file_units[unit.parent_code]
        wanted = PARENT_LEVEL.get(unit.level)
        if parent.level is not None and wanted is not None and parent.level != wanted:
            errors.add(
                UNITS_FILE,
                parent.line,
                f"{unit.code} (a {unit.level} in the database, not in this file) belongs under "
                f"a {wanted}, and would be left under this {parent.level}",
            )
    file_phones = {row.phone for row in people}
    for phone, staff in db_staff.items():
        if phone in file_phones or staff.unit_code not in file_units:
            continue
        level = levels.get(staff.unit_code)
        wanted = ROLE_LEVEL.get(staff.role)
        if level is not None and wanted is not None and level != wanted:
            errors.add(
                UNITS_FILE,
                file_units[staff.unit_code].line,
                f"{staff.name} ({staff.phone}, a {staff.role} in the database, not in "
                f"{PEOPLE_FILE}) serves this unit, which would become a {level}",
            )


async def _write_units(
    session: AsyncSession,
    rows: Iterable[_UnitRow],
    db_units: dict[str, Unit],
    summary: ImportSummary,
    with_points: bool = False,
    outlines: dict[str, tuple[int, str]] | None = None,
) -> None:
    """Upsert the units. A point is written when the file has the lat/lon columns (an empty
    cell clears it); an outline when `grids.geojson` names the grid (others keep theirs)."""
    outlines = outlines or {}
    by_rank: dict[int, list[_UnitRow]] = {}
    for row in rows:
        assert row.level is not None  # validated
        by_rank.setdefault(LEVEL_RANK[row.level], []).append(row)
    for rank in sorted(by_rank):
        for row in by_rank[rank]:
            values = {
                "level": row.level,
                "parent_code": row.parent,
                "name": row.name,
                "name_en": row.name_en,
                # Read with the phrase dictionary here, once, so that the bot need not load it.
                "syllables": name_reading(row.name),
            }
            if with_points:
                values["lat"] = row.point[0] if row.point else None
                values["lon"] = row.point[1] if row.point else None
            if row.code in outlines:
                values["outline"] = outlines[row.code][1]
            unit = db_units.get(row.code)
            if unit is None:
                session.add(Unit(code=row.code, **values))
                summary.units_added += 1
            elif _assign(unit, values):
                session.add(unit)
                summary.units_updated += 1
            else:
                summary.units_unchanged += 1
        # The parent_code foreign key has no ORM relationship to order the inserts by.
        await session.flush()


async def _write_staff(
    session: AsyncSession,
    rows: list[_PersonRow],
    db_staff: dict[str, Staff],
    summary: ImportSummary,
) -> None:
    planned: list[tuple[_PersonRow, Staff | None, dict[str, object]]] = []
    moving_ids: list[Staff] = []
    for row in rows:
        staff = db_staff.get(row.phone)
        telegram_id = row.telegram_id
        if telegram_id is None and staff is not None:
            telegram_id = staff.telegram_id  # joined by invite; the file does not know the id yet
        values: dict[str, object] = {
            "name": row.name,
            "telegram_id": telegram_id,
            "role": row.role,
            "unit_code": row.unit,
            "posts": row.posts,
        }
        planned.append((row, staff, values))
        if staff is not None and staff.telegram_id not in (None, telegram_id):
            moving_ids.append(staff)
    # Two people may swap Telegram ids; freeing the old ones first keeps the unique index happy
    # whatever order the updates are flushed in.
    if moving_ids:
        for staff in moving_ids:
            staff.telegram_id = None
            session.add(staff)
        await session.flush()
    for row, staff, values in planned:
        if staff is None:
            session.add(Staff(phone=row.phone, **values))
            summary.staff_added += 1
        elif _assign(staff, values):
            session.add(staff)
            summary.staff_updated += 1
        else:
            summary.staff_unchanged += 1
    await session.flush()


def _assign(row: Unit | Staff | Organisation | Volunteer, values: dict[str, object]) -> bool:
    """Set the values that differ; True if any did."""
    changed = False
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    return changed


# The supply side: organisations.csv and volunteers.csv ------------------------------------------


@dataclass
class _OrganisationRow:
    line: int
    name: str
    name_en: str
    kind: str
    unit: str | None


@dataclass
class _VolunteerRow:
    line: int
    name: str
    phone: str
    telegram_id: int | None
    unit: str
    categories: str
    party_member: bool
    organisation: str | None
    contact: bool


def _yes_no(value: str, what: str, file: str, line: int, errors: _Errors) -> bool:
    word = value.strip().lower()
    if word in YES:
        return True
    if word not in NO:
        errors.add(file, line, f"{what} {value!r} is not yes or no (leave it empty for no)")
    return False


def _parse_organisations(
    records: list[tuple[int, dict[str, str]]], errors: _Errors
) -> list[_OrganisationRow]:
    rows: list[_OrganisationRow] = []
    for line, v in records:
        complete = _require(v, ("name", "kind"), ORGANISATIONS_FILE, line, errors)
        _too_long(v["name"], MAX_UNIT_NAME, "name", ORGANISATIONS_FILE, line, errors)
        _too_long(v["name_en"], MAX_UNIT_NAME, "name_en", ORGANISATIONS_FILE, line, errors)
        if v["kind"] and v["kind"] not in ORGANISATION_KINDS:
            errors.add(
                ORGANISATIONS_FILE,
                line,
                f"unknown kind {v['kind']!r}; use one of {', '.join(ORGANISATION_KINDS)}",
            )
            complete = False
        if complete:
            rows.append(
                _OrganisationRow(line, v["name"], v["name_en"], v["kind"], v["unit"] or None)
            )
    return rows


def _parse_volunteers(
    records: list[tuple[int, dict[str, str]]], errors: _Errors
) -> list[_VolunteerRow]:
    rows: list[_VolunteerRow] = []
    offered = [c for c in POST_CODES if c not in NEVER_OFFERED]
    for line, v in records:
        complete = _require(v, ("name", "phone", "unit"), VOLUNTEERS_FILE, line, errors)
        _too_long(v["name"], MAX_STAFF_NAME, "name", VOLUNTEERS_FILE, line, errors)
        phone = v["phone"]
        digits = phone.removeprefix("+")
        if phone and not (
            digits.isascii() and digits.isdecimal() and PHONE_MIN <= len(phone) <= PHONE_MAX
        ):
            errors.add(
                VOLUNTEERS_FILE,
                line,
                f"phone {phone!r} is not a phone number: use {PHONE_MIN} to {PHONE_MAX} "
                "digits, optionally starting with +, without spaces or dashes",
            )
            complete = False
        telegram_id: int | None = None
        try:
            telegram_id = _parse_telegram_id(v["telegram_id"])
        except ValueError:
            errors.add(
                VOLUNTEERS_FILE,
                line,
                f"telegram_id {v['telegram_id']!r} is not a positive whole number; "
                "leave it empty if the person has not joined yet",
            )
        categories: list[str] = []
        for code in (c.strip() for c in v["categories"].split(";")):
            if not code or code in categories:
                continue
            if code in NEVER_OFFERED:
                errors.add(
                    VOLUNTEERS_FILE,
                    line,
                    f"category {code!r} is never offered to volunteers (staff handle it)",
                )
            elif code not in POST_CODES:
                errors.add(
                    VOLUNTEERS_FILE,
                    line,
                    f"unknown category {code!r}; use codes from: {' '.join(offered)}",
                )
            else:
                categories.append(code)
        party = _yes_no(v["party_member"], "party_member", VOLUNTEERS_FILE, line, errors)
        contact = _yes_no(v["contact"], "contact", VOLUNTEERS_FILE, line, errors)
        organisation = v["organisation"] or None
        if contact and organisation is None:
            errors.add(VOLUNTEERS_FILE, line, "contact is yes but no organisation is given")
        if complete:
            rows.append(
                _VolunteerRow(
                    line=line,
                    name=v["name"],
                    phone=phone,
                    telegram_id=telegram_id,
                    unit=v["unit"],
                    categories=";".join(categories),
                    party_member=party,
                    organisation=organisation,
                    contact=contact,
                )
            )
    return rows


def _check_organisations(
    rows: list[_OrganisationRow],
    levels: dict[str, str | None],
    errors: _Errors,
    *,
    units_readable: bool,
) -> None:
    first_by_name: dict[str, _OrganisationRow] = {}
    for row in rows:
        first = first_by_name.get(row.name)
        if first is not None:
            errors.add(
                ORGANISATIONS_FILE,
                row.line,
                f"duplicate name {row.name} (first on line {first.line})",
            )
        else:
            first_by_name[row.name] = row
        if row.unit is None or not units_readable:
            continue
        if row.unit not in levels:
            errors.add(
                ORGANISATIONS_FILE,
                row.line,
                f"unit {row.unit} is not in {UNITS_FILE} or in the database",
            )
        elif levels[row.unit] not in ("district", "town", "community"):
            errors.add(
                ORGANISATIONS_FILE,
                row.line,
                f"unit {row.unit} is a {levels[row.unit]}; an organisation serves a town, a "
                "community or (left empty) the whole district",
            )


def _check_volunteers(
    rows: list[_VolunteerRow],
    levels: dict[str, str | None],
    organisations: set[str],
    db_volunteers: list[Volunteer],
    errors: _Errors,
    *,
    units_readable: bool,
) -> None:
    first_by_phone: dict[str, _VolunteerRow] = {}
    first_by_telegram: dict[int, _VolunteerRow] = {}
    for row in rows:
        first = first_by_phone.get(row.phone)
        if first is not None:
            errors.add(
                VOLUNTEERS_FILE,
                row.line,
                f"duplicate phone {row.phone} (first on line {first.line})",
            )
        else:
            first_by_phone[row.phone] = row
        if row.telegram_id is not None:
            other = first_by_telegram.get(row.telegram_id)
            if other is not None and other.phone != row.phone:
                errors.add(
                    VOLUNTEERS_FILE,
                    row.line,
                    f"duplicate telegram_id {row.telegram_id} (first on line {other.line})",
                )
            first_by_telegram.setdefault(row.telegram_id, row)
        if row.organisation is not None and row.organisation not in organisations:
            errors.add(
                VOLUNTEERS_FILE,
                row.line,
                f"organisation {row.organisation!r} is not in {ORGANISATIONS_FILE} or in the "
                "database",
            )
        if not units_readable:
            continue
        if row.unit not in levels:
            errors.add(
                VOLUNTEERS_FILE,
                row.line,
                f"unit {row.unit} is not in {UNITS_FILE} or in the database",
            )
        elif levels[row.unit] not in ("town", "community"):
            errors.add(
                VOLUNTEERS_FILE,
                row.line,
                f"unit {row.unit} is a {levels[row.unit]}; a volunteer serves a community or "
                "a town",
            )
    for volunteer in db_volunteers:
        if volunteer.telegram_id is None or volunteer.phone in first_by_phone:
            continue
        row = first_by_telegram.get(volunteer.telegram_id)
        if row is not None:
            errors.add(
                VOLUNTEERS_FILE,
                row.line,
                f"telegram_id {row.telegram_id} already belongs to the volunteer "
                f"{volunteer.name} in the database",
            )


async def _write_organisations(
    session: AsyncSession,
    rows: list[_OrganisationRow],
    db_organisations: dict[str, Organisation],
    summary: ImportSummary,
    now: datetime,
) -> None:
    for row in rows:
        values: dict[str, object] = {
            "name_en": row.name_en,
            "kind": row.kind,
            "unit_code": row.unit,
        }
        organisation = db_organisations.get(row.name)
        if organisation is None:
            organisation = Organisation(name=row.name, created_at=now, **values)
            session.add(organisation)
            db_organisations[row.name] = organisation
            summary.organisations_added += 1
        elif _assign(organisation, values):
            session.add(organisation)
            summary.organisations_updated += 1
        else:
            summary.organisations_unchanged += 1
    await session.flush()


async def _write_volunteers(
    session: AsyncSession,
    rows: list[_VolunteerRow],
    db_volunteers: dict[str, Volunteer],
    summary: ImportSummary,
    now: datetime,
) -> None:
    """Upsert by phone. A new volunteer is approved (the roster is the community's own list);
    one whose Telegram id already has an account (with no profile of its own) is bound to it.
    A volunteer's status (paused, left) is theirs: a re-import leaves it."""
    by_name = {o.name: o.id for o in (await session.exec(select(Organisation))).all()}
    bound = {v.account_id for v in (await session.exec(select(Volunteer))).all() if v.account_id}
    for row in rows:
        volunteer = db_volunteers.get(row.phone)
        telegram_id = row.telegram_id
        if telegram_id is None and volunteer is not None:
            telegram_id = volunteer.telegram_id  # bound when they opened the bot
        values: dict[str, object] = {
            "name": row.name,
            "telegram_id": telegram_id,
            "unit_code": row.unit,
            "categories": row.categories,
            "party_member": row.party_member,
            "organisation_id": by_name.get(row.organisation) if row.organisation else None,
            "is_contact": row.contact,
        }
        if volunteer is None:
            volunteer = Volunteer(
                phone=row.phone,
                status="approved",
                source="roster",
                created_at=now,
                decided_at=now,
                **values,  # type: ignore[arg-type]
            )
            session.add(volunteer)
            summary.volunteers_added += 1
        elif _assign(volunteer, values):
            session.add(volunteer)
            summary.volunteers_updated += 1
        else:
            summary.volunteers_unchanged += 1
        if volunteer.account_id is None and telegram_id is not None:
            account = (
                await session.exec(select(Account).where(Account.telegram_id == telegram_id))
            ).first()
            if account is not None and account.id not in bound:
                volunteer.account_id = account.id
                bound.add(account.id)
                session.add(volunteer)
    await session.flush()
