"""Posters for the notice boards: `huiyin posters` writes a PDF with an A4 page per grid, whose QR
code, rendered to an image and read back by a real decoder (zxing-cpp), is the grid's deep link;
coordinators get their area's PDF with /poster in the chat."""

from __future__ import annotations

from pathlib import Path

import pypdfium2 as pdfium
import pytest
import zxingcpp
from PIL import Image

from bot.cli import main
from domain.i18n import translator
from domain.posters import grid_link, link_poster, posters_pdf, wrap
from storage.roster import sample_district_dir
from tests.harness import Harness

XU = 700000011  # coordinator of Tianhe Community (two grids)
WANG = 700000001  # grid member, Tianhe Grid 1
ADMIN = 700000026
RESIDENT = 930101
BOT = "huiyin_test_bot"


def pages_of(pdf: bytes, scale: float = 1.5) -> list[Image.Image]:
    """Each page of the PDF as an image, as a printer would put it on paper."""
    document = pdfium.PdfDocument(pdf)
    try:
        return [document[i].render(scale=scale).to_pil() for i in range(len(document))]
    finally:
        document.close()


def decoded(image: Image.Image) -> list[str]:
    qr = zxingcpp.BarcodeFormat.QRCode
    return [r.text for r in zxingcpp.read_barcodes(image) if r.format == qr]


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HUIYIN_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/cli.db")
    monkeypatch.delenv("HUIYIN_BOT_TOKEN", raising=False)
    monkeypatch.delenv("HUIYIN_BOT_USERNAME", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_cli_posters_one_page_per_grid_each_code_opens_its_grid(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["import", str(sample_district_dir())]) == 0
    out = cli_env / "fengming.pdf"
    assert main(["posters", "--unit", "QS-FM", "--out", str(out), "--bot-username", BOT]) == 0
    assert "4 poster(s)" in capsys.readouterr().out
    pages = pages_of(out.read_bytes())
    assert [decoded(page) for page in pages] == [
        [grid_link(BOT, code)]
        for code in ("QS-FM-HW-01", "QS-FM-MJ-01", "QS-FM-MJ-02", "QS-FM-SQ-01")
    ]
    width, height = pages[0].size
    assert abs(height / width - 297 / 210) < 0.01  # A4


def test_cli_posters_in_traditional_chinese(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["import", str(sample_district_dir())]) == 0
    out = cli_env / "grid.pdf"
    args = ["posters", "--unit", "QS-FM-MJ-02", "--out", str(out), "--bot-username", BOT]
    assert main([*args, "--lang", "zh-hant"]) == 0
    assert "1 poster(s)" in capsys.readouterr().out
    assert [decoded(p) for p in pages_of(out.read_bytes())] == [[grid_link(BOT, "QS-FM-MJ-02")]]


def test_cli_posters_explain_what_is_missing(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["import", str(sample_district_dir())]) == 0
    out = cli_env / "x.pdf"
    assert main(["posters", "--unit", "QS-FM", "--out", str(out)]) == 2
    assert "--bot-username" in capsys.readouterr().err
    assert main(["posters", "--unit", "NOPE", "--out", str(out), "--bot-username", BOT]) == 1
    assert "no grids" in capsys.readouterr().err
    assert not out.exists()


def test_a_join_link_poster_carries_that_link() -> None:
    link = "https://t.me/huiyin_test_bot?start=i_AbC123"
    pdf = posters_pdf([link_poster(translator("zh_CN"), link, "毛家冲村志愿服务队")])
    [page] = pages_of(pdf)
    assert decoded(page) == [link]


def test_instructions_wrap_to_the_page() -> None:
    t = translator("en")
    long = t._("1. Scan the code with your phone's camera; it opens Huiyin in Telegram.")
    lines = wrap(long, 44)
    assert len(lines) == 2 and " ".join(lines) == long
    chinese = wrap("用手机相机扫描上面的二维码，在 Telegram 中打开“回音”。", 44)
    assert chinese[0].endswith("Telegram")


async def test_poster_in_the_chat_for_a_coordinators_community(harness: Harness) -> None:
    harness.dispatcher.bot_username = BOT
    harness.languages[XU] = "zh-hans"
    (reply,) = await harness.say(XU, "/poster")
    assert reply.message.upload_kind == "document"
    assert reply.message.upload_name == "posters-QS-JB-TH.pdf"
    pages = pages_of(reply.message.upload_bytes, scale=1.2)
    assert [decoded(p) for p in pages] == [
        [grid_link(BOT, "QS-JB-TH-01")],
        [grid_link(BOT, "QS-JB-TH-02")],
    ]
    # One community of a town, by code; a place outside the area is refused.
    (outside,) = await harness.say(XU, "/poster QS-FM-MJ")
    assert outside.message.upload_kind is None
    t = translator("zh_CN")
    assert outside.text == t._(
        "There is no place {code} in your area. Send /poster alone for your whole area.",
        code="QS-FM-MJ",
    )
    (own,) = await harness.say(WANG, "/poster")
    assert [decoded(p) for p in pages_of(own.message.upload_bytes, scale=1.2)] == [
        [grid_link(BOT, "QS-JB-TH-01")]
    ]


async def test_poster_is_not_for_residents(harness: Harness) -> None:
    harness.dispatcher.bot_username = BOT
    harness.languages[RESIDENT] = "en"
    await harness.say(RESIDENT, "/start")
    await harness.tap(RESIDENT, value="yes")
    (reply,) = await harness.say(RESIDENT, "/poster")
    assert reply.message.upload_kind is None
    assert "/poster is for" in reply.text


async def test_poster_without_a_bot_username_says_so(harness: Harness) -> None:
    (reply,) = await harness.say(ADMIN, "/poster QS-JB-TH-01")
    assert reply.message.upload_kind is None
    assert reply.text == translator("zh_CN")._(
        "Posters need the bot's username; please ask the district office."
    )
