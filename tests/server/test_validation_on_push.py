"""Validation runs as pushes land; a supervisor closes an assignment and sees what was missed."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from server.core.config import Settings
from server.demo.days import home_day, honest_day
from server.main import create_app
from server.models import Assignment, Flag
from tests.factories import (
    TODAY,
    ReaderDay,
    assign,
    auth,
    local_time,
    make_route,
    make_user,
    reader_day,
    reading,
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


def test_the_same_flag_reads_in_the_callers_language_with_its_numbers_as_params(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client, n_meters=1)
    make_user(session, settings, "sup1", "supervisor", "G1")
    sup = auth(client, "sup1", "sup-desk-01")
    item = reading(day.assignment.id, day.meters[0], at=MORNING)
    item["fix"]["lat"] = day.meters[0].lat + 143 / 111_200  # 143 m north of the meter
    item["fix"]["lon"] = day.meters[0].lon
    item["fix"]["accuracy_m"] = 1.0
    push(client, day, readings=[item])
    url = f"{AUDIT}/assignments/{day.assignment.id}/flags"

    def far(language: str | None) -> dict[str, Any]:
        headers = sup if language is None else {**sup, "Accept-Language": language}
        response = client.get(url, headers=headers)
        assert response.status_code == 200, response.text
        [flag] = [f for f in response.json() if f["code"] == "far_from_meter"]
        return dict(flag)

    chinese, english, unsaid = far("zh-CN,zh;q=0.9"), far("en"), far(None)
    meter = day.meters[0].meter_no
    assert chinese["params"] == english["params"]
    assert chinese["params"] == {
        "meter": meter,
        "distance_m": pytest.approx(143, abs=0.5),
        "radius_m": 30.0,
        "accuracy_m": 10.0,  # the reported 1 m is credited min_credited_accuracy_m
    }
    assert english["message"] == f"fix 143 m from meter {meter} (allowed 30 m + accuracy 10 m)"
    assert chinese["message"] == f"定位距电表 {meter} 143米（允许30米 + 精度10米）"
    # A caller that names no language gets the English kept for exports; so is the stored one.
    assert unsaid["message"] == english["message"]
    [stored] = session.exec(select(Flag).where(Flag.code == "far_from_meter")).all()
    assert (stored.message, stored.params) == (english["message"], english["params"])
    # The assignment's detail and its readings say it in the caller's language too.
    headers = {**sup, "Accept-Language": "zh-CN"}
    detail = client.get(f"{AUDIT}/assignments/{day.assignment.id}", headers=headers).json()
    assert chinese["message"] in [f["message"] for f in detail["flags"]]
    assert chinese["message"] in [f["message"] for r in detail["readings"] for f in r["flags"]]


def test_a_flag_made_by_hand_has_no_params_and_keeps_its_own_sentence(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client, n_meters=1)
    make_user(session, settings, "sup1", "supervisor", "G1")
    sup = auth(client, "sup1", "sup-desk-01")
    assert day.assignment.id is not None
    session.add(
        Flag(
            assignment_id=day.assignment.id,
            code="far_from_meter",
            severity="warn",
            message="seen from the road by the supervisor",
        )
    )
    session.commit()
    [flag] = flags(client, sup | {"Accept-Language": "zh-CN"}, day.assignment.id)
    assert (flag["message"], flag["params"]) == ("seen from the road by the supervisor", None)


def test_a_refused_reading_is_told_in_the_pushers_language_with_its_params(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client, n_meters=1)
    first = reading(day.assignment.id, day.meters[0], at=MORNING)
    second = reading(day.assignment.id, day.meters[0], at=MORNING + timedelta(minutes=1))
    push(client, day, readings=[first])
    meter = day.meters[0].meter_no
    results = {}
    for language in ("zh-CN", "en"):
        response = client.post(
            "/api/v1/sync/push",
            headers={**day.headers, "Accept-Language": language},
            json={"readings": [second]},
        )
        assert response.status_code == 200, response.text
        [results[language]] = response.json()["results"]
    assert results["zh-CN"]["error"] == results["en"]["error"] == "already_read"
    assert results["zh-CN"]["params"] == results["en"]["params"] == {"meter": meter}
    assert results["en"]["detail"] == (
        f"meter {meter} already has a reading in this assignment; a new one needs a "
        "supervisor's re-read order"
    )
    assert results["zh-CN"]["detail"] == (
        f"电表 {meter} 在此任务中已有示数；重新抄表需要网格长下达复抄任务"
    )
