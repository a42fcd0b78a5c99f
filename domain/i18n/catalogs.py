"""Keep the catalogs in step with the code: `python -m domain.i18n.catalogs` re-extracts every
message id and merges it into each `.po` file, keeping the translations already there.

English catalogs get the message id as their text where empty (ids are English); other
languages are left for a translator, and the catalog test fails until they are filled in.
"""

from __future__ import annotations

from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

from domain.i18n import DOMAIN, LANGUAGES, catalog_path

ROOT = Path(__file__).resolve().parents[2]
SOURCE_DIRS = ("bot", "handlers", "schedules", "domain", "storage")
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2)}


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
        write_po(handle, catalog, width=100, ignore_obsolete=True)
    return catalog


def main() -> None:
    template = extract()
    for language in LANGUAGES:
        catalog = update(language, template)
        missing = [
            m.id
            for m in catalog
            if m.id and not any(m.string if isinstance(m.string, tuple) else (m.string,))
        ]
        print(f"{language}: {len(catalog)} messages, {len(missing)} untranslated")


if __name__ == "__main__":
    main()
