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
METHOD_MAP = [
    ("**/locale/**", "ignore"),
    ("**.py", "python"),
    ("**.kv", "scripts.catalogs:extract_kv"),
]
KEYWORDS = {"_": None, "N_": None}
# The desk pages: their scripts say t("..."), their templates _("...") (Jinja2's i18n).
PAGE_SCRIPTS_MAP = [("**/node_modules/**", "ignore"), ("static/**.js", "javascript")]
PAGE_SCRIPT_KEYWORDS = {"t": None}
PAGE_TEMPLATES_MAP = [("templates/**.html", "jinja2.ext:babel_extract")]
SERVER_MAP = [("web/**", "ignore"), ("**.py", "python")]
# Where user-facing words live, with how to find them: the handheld (Python and kv) and the
# shared code (the rules' flag sentences) first, then the desk pages and the server's sentences.
# New sources go last: `update` keeps the order of what a .po already holds either way.
SOURCES: tuple[tuple[str, list[tuple[str, str]], dict[str, Any]], ...] = (
    ("mobile", METHOD_MAP, KEYWORDS),
    ("common", METHOD_MAP, KEYWORDS),
    ("server/web", PAGE_SCRIPTS_MAP, PAGE_SCRIPT_KEYWORDS),
    ("server/web", PAGE_TEMPLATES_MAP, KEYWORDS),
    ("server", SERVER_MAP, KEYWORDS),
)

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
    for source, method_map, keywords in SOURCES:
        for filename, lineno, message, comments, context in extract_from_dir(
            ROOT / source, method_map, keywords=keywords, options_map={"**.html": {"trimmed": "1"}}
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


def in_order_of(held: Catalog, template: Catalog) -> Catalog:
    """`template` with the messages `held` has first, in held's order, then the new ones: an
    update appends and never reorders, so that parallel work on the catalog merges cleanly."""
    place = {m.id: i for i, m in enumerate(held) if m.id}
    ordered = Catalog(project=template.project, domain=template.domain, charset="utf-8")
    fresh = len(place)
    for _index, message in sorted(
        enumerate(m for m in template if m.id),
        key=lambda pair: (place.get(pair[1].id, fresh), pair[0]),
    ):
        ordered[message.id] = message
    return ordered


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
            catalog.update(in_order_of(catalog, template), no_fuzzy_matching=True)
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
