"""Pages for people at a desk: the supervisor's route audit at /audit and cycle overview at
/cycle, and the call-centre agents' outage desk at /outages, with their static files.

The pages are plain HTML and JS over the JSON API; the browser holds the tokens; what the pages
share (the frame, the session, the look) is static/common.js and static/common.css.

They speak the product's languages from its one set of catalogs (common/i18n.py): the HTML is a
Jinja2 template rendered with the chosen language's translations, and the JS gets its messages
(those its `t("...")` calls name) as a JSON object in the page. The language is the user's
choice on the page (the `gridwalk_lang` cookie the language menu sets), else the browser's
Accept-Language, else Chinese. Leaflet comes
from npm into server/web/node_modules (`make setup`), never from a CDN: a supply company's desks
may have no internet. Without it the app still starts and the page says the map is missing.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from babel.messages.extract import extract as extract_messages
from fastapi import APIRouter, Cookie, Depends, FastAPI, Header, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from common.i18n import DEFAULT_LANGUAGE, LANGUAGES, accepted_language, language_of, translations
from server.api.deps import SettingsDep
from server.core.config import Settings
from server.web import tiles

logger = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"
TEMPLATES_DIR = WEB_DIR / "templates"
LEAFLET_DIST = WEB_DIR / "node_modules" / "leaflet" / "dist"
SWAGGER_DIST = WEB_DIR / "node_modules" / "swagger-ui-dist"

router = APIRouter(include_in_schema=False)

LANGUAGE_COOKIE = "gridwalk_lang"
# The BCP 47 tag of each language: <html lang>, Intl's locale, the Accept-Language the JS sends.
LOCALE_TAGS = {"zh_CN": "zh-CN", "en": "en-GB"}
# The JS's message function, as Babel's javascript extractor knows it.
JS_KEYWORDS = {"t": None}


def _has_map_library(request: Request) -> bool:
    return bool(request.app.state.map_library)


MapLibraryDep = Annotated[bool, Depends(_has_map_library)]


def tile_source(tile_url: str) -> str:
    """The CSP source that admits the configured tiles ('' when there are none or they are ours)."""
    parts = urlsplit(tile_url)
    if not tile_url or not parts.netloc:
        return ""
    # Leaflet's {s} is the subdomain (a.tile…, b.tile…): a CSP wildcard covers them all.
    host = parts.netloc.replace("{s}", "*")
    if "{" in host or "}" in host:
        return f"{parts.scheme}:"
    return f"{parts.scheme}://{host}"


def content_security_policy(tile_url: str) -> str:
    """Only the page's own scripts run; images may also come from the tile server."""
    images = " ".join(filter(None, ["'self'", "data:", "blob:", tile_source(tile_url)]))
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src {images}",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ]
    )


def page_language(
    chosen: Annotated[str | None, Cookie(alias=LANGUAGE_COOKIE)] = None,
    accept_language: Annotated[str | None, Header()] = None,
) -> str:
    """The page's language: the user's choice on the page, else the browser's, else Chinese.
    Not the server machine's locale: the desk is somewhere else."""
    return language_of(chosen) or accepted_language(accept_language) or DEFAULT_LANGUAGE


PageLanguageDep = Annotated[str, Depends(page_language)]


@lru_cache(maxsize=1)
def js_messages() -> tuple[str, ...]:
    """The message ids the pages' scripts name in t("..."): what each page is handed."""
    found: set[str] = set()
    for script in sorted(STATIC_DIR.glob("*.js")):
        with script.open("rb") as f:
            for _lineno, message, _comments, _context in extract_messages(
                "javascript", f, keywords=JS_KEYWORDS
            ):
                found.add(message if isinstance(message, str) else message[0])
    return tuple(sorted(found))


@lru_cache(maxsize=len(LANGUAGES))
def templates(language: str) -> Environment:
    """The pages' templates, speaking `language` (one environment each: installing
    translations on a shared one would race between requests)."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
    return env


def page_i18n(language: str, settings: Settings) -> dict[str, Any]:
    """What the page's scripts need to speak `language`: their messages, the locale and zone."""
    catalog = translations(language)
    return {
        "language": language,
        "locale": LOCALE_TAGS[language],
        "time_zone": settings.desk_time_zone,
        "languages": LANGUAGES,
        # English is the message ids themselves: nothing to send.
        "messages": {}
        if language == "en"
        else {m: catalog.gettext(m) for m in js_messages() if catalog.gettext(m) != m},
    }


def _page(name: str, settings: Settings, language: str) -> HTMLResponse:
    html = (
        templates(language)
        .get_template(name)
        .render(
            html_lang=LOCALE_TAGS[language],
            language=language,
            languages=LANGUAGES,
            i18n=page_i18n(language, settings),
        )
    )
    return HTMLResponse(
        html,
        headers={
            "Content-Security-Policy": content_security_policy(settings.map_tile_url),
            "Cache-Control": "no-cache",
            # The same URL answers in another language after the menu is changed.
            "Vary": "Accept-Language, Cookie",
            "Content-Language": LOCALE_TAGS[language],
        },
    )


@router.get("/audit")
def audit_page(settings: SettingsDep, language: PageLanguageDep) -> HTMLResponse:
    """The supervisor's route audit page."""
    return _page("audit.html", settings, language)


@router.get("/cycle")
def cycle_page(settings: SettingsDep, language: PageLanguageDep) -> HTMLResponse:
    """A whole reading cycle at a glance: routes and readers of my grid (an admin: all)."""
    return _page("cycle.html", settings, language)


@router.get("/outages")
def outages_page(settings: SettingsDep, language: PageLanguageDep) -> HTMLResponse:
    """The call-centre agents' page: is there an outage here, and when is power back?"""
    return _page("outages.html", settings, language)


@router.get("/audit/config.json")
def audit_config(settings: SettingsDep, map_library: MapLibraryDep) -> dict[str, Any]:
    """What the page needs from the server: the base map's tiles (our own from the MBTiles file
    when one is set, else the configured tile server's, else none), and whether Leaflet is here."""
    return {
        **(
            tiles.base_map(settings)
            or {
                "map_tile_url": settings.map_tile_url,
                "map_tile_attribution": settings.map_tile_attribution,
                "map_tile_max_zoom": None,
            }
        ),
        "map_library": map_library,
    }


def _mount_api_docs(app: FastAPI, dist: Path) -> None:
    """/docs from Swagger UI's own files, served here: the walk-through works with no internet."""
    if not (dist / "swagger-ui-bundle.js").is_file():
        logger.warning("Swagger UI is not installed in %s: /docs says so (run `make setup`)", dist)

        @app.get("/docs", include_in_schema=False)
        def docs_missing() -> HTMLResponse:
            return HTMLResponse(
                "<!doctype html><title>Gridwalk API</title><p>Swagger UI is not installed on "
                "this server (run <code>make setup</code>). The schema is at "
                '<a href="/openapi.json">/openapi.json</a>.</p>',
                status_code=503,
            )

        return
    app.mount("/static/vendor/swagger-ui", StaticFiles(directory=dist), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} API",
            swagger_js_url="/static/vendor/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/static/vendor/swagger-ui/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
        )


def mount(
    app: FastAPI, *, leaflet_dist: Path | None = None, swagger_dist: Path | None = None
) -> None:
    """Add the pages, the API docs and their static files to `app` (built with docs_url=None)."""
    _mount_api_docs(app, swagger_dist or SWAGGER_DIST)
    dist = leaflet_dist or LEAFLET_DIST
    app.state.map_library = (dist / "leaflet.js").is_file()
    if app.state.map_library:
        # Before /static, which would otherwise answer (404) for the vendor paths too.
        app.mount("/static/vendor/leaflet", StaticFiles(directory=dist), name="leaflet")
    else:
        logger.warning(
            "Leaflet is not installed in %s: the audit page will have no map "
            "(run `make setup`, which runs `npm ci` in server/web)",
            dist,
        )
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(router)
    app.include_router(tiles.router)
