"""The whole cycle at a glance (GET /audit/cycles, /audit/cycles/{cycle}, /audit/readers/flags):
progress per route and per reader as the readings and flags make it, the grid a supervisor may
see, sorting, filtering and paging, flags per reader over cycles, and bad parameters named."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from server.core.config import Settings
from server.models import Assignment, Cycle, Flag
from tests.factories import (
    CYCLE,
    READ_AT,
    TODAY,
    WINDOW_END,
    ReaderDay,
    assign,
    auth,
    make_route,
    make_user,
    meters_of,
    reader_day,
    reading,
)

AUDIT = "/api/v1/audit"
PREVIOUS = "PREV-CYCLE"


def push(client: TestClient, headers: dict[str, str], items: list[dict[str, Any]]) -> None:
    response = client.post("/api/v1/sync/push", headers=headers, json={"readings": items})
    assert response.status_code == 200, response.text
    assert {r["status"] for r in response.json()["results"]} == {"accepted"}, response.text


@dataclass
class Utility:
    """G1: R-1 (reader1, 5 meters: 3 read, one of them read again on order, 1 skipped, 1 not
    read), R-2 (reader2, 4 meters, nothing read), R-4 (reader1, 2 meters, both read). G2: R-3
    (reader3, 3 meters, window ended yesterday, nothing read). R-1 was also read by reader1 in
    an earlier cycle. Flags on R-1 by hand: an open fail, a dismissed fail, an upheld warn."""

    r1: ReaderDay
    sup: dict[str, str]
    admin: dict[str, str]
    previous_assignment: int


def build(session: Session, settings: Settings, client: TestClient) -> Utility:
    r1 = reader_day(session, settings, client, n_meters=5)
    make_user(session, settings, "sup1", "supervisor", "G1")
    make_user(session, settings, "sup2", "supervisor", "G2")
    make_user(session, settings, "admin1", "admin")
    sup = auth(client, "sup1", "sup-desk-01")
    items = [
        reading(r1.assignment.id, m, value=str(1100 + i), at=READ_AT + timedelta(minutes=2 * i))
        for i, m in enumerate(r1.meters[:3])
    ]
    items.append(
        reading(
            r1.assignment.id,
            r1.meters[3],
            value=None,
            skip_code="dog",
            at=READ_AT + timedelta(minutes=6),
        )
    )
    push(client, r1.headers, items)
    order = client.post(
        f"{AUDIT}/assignments/{r1.assignment.id}/rereads",
        headers=sup,
        json={"meter_id": r1.meters[0].id, "reason": "photo unclear"},
    )
    assert order.status_code == 201, order.text
    again = reading(
        r1.assignment.id,
        r1.meters[0],
        value="1101",
        at=READ_AT + timedelta(minutes=30),
        reread_of=order.json()["id"],
    )
    push(client, r1.headers, [again])

    make_user(session, settings, "reader2", "reader", "G1")
    make_route(session, "R-2", 4)
    assign(session, "R-2", "reader2")

    r4 = make_route(session, "R-4", 2)
    r4_assignment = assign(session, "R-4", "reader1")
    push(
        client,
        r1.headers,
        [
            reading(r4_assignment.id, m, value="1200", at=READ_AT + timedelta(minutes=40 + i))
            for i, m in enumerate(meters_of(session, r4))
        ],
    )

    make_user(session, settings, "reader3", "reader", "G2")
    make_route(session, "R-3", 3, grid_code="G2")
    assign(session, "R-3", "reader3", start=TODAY - timedelta(days=10), end=TODAY - timedelta(1))

    previous = assign(
        session,
        "R-1",
        "reader1",
        cycle=PREVIOUS,
        start=TODAY - timedelta(days=40),
        end=TODAY - timedelta(days=35),
    )
    for assignment_id, severity, review, index in (
        (r1.assignment.id, "fail", None, 1),
        (r1.assignment.id, "fail", "accepted", 2),
        (r1.assignment.id, "warn", "rejected", 3),
        (previous.id, "fail", None, 0),
        (previous.id, "fail", "accepted", 1),
    ):
        session.add(
            Flag(
                assignment_id=assignment_id,
                meter_id=r1.meters[index].id,
                code="unchanged",
                severity=severity,
                message="by hand",
                review=review,
            )
        )
    session.commit()
    assert previous.id is not None
    return Utility(r1, sup, auth(client, "admin1", "admin-desk-01"), previous.id)


def open_flags(session: Session, assignment_id: int) -> Counter[str]:
    """What the database holds: a validation run on push may have added flags of its own."""
    flags = session.exec(select(Flag).where(Flag.assignment_id == assignment_id)).all()
    session.commit()
    return Counter(f.severity for f in flags if f.review is None)


def overview(client: TestClient, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    response = client.get(f"{AUDIT}/cycles/{CYCLE}", headers=headers, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_supervisor_sees_the_progress_of_each_route_and_reader_of_their_grid(
    client: TestClient, session: Session, settings: Settings
) -> None:
    u = build(session, settings, client)
    cycles = client.get(f"{AUDIT}/cycles", headers=u.sup)
    assert cycles.status_code == 200, cycles.text
    assert cycles.json() == [
        {
            "cycle": CYCLE,
            "window_start": (TODAY - timedelta(days=5)).isoformat(),
            "window_end": WINDOW_END.isoformat(),
            "routes": 3,
            "open": 3,
        },
        {
            "cycle": PREVIOUS,
            "window_start": (TODAY - timedelta(days=40)).isoformat(),
            "window_end": (TODAY - timedelta(days=35)).isoformat(),
            "routes": 1,
            "open": 1,
        },
    ]

    body = overview(client, u.sup)
    assert body["today"] == TODAY.isoformat()
    assert body["grids"] == ["G1"]
    routes = {r["route_code"]: r for r in body["routes"]}
    assert list(routes) == ["R-1", "R-2", "R-4"]  # R-3 is G2's
    flags = open_flags(session, u.r1.assignment.id)
    assert flags["fail"] >= 1  # the open one made by hand; dismissed and upheld are not open
    r1 = routes["R-1"]
    # The re-read supersedes meter 0's first reading: still 3 read, not 4.
    assert {k: r1[k] for k in ("meters", "read", "skipped", "unread", "fail", "warn")} == {
        "meters": 5,
        "read": 3,
        "skipped": 1,
        "unread": 1,
        "fail": flags["fail"],
        "warn": flags["warn"],
    }
    assert (r1["status"], r1["reader"], r1["grid"], r1["window_closed"]) == (
        "in_progress",
        "reader1",
        "G1",
        False,
    )
    assert r1["days_left"] == (WINDOW_END - TODAY).days + 1
    assert r1["assignment_id"] == u.r1.assignment.id
    assert {k: routes["R-2"][k] for k in ("meters", "read", "unread", "status")} == {
        "meters": 4,
        "read": 0,
        "unread": 4,
        "status": "not_started",
    }
    assert {k: routes["R-4"][k] for k in ("meters", "read", "unread", "status")} == {
        "meters": 2,
        "read": 2,
        "unread": 0,
        "status": "complete",
    }
    assert body["total"] == 3
    assert body["totals"] == {
        "meters": 11,
        "read": 5,
        "skipped": 1,
        "unread": 5,
        "fail": sum(r["fail"] for r in routes.values()),
        "warn": sum(r["warn"] for r in routes.values()),
    }
    assert body["by_status"] == {"not_started": 1, "in_progress": 1, "complete": 1, "missed": 0}
    readers = {r["reader"]: r for r in body["readers"]}
    assert {k: readers["reader1"][k] for k in ("routes", "meters", "read", "unread")} == {
        "routes": 2,
        "meters": 7,
        "read": 5,
        "unread": 1,
    }
    assert readers["reader1"]["fail"] == routes["R-1"]["fail"] + routes["R-4"]["fail"]
    assert {k: readers["reader2"][k] for k in ("routes", "meters", "read", "unread")} == {
        "routes": 1,
        "meters": 4,
        "read": 0,
        "unread": 4,
    }
    assert "reader3" not in readers

    # Another grid's supervisor sees only theirs: R-3, missed since yesterday.
    other = overview(client, auth(client, "sup2", "sup-desk-02"))
    [r3] = other["routes"]
    assert (r3["route_code"], r3["status"], r3["days_left"], r3["window_closed"]) == (
        "R-3",
        "missed",
        0,
        True,
    )
    assert other["grids"] == ["G2"]


def test_a_supervisor_may_not_ask_for_another_grid_and_an_admin_sees_the_utility(
    client: TestClient, session: Session, settings: Settings
) -> None:
    u = build(session, settings, client)
    refused = client.get(f"{AUDIT}/cycles/{CYCLE}", headers=u.sup, params={"grid": "G2"})
    assert refused.status_code == 403, refused.text
    assert refused.json()["code"] == "not_your_grid"
    unknown = client.get(f"{AUDIT}/cycles/{CYCLE}", headers=u.sup, params={"grid": "G9"})
    assert (unknown.status_code, unknown.json()["code"]) == (404, "grid_not_found")
    no_cycle = client.get(f"{AUDIT}/cycles/1999-01", headers=u.sup)
    assert (no_cycle.status_code, no_cycle.json()["code"]) == (404, "cycle_not_found")
    reader = client.get(f"{AUDIT}/cycles/{CYCLE}", headers=u.r1.headers)
    assert reader.status_code == 403

    everything = overview(client, u.admin)
    assert [r["route_code"] for r in everything["routes"]] == ["R-1", "R-2", "R-3", "R-4"]
    assert everything["grids"] == ["G1", "G2"]
    assert everything["by_status"]["missed"] == 1
    g2 = overview(client, u.admin, grid="G2")
    assert [r["route_code"] for r in g2["routes"]] == ["R-3"]
    assert [r["reader"] for r in g2["readers"]] == ["reader3"]


def test_routes_sort_filter_and_page_in_the_database(
    client: TestClient, session: Session, settings: Settings
) -> None:
    u = build(session, settings, client)
    by_unread = overview(client, u.admin, sort="unread", order="desc")["routes"]
    assert [r["unread"] for r in by_unread] == [4, 3, 1, 0]
    assert [r["route_code"] for r in by_unread] == ["R-2", "R-3", "R-1", "R-4"]
    # The closed window first (no day left), then the soonest to close.
    by_days = overview(client, u.admin, sort="days_left")["routes"]
    assert by_days[0]["route_code"] == "R-3"
    assert [r["days_left"] for r in by_days] == sorted(r["days_left"] for r in by_days)
    by_status = overview(client, u.admin, sort="status")["routes"]
    assert [r["status"] for r in by_status] == ["not_started", "in_progress", "complete", "missed"]

    only_missed = overview(client, u.admin, status="missed")
    assert [r["route_code"] for r in only_missed["routes"]] == ["R-3"]
    assert only_missed["total"] == 1
    assert only_missed["totals"]["meters"] == 3
    # The status counts are before the status filter: the filter's menu can show them all.
    assert only_missed["by_status"]["not_started"] == 1

    # Reader text matches user names and full names, in any case.
    r2 = overview(client, u.admin, reader="READER2")
    assert [r["route_code"] for r in r2["routes"]] == ["R-2"]
    assert [r["reader"] for r in r2["readers"]] == ["reader2"]
    assert overview(client, u.admin, reader="%")["total"] == 0  # a wildcard is a character

    first = overview(client, u.admin, limit=3)
    rest = overview(client, u.admin, limit=3, offset=3)
    assert [r["route_code"] for r in first["routes"] + rest["routes"]] == [
        "R-1",
        "R-2",
        "R-3",
        "R-4",
    ]
    assert first["total"] == rest["total"] == 4
    beyond = overview(client, u.admin, limit=3, offset=30)
    assert beyond["routes"] == []
    assert (beyond["total"], beyond["totals"]) == (4, first["totals"])

    readers = overview(client, u.admin, readers_sort="unread", readers_order="desc")["readers"]
    assert [r["unread"] for r in readers] == [4, 3, 1]
    by_routes = overview(client, u.admin, readers_sort="routes", readers_order="desc")
    assert by_routes["readers"][0]["reader"] == "reader1"


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"sort": "colour"}, "sort"),
        ({"order": "up"}, "order"),
        ({"status": "late"}, "status"),
        ({"limit": 0}, "limit"),
        ({"limit": 5000}, "limit"),
        ({"offset": -1}, "offset"),
        ({"readers_sort": "days_left"}, "readers_sort"),
        ({"grid": ""}, "grid"),
        ({"reader": "x" * 65}, "reader"),
    ],
)
def test_bad_parameters_are_named(
    client: TestClient,
    session: Session,
    settings: Settings,
    params: dict[str, Any],
    named: str,
) -> None:
    make_user(session, settings, "admin1", "admin")
    admin = auth(client, "admin1", "admin-desk-01")
    response = client.get(f"{AUDIT}/cycles/{CYCLE}", headers=admin, params=params)
    assert response.status_code == 422, response.text
    assert named in response.text
    flags = client.get(f"{AUDIT}/readers/flags", headers=admin, params={"cycles": 0})
    assert flags.status_code == 422
    assert "cycles" in flags.text


def test_flags_per_reader_over_the_last_cycles_leave_out_dismissed_ones(
    client: TestClient, session: Session, settings: Settings
) -> None:
    u = build(session, settings, client)
    ids = {
        c.code: c.id
        for c in session.exec(select(Cycle).where(col(Cycle.code).in_([CYCLE, PREVIOUS])))
    }

    def expected(reader_id: int, cycle_ids: list[int | None]) -> Counter[str]:
        """Counted here from the rows: flags of the reader's assignments, not dismissed."""
        assignments = session.exec(
            select(Assignment.id).where(
                Assignment.reader_id == reader_id, col(Assignment.cycle_id).in_(cycle_ids)
            )
        ).all()
        flags = session.exec(select(Flag).where(col(Flag.assignment_id).in_(assignments))).all()
        session.commit()
        counted = Counter(f.severity for f in flags if f.review != "accepted")
        counted["upheld"] = sum(f.review == "rejected" for f in flags)
        return counted

    reader1 = u.r1.assignment.reader_id
    response = client.get(f"{AUDIT}/readers/flags", headers=u.sup, params={"cycles": 2})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["cycles"] == [PREVIOUS, CYCLE]  # oldest first
    readers = {r["reader"]: r for r in body["readers"]}
    assert set(readers) == {"reader1", "reader2"}
    both = expected(reader1, list(ids.values()))
    one = readers["reader1"]
    assert (one["fail"], one["warn"], one["upheld"]) == (both["fail"], both["warn"], 1)
    assert one["routes"] == 3  # R-1 twice, R-4
    assert one["readings"] == 7  # 4 + the re-read on R-1, 2 on R-4
    assert one["fail_per_100"] == round(100 * one["fail"] / 7, 1)
    per_cycle = {c["cycle"]: c for c in one["cycles"]}
    assert per_cycle[PREVIOUS]["fail"] == expected(reader1, [ids[PREVIOUS]])["fail"] == 1
    assert per_cycle[CYCLE]["fail"] == expected(reader1, [ids[CYCLE]])["fail"]
    assert readers["reader2"]["fail_per_100"] is None  # no readings: no rate
    assert body["readers"][0]["reader"] == "reader1"  # who fails most comes first

    last = client.get(f"{AUDIT}/readers/flags", headers=u.sup, params={"cycles": 1}).json()
    assert last["cycles"] == [CYCLE]
    assert {c["cycle"] for r in last["readers"] for c in r["cycles"]} == {CYCLE}
