"""Fitting HTML into Telegram's limits: cut on visible characters, never inside a tag or entity."""

from __future__ import annotations

import pytest

from bot.channels.telegram_html import fit_html, fit_plain, visible_length
from tests.fake_bot_api import parse_html


def test_fit_html_keeps_short_text() -> None:
    assert fit_html("<b>a</b> &amp; b", 10) == "<b>a</b> &amp; b"


@pytest.mark.parametrize(
    "text",
    [
        "x" * 5000,
        "<b>" + "粗" * 5000 + "</b>",
        "&lt;" * 5000,
        '<a href="https://example.org/?a=1&amp;b=2">' + "y" * 4094 + "</a>&amp;&amp;&amp;",
        "<blockquote><i>" + "q" * 3000 + "</i>" + "&#128512;" * 3000 + "</blockquote>",
    ],
)
def test_fit_html_cuts_to_valid_html_of_the_limit(text: str) -> None:
    fitted = fit_html(text, 4096)
    plain, _ = parse_html(fitted)
    assert len(plain) == 4096 == visible_length(fitted)
    assert plain.endswith("…")


def test_visible_length_ignores_tags_and_counts_entities_once() -> None:
    assert visible_length("<b>ab</b>&amp;&#128512;") == 4


def test_fit_plain() -> None:
    assert fit_plain("abc", 3) == "abc"
    assert fit_plain("abcd", 3) == "ab…"
