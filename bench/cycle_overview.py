"""How fast the whole-cycle overview opens on a full-size cycle, against the raw database.

A utility's cycle: 300,000 meters on 1,000 routes of 300 in 10 grids, read by 300 readers; 90%
of the meters read, 3% skipped, the rest unread; 2% of the readings flagged (some reviewed).
It is generated with bulk inserts (SQLite: executemany; PostgreSQL: COPY), not the ORM.

Figures (median of RUNS calls, through the app with TestClient, as an admin and as a grid's
supervisor): GET /audit/cycles/{cycle} (first page of 100 routes and every reader) sorted by
route and by unread, filtered by status; GET /audit/cycles; GET /audit/readers/flags. The
baseline, in the same run on the same rows: the two GROUP BY scans any such answer needs at
least (meters per route, readings per assignment), run as plain SQL; the ratio of each figure
to it.

Run: .venv/bin/python -m bench.cycle_overview [--pg URL]  SQLite in a temporary file, then
PostgreSQL when --pg or TEST_DATABASE_URL is given. The PostgreSQL database is emptied first
(its public schema dropped): give it a throw-away one, such as the tests'.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, Table, text
from sqlmodel import Session

from bench.database import bench_settings, fresh
from common import clock
from server.catalog import accounts
from server.core.config import Settings
from server.core.db import make_engine
from server.main import create_app
from server.models import (
    Account,
    Assignment,
    Cycle,
    Device,
    Flag,
    Meter,
    Reading,
    Route,
    User,
)
from server.validation.runner import window_tz

N_GRIDS = 10
N_ROUTES = 1_000
METERS_PER_ROUTE = 300
N_READERS = 300
READ_SHARE, SKIP_SHARE, FLAG_SHARE = 0.90, 0.03, 0.02
RUNS = 5
CYCLE = "BENCH-CYCLE"
PASSWORD = "bench-password"  # noqa: S105 - a throw-away database
TZ = window_tz(Settings())
TODAY = clock.now().astimezone(TZ).date()
CHUNK = 20_000


def table(model: Any) -> Table:
    found: Table = model.__table__
    return found


def bulk(
    conn: Connection, model: Any, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
) -> int:
    """Insert `rows` (tuples in `columns`' order): COPY on PostgreSQL, executemany elsewhere."""
    count = 0
    if conn.dialect.name == "postgresql":
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        names = ", ".join(columns)
        with cursor.copy(f"COPY {table(model).name} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
                count += 1
        return count
    insert = table(model).insert()
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(dict(zip(columns, row, strict=True)))
        if len(batch) == CHUNK:
            conn.execute(insert, batch)
            count += len(batch)
            batch = []
    if batch:
        conn.execute(insert, batch)
        count += len(batch)
    return count


def generate(engine: Engine, settings: Settings) -> dict[str, int]:
    """The full-size cycle; gives the rows of each table."""
    rng = random.Random(12)
    now = clock.now().replace(microsecond=0)
    start, end = TODAY - timedelta(days=2), TODAY + timedelta(days=2)
    with Session(engine) as session:
        for g in range(N_GRIDS):
            accounts.get_or_create_grid(session, code=f"GRID-{g + 1:02d}")
        accounts.create_user(
            session, settings, username="bench-admin", password=PASSWORD, role="admin"
        )
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
    with engine.begin() as conn:
        grid_ids = [row.id for row in conn.execute(text("SELECT id FROM grids ORDER BY code"))]
        first_user = 1_000
        password_hash = "not-a-login"  # noqa: S105 - readers never sign in here
        counts["users"] = bulk(
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
                    first_user + i,
                    f"reader{i:03d}",
                    f"Reader {i:03d}",
                    password_hash,
                    "reader",
                    grid_ids[i * N_GRIDS // N_READERS],
                    True,
                    now,
                )
                for i in range(N_READERS)
            ),
        )
        bulk(
            conn,
            Device,
            ("id", "last_user_id", "first_seen_at", "last_seen_at", "token_generation"),
            ((f"dev-{i:03d}", first_user + i, now, now, 0) for i in range(N_READERS)),
        )
        counts["routes"] = bulk(
            conn,
            Route,
            ("id", "code", "name", "grid_id", "created_at"),
            (
                (r + 1, f"R{r + 1:04d}", f"Route {r + 1}", grid_ids[r * N_GRIDS // N_ROUTES], now)
                for r in range(N_ROUTES)
            ),
        )
        n_meters = N_ROUTES * METERS_PER_ROUTE
        counts["accounts"] = bulk(
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
                for i in range(n_meters)
            ),
        )
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
                    i + 1,
                    f"M{i + 1:07d}",
                    i + 1,
                    i // METERS_PER_ROUTE + 1,
                    i % METERS_PER_ROUTE,
                    30.27 + (i % METERS_PER_ROUTE) * 3e-4,
                    120.15 + (i // METERS_PER_ROUTE) * 1e-3,
                    6,
                    Decimal(1),
                    0,
                    now,
                )
                for i in range(n_meters)
            ),
        )
        bulk(conn, Cycle, ("id", "code", "created_at"), [(1, CYCLE, now)])
        reader_of = [(r % N_READERS) for r in range(N_ROUTES)]
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
                (r + 1, r + 1, 1, first_user + reader_of[r], start, end, "open", 0, now)
                for r in range(N_ROUTES)
            ),
        )
        read_at = now - timedelta(hours=3)
        readings: list[tuple[Any, ...]] = []
        for i in range(n_meters):
            draw = rng.random()
            if draw >= READ_SHARE + SKIP_SHARE:
                continue
            route = i // METERS_PER_ROUTE
            reader = reader_of[route]
            skipped = draw >= READ_SHARE
            readings.append(
                (
                    uuid.uuid4(),
                    route + 1,
                    i + 1,
                    None if skipped else Decimal(1000 + i % 500),
                    "no_access" if skipped else None,
                    read_at,
                    read_at,
                    first_user + reader,
                    f"dev-{reader:03d}",
                    now,
                    "0" * 64,
                )
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
                "user_id",
                "device_id",
                "received_at",
                "content_hash",
            ),
            readings,
        )
        flagged = rng.sample(readings, int(len(readings) * FLAG_SHARE))
        counts["flags"] = bulk(
            conn,
            Flag,
            (
                "assignment_id",
                "reading_id",
                "meter_id",
                "key",
                "code",
                "severity",
                "message",
                "review",
                "created_at",
            ),
            (
                (
                    row[1],
                    row[0],
                    row[2],
                    f"far_from_meter:{row[0]}",
                    "far_from_meter",
                    "fail" if k % 3 == 0 else "warn",
                    "far from the meter",
                    ("accepted", "rejected", None, None)[k % 4],
                    now,
                )
                for k, row in enumerate(flagged)
            ),
        )
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
            # Ids were given: the sequences must start after them for later inserts.
            for name in ("users", "routes", "accounts", "meters", "cycles", "assignments"):
                setval = (
                    f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "  # noqa: S608 - our names
                    f"(SELECT max(id) FROM {name}))"
                )
                conn.execute(text(setval))
    return counts


def median_s(run: Callable[[], object], runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def raw_baseline(engine: Engine) -> float:
    def scans() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT route_id, count(*) FROM meters GROUP BY route_id")).all()
            conn.execute(
                text("SELECT assignment_id, count(*) FROM readings GROUP BY assignment_id")
            ).all()

    return median_s(scans)


def run_backend(url: str) -> None:
    fresh(url)
    settings = bench_settings(url)
    engine = make_engine(url)
    t0 = time.perf_counter()
    counts = generate(engine, settings)
    generated = time.perf_counter() - t0
    backend = url.split(":", 1)[0].split("+", 1)[0]
    print(
        f"\n{backend}: generated in {generated:.1f} s: "
        + ", ".join(f"{n:,} {name}" for name, n in counts.items())
    )
    baseline = raw_baseline(engine)

    def line(label: str, seconds: float) -> None:
        print(f"  {label:<58}{seconds * 1000:8.0f} ms  {seconds / baseline:6.1f}x raw")

    print(
        f"  {'raw: meters per route + readings per assignment (GROUP BY)':<58}"
        f"{baseline * 1000:8.0f} ms"
    )
    with TestClient(create_app(settings, engine)) as client:

        def login(username: str) -> dict[str, str]:
            response = client.post(
                "/api/v1/auth/login",
                json={"username": username, "password": PASSWORD, "device_id": f"b-{username}"},
            )
            assert response.status_code == 200, response.text
            return {"Authorization": f"Bearer {response.json()['access_token']}"}

        admin, sup = login("bench-admin"), login("bench-sup")

        def get(headers: dict[str, str], path: str, **params: Any) -> Callable[[], object]:
            def call() -> object:
                response = client.get(f"/api/v1/audit{path}", headers=headers, params=params)
                assert response.status_code == 200, response.text
                return response.json()

            return call

        whole: Any = get(admin, f"/cycles/{CYCLE}")()
        assert whole["total"] == N_ROUTES, whole["total"]
        assert whole["totals"]["meters"] == counts["meters"]
        assert whole["totals"]["read"] + whole["totals"]["skipped"] == counts["readings"]
        assert len(whole["readers"]) == N_READERS
        grid: Any = get(sup, f"/cycles/{CYCLE}")()
        assert grid["total"] == N_ROUTES // N_GRIDS, grid["total"]
        cases = [
            ("admin, whole utility: 100 routes + 300 readers", get(admin, f"/cycles/{CYCLE}")),
            (
                "admin, sorted by unread, descending",
                get(admin, f"/cycles/{CYCLE}", sort="unread", order="desc"),
            ),
            ("admin, routes in progress", get(admin, f"/cycles/{CYCLE}", status="in_progress")),
            ("supervisor, one grid (100 routes)", get(sup, f"/cycles/{CYCLE}")),
            ("admin, GET /audit/cycles", get(admin, "/cycles")),
            ("admin, GET /audit/readers/flags?cycles=3", get(admin, "/readers/flags", cycles=3)),
        ]
        for label, call in cases:
            line(label, median_s(call))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pg", help="a throw-away PostgreSQL database (emptied first)")
    args = parser.parse_args()
    print(
        f"a cycle of {N_ROUTES * METERS_PER_ROUTE:,} meters on {N_ROUTES:,} routes, "
        f"{N_READERS} readers, {N_GRIDS} grids; median of {RUNS} calls"
    )
    with tempfile.TemporaryDirectory() as tmp:
        run_backend(f"sqlite:///{tmp}/bench.db")
    pg = args.pg or os.environ.get("TEST_DATABASE_URL")
    if pg:
        run_backend(pg)


if __name__ == "__main__":
    main()
