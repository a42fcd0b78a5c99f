"""Traditional Chinese: users whose Telegram speaks zh-Hant, zh-TW or zh-HK get the zh_Hant
catalog, made from the Simplified one with OpenCC (s2twp) and kept in step by
`python -m domain.i18n.catalogs`; place names are shown in Traditional characters too."""

from __future__ import annotations

import io

import pytest
from babel.messages.pofile import read_po, write_po

from domain.i18n import DEFAULT_LANGUAGE, TRADITIONAL, catalog_path, pick_language, translator
from domain.i18n.catalogs import traditional
from tests.harness import Harness

RESIDENT = 950001


@pytest.mark.parametrize(
    ("code", "language"),
    [
        ("zh-hant", TRADITIONAL),
        ("zh-Hant-TW", TRADITIONAL),
        ("zh-tw", TRADITIONAL),
        ("zh-hk", TRADITIONAL),
        ("zh_TW", TRADITIONAL),
        ("zh-mo", TRADITIONAL),
        ("zh-hans", DEFAULT_LANGUAGE),
        ("zh-cn", DEFAULT_LANGUAGE),
        ("zh", DEFAULT_LANGUAGE),
        ("zh-twx", DEFAULT_LANGUAGE),
        ("en-HK", "en"),
    ],
)
def test_telegram_language_picks_the_catalog(code: str, language: str) -> None:
    assert pick_language(code) == language


def test_the_traditional_catalog_is_in_step_with_the_simplified_one() -> None:
    """What `python -m domain.i18n.catalogs` would write is what is there."""
    with catalog_path(DEFAULT_LANGUAGE).open("rb") as handle:
        simplified = read_po(handle, locale=DEFAULT_LANGUAGE)
    with catalog_path(TRADITIONAL).open("rb") as handle:
        stored = read_po(handle, locale=TRADITIONAL)
    before = catalog_path(TRADITIONAL).read_bytes()
    try:
        made = traditional(simplified)
    finally:
        catalog_path(TRADITIONAL).write_bytes(before)  # the test leaves the file as it was
    assert {m.id: m.string for m in made if m.id} == {m.id: m.string for m in stored if m.id}
    buffer = io.BytesIO()
    write_po(buffer, made, width=100, ignore_obsolete=True)
    assert buffer.getvalue() == before


def test_traditional_texts_read_as_traditional() -> None:
    t = translator(TRADITIONAL)
    assert t._("Choose the street or town where she lives:") == "請選擇她所在的街道（鎮）："
    assert "社區" in t._("{place}: choose your community or village:", place="X")


async def test_a_hong_kong_phone_sees_the_picker_in_traditional(harness: Harness) -> None:
    harness.languages[RESIDENT] = "zh-hk"
    await harness.say(RESIDENT, "/start")
    await harness.tap(RESIDENT, value="yes")
    await harness.tap(RESIDENT, value="QS-FM")
    villages = harness.sender.messages(RESIDENT)[-1]
    assert villages.text.startswith("鳳鳴鎮：請選擇您所在的社區（村）：")
    assert "毛家衝村" in [b.text for b in villages.buttons]
    (found,) = await harness.say(RESIDENT, "胡家灣")  # typed in Traditional
    assert [b.text for b in found.buttons] == ["✔ 胡家灣村 · 鳳鳴鎮"]
