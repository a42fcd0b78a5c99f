"""Posters for the village notice board (公示栏): one A4 page per grid with the grid's name, its
grid members' names and masked phones, a large QR code of the grid's deep link
(`https://t.me/<bot>?start=g_<code>`, which opens Huiyin already at that grid) and three lines of
instructions in large type. A poster for any other link (a volunteer or family join link) is the
same page with a title of one's own.

The QR code is drawn as vector squares (segno gives the modules), so it stays sharp at any print
size; the words use the chart's font rules (`domain.charts.font_for`). The PDF is written by
matplotlib, which the charts already use.
"""

from __future__ import annotations

import io
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import segno
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from domain.areas import units_below
from domain.charts import font_for
from domain.i18n import Translator
from domain.labels import mask_phone, unit_label
from storage.models import Staff, Unit

if TYPE_CHECKING:  # matplotlib is loaded when posters are drawn, not when the bot starts
    from matplotlib.figure import Figure
    from matplotlib.path import Path as MplPath

A4_INCHES = (8.27, 11.69)
A4_MM = (210.0, 297.0)
QR_MM = 130.0  # the code's side on paper, quiet zone included
GRID_PREFIX = "g_"
STEP_COLUMNS = 44  # what fits across A4 at 19 pt


def grid_link(bot_username: str, grid_code: str) -> str:
    return f"https://t.me/{bot_username.lstrip('@')}?start={GRID_PREFIX}{grid_code}"


@dataclass(frozen=True, slots=True)
class Poster:
    title: str  # large: the grid's name
    subtitle: str  # the place above it, or what the link is for
    people: str  # "网格员：黄丽 139****0008"
    link: str
    steps: tuple[str, str, str]
    heading: str


def qr_modules(link: str) -> list[list[bool]]:
    """The QR code's dark modules, quiet zone included (4 modules each side)."""
    code = segno.make(link, error="m", micro=False)
    return [[bool(cell) for cell in row] for row in code.matrix_iter(scale=1, border=4)]


def _qr_path(modules: Sequence[Sequence[bool]], left: float, bottom: float, side: float) -> MplPath:
    """One path of squares, a module each; row 0 at the top."""
    from matplotlib.path import Path as MplPath

    count = len(modules)
    size = side / count
    vertices: list[tuple[float, float]] = []
    codes: list[int] = []
    for r, row in enumerate(modules):
        y = bottom + side - (r + 1) * size
        c = 0
        while c < count:
            if not row[c]:
                c += 1
                continue
            start = c
            while c < count and row[c]:
                c += 1  # a run of dark modules is one rectangle
            x0, x1 = left + start * size, left + c * size
            vertices += [(x0, y), (x1, y), (x1, y + size), (x0, y + size), (x0, y)]
            codes += [MplPath.MOVETO, MplPath.LINETO, MplPath.LINETO, MplPath.LINETO]
            codes.append(MplPath.CLOSEPOLY)
    return MplPath(vertices, codes)


def display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def wrap(text: str, width: int) -> list[str]:
    """Lines of at most `width` columns (a Chinese character is two), broken at spaces where
    there are any."""
    lines: list[str] = []
    line = ""
    for word in re.findall(r"\S+\s*|\s+", text):
        pieces = [word] if display_width(word) <= width else list(word)
        for piece in pieces:
            if line and display_width(line + piece.rstrip()) > width:
                lines.append(line.rstrip())
                line = ""
            line += piece
    if line.strip():
        lines.append(line.rstrip())
    return lines or [""]


def _page(poster: Poster, font: Path | None) -> Figure:
    from matplotlib.figure import Figure
    from matplotlib.font_manager import FontProperties
    from matplotlib.patches import PathPatch, Rectangle

    figure = Figure(figsize=A4_INCHES)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.set_xlim(0, A4_MM[0])
    axes.set_ylim(0, A4_MM[1])
    axes.set_axis_off()

    def write(y: float, text: str, size: float, *, weight: str = "normal") -> None:
        properties = FontProperties(fname=str(font)) if font else FontProperties()
        properties.set_size(size)
        properties.set_weight(weight)
        axes.text(A4_MM[0] / 2, y, text, ha="center", va="center", fontproperties=properties)

    write(280, poster.heading, 30, weight="bold")
    write(264, poster.title, 26, weight="bold")
    write(252, poster.subtitle, 15)
    write(242, poster.people, 17)
    left = (A4_MM[0] - QR_MM) / 2
    bottom = 100.0
    axes.add_patch(Rectangle((left, bottom), QR_MM, QR_MM, facecolor="white", edgecolor="none"))
    path = _qr_path(qr_modules(poster.link), left, bottom, QR_MM)
    axes.add_patch(PathPatch(path, facecolor="black", edgecolor="none", antialiased=False))
    write(93, poster.link, 11)
    y = 78.0
    for step in poster.steps:
        for line in wrap(step, STEP_COLUMNS):
            write(y, line, 19)
            y -= 9.5
        y -= 4
    return figure


def posters_pdf(posters: Sequence[Poster]) -> bytes:
    """One A4 page per poster."""
    from matplotlib.backends.backend_pdf import PdfPages

    words = "".join(
        p.heading + p.title + p.subtitle + p.people + p.link + "".join(p.steps) for p in posters
    )
    font = font_for(words)
    buffer = io.BytesIO()
    with PdfPages(buffer, metadata={"Title": "Huiyin posters", "Creator": "Huiyin"}) as pdf:
        for poster in posters:
            pdf.savefig(_page(poster, font.path if font else None))
    return buffer.getvalue()


def steps(t: Translator) -> tuple[str, str, str]:
    return (
        t._("1. Scan the code with your phone's camera; it opens Huiyin in Telegram."),
        t._("2. Tap “Start” and agree: you are registered in this grid."),
        t._("3. Tell us what you or your family need: we answer every time."),
    )


async def grid_posters(
    session: AsyncSession, t: Translator, unit_code: str, bot_username: str
) -> list[Poster]:
    """A poster for every grid below `unit_code` (or for the grid itself), in roster order;
    empty when there is no such unit."""
    unit = await session.get(Unit, unit_code)
    if unit is None:
        return []
    below = [unit] if unit.level == "grid" else await units_below(session, unit_code)
    grids = sorted((u for u in below if u.level == "grid"), key=lambda u: u.code)
    if not grids:
        return []
    parents = {u.code: u for u in await _units(session)}
    members: dict[str, list[Staff]] = {}
    rows = await session.exec(
        select(Staff)
        .where(Staff.role == "grid_member", col(Staff.active).is_(True))
        .where(col(Staff.unit_code).in_([g.code for g in grids]))
        .order_by(col(Staff.id))
    )
    for person in rows.all():
        members.setdefault(person.unit_code, []).append(person)
    heading = t._("Need help? Scan to reach your grid member")
    posters = []
    for grid in grids:
        path: list[str] = []
        code = grid.parent_code
        while code is not None and code in parents and parents[code].level != "district":
            path.append(unit_label(t, parents[code]))
            code = parents[code].parent_code
        people = members.get(grid.code, [])
        if people:
            named = "  ".join(f"{p.name} {mask_phone(p.phone)}".strip() for p in people[:3])
            line = t._("Grid member: {people}", people=named)
        else:
            line = t._("Grid member: to be named; the community office can help")
        posters.append(
            Poster(
                title=unit_label(t, grid),
                subtitle=" › ".join(reversed(path)),
                people=line,
                link=grid_link(bot_username, grid.code),
                steps=steps(t),
                heading=heading,
            )
        )
    return posters


def link_poster(t: Translator, link: str, title: str, subtitle: str = "") -> Poster:
    """A poster for any link: a volunteer team's or a family's join link."""
    return Poster(
        title=title,
        subtitle=subtitle,
        people="",
        link=link,
        steps=(
            t._("1. Scan the code with your phone's camera; it opens Huiyin in Telegram."),
            t._("2. Tap “Start” and follow the bot's questions."),
            t._("3. Questions? Ask your community office."),
        ),
        heading=t._("Scan to join on Huiyin"),
    )


async def _units(session: AsyncSession) -> list[Unit]:
    return list((await session.exec(select(Unit))).all())
