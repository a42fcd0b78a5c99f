"""The review table (分层考核) for a seeded month, checked against figures worked out by hand
(docs/metrics.md, "The review table", walks through the same requests): each unit's
received, claimed, resolved, on time, passed up, the residents' rates on its own work, the
rating from below and the weighted score; the scope each role sees; `/review` in the chat (top
and bottom, the .xlsx) and `huiyin review` at the terminal; periods and weights."""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from sqlmodel import select

from bot.cli import build_parser, review_command
from bot.settings import SettingsError, load_settings
from domain.clock import ManualClock
from domain.i18n import translator
from domain.lifecycle import Level
from domain.review import (
    DEFAULT_WEIGHTS,
    Row,
    Scope,
    Table,
    Weights,
    build_table,
    parse_review_period,
    scope_of,
    scope_of_unit,
)
from handlers.review import summary
from storage.database import Database
from storage.models import (
    Account,
    Beneficiary,
    Request,
    RequestEvent,
    Staff,
    UpwardRating,
)
from tests.conftest import everyone_opened
from tests.harness import Harness

ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 30, 10, 0, tzinfo=ZONE).astimezone(UTC)
HU = 700000017  # town officer, Jiangbei Street
XU = 700000011  # coordinator, Tianhe community
LUO = 700000022  # district housing bureau
ADMIN = 700000026
WANG = 700000001


def day(d: int, hour: int = 10, month: int = 11) -> datetime:
    return datetime(2026, month, d, hour, 0, tzinfo=ZONE).astimezone(UTC)


@dataclass
class Step:
    action: str
    by: str | None = None  # who acted (a name in the roster)
    to: str | None = None  # the holder afterwards
    note: str | None = None
    levels: tuple[str, str] | None = None  # from, to


async def seed(db: Database) -> None:
    """The month of Jiangbei Street worked through in docs/metrics.md (and R6 in October)."""
    async with db.transaction() as session:
        people = {s.name: s for s in (await session.exec(select(Staff))).all()}
        resident = Account(telegram_id=990001, chat_id=990001, created_at=day(1))
        session.add(resident)
        await session.flush()
        assert resident.id is not None
        beneficiaries: dict[str, int] = {}

        async def beneficiary(grid: str) -> int:
            if grid not in beneficiaries:
                row = Beneficiary(
                    owner_account_id=resident.id or 0,
                    is_self=True,
                    name="居民",
                    grid_code=grid,
                    created_at=day(1),
                )
                session.add(row)
                await session.flush()
                beneficiaries[grid] = row.id or 0
            return beneficiaries[grid]

        async def request(grid: str, created: datetime, status: str, steps: list[Step]) -> Request:
            row = Request(
                kind="living",
                category="repair",
                reporter_account_id=resident.id or 0,
                beneficiary_id=await beneficiary(grid),
                grid_code=grid,
                status=status,
                created_at=created,
                updated_at=created,
            )
            session.add(row)
            await session.flush()
            assert row.id is not None
            holder: int | None = None
            for n, step in enumerate(steps):
                if step.to is not None:
                    holder = people[step.to].id
                from_level, to_level = step.levels or (None, None)
                session.add(
                    RequestEvent(
                        request_id=row.id,
                        at=created + timedelta(hours=n),
                        action=step.action,
                        actor_staff_id=people[step.by].id if step.by else None,
                        assignee_staff_id=holder,
                        note=step.note,
                        from_level=from_level,
                        to_level=to_level,
                    )
                )
            return row

        wang, zhang, liu, chen = "王建华", "张伟", "刘芳", "陈磊"
        xu, hu, luo = "徐国庆", "胡海涛", "罗斌"
        # R1: Wang takes it, resolves it; satisfied.
        await request(
            "QS-JB-TH-01",
            day(2),
            "closed",
            [
                Step("route", to=wang),
                Step("accept", by=wang),
                Step("resolve", by=wang),
                Step("verdict", note="solved:y\nsatisfaction:satisfied\nby:reporter"),
                Step("close"),
            ],
        )
        # R2: Wang passes it up before accepting; Tianhe community resolves it; fairly
        # satisfied; Wang rates the community "satisfied".
        r2 = await request(
            "QS-JB-TH-01",
            day(3),
            "closed",
            [
                Step("route", to=wang),
                Step("decline", by=wang, to=xu, note="pipes", levels=("grid", "community")),
                Step("accept", by=xu),
                Step("resolve", by=xu),
                Step("verdict", note="solved:y\nsatisfaction:fairly\nby:reporter"),
                Step("close"),
            ],
        )
        # R3: nobody accepts at the grid or the community (escalated twice); the town accepts,
        # misses its deadline with no one above to take it, resolves late; not satisfied:
        # reopened to the housing bureau, which resolves it; satisfied. The grid rates the
        # town "not satisfied"; the community's question lapsed.
        r3 = await request(
            "QS-JB-TH-02",
            day(4),
            "closed",
            [
                Step("route", to=zhang),
                Step("escalate", to=xu, note="why:accept_overdue", levels=("grid", "community")),
                Step("escalate", to=hu, note="why:accept_overdue", levels=("community", "town")),
                Step("accept", by=hu),
                Step("overdue", note="why:resolve_overdue\nwhy:nobody_above"),
                Step("resolve", by=hu),
                Step("verdict", note="solved:y\nsatisfaction:not_satisfied\nby:reporter"),
                Step("reopen", to=luo, note="why:reopened", levels=("town", "department")),
                Step("accept", by=luo),
                Step("resolve", by=luo),
                Step("verdict", note="solved:y\nsatisfaction:satisfied\nby:reporter"),
                Step("close"),
            ],
        )
        # R4: Liu accepts it; still being handled.
        await request(
            "QS-JB-LY-01", day(5), "in_progress", [Step("route", to=liu), Step("accept", by=liu)]
        )
        # R5: withdrawn by the resident: not counted anywhere.
        await request(
            "QS-JB-LY-01",
            day(6),
            "cancelled",
            [Step("route", to=liu), Step("accept", by=liu), Step("cancel")],
        )
        # R6: October: outside the period.
        await request(
            "QS-JB-TH-01",
            day(20, month=10),
            "resolved",
            [Step("route", to=wang), Step("accept", by=wang), Step("resolve", by=wang)],
        )
        # R7: Chen resolves it in time; no verdict yet.
        await request(
            "QS-JB-LY-02",
            day(7),
            "resolved",
            [Step("route", to=chen), Step("accept", by=chen), Step("resolve", by=chen)],
        )
        # R8: Chen's accept deadline passes (no one above reachable), then accepts and resolves.
        await request(
            "QS-JB-LY-02",
            day(8),
            "resolved",
            [
                Step("route", to=chen),
                Step("overdue", note="why:accept_overdue\nwhy:nobody_above"),
                Step("accept", by=chen),
                Step("resolve", by=chen),
            ],
        )
        for request_row, rater_unit, rated_unit, state, rating in (
            (r2, "QS-JB-TH-01", "QS-JB-TH", "rated", "satisfied"),
            (r3, "QS-JB-TH-02", "QS-JB", "rated", "not_satisfied"),
            (r3, "QS-JB-TH", "QS-JB", "lapsed", None),
        ):
            session.add(
                UpwardRating(
                    request_id=request_row.id or 0,
                    rater_unit_code=rater_unit,
                    rater_level="grid" if rater_unit.count("-") == 3 else "community",
                    rated_unit_code=rated_unit,
                    rated_level="community" if rated_unit == "QS-JB-TH" else "town",
                    how="pass_up",
                    state=state,
                    rating=rating,
                    created_at=day(20),
                )
            )


FIELDS = (
    "received",
    "claimed",
    "responded",
    "resolved",
    "on_time",
    "passed_up",
    "rated",
    "satisfied",
    "below_rated",
    "below_satisfied",
)
# Worked out by hand from the requests above (docs/metrics.md, "Worked example").
EXPECTED: dict[str, tuple[int, ...]] = {
    #             recv claim resp resol ontime up rated sat below below_sat
    "QS-JB": (1, 1, 1, 0, 0, 0, 1, 0, 1, 0),
    "QS-JB-TH": (2, 1, 1, 1, 1, 1, 1, 1, 1, 1),
    "QS-JB-LY": (0,) * 10,
    "QS-JB-QJ": (0,) * 10,
    "王建华": (2, 1, 1, 1, 1, 1, 1, 1, 0, 0),
    "李秀英": (0,) * 10,
    "张伟": (1, 0, 0, 0, 0, 1, 0, 0, 0, 0),
    "刘芳": (1, 1, 1, 0, 0, 0, 0, 0, 0, 0),
    "陈磊": (2, 2, 1, 2, 1, 0, 0, 0, 0, 0),
    "杨静": (0,) * 10,
}
# Default weights: residents' satisfaction 50, from below 30, on time 20.
SCORES: dict[str, float | None] = {
    "QS-JB": 0.0,  # satisfaction 0/1, from below 0/1, on time —
    "QS-JB-TH": 100.0,
    "QS-JB-LY": None,
    "QS-JB-QJ": None,
    "王建华": 100.0,  # satisfaction 1/1 (50), on time 1/1 (20): 70/70
    "李秀英": None,
    "张伟": None,
    "刘芳": None,
    "陈磊": 50.0,  # on time 1/2 only
    "杨静": None,
}


def key_name(row: Row) -> str:
    return row.unit_code if row.key[0] == "unit" else row.name


async def staff_of(db: Database, telegram_id: int) -> Staff:
    async with db.session() as session:
        return (await session.exec(select(Staff).where(Staff.telegram_id == telegram_id))).one()


@pytest.fixture
async def seeded(db: Database) -> Database:
    await seed(db)
    return db


async def table_for(
    db: Database, code: str, period: str = "2026-11", weights: Weights = DEFAULT_WEIGHTS
):
    async with db.session() as session:
        scope = await scope_of_unit(session, code)
        assert scope is not None
        found = parse_review_period(period, NOW, ZONE)
        assert found is not None
        return await build_table(session, scope, found, weights)


async def test_a_towns_month_equals_the_hand_worked_figures(seeded: Database) -> None:
    table = await table_for(seeded, "QS-JB")
    figures = {key_name(r): tuple(getattr(r, f) for f in FIELDS) for r in table.rows}
    assert figures == EXPECTED
    scores = {key_name(r): r.score(table.weights) for r in table.rows}
    assert scores == SCORES
    # The parts shown beside each score are the rates of the same counts.
    hu = next(r for r in table.rows if r.unit_code == "QS-JB")
    assert (hu.part("response"), hu.part("resolution"), hu.part("satisfaction")) == (1, 0, 0)
    assert (hu.part("on_time"), hu.part("from_below")) == (None, 0)
    # Order: the town, its communities, then the grid members grid by grid.
    assert [key_name(r) for r in table.rows] == [
        "QS-JB",
        "QS-JB-LY",
        "QS-JB-QJ",
        "QS-JB-TH",
        "刘芳",
        "陈磊",
        "杨静",
        "王建华",
        "李秀英",
        "张伟",
    ]
    assert [key_name(r) for r in table.ranked()] == ["QS-JB-TH"]


async def test_other_weights_give_other_scores_from_the_same_parts(seeded: Database) -> None:
    weights = Weights.parse("satisfaction=2, on_time=1, response=1")
    table = await table_for(seeded, "QS-JB", weights=weights)
    wang = next(r for r in table.rows if r.name == "王建华")
    # satisfaction 1 × 2 + on time 1 × 1 + response 1/2 × 1, over 4
    assert wang.score(weights) == 87.5


async def test_the_housing_bureau_and_the_district(seeded: Database) -> None:
    bureau = await table_for(seeded, "QS-ZJJ")
    (row,) = bureau.rows
    assert tuple(getattr(row, f) for f in FIELDS) == (1, 1, 1, 1, 1, 0, 1, 1, 0, 0)
    district = await table_for(seeded, "QS")
    codes = [key_name(r) for r in district.rows]
    # Top down the ladder: the district, its departments, towns, communities, grid members.
    assert codes[:9] == [
        "QS",
        "QS-CGJ",
        "QS-MZJ",
        "QS-NYJ",
        "QS-RSJ",
        "QS-SFJ",
        "QS-WJJ",
        "QS-ZJJ",
        "QS-FM",
    ]
    assert "QS-ZJJ" in codes and "QS-JB-TH" in codes and "王建华" in codes
    jb = next(r for r in district.rows if r.unit_code == "QS-JB" and r.key[0] == "unit")
    assert tuple(getattr(jb, f) for f in FIELDS) == EXPECTED["QS-JB"]
    # The district's ranking is of its towns and departments.
    assert {r.level for r in district.ranked()} <= {"town", "department"}
    assert [key_name(r) for r in district.ranked()] == ["QS-ZJJ", "QS-JB"]


async def test_each_role_sees_its_own_scope(seeded: Database) -> None:
    async with seeded.session() as session:

        async def rows_of(telegram_id: int) -> list[str]:
            staff = (
                await session.exec(select(Staff).where(Staff.telegram_id == telegram_id))
            ).one()
            scope = await scope_of(session, staff)
            assert scope is not None
            period = parse_review_period("2026-11", NOW, ZONE)
            assert period is not None
            table = await build_table(session, scope, period, DEFAULT_WEIGHTS)
            return [key_name(r) for r in table.rows]

        # A village (community) sees its own row and its grids' members.
        assert await rows_of(XU) == ["QS-JB-TH", "王建华", "李秀英", "张伟"]
        # A town sees itself, its villages and their grid members.
        town = await rows_of(HU)
        assert town[:4] == ["QS-JB", "QS-JB-LY", "QS-JB-QJ", "QS-JB-TH"]
        assert "QS-FM-MJ" not in town and "赵军" not in town
        # A department sees its own row.
        assert await rows_of(LUO) == ["QS-ZJJ"]
        # A grid member has no review.
        assert await scope_of(session, await staff_of(seeded, WANG)) is None


def test_periods() -> None:
    def label(text: str) -> str | None:
        found = parse_review_period(text, NOW, ZONE)
        return None if found is None else found.label

    assert label("2026") == "2026"
    assert label("") == "2026" and label("今年") == "2026"
    year = parse_review_period("2026", NOW, ZONE)
    assert year is not None
    assert year.start == datetime(2026, 1, 1, tzinfo=ZONE).astimezone(UTC)
    assert year.end == datetime(2026, 12, 1, tzinfo=ZONE).astimezone(UTC)  # up to today
    assert label("2026-Q3") == "2026-Q3" and label("2026q4") == "2026-Q4"
    assert label("quarter") == "2026-Q4" and label("本季度") == "2026-Q4"
    assert label("2026-01-01..2026-06-30") == "2026-01-01 – 2026-06-30"
    assert label("2026-1-1~2026-1-31") == "2026-01-01 – 2026-01-31"
    assert label("2026-11") == "2026-11" and label("month") == "2026-11"
    for bad in ("2027", "2027-Q1", "2026-Q5", "2026-06-30..2026-01-01", "1999", "soon"):
        assert label(bad) is None, bad


def test_weights_are_checked() -> None:
    assert DEFAULT_WEIGHTS.parts == (
        ("satisfaction", 50.0),
        ("on_time", 20.0),
        ("from_below", 30.0),
    )
    assert Weights.parse("on_time=1,satisfaction=1").share("on_time") == 0.5
    for bad in ("", "kindness=3", "satisfaction=0", "satisfaction=abc", "on_time=1,on_time=2"):
        with pytest.raises(ValueError):
            Weights.parse(bad)
    with pytest.raises(SettingsError, match="HUIYIN_REVIEW_WEIGHTS"):
        load_settings(_env_file=None, review_weights="kindness=3")
    assert load_settings(_env_file=None, review_weights="satisfaction=1").weights.parts == (
        ("satisfaction", 1.0),
    )


# In the chat, and at the terminal -------------------------------------------------------------


async def test_review_in_the_chat_for_a_town_officer(seeded: Database) -> None:
    harness = Harness(seeded, ManualClock(NOW))
    harness.languages[HU] = "en"
    await harness.say(HU, "/start")
    replies = await harness.say(HU, "/review 2026-11")
    text, document = replies[0], replies[1]
    assert text.text.startswith("📋 <b>Review of Jiangbei Street</b> · 2026-11")
    assert "Weights: residents' satisfaction 50% · on time 20% · rating from below 30%" in text.text
    assert (
        "<b>Jiangbei Street</b>: score 0.0 · satisfaction 0% (0/1) · from below 0% (0/1) · "
        "on time — · received 1, passed up 0"
    ) in text.text
    assert "1. <b>Tianhe Community</b>: score 100.0" in text.text
    assert document.message.upload_kind == "document"
    assert document.message.upload_name == "huiyin-review-QS-JB-2026-11.xlsx"
    sheet = load_workbook(io.BytesIO(document.message.upload_bytes or b"")).worksheets[0]
    rows = list(sheet.iter_rows(min_row=6, values_only=True))
    by_code = {(r[2] if r[0] != "grid" else r[1]): r for r in rows}
    town = by_code["QS-JB"]
    assert town[3:8] == (1, 1, 0, 0, 0)  # received, claimed, resolved, on time, passed up
    assert town[8:11] == (1, 0, 0)  # the three rates
    assert town[12:] == ("—", 0, 1, 0)  # on-time rate, from below (rate, count), score
    assert by_code["王建华"][3:8] == (2, 1, 1, 1, 1)

    # Bad input gets a polite answer; a grid member is told who /review is for.
    (usage,) = await harness.say(HU, "/review next-year")
    assert usage.text.startswith("Usage: /review [PERIOD]")
    harness.languages[WANG] = "en"
    await harness.say(WANG, "/start")
    (refused,) = await harness.say(WANG, "/review")
    assert refused.text.startswith("/review is for community coordinators")


async def test_the_district_admin_sees_towns_and_departments_ranked(seeded: Database) -> None:
    harness = Harness(seeded, ManualClock(NOW))
    harness.languages[ADMIN] = "zh-hans"
    await harness.say(ADMIN, "/start")
    text, document = await harness.say(ADMIN, "/review 2026")
    assert text.text.startswith("📋")
    assert "青石区" in text.text.split("\n")[0]
    ranked = [line for line in text.text.split("\n") if line[:3] in ("1. ", "2. ")]
    assert ranked[0].startswith("1. <b>区住建局</b>") and ranked[1].startswith("2. <b>江北街道</b>")
    assert document.message.upload_name == "huiyin-review-QS-2026.xlsx"


def test_more_than_ten_ranked_show_the_top_and_bottom_five() -> None:
    scope = Scope("QS-JB", Level.TOWN, ("QS-JB",), frozenset(), whole_district=False)
    period = parse_review_period("2026", NOW, ZONE)
    assert period is not None
    rows = [Row(("unit", "QS-JB"), "town", "江北街道", "Jiangbei Street", "QS-JB")]
    for n in range(12):  # village n: n of 11 residents satisfied
        rows.append(
            Row(
                ("unit", f"V{n:02d}"),
                "community",
                f"V{n:02d}",
                "",
                f"V{n:02d}",
                rated=11,
                satisfied=n,
            )
        )
    text = summary(translator("en"), Table(scope, period, DEFAULT_WEIGHTS, rows), "Jiangbei")
    lines = text.split("\n")
    top = lines.index("<b>Top five</b>")
    bottom = lines.index("<b>Bottom five</b>")
    assert [line.split("</b>")[0] for line in lines[top + 1 : top + 6]] == [
        f"{n}. <b>V{11 - n + 1:02d}" for n in range(1, 6)
    ]
    assert [line.split("</b>")[0] for line in lines[bottom + 1 : bottom + 6]] == [
        f"{n}. <b>V{12 - n:02d}" for n in range(8, 13)
    ]
    assert "V06" not in text and "V05" not in text  # the middle is in the file


def test_the_terminal_writes_the_same_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/cli.db"

    async def run(*args: str) -> int:
        parsed = build_parser().parse_args(["review", *args])
        db = Database(url)
        try:
            await db.upgrade()
            from storage.roster import import_roster, sample_district_dir

            await import_roster(db, sample_district_dir())
            await everyone_opened(db)
            await seed(db)
            return await review_command(
                db,
                load_settings(_env_file=None, database_url=url),
                parsed.unit,
                parsed.period,
                parsed.out,
                parsed.lang,
                ManualClock(NOW),
            )
        finally:
            await db.dispose()

    out = tmp_path / "review.xlsx"
    assert asyncio.run(run("--unit", "QS-JB-TH", "--period", "2026", "--out", str(out))) == 0
    assert capsys.readouterr().out.startswith(f"Wrote {out}: the review of QS-JB-TH for 2026")
    sheet = load_workbook(out).worksheets[0]
    assert sheet["A1"].value == "天河社区 · 2026"
    rows = list(sheet.iter_rows(min_row=6, values_only=True))
    assert [r[1] for r in rows] == ["天河社区", "王建华", "李秀英", "张伟"]
    assert rows[0][3:8] == (2, 1, 1, 1, 1)
    assert rows[0][-1] == 100.0
