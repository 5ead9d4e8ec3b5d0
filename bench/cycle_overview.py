"""How fast the whole-cycle overview opens on a full-size cycle, against the raw database.

A utility's cycle: 300,000 meters on 1,000 routes of 300 in 10 grids, read by 300 readers; 90%
of the meters read, 3% skipped, the rest unread; 2% of the readings flagged (some reviewed).
Its rows are written in bulk (bench/cycle_rows.py), not through the API.

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
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from bench.cycle_rows import CODE, PASSWORD, CycleShape, generate
from bench.database import bench_settings, fresh
from server.core.db import make_engine
from server.main import create_app

N_GRIDS = 10
N_ROUTES = 1_000
METERS_PER_ROUTE = 300
N_READERS = 300
SHAPE = CycleShape(
    routes=N_ROUTES,
    readers=N_READERS,
    grids=N_GRIDS,
    meters_per_route=METERS_PER_ROUTE,
    read_share=0.90,
    skip_share=0.03,
    flag_share=0.02,
)
RUNS = 5


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
    counts = generate(engine, settings, SHAPE)
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

        whole: Any = get(admin, f"/cycles/{CODE}")()
        assert whole["total"] == N_ROUTES, whole["total"]
        assert whole["totals"]["meters"] == counts["meters"]
        assert whole["totals"]["read"] + whole["totals"]["skipped"] == counts["readings"]
        assert len(whole["readers"]) == N_READERS
        grid: Any = get(sup, f"/cycles/{CODE}")()
        assert grid["total"] == N_ROUTES // N_GRIDS, grid["total"]
        cases = [
            ("admin, whole utility: 100 routes + 300 readers", get(admin, f"/cycles/{CODE}")),
            (
                "admin, sorted by unread, descending",
                get(admin, f"/cycles/{CODE}", sort="unread", order="desc"),
            ),
            ("admin, routes in progress", get(admin, f"/cycles/{CODE}", status="in_progress")),
            ("supervisor, one grid (100 routes)", get(sup, f"/cycles/{CODE}")),
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
