"""Pushing the outbox: idempotent, locked, per item, never half; bad bodies get a clear 4xx."""

from __future__ import annotations

import gzip
import json
import logging
import socket
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func
from sqlmodel import Session, select

from common import clock
from server.core.config import Settings
from server.main import create_app
from server.models import Reading, RereadOrder, TrackPoint
from tests.conftest import LiveServer
from tests.factories import (
    READ_AT,
    ReaderDay,
    assign,
    login,
    make_user,
    reader_day,
    reading,
    track_point,
)

PUSH = "/api/v1/sync/push"


def push(client: TestClient, day: ReaderDay, **body: Any) -> dict[str, Any]:
    response = client.post(PUSH, headers=day.headers, json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def count(session: Session, model: Any) -> int:
    session.commit()  # a fresh view of what the requests wrote
    return int(session.exec(select(func.count()).select_from(model)).one())


def test_the_same_reading_twice_is_accepted_then_duplicate(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client)
    item = reading(day.assignment.id, day.meters[0])
    assert push(client, day, readings=[item])["results"] == [
        {"id": item["id"], "status": "accepted", "error": None, "detail": None, "params": None}
    ]
    assert push(client, day, readings=[item])["results"][0]["status"] == "duplicate"
    assert count(session, Reading) == 1


def test_the_same_reading_with_its_times_in_another_offset_is_a_duplicate(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client)
    item = reading(day.assignment.id, day.meters[0], value="1100.50")
    push(client, day, readings=[item])
    shifted = dict(
        item, value="1100.5", read_at=READ_AT.astimezone().isoformat().replace("+00:00", "Z")
    )
    # Same instant, same value written differently: the same reading.
    assert push(client, day, readings=[shifted])["results"][0]["status"] == "duplicate"


def test_changing_a_held_reading_is_rejected_locked(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client)
    item = reading(day.assignment.id, day.meters[0], value="1100")
    push(client, day, readings=[item])
    changed = dict(item, value="1200")
    result = push(client, day, readings=[changed])["results"][0]
    assert result["status"] == "rejected"
    assert result["error"] == "locked"
    session.commit()  # a fresh view of what the requests wrote
    assert session.exec(select(Reading.value)).one() == 1100


def test_second_reading_of_same_meter_is_rejected_already_read(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client)
    push(client, day, readings=[reading(day.assignment.id, day.meters[0], value="1100")])
    second = reading(day.assignment.id, day.meters[0], value="1101")
    result = push(client, day, readings=[second])["results"][0]
    assert (result["status"], result["error"]) == ("rejected", "already_read")
    skip = reading(day.assignment.id, day.meters[0], value=None, skip_code="dog")
    assert push(client, day, readings=[skip])["results"][0]["error"] == "already_read"
    assert count(session, Reading) == 1


def test_a_reread_order_lets_a_new_reading_supersede_the_old_and_keeps_both(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client)
    supervisor = make_user(session, settings, "sup1", "supervisor", "G1")
    first = reading(day.assignment.id, day.meters[0], value="1100")
    push(client, day, readings=[first])
    order = RereadOrder(
        assignment_id=day.assignment.id,
        meter_id=day.meters[0].id,
        reading_id=uuid.UUID(first["id"]),
        reason="looks estimated",
        ordered_by=supervisor.id,
        status="open",
        change_seq=0,
    )
    session.add(order)
    session.commit()

    reread = reading(
        day.assignment.id,
        day.meters[0],
        value="1180",
        at=READ_AT + timedelta(hours=3),
        reread_of=str(order.id),
    )
    assert push(client, day, readings=[reread])["results"][0]["status"] == "accepted"
    again = reading(
        day.assignment.id,
        day.meters[0],
        value="1181",
        at=READ_AT + timedelta(hours=4),
        reread_of=str(order.id),
    )
    assert push(client, day, readings=[again])["results"][0]["error"] == "reread_order_closed"

    session.commit()  # a fresh view of what the requests wrote
    new = session.get(Reading, uuid.UUID(reread["id"]))
    assert new is not None
    assert new.supersedes == uuid.UUID(first["id"])
    assert session.get(Reading, uuid.UUID(first["id"])) is not None
    assert session.exec(select(RereadOrder.status)).one() == "done"


def test_one_bad_item_is_rejected_and_the_rest_of_the_batch_is_stored(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client)
    good = [
        reading(day.assignment.id, m, value=str(2000 + i)) for i, m in enumerate(day.meters[:3])
    ]
    bad_value = reading(day.assignment.id, day.meters[3], value="not a number")
    too_many_dials = reading(day.assignment.id, day.meters[4], value="1234567")
    no_id = {"value": "5"}
    results = push(
        client, day, readings=[good[0], bad_value, good[1], too_many_dials, no_id, good[2]]
    )["results"]
    assert [r["status"] for r in results] == [
        "accepted",
        "rejected",
        "accepted",
        "rejected",
        "rejected",
        "accepted",
    ]
    assert results[1]["error"] == "invalid"
    assert "value" in results[1]["detail"]
    assert results[3]["error"] == "value_exceeds_dials"
    assert results[4]["id"] is None
    assert count(session, Reading) == 3


def test_reading_with_both_value_and_skip_or_neither_is_invalid(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client)
    both = reading(day.assignment.id, day.meters[0], skip_code="dog")
    neither = reading(day.assignment.id, day.meters[1], value=None)
    bad_skip = reading(day.assignment.id, day.meters[2], value=None, skip_code="aliens")
    naive = READ_AT.replace(tzinfo=None).isoformat()
    naive_time = reading(day.assignment.id, day.meters[3], read_at=naive)
    results = push(client, day, readings=[both, neither, bad_skip, naive_time])["results"]
    assert [r["error"] for r in results] == ["invalid"] * 4
    assert "skip_code" in results[2]["detail"]
    assert "read_at" in results[3]["detail"]
    assert count(session, Reading) == 0


def test_a_skip_is_stored_with_its_code_and_note(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client)
    skip = reading(
        day.assignment.id,
        day.meters[0],
        value=None,
        skip_code="locked",
        note="gate locked, nobody home",
        fix=None,
    )
    assert push(client, day, readings=[skip])["results"][0]["status"] == "accepted"
    held = session.exec(select(Reading)).one()
    assert (held.skip_code, held.note, held.value, held.fix_lat) == (
        "locked",
        "gate locked, nobody home",
        None,
        None,
    )


def test_meter_of_another_route_is_rejected(
    client: TestClient, session: Session, settings: Settings
) -> None:
    from tests.factories import make_route, meters_of

    day = reader_day(session, settings, client)
    other = meters_of(session, make_route(session, "R-2", 1))[0]
    results = push(
        client, day, readings=[reading(day.assignment.id, other), reading(999_999, day.meters[0])]
    )["results"]
    assert [r["error"] for r in results] == ["meter_not_on_route", "unknown_assignment"]


def test_server_set_fields_in_a_reading_are_refused(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client)
    sneaky = reading(
        day.assignment.id, day.meters[0], received_at="2020-01-01T00:00:00Z", supersedes=None
    )
    result = push(client, day, readings=[sneaky])["results"][0]
    assert result["error"] == "invalid"
    assert "received_at" in result["detail"]


def test_the_server_records_receive_time_and_the_device_clock(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client)
    sent_at = (READ_AT + timedelta(hours=1)).isoformat()
    push(client, day, sent_at=sent_at, readings=[reading(day.assignment.id, day.meters[0])])
    held = session.exec(select(Reading)).one()
    assert held.sent_at is not None
    assert held.sent_at.isoformat() == sent_at
    assert held.received_at > held.sent_at
    assert held.device_id == "device-0001"


def test_track_points_are_answered_in_aggregate_and_deduplicated(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client)
    points = [
        track_point(READ_AT + timedelta(seconds=5 * i), lon=120.1551 + i * 1e-5) for i in range(10)
    ]
    first = push(client, day, track_points=[*points[:6], points[0]])
    assert first["track"] == {"accepted": 6, "duplicate": 1, "rejected": []}
    bad = dict(points[7], lat=91)
    second = push(client, day, track_points=[*points[4:7], bad, *points[8:]])
    assert second["track"]["accepted"] == 3
    assert second["track"]["duplicate"] == 2
    assert [r["index"] for r in second["track"]["rejected"]] == [3]
    assert "lat" in second["track"]["rejected"][0]["error"]
    assert count(session, TrackPoint) == 9


def test_a_gzip_body_is_accepted(client: TestClient, session: Session, settings: Settings) -> None:
    day = reader_day(session, settings, client)
    body = gzip.compress(
        json.dumps({"readings": [reading(day.assignment.id, day.meters[0])]}).encode()
    )
    response = client.post(
        PUSH,
        content=body,
        headers=day.headers | {"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert response.status_code == 200
    assert response.json()["results"][0]["status"] == "accepted"


def test_malformed_bodies_get_a_4xx_naming_what_is_wrong(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client)
    cases = [
        (b"{not json", {}, 400, "not JSON"),
        (b"[1, 2]", {}, 422, "JSON object"),
        (b'{"readings": {"a": 1}}', {}, 422, "readings must be a list"),
        (b'{"readingz": []}', {}, 422, "readingz"),
        (b'{"sent_at": "yesterday"}', {}, 422, "sent_at"),
        (b"\x1f\x8b garbage", {"Content-Encoding": "gzip"}, 400, "gzip"),
        (gzip.compress(b"{}")[:-6], {"Content-Encoding": "gzip"}, 400, "truncated"),
        (b"{}", {"Content-Encoding": "br"}, 415, "br"),
    ]
    for body, headers, status, words in cases:
        response = client.post(PUSH, content=body, headers=day.headers | headers)
        assert response.status_code == status, (body, response.text)
        assert words in response.json()["detail"], (body, response.text)
    assert count(session, Reading) == 0


def test_an_oversized_body_gets_413(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client)
    huge = b'{"readings": [], "pad": "' + b"x" * (settings.max_push_bytes + 10) + b'"}'
    assert client.post(PUSH, content=huge, headers=day.headers).status_code == 413
    bomb = gzip.compress(b" " * (settings.max_push_inflated_bytes + 10) + b"{}")
    response = client.post(PUSH, content=bomb, headers=day.headers | {"Content-Encoding": "gzip"})
    assert response.status_code == 413


def test_a_job_event_for_a_job_not_yours_is_rejected(
    client: TestClient, session: Session, settings: Settings
) -> None:
    from server.models import Job, JobCrew

    day = reader_day(session, settings, client)
    crew = make_user(session, settings, "crew1", "crew", "G1")
    job = Job(kind="fault", urgency="urgent", content="transformer fuse", change_seq=0)
    session.add(job)
    session.flush()
    session.add(JobCrew(job_id=job.id, user_id=crew.id))
    session.commit()
    event = {
        "id": str(uuid.uuid4()),
        "job_id": str(job.id),
        "kind": "note",
        "at": READ_AT.isoformat(),
        "note": "on my way",
    }
    result = push(client, day, job_events=[event])["results"][0]
    assert result["error"] == "not_your_job"
    crew_headers = {"Authorization": day.headers["Authorization"]}
    from tests.factories import auth

    crew_headers = auth(client, "crew1", "crew-device-1")
    answer = client.post(PUSH, headers=crew_headers, json={"job_events": [event, event]}).json()
    assert [r["status"] for r in answer["results"]] == ["accepted", "duplicate"]


def test_results_come_in_order_readings_then_job_events(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client)
    r1 = reading(day.assignment.id, day.meters[0])
    r2 = reading(day.assignment.id, day.meters[1])
    event = {
        "id": str(uuid.uuid4()),
        "job_id": str(uuid.uuid4()),
        "kind": "note",
        "at": READ_AT.isoformat(),
    }
    results = push(client, day, job_events=[event], readings=[r1, r2])["results"]
    assert [r["id"] for r in results] == [r1["id"], r2["id"], event["id"]]
    assert results[2]["error"] == "unknown_job"


def test_readings_taken_before_a_route_moved_to_another_reader_are_kept(
    client: TestClient, session: Session, settings: Settings
) -> None:
    """Offline all morning, the first reader syncs after the office gave the route away."""
    day = reader_day(session, settings, client)
    before = reading(day.assignment.id, day.meters[0], at=clock.now() - timedelta(hours=2))
    make_user(session, settings, "reader2", "reader", "G1")
    assign(session, "R-1", "reader2")
    after = reading(day.assignment.id, day.meters[1], at=clock.now() + timedelta(minutes=1))
    results = push(client, day, readings=[before, after])["results"]
    assert [(r["status"], r["error"]) for r in results] == [
        ("accepted", None),
        ("rejected", "not_your_assignment"),
    ]


def test_a_device_hanging_up_mid_push_is_one_log_line_not_a_traceback(
    live_server: LiveServer, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    """On GPRS a link drops mid-push every day: the outbox sends the batch again later."""
    make_user(session, live_server.settings, "reader1", "reader", "G1")
    with TestClient(create_app(live_server.settings, live_server.engine)) as office:
        token = login(office, "reader1")["access_token"]
    host, port = live_server.url.removeprefix("http://").split(":")
    caplog.set_level(logging.INFO)
    with socket.create_connection((host, int(port))) as link:
        link.sendall(
            b"POST /api/v1/sync/push HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + token.encode() + b"\r\n"
            b"Content-Length: 100000\r\n\r\n" + b'{"readings": [' + b" " * 1000
        )
    # The server notices the hang-up on its own time: wait for its line, within a generous bound.
    deadline = time.monotonic() + 30
    while not any("hung up" in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline, "the server never noticed the hang-up"
        time.sleep(0.02)
    [line] = [r for r in caplog.records if "hung up" in r.getMessage()]
    assert line.levelno == logging.INFO
    assert "POST /api/v1/sync/push" in line.getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert count(session, Reading) == 0
