"""The offline base map: Gridwalk serves the tiles of the utility's MBTiles file at
/tiles/{z}/{x}/{y}.png (XYZ asked, TMS stored), and the audit page is pointed at them; without
the file the page keeps its blank background."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.core.config import Settings
from server.main import create_app
from server.web import pages
from tests.factories import make_mbtiles, solid_png

RED, BLUE = solid_png((200, 40, 40)), solid_png((40, 40, 200))


def app_settings(tmp_path: Path, **extra: Any) -> Settings:
    # The tiles never touch the database: an unmigrated file will do.
    return Settings(
        environment="test",
        database_url=f"sqlite:///{tmp_path / 'x.db'}",
        close_due_every_minutes=0,
        validation_workers=0,
        **extra,
    )


@pytest.fixture
def mbtiles(tmp_path: Path) -> Path:
    # Zoom 1 has two rows: XYZ row 0 (north) is TMS row 1. Red is the north-west tile.
    return make_mbtiles(
        tmp_path / "base.mbtiles",
        {(1, 0, 0): RED, (1, 1, 1): BLUE},
        attribution='<a href="https://example.org">© Example Survey</a>',
        maxzoom="1",
    )


def test_tiles_come_from_the_mbtiles_file_with_the_rows_flipped(
    tmp_path: Path, mbtiles: Path
) -> None:
    with TestClient(create_app(app_settings(tmp_path, map_mbtiles=str(mbtiles)))) as client:
        north_west = client.get("/tiles/1/0/0.png")
        assert north_west.status_code == 200
        assert north_west.headers["content-type"] == "image/png"
        assert north_west.content == RED
        assert client.get("/tiles/1/1/1.png").content == BLUE
        # The same column, the other row: not held (it would be red without the flip).
        missing = client.get("/tiles/1/0/1.png")
        assert (missing.status_code, missing.json()["code"]) == (404, "tile_not_found")

        config = client.get("/audit/config.json").json()
        assert config["map_tile_url"] == "/tiles/{z}/{x}/{y}.png"
        assert config["map_tile_attribution"] == "© Example Survey"  # text, not the file's HTML
        assert config["map_tile_max_zoom"] == 1
        # Our own origin: the page's policy needs no other image source.
        policy = client.get("/audit").headers["content-security-policy"]
        assert "img-src 'self' data: blob:;" in policy


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("/tiles/1/2/0.png", "path.x"),  # zoom 1 has columns 0 and 1
        ("/tiles/1/0/2.png", "path.y"),
        ("/tiles/25/0/0.png", "path.z"),
        ("/tiles/-1/0/0.png", "path.z"),
        ("/tiles/a/0/0.png", "path.z"),
        ("/tiles/3/0/zero.png", "path.y"),
    ],
)
def test_a_tile_outside_the_zoom_is_refused_naming_the_coordinate(
    tmp_path: Path, mbtiles: Path, path: str, named: str
) -> None:
    with TestClient(create_app(app_settings(tmp_path, map_mbtiles=str(mbtiles)))) as client:
        response = client.get(path)
    assert response.status_code == 422, response.text
    assert named in {e["field"] for e in response.json()["errors"]}


def test_without_the_file_the_page_keeps_its_blank_map(tmp_path: Path) -> None:
    with TestClient(create_app(app_settings(tmp_path))) as client:
        assert client.get("/audit/config.json").json()["map_tile_url"] == ""
        response = client.get("/tiles/1/0/0.png")
        assert (response.status_code, response.json()["code"]) == (404, "no_base_map")
    # A path that is not an MBTiles file: a warning in the log, and the blank map.
    broken = app_settings(tmp_path, map_mbtiles=str(tmp_path / "absent.mbtiles"))
    with TestClient(create_app(broken)) as client:
        assert client.get("/audit/config.json").json()["map_tile_url"] == ""
        assert client.get("/tiles/1/0/0.png").status_code == 404


def test_a_configured_tile_server_still_works_without_a_file(tmp_path: Path) -> None:
    url = "https://tile.example.org/{z}/{x}/{y}.png"
    with TestClient(create_app(app_settings(tmp_path, map_tile_url=url))) as client:
        config = client.get("/audit/config.json").json()
    assert (config["map_tile_url"], config["map_library"]) == (
        url,
        (pages.LEAFLET_DIST / "leaflet.js").is_file(),
    )
