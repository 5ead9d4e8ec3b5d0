"""How fast route validation runs on one route-day, against a naive scan, and with the database.

A route-day: 300 meters walked in sequence, about 6,000 track points (one every 5 s), 300
readings. Figures:
- validate_route (every rule, pure) on the honest day and on a day typed at home (the slow case
  for presence: no track point witnesses a reading, so every point in each window is measured),
  median of several runs;
- the in-run baseline: the presence check done naively, every reading against every track point
  with geopy's geodesic, timed on a subset of readings and scaled to the day; the ratio;
- validate_assignment on SQLite: loading the rows, the rules and reconciling the flags, for the
  first run of a typed day (inserting its flags) and a run that finds the flags already held.

Run: .venv/bin/python -m bench.validation [--database-url URL]  (default: a temporary SQLite)
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
from decimal import Decimal
from typing import Any

from fastapi.testclient import TestClient
from geopy.distance import geodesic
from sqlmodel import Session, col, select

from common import clock
from common.geo import offset
from common.rules.facts import AssignmentFacts, MeterFacts, ReadingFacts, Thresholds, TrackFix
from common.rules.route import validate_route
from server.catalog import accounts, assignments
from server.core import migrate
from server.core.config import Settings
from server.core.db import make_engine
from server.demo.days import home_day, honest_day, reading_facts, street, track_facts
from server.main import create_app
from server.models import Account, Assignment, Meter, Route
from server.validation.runner import validate_assignment, window_tz

N_METERS = 300
RUNS = 7
NAIVE_SUBSET = 10
PASSWORD = "bench-password"  # noqa: S105 - a throw-away database
TZ = window_tz(Settings())
# Dated from the clock, as the tests are: an open window around today, yesterday's walk.
TODAY = clock.now().astimezone(TZ).date()
WINDOW = (TODAY - timedelta(days=5), TODAY + timedelta(days=5))
YESTERDAY = TODAY - timedelta(days=1)
START = datetime(YESTERDAY.year, YESTERDAY.month, YESTERDAY.day, 8, tzinfo=TZ)
NOW = START + timedelta(hours=28)


def route_meters() -> list[MeterFacts]:
    return [
        MeterFacts(
            id=i + 1,
            lat=lat,
            lon=lon,
            meter_no=f"M-{i + 1:04d}",
            last_reading=Decimal(1000 + 7 * i),
            expected_low=Decimal(50),
            expected_high=Decimal(400),
            sequence=(i + 1) * 10,
        )
        for i, (lat, lon) in enumerate(street(N_METERS, spacing_m=(30.0, 60.0), seed=3))
    ]


def median_s(run: Callable[[], object], runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def naive_presence(
    meters: dict[int, MeterFacts],
    readings: list[ReadingFacts],
    track: list[TrackFix],
    thresholds: Thresholds,
) -> int:
    """The presence check without an index or a closed form: every pair, geopy's geodesic."""
    unwitnessed = 0
    for r in readings:
        meter = meters[r.meter_id]
        witnessed = False
        for p in track:
            d = geodesic((p.lat, p.lon), (meter.lat, meter.lon)).meters
            near = d <= thresholds.presence_radius_m + min(
                p.accuracy_m or thresholds.default_track_accuracy_m, thresholds.max_fix_accuracy_m
            )
            in_window = abs((p.t - r.read_at).total_seconds()) <= thresholds.track_window_s
            witnessed = witnessed or (near and in_window and not p.mock)
        unwitnessed += not witnessed
    return unwitnessed


def pure_figures() -> dict[str, float]:
    meters = route_meters()
    by_id = {m.id: m for m in meters}
    assignment = AssignmentFacts(*WINDOW)
    thresholds = Thresholds()
    wire, wire_track = honest_day(meters, START, assignment_id=1, seed=3)
    readings, track = reading_facts(wire), track_facts(wire_track)
    home = offset(meters[0].lat, meters[0].lon, -800.0, 600.0)
    typed_wire, typed_track_wire = home_day(meters, START, assignment_id=1, home=home)
    typed, typed_track = reading_facts(typed_wire), track_facts(typed_track_wire)

    assert validate_route(assignment, meters, readings, track, thresholds, NOW) == []
    honest = median_s(lambda: validate_route(assignment, meters, readings, track, thresholds, NOW))
    at_home = median_s(
        lambda: validate_route(assignment, meters, typed, typed_track, thresholds, NOW)
    )
    subset = readings[:: N_METERS // NAIVE_SUBSET][:NAIVE_SUBSET]
    t0 = time.perf_counter()
    assert naive_presence(by_id, subset, track, thresholds) == 0
    naive = (time.perf_counter() - t0) * len(readings) / len(subset)
    return {
        "points": len(track),
        "readings": len(readings),
        "honest": honest,
        "at_home": at_home,
        "naive": naive,
    }


def build_route(session: Session, settings: Settings, code: str, reader: str) -> int:
    grid = accounts.get_or_create_grid(session, code="B1")
    accounts.create_user(
        session, settings, username=reader, password=PASSWORD, role="reader", grid_code="B1"
    )
    route = Route(code=code, name=code, grid_id=grid.id)
    session.add(route)
    session.flush()
    assert route.id is not None
    for m in route_meters():
        account = Account(
            account_no=f"{code}-{m.id}", customer_name=f"Customer {m.id}", address=f"{m.id} Street"
        )
        session.add(account)
        session.flush()
        assert account.id is not None
        session.add(
            Meter(
                meter_no=f"{code}-{m.meter_no}",
                account_id=account.id,
                route_id=route.id,
                sequence=m.sequence,
                lat=m.lat,
                lon=m.lon,
                last_reading=m.last_reading,
                expected_low=m.expected_low,
                expected_high=m.expected_high,
            )
        )
    assignment = assignments.assign_route(
        session,
        route_code=code,
        reader=reader,
        cycle=f"B-{code}",
        window_start=WINDOW[0],
        window_end=WINDOW[1],
    )
    session.commit()
    assert assignment.id is not None
    return assignment.id


def db_figures(url: str) -> dict[str, float]:
    migrate.upgrade(url)
    settings = Settings(
        environment="test",
        database_url=url,
        password_time_cost=1,
        password_memory_kib=1024,
        # The pushes are validated before they answer (no worker validating behind the runs
        # timed below).
        validation_workers=0,
        validation_in_request=True,
    )
    engine = make_engine(url)
    tag = uuid.uuid4().hex[:6]
    days: dict[str, int] = {}
    with Session(engine) as session:
        for kind in ("honest", "typed"):
            days[kind] = build_route(session, settings, f"{kind}-{tag}", f"{kind}-{tag}")
    bodies: dict[str, dict[str, Any]] = {}
    with Session(engine, expire_on_commit=False) as session:
        for kind, assignment_id in days.items():
            meters = list(
                session.exec(
                    select(Meter)
                    .join(Assignment, col(Assignment.route_id) == Meter.route_id)
                    .where(Assignment.id == assignment_id)
                    .order_by(col(Meter.sequence))
                )
            )
            if kind == "honest":
                wire, track = honest_day(meters, START, assignment_id=assignment_id, seed=3)
            else:
                home = offset(meters[0].lat, meters[0].lon, -800.0, 600.0)
                wire, track = home_day(meters, START, assignment_id=assignment_id, home=home)
            bodies[kind] = {"readings": wire, "track_points": track}
    with TestClient(create_app(settings, engine)) as client:
        for kind, body in bodies.items():
            token = client.post(
                "/api/v1/auth/login",
                json={
                    "username": f"{kind}-{tag}",
                    "password": PASSWORD,
                    "device_id": f"bench-{kind}",
                },
            ).json()["access_token"]
            response = client.post(
                "/api/v1/sync/push",
                content=gzip.compress(json.dumps(body).encode()),
                headers={"Authorization": f"Bearer {token}", "Content-Encoding": "gzip"},
            )
            assert response.status_code == 200, response.text

    def run(kind: str) -> int:
        with Session(engine) as session:
            flags = validate_assignment(
                session, assignment_id=days[kind], settings=settings, now=NOW
            )
            session.commit()
            return len(flags)

    t0 = time.perf_counter()
    n_flags = run("typed")
    first_typed = time.perf_counter() - t0
    figures = {
        "honest": median_s(lambda: run("honest"), 5),
        "typed_first": first_typed,
        "typed_again": median_s(lambda: run("typed"), 5),
        "flags": n_flags,
    }
    engine.dispose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url")
    args = parser.parse_args()
    pure = pure_figures()

    def line(label: str, seconds: float, note: str = "") -> None:
        print(f"{label:<52}{seconds * 1000:9.1f} ms{note}")

    print(
        f"a route-day: {N_METERS} meters, {pure['readings']:.0f} readings, "
        f"{pure['points']:.0f} track points"
    )
    line(f"validate_route, honest day (median of {RUNS})", pure["honest"])
    line(f"validate_route, day typed at home (median of {RUNS})", pure["at_home"])
    line(
        "baseline: naive presence scan with geopy",
        pure["naive"],
        f"  (timed on {NAIVE_SUBSET} readings, scaled to {pure['readings']:.0f})",
    )
    ratio = pure["naive"] / pure["honest"]
    print(f"{'  ratio baseline / validate_route (honest day)':<52}{ratio:9.0f}x")
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.db"
        db = db_figures(url)
    print(f"validate_assignment on {url.split(':', 1)[0]} (load + rules + reconcile):")
    line("  honest day, no flags (median of 5)", db["honest"])
    line(f"  typed day, first run inserting {db['flags']:.0f} flags", db["typed_first"])
    line("  typed day again, flags held (median of 5)", db["typed_again"])


if __name__ == "__main__":
    main()
