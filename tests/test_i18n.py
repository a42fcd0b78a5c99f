"""The catalogs: complete in both languages, placeholders intact, the user's language picked."""

from __future__ import annotations

import re

import pytest
from babel.messages.pofile import read_po

from domain.i18n import LANGUAGES, catalog_path, pick_language, translator
from domain.i18n.catalogs import extract

PLACEHOLDER = re.compile(r"\{(\w+)\}")
TAG = re.compile(r"</?(\w+)[^>]*>")


def catalog(language: str):  # type: ignore[no-untyped-def]
    with catalog_path(language).open("rb") as handle:
        return read_po(handle, locale=language)


def test_every_message_in_the_code_is_in_the_catalogs() -> None:
    in_code = {m.id if isinstance(m.id, str) else m.id[0] for m in extract() if m.id}
    for language in LANGUAGES:
        in_catalog = {m.id if isinstance(m.id, str) else m.id[0] for m in catalog(language) if m.id}
        missing = in_code - in_catalog
        assert not missing, f"{language}: run `python -m domain.i18n.catalogs`; missing {missing}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_catalog_is_complete_and_keeps_placeholders_and_tags(language: str) -> None:
    problems = []
    for message in catalog(language):
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if not all(strings):
            problems.append(f"untranslated: {ids[0]!r}")
            continue
        wanted = set(PLACEHOLDER.findall(ids[0]))
        for string in strings:
            if set(PLACEHOLDER.findall(string)) != wanted:
                problems.append(f"placeholders differ: {ids[0]!r} -> {string!r}")
            if sorted(TAG.findall(string)) != sorted(TAG.findall(ids[0])):
                problems.append(f"tags differ: {ids[0]!r} -> {string!r}")
    assert not problems, "\n".join(problems)


def test_chinese_is_the_default_and_english_is_picked_by_telegram_language() -> None:
    assert pick_language("en") == "en"
    assert pick_language("en-GB") == "en"
    assert pick_language("zh-hans") == "zh_CN"
    assert pick_language(None) == "zh_CN"
    assert pick_language("ru") == "zh_CN"


def test_translations_differ_between_languages() -> None:
    message = "What would you like to do?"
    assert translator("en")._(message) == message
    assert translator("zh_CN")._(message) != message
