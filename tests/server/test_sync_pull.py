"""Pulling work: everything since the cursor, paged, never skipping a change made mid-pull."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from server.core.config import Settings
from server.models import DataEpoch, Job, JobCrew, RereadOrder
from tests.factories import (
    CYCLE,
    WINDOW_END,
    WINDOW_START,
    ReaderDay,
    assign,
    auth,
    make_route,
    make_user,
    reader_day,
)

PULL = "/api/v1/sync/pull"


def pull(client: TestClient, headers: dict[str, str], cursor: str | None = None) -> dict[str, Any]:
    params = {"cursor": cursor} if cursor else {}
    response = client.get(PULL, headers=headers, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def pull_all(
    client: TestClient, headers: dict[str, str], cursor: str | None = None
) -> tuple[list[dict[str, Any]], str]:
    pages = []
    while True:
        page = pull(client, headers, cursor)
        pages.append(page)
        cursor = page["cursor"]
        if not page["has_more"]:
            return pages, cursor


def test_first_pull_has_the_assignment_with_every_meter_in_sequence(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client, n_meters=4)
    body = pull(client, day.headers)
    assert set(body) == {
        "cursor",
        "has_more",
        "assignments",
        "jobs",
        "reread_orders",
        "withdrawn",
        "data_epoch",
    }
    assert body["data_epoch"] == session.exec(select(DataEpoch.value)).one()
    assert body["has_more"] is False
    [assignment] = body["assignments"]
    assert assignment["id"] == day.assignment.id
    assert (assignment["route_code"], assignment["cycle"]) == ("R-1", CYCLE)
    window = (assignment["window_start"], assignment["window_end"])
    assert window == (WINDOW_START.isoformat(), WINDOW_END.isoformat())
    meters = assignment["meters"]
    assert [m["meter_no"] for m in meters] == [m.meter_no for m in day.meters]
    assert set(meters[0]) >= {
        "id",
        "meter_no",
        "account_no",
        "customer_name",
        "address",
        "lat",
        "lon",
        "digits",
        "multiplier",
        "last_reading",
        "expected_low",
        "expected_high",
        "sequence",
    }


def test_a_pull_with_the_cursor_and_no_change_is_empty(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client)
    cursor = pull(client, day.headers)["cursor"]
    body = pull(client, day.headers, cursor)
    assert (body["assignments"], body["jobs"], body["reread_orders"], body["withdrawn"]) == (
        [],
        [],
        [],
        [],
    )
    assert body["cursor"] == cursor


def test_a_changed_meter_comes_alone_in_the_next_pull(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client)
    cursor = pull(client, day.headers)["cursor"]
    meter = day.meters[2]
    meter.lat += 0.0001  # no one stamps it by hand: the flush does
    session.add(meter)
    session.commit()
    [assignment] = pull(client, day.headers, cursor)["assignments"]
    assert [m["id"] for m in assignment["meters"]] == [meter.id]


def test_large_pulls_are_paged_and_a_change_between_pages_is_not_skipped(
    client: TestClient, session: Session, settings: Settings
) -> None:
    settings.pull_page_size = 7
    day = reader_day(session, settings, client, n_meters=20)
    first = pull(client, day.headers)
    assert first["has_more"] is True
    assert len(first["assignments"][0]["meters"]) == 7
    # Between pages, a meter already sent and one not yet sent both change.
    sent, unsent = day.meters[1], day.meters[15]
    for meter in (sent, unsent):
        meter.lon += 0.0002
        session.add(meter)
    session.commit()
    pages, cursor = pull_all(client, day.headers, first["cursor"])
    seen = [m["id"] for page in [first, *pages] for a in page["assignments"] for m in a["meters"]]
    assert len(set(seen)) == 20
    # The changes made mid-pull arrive in the next pull at the latest, with their new values.
    following = pull(client, day.headers, cursor)
    latest = {m["id"]: m for a in following["assignments"] for m in a["meters"]}
    for meter in (sent, unsent):
        got = latest.get(meter.id) or next(
            m
            for page in pages
            for a in page["assignments"]
            for m in a["meters"]
            if m["id"] == meter.id
        )
        assert got["lon"] == meter.lon


def test_a_reader_sees_only_assignments_given_to_them(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client)
    make_user(session, settings, "reader2", "reader", "G1")
    make_route(session, "R-2", 3)
    assign(session, "R-2", "reader2")
    assert [a["route_code"] for a in pull(client, day.headers)["assignments"]] == ["R-1"]
    other = pull(client, auth(client, "reader2", "device-0002"))
    assert [a["route_code"] for a in other["assignments"]] == ["R-2"]


def test_a_route_moved_to_another_reader_is_withdrawn_from_the_first(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client)
    cursor = pull(client, day.headers)["cursor"]
    make_user(session, settings, "reader2", "reader", "G1")
    assign(session, "R-1", "reader2")
    body = pull(client, day.headers, cursor)
    assert body["assignments"] == []
    assert body["withdrawn"] == [
        {"type": "assignment", "id": str(day.assignment.id), "assignment_id": day.assignment.id}
    ]
    taken = pull(client, auth(client, "reader2", "device-0002"))
    assert [a["id"] for a in taken["assignments"]] == [day.assignment.id]


def test_reread_orders_and_jobs_reach_their_devices(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day: ReaderDay = reader_day(session, settings, client)
    cursor = pull(client, day.headers)["cursor"]
    supervisor = make_user(session, settings, "sup1", "supervisor", "G1")
    crew = make_user(session, settings, "crew1", "crew", "G1")
    order = RereadOrder(
        assignment_id=day.assignment.id,
        meter_id=day.meters[0].id,
        reason="unchanged register",
        ordered_by=supervisor.id,
    )
    job = Job(
        id=uuid.uuid4(),
        kind="fault",
        urgency="urgent",
        content="line down",
        lat=30.27,
        lon=120.15,
    )
    session.add(order)
    session.add(job)
    session.flush()
    session.add(JobCrew(job_id=job.id, user_id=crew.id))
    session.commit()
    body = pull(client, day.headers, cursor)
    assert [(o["id"], o["meter_id"], o["reason"]) for o in body["reread_orders"]] == [
        (str(order.id), day.meters[0].id, "unchanged register")
    ]
    assert body["jobs"] == []
    crew_body = pull(client, auth(client, "crew1", "crew-device-1"))
    assert [(j["id"], j["crew"], j["content"]) for j in crew_body["jobs"]] == [
        (str(job.id), ["crew1"], "line down")
    ]


def test_a_cursor_not_from_this_server_is_refused(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client)
    for cursor in ("garbage!", "eyJ2IjoxfQ", "eyJ2IjoxLCJsbyI6OTk5OTk5fQ"):
        response = client.get(PULL, headers=day.headers, params={"cursor": cursor})
        assert response.status_code == 422, cursor
        assert response.json()["code"] == "invalid_cursor"
