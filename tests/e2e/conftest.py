"""Browser fixtures: headless Debian Chromium driven by selenium, and the real app served by
uvicorn in a thread on the test database.

In CI (CI=true) a missing chromium or chromedriver fails the browser tests; elsewhere they are
skipped with the command that installs them.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from selenium.webdriver import Chrome
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait
from sqlalchemy import Engine

from server.core.config import PROJECT_DIR, Settings

CHROMIUM = Path(os.environ.get("GRIDWALK_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("GRIDWALK_CHROMEDRIVER", "/usr/bin/chromedriver"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ARTIFACTS = PROJECT_DIR / "test-artifacts"
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--window-size=1440,1000",
    "--lang=en-GB",
)

ServeApp = Callable[[FastAPI], str]


def backend(settings: Settings) -> str:
    return settings.database_url.split(":", 1)[0].split("+", 1)[0]


def screenshot(browser: Chrome, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    browser.save_screenshot(str(path))
    return path


def wait(browser: Chrome, condition: Any, timeout: float = 10) -> Any:
    return WebDriverWait(browser, timeout).until(lambda d: condition(d))


def css(browser: Chrome | WebElement, selector: str) -> list[WebElement]:
    return browser.find_elements(By.CSS_SELECTOR, selector)


def js_errors(browser: Chrome) -> list[str]:
    return [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]


@pytest.fixture(scope="session")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory, downloads: Path) -> Iterator[Chrome]:
    """One headless Chromium for the session; each test's server is a new origin, so no
    storage carries over from one test to the next."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        message = (
            f"browser tests need {' and '.join(missing)}: "
            "apt-get install -y chromium chromium-driver (scripts/test.sh does it as root)"
        )
        if IN_CI:
            pytest.fail(f"CI=true: {message}")
        pytest.skip(message)
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # Under a moved clock (scripts/test.sh preloads libfaketime) Chromium starts only if its
    # monotonic clock is faked too; Python's timed waits need it left alone.
    env = {k: v for k, v in os.environ.items() if k != "FAKETIME_DONT_FAKE_MONOTONIC"}
    driver = Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER), env=env))
    yield driver
    driver.quit()


@pytest.fixture
def serve(engine: Engine) -> Iterator[ServeApp]:
    """Serve an app with uvicorn on 127.0.0.1 and a free port; gives its base URL.

    It takes the test's engine so that the server stops before the engine is disposed."""
    running: list[tuple[uvicorn.Server, threading.Thread, socket.socket]] = []

    def start(app: FastAPI) -> str:
        # Bound here and handed over, so no other process can take the port in between.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", ws="none", lifespan="on"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        running.append((server, thread, sock))
        deadline = time.monotonic() + 10
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                pytest.fail("uvicorn did not start")
            time.sleep(0.02)
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread, sock in running:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


# ---------------------------------------------------------------- the pages' language

# English a Chinese page may show: the product's name, the export formats, the language menu's
# "English", units and the map's scale.
ENGLISH_ON_A_CHINESE_PAGE = {"Gridwalk", "GPX", "GeoJSON", "CSV", "English", "km", "kWh", "GPS"}


def choose_language(browser: Chrome, language: str, html_lang: str) -> None:
    """Pick `language` in the header's menu and wait for the page to come back in it."""
    wait(browser, lambda d: css(d, "#language"))
    Select(browser.find_element(By.ID, "language")).select_by_value(language)
    wait(browser, lambda d: d.execute_script("return document.documentElement.lang") == html_lang)
    wait(browser, lambda d: css(d, "#language"))


def english_left(browser: Chrome, data: Any) -> set[str]:
    """English words on the page that are neither the data shown (names, codes, what people
    typed: any string in `data`) nor allowed on a Chinese page."""
    text: str = browser.execute_script("return document.body.innerText")
    said = json.dumps(data, ensure_ascii=False)
    allowed = set(re.findall(r"[A-Za-z]{2,}", said)) | ENGLISH_ON_A_CHINESE_PAGE
    return set(re.findall(r"[A-Za-z]{2,}", text)) - allowed
