"""Draws two different Chinese characters in a real Kivy window, once with the font the app
registers and once with Kivy's own Roboto, and prints whether each pair came out different.

Run by tests/mobile/test_fonts.py in its own process on a virtual display:
    python -m tests.mobile.glyph_probe
A font without Chinese glyphs draws both characters as the same empty box.
"""

from __future__ import annotations

import json

from kivy.core.window import Window  # noqa: F401 - a GL context, before any texture
from kivy.resources import resource_find

from mobile.ui.fonts import use_cjk_font


def _pixels(text: str, font_name: str | None = None) -> bytes:
    from kivy.core.text import Label as CoreLabel

    options: dict[str, object] = {"font_size": 40}
    if font_name is not None:
        options["font_name"] = font_name
    label = CoreLabel(text=text, **options)
    label.refresh()
    return bytes(label.texture.pixels)


def main() -> None:
    roboto = resource_find("data/fonts/Roboto-Regular.ttf")
    before = _pixels("抄", roboto) != _pixels("表", roboto)
    font = use_cjk_font()
    after = _pixels("抄") != _pixels("表")
    print(json.dumps({"font": str(font), "roboto_distinct": before, "app_distinct": after}))


if __name__ == "__main__":
    main()
