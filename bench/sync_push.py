"""How fast the server stores a reader-day, and how small it is on a slow link.

A reader-day: 300 readings and 6,000 track points (a point every 5 s for 8 h). Figures:
- the whole day in one push, against the baseline of the same day in pushes of 50 items
  (what a device on a flaky link sends), measured in the same run on the same database;
- the gzip body against the plain JSON body, and what that means at 40 kbit/s (GPRS).

Run: .venv/bin/python -m bench.sync_push [--database-url URL]  (default: a temporary SQLite)
"""

from __future__ import annotations

import argparse
import gzip
import json
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from common import clock
from common.rules.facts import CHINA_STANDARD_TIME
from server.catalog import accounts, assignments
from server.core import migrate
from server.core.config import Settings
from server.core.db import make_engine
from server.main import create_app
from server.models import Account, Meter, Route

N_METERS = 300
PASSWORD = "bench-password"  # noqa: S105 - a throw-away database
N_POINTS = 6_000
SMALL_BATCH = 50
LINK_BITS_PER_S = 40_000
# Dated from the clock: a window open around today, yesterday's walk (a closed window would make
# every push re-flag the whole route as missed, and measure that instead).
TODAY = clock.now().astimezone(CHINA_STANDARD_TIME).date()


def build_day(session: Session, settings: Settings, route_code: str, reader: str) -> int:
    grid = accounts.get_or_create_grid(session, code="B1")
    accounts.create_user(
        session, settings, username=reader, password=PASSWORD, role="reader", grid_code="B1"
    )
    route = Route(code=route_code, name=route_code, grid_id=grid.id)
    session.add(route)
    session.flush()
    for i in range(N_METERS):
        account = Account(
            account_no=f"{route_code}-{i}",
            customer_name=f"Customer {i}",
            address=f"{i} Long Street",
        )
        session.add(account)
        session.flush()
        session.add(
            Meter(
                meter_no=f"{route_code}-M{i}",
                account_id=account.id,
                route_id=route.id,
                sequence=i,
                lat=30.27 + i * 3e-4,
                lon=120.15,
            )
        )
    assignment = assignments.assign_route(
        session,
        route_code=route_code,
        reader=reader,
        cycle="B-1",
        window_start=TODAY - timedelta(days=5),
        window_end=TODAY + timedelta(days=5),
    )
    session.commit()
    assert assignment.id is not None
    return assignment.id


def day_items(session: Session, assignment_id: int, route_code: str) -> dict[str, list[Any]]:
    meters = session.exec(select(Meter).join(Route).where(Route.code == route_code)).all()
    yesterday = TODAY - timedelta(days=1)
    start = datetime(yesterday.year, yesterday.month, yesterday.day, 8, tzinfo=CHINA_STANDARD_TIME)
    readings = [
        {
            "id": str(uuid.uuid4()),
            "assignment_id": assignment_id,
            "meter_id": m.id,
            "value": f"{1000 + i}.5",
            "read_at": (start + timedelta(seconds=90 * i)).isoformat(),
            "confirmed_at": (start + timedelta(seconds=90 * i + 15)).isoformat(),
            "fix": {
                "lat": m.lat,
                "lon": m.lon,
                "accuracy_m": 5.0,
                "fix_time": (start + timedelta(seconds=90 * i - 2)).isoformat(),
                "provider": "gps",
                "mock": False,
            },
            "reread_of": None,
        }
        for i, m in enumerate(meters)
    ]
    points = [
        {
            "t": (start + timedelta(seconds=5 * i)).isoformat(),
            "lat": round(30.27 + i * 1.5e-5, 6),
            "lon": 120.15,
            "accuracy_m": 5.0,
        }
        for i in range(N_POINTS)
    ]
    return {"readings": readings, "track_points": points}


def timed_push(client: TestClient, headers: dict[str, str], body: dict[str, Any]) -> float:
    raw = gzip.compress(json.dumps(body).encode())
    t0 = time.perf_counter()
    response = client.post(
        "/api/v1/sync/push", content=raw, headers=headers | {"Content-Encoding": "gzip"}
    )
    elapsed = time.perf_counter() - t0
    assert response.status_code == 200, response.text
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.db"
        migrate.upgrade(url)
        settings = Settings(
            environment="test", database_url=url, password_time_cost=1, password_memory_kib=1024
        )
        engine = make_engine(url)
        tag = uuid.uuid4().hex[:6]
        with Session(engine) as session:
            one = build_day(session, settings, f"BIG-{tag}", f"big-{tag}")
            many = build_day(session, settings, f"SMALL-{tag}", f"small-{tag}")
            big_day = day_items(session, one, f"BIG-{tag}")
            small_day = day_items(session, many, f"SMALL-{tag}")
        with TestClient(create_app(settings, engine)) as client:

            def login(user: str) -> dict[str, str]:
                token = client.post(
                    "/api/v1/auth/login",
                    json={
                        "username": user,
                        "password": PASSWORD,
                        "device_id": f"bench-{user}",
                    },
                ).json()["access_token"]
                return {"Authorization": f"Bearer {token}"}

            whole = timed_push(client, login(f"big-{tag}"), big_day)
            baseline = 0.0
            small_headers = login(f"small-{tag}")
            for key in ("readings", "track_points"):
                items = small_day[key]
                for i in range(0, len(items), SMALL_BATCH):
                    baseline += timed_push(client, small_headers, {key: items[i : i + SMALL_BATCH]})
            again = timed_push(client, login(f"big-{tag}"), big_day)
        engine.dispose()

    plain = len(json.dumps(big_day).encode())
    packed = len(gzip.compress(json.dumps(big_day).encode()))
    backend = url.split(":", 1)[0]
    print(f"database: {backend}; a reader-day = {N_METERS} readings + {N_POINTS} track points")
    print(f"one push of the day:            {whole * 1000:8.0f} ms")
    print(f"baseline, pushes of {SMALL_BATCH}:        {baseline * 1000:8.0f} ms")
    print(f"  ratio one push / baseline:    {whole / baseline:8.2f}")
    print(
        f"the same day again (duplicates):{again * 1000:8.0f} ms "
        f"(ratio to first push {again / whole:.2f})"
    )
    print(
        f"body: {plain / 1024:.0f} KiB JSON, {packed / 1024:.0f} KiB gzip "
        f"(ratio {packed / plain:.2f}); at 40 kbit/s: {plain * 8 / LINK_BITS_PER_S:.0f} s "
        f"plain, {packed * 8 / LINK_BITS_PER_S:.0f} s gzip"
    )


if __name__ == "__main__":
    main()
