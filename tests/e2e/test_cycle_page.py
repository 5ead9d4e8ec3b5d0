"""The cycle overview page in a real browser: a supervisor sees the routes and readers of their
grid's cycle, sorts by clicking a header, filters by status and by reader, sees what is unread
and the days left highlighted, and opens a route's assignment on the audit page; in English and
in Chinese, at a wide desk and at 1024x768."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from selenium.webdriver import Chrome
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select
from sqlalchemy import Engine
from sqlmodel import Session

from server.core.config import Settings
from server.main import create_app
from tests.e2e.conftest import (
    ServeApp,
    backend,
    choose_language,
    css,
    english_left,
    js_errors,
    screenshot,
    wait,
)
from tests.factories import CYCLE, PASSWORD, TODAY, assign, make_route
from tests.server.test_cycle_overview import build, overview

pytestmark = pytest.mark.real_clock


def sign_in(browser: Chrome, base: str, username: str) -> None:
    browser.get(f"{base}/cycle")
    js_errors(browser)  # reading the log empties it: what the last test left goes
    wait(browser, lambda d: css(d, "#username")[0].is_displayed())
    browser.find_element(By.ID, "username").send_keys(username)
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "login-submit").click()
    wait(browser, lambda d: d.find_element(By.ID, "who-name").text == username)


def shown_routes(browser: Chrome) -> list[str]:
    # Read in one go: the rows are redrawn whenever an answer comes.
    routes: list[str] = browser.execute_script(
        "return [...document.querySelectorAll('#route-rows tr[data-route]')]"
        ".map((r) => r.dataset.route)"
    )
    return routes


def cell(browser: Chrome, route: str, name: str) -> Any:
    return browser.find_element(
        By.CSS_SELECTOR, f'#route-rows tr[data-route="{route}"] td[data-cell="{name}"]'
    )


def classes(element: Any) -> set[str]:
    return set((element.get_attribute("class") or "").split())


def test_a_supervisor_sees_the_cycle_sorts_filters_and_opens_a_route(
    browser: Chrome,
    serve: ServeApp,
    client: TestClient,
    session: Session,
    settings: Settings,
    engine: Engine,
) -> None:
    u = build(session, settings, client)
    # its window ends today with nothing read, the last day to read it.
    make_route(session, "R-5", 2)
    assign(session, "R-5", "reader2", start=TODAY - timedelta(days=5), end=TODAY)
    api = overview(client, u.sup)
    base = serve(create_app(settings, engine))
    browser.set_window_size(1440, 1000)
    sign_in(browser, base, "sup1")

    wait(browser, lambda d: shown_routes(d) == ["R-1", "R-2", "R-4", "R-5"])
    assert Select(browser.find_element(By.ID, "cycle-select")).first_selected_option.text == CYCLE
    # The grid menu is for those with more than one grid: a supervisor has theirs.
    assert not browser.find_element(By.ID, "grid-filter").is_displayed()
    totals = {
        t.get_attribute("data-total"): t.find_element(By.TAG_NAME, "dd").text
        for t in css(browser, "#totals .total")
    }
    assert (totals["routes"], totals["meters"], totals["unread"]) == (
        "4",
        str(api["totals"]["meters"]),
        str(api["totals"]["unread"]),
    )
    # Unread meters stand out; a route with none does not; days left are the API's.
    assert cell(browser, "R-1", "unread").text == "1"
    assert "unread" in classes(cell(browser, "R-1", "unread"))
    assert "none" in classes(cell(browser, "R-4", "unread"))
    r1 = next(r for r in api["routes"] if r["route_code"] == "R-1")
    assert cell(browser, "R-1", "days_left").text == str(r1["days_left"])
    assert "urgent" not in classes(cell(browser, "R-1", "days_left"))
    # The last day of a window with meters unread is urgent.
    assert cell(browser, "R-5", "days_left").text == "1"
    assert "urgent" in classes(cell(browser, "R-5", "days_left"))
    statuses = {
        r.get_attribute("data-route"): r.find_element(By.CSS_SELECTOR, ".badge").text
        for r in css(browser, "#route-rows tr[data-route]")
    }
    assert statuses == {
        "R-1": "In progress",
        "R-2": "Not started",
        "R-4": "Complete",
        "R-5": "Not started",
    }
    readers = {
        r.get_attribute("data-reader"): [c.text for c in r.find_elements(By.TAG_NAME, "td")]
        for r in css(browser, "#reader-rows tr[data-reader]")
    }
    assert readers["reader1"][1:3] == ["2", "7"]  # routes, meters
    # Fails over the last cycles, as the API counts them (validation on push adds its own).
    history = client.get("/api/v1/audit/readers/flags", headers=u.sup).json()
    [past] = [r for r in history["readers"] if r["reader"] == "reader1"]
    assert readers["reader1"][-1].split("\n") == [
        str(past["fail"]),
        f"{past['fail_per_100']} per 100 readings",
    ]
    screenshot(browser, f"cycle-page-{backend(settings)}")

    # Sort by clicking a header: most unread first, then again for the fewest.
    unread = '#route-head th[data-sort="unread"] button'
    css(browser, unread)[0].click()
    wait(browser, lambda d: shown_routes(d) == ["R-2", "R-5", "R-1", "R-4"])
    assert (
        css(browser, '#route-head th[data-sort="unread"]')[0].get_attribute("aria-sort")
        == "descending"
    )
    css(browser, unread)[0].click()
    wait(browser, lambda d: shown_routes(d) == ["R-4", "R-1", "R-5", "R-2"])

    # Filter by status, then by a reader's name.
    Select(browser.find_element(By.ID, "status-filter")).select_by_value("complete")
    wait(browser, lambda d: shown_routes(d) == ["R-4"])
    Select(browser.find_element(By.ID, "status-filter")).select_by_value("")
    browser.find_element(By.ID, "reader-filter").send_keys("reader2")
    wait(browser, lambda d: shown_routes(d) == ["R-5", "R-2"])
    assert [r.get_attribute("data-reader") for r in css(browser, "#reader-rows tr")] == ["reader2"]
    browser.find_element(By.ID, "reader-filter").clear()
    browser.find_element(By.ID, "reader-filter").send_keys("nobody")
    wait(browser, lambda d: "No routes match." in d.find_element(By.ID, "route-rows").text)

    # The audit page links here, and a route opens its assignment there.
    links = [a.get_attribute("href") for a in css(browser, "#page-links a")]
    assert f"{base}/audit" in links
    browser.find_element(By.ID, "reader-filter").clear()
    browser.find_element(By.ID, "reader-filter").send_keys("reader1")
    wait(browser, lambda d: shown_routes(d) == ["R-4", "R-1"])
    css(browser, '#route-rows tr[data-route="R-1"] a.route-link')[0].click()
    wait(browser, lambda d: d.current_url.startswith(f"{base}/audit"))
    wait(browser, lambda d: "R-1" in d.find_element(By.ID, "assignment-title").text)
    assert f"#assignment={u.r1.assignment.id}" in browser.current_url
    assert f"{base}/cycle" in [a.get_attribute("href") for a in css(browser, "#page-links a")]
    assert js_errors(browser) == []


def test_the_cycle_page_speaks_chinese_and_holds_at_1024x768(
    browser: Chrome,
    serve: ServeApp,
    client: TestClient,
    session: Session,
    settings: Settings,
    engine: Engine,
) -> None:
    u = build(session, settings, client)
    base = serve(create_app(settings, engine))
    browser.set_window_size(1440, 1000)
    sign_in(browser, base, "admin1")
    wait(browser, lambda d: len(shown_routes(d)) == 4)
    choose_language(browser, "zh_CN", "zh-CN")
    wait(browser, lambda d: len(shown_routes(d)) == 4)
    # An admin sees every grid, and may pick one.
    assert browser.find_element(By.ID, "grid-filter").is_displayed()
    statuses = [b.text for b in css(browser, "#route-rows .badge")]
    assert statuses == ["进行中", "未开始", "漏抄", "已抄完"]
    headers = browser.find_element(By.ID, "route-head").text
    for word in ("抄表段", "网格", "抄表员", "待抄", "剩余天数"):
        assert word in headers
    said = [
        overview(client, u.admin),
        client.get("/api/v1/audit/readers/flags", headers=u.admin).json(),
        "admin1",  # the user shown in the header
    ]
    assert english_left(browser, said) == set()
    screenshot(browser, f"cycle-page-zh-{backend(settings)}")

    Select(browser.find_element(By.ID, "grid-filter")).select_by_value("G2")
    wait(browser, lambda d: shown_routes(d) == ["R-3"])
    # A window that closed with meters unread: unread marked late, no days left.
    assert "late" in classes(cell(browser, "R-3", "unread"))
    assert cell(browser, "R-3", "days_left").text == "已关闭"
    Select(browser.find_element(By.ID, "grid-filter")).select_by_value("")
    wait(browser, lambda d: len(shown_routes(d)) == 4)

    browser.set_window_size(1024, 768)
    try:
        wait(browser, lambda d: d.execute_script("return window.innerWidth") <= 1024)
        # Nothing wider than the window: the tables stack and scroll inside their cards.
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - window.innerWidth"
        )
        assert overflow <= 0
        screenshot(browser, f"cycle-page-zh-1024-{backend(settings)}")
    finally:
        browser.set_window_size(1440, 1000)
    choose_language(browser, "en", "en-GB")
    assert js_errors(browser) == []
