"""The ledger (需求台账): one row per request an area received in a period, as an .xlsx workbook.

`/export` in the chat and `huiyin export` at the terminal both write it with `write_ledger`.
The first sheet is the ledger (columns in `COLUMNS`, described in docs/ledger.md); the second
the period's figures (`domain.reports.build_report`, defined in docs/metrics.md): the
total, one level down, by category, and the requests received per day; the third, "Volunteers",
a row per volunteer and per unit that claimed needs of the area in the period
(`domain.claim_figures`, docs/metrics.md "Claimed needs").

A district's month can be tens of thousands of requests, so rows are read in batches (keyset
on the id, `BATCH` at a time) and streamed into an openpyxl write-only workbook: memory holds
one batch, never the whole ledger.

Phone numbers are masked (138****0001) except on requests the viewer holds (the ones whose
task card shows the full number to them), or for the office admin at the terminal.

No cell can carry a formula: names, comments and roster labels come from residents and staff,
and one starting with `=` (or `+`, `-`, `@`, which spreadsheets also read as a formula when the
cell is edited) would run in the coordinator's Excel or WPS, where `HYPERLINK(...)` can carry the
phone column away. Every text cell is written as a string (`text_cell`), and one that starts
like a formula is also marked quote-prefixed, the stored form of Excel's leading apostrophe: it
is shown as typed and stays text when edited.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, func, or_
from sqlalchemy.orm import aliased
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.areas import Area
from domain.claim_figures import ClaimantRow, Record, area_figures
from domain.i18n import N_, Translator
from domain.labels import (
    LEVEL_LABELS,
    NOTE_LABELS,
    STATUS_LABELS,
    category_label,
    kind_label,
    mask_phone,
    unit_label,
)
from domain.lifecycle import Action, Level
from domain.metrics import DONE, NOT_COUNTED, Rates, responded_in_time
from domain.reports import Figures, Period, Report, build_report
from domain.requests import WHY_RESOLVE_OVERDUE
from domain.verdicts import BY_BENEFICIARY, BY_REPORTER, BY_STAFF
from storage.models import Account, Beneficiary, Request, RequestEvent, Staff, Unit

if TYPE_CHECKING:  # openpyxl is loaded when a workbook is written, not when the bot starts
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.worksheet._write_only import WriteOnlyWorksheet

BATCH = 1000
DATE_FORMAT = "yyyy-mm-dd hh:mm"
DAY_FORMAT = "yyyy-mm-dd"
RATE_FORMAT = "0.0%"

Kind = Literal["text", "datetime", "number"]

# What Excel, WPS and LibreOffice take as the start of a formula (fullwidth forms included:
# a Chinese input method types them, and Excel converts them), and the control characters
# that can hide one behind them.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "＝", "＋", "－", "＠")


@dataclass(frozen=True, slots=True)
class Column:
    header: str  # message id, shown in the viewer's language
    width: float  # in characters; a CJK character counts about two
    kind: Kind = "text"


COLUMNS: tuple[Column, ...] = (
    Column(N_("Reference no."), 11),
    Column(N_("Received at"), 17, "datetime"),
    Column(N_("Accepted at"), 17, "datetime"),
    Column(N_("Resolved at"), 17, "datetime"),
    Column(N_("Closed at"), 17, "datetime"),
    Column(N_("Type of need"), 12),
    Column(N_("Category"), 16),
    Column(N_("Beneficiary"), 12),
    Column(N_("Phone"), 14),
    Column(N_("Reported by"), 14),
    Column(N_("Grid"), 22),
    Column(N_("Assignee"), 12),
    Column(N_("Level"), 14),
    Column(N_("Status"), 14),
    Column(N_("Priority"), 10),
    Column(N_("Times reopened"), 9, "number"),
    Column(N_("Accept deadline"), 17, "datetime"),
    Column(N_("Resolve deadline"), 17, "datetime"),
    Column(N_("Accepted on time"), 11),
    Column(N_("Resolved on time"), 11),
    Column(N_("Solved"), 10),
    Column(N_("Satisfaction"), 12),
    Column(N_("Verdict given by"), 14),
    Column(N_("Verdict comment"), 40),
    # A shared need (共性需求): how many more residents said "me too" (domain/shared.py).
    Column(N_("Supporters"), 9, "number"),
)

Outcome = Literal["met", "missed", "pending", ""]
OUTCOME_LABELS: dict[str, str] = {
    "met": N_("met"),
    "missed": N_("missed"),
    "pending": N_("pending"),
}
PRIORITY_NAMES: dict[str, str] = {
    "urgent": NOTE_LABELS["priority:urgent"],
    "complex": NOTE_LABELS["priority:complex"],
    "normal": N_("normal"),
}
VERDICT_BY_LABELS: dict[str, str] = {
    "resident": N_("the resident"),
    "proxy": N_("family member (proxy)"),
    BY_STAFF: N_("staff, after a call"),
}


def accept_outcome(request: Request, now: datetime) -> Outcome:
    """Whether the first holder's accept deadline was met (the response rate's rule), missed
    (accepted late, or not accepted and the deadline has passed), or is still ahead."""
    if responded_in_time(request):
        return "met"
    if request.responded_at is not None:
        return "missed"
    if request.status in NOT_COUNTED:
        return ""
    if request.respond_by is not None and request.respond_by <= now:
        return "missed"
    return "pending"


def resolve_outcome(request: Request, breached: bool, now: datetime) -> Outcome:
    """Whether the request was resolved without a resolve deadline passing.

    A holder's resolve deadline (`resolve_due_at`) is cleared when the request is resolved, so
    a passed one is read from the timeline (`breached`: an escalation or an overdue notice "not
    resolved in time"). Missed: a deadline passed at any level, or the current one has passed
    and the sweep has not acted yet. Met: resolved or closed with none passed. Pending: open
    with its deadline ahead (or its clock paused, or not started)."""
    if breached:
        return "missed"
    if request.status in DONE:
        return "met"
    if request.status in NOT_COUNTED:
        return ""
    if (
        request.paused_at is None
        and request.resolve_due_at is not None
        and request.resolve_due_at <= now
    ):
        return "missed"
    return "pending"


def resolve_deadline(request: Request) -> datetime | None:
    """The resolve deadline the ledger shows: the current holder's while the request is open;
    once resolved or closed, the one "Resolved on time" was measured against: the first that
    passed, if one did, else the holder's deadline when it was resolved."""
    if request.status in DONE:
        return request.resolve_missed_due_at or request.resolved_due_at
    return request.resolve_due_at


def verdict_by(request: Request, beneficiary: Beneficiary | None) -> str:
    """ "resident", "proxy" (a family member who reported it) or "staff" (after a call)."""
    if request.verdict_by == BY_BENEFICIARY:
        return "resident"
    if request.verdict_by == BY_REPORTER:
        return "resident" if beneficiary is None or beneficiary.is_self else "proxy"
    return request.verdict_by or ""


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who the ledger is for: full phone numbers on the requests `staff_id` holds, or on all
    of them for the office admin at the terminal (`all_phones`)."""

    staff_id: int | None = None
    all_phones: bool = False

    def sees_phone(self, request: Request) -> bool:
        return self.all_phones or (
            self.staff_id is not None and request.assignee_staff_id == self.staff_id
        )


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """One request with what the ledger shows of it."""

    request: Request
    beneficiary: Beneficiary | None
    reporter: Account | None
    grid: Unit | None
    assignee: Staff | None
    resolve_breached: bool


def _local(moment: datetime | None, zone: ZoneInfo) -> datetime | None:
    """Excel has no time zones: a naive local time, as the district reads it."""
    return moment.astimezone(zone).replace(tzinfo=None) if moment else None


def row_values(
    row: LedgerRow, t: Translator, zone: ZoneInfo, viewer: Viewer, now: datetime
) -> list[object]:
    """The cells of one request, in the order of `COLUMNS`."""
    request = row.request
    beneficiary = row.beneficiary
    phone = beneficiary.phone if beneficiary is not None else None
    if phone and not viewer.sees_phone(request):
        phone = mask_phone(phone)
    outcomes = (accept_outcome(request, now), resolve_outcome(request, row.resolve_breached, now))
    solved = (
        "" if request.solved is None else NOTE_LABELS[f"solved:{'y' if request.solved else 'n'}"]
    )
    satisfaction = NOTE_LABELS.get(f"satisfaction:{request.satisfaction}", "")
    by = verdict_by(request, beneficiary)
    return [
        request.reference,
        _local(request.created_at, zone),
        _local(request.accepted_at, zone),
        _local(request.resolved_at, zone),
        _local(request.closed_at, zone),
        kind_label(t, request.kind),
        category_label(t, request.category),
        beneficiary.name if beneficiary is not None else "",
        phone or "",
        row.reporter.display_name if row.reporter is not None else "",
        unit_label(t, row.grid) if row.grid is not None else request.grid_code,
        row.assignee.name if row.assignee is not None else "",
        t._(LEVEL_LABELS.get(request.level, request.level)),
        t._(STATUS_LABELS.get(request.status, request.status)),
        t._(PRIORITY_NAMES.get(request.priority, request.priority)),
        request.reopen_count,
        _local(request.respond_by, zone),
        _local(resolve_deadline(request), zone),
        *(t._(OUTCOME_LABELS[o]) if o else "" for o in outcomes),
        t._(solved) if solved else "",
        t._(satisfaction) if satisfaction else "",
        t._(VERDICT_BY_LABELS[by]) if by in VERDICT_BY_LABELS else by,
        request.verdict_comment or "",
        request.supporter_count,
    ]


def in_ledger(area: Area, start: datetime, end: datetime) -> ColumnElement[bool]:
    """The requests a ledger lists: those of `area` received in [start, end)."""
    return and_(area.clause(), col(Request.created_at) >= start, col(Request.created_at) < end)


async def ledger_size(session: AsyncSession, area: Area, start: datetime, end: datetime) -> int:
    """How many rows the ledger will have (one count, before anything is built)."""
    statement = select(func.count()).select_from(Request).where(in_ledger(area, start, end))
    return int((await session.exec(statement)).one())


async def ledger_rows(
    session: AsyncSession, area: Area, start: datetime, end: datetime
) -> AsyncIterator[LedgerRow]:
    """The requests of `area` received in [start, end), oldest first, read `BATCH` at a time."""
    assignee = aliased(Staff)
    last_id = 0
    while True:
        query = (
            select(Request, Beneficiary, Account, Unit, assignee)
            .outerjoin(Beneficiary, col(Beneficiary.id) == col(Request.beneficiary_id))
            .outerjoin(Account, col(Account.id) == col(Request.reporter_account_id))
            .outerjoin(Unit, col(Unit.code) == col(Request.grid_code))
            .outerjoin(assignee, col(assignee.id) == col(Request.assignee_staff_id))
            .where(in_ledger(area, start, end))
            .where(col(Request.id) > last_id)
            .order_by(col(Request.id))
            .limit(BATCH)
        )
        batch = list((await session.exec(query)).all())
        if not batch:
            return
        ids = [request.id for request, *_ in batch if request.id is not None]
        breached = await resolve_breaches(session, ids)
        for request, beneficiary, reporter, grid, holder in batch:
            yield LedgerRow(request, beneficiary, reporter, grid, holder, request.id in breached)
        last_id = ids[-1]
        if len(batch) < BATCH:
            return


async def resolve_breaches(session: AsyncSession, request_ids: Sequence[int]) -> set[int]:
    """Which of the requests had a resolve deadline pass (escalated or flagged overdue)."""
    if not request_ids:
        return set()
    rows = await session.exec(
        select(RequestEvent.request_id)
        .where(col(RequestEvent.request_id).in_(list(request_ids)))
        .where(col(RequestEvent.action).in_([Action.ESCALATE.value, Action.OVERDUE.value]))
        .where(
            or_(
                col(RequestEvent.note) == WHY_RESOLVE_OVERDUE,
                col(RequestEvent.note).startswith(WHY_RESOLVE_OVERDUE + "\n", autoescape=True),
            )
        )
        .distinct()
    )
    return set(rows.all())


def text_cell(sheet: WriteOnlyWorksheet, value: str) -> WriteOnlyCell:
    """A cell holding `value` as a string, never as a formula (see the module's note)."""
    from openpyxl.cell import WriteOnlyCell

    cell = WriteOnlyCell(sheet, value=value)
    cell.data_type = "s"  # openpyxl would otherwise write "=..." as a formula
    if value.startswith(FORMULA_STARTS):
        cell.quotePrefix = True
    return cell


def _cell(sheet: WriteOnlyWorksheet, value: object, kind: Kind) -> object:
    from openpyxl.cell import WriteOnlyCell

    if isinstance(value, str):
        return text_cell(sheet, value) if value else value
    if kind == "datetime" and value is not None:
        cell = WriteOnlyCell(sheet, value=value)
        cell.number_format = DATE_FORMAT
        return cell
    return value


def _header(sheet: WriteOnlyWorksheet, titles: Sequence[str]) -> list[WriteOnlyCell]:
    from openpyxl.styles import Alignment, Font

    cells = []
    for title in titles:
        cell = text_cell(sheet, title)
        cell.font = Font(bold=True)
        cell.alignment = Alignment(wrap_text=True, vertical="center")
        cells.append(cell)
    return cells


def _sheet_title(t: Translator, message: str) -> str:
    # Excel refuses sheet names over 31 characters or with []:*?/\ in them.
    title = t._(message)
    return "".join(c for c in title if c not in "[]:*?/\\")[:31] or "Sheet"


async def write_ledger(
    session: AsyncSession,
    area: Area,
    period: Period,
    target: str | Path | IO[bytes],
    *,
    t: Translator,
    zone: ZoneInfo,
    viewer: Viewer,
    now: datetime,
) -> int:
    """Write the ledger workbook (the ledger, then the figures) to `target`, a path or a binary
    file; return the number of requests in it."""
    from openpyxl import Workbook
    from openpyxl.utils import get_column_letter

    book = Workbook(write_only=True)
    sheet = book.create_sheet(_sheet_title(t, N_("Ledger")))
    for index, column in enumerate(COLUMNS, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = column.width
    sheet.freeze_panes = "A2"
    sheet.append(_header(sheet, [t._(column.header) for column in COLUMNS]))

    def append(rows: list[LedgerRow]) -> None:
        for row in rows:
            values = row_values(row, t, zone, viewer, now)
            sheet.append([_cell(sheet, v, c.kind) for v, c in zip(values, COLUMNS, strict=True)])

    # Writing cells is most of the work (a few tenths of a millisecond a row): each batch is
    # written in a thread, so the event loop keeps serving other chats meanwhile.
    count = 0
    pending: list[LedgerRow] = []
    async for row in ledger_rows(session, area, period.start, period.end):
        pending.append(row)
        if len(pending) >= BATCH:
            await asyncio.to_thread(append, pending)
            count, pending = count + len(pending), []
    if pending:
        await asyncio.to_thread(append, pending)
        count += len(pending)
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(COLUMNS))}{count + 1}"
    report = await build_report(session, area, period, now, zone)
    codes = [area.unit_code, *(code for code, _ in report.by_part)]
    units = (await session.exec(select(Unit).where(col(Unit.code).in_(codes)))).all()
    write_figures(book, report, t, {unit.code: unit for unit in units})
    total, claimants = await area_figures(session, area.clause(), period.start, period.end)
    places = {r.unit_code for r in claimants if r.unit_code}
    named = (await session.exec(select(Unit).where(col(Unit.code).in_(sorted(places))))).all()
    write_volunteers(book, t, total, claimants, {unit.code: unit for unit in named})
    await asyncio.to_thread(book.save, target)
    return count


FIGURE_COLUMNS: tuple[tuple[str, float], ...] = (
    (N_("Unit or category"), 26),
    (N_("Requests received"), 10),
    (N_("Accepted"), 10),
    (N_("Resolved"), 10),
    (N_("Closed"), 10),
    (N_("Still open"), 10),
    (N_("Overdue"), 10),
    (N_("Response rate"), 12),
    (N_("Resolution rate"), 12),
    (N_("Satisfaction rate"), 12),
)


def parts_heading(level: Level) -> str:
    """What the parts of an area are called: the level below its unit."""
    if level is Level.COMMUNITY:
        return N_("By grid")
    if level is Level.TOWN:
        return N_("By community")
    return N_("By town")


def _rate(sheet: WriteOnlyWorksheet, value: float | None) -> object:
    from openpyxl.cell import WriteOnlyCell

    if value is None:
        return text_cell(
            sheet, "—"
        )  # an empty denominator: undefined, never 0% or 100% (docs/metrics.md)
    cell = WriteOnlyCell(sheet, value=value)
    cell.number_format = RATE_FORMAT
    return cell


def _figures_row(sheet: WriteOnlyWorksheet, name: str, figures: Figures) -> list[object]:
    rates: Rates = figures.rates
    return [
        text_cell(sheet, name),
        figures.received,
        figures.accepted,
        figures.resolved,
        figures.closed,
        figures.open,
        figures.overdue,
        _rate(sheet, rates.response),
        _rate(sheet, rates.resolution),
        _rate(sheet, rates.satisfaction),
    ]


def _bold(sheet: WriteOnlyWorksheet, value: str) -> WriteOnlyCell:
    from openpyxl.styles import Font

    cell = text_cell(sheet, value)
    cell.font = Font(bold=True)
    return cell


def write_figures(book: Workbook, report: Report, t: Translator, units: dict[str, Unit]) -> None:
    """The second sheet: the period's figures, as /stats shows them, for the same cohort."""
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.utils import get_column_letter

    sheet = book.create_sheet(_sheet_title(t, N_("Statistics")))
    for index, (_, width) in enumerate(FIGURE_COLUMNS, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    area = report.area
    sheet.append(
        [
            _bold(
                sheet,
                t._(
                    "{area} · {period}",
                    area=unit_label(t, units.get(area.unit_code)),
                    period=report.period.label,
                ),
            )
        ]
    )
    if area.categories is not None:
        sheet.append([text_cell(sheet, t._("Only the categories in your remit are counted."))])
    sheet.append([])
    sheet.append(_header(sheet, [t._(title) for title, _ in FIGURE_COLUMNS]))
    total = _figures_row(sheet, t._("Total"), report.total)
    sheet.append([_bold(sheet, t._("Total")), *total[1:]])
    sheet.append([])
    sheet.append([_bold(sheet, t._(parts_heading(area.level)))])
    for code, figures in report.by_part:
        sheet.append(
            _figures_row(sheet, unit_label(t, units.get(code)) if code in units else code, figures)
        )
    sheet.append([])
    sheet.append([_bold(sheet, t._("By category"))])
    for code, figures in report.by_category:
        sheet.append(_figures_row(sheet, category_label(t, code), figures))
    sheet.append([])
    sheet.append([_bold(sheet, t._("Requests received per day"))])
    sheet.append(_header(sheet, [t._("Date"), t._("Requests received")]))
    for day, received in report.per_day:
        cell = WriteOnlyCell(sheet, value=day)
        cell.number_format = DAY_FORMAT
        sheet.append([cell, received])


VOLUNTEER_COLUMNS: tuple[tuple[str, float], ...] = (
    (N_("Volunteer or unit"), 24),
    (N_("Kind"), 10),
    (N_("Serves"), 22),
    (N_("Party member"), 10),
    (N_("Claims"), 10),
    (N_("Done"), 10),
    (N_("Hours"), 10),
    (N_("Rated"), 10),
    (N_("Satisfied"), 10),
    (N_("Satisfaction rate"), 12),
)
CLAIMANT_KINDS: dict[str, str] = {"volunteer": N_("Volunteer"), "unit": N_("Unit")}


def _record_cells(sheet: WriteOnlyWorksheet, record: Record) -> list[object]:
    return [
        record.claims,
        record.done,
        record.hours,
        record.rated,
        record.satisfied,
        _rate(sheet, record.satisfaction_rate if record.rated else None),
    ]


def write_volunteers(
    book: Workbook,
    t: Translator,
    total: Record,
    rows: Sequence[ClaimantRow],
    units: dict[str, Unit],
) -> None:
    """The third sheet: who claimed the area's needs in the period, and how it went. Names are
    text cells (never a formula), like every other sheet's."""
    from openpyxl.utils import get_column_letter

    sheet = book.create_sheet(_sheet_title(t, N_("Volunteers")))
    for index, (_, width) in enumerate(VOLUNTEER_COLUMNS, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    sheet.freeze_panes = "A2"
    sheet.append(_header(sheet, [t._(title) for title, _ in VOLUNTEER_COLUMNS]))
    for row in rows:
        place = units.get(row.unit_code)
        serves = unit_label(t, place) if place else row.unit_code or t._("The whole district")
        sheet.append(
            [
                text_cell(sheet, row.name),
                text_cell(sheet, t._(CLAIMANT_KINDS[row.kind])),
                text_cell(sheet, serves),
                text_cell(sheet, t._("Yes") if row.party_member else ""),
                *_record_cells(sheet, row.record),
            ]
        )
    sheet.append([_bold(sheet, t._("Total")), "", "", "", *_record_cells(sheet, total)])
