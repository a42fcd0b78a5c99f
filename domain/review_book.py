"""The review table as an .xlsx workbook (for `/review` and `huiyin review`), and the words
both use for its parts. One sheet: a title, the weights, how the score is computed, then one row
per unit with every figure and part beside the score, so each score can be recomputed in the
sheet itself."""

from __future__ import annotations

from pathlib import Path
from typing import IO, TYPE_CHECKING

from domain.i18n import N_, Translator
from domain.labels import LEVEL_LABELS
from domain.review import Row, Table, Weights

if TYPE_CHECKING:  # openpyxl is loaded when a workbook is written, not when the bot starts
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.worksheet._write_only import WriteOnlyWorksheet

RATE_FORMAT = "0.0%"
SCORE_FORMAT = "0.0"

PART_LABELS: dict[str, str] = {
    "response": N_("response rate"),
    "resolution": N_("resolution rate"),
    "satisfaction": N_("residents' satisfaction"),
    "on_time": N_("on time"),
    "from_below": N_("rating from below"),
}

COLUMNS: tuple[tuple[str, float], ...] = (
    (N_("Level"), 16),
    (N_("Unit"), 24),
    (N_("Code"), 14),
    (N_("Needs received"), 10),
    (N_("Claimed"), 10),
    (N_("Resolved"), 10),
    (N_("Resolved on time"), 10),
    (N_("Passed up"), 10),
    (N_("Response rate"), 11),
    (N_("Resolution rate"), 11),
    (N_("Satisfaction rate"), 11),
    (N_("Rated by residents"), 10),
    (N_("On-time rate"), 11),
    (N_("Rating from below"), 11),
    (N_("Ratings from below"), 10),
    (N_("Weighted score"), 10),
)


def weights_text(t: Translator, weights: Weights) -> str:
    """ "residents' satisfaction 50% · rating from below 30% · on time 20%" """
    return " · ".join(
        f"{t._(PART_LABELS[name])} {round(100 * weights.share(name))}%" for name, _ in weights.parts
    )


def row_name(t: Translator, row: Row) -> str:
    if row.level == "grid":
        return row.name
    return row.name_en if t.language == "en" and row.name_en else row.name


def _rate(sheet: WriteOnlyWorksheet, value: float | None) -> object:
    from openpyxl.cell import WriteOnlyCell

    if value is None:
        return "—"  # no denominator: undefined, never 0% or 100%
    cell = WriteOnlyCell(sheet, value=value)
    cell.number_format = RATE_FORMAT
    return cell


def _bold(sheet: WriteOnlyWorksheet, value: str) -> WriteOnlyCell:
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    cell = WriteOnlyCell(sheet, value=value)
    cell.font = Font(bold=True)
    return cell


def write_review(table: Table, target: str | Path | IO[bytes], t: Translator, area: str) -> None:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    book = Workbook(write_only=True)
    title = "".join(c for c in t._("Review") if c not in "[]:*?/\\")[:31] or "Review"
    sheet = book.create_sheet(title)
    for index, (_, width) in enumerate(COLUMNS, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    sheet.append([_bold(sheet, t._("{area} · {period}", area=area, period=table.period.label))])
    sheet.append([t._("Weights: {weights}", weights=weights_text(t, table.weights))])
    sheet.append(
        [
            t._(
                "Weighted score = Σ weight × part ÷ Σ weight, over the parts that have a value "
                "(a part with nothing to measure, shown as —, is left out), × 100. The parts "
                "are the columns beside it; docs/metrics.md defines every figure."
            )
        ]
    )
    sheet.append([])
    header = []
    for name, _ in COLUMNS:
        cell = WriteOnlyCell(sheet, value=t._(name))
        cell.font = Font(bold=True)
        cell.alignment = Alignment(wrap_text=True, vertical="center")
        header.append(cell)
    sheet.append(header)
    for row in table.rows:
        score = row.score(table.weights)
        score_cell: object = "—"
        if score is not None:
            score_cell = WriteOnlyCell(sheet, value=round(score, 1))
            score_cell.number_format = SCORE_FORMAT  # type: ignore[attr-defined]
        sheet.append(
            [
                t._(LEVEL_LABELS.get(row.level, row.level)),
                row_name(t, row),
                row.unit_code,
                row.received,
                row.claimed,
                row.resolved,
                row.on_time,
                row.passed_up,
                _rate(sheet, row.part("response")),
                _rate(sheet, row.part("resolution")),
                _rate(sheet, row.part("satisfaction")),
                row.rated,
                _rate(sheet, row.part("on_time")),
                _rate(sheet, row.part("from_below")),
                row.below_rated,
                score_cell,
            ]
        )
    book.save(target)
