"""The billing system's side (issue 15): a machine account that sees readings and accounts only,
and a feed of readings ready to bill, in commit order, held back while a fail flag stands."""

from __future__ import annotations

import csv
import io
import threading
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from server.billing import feed as billing_feed
from server.core.config import Settings
from server.demo.days import home_day, honest_day
from server.models import Account, Flag, Meter
from tests.factories import (
    CYCLE,
    PASSWORD,
    TODAY,
    WINDOW_END,
    ReaderDay,
    auth,
    local_time,
    make_user,
    reader_day,
    reader_days,
)
from tests.server.test_bad_input import waiting_on_a_lock
from tests.server.test_cli import gridwalk

BILLING = "/api/v1/billing"
AUDIT = "/api/v1/audit"
MORNING = local_time(TODAY - timedelta(days=1), 9)


def push(client: TestClient, day: ReaderDay, **body: Any) -> dict[str, Any]:
    response = client.post("/api/v1/sync/push", headers=day.headers, json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def billing_office(
    client: TestClient, session: Session, settings: Settings
) -> tuple[dict[str, str], dict[str, str]]:
    """The billing system's account and the grid's supervisor, logged in."""
    make_user(session, settings, "billing1", "billing")
    make_user(session, settings, "sup1", "supervisor", "G1")
    return auth(client, "billing1", "billing-host-01"), auth(client, "sup1", "sup-desk-01")


def feed(client: TestClient, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    response = client.get(f"{BILLING}/readings", headers=headers, params=params)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def whole_feed(client: TestClient, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = (
            feed(client, headers, cursor=cursor, **params)
            if cursor
            else feed(client, headers, **params)
        )
        items += page["items"]
        cursor = page["cursor"]
        if not page["has_more"]:
            return items


def flags(client: TestClient, sup: dict[str, str], assignment_id: int) -> list[dict[str, Any]]:
    response = client.get(f"{AUDIT}/assignments/{assignment_id}/flags", headers=sup)
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()
    return result


def review(client: TestClient, sup: dict[str, str], flag_id: int, decision: str) -> None:
    response = client.post(
        f"{AUDIT}/flags/{flag_id}/review",
        headers=sup,
        json={"decision": decision, "note": "checked with the customer"},
    )
    assert response.status_code == 200, response.text


def test_the_billing_role_sees_readings_and_nothing_of_tracks_users_reviews_or_sync(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client, n_meters=2)
    billing, _ = billing_office(client, session, settings)
    assert client.get(f"{BILLING}/readings", headers=billing).status_code == 200
    for path in (
        f"{AUDIT}/assignments",
        f"{AUDIT}/assignments/{day.assignment.id}/track.gpx",
        f"{AUDIT}/assignments/{day.assignment.id}/flags",
        "/api/v1/sync/pull",
    ):
        response = client.get(path, headers=billing)
        assert response.status_code == 403, path
    new_user = {"username": "x1", "password": "long-enough-1", "role": "reader"}
    assert client.post("/api/v1/admin/users", headers=billing, json=new_user).status_code == 403
    assert client.get("/api/v1/jobs", headers=billing).status_code == 403
    refused = client.post(
        f"{AUDIT}/flags/1/review", headers=billing, json={"decision": "accepted", "note": "x"}
    )
    assert refused.status_code == 403
    # Nor may a reader pull the billing feed.
    assert client.get(f"{BILLING}/readings", headers=day.headers).status_code == 403


def test_the_admin_api_creates_a_billing_account(
    client: TestClient, session: Session, settings: Settings
) -> None:
    make_user(session, settings, "admin1", "admin")
    admin = auth(client, "admin1", "admin-desk-01")
    created = client.post(
        "/api/v1/admin/users",
        headers=admin,
        json={"username": "billing-sys", "password": PASSWORD, "role": "billing"},
    )
    assert created.status_code in (200, 201), created.text
    assert created.json()["role"] == "billing"
    assert client.get(f"{BILLING}/readings", headers=auth(client, "billing-sys")).status_code == 200


def test_the_cli_creates_a_billing_account_that_logs_in(
    client: TestClient, session: Session, db_url: str
) -> None:
    result = gridwalk(
        db_url, "create-user", "billing-cli", "--role", "billing", "--password", PASSWORD
    )
    assert result.exit_code == 0, result.output
    billing = auth(client, "billing-cli", "billing-host-02")
    assert client.get(f"{BILLING}/readings", headers=billing).status_code == 200
    assert client.get("/api/v1/sync/pull", headers=billing).status_code == 403


def test_honest_readings_enter_with_their_consumption_a_rollover_and_a_multiplier_too(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client, n_meters=4)
    billing, sup = billing_office(client, session, settings)
    rolled, multiplied = day.meters[0], day.meters[1]
    for meter, changes in (
        (rolled, {"last_reading": Decimal(999_950)}),
        (multiplied, {"multiplier": Decimal(2)}),
    ):
        row = session.get(Meter, meter.id)
        assert row is not None
        for name, value in changes.items():
            setattr(row, name, value)
        session.add(row)
    session.commit()
    meters = list(session.exec(select(Meter).where(Meter.route_id == day.route.id)))
    meters.sort(key=lambda m: m.sequence)
    session.commit()
    values = {rolled.id: "30", multiplied.id: str(1001 + 100), meters[2].id: "1202"}
    readings, track = honest_day(
        meters[:3], MORNING, assignment_id=day.assignment.id, seed=3, values=values
    )
    push(client, day, readings=readings, track_points=track)
    assert flags(client, sup, day.assignment.id) == []

    items = whole_feed(client, billing, cycle=CYCLE)
    by_meter = {i["meter_no"]: i for i in items}
    assert set(by_meter) == {m.meter_no for m in meters[:3]}  # meter 3 is not read yet
    assert Decimal(by_meter[rolled.meter_no]["consumption_kwh"]) == 80  # 999950 -> 30
    assert Decimal(by_meter[rolled.meter_no]["previous"]) == 999_950
    assert Decimal(by_meter[rolled.meter_no]["current"]) == 30
    assert Decimal(by_meter[multiplied.meter_no]["consumption_kwh"]) == 200  # 100 units x 2
    assert Decimal(by_meter[meters[2].meter_no]["consumption_kwh"]) == 200
    first = by_meter[rolled.meter_no]
    assert first["reading_id"] == readings[0]["id"]
    assert first["account_no"] == f"{day.route.code}-A0000"
    assert first["supersedes"] is None


def test_a_reading_typed_at_home_is_held_until_its_fail_flags_are_dismissed(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client, n_meters=3)
    billing, sup = billing_office(client, session, settings)
    home = (day.meters[0].lat + 0.01, day.meters[0].lon + 0.01)  # about 1.4 km away
    readings, track = home_day(
        day.meters, MORNING, assignment_id=day.assignment.id, home=home, unchanged_every=99
    )
    push(client, day, readings=readings, track_points=track)
    found = flags(client, sup, day.assignment.id)
    failing = [f for f in found if f["severity"] == "fail"]
    assert {f["reading_id"] for f in failing} == {r["id"] for r in readings}
    start = feed(client, billing)
    assert start["items"] == []

    released = readings[1]["id"]
    for f in failing:
        if f["reading_id"] == released:
            review(client, sup, f["id"], "accepted")
    page = feed(client, billing, cursor=start["cursor"])
    assert [i["reading_id"] for i in page["items"]] == [released]
    assert page["has_more"] is False
    # Pulled again from the old cursor: the same item, the same content.
    assert feed(client, billing, cursor=start["cursor"]) == page
    assert feed(client, billing, cursor=page["cursor"])["items"] == []


def test_an_upheld_reading_stays_out_until_its_reread_which_enters_naming_it(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client, n_meters=2)
    billing, sup = billing_office(client, session, settings)
    home = (day.meters[0].lat + 0.01, day.meters[0].lon + 0.01)
    readings, track = home_day(
        day.meters[:1], MORNING, assignment_id=day.assignment.id, home=home, unchanged_every=99
    )
    push(client, day, readings=readings, track_points=track)
    [failing, *_] = [f for f in flags(client, sup, day.assignment.id) if f["severity"] == "fail"]
    review(client, sup, failing["id"], "rejected")
    assert feed(client, billing)["items"] == []

    meter = day.meters[0]
    order = client.post(
        f"{AUDIT}/assignments/{day.assignment.id}/rereads",
        headers=sup,
        json={"meter_id": meter.id, "reason": "read at home"},
    )
    assert order.status_code == 201, order.text
    reread, walked = honest_day(
        [meter],
        MORNING + timedelta(hours=3),
        assignment_id=day.assignment.id,
        seed=4,
        values={meter.id: "1150"},
    )
    reread[0]["reread_of"] = order.json()["id"]
    push(client, day, readings=reread, track_points=walked)
    [item] = feed(client, billing)["items"]
    assert item["reading_id"] == reread[0]["id"]
    assert item["supersedes"] == readings[0]["id"]
    assert Decimal(item["consumption_kwh"]) == 150  # 1000 -> 1150


def release(session: Session, settings: Settings, day: ReaderDay) -> int:
    """Dismiss the assignment's fail flags (as a review would) and append what is now ready."""
    for flag in session.exec(select(Flag).where(Flag.assignment_id == day.assignment.id)):
        flag.review = "accepted"
        session.add(flag)
    session.flush()
    assert day.assignment.id is not None
    return billing_feed.append_ready(
        session, assignment_id=day.assignment.id, thresholds=settings.thresholds()
    )


def page_of(engine: Engine, cursor: str | None) -> dict[str, Any]:
    with Session(engine) as reader:
        return billing_feed.page(reader, cycle=None, cursor=cursor, limit=100)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_the_cursor_never_skips_an_item_committed_after_a_later_page(
    client: TestClient, session: Session, settings: Settings, engine: Engine
) -> None:
    """Two writers append at once; a consumer pulls between their commits and never misses the
    one that committed second, nor gets the first again."""
    days = reader_days(session, settings, client, 2, n_meters=1)
    for i, day in enumerate(days):
        home = (day.meters[0].lat + 0.01, day.meters[0].lon + 0.01)
        readings, track = home_day(
            day.meters, MORNING, assignment_id=day.assignment.id, home=home, seed=i
        )
        push(client, day, readings=readings, track_points=track)
    assert page_of(engine, None)["items"] == []  # held by their fail flags

    first = Session(engine)
    assert release(first, settings, days[0]) == 1  # holds the change counter until it commits
    appended, go = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def second() -> None:
        with Session(engine) as other:
            try:
                assert release(other, settings, days[1]) == 1
                appended.set()
                go.wait(timeout=60)
                other.commit()
            except BaseException as exc:  # reported below, in the test's thread
                failures.append(exc)
                appended.set()

    racer = threading.Thread(target=second)
    racer.start()
    deadline = time.monotonic() + 30
    while not waiting_on_a_lock(engine):
        assert time.monotonic() < deadline, f"the second writer never reached it: {failures}"
        time.sleep(0.01)
    before = page_of(engine, None)
    assert before["items"] == []  # nothing committed yet
    first.commit()
    first.close()
    assert appended.wait(timeout=60)
    middle = page_of(engine, before["cursor"])
    assert [i["meter_no"] for i in middle["items"]] == ["R-0-M0000"]
    go.set()
    racer.join(timeout=60)
    assert failures == []
    after = page_of(engine, middle["cursor"])
    assert [i["meter_no"] for i in after["items"]] == ["R-1-M0000"]
    assert page_of(engine, after["cursor"])["items"] == []
    whole = page_of(engine, before["cursor"])["items"]
    assert whole == middle["items"] + after["items"]


def test_holds_name_each_held_reading_with_its_flags_and_the_meters_not_read(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client, n_meters=4)
    billing, sup = billing_office(client, session, settings)
    home = (day.meters[0].lat + 0.01, day.meters[0].lon + 0.01)
    typed, track = home_day(
        day.meters[:1], MORNING, assignment_id=day.assignment.id, home=home, unchanged_every=99
    )
    honest, walked = honest_day(
        day.meters[1:3],
        MORNING + timedelta(hours=1),
        assignment_id=day.assignment.id,
        seed=6,
        skips={day.meters[2].id: "dog"},
    )
    push(client, day, readings=typed + honest, track_points=track + walked)
    fails = {
        f["code"]
        for f in flags(client, sup, day.assignment.id)
        if f["severity"] == "fail" and f["reading_id"] == typed[0]["id"]
    }
    assert fails

    for language, word in (("en", "track"), ("zh-CN", "轨迹")):
        response = client.get(
            f"{BILLING}/holds",
            headers={**billing, "Accept-Language": language},
            params={"cycle": CYCLE},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        [held] = body["held"]
        assert held["reading_id"] == typed[0]["id"]
        assert held["reason"] == "flagged"
        assert {f["code"] for f in held["flags"]} == fails
        assert any(word in f["message"] for f in held["flags"]), held["flags"]
        unread = {u["meter_no"]: u for u in body["unread"]}
        assert set(unread) == {day.meters[2].meter_no, day.meters[3].meter_no}
        assert unread[day.meters[2].meter_no]["state"] == "skipped"
        assert unread[day.meters[2].meter_no]["skip_code"] == "dog"
        assert unread[day.meters[3].meter_no]["state"] == "unread"

    progress = client.get(f"{BILLING}/progress", headers=billing, params={"cycle": CYCLE})
    assert progress.status_code == 200, progress.text
    [grid] = progress.json()["grids"]
    assert (grid["grid"], grid["ready"], grid["held"], grid["skipped"], grid["unread"]) == (
        "G1",
        1,
        1,
        1,
        1,
    )
    assert grid["days_left"] == (WINDOW_END - TODAY).days + 1
    missing = client.get(f"{BILLING}/holds", headers=billing, params={"cycle": "1999-01"})
    assert missing.status_code == 404
    assert client.get(f"{BILLING}/holds", headers=billing).status_code == 422


def test_the_cycle_export_in_gbk_keeps_its_chinese_is_formula_safe_and_totals(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client, n_meters=3)
    billing, _ = billing_office(client, session, settings)
    account = session.exec(
        select(Account).where(Account.account_no == f"{day.route.code}-A0001")
    ).one()
    account.customer_name = '=HYPERLINK("http://x")王芳'
    session.add(account)
    session.commit()
    values = {m.id: str(1000 + i + 100 * (i + 1)) for i, m in enumerate(day.meters)}
    readings, track = honest_day(
        day.meters, MORNING, assignment_id=day.assignment.id, seed=8, values=values
    )
    push(client, day, readings=readings, track_points=track)

    utf8 = client.get(f"{BILLING}/readings.csv", headers=billing, params={"cycle": CYCLE})
    assert utf8.status_code == 200, utf8.text
    gbk = client.get(
        f"{BILLING}/readings.csv", headers=billing, params={"cycle": CYCLE, "encoding": "gbk"}
    )
    assert gbk.status_code == 200, gbk.text
    assert "gbk" in gbk.headers["content-type"]
    text = gbk.content.decode("gbk")
    assert text == utf8.content.decode("utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:3] == ["reading_id", "account_no", "customer_name"]
    body, total = rows[1:-1], rows[-1]
    names = {r[1]: r[2] for r in body}
    assert names[f"{day.route.code}-A0000"] == "王芳"
    assert names[f"{day.route.code}-A0001"] == '\'=HYPERLINK("http://x")王芳'
    assert "杭州市上城区庆春路1号" in {r[3] for r in body}
    assert total == ["TOTAL", "3", "600.000"]  # 100 + 200 + 300 kWh
    bad = client.get(
        f"{BILLING}/readings.csv", headers=billing, params={"cycle": CYCLE, "encoding": "latin-1"}
    )
    assert bad.status_code == 422
    unknown = client.get(f"{BILLING}/readings.csv", headers=billing, params={"cycle": "Ā-01"})
    assert unknown.status_code == 404
