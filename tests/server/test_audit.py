"""The supervisor's audit API: my grid only, progress, readings and flags, reviews, re-reads,
exports."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable
from datetime import datetime, time, timedelta
from typing import Any

import gpxpy
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from common.clock import Clock
from server.audit.timeline import BREAK_S
from server.core.config import Settings
from server.models import Account, AdminLog, AssignmentVerdict, Flag
from tests.factories import (
    LOCAL,
    READ_AT,
    WINDOW_END,
    ReaderDay,
    assign,
    auth,
    make_route,
    make_user,
    reader_day,
    reading,
    track_point,
)

AUDIT = "/api/v1/audit"


def setup_day(
    session: Session, settings: Settings, client: TestClient
) -> tuple[ReaderDay, dict[str, str]]:
    day = reader_day(session, settings, client, n_meters=5)
    make_user(session, settings, "sup1", "supervisor", "G1")
    return day, auth(client, "sup1", "sup-desk-01")


def push(client: TestClient, day: ReaderDay, **body: Any) -> dict[str, Any]:
    response = client.post("/api/v1/sync/push", headers=day.headers, json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def walk(
    day: ReaderDay,
    session: Session,
    client: TestClient,
    adjust: Callable[[list[dict[str, Any]]], None] = lambda items: None,
) -> list[dict[str, Any]]:
    """Read meters 0-2 and skip meter 3 with a track along them; meter 4 stays unread.
    `adjust` may change the items before they are pushed."""
    items = [
        reading(day.assignment.id, m, value=str(1100 + i), at=READ_AT + timedelta(minutes=2 * i))
        for i, m in enumerate(day.meters[:3])
    ]
    items.append(
        reading(
            day.assignment.id,
            day.meters[3],
            value=None,
            skip_code="dog",
            at=READ_AT + timedelta(minutes=6),
        )
    )
    points = [
        track_point(
            READ_AT + timedelta(seconds=30 * i),
            lat=day.meters[0].lat + i * 0.00009,
            lon=day.meters[0].lon,
        )
        for i in range(14)
    ]
    adjust(items)
    push(client, day, readings=items, track_points=points)
    return items


def add_flag(
    session: Session,
    day: ReaderDay,
    reading_id: str | None,
    code: str = "unchanged",
    severity: str = "fail",
    meter_index: int = 0,
) -> Flag:
    flag = Flag(
        assignment_id=day.assignment.id,
        reading_id=uuid.UUID(reading_id) if reading_id else None,
        meter_id=day.meters[meter_index].id,
        code=code,
        severity=severity,
        message=f"{code} on meter {day.meters[meter_index].meter_no}",
    )
    session.add(flag)
    session.commit()
    return flag


def test_a_supervisor_lists_the_assignments_of_their_grid_with_progress(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day, sup = setup_day(session, settings, client)
    items = walk(day, session, client)
    add_flag(session, day, items[1]["id"], meter_index=1)
    [row] = client.get(f"{AUDIT}/assignments", headers=sup).json()
    assert row["id"] == day.assignment.id
    assert (row["meters"], row["read"], row["skipped"], row["missing"]) == (5, 3, 1, 1)
    assert row["flagged"] == {"info": 0, "warn": 0, "fail": 1}
    assert row["first_read_at"] == READ_AT.isoformat()
    assert row["last_read_at"] == (READ_AT + timedelta(minutes=6)).isoformat()
    # 13 steps of 0.00009 degrees (10 m) of latitude: 130 m; walked distance counts a step only
    # beyond the stationary radius (35 m) from the last point counted, so 3 steps of 40 m.
    assert 115 <= row["distance_walked_m"] <= 125


def test_the_list_is_paged_newest_window_first_and_says_how_many_there_are(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day, sup = setup_day(session, settings, client)
    make_route(session, "R-2", 3)
    make_user(session, settings, "reader2", "reader", grid_code="G1")
    later = assign(session, "R-2", "reader2", start=day.assignment.window_start + timedelta(days=1))
    whole = client.get(f"{AUDIT}/assignments", headers=sup)
    assert whole.headers["X-Total-Count"] == "2"
    assert [a["id"] for a in whole.json()] == [later.id, day.assignment.id]
    second = client.get(f"{AUDIT}/assignments", headers=sup, params={"limit": 1, "offset": 1})
    assert [a["id"] for a in second.json()] == [day.assignment.id]
    past = client.get(f"{AUDIT}/assignments", headers=sup, params={"offset": 5})
    assert (past.json(), past.headers["X-Total-Count"]) == ([], "2")
    bad = client.get(f"{AUDIT}/assignments", headers=sup, params={"limit": 0})
    assert bad.status_code == 422


def test_each_listed_assignment_says_what_its_own_summary_says_and_follows_new_data(
    client: TestClient, session: Session, settings: Settings
) -> None:
    """The list's figures are aggregated by the database and its verdict read as the validation
    stored it: both must agree with the assignment's own summary (counted row by row), before
    and after a push."""
    day, sup = setup_day(session, settings, client)

    def both() -> tuple[dict[str, Any], dict[str, Any]]:
        [listed] = client.get(f"{AUDIT}/assignments", headers=sup).json()
        detail = client.get(f"{AUDIT}/assignments/{day.assignment.id}", headers=sup).json()
        return listed, detail["assignment"]

    listed, alone = both()
    assert listed == alone
    assert listed["verdict"]["code"] != "walked"
    items = walk(day, session, client)
    add_flag(session, day, items[1]["id"], severity="warn", meter_index=1)
    add_flag(session, day, None, severity="info", meter_index=2)
    listed, alone = both()
    assert listed == alone
    assert listed["verdict"]["code"] == "walked"  # judged again when the push was validated
    assert (listed["meters_flagged"], listed["flagged"]) == (1, {"info": 1, "warn": 1, "fail": 0})
    # A late track point far away, inside the span the verdict reads, is seen too.
    far = track_point(
        READ_AT + timedelta(minutes=3), lat=day.meters[0].lat + 0.05, lon=day.meters[0].lon
    )
    push(client, day, track_points=[far])
    listed, alone = both()
    assert listed == alone


def test_a_supervisor_of_another_grid_sees_nothing_of_it(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day, _ = setup_day(session, settings, client)
    make_user(session, settings, "sup2", "supervisor", "G2")
    other = auth(client, "sup2", "sup-desk-02")
    assert client.get(f"{AUDIT}/assignments", headers=other).json() == []
    for path in ("", "/flags", "/readings", "/timeline", "/track.gpx", "/readings.csv"):
        response = client.get(f"{AUDIT}/assignments/{day.assignment.id}{path}", headers=other)
        assert response.status_code == 403, path
        assert response.json()["code"] == "not_your_grid"
    reader = client.get(f"{AUDIT}/assignments", headers=day.headers)
    assert reader.status_code == 403


def test_readings_come_in_the_order_taken_in_the_agreed_shape(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day, sup = setup_day(session, settings, client)
    items = walk(day, session, client)
    flag = add_flag(session, day, items[0]["id"])
    readings = client.get(f"{AUDIT}/assignments/{day.assignment.id}/readings", headers=sup).json()
    assert [r["id"] for r in readings] == [i["id"] for i in items]
    assert set(readings[0]) >= {
        "id",
        "meter_id",
        "value",
        "skip_code",
        "read_at",
        "received_at",
        "superseded_by",
        "flags",
    }
    assert readings[0]["value"] == "1100"
    # The factories' fixes are measured a few metres off the meter, as a real one is.
    assert readings[0]["fix"]["distance_to_meter_m"] == pytest.approx(4.0, abs=0.05)
    assert readings[0]["fix"]["exactly_on_meter"] is False
    assert readings[3]["skip_code"] == "dog"
    assert readings[3]["value"] is None
    assert [f["id"] for f in readings[0]["flags"]] == [flag.id]
    flags = client.get(f"{AUDIT}/assignments/{day.assignment.id}/flags", headers=sup).json()
    assert set(flags[0]) >= {
        "id",
        "code",
        "severity",
        "message",
        "reading_id",
        "meter_id",
        "review",
    }
    assert (flags[0]["code"], flags[0]["reading_id"], flags[0]["review"]) == (
        "unchanged",
        items[0]["id"],
        None,
    )


def test_the_detail_has_meters_with_their_state_and_the_track(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day, sup = setup_day(session, settings, client)
    items = walk(day, session, client)
    add_flag(session, day, items[2]["id"], meter_index=2)
    detail = client.get(f"{AUDIT}/assignments/{day.assignment.id}", headers=sup).json()
    assert [m["state"] for m in detail["meters"]] == [
        "read",
        "read",
        "flagged",
        "skipped",
        "not_read_yet",
    ]
    assert len(detail["track"]) == 14


def test_reviewing_a_flag_records_who_and_when_and_rejecting_disputes_the_reading(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day, sup = setup_day(session, settings, client)
    items = walk(day, session, client)
    flag = add_flag(session, day, items[0]["id"])
    no_note = client.post(
        f"{AUDIT}/flags/{flag.id}/review", headers=sup, json={"decision": "rejected", "note": ""}
    )
    assert no_note.status_code == 422
    bad = client.post(
        f"{AUDIT}/flags/{flag.id}/review", headers=sup, json={"decision": "maybe", "note": "hm"}
    )
    assert bad.status_code == 422
    assert "decision" in bad.json()["detail"]
    response = client.post(
        f"{AUDIT}/flags/{flag.id}/review",
        headers=sup,
        json={"decision": "rejected", "note": "register photo disagrees"},
    )
    assert response.status_code == 200
    assert response.json()["review"] == "rejected"
    readings = client.get(f"{AUDIT}/assignments/{day.assignment.id}/readings", headers=sup).json()
    assert readings[0]["disputed"] is True
    assert readings[0]["state"] == "disputed"
    assert readings[0]["flags"][0]["reviewed_by"] == "sup1"
    assert response.json()["reviewed_by"] == "sup1"
    assert readings[0]["value"] is not None  # the reading stays
    session.commit()
    entry = session.exec(select(AdminLog).where(AdminLog.action == "flag.rejected")).one()
    assert entry.detail is not None
    assert entry.detail["note"] == "register photo disagrees"
    assert entry.actor_id is not None
    assert (
        client.post(
            f"{AUDIT}/flags/99999/review", headers=sup, json={"decision": "accepted", "note": "x"}
        ).status_code
        == 404
    )


def test_a_reread_order_reaches_the_reader_and_the_new_reading_supersedes_the_old(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day, sup = setup_day(session, settings, client)
    cursor = client.get("/api/v1/sync/pull", headers=day.headers).json()["cursor"]
    items = walk(day, session, client)
    meter = day.meters[1]
    order = client.post(
        f"{AUDIT}/assignments/{day.assignment.id}/rereads",
        headers=sup,
        json={"meter_id": meter.id, "reason": "register unchanged since October"},
    )
    assert order.status_code == 201, order.text
    assert order.json()["reading_id"] == items[1]["id"]
    again = client.post(
        f"{AUDIT}/assignments/{day.assignment.id}/rereads",
        headers=sup,
        json={"meter_id": meter.id, "reason": "twice"},
    )
    assert again.status_code == 409
    off_route = client.post(
        f"{AUDIT}/assignments/{day.assignment.id}/rereads",
        headers=sup,
        json={"meter_id": 987654, "reason": "x"},
    )
    assert off_route.status_code == 422

    pulled = client.get("/api/v1/sync/pull", headers=day.headers, params={"cursor": cursor}).json()
    assert [o["id"] for o in pulled["reread_orders"]] == [order.json()["id"]]
    new = reading(
        day.assignment.id,
        meter,
        value="1177",
        at=READ_AT + timedelta(hours=2),
        reread_of=order.json()["id"],
    )
    assert push(client, day, readings=[new])["results"][0]["status"] == "accepted"

    readings = client.get(f"{AUDIT}/assignments/{day.assignment.id}/readings", headers=sup).json()
    by_id = {r["id"]: r for r in readings}
    assert by_id[items[1]["id"]]["superseded_by"] == new["id"]
    assert by_id[new["id"]]["superseded_by"] is None
    assert len(readings) == 5  # both kept
    after = client.get(
        "/api/v1/sync/pull", headers=day.headers, params={"cursor": pulled["cursor"]}
    ).json()
    assert after["withdrawn"] == [
        {"type": "reread_order", "id": order.json()["id"], "assignment_id": day.assignment.id}
    ]


def test_exports_gpx_geojson_and_csv(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day, sup = setup_day(session, settings, client)
    items = walk(day, session, client)
    add_flag(session, day, items[0]["id"])
    base = f"{AUDIT}/assignments/{day.assignment.id}"
    gpx_response = client.get(f"{base}/track.gpx", headers=sup)
    assert gpx_response.headers["content-type"].startswith("application/gpx+xml")
    gpx = gpxpy.parse(gpx_response.text)
    assert len(gpx.tracks[0].segments[0].points) == 14
    assert [w.name for w in gpx.waypoints] == [m.meter_no for m in day.meters[:4]]

    geo = client.get(f"{base}/track.geojson", headers=sup).json()
    kinds = [f["properties"]["kind"] for f in geo["features"]]
    assert kinds == ["track"] + ["meter"] * 5
    assert len(geo["features"][0]["geometry"]["coordinates"]) == 14

    exported = client.get(f"{base}/readings.csv", headers=sup).content.decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert [r["reading_id"] for r in rows] == [i["id"] for i in items]
    assert rows[0]["flags"] == "fail:unchanged"
    assert rows[3]["skip_code"] == "dog"


def review(client: TestClient, sup: dict[str, str], flag_id: int | None, decision: str) -> None:
    response = client.post(
        f"{AUDIT}/flags/{flag_id}/review", headers=sup, json={"decision": decision, "note": "why"}
    )
    assert response.status_code == 200, response.text


def test_a_reading_whose_flag_is_upheld_is_disputed_on_the_map_and_a_dismissed_one_stands(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day, sup = setup_day(session, settings, client)
    items = walk(day, session, client)
    upheld = add_flag(session, day, items[0]["id"], meter_index=0)
    dismissed = add_flag(session, day, items[1]["id"], meter_index=1)
    review(client, sup, upheld.id, "rejected")
    review(client, sup, dismissed.id, "accepted")
    detail = client.get(f"{AUDIT}/assignments/{day.assignment.id}", headers=sup).json()
    assert [m["state"] for m in detail["meters"][:4]] == ["disputed", "read", "read", "skipped"]
    assert [r["state"] for r in detail["readings"]] == ["disputed", "read", "read", "skipped"]
    # The GeoJSON export says the same.
    geo = client.get(f"{AUDIT}/assignments/{day.assignment.id}/track.geojson", headers=sup).json()
    states = [f["properties"]["state"] for f in geo["features"] if "state" in f["properties"]]
    assert states[0] == "disputed"


def test_an_unread_meter_is_not_read_yet_until_the_window_closes_then_missed(
    client: TestClient, session: Session, settings: Settings, clock: Clock
) -> None:
    day, _ = setup_day(session, settings, client)
    walk(day, session, client)
    url = f"{AUDIT}/assignments/{day.assignment.id}"

    def last_meter() -> tuple[str, bool]:
        # Days pass: a fresh token each time.
        detail = client.get(url, headers=auth(client, "sup1", "sup-desk-01")).json()
        return detail["meters"][4]["state"], detail["assignment"]["window_closed"]

    assert last_meter() == ("not_read_yet", False)
    # The window's last day is a local date: until its local midnight it is still open.
    end_of_window = datetime.combine(WINDOW_END + timedelta(days=1), time.min, tzinfo=LOCAL)
    clock.advance(end_of_window - timedelta(seconds=1) - clock.now())
    assert last_meter() == ("not_read_yet", False)
    clock.advance(timedelta(seconds=1))
    assert last_meter() == ("missed", True)


def test_a_closed_assignment_calls_its_unread_meters_missed(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day, sup = setup_day(session, settings, client)
    walk(day, session, client)
    closed = client.post(f"{AUDIT}/assignments/{day.assignment.id}/close", headers=sup)
    assert closed.status_code == 200, closed.text
    assert closed.json()["window_closed"] is True
    detail = client.get(f"{AUDIT}/assignments/{day.assignment.id}", headers=sup).json()
    missed = [f for f in detail["flags"] if f["code"] == "missed"]
    assert [f["meter_id"] for f in missed] == [day.meters[4].id]
    review(client, sup, missed[0]["id"], "accepted")  # explained: now plainly missed
    detail = client.get(f"{AUDIT}/assignments/{day.assignment.id}", headers=sup).json()
    assert detail["meters"][4]["state"] == "missed"


def test_a_fix_exactly_on_the_meter_is_marked_as_such_and_a_measured_one_is_not(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day, sup = setup_day(session, settings, client)
    exact = reading(day.assignment.id, day.meters[0], value="1100")
    exact["fix"]["lat"], exact["fix"]["lon"] = day.meters[0].lat, day.meters[0].lon  # typed
    measured = reading(
        day.assignment.id, day.meters[1], value="1101", at=READ_AT + timedelta(minutes=2)
    )
    measured["fix"]["lat"] = day.meters[1].lat + 0.3 / 111_200  # 30 cm north
    measured["fix"]["lon"] = day.meters[1].lon
    push(client, day, readings=[exact, measured])
    readings = client.get(f"{AUDIT}/assignments/{day.assignment.id}/readings", headers=sup).json()
    assert [(r["fix"]["distance_to_meter_m"], r["fix"]["exactly_on_meter"]) for r in readings] == [
        (0.0, True),
        (0.3, False),
    ]


def test_each_assignment_has_a_one_line_verdict_in_the_callers_language(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day, sup = setup_day(session, settings, client)
    walk(day, session, client)  # a track up the street; each fix a few metres off its meter
    [row] = client.get(f"{AUDIT}/assignments", headers=sup).json()
    verdict = row["verdict"]
    assert verdict["code"] == "walked"
    params = verdict["params"]
    assert (params["meters"], params["done"], params["passed"], params["along"]) == (5, 4, 5, True)
    assert (params["at_meter"], params["exact"]) == (4, 0)
    assert params["walked_m"] == pytest.approx(row["distance_walked_m"], abs=1)
    assert verdict["message"] == (
        f"walked {params['walked_m']:.0f} m along the route, past 5 of 5 meters; "
        "4 of 4 readings placed at their meter by their own fix"
    )
    chinese = {**sup, "Accept-Language": "zh-CN"}
    detail = client.get(f"{AUDIT}/assignments/{day.assignment.id}", headers=chinese).json()
    assert detail["assignment"]["verdict"]["message"] == (
        f"沿抄表段行走{params['walked_m']:.0f}米，经过 5 块电表中的 5 块；"
        "4 条示数中 4 条的定位在电表处"
    )


def test_the_verdict_places_a_reading_at_its_meter_as_far_from_meter_does(
    client: TestClient, session: Session, settings: Settings
) -> None:
    """A meter mapped roughly (position_uncertainty_m 60): a fix 50 m off it raises no
    far_from_meter, and the verdict counts that reading at its meter too (it judges with the
    meters as the flags' rules see them)."""
    day, sup = setup_day(session, settings, client)
    rough = day.meters[1]
    rough.position_uncertainty_m = 60.0
    session.add(rough)
    session.commit()

    def fifty_metres_off(items: list[dict[str, Any]]) -> None:
        items[1]["fix"]["lat"], items[1]["fix"]["lon"] = rough.lat + 50 / 111_200, rough.lon
        items[1]["fix"]["accuracy_m"] = 5.0

    walk(day, session, client, fifty_metres_off)
    flags = client.get(f"{AUDIT}/assignments/{day.assignment.id}/flags", headers=sup).json()
    assert "far_from_meter" not in {f["code"] for f in flags}
    [row] = client.get(f"{AUDIT}/assignments", headers=sup).json()
    assert (row["verdict"]["params"]["done"], row["verdict"]["params"]["at_meter"]) == (4, 4)


def test_the_list_and_summary_say_the_verdict_the_validation_stored_and_compute_none(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day, sup = setup_day(session, settings, client)
    make_route(session, "R-2", 3)
    make_user(session, settings, "reader2", "reader", grid_code="G1")
    untouched = assign(session, "R-2", "reader2")
    walk(day, session, client)  # validated in the request (tests' settings)
    stored = session.get(AssignmentVerdict, day.assignment.id)
    assert stored is not None
    assert (stored.code, stored.params["done"]) == ("walked", 4)
    # Rewritten behind the rules' back: what the audit says is what is stored, not recomputed.
    stored.params = {**stored.params, "walked_m": 4321.0}
    stored.walked_m = 4321
    session.add(stored)
    session.commit()
    chinese = {**sup, "Accept-Language": "zh-CN"}
    listed = {a["id"]: a for a in client.get(f"{AUDIT}/assignments", headers=chinese).json()}
    alone = client.get(f"{AUDIT}/assignments/{day.assignment.id}", headers=chinese).json()
    for said in (listed[day.assignment.id], alone["assignment"]):
        assert said["distance_walked_m"] == 4321
        assert said["verdict"]["message"].startswith("沿抄表段行走4.3公里")
    # No data has reached the other assignment, so nothing validated it: its day is nothing.
    other = listed[untouched.id]
    assert session.get(AssignmentVerdict, untouched.id) is None
    assert (other["verdict"]["message"], other["distance_walked_m"]) == ("尚无示数，也无轨迹", 0)
    assert other["validation_pending"] is False


def test_a_reader_who_stayed_at_one_spot_is_said_to_have_stayed_there(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day, sup = setup_day(session, settings, client)
    last = day.meters[-1]
    home = (last.lat + 1500 / 111_200, last.lon)  # 1.5 km north of the route's end
    points = [
        track_point(
            READ_AT + timedelta(seconds=30 * i), lat=home[0] + (i % 3) * 0.00005, lon=home[1]
        )
        for i in range(361)  # three hours of jitter within 11 m
    ]
    push(client, day, track_points=points)
    [row] = client.get(f"{AUDIT}/assignments", headers=sup).json()
    assert row["verdict"]["code"] == "stayed"
    assert row["verdict"]["message"].startswith(
        "the track stayed within 6 m of one spot, 1.5 km from the route, for 3.0 h"
    )


def test_the_timeline_gives_the_distance_to_the_meter_being_read_and_the_speed(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day, sup = setup_day(session, settings, client)
    items = walk(day, session, client)  # 10 m north every 30 s; meters 40 m apart
    response = client.get(f"{AUDIT}/assignments/{day.assignment.id}/timeline", headers=sup)
    assert response.status_code == 200, response.text
    body = response.json()
    points = body["points"]
    assert len(points) == 14
    assert points[0]["t"] == READ_AT.isoformat()
    # Walking up to the next meter read: 30 m, 20 m, 10 m, at it when it is read.
    assert [p["meter_id"] for p in points[:5]] == [day.meters[i].id for i in (0, 1, 1, 1, 1)]
    assert [p["distance_m"] for p in points[:5]] == pytest.approx([0, 30, 20, 10, 0], abs=0.5)
    # After the last reading there is no meter being read.
    assert (points[-1]["meter_id"], points[-1]["distance_m"]) == (None, None)
    # 10 m in 30 s: 1.2 km/h, from the second point on.
    assert points[0]["speed_kmh"] is None
    assert [p["speed_kmh"] for p in points[1:]] == pytest.approx([1.2] * 13, abs=0.05)
    marks = body["readings"]
    assert [m["reading_id"] for m in marks] == [i["id"] for i in items]
    assert [m["meter_id"] for m in marks] == [day.meters[i].id for i in range(4)]
    assert [m["distance_m"] for m in marks] == pytest.approx([0, 0, 0, 0], abs=0.5)


def test_the_timeline_breaks_where_the_track_pauses_and_makes_no_speed_across_it(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day, sup = setup_day(session, settings, client)
    meter = day.meters[0]
    # Three walks of 3 points 30 s apart: the second starts BREAK_S + 1 s after the first
    # ends, the third the next day.
    starts = [READ_AT, READ_AT + timedelta(seconds=60 + BREAK_S + 1), READ_AT + timedelta(days=1)]
    push(
        client,
        day,
        track_points=[
            track_point(
                start + timedelta(seconds=30 * i), lat=meter.lat + i * 0.00009, lon=meter.lon
            )
            for start in starts
            for i in range(3)
        ],
    )
    body = client.get(f"{AUDIT}/assignments/{day.assignment.id}/timeline", headers=sup).json()
    points = body["points"]
    assert [p["break_before"] for p in points] == [False, False, False] + [True, False, False] * 2
    # Back at the start after a break: no speed is made of the step across it.
    assert [p["speed_kmh"] is None for p in points] == [True, False, False] * 3
    # A pause of exactly BREAK_S is no break.
    last = track_point(
        starts[-1] + timedelta(seconds=60 + BREAK_S), lat=meter.lat + 2 * 0.00009, lon=meter.lon
    )
    push(client, day, track_points=[last])
    body = client.get(f"{AUDIT}/assignments/{day.assignment.id}/timeline", headers=sup).json()
    assert (body["points"][-1]["break_before"], body["points"][-1]["speed_kmh"]) == (False, 0.0)


def test_a_reading_far_in_time_from_any_track_point_has_no_track_distance(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day, sup = setup_day(session, settings, client)
    late = reading(
        day.assignment.id, day.meters[0], value="1100", at=READ_AT + timedelta(minutes=30)
    )
    push(
        client,
        day,
        readings=[late],
        track_points=[track_point(READ_AT, lat=day.meters[0].lat, lon=day.meters[0].lon)],
    )
    body = client.get(f"{AUDIT}/assignments/{day.assignment.id}/timeline", headers=sup).json()
    assert [m["distance_m"] for m in body["readings"]] == [None]
    assert [p["meter_id"] for p in body["points"]] == [day.meters[0].id]


def bulk(
    client: TestClient, headers: dict[str, str], ids: list[int | None], decision: str, note: str
) -> Any:
    return client.post(
        f"{AUDIT}/flags/review",
        headers=headers,
        json={"flag_ids": ids, "decision": decision, "note": note},
    )


def test_like_flags_are_reviewed_together_with_one_note_and_each_is_logged(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day, sup = setup_day(session, settings, client)
    items = walk(day, session, client)
    flags = [add_flag(session, day, items[i]["id"], meter_index=i) for i in range(3)]
    response = bulk(client, sup, [f.id for f in flags], "accepted", "new meters, read by photo")
    assert response.status_code == 200, response.text
    assert [
        (f["id"], f["review"], f["review_note"], f["reviewed_by"]) for f in response.json()
    ] == [(f.id, "accepted", "new meters, read by photo", "sup1") for f in flags]
    session.commit()
    logged = session.exec(select(AdminLog).where(AdminLog.action == "flag.accepted")).all()
    assert sorted(e.object_id for e in logged) == sorted(str(f.id) for f in flags)
    assert {e.detail["note"] for e in logged if e.detail} == {"new meters, read by photo"}


def test_a_bulk_review_with_a_bad_id_reviews_none_and_names_each_bad_id(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day, sup = setup_day(session, settings, client)
    items = walk(day, session, client)
    good, upheld, same = (add_flag(session, day, items[i]["id"], meter_index=i) for i in range(3))
    review(client, sup, upheld.id, "rejected")
    review(client, sup, same.id, "accepted")
    ids = [good.id, upheld.id, 99_999, same.id]
    response = bulk(client, sup, ids, "accepted", "all explained")
    assert response.status_code == 409, response.text
    body = response.json()
    assert body["code"] == "flags_refused"
    assert body["detail"] == "2 of the flags cannot be reviewed together: none was reviewed"
    assert body["errors"] == [
        {"flag_id": upheld.id, "code": "already_reviewed", "review": "rejected"},
        {"flag_id": 99_999, "code": "flag_not_found"},
    ]
    flags = {
        f["id"]: f
        for f in client.get(f"{AUDIT}/assignments/{day.assignment.id}/flags", headers=sup).json()
    }
    assert flags[good.id]["review"] is None  # all or nothing
    assert (flags[upheld.id]["review"], flags[same.id]["review_note"]) == ("rejected", "why")
    # Only unknown ids: nothing there to review.
    unknown = bulk(client, sup, [99_999], "accepted", "x")
    assert (unknown.status_code, unknown.json()["errors"]) == (
        422,
        [{"flag_id": 99_999, "code": "flag_not_found"}],
    )
    # Another grid's supervisor may review none of them.
    make_user(session, settings, "sup2", "supervisor", "G2")
    other = auth(client, "sup2", "sup-desk-02")
    refused = bulk(client, other, [good.id], "rejected", "not mine")
    assert (refused.status_code, refused.json()["errors"]) == (
        403,
        [{"flag_id": good.id, "code": "not_your_grid"}],
    )
    # The same decision again keeps each flag's own note; the others get the batch's.
    done = bulk(client, sup, [good.id, same.id], "accepted", "batch note")
    assert done.status_code == 200, done.text
    assert [f["review_note"] for f in done.json()] == ["batch note", "why"]
    chinese = bulk(client, {**sup, "Accept-Language": "zh-CN"}, [99_999], "accepted", "x")
    assert chinese.json()["detail"] == "有 1 条疑点不能一并审核：均未审核"
    empty = bulk(client, sup, [], "accepted", "x")
    assert empty.status_code == 422


def test_the_csv_has_customer_address_fix_distance_and_flags_safe_in_a_spreadsheet(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day, sup = setup_day(session, settings, client)
    items = walk(day, session, client)
    add_flag(session, day, items[0]["id"])
    # What anyone who reaches the billing system or the handheld's note could have typed.
    first = session.get(Account, day.meters[0].account_id)
    second = session.get(Account, day.meters[1].account_id)
    assert first is not None
    assert second is not None
    first.customer_name = '=HYPERLINK("http://evil.example","pay here")'
    first.address = "+86 cmd|' /C calc'!A0"
    second.customer_name = "@SUM(1+1)"
    second.address = "-2+3"
    session.add_all([first, second])
    session.commit()
    response = client.get(f"{AUDIT}/assignments/{day.assignment.id}/readings.csv", headers=sup)
    # Marked as UTF-8 for the supervisor's Excel, which would read it as GBK otherwise.
    assert response.content.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [r["reading_id"] for r in rows] == [i["id"] for i in items]
    assert (rows[0]["customer_name"], rows[0]["address"]) == (
        '\'=HYPERLINK("http://evil.example","pay here")',
        "'+86 cmd|' /C calc'!A0",
    )
    assert (rows[1]["customer_name"], rows[1]["address"]) == ("'@SUM(1+1)", "'-2+3")
    assert rows[2]["address"] == "杭州市上城区庆春路3号"  # plain text stays as it is
    # Every cell of every row: nothing a spreadsheet would run.
    assert not [c for r in rows for c in r.values() if c and c[0] in "=+-@\t\r"]
    readings = client.get(f"{AUDIT}/assignments/{day.assignment.id}/readings", headers=sup).json()
    for row, reading_out in zip(rows, readings, strict=True):
        fix = reading_out["fix"]
        assert (float(row["fix_lat"]), float(row["fix_lon"])) == (fix["lat"], fix["lon"])
        assert float(row["fix_accuracy_m"]) == fix["accuracy_m"]
        assert float(row["distance_to_meter_m"]) == fix["distance_to_meter_m"]
        assert row["exactly_on_meter"] == ("yes" if fix["exactly_on_meter"] else "")
    assert rows[0]["flags"] == "fail:unchanged"
    assert rows[0]["flag_sentences"] == f"unchanged on meter {day.meters[0].meter_no}"
    assert rows[1]["flag_sentences"] == ""
    assert rows[3]["skip_code"] == "dog"
