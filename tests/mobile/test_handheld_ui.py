"""The real handheld app in a real window under Xvfb: log in, walk a route (GPX replay), read
meters through the screens, confirm, skip one, sync; the server holds exactly those records."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import gpxpy.gpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func
from sqlmodel import Session, select

from common import clock
from server.demo.days import honest_day
from server.demo.utility import CITY, USERS, load_demo
from server.main import create_app
from server.models import Reading, TrackPoint
from tests.conftest import LiveServer
from tests.factories import (
    PASSWORD,
    assign,
    auth,
    dispatch_fault,
    make_route,
    make_user,
    meters_of,
)
from tests.mobile.conftest import window_env

# The handheld runs in its own process, on the machine's clock: so does the server here.
pytestmark = pytest.mark.real_clock

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "handheld"


def run_driver(scenario: dict[str, object], display: str, tmp_path: Path) -> dict[str, Any]:
    """Run the app in its own process on the virtual display; return what the driver saw."""
    (tmp_path / "scenario.json").write_text(json.dumps(scenario))
    env = window_env(display, tmp_path)
    run = subprocess.run(
        [sys.executable, "-m", "tests.mobile.ui_driver", str(tmp_path / "scenario.json")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    result_file = Path(str(scenario["result"]))
    result: dict[str, Any] = (
        json.loads(result_file.read_text())
        if result_file.exists()
        else {"error": run.stderr[-4000:]}
    )
    assert result["error"] is None, result["error"]
    assert run.returncode == 0, run.stderr[-4000:]
    return result


def write_gpx(path: Path, track: list[dict[str, object]]) -> None:
    gpx = gpxpy.gpx.GPX()
    segment = gpxpy.gpx.GPXTrackSegment()
    gpx.tracks.append(gpxpy.gpx.GPXTrack())
    gpx.tracks[0].segments.append(segment)
    for p in track:
        segment.points.append(
            gpxpy.gpx.GPXTrackPoint(p["lat"], p["lon"], time=datetime.fromisoformat(str(p["t"])))
        )
    path.write_text(gpx.to_xml())


def test_a_reader_walks_reads_confirms_skips_and_syncs_through_the_screens_in_chinese(
    display: str,
    live_server: LiveServer,
    session: Session,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    make_user(session, live_server.settings, "reader1", "reader", "G1")
    route = make_route(session, "R-1", 6)
    assignment = assign(session, "R-1", "reader1")
    meters = meters_of(session, route)
    _, track = honest_day(meters, clock.now(), assignment_id=assignment.id, seed=3)
    write_gpx(tmp_path / "walk.gpx", track)
    backend = request.node.callspec.params["db_url"]
    shots = ARTIFACTS / f"{backend}-zh_CN"
    shutil.rmtree(shots, ignore_errors=True)
    scenario = {
        "flow": "reader",
        "lang": "zh_CN",
        "try_languages": ["English", "简体中文"],
        "server": live_server.url,
        "username": "reader1",
        "password": PASSWORD,
        "data_dir": str(tmp_path / "device"),
        "gpx": str(tmp_path / "walk.gpx"),
        "speed": 10,
        "track_interval_s": 0.5,
        "readings": 3,
        "screenshots": str(shots),
        "result": str(tmp_path / "result.json"),
        "timeout": 60,
    }
    result = run_driver(scenario, display, tmp_path)

    # The screens were really drawn: a screenshot of each.
    assert len(result["screenshots"]) == 10
    assert all(Path(p).stat().st_size > 5000 for p in result["screenshots"])
    # In the reader's language: the trade's words, the customer's own name.
    assert result["login_button"] == ["Log in", "登录"]
    assert result["language_kept"] == "zh_CN"
    texts = result["texts"]
    assert texts["progress"] == "共 6 户：已抄 0，未抄 0，剩余 6"
    assert texts["popup_title"].startswith("王芳")
    assert texts["popup_button"] == "抄这块表"
    assert texts["locked"].startswith("已锁定")
    assert "确认后的示数不可修改。" in texts["locked"]
    # Done: the way on is offered (the nearest still to read, the reader's default choice).
    assert texts["next"].startswith("下一户：")
    # Large enough for a thumb in a glove, on every screen the walk passed through.
    assert result["small_targets"] == []

    session.commit()
    held = {str(r.id): r for r in session.exec(select(Reading))}
    device = {r["id"]: r for r in result["readings"]}
    assert set(held) == set(device)
    assert len(device) == 4
    assert sorted(r["meter_id"] for r in result["confirmed"]) == sorted(
        r["meter_id"] for r in result["readings"] if r["value"] is not None
    )
    for reading_id, r in device.items():
        assert r["sync_status"] == "accepted"
        assert held[reading_id].skip_code == r["skip_code"]
        if r["value"] is not None:
            assert held[reading_id].value == Decimal(r["value"])
            assert held[reading_id].fix_lat is not None  # the GPS replay gave each a position
    assert [r["skip_code"] for r in device.values() if r["skip_code"]] == ["dog"]
    points = session.exec(select(func.count()).select_from(TrackPoint)).one()
    assert points == result["track_points"] > 5


def test_a_crew_works_a_job_offline_through_the_screens_and_the_board_follows(
    display: str,
    live_server: LiveServer,
    session: Session,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    settings = live_server.settings
    make_route(session, "R-1", 3)
    make_user(session, settings, "agent1", "agent")
    make_user(session, settings, "crew1", "crew", "G1")
    with TestClient(create_app(settings, live_server.engine)) as office:
        agent = auth(office, "agent1", "desk-agent-01")
        job_id = dispatch_fault(office, agent)["id"]
        assert (
            office.get("/api/v1/outages", headers=agent, params={"account_no": "R-1-A0001"}).json()[
                0
            ]["started_at"]
            is None
        )

        backend = request.node.callspec.params["db_url"]
        shots = ARTIFACTS / f"crew-{backend}"
        shutil.rmtree(shots, ignore_errors=True)
        result = run_driver(
            {
                "flow": "crew",
                "server": live_server.url,
                "username": "crew1",
                "password": PASSWORD,
                "data_dir": str(tmp_path / "device"),
                "fixed": [30.2742, 120.1552],
                "screenshots": str(shots),
                "result": str(tmp_path / "result.json"),
                "timeout": 60,
            },
            display,
            tmp_path,
        )

        assert result["job_id"] == job_id
        # Started, re-estimated and finished with no link: all three waited on the device.
        assert result["waiting_offline"] == 3
        assert [(e["kind"], e["sync_status"]) for e in result["events"]] == [
            ("started", "accepted"),
            ("eta_changed", "accepted"),
            ("finished", "accepted"),
        ]
        job = office.get(f"/api/v1/jobs/{job_id}", headers=agent).json()
        assert job["status"] == "finished"
        assert job["result_note"] == "fuse replaced, supply restored"
        assert datetime.fromisoformat(job["expected_finish"]) == datetime.fromisoformat(
            result["expected_finish"]
        )
        started = datetime.fromisoformat(job["started_at"])
        # The start was logged on the device while offline, not when the push landed.
        assert started < datetime.fromisoformat(job["events"][-1]["received_at"])
        assert job["start_position"] == {"lat": 30.2742, "lon": 120.1552}
        assert job["response"]["response_met"] is True
        # The board now says the outage is restored, and when (it stays a day, for the caller
        # whose own power is still off).
        [board] = office.get(
            "/api/v1/outages", headers=agent, params={"account_no": "R-1-A0001"}
        ).json()
        assert (board["job_id"], board["status"]) == (job_id, "restored")
        assert datetime.fromisoformat(board["restored_at"]) == datetime.fromisoformat(
            job["finished_at"]
        )
        assert len(result["screenshots"]) == 6
        assert result["small_targets"] == []


def test_the_app_starts_on_a_fresh_machine_with_a_data_dir_that_does_not_exist_yet(
    display: str, tmp_path: Path
) -> None:
    """The README's own example, `--data-dir /tmp/handheld`, on a machine that never ran it."""
    data_dir = tmp_path / "fresh" / "handheld"
    log = tmp_path / "app.log"
    env = os.environ | {"DISPLAY": display, "SDL_VIDEODRIVER": "x11", "PYTHONPATH": str(ROOT)}
    env.pop("KIVY_HOME", None)
    with log.open("wb") as out:
        app = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mobile.main",
                "--data-dir",
                str(data_dir),
                "--fixed",
                "30.2741,120.1551",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            # A bound on a hung start, not a measure of speed: the window's main loop is the sign.
            deadline = time.monotonic() + 120
            while "Start application main loop" not in log.read_text(errors="replace"):
                assert app.poll() is None, log.read_text(errors="replace")[-3000:]
                assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
                time.sleep(0.1)
        finally:
            app.terminate()
            app.wait(timeout=30)
    assert (data_dir / "gridwalk-device.db").is_file()
    assert (data_dir / "kivy").is_dir()
    assert "Traceback" not in log.read_text(errors="replace")


def test_a_data_dir_that_cannot_be_made_gets_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    run = subprocess.run(
        [sys.executable, "-m", "mobile.main", "--data-dir", str(blocker / "handheld")],
        cwd=ROOT,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [
        f"gridwalk-handheld: cannot use --data-dir {blocker / 'handheld'}: Not a directory"
    ]


def test_an_unattended_start_logs_in_by_itself_with_the_password_from_the_environment(
    display: str, live_server: LiveServer, session: Session, tmp_path: Path
) -> None:
    """`gridwalk-handheld --user NAME` for demos and kiosks: no one types on the login screen."""
    make_user(session, live_server.settings, "reader1", "reader", "G1")
    data_dir = tmp_path / "kiosk"
    log = tmp_path / "app.log"
    env = window_env(display, tmp_path) | {"GRIDWALK_PASSWORD": PASSWORD}
    command = [sys.executable, "-m", "mobile.main", "--server", live_server.url]
    command += ["--data-dir", str(data_dir), "--fixed", "30.2741,120.1551"]
    command += ["--user", "reader1", "--lang", "zh_CN"]
    with log.open("wb") as out:
        app = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            # Logged in is a fact on the device: its database names the user. A bound on a hung
            # start, not a measure of speed.
            deadline = time.monotonic() + 120
            while device_setting(data_dir, "username") != "reader1":
                assert app.poll() is None, log.read_text(errors="replace")[-3000:]
                assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
                time.sleep(0.2)
        finally:
            app.terminate()
            app.wait(timeout=30)
    assert "Traceback" not in log.read_text(errors="replace")


def test_an_unattended_start_without_the_password_says_what_is_missing(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "mobile.main", "--data-dir", str(tmp_path / "d")]
    command += ["--server", "http://127.0.0.1:9", "--user", "reader1"]
    run = subprocess.run(
        command,
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "GRIDWALK_PASSWORD"}
        | {"PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1
    assert "GRIDWALK_PASSWORD" in run.stderr


def device_setting(data_dir: Path, key: str) -> str | None:
    """A setting in the handheld's own database, read as another process would (or None)."""
    path = data_dir / "gridwalk-device.db"
    if not path.exists():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            row = db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
    except sqlite3.OperationalError:  # not made yet, or busy: ask again
        return None
    return None if row is None else str(row[0])


def test_the_demos_r101_on_a_fresh_handheld_in_chinese(
    display: str, live_server: LiveServer, session: Session, tmp_path: Path
) -> None:
    """The demo as a reader meets it: customers' names and addresses, the app's words and the
    route's true state, in Chinese, on a handheld that has never seen the route."""
    load_demo(session, live_server.settings)
    session.commit()
    shots = ARTIFACTS / "demo-zh_CN"
    shutil.rmtree(shots, ignore_errors=True)
    scenario = {
        "flow": "look",
        "lang": "zh_CN",
        "server": live_server.url,
        "username": "reader1",
        "password": next(u.password for u in USERS if u.username == "reader1"),
        "route_code": "R-101",
        "data_dir": str(tmp_path / "device"),
        "fixed": [30.2741, 120.1551],
        "screenshots": str(shots),
        "result": str(tmp_path / "result.json"),
        "timeout": 60,
    }
    result = run_driver(scenario, display, tmp_path)
    texts = result["texts"]
    assert texts["progress"] == "共 41 户：已抄 35，未抄 2，剩余 4"
    assert texts["first_meter"].startswith("已抄 ")
    assert "已在另一台抄表机上" in texts["locked"]
    assert CITY in texts["customer"]  # the customer's address, in Chinese
    assert result["small_targets"] == []
