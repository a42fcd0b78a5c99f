"""The /stats chart: the three rates per unit as grouped bars, and requests received per day,
drawn with matplotlib (Agg, no display) into PNG bytes.

Chinese labels need a font with CJK glyphs. `chart_font` looks for one: the file named by
`HUIYIN_CHART_FONT` (given to `use_font` at start), then well-known CJK families among the
installed fonts, then any installed font whose character map covers the text. Without one the
caller draws the chart in English (`covers` tells it), rather than showing boxes; the missing
font is logged once.

Two traps lie in "the installed fonts". matplotlib knows them from a cache written when it first
ran, so a font installed later (the CJK package after the first chart) is not among them:
`refresh_font_cache` adds the installed fonts the cache lacks, and saves it. And matplotlib ships
"Last Resort", whose character map gives every code point a glyph, a box naming its Unicode
block: it "covers" any text and draws nothing but boxes, so `covers` never accepts such a
catch-all font (`is_catch_all`).
"""

from __future__ import annotations

import functools
import io
import logging
import warnings
from collections.abc import Sequence
from dataclasses import astuple, dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from domain.metrics import Rates

# matplotlib (about 40 MiB) is imported by the functions that use it, when a chart or a poster
# is first drawn, not when the bot starts.
if TYPE_CHECKING:
    from matplotlib.ft2font import FT2Font

log = logging.getLogger(__name__)

CJK_FAMILIES = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "Source Han Sans CN",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "Droid Sans Fallback",
    "Microsoft YaHei",
    "SimHei",
    "PingFang SC",
)
# Characters a chart in Chinese always shows: a font without them is no use.
PROBE = "回音响应率解决率满意率每日受理数量社区街道镇村网格区"
# Code points no real font draws (two noncharacters, an unassigned one, a tag character): a
# font with glyphs for them has a placeholder for everything.
CATCH_ALL_PROBE = "\uffff\U0001fffe\u0378\U000e0080"
RATE_COLOURS = ("#4C72B0", "#55A868", "#DD8452")
DAY_COLOUR = "#8172B2"

_configured: Path | None = None


def use_font(path: Path | None) -> None:
    """The font file the settings name (`HUIYIN_CHART_FONT`), tried before any other."""
    global _configured
    _configured = path
    chart_font.cache_clear()


@functools.cache
def _font_face(path: str) -> FT2Font:
    from matplotlib.ft2font import FT2Font

    return FT2Font(path)


def is_catch_all(face: FT2Font) -> bool:
    """A font that maps every code point to a placeholder (matplotlib's "Last Resort")."""
    if face.family_name.lower().replace(" ", "").startswith("lastresort"):
        return True
    return any(face.get_char_index(ord(ch)) != 0 for ch in CATCH_ALL_PROBE)


def covers(font: Path, text: str) -> bool:
    """Whether the font has a real glyph for every visible character of `text` (a catch-all
    font's boxes do not count)."""
    try:
        face = _font_face(str(font))
    except (OSError, RuntimeError):
        return False
    if is_catch_all(face):
        return False
    return all(face.get_char_index(ord(ch)) != 0 for ch in set(text) if not ch.isspace())


def font_cache_file() -> Path:
    """Where matplotlib keeps its list of installed fonts."""
    from matplotlib import font_manager, get_cachedir

    return Path(get_cachedir(), f"fontlist-v{font_manager.FontManager.__version__}.json")


def refresh_font_cache() -> list[Path]:
    """Add the installed fonts matplotlib's font cache does not know (installed after it was
    written) and save the cache, so later starts find them too; return the fonts added."""
    from matplotlib import font_manager

    manager = font_manager.fontManager
    known = {str(Path(entry.fname).resolve()) for entry in manager.ttflist}
    added: list[Path] = []
    for name in sorted(font_manager.findSystemFonts()):
        path = Path(name)
        if str(path.resolve()) in known:
            continue
        try:
            manager.addfont(str(path))
        except (OSError, RuntimeError, ValueError) as error:
            log.info("chart: cannot read the font %s (%s)", path, error)
            continue
        known.add(str(path.resolve()))
        added.append(path)
    if added:
        log.info(
            "chart: %d font(s) installed after matplotlib's font cache was written, added: %s",
            len(added),
            ", ".join(p.name for p in added),
        )
        try:
            font_manager.json_dump(manager, font_cache_file())
        except OSError as error:
            log.info("chart: cannot save matplotlib's font cache (%s)", error)
    return added


def _candidates() -> list[Path]:
    from matplotlib import font_manager

    found: list[Path] = []
    if _configured is not None:
        found.append(_configured)
    entries = font_manager.fontManager.ttflist
    for family in CJK_FAMILIES:
        found.extend(Path(e.fname) for e in entries if e.name == family)
    found.extend(Path(e.fname) for e in entries)
    return list(dict.fromkeys(found))


@functools.cache
def chart_font() -> Path | None:
    """A font that can write Chinese labels, or None (logged once). Fonts installed since
    matplotlib's cache was written are looked at too (`refresh_font_cache`)."""
    refresh_font_cache()
    for path in _candidates():
        if path.suffix.lower() in (".ttf", ".otf", ".ttc") and covers(path, PROBE):
            return path
    log.warning(
        "no installed font has Chinese glyphs: charts are drawn in English. Install one "
        "(e.g. fonts-wqy-microhei or fonts-noto-cjk) or set HUIYIN_CHART_FONT to a .ttf/.otf/.ttc"
    )
    return None


@dataclass(frozen=True, slots=True)
class Font:
    """The font to draw with: `path`, or matplotlib's default font when None."""

    path: Path | None


def default_font() -> Path:
    from matplotlib import font_manager
    from matplotlib.font_manager import FontProperties

    return Path(font_manager.findfont(FontProperties()))


def font_for(text: str) -> Font | None:
    """A font with a glyph for every character of `text`: matplotlib's default when it has
    them all, else the CJK font; None when no font has them."""
    if covers(default_font(), text):
        return Font(None)
    cjk = chart_font()
    if cjk is not None and covers(cjk, text):
        return Font(cjk)
    return None


@dataclass(frozen=True, slots=True)
class ChartTexts:
    """Every word the chart shows, already in the viewer's language."""

    title: str
    rates_title: str
    days_title: str
    response: str
    resolution: str
    satisfaction: str
    requests: str
    no_data: str

    def words(self) -> list[str]:
        return list(astuple(self))


def _percent(value: float | None) -> float:
    return 0.0 if value is None else 100.0 * value


@dataclass(frozen=True, slots=True)
class StatsChart:
    """What the chart shows, ready to draw: `parts` are (label, rates) per unit."""

    texts: ChartTexts
    parts: Sequence[tuple[str, Rates]]
    per_day: Sequence[tuple[date, int]]
    font: Font

    def words(self) -> str:
        """Every piece of text the chart writes."""
        return " ".join([*self.texts.words(), *(label for label, _ in self.parts)])

    def render(self) -> bytes:
        return stats_chart(self.texts, self.parts, self.per_day, self.font.path)


def stats_chart(
    texts: ChartTexts,
    parts: Sequence[tuple[str, Rates]],
    per_day: Sequence[tuple[date, int]],
    font: Path | None,
) -> bytes:
    """The chart as PNG bytes: `parts` are (label, rates) for each unit one level down;
    `per_day` the requests received each local day. A rate with nothing to measure (None)
    gets no bar and a "—" where it would stand."""
    # The Figure API with the Agg canvas, not pyplot: no display, no global figure state.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.font_manager import FontProperties

    properties = FontProperties(fname=str(font)) if font is not None else FontProperties()
    small = properties.copy()
    small.set_size(8)
    figure = Figure(figsize=(9, 7.5), dpi=100)
    FigureCanvasAgg(figure)
    # Fixed margins: a layout engine would measure every label first, which doubles the time.
    rates_axes, days_axes = figure.subplots(
        2,
        1,
        height_ratios=(3, 2),
        gridspec_kw={"left": 0.08, "right": 0.98, "top": 0.9, "bottom": 0.06, "hspace": 0.4},
    )
    figure.suptitle(texts.title, fontproperties=properties, fontsize=14)

    series = (
        (texts.response, lambda r: r.response),
        (texts.resolution, lambda r: r.resolution),
        (texts.satisfaction, lambda r: r.satisfaction),
    )
    width = 0.8 / len(series)
    for index, (name, rate_of) in enumerate(series):
        xs = [n + (index - 1) * width for n in range(len(parts))]
        values = [rate_of(rates) for _, rates in parts]
        bars = rates_axes.bar(
            xs, [_percent(v) for v in values], width, label=name, color=RATE_COLOURS[index]
        )
        for bar, value in zip(bars, values, strict=True):
            shown = "—" if value is None else f"{round(100 * value)}"
            rates_axes.annotate(
                shown,
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                fontproperties=small,
            )
    rates_axes.set_title(texts.rates_title, fontproperties=properties)
    rates_axes.set_ylim(0, 115)
    rates_axes.set_ylabel("%")
    rates_axes.set_xticks(range(len(parts)), [label for label, _ in parts])
    crowded = len(parts) > 6
    for tick in rates_axes.get_xticklabels():
        tick.set_fontproperties(small if crowded else properties)
        if crowded:
            tick.set_rotation(30)
            tick.set_horizontalalignment("right")
    rates_axes.legend(prop=properties, loc="upper right", ncols=3, frameon=False)
    if not parts:
        rates_axes.text(
            0.5, 0.5, texts.no_data, ha="center", transform=rates_axes.transAxes,
            fontproperties=properties,
        )  # fmt: skip

    days = [day for day, _ in per_day]
    days_axes.bar(range(len(days)), [count for _, count in per_day], color=DAY_COLOUR)
    days_axes.set_title(texts.days_title, fontproperties=properties)
    days_axes.set_ylabel(texts.requests, fontproperties=properties)
    step = max(1, len(days) // 10)
    days_axes.set_xticks(
        range(0, len(days), step), [f"{d:%m-%d}" for d in days[::step]], fontproperties=small
    )
    days_axes.yaxis.get_major_locator().set_params(integer=True)

    buffer = io.BytesIO()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        figure.savefig(buffer, format="png")
    for warning in caught:
        # Only possible with a font chosen without checking `covers`; worth knowing.
        log.warning("chart: %s", warning.message)
    return buffer.getvalue()
