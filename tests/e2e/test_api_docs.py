"""/docs in a real browser with no internet: Swagger UI comes from this server, and a person can
read the sync contract there."""

from __future__ import annotations

import pytest
from selenium.webdriver import Chrome
from selenium.webdriver.common.by import By
from sqlalchemy import Engine

from server.core.config import Settings
from server.main import create_app
from tests.e2e.conftest import ServeApp, css, js_errors, screenshot, wait

# A browser reads the machine's clock: so does the server here.
pytestmark = pytest.mark.real_clock


def test_the_api_docs_render_offline_with_every_area_of_the_api(
    browser: Chrome, serve: ServeApp, settings: Settings, engine: Engine
) -> None:
    base = serve(create_app(settings, engine))
    browser.get(f"{base}/docs")
    wait(browser, lambda d: len(css(d, ".opblock")) > 20, timeout=30)
    title = browser.find_element(By.CSS_SELECTOR, ".swagger-ui .info .title").text
    assert title.startswith("Gridwalk")
    paths = {e.text for e in css(browser, ".opblock-summary-path")}
    assert {"/api/v1/auth/login", "/api/v1/sync/pull", "/api/v1/sync/push"} <= paths
    assert browser.find_elements(By.CSS_SELECTOR, "button.authorize")
    scripts = [s.get_attribute("src") for s in css(browser, "script[src]")]
    assert scripts
    assert all(src.startswith(base) for src in scripts), scripts
    screenshot(browser, "api-docs")
    assert js_errors(browser) == []
