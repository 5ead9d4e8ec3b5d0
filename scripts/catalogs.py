"""The translation catalogs' tooling (Babel): extract the product's messages, merge them into
each language's .po, compile the .mo files the product reads.

    python -m scripts.catalogs extract   # common/locale/gridwalk.pot from the sources
    python -m scripts.catalogs update    # merge the template into each language's .po
    python -m scripts.catalogs compile   # .po -> .mo (committed: the APK and the server read them)

tests/common/test_catalogs.py runs the same extraction and fails when a message has no
translation or a .mo is older than its .po.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import IO, Any

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

from common.i18n import DOMAIN, LOCALE_DIR, catalog_languages

ROOT = Path(__file__).resolve().parents[1]
# Where user-facing words live: the handheld (Python and kv) and the shared code.
SOURCES = ("mobile", "common")
METHOD_MAP = [
    ("**/locale/**", "ignore"),
    ("**.py", "python"),
    ("**.kv", "scripts.catalogs:extract_kv"),
]
KEYWORDS = {"_": None, "N_": None}

_KV_MESSAGE = re.compile(r"""\b_\(\s*(?P<q>['"])(?P<text>(?:\\.|(?!(?P=q)).)*)(?P=q)\s*\)""")


def extract_kv(
    fileobj: IO[bytes], keywords: Any, comment_tags: Any, options: Any
) -> Iterator[tuple[int, str, str, list[str]]]:
    """Babel extractor for Kivy's kv language: each _('...') on a line (kv has no parser
    Babel knows; its expressions are Python, one per line)."""
    for lineno, line in enumerate(fileobj.read().decode("utf-8").splitlines(), start=1):
        for match in _KV_MESSAGE.finditer(line):
            text = match["text"].encode("utf-8").decode("unicode_escape")
            yield lineno, "_", text, []


def extract() -> Catalog:
    """Every message the sources mark, with where it is used."""
    catalog = Catalog(project="Gridwalk", domain=DOMAIN, charset="utf-8")
    for source in SOURCES:
        for filename, lineno, message, comments, context in extract_from_dir(
            ROOT / source, METHOD_MAP, keywords=KEYWORDS
        ):
            if isinstance(message, tuple):  # a plural: singular first
                message = message[0]
            catalog.add(
                message,
                locations=[(f"{source}/{filename}", lineno)],
                auto_comments=comments,
                context=context,
            )
    return catalog


def po_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def read(language: str) -> Catalog:
    with po_path(language).open("rb") as f:
        return read_po(f, locale=language, domain=DOMAIN)


def compiled(catalog: Catalog) -> bytes:
    buffer = BytesIO()
    write_mo(buffer, catalog)
    return buffer.getvalue()


def main(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    if command == "extract":
        with (LOCALE_DIR / f"{DOMAIN}.pot").open("wb") as f:
            write_po(f, extract(), width=100, sort_by_file=True)
    elif command == "update":
        template = extract()
        for language in catalog_languages():
            catalog = read(language)
            catalog.update(template, no_fuzzy_matching=True)
            with po_path(language).open("wb") as f:
                write_po(f, catalog, width=100, ignore_obsolete=True)
    elif command == "compile":
        for language in catalog_languages():
            po_path(language).with_suffix(".mo").write_bytes(compiled(read(language)))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
