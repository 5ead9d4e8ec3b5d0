"""Push time against the number of open route-days: validation is off the push path.

A reader with 4 open route-days (4 routes, windows round today, each with a day of readings
already validated) and a reader with 1 each push 2,000 track points from yesterday morning;
the points fall within every open window, so each push queues every open assignment of its
reader for validation. Figures, in one run on one database:
- the push with the queue (it stores, queues, answers): median of several pushes, 4 days and
  1 day, and their ratio (the target: at most 1.5);
- the same push validating before it answers (`validation_in_request`, what the push did when
  it validated inside its transaction): 4 days and 1 day, and their ratio;
- the drain that follows a queued push (the validation the workers do right after), 4 and 1.

Run: .venv/bin/python -m bench.push_open_days [--database-url URL]  (default: a temporary SQLite)
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from common import clock
from common.rules.facts import CHINA_STANDARD_TIME
from server.catalog import accounts, assignments
from server.core import migrate
from server.core.config import Settings
from server.core.db import make_engine
from server.main import create_app
from server.models import Account, Meter, Route
from server.validation import queue

N_METERS = 100  # per route-day, each read
N_POINTS = 2_000  # per measured push
RUNS = 5
PASSWORD = "bench-password"  # noqa: S105 - a throw-away database
TODAY = clock.now().astimezone(CHINA_STANDARD_TIME).date()
YESTERDAY = TODAY - timedelta(days=1)
START = datetime(YESTERDAY.year, YESTERDAY.month, YESTERDAY.day, 8, tzinfo=CHINA_STANDARD_TIME)


def build_reader(session: Session, settings: Settings, reader: str, days: int) -> list[int]:
    """`reader` with `days` open route-days (one route each), windows round today."""
    grid = accounts.get_or_create_grid(session, code="B1")
    accounts.create_user(
        session, settings, username=reader, password=PASSWORD, role="reader", grid_code="B1"
    )
    ids = []
    for d in range(days):
        code = f"{reader}-R{d}"
        route = Route(code=code, name=code, grid_id=grid.id)
        session.add(route)
        session.flush()
        for i in range(N_METERS):
            account = Account(account_no=f"{code}-{i}", customer_name=f"C{i}", address=f"{i} St")
            session.add(account)
            session.flush()
            session.add(
                Meter(
                    meter_no=f"{code}-M{i}",
                    account_id=account.id,
                    route_id=route.id,
                    sequence=i,
                    lat=30.27 + i * 3e-4,
                    lon=120.15 + d * 0.01,
                )
            )
        assignment = assignments.assign_route(
            session,
            route_code=code,
            reader=reader,
            cycle=f"B-{reader}",
            window_start=TODAY - timedelta(days=5),
            window_end=TODAY + timedelta(days=5),
        )
        assert assignment.id is not None
        ids.append(assignment.id)
    session.commit()
    return ids


def readings_of(session: Session, assignment_id: int, code: str) -> list[dict[str, Any]]:
    meters = session.exec(
        select(Meter).join(Route).where(Route.code == code).order_by(Meter.sequence)
    ).all()
    return [
        {
            "id": str(uuid.uuid4()),
            "assignment_id": assignment_id,
            "meter_id": m.id,
            "value": f"{1000 + i}.5",
            "read_at": (START + timedelta(seconds=90 * i)).isoformat(),
            "confirmed_at": (START + timedelta(seconds=90 * i + 15)).isoformat(),
            "fix": {
                "lat": m.lat,
                "lon": m.lon,
                "accuracy_m": 5.0,
                "fix_time": (START + timedelta(seconds=90 * i - 2)).isoformat(),
                "provider": "gps",
                "mock": False,
            },
            "reread_of": None,
        }
        for i, m in enumerate(meters)
    ]


def points(run: int) -> list[dict[str, Any]]:
    """2,000 points a second apart, each run's at its own times, all yesterday morning."""
    first = START + timedelta(seconds=N_POINTS * run)
    return [
        {
            "t": (first + timedelta(seconds=i)).isoformat(),
            "lat": round(30.27 + i * 1.5e-5, 6),
            "lon": 120.15,
            "accuracy_m": 5.0,
        }
        for i in range(N_POINTS)
    ]


def post(client: TestClient, headers: dict[str, str], body: dict[str, Any]) -> float:
    raw = gzip.compress(json.dumps(body).encode())
    t0 = time.perf_counter()
    response = client.post(
        "/api/v1/sync/push", content=raw, headers=headers | {"Content-Encoding": "gzip"}
    )
    elapsed = time.perf_counter() - t0
    assert response.status_code == 200, response.text
    return elapsed


def timed(run: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    run()
    return time.perf_counter() - t0


def measure(url: str) -> dict[str, float]:
    migrate.upgrade(url)
    base = Settings(
        environment="test",
        database_url=url,
        password_time_cost=1,
        password_memory_kib=1024,
        close_due_every_minutes=0,
        validation_workers=0,  # the bench drains, and times it
    )
    inline = base.model_copy(update={"validation_in_request": True})
    engine: Engine = make_engine(url)
    tag = uuid.uuid4().hex[:6]
    readers = {1: f"one-{tag}", 4: f"four-{tag}"}
    with Session(engine) as session:
        days = {n: build_reader(session, base, reader, n) for n, reader in readers.items()}
        day_readings = {
            n: [readings_of(session, aid, f"{readers[n]}-R{d}") for d, aid in enumerate(days[n])]
            for n in readers
        }
    out: dict[str, float] = {}
    with TestClient(create_app(base, engine)) as client:
        headers = {}
        for n, reader in readers.items():
            token = client.post(
                "/api/v1/auth/login",
                json={"username": reader, "password": PASSWORD, "device_id": f"bench-{reader}"},
            ).json()["access_token"]
            headers[n] = {"Authorization": f"Bearer {token}"}
            for items in day_readings[n]:
                post(client, headers[n], {"readings": items})
        queue.drain(engine, base)  # every route-day validated once before the measures

        run = 0
        for n in readers:
            pushes, drains = [], []
            for _ in range(RUNS):
                run += 1
                pushes.append(post(client, headers[n], {"track_points": points(run)}))
                drains.append(timed(lambda: queue.drain(engine, base)))
            out[f"queued {n}"] = statistics.median(pushes)
            out[f"drain {n}"] = statistics.median(drains)
    with TestClient(create_app(inline, engine)) as client:
        for n in readers:
            out[f"inline {n}"] = statistics.median(
                post(client, headers[n], {"track_points": points(run := run + 1)})
                for _ in range(RUNS)
            )
    engine.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.db"
        f = measure(url)
    print(
        f"database: {url.split(':', 1)[0]}; a push of {N_POINTS:,} track points, "
        f"open route-days of {N_METERS} readings each, median of {RUNS}"
    )

    def line(label: str, seconds: float) -> None:
        print(f"{label:<46}{seconds * 1000:9.0f} ms")

    line("push, validation queued, 1 open route-day", f["queued 1"])
    line("push, validation queued, 4 open route-days", f["queued 4"])
    print(f"{'  ratio 4 days / 1 day (target <= 1.5)':<46}{f['queued 4'] / f['queued 1']:9.2f}")
    line("baseline: push validating first, 1 route-day", f["inline 1"])
    line("baseline: push validating first, 4 route-days", f["inline 4"])
    print(f"{'  ratio 4 days / 1 day':<46}{f['inline 4'] / f['inline 1']:9.2f}")
    line("the drain after a push, 1 route-day", f["drain 1"])
    line("the drain after a push, 4 route-days", f["drain 4"])


if __name__ == "__main__":
    main()
