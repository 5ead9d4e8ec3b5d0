"""Small on the wire: answers gzipped for a client that accepts it; contract 2's compact push
and answer; contract 1 devices still sync beside contract 2 ones."""

from __future__ import annotations

import gzip
import json
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func
from sqlmodel import Session, select

from common import compact, wire
from common.contract import CONTRACT_VERSION_HEADER
from server.core.config import Settings
from server.models import Reading, TrackPoint
from tests.factories import READ_AT, ReaderDay, reader_day, reading, track_point

PUSH, PULL = "/api/v1/sync/push", "/api/v1/sync/pull"
V2 = {CONTRACT_VERSION_HEADER: "2"}


def count(session: Session, model: Any) -> int:
    session.commit()
    return int(session.exec(select(func.count()).select_from(model)).one())


def v2_push(client: TestClient, day: ReaderDay, push: wire.Push) -> Any:
    raw = gzip.compress(json.dumps(compact.encode_push(push)).encode())
    return client.post(PUSH, headers=day.headers | V2 | {"Content-Encoding": "gzip"}, content=raw)


def wire_readings(day: ReaderDay, n: int) -> list[wire.Reading]:
    return [
        wire.Reading.from_json(
            reading(day.assignment.id, m, value=f"{1100 + i}.5", at=READ_AT + timedelta(minutes=i))
        )
        for i, m in enumerate(day.meters[:n])
    ]


def wire_track(n: int) -> list[wire.TrackPoint]:
    return [
        wire.TrackPoint.from_json(track_point(READ_AT + timedelta(seconds=5 * i, microseconds=7)))
        for i in range(n)
    ]


def test_a_pull_is_gzipped_for_a_client_that_accepts_it_and_plain_for_one_that_does_not(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client, n_meters=40)
    zipped = client.get(PULL, headers=day.headers | {"Accept-Encoding": "gzip"})
    plain = client.get(PULL, headers=day.headers | {"Accept-Encoding": "identity"})
    assert zipped.status_code == plain.status_code == 200
    assert zipped.headers["content-encoding"] == "gzip"
    assert "content-encoding" not in plain.headers
    assert zipped.json() == plain.json()  # httpx inflated it
    assert zipped.num_bytes_downloaded * 4 < plain.num_bytes_downloaded


def test_a_short_answer_is_not_gzipped(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client)
    answer = client.post(PUSH, headers=day.headers | {"Accept-Encoding": "gzip"}, json={})
    assert answer.status_code == 200
    assert "content-encoding" not in answer.headers


def test_a_contract_2_push_is_stored_and_answered_compact(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client)
    readings, track = wire_readings(day, 4), wire_track(30)
    response = v2_push(client, day, wire.Push(readings=tuple(readings), track_points=tuple(track)))
    assert response.status_code == 200, response.text
    assert response.headers[CONTRACT_VERSION_HEADER] == "2"
    body = response.json()
    assert body["n"] == 4
    assert body["accepted"] == [[0, 3]]
    assert (body["duplicate"], body["rejected"]) == ([], [])
    assert body["track"] == {"accepted": 30, "duplicate": 0, "rejected": []}
    assert count(session, Reading) == 4
    assert count(session, TrackPoint) == 30
    stored = session.exec(select(TrackPoint).order_by(TrackPoint.t)).all()
    # The point's time is its key: exact to the microsecond.
    assert [p.t.replace(tzinfo=None) for p in stored] == [
        p.t.astimezone(READ_AT.tzinfo).replace(tzinfo=None) for p in track
    ]
    assert stored[0].lat == round(track[0].lat, 6)
    # Sent again: all duplicates, answered as one range.
    again = v2_push(client, day, wire.Push(readings=tuple(readings), track_points=tuple(track)))
    assert again.json()["duplicate"] == [[0, 3]]
    assert again.json()["track"]["duplicate"] == 30


def test_what_a_contract_1_device_sent_is_a_duplicate_sent_again_in_contract_2(
    client: TestClient, session: Session, settings: Settings
) -> None:
    """An app updated between a push and its retry: the same readings (exact to the last
    digit of their fixes and times) and the same points, not new or changed ones."""
    day = reader_day(session, settings, client)
    readings, track = wire_readings(day, 3), wire_track(10)
    v1 = client.post(
        PUSH,
        headers=day.headers | {CONTRACT_VERSION_HEADER: "1"},
        json=wire.Push(readings=tuple(readings), track_points=tuple(track)).to_json(),
    )
    assert v1.status_code == 200, v1.text
    assert [r["status"] for r in v1.json()["results"]] == ["accepted"] * 3
    assert v1.headers[CONTRACT_VERSION_HEADER] == "1"
    v2 = v2_push(client, day, wire.Push(readings=tuple(readings), track_points=tuple(track)))
    assert v2.json()["duplicate"] == [[0, 2]]
    assert v2.json()["track"] == {"accepted": 0, "duplicate": 10, "rejected": []}
    assert count(session, Reading) == 3


def test_a_device_with_no_contract_header_is_served_contract_1(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client)
    item = reading(day.assignment.id, day.meters[0])
    response = client.post(PUSH, headers=day.headers, json={"readings": [item]})
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["id"] == item["id"]


def test_in_contract_2_only_refusals_are_spelt_out_with_their_index(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client)
    good = wire_readings(day, 3)
    # The second one names a meter that is not on the route: refused, the others stored.
    stray = wire.Reading.from_json(good[1].to_json() | {"meter_id": 999_999})
    track = wire_track(3)
    far = wire.TrackPoint(t=track[2].t + timedelta(seconds=5), lat=91.0, lon=0.0)
    response = v2_push(
        client,
        day,
        wire.Push(readings=(good[0], stray, good[2]), track_points=(*track, far)),
    )
    body = response.json()
    assert body["accepted"] == [[0, 0], [2, 2]]
    [refusal] = body["rejected"]
    assert refusal["index"] == 1
    assert refusal["status"] == "rejected"
    assert refusal["error"]
    assert "id" not in refusal  # the device knows it by its index
    assert body["track"]["accepted"] == 3
    assert [r["index"] for r in body["track"]["rejected"]] == [3]
    assert count(session, Reading) == 2


def test_a_malformed_compact_body_is_a_clear_422(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client)
    headers = day.headers | V2
    for body, words in [
        ({"track": {"n": 2, "t": [1], "lat": [1, 2], "lon": [1, 2]}}, "t has 1 values; n is 2"),
        ({"track_points": []}, "unknown field(s) in push body: track_points"),
        ({"readings": {"n": 1, "id": ["x"]}}, "readings: assignment_id is missing"),
    ]:
        response = client.post(PUSH, headers=headers, json=body)
        assert response.status_code == 422, response.text
        assert words in response.json()["detail"]
    too_many = {"track": {"n": 200_000, "t": [], "lat": [], "lon": []}}
    assert client.post(PUSH, headers=headers, json=too_many).status_code == 413


def test_a_contract_this_server_does_not_speak_is_told_to_update(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client)
    for contract in (b"3", b"x", "²".encode("latin-1")):  # a digit int() does not read
        headers: dict[str, Any] = day.headers | {CONTRACT_VERSION_HEADER: contract}
        response = client.get(PULL, headers=headers)
        assert response.status_code == 426, (contract, response.text)
        assert response.json()["code"] == "contract_unsupported"
