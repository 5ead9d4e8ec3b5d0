"""The offline base map: map tiles served by Gridwalk itself from an MBTiles file the utility
provides (GRIDWALK_MAP_MBTILES), for desks with no internet and no tile server of their own.

An MBTiles file is SQLite: a `tiles` table (zoom_level, tile_column, tile_row, tile_data) whose
rows count from the south (TMS), while the web map asks by XYZ (rows from the north), hence the
flip. Each request opens the file read-only: it is the utility's, never written here, and may be
replaced while the server runs. Without the file the audit page keeps its blank background.
"""

from __future__ import annotations

import html
import logging
import re
import sqlite3
from contextlib import closing
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import Response

from server.api.deps import SettingsDep
from server.core.config import Settings
from server.core.errors import Invalid, NotFound

logger = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

TILE_URL = "/tiles/{z}/{x}/{y}.png"
MAX_ZOOM = 24  # deeper than any base map is drawn (zoom 24: about 1 cm a pixel)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _open(path: str) -> sqlite3.Connection:
    return sqlite3.connect(f"{FilePath(path).resolve().as_uri()}?mode=ro", uri=True)


def base_map(settings: Settings) -> dict[str, Any] | None:
    """What the page needs of the configured MBTiles file (its attribution, as text, and the
    deepest zoom it holds, past which the map enlarges), or None: no file, or not readable."""
    if not settings.map_mbtiles:
        return None
    try:
        with closing(_open(settings.map_mbtiles)) as conn:
            metadata = dict(conn.execute("SELECT name, value FROM metadata").fetchall())
    except sqlite3.Error as err:
        logger.warning("GRIDWALK_MAP_MBTILES=%s cannot be read (%s)", settings.map_mbtiles, err)
        return None
    # MBTiles attributions are often HTML links; Leaflet shows attributions as HTML.
    attribution = re.sub(r"<[^>]*>", "", str(metadata.get("attribution", "")))
    max_zoom = str(metadata.get("maxzoom", ""))
    return {
        "map_tile_url": TILE_URL,
        "map_tile_attribution": settings.map_tile_attribution or html.escape(attribution),
        "map_tile_max_zoom": int(max_zoom) if max_zoom.isdigit() else None,
    }


@router.get(TILE_URL)
def tile(
    z: Annotated[int, Path(ge=0, le=MAX_ZOOM)],
    x: Annotated[int, Path(ge=0, lt=1 << MAX_ZOOM)],
    y: Annotated[int, Path(ge=0, lt=1 << MAX_ZOOM)],
    settings: SettingsDep,
) -> Response:
    """One tile of the base map, by XYZ; 404 where the file holds none."""
    side = 1 << z
    for name, value in (("x", x), ("y", y)):
        if value >= side:
            raise Invalid(
                f"invalid request: path.{name}: must be below {side} at zoom {z}",
                code="invalid",
                extra={"errors": [{"field": f"path.{name}", "error": f"at most {side - 1}"}]},
            )
    if not settings.map_mbtiles:
        raise NotFound("no base map is configured (GRIDWALK_MAP_MBTILES)", code="no_base_map")
    try:
        with closing(_open(settings.map_mbtiles)) as conn:
            found = conn.execute(
                "SELECT tile_data FROM tiles "
                "WHERE zoom_level = ? AND tile_column = ? AND tile_row = ?",
                (z, x, side - 1 - y),
            ).fetchone()
    except sqlite3.Error as err:
        logger.warning("GRIDWALK_MAP_MBTILES=%s cannot be read (%s)", settings.map_mbtiles, err)
        raise NotFound("the base map cannot be read", code="no_base_map") from None
    if found is None:
        raise NotFound(f"no tile {z}/{x}/{y}", code="tile_not_found")
    data = bytes(found[0])
    return Response(
        data,
        media_type="image/png" if data.startswith(PNG_MAGIC) else "image/jpeg",
        # A base map changes when the utility replaces the file: a day's caching is plenty.
        headers={"Cache-Control": "public, max-age=86400"},
    )
