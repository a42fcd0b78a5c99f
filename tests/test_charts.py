"""The chart renders Chinese: the chosen font has a glyph for every character of the labels,
drawing it raises no "Glyph ... missing" warning, and the PNG decodes to a real picture.
The same chart drawn with a font that lacks the glyphs does warn, so the check can fail."""

from __future__ import annotations

import io
import logging
import warnings
from datetime import date, timedelta
from pathlib import Path

import pytest
from matplotlib import font_manager, get_data_path
from matplotlib.image import imread

from bot.settings import SettingsError, load_settings
from domain import charts
from domain.metrics import Rates

TEXTS = charts.ChartTexts(
    title="江北街道 · 2026-11",
    rates_title="响应率、解决率、满意率（%）",
    days_title="每日受理量",
    response="响应率",
    resolution="解决率",
    satisfaction="满意率",
    requests="件数",
    no_data="暂无需求",
)
PARTS = [
    ("天河社区", Rates(50, 46, 40, 30, 27)),
    ("柳园社区", Rates(20, 15, 12, 0, 0)),
    ("前进社区", Rates(0, 0, 0, 0, 0)),
]
DAYS = [(date(2026, 11, 1) + timedelta(days=n), (7 * n) % 11) for n in range(30)]


def chart(font: charts.Font) -> charts.StatsChart:
    return charts.StatsChart(TEXTS, PARTS, DAYS, font)


def render_watching(
    stats: charts.StatsChart, caplog: pytest.LogCaptureFixture
) -> tuple[bytes, list[str]]:
    """The PNG, and every missing-glyph complaint, whether warned or logged."""
    caplog.clear()
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        png = stats.render()
    complaints = [str(w.message) for w in caught] + [r.getMessage() for r in caplog.records]
    return png, [c for c in complaints if "missing from font" in c]


def test_this_machine_has_a_chinese_font() -> None:
    font = charts.chart_font()
    assert font is not None, "install a CJK font (fonts-wqy-microhei) or set HUIYIN_CHART_FONT"
    assert charts.covers(font, charts.PROBE)


def test_chinese_labels_render_with_their_glyphs(caplog: pytest.LogCaptureFixture) -> None:
    stats = chart(charts.Font(None))
    font = charts.font_for(stats.words())
    assert font is not None and font.path is not None
    # Every character the chart writes has a glyph in the chosen font (FT2Font char map).
    assert charts.covers(font.path, stats.words())
    png, missing = render_watching(chart(font), caplog)
    assert missing == []
    picture = imread(io.BytesIO(png), format="png")
    height, width = picture.shape[:2]
    assert (width, height) == (900, 750)
    assert picture.std() > 0.05  # not a blank canvas


def test_the_default_font_would_draw_boxes(caplog: pytest.LogCaptureFixture) -> None:
    default = charts.default_font()
    assert not charts.covers(default, "响应率")
    _, missing = render_watching(chart(charts.Font(default)), caplog)
    assert missing, "drawing Chinese with a Latin font must complain of missing glyphs"


def test_english_needs_no_cjk_font(caplog: pytest.LogCaptureFixture) -> None:
    english = charts.ChartTexts(
        "Jiangbei Street · 2026-11", "Rates (%)", "Requests received per day",
        "Response rate", "Resolution rate", "Satisfaction rate", "Requests", "No requests",
    )  # fmt: skip
    stats = charts.StatsChart(english, [("Tianhe Community", PARTS[0][1])], DAYS, charts.Font(None))
    assert charts.font_for(stats.words()) == charts.Font(None)
    png, missing = render_watching(stats, caplog)
    assert png.startswith(b"\x89PNG") and missing == []


def test_an_empty_period_still_draws(caplog: pytest.LogCaptureFixture) -> None:
    font = charts.font_for(chart(charts.Font(None)).words())
    assert font is not None
    png, missing = render_watching(charts.StatsChart(TEXTS, [], [], font), caplog)
    assert png.startswith(b"\x89PNG") and missing == []


def test_the_configured_font_comes_first(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    found = charts.chart_font()
    assert found is not None
    copy = tmp_path / "chosen.ttc"
    copy.write_bytes(found.read_bytes())
    try:
        charts.use_font(copy)
        assert charts.chart_font() == copy
        charts.use_font(tmp_path / "nothing.ttf")  # unreadable: the search goes on
        assert charts.chart_font() == found
    finally:
        charts.use_font(None)


def test_the_font_setting_names_a_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="HUIYIN_CHART_FONT: no font file at"):
        load_settings(_env_file=None, chart_font=str(tmp_path / "missing.ttf"))
    font = tmp_path / "font.ttf"
    font.write_bytes(b"\0")
    assert load_settings(_env_file=None, chart_font=str(font)).chart_font == font
    assert load_settings(_env_file=None, chart_font="").chart_font is None


LAST_RESORT = Path(get_data_path(), "fonts", "ttf", "LastResortHE-Regular.ttf")


def test_a_catch_all_font_covers_nothing() -> None:
    """matplotlib's "Last Resort" maps every code point to a box: it is never taken as
    covering Chinese (nor anything else), while a real font still is."""
    assert LAST_RESORT.exists()
    assert not charts.covers(LAST_RESORT, charts.PROBE)
    assert not charts.covers(LAST_RESORT, "Response rate")
    assert charts.covers(charts.default_font(), "Response rate")


def test_the_pick_with_a_stale_font_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """matplotlib's font cache was written before the CJK font was installed: it lists Last
    Resort but not the CJK font. Without the refresh no font is picked, so the chart is drawn
    in English (never boxes), with a warning; with it the installed CJK font is found, the
    chart has every glyph, and the cache is saved with the font in it."""
    real = charts.chart_font()
    assert real is not None, "install a CJK font (fonts-wqy-microhei) or set HUIYIN_CHART_FONT"
    manager = font_manager.fontManager
    stale = [entry for entry in manager.ttflist if not charts.covers(Path(entry.fname), "回音")]
    assert any(Path(entry.fname).name == LAST_RESORT.name for entry in stale)
    assert len(stale) < len(manager.ttflist)
    cache = tmp_path / "fontlist.json"
    monkeypatch.setattr(manager, "ttflist", stale)
    monkeypatch.setattr(charts, "font_cache_file", lambda: cache)
    monkeypatch.setattr(charts, "_configured", None)
    try:
        # No refresh (nothing new on disk): nothing is picked, and the chart falls back.
        monkeypatch.setattr(font_manager, "findSystemFonts", lambda: [])
        charts.chart_font.cache_clear()
        with caplog.at_level(logging.WARNING, logger="domain.charts"):
            assert charts.chart_font() is None
        assert "no installed font has Chinese glyphs" in caplog.text
        assert charts.font_for(chart(charts.Font(None)).words()) is None
        assert not cache.exists()
        # The font is on disk but not in the cache: the refresh finds it.
        monkeypatch.setattr(font_manager, "findSystemFonts", lambda: [str(real)])
        charts.chart_font.cache_clear()
        picked = charts.chart_font()
        assert picked is not None and picked.resolve() == real.resolve()
        font = charts.font_for(chart(charts.Font(None)).words())
        assert font == charts.Font(picked)
        png, missing = render_watching(chart(font), caplog)
        assert png.startswith(b"\x89PNG") and missing == []
        assert str(real) in cache.read_text()
    finally:
        charts.chart_font.cache_clear()
