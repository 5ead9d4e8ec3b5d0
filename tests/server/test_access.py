"""Access rules (issue 10): whose records a push may touch, which grid a supervisor sees."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func
from sqlmodel import Session, select
from typer.testing import CliRunner

from server.cli import app as cli
from server.core.config import DEV_SECRET, Settings, dev_secret_refusal
from server.models import JobEvent, Reading, Route, TrackPoint
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


# --- A supervisor sees only their grid; agents and admins see all ---------------------------------


class TwoGrids:
    """Grids G1 (route R-1) and G2 (route R-2), each with a supervisor; an agent, an admin; an
    open fault cutting off R-1's first account, and a read meter on it for its history."""

    def __init__(self, client: TestClient, session: Session, settings: Settings):
        self.client = client
        make_route(session, "R-1", 2, grid_code="G1")
        make_route(session, "R-2", 2, grid_code="G2")
        for name, role, grid in (
            ("sup1", "supervisor", "G1"),
            ("sup2", "supervisor", "G2"),
            ("agent1", "agent", None),
            ("admin1", "admin", None),
            ("crew1", "crew", "G1"),
        ):
            make_user(session, settings, name, role, grid)
        self.h = {
            name: auth(client, name, f"desk-{name}-01")
            for name in ("sup1", "sup2", "agent1", "admin1")
        }
        created = client.post(
            "/api/v1/jobs",
            headers=self.h["agent1"],
            json={
                "kind": "fault",
                "content": "transformer fuse blown",
                "accounts": ["R-1-A0000"],
                "crew": ["crew1"],
            },
        )
        assert created.status_code == 201, created.text
        self.job = created.json()
        assert self.job["grid"] == "G1"

    def get(self, who: str, path: str, **params: Any) -> Any:
        return self.client.get(f"/api/v1{path}", headers=self.h[who], params=params)


SEES_G1 = ("sup1", "agent1", "admin1")


def test_consumption_of_another_grids_account_is_404_for_a_supervisor(
    client: TestClient, session: Session, settings: Settings
) -> None:
    grids = TwoGrids(client, session, settings)
    for who in SEES_G1:
        answer = grids.get(who, "/accounts/R-1-A0000/consumption")
        assert answer.status_code == 200, (who, answer.text)
        assert answer.json()["customer_name"] == "王芳"
    other = grids.get("sup2", "/accounts/R-1-A0000/consumption")
    missing = grids.get("sup2", "/accounts/NO-SUCH/consumption")
    # Another grid's account answers exactly as one that does not exist: nothing is revealed.
    assert other.status_code == missing.status_code == 404
    assert other.json() == missing.json() | {
        "detail": missing.json()["detail"].replace("NO-SUCH", "R-1-A0000")
    }
    assert other.json()["code"] == "account_not_found"
    assert "Customer" not in other.text
    assert grids.get("sup2", "/accounts/R-2-A0000/consumption").status_code == 200


def test_the_outage_board_by_account_hides_another_grid_from_a_supervisor(
    client: TestClient, session: Session, settings: Settings
) -> None:
    grids = TwoGrids(client, session, settings)
    for who in SEES_G1:
        rows = grids.get(who, "/outages", account_no="R-1-A0000").json()
        assert [r["job_id"] for r in rows] == [grids.job["id"]], who
    other = grids.get("sup2", "/outages", account_no="R-1-A0000")
    assert (other.status_code, other.json()["code"]) == (404, "account_not_found")


def test_the_outage_board_by_grid_refuses_a_supervisor_another_grid(
    client: TestClient, session: Session, settings: Settings
) -> None:
    grids = TwoGrids(client, session, settings)
    for who in SEES_G1:
        rows = grids.get(who, "/outages", grid="G1").json()
        assert [r["job_id"] for r in rows] == [grids.job["id"]], who
    other = grids.get("sup2", "/outages", grid="G1")
    assert (other.status_code, other.json()["code"]) == (403, "not_your_grid")
    assert grids.get("sup2", "/outages", grid="G2").json() == []


def test_the_outage_board_by_position_shows_a_supervisor_only_their_grids_jobs(
    client: TestClient, session: Session, settings: Settings
) -> None:
    grids = TwoGrids(client, session, settings)
    meter = meters_of(session, session.exec(select(Route).where(Route.code == "R-1")).one())[0]
    for who in SEES_G1:
        rows = grids.get(who, "/outages", lat=meter.lat, lon=meter.lon).json()
        assert [r["job_id"] for r in rows] == [grids.job["id"]], who
    assert grids.get("sup2", "/outages", lat=meter.lat, lon=meter.lon).json() == []


def test_open_jobs_and_a_job_of_another_grid_are_hidden_from_a_supervisor(
    client: TestClient, session: Session, settings: Settings
) -> None:
    grids = TwoGrids(client, session, settings)
    for who in SEES_G1:
        assert [j["job_id"] for j in grids.get(who, "/jobs").json()] == [grids.job["id"]], who
        assert grids.get(who, f"/jobs/{grids.job['id']}").status_code == 200, who
    assert grids.get("sup2", "/jobs").json() == []
    other = grids.get("sup2", f"/jobs/{grids.job['id']}")
    assert (other.status_code, other.json()["code"]) == (403, "not_your_grid")
    for action, body in (("assign", {"crew": ["crew1"]}), ("cancel", {"note": "not mine"})):
        refused = client.post(
            f"/api/v1/jobs/{grids.job['id']}/{action}", headers=grids.h["sup2"], json=body
        )
        assert (refused.status_code, refused.json()["code"]) == (403, "not_your_grid"), action


def test_a_supervisor_cannot_enter_a_job_on_another_grids_account_or_route(
    client: TestClient, session: Session, settings: Settings
) -> None:
    grids = TwoGrids(client, session, settings)
    base = {"kind": "fault", "content": "no power"}
    for extra, code in (
        ({"accounts": ["R-1-A0001"]}, "unknown_account"),
        ({"route_code": "R-1"}, "unknown_route"),
    ):
        refused = client.post("/api/v1/jobs", headers=grids.h["sup2"], json=base | extra)
        assert (refused.status_code, refused.json()["code"]) == (422, code), extra
        # The same answer as for one that does not exist.
        assert "R-1" in refused.json()["detail"]
        for who in ("sup1", "agent1"):
            made = client.post("/api/v1/jobs", headers=grids.h[who], json=base | extra)
            assert made.status_code == 201, (who, extra, made.text)
    mine = client.post(
        "/api/v1/jobs", headers=grids.h["sup2"], json=base | {"accounts": ["R-2-A0000"]}
    )
    assert (mine.status_code, mine.json()["grid"]) == (201, "G2")


def test_the_audit_lists_show_a_supervisor_only_their_grid(
    client: TestClient, session: Session, settings: Settings
) -> None:
    make_user(session, settings, "reader1", "reader", "G1")
    make_user(session, settings, "reader2", "reader", "G2")
    TwoGrids(client, session, settings)
    a1, a2 = assign(session, "R-1", "reader1"), assign(session, "R-2", "reader2")
    h = {n: auth(client, n, f"desk-{n}-02") for n in ("sup1", "sup2", "admin1", "agent1")}

    def listed(who: str) -> list[int]:
        return [a["id"] for a in client.get("/api/v1/audit/assignments", headers=h[who]).json()]

    assert listed("sup1") == [a1.id]
    assert listed("sup2") == [a2.id]
    assert sorted(listed("admin1")) == sorted([a1.id, a2.id])
    agent = client.get("/api/v1/audit/assignments", headers=h["agent1"])
    assert (agent.status_code, agent.json()["code"]) == (403, "wrong_role")
    other = client.get(f"/api/v1/audit/assignments/{a1.id}", headers=h["sup2"])
    assert (other.status_code, other.json()["code"]) == (403, "not_your_grid")


# --- The development secret is served on loopback only -------------------------------------------


def _serve(database_url: str, host: str) -> Any:
    env = {
        "DATABASE_URL": database_url,
        "GRIDWALK_ENVIRONMENT": "development",
        "GRIDWALK_SECRET_KEY": None,  # not set: the development secret
    }
    return CliRunner().invoke(cli, ["serve", "--host", host], env=env)


def test_serve_refuses_the_development_secret_on_a_non_loopback_address(tmp_path: Path) -> None:
    for host in ("0.0.0.0", "::", "192.0.2.10", "gridwalk.example.org"):  # noqa: S104
        path = tmp_path / "never-made.db"
        result = _serve(f"sqlite:///{path}", host)
        assert result.exit_code != 0, (host, result.output)
        assert "GRIDWALK_SECRET_KEY" in result.output, host
        # Refused before anything was done: not even the database was created.
        assert not path.exists(), host


def test_the_development_secret_is_allowed_on_loopback_and_a_real_secret_anywhere() -> None:
    development = Settings(environment="development")
    assert development.secret_key == DEV_SECRET
    for host in ("127.0.0.1", "::1", "[::1]", "localhost", "127.0.0.2"):
        assert dev_secret_refusal(development, host) is None, host
    assert dev_secret_refusal(development, "0.0.0.0") is not None  # noqa: S104
    own = Settings(environment="development", secret_key="x" * 40)
    assert dev_secret_refusal(own, "0.0.0.0") is None  # noqa: S104
