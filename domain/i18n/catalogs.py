"""Keep the catalogs in step with the code: `python -m domain.i18n.catalogs` re-extracts every
message id and merges it into each `.po` file, keeping the translations already there.

English catalogs get the message id as their text where empty (ids are English); other
languages are left for a translator, and the catalog test fails until they are filled in. The
Traditional Chinese catalog (`zh_Hant`) is made anew each time from the Simplified one with
OpenCC's s2twp (Taiwan usage and phrases), so it never falls behind.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po
from opencc import OpenCC

from domain.i18n import DEFAULT_LANGUAGE, DOMAIN, LANGUAGES, TRADITIONAL, catalog_path

ROOT = Path(__file__).resolve().parents[2]
SOURCE_DIRS = ("bot", "handlers", "schedules", "domain", "storage")
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2)}
# Locations name the file only, not the line: with line numbers every edit above a text moved
# its comment, so every branch rewrote thousands of catalog lines and any two of them conflicted.
WRITE_OPTIONS: dict[str, Any] = {"width": 100, "ignore_obsolete": True, "include_lineno": False}


def extract() -> Catalog:
    template = Catalog(domain=DOMAIN)
    for folder in SOURCE_DIRS:
        for filename, lineno, message, comments, context in extract_from_dir(
            ROOT / folder,
            method_map=[("**.py", "python")],
            keywords=KEYWORDS,
        ):
            template.add(
                message,
                locations=[(f"{folder}/{filename}", lineno)],
                auto_comments=comments,
                context=context,
            )
    return template


# Where s2twp's Taiwan phrasing says something else than meant here: 社区 (a residential
# community, the grid's level) is 社區, not 社群 (a social group).
CORRECTIONS = {"社群": "社區"}


def to_traditional_text(text: str, convert: Callable[[str], str]) -> str:
    converted = convert(text)
    for wrong, right in CORRECTIONS.items():
        converted = converted.replace(wrong, right)
    return converted


def traditional(simplified: Catalog) -> Catalog:
    """The zh_Hant catalog: every Simplified text converted with OpenCC s2twp."""
    opencc = OpenCC("s2twp")

    def convert(text: str) -> str:
        return to_traditional_text(text, opencc.convert)

    catalog = Catalog(
        locale=TRADITIONAL,
        domain=DOMAIN,
        creation_date=simplified.creation_date,
        revision_date=simplified.revision_date,
    )
    for message in simplified:
        if not message.id:
            continue
        strings = message.string
        catalog.add(
            message.id,
            tuple(convert(s) for s in strings)
            if isinstance(strings, tuple)
            else convert(strings or ""),
            locations=message.locations,
            flags=message.flags,
            auto_comments=message.auto_comments,
            context=message.context,
        )
    path = catalog_path(TRADITIONAL)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        write_po(handle, catalog, **WRITE_OPTIONS)
    return catalog


def update(language: str, template: Catalog) -> Catalog:
    path = catalog_path(language)
    if path.exists():
        with path.open("rb") as handle:
            catalog = read_po(handle, locale=language)
    else:
        catalog = Catalog(locale=language, domain=DOMAIN)
    catalog.update(template, no_fuzzy_matching=True)
    if language == "en":
        for message in catalog:
            strings = message.string if isinstance(message.string, tuple) else (message.string,)
            if message.id and not any(strings):
                message.string = message.id
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        write_po(handle, catalog, **WRITE_OPTIONS)
    return catalog


def main() -> None:
    template = extract()
    made: dict[str, Catalog] = {}
    for language in LANGUAGES:
        if language == TRADITIONAL:
            catalog = traditional(made[DEFAULT_LANGUAGE])
        else:
            catalog = made[language] = update(language, template)
        missing = [
            m.id
            for m in catalog
            if m.id and not any(m.string if isinstance(m.string, tuple) else (m.string,))
        ]
        print(f"{language}: {len(catalog)} messages, {len(missing)} untranslated")


if __name__ == "__main__":
    main()
