"""Closing a cycle's ended route-days (`close-due`), each in a transaction of its own, and how it
grows from 1 to 300 reader-days.

N reader-days: each a route of 300 meters, 290 readings and 6,000 track points (a point every
5 s through the day, passing each meter as it is read; each fix a few metres off its meter, as a
real one is: an honest day, whose close flags the 10 meters left unread and hands its 290
readings to the billing feed). For each N of
--days (a fresh database each), in one run:
- close_due_assignments: every assignment closed and validated, each judged in a transaction
  that writes nothing and written under its row lock in another; the whole run, per reader-day,
  and the longest write under the lock; once for each count of --workers (processes closing
  side by side; the days reopened between);
- the in-run baseline: reading their rows (meters, readings and track of each assignment, what
  validating them must load at the least); the ratio;
- growth: the time per reader-day against the first N's (1.0: linear).
The targets of issue 13: 100 reader-days closed in at most 10 s; a full 300-reader day validated
in under a minute.

Run: .venv/bin/python -m bench.close_due [--database-url URL] [--days 1,10,100,300]
[--workers 1,2]
(default: a temporary SQLite, 100 reader-days; on PostgreSQL the database is emptied first).
--days 1,10,100,300 builds 411 reader-days: about 4 min on SQLite and 7 min on PostgreSQL on the
2-core machine (building the days is most of it), 10-15 min when other work shares it.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import resource
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, delete, insert, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from bench.database import bench_settings, fresh
from common import clock
from common.geo import offset
from common.rules.facts import CHINA_STANDARD_TIME
from server.catalog import accounts, assignments
from server.core.config import Settings
from server.core.db import make_engine
from server.models import (
    Account,
    Assignment,
    AssignmentVerdict,
    BillingFeedItem,
    Device,
    Flag,
    Meter,
    Reading,
    Route,
    TrackPoint,
)
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
                    "last_reading": Decimal(900 + i),  # last cycle's: each read is billed
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
        # A fix 4 m off the meter, as GPS puts one (a fix on the meter's own coordinates
        # reading after reading is fix_on_meter: typed, not measured).
        lat, lon = offset(m.lat, m.lon, 4.0 * math.cos(i), 4.0 * math.sin(i))
        rows.append(
            {
                "id": uuid.uuid4(),
                "assignment_id": assignment_id,
                "meter_id": m.id,
                "value": Decimal(f"{1000 + i}.5"),
                "read_at": at,
                "confirmed_at": at + timedelta(seconds=15),
                "fix_lat": lat,
                "fix_lon": lon,
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


def reopen(engine: Engine, ids: list[int]) -> None:
    """The built days as they were before a close: open, with no flag, verdict or billing item
    (building writes none of them), to be closed again another way. (The admin log is
    append-only: it keeps the first close's entries.)"""
    with Session(engine) as session:
        for table in (Flag, AssignmentVerdict, BillingFeedItem):
            session.execute(delete(table).where(col(table.assignment_id).in_(ids)))
        session.execute(
            update(Assignment)
            .where(col(Assignment.id).in_(ids))
            .values(status="open", closed_at=None)
        )
        session.commit()


def cpu_with_workers() -> float:
    """CPU seconds of this process and of its ended child processes (close-due's workers are
    waited for when it returns)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def timed_into(close_locked: Any, into: list[float]) -> Any:
    """runner._close_locked, its time added to `into`: how long each close holds a lock."""

    def timed(*a: Any, **kw: Any) -> None:
        t = time.perf_counter()
        try:
            close_locked(*a, **kw)
        finally:
            into.append(time.perf_counter() - t)

    return timed


def close_days(url: str, n_days: int, workers: list[int]) -> dict[str, Any]:
    """Build `n_days` ended reader-days in a fresh database at `url`, then read their rows (the
    baseline) and close them with close_due_assignments, once for each count of `workers` (the
    days reopened between); the figures, in seconds."""
    fresh(url)
    settings = bench_settings(url)
    engine = make_engine(url)
    tag = uuid.uuid4().hex[:6]
    t0 = time.perf_counter()
    with Session(engine) as session:
        ids = build(session, settings, n_days, tag)
    built = time.perf_counter() - t0

    t0, c0 = time.perf_counter(), time.process_time()
    read_rows(engine, ids)
    baseline, baseline_cpu = time.perf_counter() - t0, time.process_time() - c0
    figures: dict[str, Any] = {"built": built, "baseline": baseline, "baseline_cpu": baseline_cpu}
    for w in workers:
        if w != workers[0]:
            reopen(engine, ids)
        locked: list[float] = []
        close_locked = runner._close_locked
        timed = timed_into(close_locked, locked)

        # In this process only: with workers the closes run in processes of their own.
        runner._close_locked = timed  # type: ignore[assignment]
        try:
            t0, c0 = time.perf_counter(), cpu_with_workers()
            closed = runner.close_due_assignments(
                engine, settings=settings, now=clock.now(), workers=w
            )
            whole, whole_cpu = time.perf_counter() - t0, cpu_with_workers() - c0
        finally:
            runner._close_locked = close_locked  # type: ignore[assignment]
        check_closed(engine, ids, closed, n_days)
        figures[w] = {
            "whole": whole,
            "whole_cpu": whole_cpu,
            "longest": max(locked) if locked else None,
        }
    engine.dispose()
    return figures


def check_closed(engine: Engine, ids: list[int], closed: list[int], n_days: int) -> None:
    with Session(engine) as session:
        still_open = session.exec(
            select(Assignment.id).where(col(Assignment.id).in_(ids), Assignment.status == "open")
        ).all()
        flags = len(session.exec(select(Flag.id).where(col(Flag.assignment_id).in_(ids))).all())
        billed = len(
            session.exec(
                select(BillingFeedItem.id).where(col(BillingFeedItem.assignment_id).in_(ids))
            ).all()
        )
    assert sorted(closed) == sorted(ids), "not every ended assignment was closed"
    assert not still_open
    # The day is honest: what its close flags is the meters left unread, and nothing else.
    assert flags == n_days * (N_METERS - N_READ), f"{flags} flags, not only the missed meters"
    assert billed == n_days * N_READ, f"{billed} readings billed, not every one read"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url")
    parser.add_argument("--days", default="100", help="reader-days, or a list: 1,10,100,300")
    parser.add_argument(
        "--workers", default="1,2", help="close-due's processes, or a list: each closes the days"
    )
    args = parser.parse_args()
    counts = [int(n) for n in args.days.split(",")]
    workers = [int(w) for w in args.workers.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        figures = {}
        for n in counts:
            url = args.database_url or f"sqlite:///{tmp}/bench-{n}.db"
            figures[n] = close_days(url, n, workers)
    print(
        f"database: {url.split(':', 1)[0]}; reader-days of {N_METERS} meters, {N_READ} readings, "
        f"{N_POINTS:,} track points; close-due, each assignment judged without its lock and "
        f"written under it; {os.cpu_count()} cores"
    )
    print(
        f"{'reader-days':>11} {'workers':>7} {'built s':>8} {'close-due s':>11} {'per day s':>9} "
        f"{'locked s':>8} {'baseline s':>10} {'ratio':>6} {'growth':>6} "
        f"{'cpu close s':>11} {'cpu base s':>10} {'cpu ratio':>9}"
    )
    first = counts[0]
    for w in workers:
        per_first = figures[first][w]["whole"] / first
        for n in counts:
            f, g = figures[n], figures[n][w]
            per_day = g["whole"] / n
            cpu = g["whole_cpu"]
            longest = "-" if g["longest"] is None else f"{g['longest']:.2f}"
            cpu_text = f"{cpu:>11.1f} {f['baseline_cpu']:>10.2f} {cpu / f['baseline_cpu']:>9.1f}"
            print(
                f"{n:>11} {w:>7} {f['built']:>8.1f} {g['whole']:>11.1f} {per_day:>9.3f} "
                f"{longest:>8} {f['baseline']:>10.2f} {g['whole'] / f['baseline']:>6.1f} "
                f"{per_day / per_first:>6.2f} {cpu_text}"
            )
    print(
        "  ratio: close-due / baseline (reading the same rows in one process); growth: per day "
        f"/ per day at {first} (1.00: linear); locked: the longest write under a row lock (in "
        "this process: workers 1 only); cpu: CPU time of this process and its workers (on "
        "SQLite the database's too, on PostgreSQL not the server's), steadier than the wall "
        "clock on a shared machine: with 2 workers on 2 free cores, the wall clock is about "
        "half of it"
    )
    for n, target, what in (
        (100, 10, "100 reader-days closed"),
        (300, 60, "a full 300-reader day validated (closed)"),
    ):
        if n in figures:
            for w in workers:
                whole = figures[n][w]["whole"]
                print(f"{what} in {whole:.1f} s with {w} worker(s) (target <= {target} s)")


if __name__ == "__main__":
    main()
