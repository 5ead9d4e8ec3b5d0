"""Two `gridwalk serve` processes on one database (SQLite's file, PostgreSQL): the same outbox
pushed through both at once is stored once, every item answered, no 500, and the validation
queue both servers' workers drain is emptied, its findings flagged.

Real processes, so the clock is the machine's (`real_clock`); nothing here waits a fixed time to
decide an outcome: the servers are polled until they answer, the queue until it is empty."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, func, select
from sqlmodel import Session

from server.core import partitions
from server.core.config import Settings
from server.core.partitions import Month, add_months, month_start
from server.models import Assignment, Flag, Meter, Reading, TrackPoint, ValidationWork
from tests.factories import (
    NOW,
    PASSWORD,
    READ_AT,
    assign,
    make_route,
    make_user,
    meters_of,
    reading,
    track_point,
)

pytestmark = pytest.mark.real_clock
ROOT = Path(__file__).resolve().parents[2]
GRIDWALK = Path(sys.executable).with_name("gridwalk")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Route:
    assignment: Assignment
    meters: list[Meter]


@pytest.fixture
def route(session: Session, settings: Settings) -> Route:
    """A reader's route of 12 meters, made before the servers start: on SQLite a write of the
    test's own while servers poll the file could meet their lock."""
    make_user(session, settings, "reader1", "reader", grid_code="G1")
    made = make_route(session, "R-1", 12)
    assignment = assign(session, "R-1", "reader1")
    return Route(assignment, meters_of(session, made))


@pytest.fixture(params=["two servers", "one server, two processes"])
def two_servers(
    request: pytest.FixtureRequest, route: Route, db_url: str, tmp_path: Path
) -> Iterator[list[str]]:
    """Two server processes, a validation worker each, on the test's database: two `gridwalk
    serve` on two ports, or one `gridwalk serve --workers 2` (uvicorn's processes sharing one
    port; which of them takes a connection is the kernel's choice, so the two-port case is the
    one sure to push through both at once). The addresses to push the outbox to, twice."""
    env = os.environ | {
        "GRIDWALK_DATABASE_URL": db_url,
        "GRIDWALK_ENVIRONMENT": "development",
        "GRIDWALK_PASSWORD_TIME_COST": "1",
        "GRIDWALK_PASSWORD_MEMORY_KIB": "1024",
        "GRIDWALK_CLOSE_DUE_EVERY_MINUTES": "0",
        "GRIDWALK_VALIDATION_WORKERS": "1",
    }
    commands = (
        [["--port", str(free_port())] for _ in range(2)]
        if request.param == "two servers"
        else [["--port", str(free_port()), "--workers", "2"]]
    )
    procs, urls = [], []
    for index, args in enumerate(commands):
        with (tmp_path / f"server-{index}.log").open("wb") as log:
            procs.append(
                subprocess.Popen(
                    [str(GRIDWALK), "serve", *args],
                    env=env,
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        urls.append(f"http://127.0.0.1:{args[1]}")
    try:
        deadline = time.monotonic() + 60
        for proc, url in zip(procs, urls, strict=True):
            while True:
                if proc.poll() is not None:
                    logs = "\n".join(p.read_text() for p in tmp_path.glob("server-*.log"))
                    raise RuntimeError(f"a server exited: {logs}")
                try:
                    if httpx.get(f"{url}/openapi.json", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{url} did not start")
                time.sleep(0.1)
        # Every process up (uvicorn's second one may come after the first answers).
        while started(tmp_path) < 2:
            if time.monotonic() > deadline:
                raise RuntimeError("the server processes did not all start")
            time.sleep(0.1)
        if len(procs) == 1 and db_url.startswith("sqlite"):
            # Several processes on SQLite's one writer push slower than one: serve says so
            # (in the machine's language; both name the option and PostgreSQL).
            said = (tmp_path / "server-0.log").read_text()
            assert "--workers" in said, said
            assert "PostgreSQL" in said, said
        yield urls if len(urls) == 2 else urls * 2
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


def started(logs: Path) -> int:
    """How many server processes say their app started, in the logs under `logs`."""
    return sum(
        log.read_text().count("Application startup complete") for log in logs.glob("server-*.log")
    )


def count(engine: Engine, model: type) -> int:
    with engine.connect() as conn:
        n: int = conn.execute(select(func.count()).select_from(model)).scalar_one()
        return n


def test_one_outbox_pushed_through_two_servers_at_once_is_stored_once(
    two_servers: list[str], route: Route, engine: Engine, tmp_path: Path
) -> None:
    if engine.dialect.name == "postgresql":
        # Both servers made the months ahead at start, taking turns (an advisory lock).
        with engine.connect() as conn:
            made = partitions.months(conn)
        assert [Month(add_months(month_start(NOW), n)) for n in range(4)] == made[-4:]
    assignment, meters = route.assignment, route.meters
    login = httpx.post(
        f"{two_servers[0]}/api/v1/auth/login",
        json={"username": "reader1", "password": PASSWORD, "device_id": "device-0001"},
    )
    assert login.status_code == 200, login.text
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    # A reader-day's outbox in three batches; one meter read far out of its expected range,
    # so validation has a finding to flag.
    readings = [
        reading(
            assignment.id,
            m,
            value="9999.5" if i == 0 else f"{1100 + i}.5",
            at=READ_AT + timedelta(minutes=3 * i),
        )
        for i, m in enumerate(meters)
    ]
    track = [track_point(READ_AT + timedelta(seconds=5 * i)) for i in range(600)]
    batches = [
        {"readings": readings[k * 4 : k * 4 + 4], "track_points": track[k * 200 : k * 200 + 200]}
        for k in range(3)
    ]

    def push(url: str, body: dict) -> httpx.Response:
        return httpx.post(f"{url}/api/v1/sync/push", headers=headers, json=body, timeout=60)

    with ThreadPoolExecutor(max_workers=2) as pool:
        answered = [list(pool.map(push, two_servers, [body, body])) for body in batches]

    for pair in answered:
        assert [r.status_code for r in pair] == [200, 200], [r.text for r in pair]
    for body, pair in zip(batches, answered, strict=True):
        statuses = [[item["status"] for item in r.json()["results"]] for r in pair]
        # Each reading accepted by exactly one of the two, the other saying it holds it.
        for first, second in zip(*statuses, strict=True):
            assert sorted([first, second]) == ["accepted", "duplicate"]
        tracks = [r.json()["track"] for r in pair]
        assert sum(t["accepted"] for t in tracks) == len(body["track_points"])
        assert all(t["accepted"] + t["duplicate"] == len(body["track_points"]) for t in tracks)

    assert count(engine, Reading) == len(readings)
    assert count(engine, TrackPoint) == len(track)
    # Both servers' workers drain the one queue: polled until empty.
    deadline = time.monotonic() + 60
    while count(engine, ValidationWork):
        assert time.monotonic() < deadline, "the validation queue was not drained"
        time.sleep(0.1)
    with engine.connect() as conn:
        keys = [
            key
            for (key,) in conn.execute(
                select(Flag.key).where(Flag.assignment_id == assignment.id)  # type: ignore[arg-type]
            )
        ]
    # The out-of-range reading is flagged (a finding is one row: uq_flags_assignment_key).
    assert f"high_consumption|{readings[0]['id']}|{meters[0].id}|" in keys, keys
    # No worker failed a validation (two validating one assignment at once would collide on
    # that key) and no request failed, in either server's log.
    logs = [log.read_text() for log in sorted(tmp_path.glob("server-*.log"))]
    assert started(tmp_path) == 2, logs
    for log in logs:
        assert "Traceback" not in log, log
        assert '" 500' not in log, log
        assert '/api/v1/sync/push HTTP/1.1" 200' in log, log
