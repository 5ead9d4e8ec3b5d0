"""What the handheld's window tests share: a virtual X display, and the environment a Kivy
process needs to open its window there."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def display() -> Iterator[str]:
    """A virtual X display for real windows."""
    if shutil.which("Xvfb") is None:
        message = "Xvfb is missing (apt-get install xvfb xauth libmtdev1; `make test` does)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    x_dir = Path("/tmp/.X11-unix")  # noqa: S108 - where X servers put their sockets
    number = next(
        n
        for n in range(90, 200)
        if not (x_dir / f"X{n}").exists() and not (x_dir.parent / f".X{n}-lock").exists()
    )
    proc = subprocess.Popen(
        ["Xvfb", f":{number}", "-screen", "0", "540x960x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        if (x_dir / f"X{number}").exists():
            break
        proc.poll()
        if proc.returncode is not None:
            raise RuntimeError("Xvfb did not start")
        time.sleep(0.05)
    yield f":{number}"
    proc.terminate()
    proc.wait(timeout=10)


def window_env(display: str, tmp_path: Path) -> dict[str, str]:
    """The environment of a Kivy process drawing on `display`, its settings under `tmp_path`."""
    return os.environ | {
        "DISPLAY": display,
        "SDL_VIDEODRIVER": "x11",
        "KIVY_NO_ARGS": "1",
        "KIVY_HOME": str(tmp_path / "kivy"),
        "KCFG_GRAPHICS_WIDTH": "480",
        "KCFG_GRAPHICS_HEIGHT": "860",
        "KIVY_LOG_MODE": "PYTHON",
        "PYTHONPATH": str(ROOT),
    }


@pytest.fixture(autouse=True)
def english() -> Iterator[None]:
    """The handheld's core speaks English in these tests (their asserts read its sentences);
    the screens' tests choose their language per scenario, Chinese among them."""
    from mobile.core import language

    before = language.current()
    language.use("en")
    yield
    language.use(before)
