"""Access rules (issue 10): whose records a push may touch, which grid a supervisor sees."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func
from sqlmodel import Session, select

from server.core.config import Settings
from server.models import JobEvent, Reading, TrackPoint
from tests.factories import (
    NOW,
    READ_AT,
    assign,
    auth,
    make_route,
    make_user,
    meters_of,
    reading,
    track_point,
)

PUSH = "/api/v1/sync/push"


def _push(client: TestClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = client.post(PUSH, headers=headers, json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def _count(session: Session, model: Any, *where: Any) -> int:
    session.commit()  # a fresh view of what the requests wrote
    return int(session.exec(select(func.count()).select_from(model).where(*where)).one())


# --- A pushed record is the pushing user's own --------------------------------------------------


def test_a_point_pushed_on_another_readers_device_id_does_not_make_theirs_a_duplicate(
    client: TestClient, session: Session, settings: Settings
) -> None:
    make_user(session, settings, "reader1", "reader", "G1")
    make_user(session, settings, "reader2", "reader", "G1")
    t = READ_AT
    # reader1 logs in with reader2's device id and pushes a point at t first.
    forger = auth(client, "reader1", "device-of-reader2")
    first = _push(client, forger, track_points=[track_point(t, lat=30.0)])
    assert first["track"]["accepted"] == 1
    owner = auth(client, "reader2", "device-of-reader2")
    theirs = _push(client, owner, track_points=[track_point(t)])
    assert (theirs["track"]["accepted"], theirs["track"]["duplicate"]) == (1, 0)
    session.commit()
    stored = session.exec(select(TrackPoint).order_by(TrackPoint.user_id)).all()  # type: ignore[arg-type]
    assert [(p.device_id, p.lat) for p in stored] == [
        ("device-of-reader2", 30.0),
        ("device-of-reader2", track_point(t)["lat"]),
    ]
    # Each user's own resend is still a duplicate.
    again = _push(client, owner, track_points=[track_point(t)])
    assert (again["track"]["accepted"], again["track"]["duplicate"]) == (0, 1)


def test_a_device_shared_by_two_shifts_keeps_both_users_tracks(
    client: TestClient, session: Session, settings: Settings
) -> None:
    make_user(session, settings, "reader1", "reader", "G1")
    make_user(session, settings, "reader2", "reader", "G1")
    morning = auth(client, "reader1", "shared-handheld-1")
    points = [track_point(NOW - timedelta(hours=5, minutes=i)) for i in range(3)]
    assert _push(client, morning, track_points=points)["track"]["accepted"] == 3
    evening = auth(client, "reader2", "shared-handheld-1")
    later = [track_point(NOW - timedelta(hours=1, minutes=i)) for i in range(2)]
    # The evening shift's app resends the morning's points still in the shared outbox, and its own.
    answer = _push(client, evening, track_points=later)
    assert answer["track"]["accepted"] == 2
    assert _count(session, TrackPoint, TrackPoint.device_id == "shared-handheld-1") == 5


def _two_readers(session: Session, settings: Settings, client: TestClient) -> tuple[Any, ...]:
    make_user(session, settings, "reader1", "reader", "G1")
    make_user(session, settings, "reader2", "reader", "G1")
    r1, r2 = make_route(session, "R-1", 2), make_route(session, "R-2", 2)
    a1, a2 = assign(session, "R-1", "reader1"), assign(session, "R-2", "reader2")
    return (
        (a1, meters_of(session, r1), auth(client, "reader1", "device-0001")),
        (a2, meters_of(session, r2), auth(client, "reader2", "device-0002")),
    )


def test_a_reading_id_held_by_another_user_is_refused_id_taken_not_duplicate(
    client: TestClient, session: Session, settings: Settings
) -> None:
    (a1, m1, h1), (a2, m2, h2) = _two_readers(session, settings, client)
    mine = reading(a1.id, m1[0], value="1100")
    assert _push(client, h1, readings=[mine])["results"][0]["status"] == "accepted"
    # reader2 sends reader1's exact reading: not theirs, so not "duplicate" either.
    copy = _push(client, h2, readings=[mine])["results"][0]
    assert (copy["status"], copy["error"]) == ("rejected", "id_taken")
    # reader2's own reading that happens to carry the same id: refused, reader1's untouched.
    clash = _push(client, h2, readings=[reading(a2.id, m2[0], value="1200", id=mine["id"])])
    assert (clash["results"][0]["status"], clash["results"][0]["error"]) == ("rejected", "id_taken")
    session.commit()
    held = session.exec(select(Reading)).one()
    assert (str(held.id), held.value, held.user_id) == (mine["id"], 1100, a1.reader_id)
    # reader1's own resend is still a plain duplicate.
    assert _push(client, h1, readings=[mine])["results"][0]["status"] == "duplicate"


def test_a_job_event_id_held_by_another_user_is_refused_id_taken(
    client: TestClient, session: Session, settings: Settings
) -> None:
    make_route(session, "R-1", 2)
    make_user(session, settings, "agent1", "agent")
    for crew in ("crew1", "crew2"):
        make_user(session, settings, crew, "crew", "G1")
    agent = auth(client, "agent1", "agent-desk-01")
    job = client.post(
        "/api/v1/jobs",
        headers=agent,
        json={"kind": "fault", "content": "line down", "crew": ["crew1", "crew2"]},
    ).json()
    started = {
        "id": str(uuid.uuid4()),
        "job_id": job["id"],
        "kind": "started",
        "at": (NOW - timedelta(minutes=5)).isoformat(),
    }
    crew1, crew2 = auth(client, "crew1", "dev-crew1-01"), auth(client, "crew2", "dev-crew2-01")
    assert _push(client, crew1, job_events=[started])["results"][0]["status"] == "accepted"
    copy = _push(client, crew2, job_events=[started])["results"][0]
    assert (copy["status"], copy["error"]) == ("rejected", "id_taken")
    session.commit()
    held = session.exec(select(JobEvent).where(JobEvent.id == uuid.UUID(started["id"]))).one()
    assert held.device_id == "dev-crew1-01"
    assert _push(client, crew1, job_events=[started])["results"][0]["status"] == "duplicate"
