"""The translation catalogs hold every word a person sees, and the compiled files match them."""

from __future__ import annotations

import ast
import gettext
import re
from pathlib import Path

import pytest

from common.i18n import DOMAIN, LOCALE_DIR, accepted_language, choose_language, language_of
from scripts.catalogs import ROOT, extract, read

PLACEHOLDER = re.compile(r"\{(\w*)\}")
# Words on screen that are the same in every language: the product's name, examples of what to
# type (a server address, a user name).
UNTRANSLATED = {"Gridwalk", "http://server:8000", "reader1", ""}


def test_every_message_of_the_handheld_has_a_chinese_translation() -> None:
    chinese = read("zh_CN")
    missing = [
        m.id
        for m in extract()
        if m.id and (m.id not in chinese or not chinese[m.id].string or chinese[m.id].fuzzy)
    ]
    assert missing == [], f"not translated in zh_CN (run scripts/catalogs update): {missing}"


def test_translations_keep_every_placeholder_of_their_message() -> None:
    wrong = [
        (m.id, m.string)
        for m in read("zh_CN")
        if m.id and sorted(PLACEHOLDER.findall(m.id)) != sorted(PLACEHOLDER.findall(m.string))
    ]
    assert wrong == []


def test_the_compiled_catalog_says_what_the_po_file_says() -> None:
    mo = LOCALE_DIR / "zh_CN" / "LC_MESSAGES" / f"{DOMAIN}.mo"
    with mo.open("rb") as f:
        compiled = gettext.GNUTranslations(f)
    stale = [m.id for m in read("zh_CN") if m.id and compiled.gettext(m.id) != m.string]
    assert stale == [], "run `python -m scripts.catalogs compile`"


def _literal_texts_in_python(path: Path) -> list[str]:
    """String literals a screen sets as a widget's text without `_`: `x.text = "..."`,
    `Widget(text="...")`, `ask("...", ...)`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        values: list[ast.expr] = []
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Attribute) and t.attr in ("text", "hint_text", "title")
            for t in node.targets
        ):
            values.append(node.value)
        if isinstance(node, ast.Call):
            values += [k.value for k in node.keywords if k.arg in ("text", "hint_text", "title")]
            if isinstance(node.func, ast.Name) and node.func.id == "ask":
                values += node.args[:3]
        for value in values:
            parts = value.values if isinstance(value, ast.JoinedStr) else [value]
            for part in parts:
                if (
                    isinstance(part, ast.Constant)
                    and isinstance(part.value, str)
                    and re.search(r"[A-Za-z]{2}", part.value)
                    and part.value not in UNTRANSLATED
                ):
                    found.append(f"{path.name}:{value.lineno}: {part.value!r}")
    return found


def test_no_screen_shows_an_english_literal_that_bypasses_the_catalog() -> None:
    ui = ROOT / "mobile" / "ui"
    bare = [line for py in sorted(ui.glob("*.py")) for line in _literal_texts_in_python(py)]
    kv_literal = re.compile(r"^\s*(text|hint_text|title):\s*(['\"])(.*)\2\s*$")
    for lineno, line in enumerate((ui / "screens.kv").read_text().splitlines(), start=1):
        match = kv_literal.match(line)
        if match and match[3] not in UNTRANSLATED:
            bare.append(f"screens.kv:{lineno}: {match[3]!r}")
    assert bare == [], "wrap these in _() and translate them"


def test_the_checker_above_catches_a_bare_literal(tmp_path: Path) -> None:
    screen = tmp_path / "screen.py"
    screen.write_text('label.text = "Skip meter"\nLabel(text=f"Meter {n}")\nlabel.text = _("ok")\n')
    assert _literal_texts_in_python(screen) == [
        "screen.py:1: 'Skip meter'",
        "screen.py:2: 'Meter '",
    ]


@pytest.mark.parametrize(
    ("tag", "language"),
    [
        ("zh_CN.UTF-8", "zh_CN"),
        ("zh-Hans-CN", "zh_CN"),
        ("zh", "zh_CN"),
        ("en_GB", "en"),
        ("en-US", "en"),
        ("fr_FR", None),
        ("C", None),
        ("", None),
    ],
)
def test_a_locale_names_the_language_the_product_speaks_for_it(
    tag: str, language: str | None
) -> None:
    assert language_of(tag) == language


def test_the_users_choice_comes_before_the_system_and_chinese_is_the_default() -> None:
    assert choose_language("en", env={"LANG": "zh_CN.UTF-8"}) == "en"
    assert choose_language(None, None, env={"LANG": "en_US.UTF-8"}) == "en"
    assert choose_language(None, env={"LANGUAGE": "fr:en", "LANG": "zh_CN"}) == "en"
    assert choose_language(None, env={"LANG": "C.UTF-8"}) == "zh_CN"
    assert choose_language("xx", env={}) == "zh_CN"


def test_a_browsers_accept_language_is_weighed() -> None:
    assert accepted_language("fr-FR,fr;q=0.9,en;q=0.8,zh-CN;q=0.7") == "en"
    assert accepted_language("zh-CN,zh;q=0.9,en;q=0.8") == "zh_CN"
    assert accepted_language("en;q=0,zh;q=0.5") == "zh_CN"
    assert accepted_language("de") is None
    assert accepted_language(None) is None
