"""Closing a cycle's ended route-days (`close-due`), each in a transaction of its own.

N reader-days (default 100) whose window has ended: each a route of 300 meters, 290 readings
and 6,000 track points (a point every 5 s through the day). Figures, in one run:
- close_due_assignments: every assignment closed and validated, each in its own transaction;
  the whole run, and the longest single close (the longest any row lock is held);
- the in-run baseline: reading their rows (meters, readings and track of each assignment,
  what validating them must load at the least); the ratio.
The target of issue 13: 100 reader-days closed in at most 10 s.

Run: .venv/bin/python -m bench.close_due [--database-url URL] [--days N]
(default: a temporary SQLite, 100 reader-days)
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, insert
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from common import clock
from common.rules.facts import CHINA_STANDARD_TIME
from server.catalog import accounts, assignments
from server.core import migrate
from server.core.config import Settings
from server.core.db import make_engine
from server.models import Account, Assignment, Device, Meter, Reading, Route, TrackPoint, User
from server.validation import runner

N_METERS = 300
N_READ = 290
N_POINTS = 6_000
PASSWORD = "bench-password"  # noqa: S105 - a throw-away database
TODAY = clock.now().astimezone(CHINA_STANDARD_TIME).date()
LAST_DAY = TODAY - timedelta(days=3)  # the windows ended three days ago
START = datetime(LAST_DAY.year, LAST_DAY.month, LAST_DAY.day, 8, tzinfo=CHINA_STANDARD_TIME)


def build(session: Session, settings: Settings, n_days: int, tag: str) -> list[int]:
    grid = accounts.get_or_create_grid(session, code="B1")
    ids = []
    for d in range(n_days):
        reader = f"r{d}-{tag}"
        user = accounts.create_user(
            session, settings, username=reader, password=PASSWORD, role="reader", grid_code="B1"
        )
        device = f"dev-{reader}"
        session.add(Device(id=device, last_user_id=user.id))
        code = f"R{d}-{tag}"
        route = Route(code=code, name=code, grid_id=grid.id)
        session.add(route)
        session.flush()
        base_lon = 120.15 + d * 0.02
        accounts_rows = [
            {"account_no": f"{code}-{i}", "customer_name": f"C{i}", "address": f"{i} St"}
            for i in range(N_METERS)
        ]
        session.execute(insert(Account), accounts_rows)
        account_ids = session.exec(
            select(Account.id).where(col(Account.account_no).like(f"{code}-%"))
        ).all()
        session.execute(
            insert(Meter),
            [
                {
                    "meter_no": f"{code}-M{i}",
                    "account_id": aid,
                    "route_id": route.id,
                    "sequence": i,
                    "lat": 30.27 + i * 3e-4,
                    "lon": base_lon,
                    "digits": 6,
                    "multiplier": 1,
                }
                for i, aid in enumerate(account_ids)
            ],
        )
        assignment = assignments.assign_route(
            session,
            route_code=code,
            reader=reader,
            cycle=f"C-{tag}",
            window_start=LAST_DAY - timedelta(days=4),
            window_end=LAST_DAY,
        )
        assert assignment.id is not None
        assert user.id is not None
        meters = session.exec(
            select(Meter).where(Meter.route_id == route.id).order_by(col(Meter.sequence))
        ).all()
        session.execute(insert(Reading), readings(assignment.id, user.id, device, meters))
        session.execute(
            insert(TrackPoint),
            [
                {
                    "device_id": device,
                    "user_id": user.id,
                    "t": START + timedelta(seconds=5 * i),
                    "lat": 30.27
                    + i * 1.5e-5,  # at meter k (3e-4 apart) as it is read (100 s apart)
                    "lon": base_lon,
                    "accuracy_m": 5.0,
                    "received_at": START + timedelta(hours=10),
                }
                for i in range(N_POINTS)
            ],
        )
        ids.append(assignment.id)
        session.commit()
    return ids


def readings(assignment_id: int, user_id: int, device: str, meters: Any) -> list[dict[str, Any]]:
    rows = []
    for i, m in enumerate(meters[:N_READ]):
        at = START + timedelta(seconds=100 * i)
        rows.append(
            {
                "id": uuid.uuid4(),
                "assignment_id": assignment_id,
                "meter_id": m.id,
                "value": Decimal(f"{1000 + i}.5"),
                "read_at": at,
                "confirmed_at": at + timedelta(seconds=15),
                "fix_lat": m.lat,
                "fix_lon": m.lon,
                "fix_accuracy_m": 5.0,
                "fix_time": at - timedelta(seconds=2),
                "fix_provider": "gps",
                "fix_mock": False,
                "user_id": user_id,
                "device_id": device,
                "received_at": at + timedelta(hours=10),
                "content_hash": hashlib.sha256(str(at).encode()).hexdigest(),
            }
        )
    return rows


def read_rows(engine: Engine, ids: list[int]) -> int:
    """The baseline: every row validating the assignments must load, read plainly."""
    n = 0
    with engine.connect() as conn:
        for aid in ids:
            route_id, reader_id = conn.execute(
                sa_select(col(Assignment.route_id), col(Assignment.reader_id)).where(
                    col(Assignment.id) == aid
                )
            ).one()
            n += len(conn.execute(sa_select(Meter).where(col(Meter.route_id) == route_id)).all())
            n += len(
                conn.execute(sa_select(Reading).where(col(Reading.assignment_id) == aid)).all()
            )
            n += len(
                conn.execute(
                    sa_select(TrackPoint).where(col(TrackPoint.user_id) == reader_id)
                ).all()
            )
    return n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url")
    parser.add_argument("--days", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.db"
        migrate.upgrade(url)
        settings = Settings(
            environment="test", database_url=url, password_time_cost=1, password_memory_kib=1024
        )
        engine = make_engine(url)
        tag = uuid.uuid4().hex[:6]
        t0 = time.perf_counter()
        with Session(engine) as session:
            ids = build(session, settings, args.days, tag)
        built = time.perf_counter() - t0

        t0 = time.perf_counter()
        rows = read_rows(engine, ids)
        baseline = time.perf_counter() - t0

        closes: list[float] = []
        close_one = runner.close_assignment

        def timed_close(*a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return close_one(*a, **kw)
            finally:
                closes.append(time.perf_counter() - t)

        runner.close_assignment = timed_close  # type: ignore[assignment]
        t0 = time.perf_counter()
        closed = runner.close_due_assignments(engine, settings=settings, now=clock.now())
        whole = time.perf_counter() - t0
        runner.close_assignment = close_one  # type: ignore[assignment]
        with Session(engine) as session:
            still_open = session.exec(
                select(Assignment.id).where(
                    col(Assignment.id).in_(ids), Assignment.status == "open"
                )
            ).all()
            users = len(session.exec(select(User.id)).all())
        engine.dispose()
    assert sorted(closed) == sorted(ids), "not every ended assignment was closed"
    assert not still_open
    print(
        f"database: {url.split(':', 1)[0]}; {args.days} reader-days of {N_METERS} meters, "
        f"{N_READ} readings, {N_POINTS:,} track points ({users} users; built in {built:.0f} s)"
    )
    print(f"close-due, each in its own transaction:   {whole:8.1f} s (target <= 10 s for 100)")
    mean = whole / len(ids)
    print(f"  per assignment, mean / longest:          {mean:8.2f} s / {max(closes):.2f} s")
    print(f"baseline: reading their {rows:,} rows:      {baseline:8.1f} s")
    print(f"  ratio close-due / baseline:              {whole / baseline:8.1f}")


if __name__ == "__main__":
    main()
