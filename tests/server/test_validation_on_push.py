"""Validation runs as pushes land; a supervisor closes an assignment and sees what was missed."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from server.core.config import Settings
from server.demo.days import home_day, honest_day
from server.main import create_app
from server.models import Assignment
from tests.factories import (
    TODAY,
    ReaderDay,
    assign,
    auth,
    local_time,
    make_route,
    make_user,
    reader_day,
)

AUDIT = "/api/v1/audit"
# Inside the factories' window (TODAY ± 5 days): yesterday morning, in UTC+8.
MORNING = local_time(TODAY - timedelta(days=1), 9)


def push(client: TestClient, day: ReaderDay, **body: Any) -> dict[str, Any]:
    response = client.post("/api/v1/sync/push", headers=day.headers, json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def flags(client: TestClient, sup: dict[str, str], assignment_id: int) -> list[dict[str, Any]]:
    response = client.get(f"{AUDIT}/assignments/{assignment_id}/flags", headers=sup)
    assert response.status_code == 200
    result: list[dict[str, Any]] = response.json()
    return result


def test_an_honest_day_pushed_raises_no_flag(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client, n_meters=8)
    make_user(session, settings, "sup1", "supervisor", "G1")
    sup = auth(client, "sup1", "sup-desk-01")
    readings, track = honest_day(day.meters, MORNING, assignment_id=day.assignment.id, seed=5)
    result = push(client, day, readings=readings, track_points=track)
    assert {r["status"] for r in result["results"]} == {"accepted"}
    assert flags(client, sup, day.assignment.id) == []


def test_a_day_typed_at_home_is_flagged_the_moment_it_lands(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client, n_meters=6)
    make_user(session, settings, "sup1", "supervisor", "G1")
    sup = auth(client, "sup1", "sup-desk-01")
    home = (day.meters[0].lat + 0.01, day.meters[0].lon + 0.01)  # about 1.4 km away
    readings, track = home_day(day.meters, MORNING, assignment_id=day.assignment.id, home=home)
    push(client, day, readings=readings, track_points=track)
    found = flags(client, sup, day.assignment.id)
    not_on_track = {f["reading_id"] for f in found if f["code"] == "not_on_track"}
    assert not_on_track == {r["id"] for r in readings}
    unchanged = [f for f in found if f["code"] == "unchanged"]
    assert len(unchanged) == 2  # every third meter got last cycle's register again
    assert all("m" in f["message"] for f in found if f["code"] == "not_on_track")


def test_a_late_track_batch_clears_the_flags_it_witnesses(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client, n_meters=5)
    make_user(session, settings, "sup1", "supervisor", "G1")
    sup = auth(client, "sup1", "sup-desk-01")
    readings, track = honest_day(day.meters, MORNING, assignment_id=day.assignment.id, seed=2)
    push(client, day, readings=readings)  # the track is still on the phone
    assert {f["code"] for f in flags(client, sup, day.assignment.id)} == {"not_on_track"}
    push(client, day, track_points=track)
    assert flags(client, sup, day.assignment.id) == []


def test_closing_early_flags_missed_meters_and_withdraws_the_route(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client, n_meters=5)
    make_user(session, settings, "sup1", "supervisor", "G1")
    make_user(session, settings, "sup2", "supervisor", "G2")
    sup = auth(client, "sup1", "sup-desk-01")
    cursor = client.get("/api/v1/sync/pull", headers=day.headers).json()["cursor"]
    readings, track = honest_day(day.meters[:3], MORNING, assignment_id=day.assignment.id)
    push(client, day, readings=readings, track_points=track)

    url = f"{AUDIT}/assignments/{day.assignment.id}/close"
    assert client.post(url, headers=day.headers).status_code == 403
    assert client.post(url, headers=auth(client, "sup2", "sup-desk-02")).status_code == 403
    closed = client.post(url, headers=sup)
    assert closed.status_code == 200, closed.text
    assert (closed.json()["status"], closed.json()["missing"]) == ("closed", 2)
    missed = [f for f in flags(client, sup, day.assignment.id) if f["code"] == "missed"]
    assert sorted(f["meter_id"] for f in missed) == sorted(m.id for m in day.meters[3:])
    assert client.post(url, headers=sup).status_code == 409

    pulled = client.get("/api/v1/sync/pull", headers=day.headers, params={"cursor": cursor}).json()
    assert {
        "type": "assignment",
        "id": str(day.assignment.id),
        "assignment_id": day.assignment.id,
    } in pulled["withdrawn"]


def test_the_server_closes_assignments_whose_window_ended_by_itself(
    session: Session, settings: Settings, engine: Engine
) -> None:
    make_user(session, settings, "reader1", "reader", "G1")
    make_route(session, "R-OLD", 2)
    make_route(session, "R-NOW", 2)
    ended = TODAY - timedelta(days=30)
    old = assign(session, "R-OLD", "reader1", "C-old", ended - timedelta(days=4), ended)
    current = assign(session, "R-NOW", "reader1", "C-now")
    running = settings.model_copy(update={"close_due_every_minutes": 60})
    with TestClient(create_app(running, engine)):
        # A bound on waiting for the closer's first run (at start-up), not a measure of speed.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            session.commit()
            status = session.exec(select(Assignment.status).where(Assignment.id == old.id)).one()
            if status == "closed":
                break
            time.sleep(0.05)
    session.commit()
    assert session.exec(select(Assignment.status).where(Assignment.id == old.id)).one() == "closed"
    assert (
        session.exec(select(Assignment.status).where(Assignment.id == current.id)).one() == "open"
    )
