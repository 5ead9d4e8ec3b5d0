"""How fast the supervisor's list of assignments opens, cold and warm, against the raw database.

A grid's routes: ROUTES routes of 300 meters (--routes; 1000 is a whole utility's cycle), each
an open assignment of its own reader who walked it honestly yesterday (bench/cycle_rows.py:
300 readings with fixes, ~5,300 track points a route), written in bulk, not through the API.
Each assignment is then validated by the runner (server/validation/runner.py: its flags and,
with them, its verdict, which the list reads; timed).

Figures (through the app with TestClient, as the grid's supervisor): the first page (PAGE
assignments) of GET /audit/assignments cold (its first call in a new process, as after a
restart or in another worker process: nothing is cached anywhere but in the database; after
that process's first request, GET /healthz, whose one-off cost is shown apart) and warm
(median of RUNS calls), and the last page warm; the baseline in the same run on the same rows:
the raw GROUP BY any such list needs at least (readings per assignment) as plain SQL; the
ratios.

Run: .venv/bin/python -m bench.audit_list [--routes N] [--pg URL] [--skip-sqlite]  SQLite in a
temporary file, then PostgreSQL when --pg or TEST_DATABASE_URL is given. The PostgreSQL database is
emptied first (its public schema dropped): give it a throw-away one, such as the tests'.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlmodel import Session, col, select

from bench.cycle_rows import PASSWORD, CycleShape, generate
from bench.database import bench_settings, fresh
from server.core.config import Settings
from server.core.db import make_engine
from server.main import create_app
from server.models import Assignment
from server.validation.runner import validate_assignment

ROUTES = 100
PAGE = 200
RUNS = 5


def timed(call: Any) -> float:
    t0 = time.perf_counter()
    call()
    return time.perf_counter() - t0


def validate_all(engine: Engine, settings: Settings) -> int:
    """Validate every assignment as the server's workers do, each in a transaction of its own:
    its flags and its stored verdict."""
    with Session(engine) as session:
        ids = list(session.exec(select(Assignment.id).order_by(col(Assignment.id))))
    for assignment_id in ids:
        assert assignment_id is not None
        with Session(engine) as session:
            validate_assignment(session, assignment_id=assignment_id, settings=settings)
            session.commit()
    return len(ids)


def _sign_in(client: TestClient) -> dict[str, str]:
    login = client.post(
        "/api/v1/auth/login",
        json={"username": "bench-sup", "password": PASSWORD, "device_id": "bench-supervisor"},
    )
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def page_of(client: TestClient, headers: dict[str, str], offset: int, routes: int) -> Any:
    """A call for the page at `offset`, checking that it is whole and judged."""

    def listing() -> None:
        answer = client.get(
            "/api/v1/audit/assignments", headers=headers, params={"limit": PAGE, "offset": offset}
        )
        assert answer.status_code == 200, answer.text
        assert len(answer.json()) == min(PAGE, routes - offset)
        assert answer.headers["X-Total-Count"] == str(routes)
        assert all(a["verdict"]["code"] == "walked" for a in answer.json())

    return listing


def _cold_first_page(url: str, routes: int) -> tuple[float, float]:
    """The first page's first call in a new server process (as after a restart, or in another
    worker process: nothing of this process is warm there), and, before it, the first request
    of that process, which any route pays once (GET /healthz: the app's first request on its
    thread pool, a first connection to the database)."""
    found = subprocess.run(  # noqa: S603 - this very script, on the bench's database
        [sys.executable, "-m", "bench.audit_list", "--cold", url, "--routes", str(routes)],
        check=True,
        capture_output=True,
        text=True,
    )
    first, page = found.stdout.strip().splitlines()[-1].split()
    return float(first), float(page)


def first_calls(url: str, routes: int) -> tuple[float, float]:
    """--cold: in a new app on `url`, the first request (GET /healthz, not signed in), then,
    signed in, the first page's first call."""
    engine = make_engine(url)
    with TestClient(create_app(bench_settings(url), engine)) as client:
        first = timed(lambda: client.get("/healthz").raise_for_status())
        page = timed(page_of(client, _sign_in(client), 0, routes))
    engine.dispose()
    return first, page


def run(url: str, label: str, routes: int) -> None:
    fresh(url)
    settings = bench_settings(url)
    engine = make_engine(url)
    t0 = time.perf_counter()
    counts = generate(engine, settings, CycleShape(routes=routes, readers=routes, walked=True))
    print(f"[{label}] generated {counts} in {time.perf_counter() - t0:.1f} s")
    judging = timed(lambda: validate_all(engine, settings))
    print(
        f"[{label}] validated (flags and verdict stored): {judging:.1f} s, "
        f"{judging / routes * 1000:.0f} ms an assignment"
    )
    engine.dispose()
    last = (routes - 1) // PAGE * PAGE
    first, cold = _cold_first_page(url, routes)
    engine = make_engine(url)
    with TestClient(create_app(settings, engine)) as client:
        headers = _sign_in(client)
        warm = statistics.median(timed(page_of(client, headers, 0, routes)) for _ in range(RUNS))
        warm_last = statistics.median(
            timed(page_of(client, headers, last, routes)) for _ in range(RUNS)
        )

        def raw() -> None:
            with engine.connect() as conn:
                conn.execute(
                    text(
                        "SELECT assignment_id, count(value), count(skip_code), count(*) "
                        "FROM readings GROUP BY assignment_id"
                    )
                ).all()

        baseline = statistics.median(timed(raw) for _ in range(RUNS))
    print(f"[{label}] a new server process's first request (GET /healthz): {first:.3f} s")
    print(
        f"[{label}] GET /audit/assignments, {routes} routes, pages of {PAGE}: first page cold "
        f"{cold:.3f} s, warm {warm:.3f} s, last page warm {warm_last:.3f} s; raw GROUP BY "
        f"{baseline:.4f} s; ratio cold {cold / baseline:.0f}x, warm {warm / baseline:.0f}x, "
        f"last {warm_last / baseline:.0f}x"
    )
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--routes", type=int, default=ROUTES)
    parser.add_argument("--pg", default=os.environ.get("TEST_DATABASE_URL"))
    parser.add_argument("--skip-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--cold", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cold:
        print(*first_calls(args.cold, args.routes))
        return
    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            run(f"sqlite:///{tmp}/bench.db", "sqlite", args.routes)
    if args.pg:
        run(args.pg, "postgresql", args.routes)


if __name__ == "__main__":
    main()
