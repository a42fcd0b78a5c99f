"""Translations: gettext catalogs kept as `.po` files, compiled in memory when first used.

Message ids are English; `zh_CN` is the default language and every catalog is complete (a test
checks it). The user's Telegram language picks one: `en*` gives English; `zh-hant`, `zh-tw`,
`zh-hk` and `zh-mo` give Traditional Chinese (`zh_Hant`, generated from the Simplified catalog
with OpenCC's s2twp by `python -m domain.i18n.catalogs`); anything else the district's language,
Simplified Chinese.
"""

from __future__ import annotations

import gettext
from functools import cache
from io import BytesIO
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from opencc import OpenCC

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "huiyin"
DEFAULT_LANGUAGE = "zh_CN"
TRADITIONAL = "zh_Hant"
# zh_CN first: the Traditional catalog is made from it.
LANGUAGES = ("zh_CN", "en", TRADITIONAL)
TRADITIONAL_CODES = ("zh-hant", "zh-tw", "zh-hk", "zh-mo")


def pick_language(telegram_code: str | None) -> str:
    """Map a Telegram `language_code` (e.g. "zh-hans", "en-US", "zh-hant-tw") to a catalog."""
    code = (telegram_code or "").lower().replace("_", "-")
    if code.startswith("en"):
        return "en"
    if any(code == c or code.startswith(c + "-") for c in TRADITIONAL_CODES):
        return TRADITIONAL
    return DEFAULT_LANGUAGE


@cache
def _converter(config: str) -> OpenCC:
    return OpenCC(config)


def to_traditional(text: str) -> str:
    """Simplified Chinese in Traditional characters, character by character (for names)."""
    return str(_converter("s2t").convert(text))


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
