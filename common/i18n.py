"""The one translation system of the product: gettext catalogs under common/locale/, read by the
handheld, the desk pages and the server's sentences alike.

The message ids are the English sentences (so English needs no catalog); Simplified Chinese is
`common/locale/zh_CN/LC_MESSAGES/gridwalk.po`, in the trade's own words (DOMAIN.md's glossary),
compiled to `.mo` by `python -m scripts.catalogs compile`. A language is chosen by the user (the
app's or page's choice), then the system's locale; the product's users are in China, so a
machine that says nothing (C, POSIX) gets Chinese.
"""

from __future__ import annotations

import gettext
import os
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

DOMAIN = "gridwalk"
LOCALE_DIR = Path(__file__).with_name("locale")
# Each language the product speaks, named in itself (how a language menu shows it).
LANGUAGES = {"zh_CN": "简体中文", "en": "English"}
DEFAULT_LANGUAGE = "zh_CN"


def language_of(tag: str | None) -> str | None:
    """The product's language for a locale or language tag ("zh-CN", "zh_CN.UTF-8", "zh-Hans",
    "en-GB", "en_US"), or None when it speaks none of it."""
    if not tag:
        return None
    base = tag.split(".")[0].split("@")[0].replace("-", "_").strip()
    primary = base.split("_")[0].lower()
    if primary == "zh":
        return "zh_CN"  # the only Chinese there is a catalog of; a Taiwanese reader reads it too
    if primary == "en":
        return "en"
    return None


def system_language(env: Mapping[str, str] | None = None) -> str | None:
    """The language the machine's locale asks for (gettext's own order of variables)."""
    env = os.environ if env is None else env
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        for tag in env.get(name, "").split(":"):
            found = language_of(tag)
            if found is not None:
                return found
    return None


def choose_language(*preferences: str | None, env: Mapping[str, str] | None = None) -> str:
    """The first of `preferences` the product speaks, else the system's, else Chinese."""
    for preference in preferences:
        found = language_of(preference)
        if found is not None:
            return found
    return system_language(env) or DEFAULT_LANGUAGE


def accepted_language(header: str | None) -> str | None:
    """The best language of an HTTP Accept-Language header that the product speaks."""
    if not header:
        return None
    weighted: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        found = language_of(tag)
        if found is not None and quality > 0:
            weighted.append((-quality, index, found))
    return min(weighted)[2] if weighted else None


@lru_cache(maxsize=len(LANGUAGES))
def translations(language: str) -> gettext.NullTranslations:
    """The compiled catalog of `language`; English (the ids themselves) when there is none."""
    return gettext.translation(DOMAIN, LOCALE_DIR, languages=[language], fallback=True)


def say(
    template: str, params: Mapping[str, Any], gettext: Callable[[str], str] = lambda m: m
) -> str:
    """A catalog message (`template`, marked N_) through `gettext` (English, the message itself,
    by default) with its values filled in; a message without values is said as it is."""
    said = gettext(template)
    return said.format(**params) if params else said


def N_(message: str) -> str:  # noqa: N802 - gettext's name for "mark, translate later"
    """Marks a message for the catalog (`scripts.catalogs extract` finds it) without translating
    it: it is said later, in the language of whoever reads it."""
    return message


def translate(language: str, message: str) -> str:
    """`message` (an English message id) in `language`."""
    return translations(language).gettext(message)


def catalog_languages() -> Iterable[str]:
    """The languages with a catalog of their own (all but English)."""
    return [lang for lang in LANGUAGES if (LOCALE_DIR / lang / "LC_MESSAGES").is_dir()]
