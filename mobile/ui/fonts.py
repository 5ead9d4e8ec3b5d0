"""The font the handheld writes with: one with Chinese glyphs, since Kivy's own Roboto has none
and every customer's name, address and the app's own words would show as empty boxes."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

# Where Android keeps its CJK faces, newest first (AOSP ships Noto Sans CJK since Android 7;
# older devices and some vendors' builds have only Droid Sans Fallback).
ANDROID_FONTS = (
    "/system/fonts/NotoSansCJK-Regular.ttc",
    "/system/fonts/NotoSansSC-Regular.otf",
    "/system/fonts/NotoSansHans-Regular.otf",
    "/system/fonts/DroidSansFallbackFull.ttf",
    "/system/fonts/DroidSansFallback.ttf",
)
# Families preferred among what fontconfig lists for Chinese: proportional sans faces made for
# the screen, before monospaced and serif ones.
PREFERRED_FAMILIES = (
    "Noto Sans CJK SC",
    "Source Han Sans SC",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "Droid Sans Fallback",
)
FONT_ENV = "GRIDWALK_FONT"
MISSING_FONT_ADVICE = (
    "no font with Chinese characters was found: names, addresses and the app's words will show "
    f"as empty boxes. Install one (Debian: apt-get install fonts-wqy-microhei) or set {FONT_ENV} "
    "to a .ttf/.ttc/.otf file."
)


class FontNotFound(Exception):  # noqa: N818 - a situation the app reports, not a crash
    """No usable CJK font on this machine, or the one named in GRIDWALK_FONT is not there."""


def _fontconfig_candidates() -> list[Path]:
    """Files fontconfig says cover Simplified Chinese, preferred families first."""
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return []
    try:
        listing = subprocess.run(  # noqa: S603 - fc-list from PATH, fixed arguments
            [fc_list, ":lang=zh-cn", "file", "family", "style"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    ranked: list[tuple[int, int, str]] = []
    for line in listing.splitlines():
        path, _, rest = line.partition(": ")
        families = rest.split(":style=")[0]
        style = rest.split(":style=")[1] if ":style=" in rest else ""
        rank = next(
            (i for i, name in enumerate(PREFERRED_FAMILIES) if name in families.split(",")),
            len(PREFERRED_FAMILIES),
        )
        regular = 0 if "Regular" in style.split(",") or not style else 1
        ranked.append((rank, regular, path.strip()))
    return [Path(p) for _, _, p in sorted(ranked) if p]


def find_cjk_font(env: Mapping[str, str] | None = None) -> Path:
    """The font file to write with: the one named by GRIDWALK_FONT, else Android's system CJK
    face, else the best one fontconfig lists for Chinese; FontNotFound when there is none."""
    env = os.environ if env is None else env
    named = env.get(FONT_ENV, "").strip()
    if named:
        path = Path(named)
        if not path.is_file():
            raise FontNotFound(f"{FONT_ENV}={named}: no such font file")
        return path
    for candidate in ANDROID_FONTS:
        if Path(candidate).is_file():
            return Path(candidate)
    for path in _fontconfig_candidates():
        if path.is_file():
            return path
    raise FontNotFound(MISSING_FONT_ADVICE)


def use_cjk_font(env: Mapping[str, str] | None = None) -> Path:
    """Make the CJK font Kivy's default for every label and text field (before any widget is
    built); returns the file. Bold text is drawn from the same face, emboldened by SDL_ttf."""
    from kivy.core.text import DEFAULT_FONT, LabelBase

    path = find_cjk_font(env)
    LabelBase.register(DEFAULT_FONT, fn_regular=str(path))
    return path
