"""How fast the supervisor's list of assignments opens for a grid's routes, against the raw
database.

A grid's routes: ROUTES routes of 300 meters, each an open assignment of its own reader who
walked it honestly yesterday (server.demo.days.honest_day: 300 readings, ~6,000 track points a
route). Rows are written in bulk (SQLite: executemany; PostgreSQL: COPY), not through the API.

Figures (through the app with TestClient, as the grid's supervisor): GET /audit/assignments
cold (the first call, every verdict computed) and warm (median of RUNS calls, the verdicts
cached, see server/audit/progress.py); the baseline in the same run on the same rows: the raw
GROUP BY any such list needs at least (readings per assignment) as plain SQL; the ratios.

Run: .venv/bin/python -m bench.audit_list [--routes N] [--pg URL]  SQLite in a temporary
file, then PostgreSQL when --pg or TEST_DATABASE_URL is given. The PostgreSQL database is
emptied first (its public schema dropped): give it a throw-away one, such as the tests'.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlmodel import Session

from bench.cycle_overview import bulk
from bench.database import bench_settings, fresh
from common import clock
from server.catalog import accounts
from server.core.config import Settings
from server.core.db import make_engine
from server.demo.days import honest_day
from server.main import create_app
from server.models import (
    Account,
    Assignment,
    Cycle,
    Device,
    Meter,
    Reading,
    Route,
    TrackPoint,
    User,
)
from server.validation.runner import window_tz

METERS_PER_ROUTE = 300
RUNS = 5
PASSWORD = "bench-password"  # noqa: S105 - a throw-away database
TZ = window_tz(Settings())
TODAY = clock.now().astimezone(TZ).date()
YESTERDAY = TODAY - timedelta(days=1)
START = datetime(YESTERDAY.year, YESTERDAY.month, YESTERDAY.day, 8, tzinfo=TZ)


class _Meter:
    def __init__(self, id: int, lat: float, lon: float, meter_no: str):
        self.id, self.lat, self.lon, self.meter_no = id, lat, lon, meter_no
        self.digits, self.last_reading, self.expected_low, self.expected_high = 6, None, None, None
        self.multiplier = Decimal(1)


def _t(value: str) -> datetime:
    return datetime.fromisoformat(value)


def generate(engine: Engine, settings: Settings, routes: int) -> dict[str, int]:
    now = clock.now().replace(microsecond=0)
    with Session(engine) as session:
        accounts.get_or_create_grid(session, code="GRID-01")
        accounts.create_user(
            session,
            settings,
            username="bench-sup",
            password=PASSWORD,
            role="supervisor",
            grid_code="GRID-01",
        )
        session.commit()
    counts: dict[str, int] = {}
    first_user = 1_000
    with engine.begin() as conn:
        grid_id = conn.execute(text("SELECT id FROM grids WHERE code = 'GRID-01'")).scalar_one()
        bulk(
            conn,
            User,
            (
                "id",
                "username",
                "full_name",
                "password_hash",
                "role",
                "grid_id",
                "active",
                "created_at",
            ),
            (
                (
                    first_user + r,
                    f"reader{r:03d}",
                    f"Reader {r:03d}",
                    "x",
                    "reader",
                    grid_id,
                    True,
                    now,
                )
                for r in range(routes)
            ),
        )
        bulk(
            conn,
            Device,
            ("id", "last_user_id", "first_seen_at", "last_seen_at", "token_generation"),
            ((f"dev-{r:03d}", first_user + r, now, now, 0) for r in range(routes)),
        )
        bulk(
            conn,
            Route,
            ("id", "code", "name", "grid_id", "created_at"),
            ((r + 1, f"R{r + 1:04d}", f"Route {r + 1}", grid_id, now) for r in range(routes)),
        )
        n = routes * METERS_PER_ROUTE
        bulk(
            conn,
            Account,
            ("id", "account_no", "customer_name", "address", "active", "created_at", "updated_at"),
            (
                (
                    i + 1,
                    f"A{i + 1:07d}",
                    f"Customer {i + 1}",
                    f"{i + 1} Long Street",
                    True,
                    now,
                    now,
                )
                for i in range(n)
            ),
        )
        meters = [
            _Meter(
                i + 1,
                30.27 + (i % METERS_PER_ROUTE) * 3e-4,
                120.15 + (i // METERS_PER_ROUTE) * 1e-2,
                f"M{i + 1:07d}",
            )
            for i in range(n)
        ]
        counts["meters"] = bulk(
            conn,
            Meter,
            (
                "id",
                "meter_no",
                "account_id",
                "route_id",
                "sequence",
                "lat",
                "lon",
                "digits",
                "multiplier",
                "change_seq",
                "updated_at",
            ),
            (
                (
                    m.id,
                    m.meter_no,
                    m.id,
                    (m.id - 1) // METERS_PER_ROUTE + 1,
                    (m.id - 1) % METERS_PER_ROUTE,
                    m.lat,
                    m.lon,
                    6,
                    Decimal(1),
                    0,
                    now,
                )
                for m in meters
            ),
        )
        bulk(conn, Cycle, ("id", "code", "created_at"), [(1, "BENCH-CYCLE", now)])
        counts["assignments"] = bulk(
            conn,
            Assignment,
            (
                "id",
                "route_id",
                "cycle_id",
                "reader_id",
                "window_start",
                "window_end",
                "status",
                "change_seq",
                "created_at",
            ),
            (
                (
                    r + 1,
                    r + 1,
                    1,
                    first_user + r,
                    YESTERDAY - timedelta(days=1),
                    TODAY + timedelta(days=2),
                    "open",
                    0,
                    now,
                )
                for r in range(routes)
            ),
        )
        readings: list[tuple[Any, ...]] = []
        points: list[tuple[Any, ...]] = []
        for r in range(routes):
            day = meters[r * METERS_PER_ROUTE : (r + 1) * METERS_PER_ROUTE]
            wire_readings, wire_track = honest_day(day, START, assignment_id=r + 1, seed=r)
            for w in wire_readings:
                fix = w["fix"]
                readings.append(
                    (
                        uuid.UUID(w["id"]),
                        r + 1,
                        w["meter_id"],
                        Decimal(w["value"]),
                        None,
                        _t(w["read_at"]),
                        _t(w["confirmed_at"]),
                        fix["lat"],
                        fix["lon"],
                        fix["accuracy_m"],
                        _t(fix["fix_time"]),
                        fix["provider"],
                        fix["mock"],
                        first_user + r,
                        f"dev-{r:03d}",
                        now,
                        "0" * 64,
                    )
                )
            points.extend(
                (
                    f"dev-{r:03d}",
                    first_user + r,
                    _t(p["t"]),
                    p["lat"],
                    p["lon"],
                    p["accuracy_m"],
                    p["provider"],
                    p["mock"],
                    now,
                )
                for p in wire_track
            )
        counts["readings"] = bulk(
            conn,
            Reading,
            (
                "id",
                "assignment_id",
                "meter_id",
                "value",
                "skip_code",
                "read_at",
                "confirmed_at",
                "fix_lat",
                "fix_lon",
                "fix_accuracy_m",
                "fix_time",
                "fix_provider",
                "fix_mock",
                "user_id",
                "device_id",
                "received_at",
                "content_hash",
            ),
            readings,
        )
        counts["track_points"] = bulk(
            conn,
            TrackPoint,
            (
                "device_id",
                "user_id",
                "t",
                "lat",
                "lon",
                "accuracy_m",
                "provider",
                "mock",
                "received_at",
            ),
            points,
        )
    return counts


def timed(call: Any) -> float:
    t0 = time.perf_counter()
    call()
    return time.perf_counter() - t0


def run(url: str, label: str, routes: int) -> None:
    fresh(url)
    settings = bench_settings(url)
    engine = make_engine(url)
    t0 = time.perf_counter()
    counts = generate(engine, settings, routes)
    print(f"[{label}] generated {counts} in {time.perf_counter() - t0:.1f} s")
    with TestClient(create_app(settings, engine)) as client:
        login = client.post(
            "/api/v1/auth/login",
            json={"username": "bench-sup", "password": PASSWORD, "device_id": "bench-supervisor"},
        )
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}

        def listing() -> None:
            answer = client.get("/api/v1/audit/assignments", headers=headers)
            assert answer.status_code == 200, answer.text
            assert len(answer.json()) == routes

        cold = timed(listing)
        warm = statistics.median(timed(listing) for _ in range(RUNS))

        def raw() -> None:
            with engine.connect() as conn:
                conn.execute(
                    text(
                        "SELECT assignment_id, count(value), count(skip_code), count(*) "
                        "FROM readings GROUP BY assignment_id"
                    )
                ).all()

        baseline = statistics.median(timed(raw) for _ in range(RUNS))
    print(
        f"[{label}] GET /audit/assignments, {routes} routes: cold {cold:.3f} s, "
        f"warm {warm:.3f} s; raw GROUP BY {baseline:.4f} s; "
        f"ratio cold {cold / baseline:.0f}x, warm {warm / baseline:.0f}x"
    )
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--routes", type=int, default=100)
    parser.add_argument("--pg", default=os.environ.get("TEST_DATABASE_URL"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run(f"sqlite:///{tmp}/bench.db", "sqlite", args.routes)
    if args.pg:
        run(args.pg, "postgresql", args.routes)


if __name__ == "__main__":
    main()
