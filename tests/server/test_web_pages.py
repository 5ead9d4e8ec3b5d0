"""The desk pages (audit, outages) and their files are served from this server (no CDN), and
the app starts and serves them even when Leaflet was never installed."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.core.config import Settings
from server.main import create_app
from server.web import pages

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def page_settings(tmp_path: Path, **extra: Any) -> Settings:
    # The pages never touch the database: an unmigrated file will do.
    return Settings(
        environment="test",
        database_url=f"sqlite:///{tmp_path / 'x.db'}",
        close_due_every_minutes=0,  # no background closer on a database with no tables
        validation_workers=0,  # nor validation worker
        **extra,
    )


@pytest.fixture
def web(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(page_settings(tmp_path))) as client:
        yield client


def test_the_audit_page_is_served_with_a_policy_that_runs_only_our_scripts(
    web: TestClient,
) -> None:
    response = web.get("/audit")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "/static/audit.js" in response.text
    assert "/static/vendor/leaflet/leaflet.js" in response.text
    assert "script-src 'self'" in response.headers["content-security-policy"]
    for path in ("/static/audit.js", "/static/audit.css"):
        assert web.get(path).status_code == 200, path


def test_the_outage_page_is_served_with_the_audit_pages_policy(web: TestClient) -> None:
    response = web.get("/outages")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-cache"
    assert (
        response.headers["content-security-policy"]
        == web.get("/audit").headers["content-security-policy"]
    )
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert "/static/outages.js" in response.text
    for path in ("/static/outages.js", "/static/outages.css"):
        assert web.get(path).status_code == 200, path


def test_the_pages_share_one_frame_and_one_look(web: TestClient) -> None:
    for page in ("/audit", "/outages"):
        assert '<link rel="stylesheet" href="/static/common.css">' in web.get(page).text, page
    for script in ("/static/audit.js", "/static/outages.js"):
        assert 'from "./common.js"' in web.get(script).text, script
    common = web.get("/static/common.js")
    assert common.status_code == 200
    assert "javascript" in common.headers["content-type"]  # modules need a JS type


def test_no_page_loads_anything_from_another_site() -> None:
    for path in [*pages.STATIC_DIR.iterdir(), *pages.TEMPLATES_DIR.iterdir()]:
        text = path.read_text(encoding="utf-8")
        assert "//cdn" not in text, path
        assert "unpkg" not in text, path
        assert "https://" not in text.replace("http://www.w3.org", ""), path


@pytest.mark.skipif(
    not (pages.LEAFLET_DIST / "leaflet.js").is_file() and not IN_CI,
    reason="Leaflet not installed: `make setup` runs npm ci in server/web",
)
def test_leaflet_is_served_from_node_modules(web: TestClient) -> None:
    assert web.get("/audit/config.json").json()["map_library"] is True
    for path in ("leaflet.js", "leaflet.css", "images/layers.png"):
        assert web.get(f"/static/vendor/leaflet/{path}").status_code == 200, path


def test_without_leaflet_the_app_starts_and_the_page_still_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pages, "LEAFLET_DIST", tmp_path / "node_modules" / "leaflet" / "dist")
    with TestClient(create_app(page_settings(tmp_path))) as client:
        assert client.get("/audit").status_code == 200
        assert client.get("/audit/config.json").json()["map_library"] is False
        assert client.get("/static/vendor/leaflet/leaflet.js").status_code == 404
        assert client.get("/static/audit.js").status_code == 200


def test_the_tile_url_reaches_the_page_and_its_server_is_let_through(tmp_path: Path) -> None:
    url = "https://{s}.tiles.example.org/{z}/{x}/{y}.png"
    settings = page_settings(tmp_path, map_tile_url=url, map_tile_attribution="© Example")
    with TestClient(create_app(settings)) as client:
        assert client.get("/audit/config.json").json() == {
            "map_tile_url": url,
            "map_tile_attribution": "© Example",
            "map_tile_max_zoom": None,
            "map_library": (pages.LEAFLET_DIST / "leaflet.js").is_file(),
        }
        policy = client.get("/audit").headers["content-security-policy"]
    assert "img-src 'self' data: blob: https://*.tiles.example.org;" in policy


def test_with_no_tile_url_the_page_gets_none(web: TestClient) -> None:
    assert web.get("/audit/config.json").json()["map_tile_url"] == ""


@pytest.mark.parametrize(
    ("tile_url", "source"),
    [
        ("", ""),
        ("/tiles/{z}/{x}/{y}.png", ""),
        ("https://tile.example.org/{z}/{x}/{y}.png", "https://tile.example.org"),
        ("http://{s}.tile.example.org:8080/{z}/{x}/{y}.png", "http://*.tile.example.org:8080"),
        ("https://{switch:a,b}.example.org/{z}/{x}/{y}.png", "https:"),
    ],
)
def test_tile_source(tile_url: str, source: str) -> None:
    assert pages.tile_source(tile_url) == source


@pytest.mark.skipif(
    not (pages.SWAGGER_DIST / "swagger-ui-bundle.js").is_file() and not IN_CI,
    reason="Swagger UI not installed: `make setup` runs npm ci in server/web",
)
def test_the_api_docs_are_served_from_this_server_with_no_cdn(web: TestClient) -> None:
    docs = web.get("/docs")
    assert docs.status_code == 200
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in docs.text
    assert "/static/vendor/swagger-ui/swagger-ui.css" in docs.text
    assert "cdn" not in docs.text
    assert "https://" not in docs.text
    for path in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert web.get(f"/static/vendor/swagger-ui/{path}").status_code == 200, path
    assert web.get("/redoc").status_code == 404  # ReDoc would need a CDN


def test_without_swagger_ui_the_docs_say_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pages, "SWAGGER_DIST", tmp_path / "node_modules" / "swagger-ui-dist")
    with TestClient(create_app(page_settings(tmp_path))) as client:
        docs = client.get("/docs")
        assert docs.status_code == 503
        assert "make setup" in docs.text
        assert client.get("/openapi.json").status_code == 200


def _said(response: Any) -> dict[str, Any]:
    """The language data a page hands its scripts."""
    match = re.search(
        r'<script type="application/json" id="gridwalk-i18n">(.*?)</script>', response.text
    )
    assert match, response.text[:500]
    data: dict[str, Any] = json.loads(match[1])
    return data


@pytest.mark.parametrize("page", ["/audit", "/outages"])
def test_a_page_speaks_the_users_choice_then_the_browsers_then_chinese(
    web: TestClient, page: str
) -> None:
    def lang_of(**headers: str) -> str:
        response = web.get(page, headers=headers)
        assert response.status_code == 200
        match = re.search(r'<html lang="([^"]+)">', response.text)
        assert match
        return match[1]

    assert lang_of() == "zh-CN"  # a browser that says nothing: the users are in China
    assert lang_of(**{"Accept-Language": "en-US,en;q=0.9"}) == "en-GB"
    assert lang_of(**{"Accept-Language": "fr-FR,zh-CN;q=0.8"}) == "zh-CN"
    chosen = {"Accept-Language": "en-US", "Cookie": "gridwalk_lang=zh_CN"}
    assert lang_of(**chosen) == "zh-CN"  # the menu's choice wins over the browser
    assert lang_of(**{"Cookie": "gridwalk_lang=en"}) == "en-GB"
    assert lang_of(**{"Cookie": "gridwalk_lang=xx", "Accept-Language": "en"}) == "en-GB"
    response = web.get(page, headers={"Accept-Language": "en"})
    assert "Accept-Language" in response.headers["vary"]
    assert "Cookie" in response.headers["vary"]


def test_the_page_is_rendered_and_its_scripts_messages_handed_over_in_its_language(
    web: TestClient,
) -> None:
    chinese = web.get("/audit", headers={"Accept-Language": "zh-CN"})
    assert "<title>抄表稽查 · Gridwalk</title>" in chinese.text
    assert "<h2>抄表任务</h2>" in chinese.text
    assert "<code>make setup</code>" in chinese.text  # markup kept inside a translated sentence
    said = _said(chinese)
    assert (said["language"], said["locale"], said["time_zone"]) == (
        "zh_CN",
        "zh-CN",
        "Asia/Shanghai",
    )
    assert said["messages"]["Pick an assignment"] == "请选择抄表任务"
    assert said["messages"]["Missed meter"] == "漏抄"
    assert set(said["messages"]) <= set(pages.js_messages())
    english = web.get("/audit", headers={"Accept-Language": "en"})
    assert "<h2>Assignments</h2>" in english.text
    assert _said(english)["messages"] == {}  # English is the message ids themselves
    assert "script-src 'self'" in english.headers["content-security-policy"]
