"""The translation catalogs hold every word a person sees, and the compiled files match them."""

from __future__ import annotations

import ast
import gettext
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from common.i18n import (
    DOMAIN,
    LOCALE_DIR,
    accepted_language,
    choose_language,
    language_of,
    translations,
)
from common.rules.facts import CODES
from common.rules.sentences import SENTENCES, flag_sentence
from scripts.catalogs import ROOT, extract, read

PLACEHOLDER = re.compile(r"\{(\w*)\}")
# Words on screen that are the same in every language: the product's name, examples of what to
# type (a server address, a user name).
UNTRANSLATED = {"Gridwalk", "http://server:8000", "reader1", ""}


def test_every_message_of_the_product_has_a_chinese_translation() -> None:
    """The handheld's, the desk pages' and the server's sentences alike."""
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


# ---------------------------------------------------------------- the server's sentences

# Each flag code with params of each of its sentences (as the rules in common/rules/ give them).
FLAG_PARAMS: list[tuple[str, dict[str, Any]]] = [
    ("no_fix", {"meter": "M-1", "problem": "none"}),
    ("no_fix", {"meter": "M-1", "problem": "early", "age_s": 600.0, "allowed_s": 120.0}),
    ("no_fix", {"meter": "M-1", "problem": "late", "age_s": 300.0, "allowed_s": 120.0}),
    ("no_fix", {"meter": "M-1", "problem": "coarse", "accuracy_m": 250.0, "allowed_m": 100.0}),
    (
        "mock_location",
        {"meter": "M-1", "fix_mock": True, "provider": None, "mock_points": 3, "window_s": 300},
    ),
    (
        "mock_location",
        {"meter": "M-1", "fix_mock": False, "provider": "gpx", "mock_points": 0, "window_s": 300},
    ),
    (
        "far_from_meter",
        {"meter": "M-1", "distance_m": 143.0, "radius_m": 30.0, "accuracy_m": 8.0},
    ),
    ("not_on_track", {"meter": "M-1", "window_s": 300, "radius_m": 30, "nearest_m": None}),
    ("not_on_track", {"meter": "M-1", "window_s": 300, "radius_m": 30, "nearest_m": 1500.0}),
    (
        "far_from_meter",
        {
            "meter": "M-1",
            "distance_m": 75.0,
            "radius_m": 30.0,
            "accuracy_m": 10.0,
            "uncertainty_m": 25.0,
            "grey_zone_m": 20.0,
        },
    ),
    (
        "far_from_meter",
        {"meter": "M-1", "distance_m": 90.0, "radius_m": 30.0, "accuracy_m": 10.0, "learned": True},
    ),
    (
        "not_on_track",
        {
            "meter": "M-1",
            "window_s": 300,
            "radius_m": 30,
            "nearest_m": 150.0,
            "uncertainty_m": 25.0,
            "learned": True,
        },
    ),
    (
        "no_dwell",
        {
            "meter": "M-1",
            "dwell_s": 9.0,
            "at_most_s": 11.0,
            "needed_s": 20.0,
            "nearest_m": 2.0,
            "radius_m": 30.0,
        },
    ),
    (
        "no_dwell",
        {
            "meter": "M-1",
            "dwell_s": 5.0,
            "at_most_s": 15.0,
            "needed_s": 20.0,
            "nearest_m": 12.0,
            "radius_m": 30.0,
            "uncertainty_m": 25.0,
        },
    ),
    (
        "too_fast",
        {"meter": "M-2", "previous": "M-1", "gap_s": 5.0, "distance_m": 80.0, "minimum_s": 15},
    ),
    (
        "impossible_speed",
        {
            "meter": "M-2",
            "previous": "M-1",
            "distance_m": 3000.0,
            "gap_s": 60.0,
            "speed_kmh": 180.0,
            "limit_kmh": 120.0,
        },
    ),
    (
        "impossible_speed",
        {
            "distance_m": 5000.0,
            "gap_s": 10.0,
            "at": "2026-12-01 01:00:00 UTC",
            "speed_kmh": None,
            "limit_kmh": 120.0,
            "steps": 3,
        },
    ),
    (
        "outside_window",
        {
            "meter": "M-1",
            "day": "2026-11-30",
            "zone": "UTC+08:00",
            "when": "before",
            "start": "2026-12-01",
            "end": "2026-12-05",
        },
    ),
    (
        "outside_window",
        {
            "meter": "M-1",
            "day": "2026-12-06",
            "zone": "UTC+08:00",
            "when": "after",
            "start": "2026-12-01",
            "end": "2026-12-05",
        },
    ),
    (
        "clock_skew",
        {
            "meter": "M-1",
            "stamped_s": 10800.0,
            "ahead_s": 3600.0,
            "tolerance_s": 300,
            "transit_s": 300,
        },
    ),
    (
        "clock_skew",
        {
            "meter": "M-1",
            "stamped_s": -900.0,
            "ahead_s": None,
            "tolerance_s": 300,
            "transit_s": 300,
        },
    ),
    (
        "negative_consumption",
        {"meter": "M-1", "value": "900", "last": "1000", "kwh": "-100", "digits": 6},
    ),
    ("high_consumption", {"meter": "M-1", "kwh": "900", "expected_kwh": "400"}),
    ("low_consumption", {"meter": "M-1", "kwh": "10", "expected_kwh": "50"}),
    ("unchanged", {"meter": "M-1", "value": "1100", "usual_kwh": None}),
    ("unchanged", {"meter": "M-1", "value": "1100", "usual_kwh": "80"}),
    ("missed", {"meter": "M-1", "sequence": 3, "start": "2026-12-01", "end": "2026-12-05"}),
    ("wrong_meter_order", {"inverted": 190, "pairs": 190, "threshold": 0.3}),
    (
        "replayed_track",
        {
            "day": "2026-12-02",
            "copied_day": "2026-12-01",
            "assignment": None,
            "shift_s": 86400,
            "repeated": 5890,
            "points": 6012,
            "reader": None,
            "device": None,
        },
    ),
    (
        "replayed_track",
        {
            "day": "2026-12-02",
            "copied_day": "2026-11-28",
            "assignment": 41,
            "shift_s": 345617,
            "repeated": 270,
            "points": 296,
            "reader": "reader1",
            "device": "device-0001",
        },
    ),
    ("fix_on_meter", {"meter": "M-1", "distance_m": 0.0, "count": 12, "limit_m": 0.5}),
]
# English that stays in a Chinese sentence: a name of the trade.
ENGLISH_IN_CHINESE = {"GPS"}


def _english_words(text: str, params: Mapping[str, Any]) -> set[str]:
    for value in params.values():
        if isinstance(value, str):
            text = text.replace(value, "")
    return set(re.findall(r"[A-Za-z]{2,}", text)) - ENGLISH_IN_CHINESE


def test_every_flag_code_has_a_sentence_and_the_samples_cover_them_all() -> None:
    assert set(SENTENCES) == set(CODES)
    assert {code for code, _ in FLAG_PARAMS} == set(CODES)


@pytest.mark.parametrize(("code", "params"), FLAG_PARAMS)
def test_a_flag_is_said_in_chinese_with_no_english_left(code: str, params: dict[str, Any]) -> None:
    english = flag_sentence(code, params)
    chinese = flag_sentence(code, params, translations("zh_CN").gettext)
    assert chinese != english
    assert _english_words(chinese, params) == set(), chinese
    assert re.search(r"[\u4e00-\u9fff]", chinese), chinese


def test_the_checker_above_finds_english_left_in_a_sentence() -> None:
    assert _english_words("电表 M-1 has no position", {"meter": "M-1"}) == {"has", "no", "position"}


def _sentences_not_from_the_catalog(path: Path) -> list[str]:
    """ItemRefused(code, sentence) calls whose sentence is written in place (a literal or an
    f-string) instead of a template marked N_ (or one picked from such templates)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "ItemRefused"
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant | ast.JoinedStr)
        ):
            found.append(f"{path.name}:{node.lineno}")
    return found


def test_every_refusal_of_the_server_is_a_template_of_the_catalog() -> None:
    bare = [
        line
        for py in sorted((ROOT / "server").rglob("*.py"))
        for line in _sentences_not_from_the_catalog(py)
    ]
    assert bare == [], "mark the sentence N_(...) with its numbers as keyword params"


def test_the_refusal_checker_catches_a_sentence_written_in_place(tmp_path: Path) -> None:
    source = tmp_path / "refusals.py"
    source.write_text(
        'raise ItemRefused("x", f"no job {job}")\nraise ItemRefused("x", N_("no job {job}"))\n'
    )
    assert _sentences_not_from_the_catalog(source) == ["refusals.py:1"]


# ---------------------------------------------------------------- the desk pages

PAGES = ROOT / "server" / "web"
# Words on a page that are the same in every language.
PAGE_WORDS = {"Gridwalk", "GPX", "GeoJSON", "CSV"}
_JS_CALL_T = re.compile(r"""\bt\(\s*(["'])((?:\\.|(?!\1).)*)\1""")
_JS_TEXT = re.compile(
    r"""(?:\bh\(\s*"[\w-]+"\s*,\s*(?:\{[^{}()]*\}|null)\s*,\s*"""  # an element's first text
    r"""|\.textContent\s*=\s*"""
    r"""|\b(?:placeholder|title|label|intro|rolesText|"aria-label")\s*:\s*"""
    r"""|\b(?:fact|confirm|alert)\(\s*)"""
    r"""(["'`])((?:\\.|(?!\1).)*)\1"""
)


def _english(text: str) -> bool:
    text = re.sub(r"\$\{[^}]*\}", "", text)  # a template literal's expressions are not words
    return any(w not in PAGE_WORDS for w in re.findall(r"[A-Za-z]{2,}", text))


def _without_comments(script: str) -> str:
    return re.sub(r"/\*.*?\*/|^\s*//[^\n]*", " ", script, flags=re.S | re.M)


def bare_words_in_script(source: str) -> list[str]:
    """Strings a page's script puts on screen without t()."""
    return [m[2] for m in _JS_TEXT.finditer(_without_comments(source)) if _english(m[2])]


def bare_words_in_template(source: str) -> list[str]:
    """English a page's template holds outside {{ _("...") }}: in its text or the attributes a
    person reads."""
    source = re.sub(
        r"<!--.*?-->|<script.*?</script>|\{\{.*?\}\}|\{%.*?%\}", " ", source, flags=re.S
    )
    said = re.findall(r"""(?:placeholder|title|aria-label|alt)="([^"]*)\"""", source)
    said += re.sub(r"<[^>]*>", "\n", source).splitlines()
    return [s.strip() for s in said if _english(s)]


def test_every_word_a_page_says_goes_through_the_catalog() -> None:
    scripts = {
        p.name: p.read_text(encoding="utf-8") for p in sorted((PAGES / "static").glob("*.js"))
    }
    templates = {
        p.name: p.read_text(encoding="utf-8") for p in sorted((PAGES / "templates").glob("*.html"))
    }
    bare = [f"{name}: {s!r}" for name, text in scripts.items() for s in bare_words_in_script(text)]
    bare += [
        f"{name}: {s!r}" for name, text in templates.items() for s in bare_words_in_template(text)
    ]
    assert bare == [], "say these with t(...) in a script, {{ _(...) }} in a template"


def test_every_t_call_of_a_page_is_extracted_into_the_catalog() -> None:
    """Babel's javascript extractor does not see a t() inside a `template ${literal}`: such a
    message would never be translated."""
    catalog = {m.id for m in extract()}
    called = {
        m[2]
        for p in (PAGES / "static").glob("*.js")
        for m in _JS_CALL_T.finditer(_without_comments(p.read_text(encoding="utf-8")))
    }
    assert sorted(called - catalog) == []


def test_the_page_checkers_above_catch_bare_words() -> None:
    script = (
        'h("h2", {}, "Flags"); h("span", { class: "x" }, `${n} read`); h("td", {}, t("When"));\n'
        'el.textContent = "Pick one"; fact("Value", v); h("button", {}, "GPX");\n'
        'const x = { placeholder: t("code"), title: "Close it" };\n'
    )
    assert bare_words_in_script(script) == ["Flags", "${n} read", "Pick one", "Value", "Close it"]
    template = (
        '<h2>{{ _("Flags") }}</h2>\n<p>Missing map</p>\n<input placeholder="code">\n'
        '<button aria-label="{{ _("Ask") }}">CSV</button><!-- a comment -->\n'
    )
    assert bare_words_in_template(template) == ["code", "Missing map"]
