"""Translations: gettext catalogs kept as `.po` files, compiled in memory when first used.

Message ids are English; `zh_CN` is the default language and every catalog is complete (a test
checks it). The user's Telegram language picks one: `en*` gives English, anything else the
district's language, Simplified Chinese.
"""

from __future__ import annotations

import gettext
from functools import cache
from io import BytesIO
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "huiyin"
DEFAULT_LANGUAGE = "zh_CN"
LANGUAGES = ("zh_CN", "en")


def pick_language(telegram_code: str | None) -> str:
    """Map a Telegram `language_code` (e.g. "zh-hans", "en-US") to a catalog."""
    if telegram_code and telegram_code.lower().startswith("en"):
        return "en"
    return DEFAULT_LANGUAGE


def N_(message: str) -> str:
    """Mark a text for extraction where it is translated later (tables of labels)."""
    return message


def catalog_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


class Translator:
    """The texts of one language. `_` and `ngettext` are the names the extractor looks for."""

    def __init__(self, language: str, translations: gettext.NullTranslations) -> None:
        self.language = language
        self._translations = translations

    def _(self, message: str, **values: object) -> str:
        text = self._translations.gettext(message)
        return text.format(**values) if values else text

    def ngettext(self, singular: str, plural: str, n: int, **values: object) -> str:
        text = self._translations.ngettext(singular, plural, n)
        return text.format(n=n, **values)


@cache
def translator(language: str) -> Translator:
    if language not in LANGUAGES:
        language = DEFAULT_LANGUAGE
    path = catalog_path(language)
    with path.open("rb") as po:
        catalog = read_po(po, locale=language)
    buffer = BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translator(language, gettext.GNUTranslations(buffer))
