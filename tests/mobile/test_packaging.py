"""The handheld is packaged apart from the server: it must not need the server's libraries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_handheld_core_imports_no_server_library() -> None:
    code = (
        "import sys, mobile.core.field, mobile.main\n"
        "bad = [m for m in ('sqlalchemy', 'sqlmodel', 'fastapi', 'pydantic', 'server', 'kivy')"
        " if m in sys.modules]\n"
        "print(','.join(bad))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert run.stdout.strip() == ""


def test_the_android_stage_holds_main_the_spec_and_the_code(tmp_path: Path) -> None:
    subprocess.run(
        [str(ROOT / "mobile/android/stage.sh"), str(tmp_path / "apk")],
        check=True,
        capture_output=True,
    )
    staged = tmp_path / "apk"
    assert (staged / "main.py").is_file()
    assert (staged / "mobile/core/store.py").is_file()
    assert (staged / "mobile/ui/screens.kv").is_file()
    assert (staged / "common/geo.py").is_file()
    # The handheld speaks Chinese on the device too: the compiled catalog goes into the APK.
    assert (staged / "common/locale/zh_CN/LC_MESSAGES/gridwalk.mo").is_file()
    assert not (staged / "mobile/android").exists()
    spec = (staged / "buildozer.spec").read_text()
    for permission in ("ACCESS_FINE_LOCATION", "ACCESS_BACKGROUND_LOCATION", "INTERNET"):
        assert permission in spec
    for requirement in ("kivy==2.3.1", "plyer==2.1.0", "babel", "httpx", "gpxpy", "geopy"):
        assert requirement in spec
    assert "mo" in spec.split("source.include_exts = ")[1].splitlines()[0].split(",")
