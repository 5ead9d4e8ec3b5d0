"""The handheld writes Chinese: it finds a CJK font and makes it Kivy's default, or says why not."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mobile.ui.fonts import MISSING_FONT_ADVICE, FontNotFound, find_cjk_font
from tests.mobile.conftest import ROOT, window_env


def test_the_registered_font_draws_chinese_characters_that_roboto_draws_as_boxes(
    display: str, tmp_path: Path
) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "tests.mobile.glyph_probe"],
        cwd=ROOT,
        env=window_env(display, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    drawn = json.loads(run.stdout.strip().splitlines()[-1])
    # Kivy's own font has no glyph for either: two identical boxes. The probe can tell.
    assert drawn["roboto_distinct"] is False
    assert drawn["app_distinct"] is True, drawn


def test_a_font_named_in_the_environment_is_used(tmp_path: Path) -> None:
    font = tmp_path / "my-font.ttf"
    font.write_bytes(b"not parsed here")
    assert find_cjk_font({"GRIDWALK_FONT": str(font)}) == font


def test_a_named_font_that_is_missing_is_said_plainly(tmp_path: Path) -> None:
    with pytest.raises(FontNotFound, match="no such font file"):
        find_cjk_font({"GRIDWALK_FONT": str(tmp_path / "gone.ttf")})


def test_no_font_at_all_tells_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    # A machine with no fontconfig and no Android fonts: what a bare container has.
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(FontNotFound) as raised:
        find_cjk_font({})
    assert str(raised.value) == MISSING_FONT_ADVICE
    assert "fonts-wqy-microhei" in MISSING_FONT_ADVICE
