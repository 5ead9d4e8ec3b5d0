"""The supervisor's audit page in a real browser: sign in, open an assignment, see the map,
review a flag, order a re-read, export; and what happens without Leaflet or with an expired
token."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver import Chrome
from selenium.webdriver.common.by import By
from sqlalchemy import Engine
from sqlmodel import Session

from common import clock
from common.rules.sentences import flag_sentence
from server.core.config import Settings
from server.core.security import ALGORITHM
from server.demo.days import honest_day
from server.main import create_app
from server.models import AssignmentVerdict, Flag
from server.validation import queue as validation_queue
from server.web import pages
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
from tests.factories import (
    LOCAL,
    PASSWORD,
    READ_AT,
    WINDOW_START,
    ReaderDay,
    assign,
    auth,
    local_time,
    make_user,
    reader_day,
    reading,
    track_point,
)

# A browser reads the machine's clock: so does the server here.
pytestmark = pytest.mark.real_clock

AUDIT = "/api/v1/audit"
DAY = timedelta(days=1)
COLOURS = {
    "read": "#2f9e44",
    "skipped": "#f08c00",
    "disputed": "#9c36b5",
    "not_read_yet": "#adb5bd",
    "missed": "#343a40",
    "flagged": "#e03131",
}
FAR_M = 150  # how far from its meter the far reading's fix is


class Day:
    """A reader's walk on a six-meter route: four read, one skipped (dog), one never visited;
    the third reading's fix is far from its meter. Two open flags make two meters flagged."""

    def __init__(self, session: Session, settings: Settings, client: TestClient) -> None:
        self.day: ReaderDay = reader_day(session, settings, client, n_meters=6)
        assert self.day.assignment.id is not None
        self.assignment_id: int = self.day.assignment.id
        make_user(session, settings, "sup1", "supervisor", "G1")
        self.sup = auth(client, "sup1", "sup-desk-01")
        self.client = client
        day = self.day
        items = []
        for i, meter in enumerate(day.meters[:4]):
            item = reading(
                self.assignment_id,
                meter,
                value=str(1100 + i),
                at=READ_AT + timedelta(minutes=2 * i),
            )
            if i == 0:  # typed exactly on its meter (the factory's fixes are a few metres off)
                item["fix"]["lat"], item["fix"]["lon"] = meter.lat, meter.lon
            if i == 1:  # a measured fix, 3 m north
                item["fix"]["lat"], item["fix"]["lon"] = meter.lat + 3 / 111_200, meter.lon
            if i == 2:
                item["fix"]["lat"], item["fix"]["lon"] = meter.lat + FAR_M / 111_200, meter.lon
                item["fix"]["accuracy_m"] = 8.0
            items.append(item)
        items.append(
            reading(
                self.assignment_id,
                day.meters[4],
                value=None,
                skip_code="dog",
                at=READ_AT + timedelta(minutes=8),
            )
        )
        points = [
            track_point(
                READ_AT + timedelta(seconds=30 * i),
                lat=day.meters[0].lat + i * 0.00009,
                lon=day.meters[0].lon + (0.00004 if i % 4 in (1, 2) else 0),
            )
            for i in range(18)
        ]
        response = client.post(
            "/api/v1/sync/push",
            headers=day.headers,
            json={"readings": items, "track_points": points},
        )
        assert response.status_code == 200, response.text
        self.readings = items
        # Flags as the validation runner would write them (it is not what is tested here).
        self.unchanged = self._flag(
            session, 1, "unchanged", "fail", {"value": "1101", "usual_kwh": None}
        )
        self.far = self._flag(
            session,
            2,
            "far_from_meter",
            "warn",
            {"distance_m": float(FAR_M), "radius_m": 30.0, "accuracy_m": 8.0},
        )
        # By meter index: what these flags and readings make of the meters, whatever else.
        self.states = {1: "flagged", 2: "flagged", 4: "skipped"}

    def _flag(
        self, session: Session, index: int, code: str, severity: str, params: dict[str, Any]
    ) -> Flag:
        params = {"meter": self.day.meters[index].meter_no, **params}
        flag = Flag(
            assignment_id=self.assignment_id,
            reading_id=uuid.UUID(self.readings[index]["id"]),
            meter_id=self.day.meters[index].id,
            code=code,
            severity=severity,
            message=flag_sentence(code, params),
            params=params,
        )
        session.add(flag)
        session.commit()
        return flag

    def detail(self) -> dict[str, Any]:
        response = self.client.get(f"{AUDIT}/assignments/{self.assignment_id}", headers=self.sup)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def sign_in(browser: Chrome, base: str, password: str = PASSWORD) -> None:
    if not browser.current_url.startswith(base):
        browser.get(f"{base}/audit")
        js_errors(browser)  # reading the log empties it: what the last test left goes
    wait(browser, lambda d: css(d, "#username")[0].is_displayed())
    for field, value in (("username", "sup1"), ("password", password)):
        element = browser.find_element(By.ID, field)
        element.clear()
        element.send_keys(value)
    browser.find_element(By.ID, "login-submit").click()


def sign_in_in(browser: Chrome, base: str, language: str) -> None:
    """A fresh page, in `language` chosen from its menu before signing in."""
    browser.get(f"{base}/audit")
    js_errors(browser)  # reading the log empties it: what the last test left goes
    if language != "en":
        choose_language(browser, language, "zh-CN")
    sign_in(browser, base)


def open_assignment(browser: Chrome, assignment_id: int) -> None:
    wait(browser, lambda d: css(d, f'[data-assignment-id="{assignment_id}"]'))
    css(browser, f'[data-assignment-id="{assignment_id}"]')[0].click()


def pin_states(browser: Chrome) -> dict[str, str]:
    """The state class and fill colour of each pin, keyed by its meter class."""
    out = {}
    for pin in css(browser, "#map path.pin"):
        classes = (pin.get_attribute("class") or "").split()
        meter = next(c for c in classes if c.startswith("meter-"))
        state = next(c for c in classes if c.startswith("pin-"))
        out[meter] = f"{state[4:]} {pin.get_attribute('fill')}"
    return out


def test_a_supervisor_audits_a_route_reviews_a_flag_and_orders_a_reread(
    browser: Chrome,
    serve: ServeApp,
    client: TestClient,
    session: Session,
    settings: Settings,
    engine: Engine,
    downloads: Path,
) -> None:
    data = Day(session, settings, client)
    day = data.day
    base = serve(create_app(settings, engine))

    sign_in(browser, base, password="not-the-password")
    wait(browser, lambda d: d.find_element(By.ID, "login-error").text)
    screenshot(browser, f"audit-login-{backend(settings)}")
    assert browser.find_element(By.ID, "login-error").text == "Wrong user name or password."
    assert [e.split(" - ", 1)[0] for e in js_errors(browser)] == [f"{base}/api/v1/auth/login"]
    sign_in(browser, base)
    wait(browser, lambda d: d.find_element(By.ID, "who-name").text == "sup1")

    # The API is the truth for states and counts (a validation runner may add flags of its
    # own); what this day's data guarantees is checked besides.
    before = data.detail()
    summary = before["assignment"]
    wait(browser, lambda d: css(d, "[data-assignment-id]"))  # the list loads after sign-in
    [item] = css(browser, "[data-assignment-id]")
    assert "R-1" in item.text
    figures = {
        f.find_element(By.TAG_NAME, "dt").text: f.find_element(By.TAG_NAME, "dd").text
        for f in css(item, ".figure")
    }
    walked = figures.pop("walked")
    # The window is still open: the unvisited meter is not read yet, not missed.
    assert figures == {"meters": "6", "read": "4", "skipped": "1", "not read yet": "1"}
    assert walked == f"{summary['distance_walked_m']} m"
    assert [c.text.lower() for c in css(item, ".a-flags .chip")] == [
        f"{summary['flagged'][s]} {s}" for s in ("fail", "warn", "info")
    ]
    # Times carry their zone: the list's named once at its head, beside its reading span.
    assert browser.find_element(By.ID, "list-zone").text == "times in China Standard Time"
    assert re.search(r"read .*\d\d:\d\d", item.find_element(By.CSS_SELECTOR, ".a-read").text)
    # The day in one line, as the server said it, in the list and the detail's header.
    assert item.find_element(By.CSS_SELECTOR, ".a-verdict").text == summary["verdict"]["message"]
    assert summary["verdict"]["message"].startswith("walked ")

    open_assignment(browser, data.assignment_id)
    wait(browser, lambda d: len(css(d, "#map path.pin")) == len(day.meters))
    assert browser.find_element(By.ID, "assignment-verdict").text == summary["verdict"]["message"]
    states = {f"meter-{m['id']}": m["state"] for m in before["meters"]}
    assert pin_states(browser) == {k: f"{v} {COLOURS[v]}" for k, v in states.items()}
    for index, state in data.states.items():
        assert states[f"meter-{day.meters[index].id}"] == state
    [track] = css(browser, "#map path.track")
    assert track.get_attribute("d")
    assert sorted(int(x.text) for x in css(browser, ".order-label")) == [1, 2, 3, 4, 5]
    legend = {
        row.get_attribute("data-state"): row.find_element(By.CSS_SELECTOR, ".count").text
        for row in css(browser, "#legend .legend-row[data-state]")
    }
    assert legend == {s: str(list(states.values()).count(s)) for s in COLOURS}
    flags = [f.get_attribute("data-flag-id") for f in css(browser, "#flag-list .flag")]
    assert len(flags) == len(before["flags"])
    # The flags' times (their readings') in the zone named at the pane's head.
    assert browser.find_element(By.ID, "flag-count").text.endswith("times in China Standard Time")
    [far_item] = css(browser, f'.flag[data-flag-id="{data.far.id}"] .flag-meter')
    assert re.search(r"\d\d:\d\d$", far_item.text)
    assert flags.index(str(data.unchanged.id)) < flags.index(str(data.far.id))  # fail first

    # The timeline: distance to the meter being read and speed, drawn from the server's
    # figures, every reading marked; clicking a mark selects that reading.
    wait(browser, lambda d: css(d, "#timeline-distance .tl-mark"))
    timeline = client.get(
        f"{AUDIT}/assignments/{data.assignment_id}/timeline", headers=data.sup
    ).json()
    assert browser.find_element(By.ID, "timeline-zone").text == "times in China Standard Time"
    marks = [
        m.get_attribute("data-reading-id") for m in css(browser, "#timeline-distance .tl-mark")
    ]
    assert marks == [m["reading_id"] for m in timeline["readings"]]
    assert sorted(marks) == sorted(r["id"] for r in data.readings)
    assert css(browser, "#timeline-distance path.tl-line")[0].get_attribute("d").startswith("M")
    speed = css(browser, "#timeline-speed path.tl-line")[0].get_attribute("d")
    assert (
        speed.count("L") == len([p for p in timeline["points"] if p["speed_kmh"] is not None]) - 1
    )
    far_reading = data.readings[2]["id"]
    css(browser, f'#timeline-distance .tl-mark[data-reading-id="{far_reading}"]')[0].click()
    wait(browser, lambda d: css(d, f'.reading-card.focus[data-reading-id="{far_reading}"]'))
    assert css(browser, f'#meter-evidence[data-meter-id="{day.meters[2].id}"]')
    assert "selected" in (
        css(browser, f'#timeline-distance .tl-mark[data-reading-id="{far_reading}"]')[0]
        .get_attribute("class")
        .split()
    )
    screenshot(browser, f"audit-page-timeline-{backend(settings)}")

    # A flag: the reading and its evidence, and its pin highlighted.
    css(browser, f'.flag[data-flag-id="{data.unchanged.id}"]')[0].click()
    wait(browser, lambda d: css(d, "#flag-evidence"))
    evidence = browser.find_element(By.ID, "evidence").text
    assert data.unchanged.message in evidence
    assert "reads 1101, unchanged since last cycle" in evidence
    assert day.meters[1].meter_no in evidence
    assert "Reading #2" in evidence
    assert "1101" in evidence
    assert "Received" in evidence
    assert "± 6 m" in evidence
    assert "3 m — within the fix's accuracy" in evidence
    assert browser.find_element(By.ID, "review-accept").text == "Dismiss: the reading stands"
    assert browser.find_element(By.ID, "review-reject").text == "Uphold: the reading is disputed"
    [selected] = css(browser, "#map path.pin.selected")
    assert {"pin-flagged", f"meter-{day.meters[1].id}"} <= set(
        (selected.get_attribute("class") or "").split()
    )
    assert css(browser, ".flag.selected")[0].get_attribute("data-flag-id") == str(data.unchanged.id)
    screenshot(browser, f"audit-page-{backend(settings)}")

    # Uphold it with a note: the API has the review, and the pin shows the meter disputed.
    browser.find_element(By.ID, "review-reject").click()
    wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#flag-evidence .form-error").text)
    assert "note" in browser.find_element(By.CSS_SELECTOR, "#flag-evidence .form-error").text
    browser.find_element(By.ID, "review-note").send_keys("register photo shows 1187")
    browser.find_element(By.ID, "review-reject").click()
    wait(browser, lambda d: css(d, ".notice"))
    assert browser.find_element(By.CSS_SELECTOR, ".notice").text == (
        "Flag upheld: the reading is disputed."
    )
    after = data.detail()
    [flag] = [f for f in after["flags"] if f["id"] == data.unchanged.id]
    assert (flag["review"], flag["review_note"]) == ("rejected", "register photo shows 1187")
    [meter] = [m for m in after["meters"] if m["id"] == day.meters[1].id]
    [upheld] = [r for r in after["readings"] if r["id"] == data.readings[1]["id"]]
    assert upheld["state"] == "disputed"
    if not [f for f in after["flags"] if f["meter_id"] == meter["id"] and f["review"] is None]:
        assert meter["state"] == "disputed"  # unless a validation runner's own flag is open
    wait(browser, lambda d: css(d, f"path.pin-{meter['state']}.meter-{meter['id']}"))
    assert pin_states(browser)[f"meter-{meter['id']}"] == (
        f"{meter['state']} {COLOURS[meter['state']]}"
    )
    legend = {
        row.get_attribute("data-state"): row.find_element(By.CSS_SELECTOR, ".count").text
        for row in css(browser, "#legend .legend-row[data-state]")
    }
    assert legend["disputed"] == str([m["state"] for m in after["meters"]].count("disputed"))
    assert "Disputed" in browser.find_element(By.ID, "legend").text
    evidence = browser.find_element(By.ID, "evidence").text
    assert "disputed" in evidence
    assert "Upheld: the reading is disputed" in evidence
    assert "(China Standard Time)" in evidence  # each quoted time with its zone
    screenshot(browser, f"audit-page-upheld-{backend(settings)}")

    # A fix exactly on its meter's coordinates is suspicious, not "within the accuracy".
    exact_meter = day.meters[0]
    css(browser, f"#map path.meter-{exact_meter.id}")[0].click()
    wait(browser, lambda d: css(d, f'#meter-evidence[data-meter-id="{exact_meter.id}"]'))
    evidence = browser.find_element(By.ID, "evidence").text
    assert (
        "0 m — exactly on the meter's coordinates: suspicious, "
        "a real fix is never exactly on the meter"
    ) in evidence
    assert "within the fix's accuracy" not in evidence
    screenshot(browser, f"audit-page-exact-fix-{backend(settings)}")

    # A pin: its most severe open flag comes up with it, highlighted in the list; the far fix
    # shows as too far; order a re-read.
    far_meter = day.meters[2]
    css(browser, f"#map path.meter-{far_meter.id}")[0].click()
    wait(browser, lambda d: css(d, f'#meter-evidence[data-meter-id="{far_meter.id}"]'))
    shown = browser.find_element(By.ID, "flag-evidence").get_attribute("data-flag-id")
    assert css(browser, ".flag.selected")[0].get_attribute("data-flag-id") == shown
    assert {f["meter_id"] for f in after["flags"] if str(f["id"]) == shown} == {far_meter.id}
    assert "farther than the fix's accuracy" in browser.find_element(By.ID, "evidence").text
    assert css(browser, "#map path.fix-line")
    browser.find_element(By.ID, "reread-reason").send_keys("fix 150 m from the meter")
    browser.find_element(By.ID, "reread-submit").click()
    wait(browser, lambda d: css(d, "#reread .reread-order"))
    assert "fix 150 m from the meter" in browser.find_element(By.ID, "reread").text
    orders = data.detail()["reread_orders"]
    assert [(o["meter_id"], o["status"], o["reason"]) for o in orders] == [
        (far_meter.id, "open", "fix 150 m from the meter")
    ]
    screenshot(browser, f"audit-page-reread-{backend(settings)}")

    # The CSV export needs the bearer token: fetched by the page and saved from a blob.
    for old in downloads.iterdir():
        old.unlink()
    css(browser, '[data-export="readings.csv"]')[0].click()
    saved = downloads / f"assignment-{data.assignment_id}.csv"
    wait(browser, lambda _: saved.exists() and saved.read_text("utf-8").count("\n") == 6)
    # The file as saved keeps the mark that makes Excel read it as UTF-8.
    assert saved.read_bytes().startswith("\ufeff".encode())
    assert saved.read_text("utf-8-sig").startswith("order,reading_id,meter_no")

    assert js_errors(browser) == []

    browser.find_element(By.ID, "logout").click()
    wait(browser, lambda d: d.find_element(By.ID, "login-view").is_displayed())
    assert browser.execute_script("return sessionStorage.getItem('gridwalk.tokens')") is None


def test_an_expired_access_token_is_refreshed_once_and_the_call_retried(
    browser: Chrome,
    serve: ServeApp,
    client: TestClient,
    session: Session,
    settings: Settings,
    engine: Engine,
) -> None:
    data = Day(session, settings, client)
    base = serve(create_app(settings, engine))
    sign_in(browser, base)
    wait(browser, lambda d: css(d, "[data-assignment-id]"))
    tokens = browser.execute_script("return JSON.parse(sessionStorage.getItem('gridwalk.tokens'))")
    device = browser.execute_script("return localStorage.getItem('gridwalk.device_id')")
    assert device.startswith("web-")
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    now = clock.now()
    claims.update(iat=now - timedelta(hours=1), exp=now - timedelta(minutes=1))
    expired = jwt.encode(claims, settings.secret_key, algorithm=ALGORITHM)
    browser.execute_script(
        "sessionStorage.setItem('gridwalk.tokens', JSON.stringify("
        "Object.assign(JSON.parse(sessionStorage.getItem('gridwalk.tokens')),"
        " {access_token: arguments[0]})))",
        expired,
    )

    open_assignment(browser, data.assignment_id)
    wait(browser, lambda d: len(css(d, "#map path.pin")) == len(data.day.meters))
    after = browser.execute_script("return JSON.parse(sessionStorage.getItem('gridwalk.tokens'))")
    assert after["refresh_token"] != tokens["refresh_token"]
    assert after["access_token"] != expired
    assert browser.find_element(By.ID, "banner").is_displayed() is False


def test_a_reader_is_told_the_page_is_for_supervisors(
    browser: Chrome,
    serve: ServeApp,
    client: TestClient,
    session: Session,
    settings: Settings,
    engine: Engine,
) -> None:
    reader_day(session, settings, client, n_meters=1)
    base = serve(create_app(settings, engine))
    sign_in(browser, base)  # as sup1, who does not exist here
    wait(browser, lambda d: d.find_element(By.ID, "login-error").text)
    browser.find_element(By.ID, "username").clear()
    browser.find_element(By.ID, "username").send_keys("reader1")
    browser.find_element(By.ID, "password").clear()
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "login-submit").click()
    wait(browser, lambda d: "supervisors" in d.find_element(By.ID, "login-error").text)
    assert "for supervisors and administrators" in browser.find_element(By.ID, "login-error").text
    assert browser.execute_script("return sessionStorage.getItem('gridwalk.tokens')") is None


def test_without_leaflet_the_page_says_the_map_library_is_missing_and_still_works(
    browser: Chrome,
    serve: ServeApp,
    client: TestClient,
    session: Session,
    settings: Settings,
    engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = Day(session, settings, client)
    monkeypatch.setattr(pages, "LEAFLET_DIST", tmp_path / "no-node-modules" / "leaflet" / "dist")
    base = serve(create_app(settings, engine))
    sign_in(browser, base)
    wait(browser, lambda d: d.find_element(By.ID, "map-missing").is_displayed())
    assert "map library is missing" in browser.find_element(By.ID, "map-missing").text
    assert "make setup" in browser.find_element(By.ID, "map-missing").text
    open_assignment(browser, data.assignment_id)
    wait(browser, lambda d: css(d, "#flag-list .flag"))
    css(browser, f'.flag[data-flag-id="{data.far.id}"]')[0].click()
    wait(browser, lambda d: css(d, "#flag-evidence"))
    assert "farther than the fix's accuracy" in browser.find_element(By.ID, "evidence").text
    screenshot(browser, f"audit-page-no-leaflet-{backend(settings)}")
    # Only the library's own files are missing: no script error.
    assert [e for e in js_errors(browser) if "/static/vendor/leaflet/" not in e] == []


def test_the_configured_base_map_tiles_are_drawn_under_the_route(
    browser: Chrome,
    serve: ServeApp,
    client: TestClient,
    session: Session,
    settings: Settings,
    engine: Engine,
) -> None:
    data = Day(session, settings, client)
    # A tile server of our own, as a company without internet would run: here any image will do.
    tiles = settings.model_copy(update={"map_tile_url": "/static/favicon.svg?{z}/{x}/{y}"})
    base = serve(create_app(tiles, engine))
    sign_in(browser, base)
    open_assignment(browser, data.assignment_id)
    wait(browser, lambda d: len(css(d, "#map path.pin")) == len(data.day.meters))
    wait(
        browser,
        lambda d: (
            d.execute_script(
                "return [...document.querySelectorAll('#map img.leaflet-tile')]"
                ".filter(img => img.complete && img.naturalWidth > 0).length"
            )
            > 0
        ),
    )
    assert "no-tiles" not in (browser.find_element(By.ID, "map").get_attribute("class") or "")
    assert js_errors(browser) == []


def test_closing_an_assignment_after_a_confirm_flags_its_unread_meters_as_missed(
    browser: Chrome,
    serve: ServeApp,
    client: TestClient,
    session: Session,
    settings: Settings,
    engine: Engine,
) -> None:
    data = Day(session, settings, client)
    never_visited = data.day.meters[5]
    base = serve(create_app(settings, engine))
    sign_in(browser, base)
    open_assignment(browser, data.assignment_id)
    wait(browser, lambda d: css(d, "#flag-list .flag"))
    assert not [f for f in data.detail()["flags"] if f["code"] == "missed"]

    # Thinking better of it changes nothing.
    wait(browser, lambda d: d.find_element(By.ID, "close-assignment").is_displayed())
    browser.find_element(By.ID, "close-assignment").click()
    alert = wait(browser, lambda d: d.switch_to.alert)
    assert "1 meter has neither a reading nor a skip" in alert.text
    alert.dismiss()
    assert data.detail()["assignment"]["status"] == "open"

    browser.find_element(By.ID, "close-assignment").click()
    wait(browser, lambda d: d.switch_to.alert).accept()
    wait(browser, lambda d: css(d, ".notice"))
    assert browser.find_element(By.CSS_SELECTOR, ".notice").text == (
        "Assignment closed: 1 meter flagged as missed."
    )
    after = data.detail()
    assert after["assignment"]["status"] == "closed"
    [missed] = [f for f in after["flags"] if f["code"] == "missed"]
    assert missed["meter_id"] == never_visited.id
    [shown] = [
        f
        for f in css(browser, "#flag-list .flag")
        if f.find_element(By.CSS_SELECTOR, ".flag-code").get_attribute("data-code") == "missed"
    ]
    assert shown.get_attribute("data-flag-id") == str(missed["id"])
    assert never_visited.meter_no in shown.text
    assert browser.find_element(By.ID, "close-assignment").is_displayed() is False
    [item] = css(browser, f'[data-assignment-id="{data.assignment_id}"]')
    assert "closed" in item.text.lower()
    assert "missed meters\n1" in item.text
    screenshot(browser, f"audit-page-closed-{backend(settings)}")
    assert js_errors(browser) == []


def test_like_flags_are_reviewed_together_with_one_note(
    browser: Chrome,
    serve: ServeApp,
    client: TestClient,
    session: Session,
    settings: Settings,
    engine: Engine,
) -> None:
    data = Day(session, settings, client)
    # Another reading far from its meter: with the far one, like flags of one code.
    data._flag(
        session,
        3,
        "far_from_meter",
        "warn",
        {"distance_m": 90.0, "radius_m": 30.0, "accuracy_m": 6.0},
    )
    like = [f["id"] for f in data.detail()["flags"] if f["code"] == "far_from_meter"]
    assert len(like) >= 2
    base = serve(create_app(settings, engine))
    sign_in(browser, base)
    open_assignment(browser, data.assignment_id)
    wait(browser, lambda d: css(d, f'.flag[data-flag-id="{data.far.id}"]'))
    css(browser, f'.flag[data-flag-id="{data.far.id}"]')[0].click()
    wait(browser, lambda d: css(d, "#review-all"))
    together = browser.find_element(By.CSS_SELECTOR, "label.review-all").text
    assert together == (
        f"Review all {len(like)} like this: the open “Far from the meter” flags of this assignment"
    )
    # A flag of a code alone on the assignment offers no such thing.
    css(browser, f'.flag[data-flag-id="{data.unchanged.id}"]')[0].click()
    wait(browser, lambda d: css(d, f'#flag-evidence[data-flag-id="{data.unchanged.id}"]'))
    assert not css(browser, "#review-all")

    css(browser, f'.flag[data-flag-id="{data.far.id}"]')[0].click()
    wait(browser, lambda d: css(d, "#review-all"))
    browser.find_element(By.ID, "review-note").send_keys("meters moved last month, survey due")
    browser.find_element(By.ID, "review-all").click()
    screenshot(browser, f"audit-page-review-all-{backend(settings)}")
    browser.find_element(By.ID, "review-accept").click()
    wait(browser, lambda d: css(d, ".notice"))
    assert browser.find_element(By.CSS_SELECTOR, ".notice").text == (
        f"{len(like)} flags dismissed: the readings stand."
    )
    after = {f["id"]: f for f in data.detail()["flags"]}
    assert {(after[i]["review"], after[i]["review_note"]) for i in like} == {
        ("accepted", "meters moved last month, survey due")
    }
    assert after[data.unchanged.id]["review"] is None
    assert js_errors(browser) == []


# What must stay clear of each other on a small desk screen: the header's parts, the
# assignment's title, facts, verdict and actions, the panes' heads.
LAYOUT_PARTS = (
    ".topbar .brand",
    "#page-links",
    "#who-name",
    "#who-role",
    "#logout",
    "#language",
    ".pane-left .pane-head h2",
    "#status-filter",
    "#assignment-title",
    "#assignment-sub",
    "#assignment-verdict",
    "#exports",
    "#close-assignment",
    ".pane-right .pane-head h2",
    "#flag-count",
    "#timeline",
    ".map-wrap",
)
# Each part's box joined with its text's (text that overflows a squeezed box counts).
BOXES = """
return arguments[0].map((sel) => {
  const el = document.querySelector(sel);
  const r = el.getBoundingClientRect();
  const range = document.createRange();
  range.selectNodeContents(el);
  const t = range.getBoundingClientRect();
  const box = t.width && t.height
    ? [Math.min(r.left, t.left), Math.min(r.top, t.top),
       Math.max(r.right, t.right), Math.max(r.bottom, t.bottom)]
    : [r.left, r.top, r.right, r.bottom];
  return [sel, ...box];
});
"""


def overlaps(boxes: list[list[Any]]) -> list[tuple[str, str]]:
    """Pairs of boxes that share more than a pixel of area."""
    found = []
    for i, (a, *ra) in enumerate(boxes):
        for b, *rb in boxes[i + 1 :]:
            wide = min(ra[2], rb[2]) - max(ra[0], rb[0])
            high = min(ra[3], rb[3]) - max(ra[1], rb[1])
            if wide > 1 and high > 1:
                found.append((a, b))
    return found


@pytest.mark.parametrize("language", ["en", "zh_CN"])
def test_at_1024_by_768_nothing_overlaps_and_close_assignment_is_in_view(
    browser: Chrome,
    serve: ServeApp,
    client: TestClient,
    session: Session,
    settings: Settings,
    engine: Engine,
    language: str,
) -> None:
    data = Day(session, settings, client)
    base = serve(create_app(settings, engine))
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 1024, "height": 768, "deviceScaleFactor": 1, "mobile": False},
    )
    try:
        sign_in_in(browser, base, language)
        open_assignment(browser, data.assignment_id)
        wait(browser, lambda d: css(d, "#timeline-distance .tl-mark"))
        css(browser, f'.flag[data-flag-id="{data.far.id}"]')[0].click()
        wait(browser, lambda d: css(d, "#flag-evidence"))
        screenshot(browser, f"audit-page-1024x768-{language}-{backend(settings)}")
        assert browser.execute_script("return [innerWidth, innerHeight]") == [1024, 768]
        boxes = browser.execute_script(BOXES, list(LAYOUT_PARTS))
        assert overlaps(boxes) == []
        # Close assignment: whole, inside the window and its pane, and what a click there hits.
        close = browser.find_element(By.ID, "close-assignment")
        assert close.is_displayed()
        left, top, right, bottom = browser.execute_script(
            "const r = arguments[0].getBoundingClientRect();"
            "return [r.left, r.top, r.right, r.bottom]",
            close,
        )
        pane_right = browser.execute_script(
            "return document.querySelector('.pane-map').getBoundingClientRect().right"
        )
        assert 0 <= left < right <= pane_right <= 1024
        assert 0 <= top < bottom <= 768
        hit = browser.execute_script(
            "return document.elementFromPoint(arguments[0], arguments[1]).id",
            (left + right) / 2,
            (top + bottom) / 2,
        )
        assert hit == "close-assignment"
        # Nothing pushes the page sideways, and the map keeps a usable size.
        assert browser.execute_script("return document.documentElement.scrollWidth") <= 1024
        map_box = browser.execute_script(
            "const r = document.getElementById('map').getBoundingClientRect();"
            "return [r.width, r.height]"
        )
        assert map_box[0] >= 300
        assert map_box[1] >= 200
        assert js_errors(browser) == []
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        browser.delete_all_cookies()


def test_the_audit_page_switches_to_chinese_and_back_from_its_language_menu(
    browser: Chrome,
    serve: ServeApp,
    client: TestClient,
    session: Session,
    settings: Settings,
    engine: Engine,
) -> None:
    data = Day(session, settings, client)
    far_meter = data.day.meters[2]
    base = serve(create_app(settings, engine))
    browser.get(f"{base}/audit")
    js_errors(browser)
    try:
        # The browser asks for English (--lang=en-GB): the page starts in it.
        wait(browser, lambda d: css(d, "#login-view h1"))
        assert browser.execute_script("return document.documentElement.lang") == "en-GB"
        assert browser.find_element(By.CSS_SELECTOR, "#login-view h1").text == "Sign in"

        choose_language(browser, "zh_CN", "zh-CN")
        assert browser.title == "抄表稽查 · Gridwalk"
        assert browser.find_element(By.CSS_SELECTOR, "#login-view h1").text == "登录"
        assert browser.find_element(By.CSS_SELECTOR, "label[for=username]").text == "用户名"
        screenshot(browser, f"audit-login-zh-{backend(settings)}")
        sign_in(browser, base)
        wait(browser, lambda d: d.find_element(By.ID, "who-name").text == "sup1")
        assert browser.find_element(By.ID, "who-role").text == "网格长"
        assert browser.find_element(By.CSS_SELECTOR, ".pane-left h2").text == "抄表任务"
        wait(browser, lambda d: css(d, "[data-assignment-id]"))  # the list loads after sign-in
        [item] = css(browser, "[data-assignment-id]")
        assert [f.find_element(By.TAG_NAME, "dt").text for f in css(item, ".figure")] == [
            "电表",
            "已抄",
            "未抄",
            "待抄",
            "行程",
        ]
        assert browser.find_element(By.ID, "list-zone").text == "时间为北京时间"
        verdict = item.find_element(By.CSS_SELECTOR, ".a-verdict").text
        assert "沿抄表段行走" in verdict
        assert "walked" not in verdict
        assert "抄表时间" in item.find_element(By.CSS_SELECTOR, ".a-read").text

        # A flag: its code's label, its sentence said by the server in Chinese, times in 北京时间.
        open_assignment(browser, data.assignment_id)
        wait(browser, lambda d: css(d, f'.flag[data-flag-id="{data.far.id}"]'))
        css(browser, f'.flag[data-flag-id="{data.far.id}"]')[0].click()
        wait(browser, lambda d: css(d, f'#flag-evidence[data-flag-id="{data.far.id}"]'))
        card = browser.find_element(By.ID, "flag-evidence").text
        assert "离表过远" in card
        assert f"定位距电表 {far_meter.meter_no} 150米（允许30米 + 精度8米）" in card
        evidence = browser.find_element(By.ID, "evidence").text
        assert "（北京时间）" in evidence
        assert browser.find_element(By.ID, "flag-count").text.endswith("时间为北京时间")
        assert browser.find_element(By.CSS_SELECTOR, "#timeline h3").text == "时间线"
        assert browser.find_element(By.ID, "timeline-zone").text == "时间为北京时间"
        assert "超出定位精度" in evidence
        assert "下达复抄" in evidence
        assert browser.find_element(By.ID, "review-accept").text == "排除疑点：读数有效"
        assert browser.find_element(By.ID, "review-reject").text == "确认疑点：读数有争议"
        # The skipped meter's reason is the handheld's word for it, not its code.
        skipped = data.day.meters[4]
        css(browser, f"#map path.meter-{skipped.id}")[0].click()
        wait(browser, lambda d: css(d, f'#meter-evidence[data-meter-id="{skipped.id}"]'))
        assert "有狗" in browser.find_element(By.ID, "evidence").text
        css(browser, f'.flag[data-flag-id="{data.far.id}"]')[0].click()
        wait(browser, lambda d: css(d, f'#flag-evidence[data-flag-id="{data.far.id}"]'))
        screenshot(browser, f"audit-page-zh-{backend(settings)}")
        # Nothing English is left but the data itself (names, codes, what people typed).
        detail = data.detail()
        shown = {k: v for k, v in detail.items() if k != "flags"}
        shown["readings"] = [
            {k: v for k, v in r.items() if k != "flags"} for r in detail["readings"]
        ]
        assert english_left(browser, [shown, "sup1"]) == set()
        assert js_errors(browser) == []

        # Back to English from the same menu, still signed in.
        choose_language(browser, "en", "en-GB")
        wait(browser, lambda d: css(d, "[data-assignment-id]"))
        assert browser.find_element(By.CSS_SELECTOR, ".pane-left h2").text == "Assignments"
        assert browser.find_element(By.ID, "who-role").text == "supervisor"
        screenshot(browser, f"audit-page-en-again-{backend(settings)}")
    finally:
        browser.delete_all_cookies()  # cookies are per host, not per port: the next test's too


def test_a_meter_card_says_where_past_cycles_found_the_meter(
    browser: Chrome,
    serve: ServeApp,
    client: TestClient,
    session: Session,
    settings: Settings,
    engine: Engine,
) -> None:
    data = Day(session, settings, client)
    day = data.day
    # Three past cycles read the route's meters, each fix a few metres off, no presence flag.
    for k in (3, 2, 1):
        start = WINDOW_START - timedelta(days=30 * k)
        past = assign(session, "R-1", "reader1", f"P{k}", start, start + timedelta(days=5))
        assert past.id is not None
        readings, track = honest_day(
            day.meters, local_time(start, 9), assignment_id=past.id, seed=k
        )
        answer = client.post(
            "/api/v1/sync/push",
            headers=day.headers,
            json={"readings": readings, "track_points": track},
        )
        assert answer.status_code == 200, answer.text
    meter = day.meters[5]  # the one not read this cycle
    [learned] = [m["learned_position"] for m in data.detail()["meters"] if m["id"] == meter.id]
    assert learned["readings"] == 3
    base = serve(create_app(settings, engine))
    browser.get(f"{base}/audit")
    js_errors(browser)
    try:
        sign_in(browser, base)
        wait(browser, lambda d: d.find_element(By.ID, "who-name").text == "sup1")
        open_assignment(browser, data.assignment_id)
        wait(browser, lambda d: css(d, f"#map path.meter-{meter.id}"))
        css(browser, f"#map path.meter-{meter.id}")[0].click()
        wait(browser, lambda d: css(d, "#learned-position"))
        position = f"{learned['lat']:.6f}, {learned['lon']:.6f}"
        spread = f"±{round(learned['spread_m'])} m"
        card = browser.find_element(By.ID, "meter-evidence").text
        assert f"meter probably at {position} (from 3 readings, {spread})" in card
        assert "from the mapped position" in card
        browser.execute_script("document.getElementById('meter-evidence').scrollIntoView()")
        screenshot(browser, f"audit-page-learned-{backend(settings)}")
        # A reading's card measures its fix against the learned position too.
        read = day.meters[0]
        css(browser, f"#map path.meter-{read.id}")[0].click()
        wait(browser, lambda d: css(d, f'#meter-evidence[data-meter-id="{read.id}"]'))
        evidence = browser.find_element(By.ID, "evidence").text
        assert "To learned position" in evidence
        assert int(browser.find_element(By.ID, "learned-distance-1").text.split()[0]) <= 15

        choose_language(browser, "zh_CN", "zh-CN")
        wait(browser, lambda d: css(d, f"#map path.meter-{meter.id}"))
        css(browser, f"#map path.meter-{meter.id}")[0].click()
        wait(browser, lambda d: css(d, "#learned-position"))
        card = browser.find_element(By.ID, "meter-evidence").text
        assert (
            f"电表可能在 {position}（由3次抄表定位得出，±{round(learned['spread_m'])}米）" in card
        )
        assert "推算表位" in card
        browser.execute_script("document.getElementById('meter-evidence').scrollIntoView()")
        screenshot(browser, f"audit-page-learned-zh-{backend(settings)}")
        assert js_errors(browser) == []
    finally:
        browser.delete_all_cookies()


def settled(check: Callable[[], bool]) -> bool:
    """A check of elements a re-render may replace while it reads them: False until it holds."""
    try:
        return check()
    except (StaleElementReferenceException, IndexError):
        return False


def flag_labels(browser: Chrome) -> list[str]:
    return sorted(e.text for e in css(browser, "#flag-list .flag-code"))


def select_flag(browser: Chrome, flag_id: int) -> None:
    css(browser, f'.flag[data-flag-id="{flag_id}"]')[0].click()


def evidence_card(browser: Chrome, flag_id: int) -> str:
    return str(css(browser, f'#flag-evidence[data-flag-id="{flag_id}"]')[0].text)


def test_a_replayed_track_and_fixes_typed_on_the_meters_are_shown_with_their_labels(
    browser: Chrome,
    serve: ServeApp,
    client: TestClient,
    session: Session,
    settings: Settings,
    engine: Engine,
) -> None:
    # Yesterday the reader walked the route and read half of it; today the other half comes
    # with yesterday's track replayed a day later (mock flag off) and every fix typed onto its
    # meter's coordinates. The real runner judges both pushes.
    day = reader_day(session, settings, client, n_meters=6)
    make_user(session, settings, "sup1", "supervisor", "G1")
    assert day.assignment.id is not None
    # The browser reads the machine's clock: yesterday is a day and an hour before it.
    yesterday = clock.now().replace(microsecond=0) - DAY - timedelta(hours=1)

    def later(stamp: str) -> str:
        return (datetime.fromisoformat(stamp) + DAY).isoformat()

    wire, track = honest_day(day.meters, yesterday, assignment_id=day.assignment.id, seed=5)
    replay = [{**p, "t": later(p["t"])} for p in track]
    typed = [
        {
            **item,
            "read_at": later(item["read_at"]),
            "confirmed_at": later(item["confirmed_at"]),
            "fix": {
                **item["fix"],
                "lat": meter.lat,
                "lon": meter.lon,
                "fix_time": later(item["fix"]["fix_time"]),
            },
        }
        for item, meter in zip(wire[3:], day.meters[3:], strict=True)
    ]
    for readings, points in ((wire[:3], track), (typed, replay)):
        response = client.post(
            "/api/v1/sync/push",
            headers=day.headers,
            json={"readings": readings, "track_points": points},
        )
        assert response.status_code == 200, response.text
    sup = auth(client, "sup1", "sup-desk-01")
    flags = client.get(f"{AUDIT}/assignments/{day.assignment.id}/flags", headers=sup).json()
    assert sorted(f["code"] for f in flags) == ["fix_on_meter"] * 3 + ["replayed_track"]
    [replayed] = [f for f in flags if f["code"] == "replayed_track"]
    copied = yesterday.astimezone(LOCAL).date().isoformat()
    assert replayed["params"]["copied_day"] == copied

    base = serve(create_app(settings, engine))
    browser.get(f"{base}/audit")
    js_errors(browser)
    try:
        sign_in(browser, base)
        wait(browser, lambda d: d.find_element(By.ID, "who-name").text == "sup1")
        open_assignment(browser, day.assignment.id)
        wait(browser, lambda d: len(css(d, "#flag-list .flag")) == 4)
        labels = sorted(e.text for e in css(browser, "#flag-list .flag-code"))
        assert labels == ["Fix exactly on the meter"] * 3 + ["Replayed track"]
        css(browser, f'.flag[data-flag-id="{replayed["id"]}"]')[0].click()
        wait(browser, lambda d: css(d, f'#flag-evidence[data-flag-id="{replayed["id"]}"]'))
        card = browser.find_element(By.ID, "flag-evidence").text
        assert f"repeats the track of {copied} shifted by 24.0 h" in card
        screenshot(browser, f"audit-page-replayed-{backend(settings)}")

        # In Chinese, from the header's menu: the page is drawn again in it (the assignment is
        # opened again once the list is back, so no element of the English page is used).
        choose_language(browser, "zh_CN", "zh-CN")
        wait(browser, lambda d: settled(lambda: css(d, ".pane-left h2")[0].text == "抄表任务"))
        wait(browser, lambda d: settled(lambda: bool(css(d, "[data-assignment-id]"))))
        wait(browser, lambda d: settled(lambda: open_assignment(d, day.assignment.id) is None))
        chinese = ["定位恰在电表坐标上"] * 3 + ["轨迹回放"]
        wait(browser, lambda d: settled(lambda: flag_labels(d) == chinese))
        wait(browser, lambda d: settled(lambda: select_flag(d, replayed["id"]) is None))
        sentence = f"的轨迹重复了 {copied} 的轨迹（时间平移24.0小时）"
        wait(browser, lambda d: settled(lambda: sentence in evidence_card(d, replayed["id"])))
        screenshot(browser, f"audit-page-replayed-zh-{backend(settings)}")
        assert js_errors(browser) == []
    finally:
        browser.delete_all_cookies()


@pytest.mark.parametrize("language", ["en", "zh_CN"])
def test_validation_pending_is_shown_beside_the_flags_until_the_queue_is_drained(
    browser: Chrome,
    serve: ServeApp,
    client: TestClient,
    session: Session,
    settings: Settings,
    engine: Engine,
    language: str,
) -> None:
    data = Day(session, settings, client)
    # New data the workers have not validated yet (this app drains nothing by itself: its
    # settings drain only at the end of a push request), and the assignment never validated
    # before it (its stored verdict gone): no verdict is said until it is.
    since = clock.now()
    validation_queue.enqueue(session, {data.assignment_id: (READ_AT, READ_AT)}, now=since)
    judged = session.get(AssignmentVerdict, data.assignment_id)
    assert judged is not None
    session.delete(judged)
    session.commit()
    said = "validation pending" if language == "en" else "校验中"
    base = serve(create_app(settings, engine))
    try:
        sign_in_in(browser, base, language)
        wait(browser, lambda d: css(d, "[data-assignment-id] .validation-pending"))
        [listed] = css(browser, "[data-assignment-id] .validation-pending")
        assert listed.text == said
        assert css(browser, "[data-assignment-id] .a-verdict") == []
        open_assignment(browser, data.assignment_id)
        wait(browser, lambda d: css(d, "#flag-pending .validation-pending"))
        [beside] = css(browser, "#flag-pending .validation-pending")
        assert beside.text == said
        assert not browser.find_element(By.ID, "assignment-verdict").is_displayed()
        hint = beside.get_attribute("title") or ""
        assert ("is being validated" if language == "en" else "正在校验") in hint
        assert css(browser, f'.flag[data-flag-id="{data.far.id}"]')  # the flags held are shown
        screenshot(browser, f"audit-page-validation-pending-{language}-{backend(settings)}")
        # Validated: the page looks again by itself, the mark goes and the verdict comes.
        validation_queue.drain(engine, settings)
        wait(browser, lambda d: not css(d, ".validation-pending"))
        as_shown = {**data.sup, "Accept-Language": "en" if language == "en" else "zh-CN"}
        summary = client.get(f"{AUDIT}/assignments/{data.assignment_id}", headers=as_shown)
        verdict = summary.json()["assignment"]["verdict"]["message"]
        wait(browser, lambda d: d.find_element(By.ID, "assignment-verdict").text == verdict)
        assert js_errors(browser) == []
    finally:
        browser.delete_all_cookies()


@pytest.mark.parametrize("language", ["en", "zh_CN"])
def test_the_timeline_lifts_the_pen_over_a_night_and_its_axis_says_the_day(
    browser: Chrome,
    serve: ServeApp,
    client: TestClient,
    session: Session,
    settings: Settings,
    engine: Engine,
    language: str,
) -> None:
    data = Day(session, settings, client)
    # The last meter read the next morning, after a short walk up to it.
    meter = data.day.meters[5]
    morning = READ_AT + DAY
    points = [
        track_point(
            morning + timedelta(seconds=30 * i), lat=meter.lat - (3 - i) * 0.00009, lon=meter.lon
        )
        for i in range(4)
    ]
    item = reading(data.assignment_id, meter, value="1200", at=morning + timedelta(seconds=95))
    pushed = client.post(
        "/api/v1/sync/push",
        headers=data.day.headers,
        json={"readings": [item], "track_points": points},
    )
    assert pushed.status_code == 200, pushed.text
    assert [r["status"] for r in pushed.json()["results"]] == ["accepted"]
    base = serve(create_app(settings, engine))
    try:
        sign_in_in(browser, base, language)
        open_assignment(browser, data.assignment_id)
        wait(browser, lambda d: css(d, "#timeline-distance path.tl-line"))
        # Yesterday's last point and this morning's first are both on the way to the meter read
        # this morning: a new stroke starts over the night, no line is drawn through it.
        d = css(browser, "#timeline-distance path.tl-line")[0].get_attribute("d") or ""
        strokes = [s for s in re.split(r"(?=M)", d) if s]
        assert len(strokes) >= 2, d
        assert strokes[-1].count("L") == len(points) - 1, d  # the morning's walk, in one stroke
        # The ticks name the day as well as the hour: the window spans two days.
        ticks = [e.text for e in css(browser, "#timeline-speed text.tl-scale")]
        dated = [t for t in ticks if re.search(r"\d{1,2}[/-]\d{1,2}", t)]
        assert len(dated) >= 2, ticks
        screenshot(browser, f"audit-timeline-two-days-{language}-{backend(settings)}")
        assert js_errors(browser) == []
    finally:
        browser.delete_all_cookies()
