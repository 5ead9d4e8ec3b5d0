"""The offline base map in a real browser: with GRIDWALK_MAP_MBTILES set, the audit page's map
loads its tiles from Gridwalk's own /tiles/ (no tile server, no internet)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from selenium.webdriver import Chrome
from sqlalchemy import Engine
from sqlmodel import Session

from server.core.config import Settings
from server.main import create_app
from tests.e2e.conftest import ServeApp, backend, css, js_errors, screenshot, wait
from tests.e2e.test_audit_page import Day, open_assignment, sign_in
from tests.factories import make_mbtiles, solid_png, tile_of

pytestmark = pytest.mark.real_clock

TILE = solid_png((226, 236, 214))  # a pale green: visibly not the blank grid


def test_the_audit_map_loads_its_tiles_from_the_mbtiles_file(
    browser: Chrome,
    serve: ServeApp,
    client: TestClient,
    session: Session,
    settings: Settings,
    engine: Engine,
    tmp_path: Path,
) -> None:
    data = Day(session, settings, client)
    first = data.day.meters[0]
    # The tiles around the route at every zoom the map may open at; the rest of the view is
    # tiles the file does not hold (404, drawn as nothing).
    tiles = {}
    for z in range(0, 20):
        x, y = tile_of(first.lat, first.lon, z)
        for dx in (-2, -1, 0, 1, 2):
            for dy in (-2, -1, 0, 1, 2):
                if 0 <= x + dx < 1 << z and 0 <= y + dy < 1 << z:
                    tiles[(z, x + dx, y + dy)] = TILE
    mbtiles = make_mbtiles(tmp_path / "city.mbtiles", tiles, attribution="© Test Survey")
    with_map = settings.model_copy(update={"map_mbtiles": str(mbtiles)})
    base = serve(create_app(with_map, engine))

    sign_in(browser, base)
    wait(browser, lambda d: d.find_element("id", "who-name").text == "sup1")
    open_assignment(browser, data.assignment_id)
    wait(browser, lambda d: len(css(d, "#map path.pin")) == len(data.day.meters))
    loaded = wait(
        browser,
        lambda d: [
            img
            for img in css(d, "#map img.leaflet-tile-loaded")
            if "/tiles/" in (img.get_attribute("src") or "")
        ],
    )
    src = loaded[0].get_attribute("src") or ""
    assert src.startswith(f"{base}/tiles/")
    # The picture itself came through: 256 pixels wide, the file's colour.
    assert browser.execute_script("return arguments[0].naturalWidth", loaded[0]) == 256
    assert "no-tiles" not in (css(browser, "#map")[0].get_attribute("class") or "")
    assert "© Test Survey" in css(browser, "#map .leaflet-control-attribution")[0].text
    screenshot(browser, f"audit-page-base-map-{backend(settings)}")
    # Tiles outside the file are 404s the map draws as nothing; nothing else went wrong.
    assert [e for e in js_errors(browser) if "/tiles/" not in e] == []
