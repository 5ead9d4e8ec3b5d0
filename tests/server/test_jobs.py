"""Repair jobs: dispatch, the crew's events (in time order, legal transitions only), response
figures, the outage board, and the consumption history behind a meter check."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from common import clock
from common.clock import Clock
from server.core.config import Settings
from server.models import Job, JobEvent
from tests.factories import NOW, TODAY, assign, auth, make_route, make_user, meters_of, reading

T0 = NOW


def event(job_id: str, kind: str, at: datetime, **fields: Any) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "job_id": job_id, "kind": kind, "at": at.isoformat(), **fields}


def fix(lat: float = 30.2741, lon: float = 120.1551) -> dict[str, Any]:
    return {"lat": lat, "lon": lon, "accuracy_m": 6.0, "fix_time": T0.isoformat()}


class Desk:
    """The people of one grid, logged in: an agent, a supervisor, two crews, a reader."""

    def __init__(self, client: TestClient, session: Session, settings: Settings):
        self.client = client
        make_route(session, "R-1", 4)
        for name, role in (
            ("agent1", "agent"),
            ("sup1", "supervisor"),
            ("crew1", "crew"),
            ("crew2", "crew"),
            ("reader1", "reader"),
        ):
            make_user(session, settings, name, role, None if role == "agent" else "G1")
        self.h = {
            name: auth(client, name, f"dev-{name}-01")
            for name in ("agent1", "sup1", "crew1", "crew2", "reader1")
        }

    def create(self, who: str = "agent1", **body: Any) -> Any:
        payload = {
            "kind": "fault",
            "urgency": "urgent",
            "content": "transformer fuse blown",
            "lat": 30.2741,
            "lon": 120.1551,
            "address": "1 Riverside Road",
            "accounts": ["R-1-A0000", "R-1-A0001"],
            "crew": ["crew1"],
        } | body
        return self.client.post("/api/v1/jobs", headers=self.h[who], json=payload)

    def push(self, who: str, *events: dict[str, Any]) -> list[dict[str, Any]]:
        response = self.client.post(
            "/api/v1/sync/push", headers=self.h[who], json={"job_events": list(events)}
        )
        assert response.status_code == 200, response.text
        results: list[dict[str, Any]] = response.json()["results"]
        return results

    def job(self, job_id: str, who: str = "agent1") -> dict[str, Any]:
        response = self.client.get(f"/api/v1/jobs/{job_id}", headers=self.h[who])
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def board(self, **query: Any) -> list[dict[str, Any]]:
        response = self.client.get("/api/v1/outages", headers=self.h["agent1"], params=query)
        assert response.status_code == 200, response.text
        body: list[dict[str, Any]] = response.json()
        return body


def later(d: Desk, clock: Clock, by: timedelta) -> None:
    """Move the clock on; the desk logs in again (the access tokens have expired by then)."""
    clock.advance(by)
    d.h = {name: auth(d.client, name, f"dev-{name}-01") for name in d.h}


def desk(client: TestClient, session: Session, settings: Settings) -> Desk:
    return Desk(client, session, settings)


def test_an_agent_enters_a_job_and_it_reaches_the_crews_handheld(
    client: TestClient, session: Session, settings: Settings
) -> None:
    d = desk(client, session, settings)
    created = d.create()
    assert created.status_code == 201, created.text
    job = created.json()
    assert (job["status"], job["crew"], job["grid"]) == ("assigned", ["crew1"], "G1")
    assert [e["kind"] for e in job["events"]] == ["created", "assigned"]
    pulled = client.get("/api/v1/sync/pull", headers=d.h["crew1"]).json()
    assert [(j["id"], j["content"], j["accounts"]) for j in pulled["jobs"]] == [
        (job["id"], "transformer fuse blown", ["R-1-A0000", "R-1-A0001"])
    ]
    assert client.get("/api/v1/sync/pull", headers=d.h["crew2"]).json()["jobs"] == []


def test_bad_job_entries_are_refused_naming_what_is_wrong(
    client: TestClient, session: Session, settings: Settings
) -> None:
    d = desk(client, session, settings)
    assert d.create(who="reader1").status_code == 403
    cases = [
        ({"crew": ["crew1", "ghost"]}, "ghost"),
        ({"crew": ["reader1"]}, "not repair crew"),
        ({"accounts": ["NO-SUCH"]}, "NO-SUCH"),
        ({"kind": "planned"}, "planned_start"),
        ({"kind": "explosion"}, "kind"),
        ({"lat": 91}, "lat"),
        ({"radius_m": 500, "lat": None, "lon": None}, "radius"),
    ]
    for body, words in cases:
        response = d.create(**body)
        assert response.status_code == 422, (body, response.text)
        assert words in response.json()["detail"], (body, response.text)
    session.commit()
    assert session.exec(select(Job)).all() == []


def test_a_crew_starts_re_estimates_and_finishes_and_the_figures_are_right(
    client: TestClient, session: Session, settings: Settings
) -> None:
    d = desk(client, session, settings)
    job_id = d.create().json()["id"]
    reported = datetime.fromisoformat(d.job(job_id)["reported_at"])
    started = reported + timedelta(minutes=20)
    results = d.push(
        "crew1",
        event(
            job_id,
            "started",
            started,
            fix=fix(),
            expected_finish=(started + timedelta(hours=2)).isoformat(),
        ),
        event(
            job_id,
            "eta_changed",
            started + timedelta(minutes=30),
            expected_finish=(started + timedelta(hours=3)).isoformat(),
            note="cable too",
        ),
    )
    assert [r["status"] for r in results] == ["accepted", "accepted"]
    job = d.job(job_id)
    assert job["status"] == "started"
    assert datetime.fromisoformat(job["expected_finish"]) == started + timedelta(hours=3)
    assert job["start_position"] == {"lat": 30.2741, "lon": 120.1551}
    assert (job["response"]["response_min"], job["response"]["response_met"]) == (20.0, True)

    finished = started + timedelta(hours=5)  # past the 4 h restoration target
    assert (
        d.push("crew1", event(job_id, "finished", finished, fix=fix(), note="fuse replaced"))[0][
            "status"
        ]
        == "accepted"
    )
    job = d.job(job_id)
    assert (job["status"], job["result_note"]) == ("finished", "fuse replaced")
    assert job["response"]["restoration_min"] == 320.0
    assert job["response"]["restore_met"] is False
    assert [e["kind"] for e in job["events"]] == [
        "created",
        "assigned",
        "started",
        "eta_changed",
        "finished",
    ]


def test_events_of_one_push_are_applied_in_time_order_not_list_order(
    client: TestClient, session: Session, settings: Settings
) -> None:
    d = desk(client, session, settings)
    job_id = d.create().json()["id"]
    finish = event(job_id, "finished", T0 + timedelta(hours=1))
    start = event(job_id, "started", T0 + timedelta(minutes=10))
    results = d.push("crew1", finish, start)
    assert [(r["id"], r["status"]) for r in results] == [
        (finish["id"], "accepted"),
        (start["id"], "accepted"),
    ]
    assert d.job(job_id)["status"] == "finished"
    # Again: duplicates, and nothing changes.
    assert [r["status"] for r in d.push("crew1", finish, start)] == ["duplicate", "duplicate"]


def test_illegal_transitions_are_rejected_and_change_nothing(
    client: TestClient, session: Session, settings: Settings
) -> None:
    d = desk(client, session, settings)
    job_id = d.create().json()["id"]
    early_finish = d.push("crew1", event(job_id, "finished", T0))[0]
    assert (early_finish["status"], early_finish["error"]) == ("rejected", "illegal_transition")
    assert "start" in early_finish["detail"]
    assert d.push("crew1", event(job_id, "eta_changed", T0))[0]["error"] == "invalid"
    d.push("crew1", event(job_id, "cancelled", T0, note="false alarm"))
    start_cancelled = d.push("crew1", event(job_id, "started", T0 + timedelta(minutes=5)))[0]
    assert start_cancelled["error"] == "illegal_transition"
    job = d.job(job_id)
    assert (job["status"], job["started_at"]) == ("cancelled", None)
    session.commit()
    kinds = session.exec(select(JobEvent.kind).where(JobEvent.job_id == uuid.UUID(job_id)))
    assert sorted(kinds.all()) == ["assigned", "cancelled", "created"]


def test_a_finish_dated_before_its_start_is_rejected(
    client: TestClient, session: Session, settings: Settings
) -> None:
    d = desk(client, session, settings)
    job_id = d.create().json()["id"]
    d.push("crew1", event(job_id, "started", T0 + timedelta(hours=1)))
    result = d.push("crew1", event(job_id, "finished", T0 + timedelta(minutes=30)))[0]
    assert result["error"] == "illegal_transition"
    assert d.job(job_id)["status"] == "started"


def test_only_the_crew_or_the_grids_supervisor_may_log_a_jobs_events(
    client: TestClient, session: Session, settings: Settings
) -> None:
    d = desk(client, session, settings)
    job_id = d.create().json()["id"]
    assert d.push("crew2", event(job_id, "started", T0))[0]["error"] == "not_your_job"
    assert d.push("sup1", event(job_id, "note", T0, note="on it"))[0]["status"] == "accepted"
    assert client.get(f"/api/v1/jobs/{job_id}", headers=d.h["crew2"]).status_code == 403
    assert client.get(f"/api/v1/jobs/{job_id}", headers=d.h["crew1"]).status_code == 200


def test_a_crew_opens_a_job_on_the_spot_offline_and_the_board_shows_it(
    client: TestClient, session: Session, settings: Settings
) -> None:
    d = desk(client, session, settings)
    job_id = str(uuid.uuid4())
    results = d.push(
        "crew1",
        event(
            job_id,
            "created",
            T0,
            job_kind="temporary_repair",
            urgency="urgent",
            content="pole leaning after storm",
            fix=fix(),
            address="3 Riverside Road",
            crew=["crew1", "crew2"],
        ),
        event(
            job_id,
            "started",
            T0 + timedelta(minutes=1),
            fix=fix(),
            expected_finish=(T0 + timedelta(hours=2)).isoformat(),
        ),
    )
    assert [r["status"] for r in results] == ["accepted", "accepted"]
    job = d.job(job_id)
    assert (job["kind"], job["crew"], job["status"]) == (
        "temporary_repair",
        ["crew1", "crew2"],
        "started",
    )
    assert [row["job_id"] for row in d.board(grid="G1")] == [job_id]
    assert d.push("crew1", event(str(uuid.uuid4()), "created", T0))[0]["error"] == "invalid"


def test_the_board_answers_by_account_point_and_grid_and_keeps_restored_jobs_a_day(
    client: TestClient, session: Session, settings: Settings, clock: Clock
) -> None:
    d = desk(client, session, settings)
    by_accounts = d.create().json()["id"]
    far_lat = 30.30
    by_radius = d.create(
        accounts=[], lat=far_lat, lon=120.20, radius_m=300, content="feeder trip"
    ).json()["id"]
    d.push(
        "crew1",
        event(by_accounts, "started", T0, expected_finish=(T0 + timedelta(hours=2)).isoformat()),
    )

    [row] = d.board(account_no="R-1-A0001")
    assert set(row) >= {
        "job_id",
        "kind",
        "urgency",
        "content",
        "crew",
        "started_at",
        "expected_finish",
        "last_update",
    }
    assert (row["job_id"], row["crew"]) == (by_accounts, ["crew1"])
    assert datetime.fromisoformat(row["started_at"]) == T0
    assert datetime.fromisoformat(row["expected_finish"]) == T0 + timedelta(hours=2)
    assert d.board(account_no="R-1-A0003") == []
    assert [r["job_id"] for r in d.board(lat=far_lat + 0.001, lon=120.20)] == [by_radius]
    assert [r["job_id"] for r in d.board(lat=30.2741, lon=120.1551)] == [by_accounts]
    assert {r["job_id"] for r in d.board(grid="G1")} == {by_accounts, by_radius}

    d.push("crew1", event(by_accounts, "finished", T0 + timedelta(hours=1)))
    later(d, clock, timedelta(hours=2))
    [restored] = d.board(account_no="R-1-A0001")
    assert (restored["status"], restored["etr_source"]) == ("restored", None)
    assert datetime.fromisoformat(restored["restored_at"]) == T0 + timedelta(hours=1)
    # Kept 24 h (outage_restored_keep_hours) after the restoration, then forgotten.
    later(d, clock, timedelta(hours=22, minutes=59))
    assert [r["status"] for r in d.board(account_no="R-1-A0001")] == ["restored"]
    later(d, clock, timedelta(minutes=2))
    assert d.board(account_no="R-1-A0001") == []
    bad = client.get(
        "/api/v1/outages", headers=d.h["agent1"], params={"account_no": "R-1-A0001", "grid": "G1"}
    )
    assert bad.status_code == 422
    assert (
        client.get(
            "/api/v1/outages", headers=d.h["agent1"], params={"account_no": "NOPE"}
        ).status_code
        == 404
    )
    assert (
        client.get("/api/v1/outages", headers=d.h["crew1"], params={"grid": "G1"}).status_code
        == 403
    )


def test_a_planned_outage_is_entered_ahead_and_shown_as_upcoming(
    client: TestClient, session: Session, settings: Settings
) -> None:
    d = desk(client, session, settings)
    start = T0 + timedelta(days=2)
    created = d.create(
        kind="planned",
        urgency="normal",
        content="replace transformer T3",
        planned_start=start.isoformat(),
        expected_finish=(start + timedelta(hours=6)).isoformat(),
        crew=[],
        route_code="R-1",
        accounts=[],
    )
    assert created.status_code == 201, created.text
    [row] = d.board(account_no="R-1-A0002")
    assert (row["kind"], row["upcoming"]) == ("planned", True)
    assert datetime.fromisoformat(row["planned_start"]) == start
    assert created.json()["response"] == {"applies": False}


def test_jobs_about_to_breach_their_target_are_listed(
    client: TestClient, session: Session, settings: Settings
) -> None:
    d = desk(client, session, settings)
    late = d.create().json()["id"]
    d.create(urgency="normal", content="street light").json()
    job = session.get(Job, uuid.UUID(late))
    assert job is not None
    job.reported_at = clock.now() - timedelta(minutes=25)  # urgent: arrive within 30 min
    session.add(job)
    session.commit()
    response = client.get("/api/v1/jobs", headers=d.h["sup1"], params={"breaching_within_min": 10})
    assert [r["job_id"] for r in response.json()] == [late]
    assert response.json()[0]["overdue"] is False
    assert len(client.get("/api/v1/jobs", headers=d.h["sup1"]).json()) == 2


def test_reassigning_a_job_withdraws_it_from_the_old_crew(
    client: TestClient, session: Session, settings: Settings
) -> None:
    d = desk(client, session, settings)
    job_id = d.create().json()["id"]
    cursor = client.get("/api/v1/sync/pull", headers=d.h["crew1"]).json()["cursor"]
    response = client.post(
        f"/api/v1/jobs/{job_id}/assign", headers=d.h["sup1"], json={"crew": ["crew2"]}
    )
    assert response.json()["crew"] == ["crew2"]
    pulled = client.get("/api/v1/sync/pull", headers=d.h["crew1"], params={"cursor": cursor}).json()
    assert {"type": "job", "id": job_id, "assignment_id": None} in pulled["withdrawn"]
    assert [
        j["id"] for j in client.get("/api/v1/sync/pull", headers=d.h["crew2"]).json()["jobs"]
    ] == [job_id]
    cancelled = client.post(
        f"/api/v1/jobs/{job_id}/cancel", headers=d.h["agent1"], json={"note": "duplicate call"}
    )
    assert cancelled.json()["status"] == "cancelled"
    again = client.post(f"/api/v1/jobs/{job_id}/cancel", headers=d.h["agent1"], json={"note": "x"})
    assert again.status_code == 422


def test_a_meter_check_starts_from_the_consumption_history_and_ends_with_its_result(
    client: TestClient, session: Session, settings: Settings
) -> None:
    d = desk(client, session, settings)
    route = make_route(session, "R-9", 1)
    [meter] = meters_of(session, route)
    reader = auth(client, "reader1", "dev-reader1-02")
    # Two past cycles, their windows 35 days apart: always in two different months.
    starts = [TODAY - timedelta(days=70), TODAY - timedelta(days=35)]
    cycles = [f"{start:%Y-%m}" for start in starts]
    for cycle, value, start in zip(cycles, ("1090", "1190"), starts, strict=True):
        a = assign(
            session, "R-9", "reader1", cycle=cycle, start=start, end=start + timedelta(days=8)
        )
        at = datetime.combine(start + timedelta(days=5), time(2), tzinfo=UTC)
        pushed = client.post(
            "/api/v1/sync/push",
            headers=reader,
            json={"readings": [reading(a.id, meter, value=value, at=at)]},
        )
        assert pushed.json()["results"][0]["status"] == "accepted"
    history = client.get("/api/v1/accounts/R-9-A0000/consumption", headers=d.h["agent1"])
    assert history.status_code == 200, history.text
    [m] = history.json()["meters"]
    assert [(h["cycle"], h["consumption_kwh"]) for h in m["history"]] == [
        (cycles[0], None),
        (cycles[1], "100"),
    ]
    assert client.get("/api/v1/accounts/NOPE/consumption", headers=d.h["agent1"]).status_code == 404

    job_id = d.create(
        kind="meter_check",
        urgency="normal",
        accounts=["R-9-A0000"],
        content="customer doubts the meter",
    ).json()["id"]
    d.push("crew1", event(job_id, "started", T0))
    no_result = d.push("crew1", event(job_id, "finished", T0 + timedelta(hours=6)))[0]
    assert no_result["error"] == "invalid"
    check = {
        "method": "known_load",
        "load_w": 200,
        "hours": 5,
        "register_moved_kwh": "1.0",
        "outcome": "meter_ok",
    }
    incomplete = d.push(
        "crew1",
        event(
            job_id,
            "finished",
            T0 + timedelta(hours=6),
            meter_check={"method": "known_load", "outcome": "meter_ok"},
        ),
    )[0]
    assert incomplete["error"] == "invalid"
    assert "load_w" in incomplete["detail"]
    done = d.push(
        "crew1",
        event(
            job_id,
            "finished",
            T0 + timedelta(hours=6),
            meter_check=check,
            note="200 W lamp, 5 h, 1 kWh: fine",
        ),
    )[0]
    assert done["status"] == "accepted"
    job = d.job(job_id)
    assert job["meter_check"]["outcome"] == "meter_ok"
    assert job["meter_check"]["register_moved_kwh"] == "1.0"
    # A meter check is no outage.
    assert d.board(account_no="R-9-A0000") == []


def test_a_job_entered_by_position_alone_lands_in_the_grid_of_the_meters_there(
    client: TestClient, session: Session, settings: Settings
) -> None:
    d = desk(client, session, settings)
    created = d.create(accounts=[], crew=[], lat=30.2745, lon=120.1552, radius_m=200)
    assert created.json()["grid"] == "G1"
    assert [r["job_id"] for r in d.board(grid="G1")] == [created.json()["id"]]


def test_an_account_or_a_crew_member_named_twice_counts_once(
    client: TestClient, session: Session, settings: Settings
) -> None:
    d = desk(client, session, settings)
    created = d.create(accounts=["R-1-A0000", "R-1-A0000"], crew=["crew1", "crew1"])
    assert created.status_code == 201, created.text
    assert (created.json()["accounts"], created.json()["crew"]) == (["R-1-A0000"], ["crew1"])
