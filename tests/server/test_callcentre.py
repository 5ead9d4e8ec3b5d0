"""The call-centre answers a real caller: who is affected, found by address, restored or not,
when power is back (the crew's word or similar past repairs'), who the crew is and where, and
the customers a planned outage must notify."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from common.clock import Clock
from server.catalog.imports import import_meters_csv
from server.core.config import Settings
from server.core.errors import Invalid
from server.models import Account, AdminLog, Meter, User
from tests.factories import PASSWORD, auth, make_route, make_user
from tests.server.test_jobs import T0, Desk, event, later

Q = "/api/v1/outages"


def customers(d: Desk, fragment: str, who: str = "agent1") -> Any:
    return d.client.get("/api/v1/customers", headers=d.h[who], params={"address": fragment})


def test_each_outage_counts_the_customers_it_cuts_off_and_echoes_the_caller(
    client: TestClient, session: Session, settings: Settings
) -> None:
    d = Desk(client, session, settings)
    make_route(session, "R-2", 7)
    by_accounts = d.create().json()["id"]
    by_route = d.create(
        kind="planned", urgency="normal", route_code="R-2", accounts=[], crew=[],
        planned_start=(T0 + timedelta(days=1)).isoformat(),
    ).json()["id"]  # fmt: skip
    # R-1's meters are 40 m apart from 30.2741: 50 m around the second one holds three of them
    # (and R-2's three, at the same places).
    by_radius = d.create(
        accounts=[], lat=30.2741 + 0.00036, lon=120.1551, radius_m=50, content="cable cut"
    ).json()["id"]
    counts = {r["job_id"]: r["customers_affected"] for r in d.board(grid="G1")}
    assert counts == {by_accounts: 2, by_route: 7, by_radius: 6}
    [row] = [r for r in d.board(account_no="R-1-A0001") if r["job_id"] == by_accounts]
    assert row["customer"] == {
        "account_no": "R-1-A0001",
        "customer_name": session.exec(
            select(Account.customer_name).where(Account.account_no == "R-1-A0001")
        ).one(),
        "address": "杭州市上城区庆春路2号",
    }
    # A question by grid is about no one customer.
    assert {r["customer"] is None for r in d.board(grid="G1")} == {True}


def test_an_address_fragment_finds_the_customer_chinese_first(
    client: TestClient, session: Session, settings: Settings
) -> None:
    d = Desk(client, session, settings)
    make_route(session, "R-3", 40, grid_code="G2")
    # The caller says it their way: spaces, the district or the city left out, full-width digits.
    for said in ("庆春路3", "庆春路 3 号", "杭州市庆春路3号", "上城区庆春路３号", "庆春路3号"):
        found = customers(d, said)
        assert found.status_code == 200, (said, found.text)
        assert [c["account_no"] for c in found.json()] == ["R-1-A0002", "R-3-A0002"], said
    # 庆春路36 is not 庆春路3, nor 庆春路360.
    assert [c["address"] for c in customers(d, "庆春路36").json()] == ["杭州市上城区庆春路36号"]
    # By the customer's name, and by the account number (the exact one first).
    name = session.exec(select(Account.customer_name).where(Account.account_no == "R-3-A0005"))
    assert "R-3-A0005" in [c["account_no"] for c in customers(d, name.one()).json()]
    assert customers(d, "R-3-A0001").json()[0]["account_no"] == "R-3-A0001"
    # A supervisor finds the customers of their grid only.
    assert [c["account_no"] for c in customers(d, "庆春路3", who="sup1").json()] == ["R-1-A0002"]
    assert customers(d, "人民路").json() == []
    # What is not an address is refused, naming what is wrong; LIKE's wildcards are plain text.
    for bad, words in (("   ", "address"), ("杭州市", "address"), ("x" * 201, "address")):
        refused = customers(d, bad)
        assert refused.status_code == 422, (bad, refused.text)
        assert words in refused.text, (bad, refused.text)
    assert customers(d, "庆春路\x00").status_code == 422
    assert customers(d, "%").json() == []
    assert customers(d, "_").json() == []

    # The outage board by address answers with the customer it found.
    job = d.create(accounts=["R-1-A0002"]).json()["id"]
    [row] = d.board(address="庆春路 3号")
    assert (row["job_id"], row["customer"]["account_no"]) == (job, "R-1-A0002")
    assert d.board(address="庆春路4") == []
    missing = client.get(Q, headers=d.h["agent1"], params={"address": "人民路1号"})
    assert (missing.status_code, missing.json()["code"]) == (404, "address_not_found")
    both = client.get(Q, headers=d.h["agent1"], params={"address": "庆春路3", "grid": "G1"})
    assert both.status_code == 422


def test_a_restored_outage_is_said_so_and_a_new_call_there_follows_it(
    client: TestClient, session: Session, settings: Settings, clock: Clock
) -> None:
    d = Desk(client, session, settings)
    first = d.create().json()["id"]
    d.push("crew1", event(first, "started", T0 + timedelta(minutes=20)))
    d.push("crew1", event(first, "finished", T0 + timedelta(hours=2, minutes=6)))
    later(d, clock, timedelta(hours=3))
    [row] = d.board(account_no="R-1-A0000")
    assert (row["status"], row["expected_restore_at"]) == ("restored", None)
    assert datetime.fromisoformat(row["restored_at"]) == T0 + timedelta(hours=2, minutes=6)
    # Power off again at one of its accounts: the new fault names the earlier job.
    again = d.create(accounts=["R-1-A0001"], content="no power again").json()
    assert again["follows_job_id"] == first
    [new] = [r for r in d.board(account_no="R-1-A0001") if r["status"] != "restored"]
    assert new["follows_job_id"] == first
    # Elsewhere, or once the restoration is older than the keep window: no link.
    assert d.create(accounts=["R-1-A0003"]).json()["follows_job_id"] is None
    later(d, clock, timedelta(hours=settings.outage_restored_keep_hours))
    assert d.create(accounts=["R-1-A0000"]).json()["follows_job_id"] is None


def finished_job(d: Desk, minutes: float, **body: Any) -> str:
    """A job reported now and restored `minutes` later."""
    job_id: str = d.create(**body).json()["id"]
    d.push("crew1", event(job_id, "started", T0 + timedelta(minutes=minutes / 2)))
    d.push("crew1", event(job_id, "finished", T0 + timedelta(minutes=minutes)))
    return job_id


def test_restoration_is_estimated_from_similar_past_repairs_until_the_crew_says(
    client: TestClient, session: Session, settings: Settings
) -> None:
    d = Desk(client, session, settings)
    for minutes in (60, 90, 120, 150):
        finished_job(d, minutes)
    finished_job(d, 5, urgency="normal")  # another urgency: not similar
    job = d.create(accounts=["R-1-A0002"]).json()["id"]
    [row] = d.board(account_no="R-1-A0002")
    # Four similar repairs are too few (outage_history_min_jobs is 5): said, not invented.
    assert (row["expected_restore_at"], row["etr_source"]) == (None, None)
    assert row["etr_history"] == {
        "jobs": 4, "enough": False, "median_min": None, "low_min": None, "high_min": None,
        "share": None, "earliest_at": None, "latest_at": None,
    }  # fmt: skip

    finished_job(d, 600)
    [row] = d.board(account_no="R-1-A0002")
    assert row["etr_source"] == "history"
    # Durations 60, 90, 120, 150, 600 min: median 120; 80% between the 10th and 90th
    # percentiles, 72 and 420 min, counted from the report.
    assert datetime.fromisoformat(row["expected_restore_at"]) == T0 + timedelta(minutes=120)
    history = row["etr_history"]
    assert (history["jobs"], history["median_min"], history["low_min"], history["high_min"]) == (
        5,
        120.0,
        72.0,
        420.0,
    )
    assert datetime.fromisoformat(history["latest_at"]) == T0 + timedelta(minutes=420)

    eta = T0 + timedelta(hours=3)
    d.push("crew1", event(job, "started", T0, expected_finish=eta.isoformat()))
    [row] = d.board(account_no="R-1-A0002")
    assert (row["etr_source"], row["etr_history"]) == ("crew", None)
    assert datetime.fromisoformat(row["expected_restore_at"]) == eta


def test_a_fault_a_crew_opens_on_the_spot_follows_the_outage_restored_there(
    client: TestClient, session: Session, settings: Settings, clock: Clock
) -> None:
    d = Desk(client, session, settings)
    first = d.create().json()["id"]
    d.push("crew1", event(first, "started", T0 + timedelta(minutes=20)))
    d.push("crew1", event(first, "finished", T0 + timedelta(hours=2)))
    later(d, clock, timedelta(hours=3))
    meter = session.exec(select(Meter).order_by(col(Meter.id))).first()
    assert meter is not None

    def opened_on_the_spot(lat: float, lon: float) -> Any:
        job = str(uuid.uuid4())
        at = T0 + timedelta(hours=2, minutes=40)  # offline, pushed later
        spot = {"lat": lat, "lon": lon, "accuracy_m": 6.0, "fix_time": at.isoformat()}
        created = event(job, "created", at, job_kind="fault", content="out again", fix=spot)
        assert [r["status"] for r in d.push("crew2", created)] == ["accepted"]
        return d.job(job)["follows_job_id"]

    # At a meter the restored outage cut off: the crew that restored it is asked first.
    assert opened_on_the_spot(meter.lat, meter.lon) == first
    # A kilometre away: no link.
    assert opened_on_the_spot(meter.lat + 0.009, meter.lon) is None


def test_the_crew_is_shown_by_name_and_phone_with_their_last_position(
    client: TestClient, session: Session, settings: Settings
) -> None:
    d = Desk(client, session, settings)
    crew1 = session.exec(select(User).where(User.username == "crew1")).one()
    crew1.full_name, crew1.phone = "陈建国", "13905710001"
    session.add(crew1)
    session.commit()
    job = d.create(crew=["crew1", "crew2"]).json()["id"]
    seen = T0 - timedelta(minutes=4)
    pushed = client.post(
        "/api/v1/sync/push",
        headers=d.h["crew1"],
        json={
            "track_points": [
                {"t": (seen - timedelta(minutes=5)).isoformat(), "lat": 30.27, "lon": 120.15},
                {"t": seen.isoformat(), "lat": 30.2741, "lon": 120.1552, "accuracy_m": 8},
            ]
        },
    )
    assert pushed.status_code == 200, pushed.text
    members = d.job(job)["crew_members"]
    assert members[0] | {"last_position": None} == {
        "username": "crew1",
        "full_name": "陈建国",
        "phone": "13905710001",
        "last_position": None,
    }
    last = members[0]["last_position"]
    assert (last["lat"], last["lon"], datetime.fromisoformat(last["at"])) == (
        30.2741,
        120.1552,
        seen,
    )
    # No name, no phone, no track: said as such, not made up.
    assert members[1] == {
        "username": "crew2",
        "full_name": "crew2",
        "phone": None,
        "last_position": None,
    }
    [row] = d.board(account_no="R-1-A0000")
    assert row["crew_members"] == members


def test_a_planned_outage_lists_its_customers_with_phones_as_csv(
    client: TestClient, session: Session, settings: Settings
) -> None:
    d = Desk(client, session, settings)
    account = session.exec(select(Account).where(Account.account_no == "R-1-A0001")).one()
    account.customer_name = '=HYPERLINK("http://x.example","王芳")'
    session.add(account)
    session.commit()
    start = T0 + timedelta(days=2)
    job = d.create(
        kind="planned", urgency="normal", route_code="R-1", accounts=[], crew=[],
        planned_start=start.isoformat(), expected_finish=(start + timedelta(hours=6)).isoformat(),
    ).json()["id"]  # fmt: skip
    listed = client.get(f"/api/v1/jobs/{job}/customers", headers=d.h["agent1"])
    assert listed.status_code == 200, listed.text
    rows = listed.json()["customers"]
    assert [(c["account_no"], c["phone"]) for c in rows] == [
        (f"R-1-A{i:04d}", f"1380571{i:04d}") for i in range(4)
    ]
    exported = client.get(f"/api/v1/jobs/{job}/customers.csv", headers=d.h["agent1"])
    assert exported.status_code == 200
    assert exported.headers["content-type"] == "text/csv; charset=utf-8"
    # Marked as UTF-8 for the desk's Excel, which would read it as GBK otherwise.
    assert exported.content.startswith("\ufeff".encode())
    table = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert table[0] == ["account_no", "customer_name", "address", "phone"]
    assert table[2] == [
        "R-1-A0001",
        '\'=HYPERLINK("http://x.example","王芳")',
        "杭州市上城区庆春路2号",
        "13805710001",
    ]
    assert len(table) == 5
    # Another grid's supervisor may not; a job that does not exist is 404.
    make_route(session, "R-8", 1, grid_code="G8")
    make_user(session, settings, "sup8", "supervisor", "G8")
    other = client.get(f"/api/v1/jobs/{job}/customers", headers=auth(client, "sup8", "dev-sup8"))
    assert other.status_code == 403
    nothing = client.get(
        "/api/v1/jobs/00000000-0000-0000-0000-000000000000/customers.csv", headers=d.h["agent1"]
    )
    assert nothing.status_code == 404


def test_login_says_the_users_own_grid_for_the_board_to_open_on(
    client: TestClient, session: Session, settings: Settings
) -> None:
    Desk(client, session, settings)
    for name, grid in (("sup1", "G1"), ("agent1", None)):
        body = client.post(
            "/api/v1/auth/login",
            json={"username": name, "password": PASSWORD, "device_id": f"dev-{name}-09"},
        )
        assert body.status_code == 200, body.text
        assert body.json()["user"]["grid"] == grid


def test_an_admin_gives_a_crew_member_a_phone_and_a_bad_one_is_refused(
    client: TestClient, session: Session, settings: Settings
) -> None:
    Desk(client, session, settings)
    make_user(session, settings, "admin1", "admin")
    admin = auth(client, "admin1", "dev-admin1")
    body = {"password": PASSWORD, "role": "crew", "grid_code": "G1", "full_name": "刘军"}
    made = client.post(
        "/api/v1/admin/users",
        headers=admin,
        json=body | {"username": "crew3", "phone": "139 0571 0003"},
    )
    assert made.status_code == 201, made.text
    session.expire_all()
    crew3 = session.exec(select(User).where(User.username == "crew3")).one()
    assert crew3.phone == "139 0571 0003"
    bad = client.post(
        "/api/v1/admin/users",
        headers=admin,
        json=body | {"username": "crew4", "phone": "=cmd()"},
    )
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid_phone")


def test_a_crew_members_new_phone_reaches_the_agents_at_once(
    client: TestClient, session: Session, settings: Settings
) -> None:
    d = Desk(client, session, settings)
    make_user(session, settings, "admin1", "admin")
    admin = auth(client, "admin1", "dev-admin1")
    job = d.create(crew=["crew1"]).json()["id"]
    changed = client.patch(
        "/api/v1/admin/users/crew1",
        headers=admin,
        json={"full_name": "陈建国", "phone": "139 0571 0001"},
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["full_name"], changed.json()["phone"]) == ("陈建国", "139 0571 0001")
    [member] = d.job(job)["crew_members"]
    assert (member["full_name"], member["phone"]) == ("陈建国", "139 0571 0001")
    # A bad number is refused by name and changes nothing; an empty one removes the number.
    bad = client.patch("/api/v1/admin/users/crew1", headers=admin, json={"phone": "=cmd()"})
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid_phone")
    assert d.job(job)["crew_members"][0]["phone"] == "139 0571 0001"
    cleared = client.patch("/api/v1/admin/users/crew1", headers=admin, json={"phone": ""})
    assert (cleared.json()["phone"], cleared.json()["full_name"]) == (None, "陈建国")
    assert d.job(job)["crew_members"][0]["phone"] is None
    missing = client.patch("/api/v1/admin/users/nobody", headers=admin, json={"phone": "1"})
    assert (missing.status_code, missing.json()["code"]) == (404, "user_not_found")
    # Only an admin may; every change is in the admin log.
    refused = client.patch("/api/v1/admin/users/crew1", headers=d.h["agent1"], json={"phone": ""})
    assert refused.status_code == 403
    session.expire_all()
    logged = session.exec(
        select(AdminLog).where(AdminLog.action == "user.contact").order_by(col(AdminLog.id))
    ).all()
    assert [a.detail for a in logged] == [
        {"full_name": "陈建国", "phone": "139 0571 0001"},
        {"phone": None},
    ]


def test_the_billing_import_brings_customers_phones_and_a_file_without_them_keeps_them(
    session: Session,
) -> None:
    header = "account_no,customer_name,address,meter_no,lat,lon,route_code,sequence"
    row = "A-1,王芳,杭州市上城区庆春路1号,M-1,30.2741,120.1551,R-7,10"
    import_meters_csv(session, f"{header},phone\n{row},13905710009\n", actor_id=None)
    account = session.exec(select(Account).where(Account.account_no == "A-1")).one()
    assert account.phone == "13905710009"
    again = import_meters_csv(session, f"{header}\n{row}\n", actor_id=None)
    assert again.accounts_updated == 0
    session.refresh(account)
    assert account.phone == "13905710009"
    moved = import_meters_csv(session, f"{header},phone\n{row},0571 8765 4321\n", actor_id=None)
    assert moved.accounts_updated == 1
    session.refresh(account)
    assert account.phone == "0571 8765 4321"
    with pytest.raises(Invalid) as refused:
        import_meters_csv(session, f"{header},phone\n{row},=HYPERLINK(1)\n", actor_id=None)
    assert refused.value.extra is not None
    assert [(e["line"], e["column"]) for e in refused.value.extra["errors"]] == [(2, "phone")]
