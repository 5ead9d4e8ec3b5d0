"""How fast pushed readings and track points are stored, against the raw database in the same run.

Figures (issue 13), each printed with its raw baseline and the ratio:
- readings: 6 devices pushing batches of 200 at once over HTTP (the real server, uvicorn on
  loopback) against a raw `executemany` of as many rows, the same columns and keys, into the
  same table; with the p99 of a push's answer time. Pushed as the handheld pushes (contract 2:
  readings as columns, answers in ranges), then as an older handheld (contract 1, JSON objects);
- track points (PostgreSQL): 8 devices pushing 6,000 points each at once, against one COPY of
  as many rows into the same table;
- growth: 1, 10, 100 (… `--days`) reader-days pushed (300 readings in batches of 200 and 6,000
  points each, 2 devices at a time), and the time per reader-day.

The server runs in a process of its own (as for handhelds, the clients are elsewhere), with its
validation workers as deployed: they validate what the pushes queued once the pushes pause
(Settings.validation_settle_s, at most validation_settle_max_s), so a push's time includes
whatever validation overlaps it, and a line says when the queue was empty after the last
answer. The baselines are the storing alone. `--validation-workers 0` shows the pushes alone.

Run: .venv/bin/python -m bench.ingest [--database-url URL] [--days 1,10,100]
(default: a temporary SQLite; a PostgreSQL database given is emptied first)
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from sqlalchemy import Engine, func, insert, select
from sqlmodel import Session

from bench.database import bench_settings, fresh
from common import clock, compact, wire
from common.contract import COMPACT_CONTRACT, CONTRACT_VERSION_HEADER
from common.rules.facts import CHINA_STANDARD_TIME
from server.catalog import accounts, assignments
from server.core.changes import next_change_seq
from server.core.config import Settings
from server.core.db import copy_type, make_engine
from server.main import create_app
from server.models import (
    Account,
    Device,
    Meter,
    Reading,
    Route,
    TrackPoint,
    User,
    ValidationWork,
)
from server.schemas.wire import ReadingIn
from server.sync import bulk
from server.sync.push import Pusher
from server.sync.records import reading_hash

PASSWORD = "bench-password"  # noqa: S105 - a throw-away database
PUSH = "/api/v1/sync/push"
BATCH = 200
POINTS_PER_DAY = 6_000
METERS_PER_DAY = 300
# A window open around today, yesterday's walk (as bench/sync_push.py).
TODAY = clock.now().astimezone(CHINA_STANDARD_TIME).date()
YESTERDAY = TODAY - timedelta(days=1)
START = datetime(YESTERDAY.year, YESTERDAY.month, YESTERDAY.day, 8, tzinfo=CHINA_STANDARD_TIME)


@dataclass
class Day:
    """One reader's route for the cycle: who, the assignment, its meters (id, lat, lon)."""

    username: str
    assignment_id: int
    meters: list[tuple[int, float, float]]


def build(session: Session, settings: Settings, n_readers: int, n_meters: int) -> list[Day]:
    """Readers, each with a route of `n_meters` meters assigned; meters stored in bulk."""
    grid = accounts.get_or_create_grid(session, code="BENCH")
    days = []
    for _ in range(n_readers):
        tag = uuid.uuid4().hex[:8]
        accounts.create_user(
            session,
            settings,
            username=f"r-{tag}",
            password=PASSWORD,
            role="reader",
            grid_code="BENCH",
        )
        route = Route(code=f"R-{tag}", name=f"R-{tag}", grid_id=grid.id)
        session.add(route)
        session.flush()
        conn = session.connection()
        account_ids = list(
            conn.execute(
                insert(Account).returning(Account.id),  # type: ignore[arg-type]
                [
                    {"account_no": f"{tag}-{i}", "customer_name": f"C {i}", "address": f"{i} St"}
                    for i in range(n_meters)
                ],
            ).scalars()
        )
        seq = next_change_seq(session)
        conn.execute(
            insert(Meter),
            [
                {
                    "meter_no": f"{tag}-M{i}",
                    "account_id": account_id,
                    "route_id": route.id,
                    "sequence": i,
                    "lat": 30.27 + i * 3e-4,
                    "lon": 120.15,
                    "change_seq": seq,
                }
                for i, account_id in enumerate(account_ids)
            ],
        )
        assignment = assignments.assign_route(
            session,
            route_code=route.code,
            reader=f"r-{tag}",
            cycle="BENCH-1",
            window_start=TODAY - timedelta(days=5),
            window_end=TODAY + timedelta(days=5),
        )
        assert assignment.id is not None
        meters = session.execute(
            select(Meter.id, Meter.lat, Meter.lon)  # type: ignore[call-overload]
            .where(Meter.route_id == route.id)
            .order_by(Meter.sequence)
        ).all()
        days.append(Day(f"r-{tag}", assignment.id, [tuple(m) for m in meters]))
    session.commit()
    return days


def readings_of(day: Day) -> list[dict[str, Any]]:
    return [
        {
            "id": str(uuid.uuid4()),
            "assignment_id": day.assignment_id,
            "meter_id": meter_id,
            "value": f"{1000 + i}.5",
            "read_at": (START + timedelta(seconds=90 * i)).isoformat(),
            "confirmed_at": (START + timedelta(seconds=90 * i + 15)).isoformat(),
            "fix": {
                "lat": lat,
                "lon": lon,
                "accuracy_m": 5.0,
                "fix_time": (START + timedelta(seconds=90 * i - 2)).isoformat(),
                "provider": "gps",
                "mock": False,
            },
            "reread_of": None,
        }
        for i, (meter_id, lat, lon) in enumerate(day.meters)
    ]


def points_of(n: int) -> list[dict[str, Any]]:
    return [
        {
            "t": (START + timedelta(seconds=5 * i)).isoformat(),
            "lat": round(30.27 + i * 1.5e-5, 6),
            "lon": 120.15,
            "accuracy_m": 5.0,
        }
        for i in range(n)
    ]


def gz(body: dict[str, Any]) -> bytes:
    return gzip.compress(json.dumps(body).encode())


def _serve(settings: Settings, port: int) -> None:
    uvicorn.run(create_app(settings), host="127.0.0.1", port=port, log_level="warning")


class Server:
    """The real app under uvicorn on a free loopback port, in a process of its own: the
    handhelds are other machines, so the bench's client threads (making requests, reading the
    answers) must not take turns with the server at one interpreter lock. `workers` > 1: that
    many server processes sharing the port, started as `gridwalk serve --workers N` is, with
    the bench's settings in their environment."""

    def __init__(self, settings: Settings, workers: int = 1) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.process: Any = None
        self.workers = workers
        self.settings = settings

    def _start(self) -> None:
        if self.workers == 1:
            self.process = multiprocessing.get_context("spawn").Process(
                target=_serve, args=(self.settings, self.port), daemon=True
            )
            self.process.start()
            return
        given = self.settings.model_dump(mode="json", include=self.settings.model_fields_set)
        env = os.environ | {f"GRIDWALK_{name.upper()}": str(v) for name, v in given.items()}
        self.process = subprocess.Popen(  # noqa: S603 - our own command
            [
                str(Path(sys.executable).parent / "gridwalk"),
                "serve",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
        )

    def _alive(self) -> bool:
        if isinstance(self.process, subprocess.Popen):
            return self.process.poll() is None
        return bool(self.process.is_alive())

    def __enter__(self) -> str:
        self._start()
        url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=5).status_code == 200:
                    return url
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or not self._alive():
                raise RuntimeError("the bench server did not start")
            time.sleep(0.1)

    def __exit__(self, *_: object) -> None:
        self.process.terminate()  # SIGTERM: uvicorn shuts down (and stops its workers)
        if isinstance(self.process, subprocess.Popen):
            self.process.wait(timeout=30)
        else:
            self.process.join(timeout=30)


def login(url: str, username: str) -> dict[str, str]:
    response = httpx.post(
        url + "/api/v1/auth/login",
        json={"username": username, "password": PASSWORD, "device_id": f"dev-{username}"},
        timeout=60,
    )
    response.raise_for_status()
    return {
        "Authorization": f"Bearer {response.json()['access_token']}",
        "Content-Encoding": "gzip",
    }


def push_all(url: str, work: list[tuple[dict[str, str], list[bytes]]]) -> tuple[float, list[float]]:
    """Each device sends its bodies one after another, all devices at once: the wall time and
    each push's answer time. Every item must be stored: an answer in contract 2 (a header of
    the device's says so) is read back into the v1 shape, as the handheld reads it."""
    latencies: list[float] = []

    def device(headers: dict[str, str], bodies: list[bytes]) -> None:
        compact_answers = headers.get(CONTRACT_VERSION_HEADER) == str(COMPACT_CONTRACT)
        with httpx.Client(base_url=url, timeout=600) as client:
            for body in bodies:
                t0 = time.perf_counter()
                response = client.post(PUSH, content=body, headers=headers)
                latencies.append(time.perf_counter() - t0)
                assert response.status_code == 200, response.text
                answers = response.json()
                if compact_answers:
                    n = answers["n"]
                    assert answers.get("accepted") == ([[0, n - 1]] if n else []), answers
                    assert not answers["track"].get("rejected")
                    continue
                refused = [r for r in answers["results"] if r["status"] == "rejected"]
                assert not refused, refused[:3]
                assert not answers["track"]["rejected"]

    t0 = time.perf_counter()
    with ThreadPoolExecutor(len(work)) as pool:
        for future in [pool.submit(device, h, b) for h, b in work]:
            future.result()
    return time.perf_counter() - t0, latencies


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def validated_after(engine: Engine) -> float:
    """Seconds until the server's validation workers have emptied the queue (a bound of 10
    minutes)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 600:
        with Session(engine) as session:
            if session.execute(select(func.count()).select_from(ValidationWork)).scalar_one() == 0:
                break
        time.sleep(0.1)
    return time.perf_counter() - t0


def raw_reading_rows(session: Session, day: Day) -> list[dict[str, Any]]:
    """The rows the push would store for this day's readings: every column, the same keys."""
    user = session.execute(select(User.id).where(User.username == day.username)).scalar_one()
    device = f"raw-{day.username}"
    session.add(Device(id=device, last_user_id=user))
    session.commit()
    now = clock.now()
    rows = []
    for raw in readings_of(day):
        r = ReadingIn.model_validate(raw)
        assert r.fix is not None
        rows.append(
            {
                "id": r.id,
                "assignment_id": r.assignment_id,
                "meter_id": r.meter_id,
                "value": r.value,
                "skip_code": None,
                "note": None,
                "read_at": r.read_at,
                "confirmed_at": r.confirmed_at,
                "fix_lat": r.fix.lat,
                "fix_lon": r.fix.lon,
                "fix_accuracy_m": r.fix.accuracy_m,
                "fix_time": r.fix.fix_time,
                "fix_provider": r.fix.provider,
                "fix_mock": r.fix.mock,
                "reread_of": None,
                "supersedes": None,
                "user_id": user,
                "device_id": device,
                "sent_at": now,
                "received_at": now,
                "content_hash": reading_hash(r),
            }
        )
    return rows


def raw_insert(engine: Engine, rows: list[dict[str, Any]]) -> float:
    """The baseline: the rows by executemany, a transaction per batch (as a push commits)."""
    t0 = time.perf_counter()
    for i in range(0, len(rows), BATCH):
        with engine.begin() as conn:
            conn.execute(insert(Reading), rows[i : i + BATCH])  # type: ignore[arg-type]
    return time.perf_counter() - t0


def stored_only(engine: Engine, days: list[Day]) -> float:
    """The push's storing alone (check, dedup, insert, chain), in-process, a transaction per
    batch: what is left of a push once validation is queued and the answer is compact."""
    elapsed = 0.0
    for day in days:
        with Session(engine, expire_on_commit=False) as session:
            user = session.execute(select(User).where(User.username == day.username)).scalar_one()
            session.add(Device(id=f"store-{day.username}", last_user_id=user.id))
            session.commit()
            pusher = Pusher(user=user, device_id=f"store-{day.username}")
        items = readings_of(day)
        t0 = time.perf_counter()
        for i in range(0, len(items), BATCH):
            with Session(engine) as session:
                answers = bulk.store_readings(
                    session, pusher, bulk.check_readings(items[i : i + BATCH]), None, clock.now()
                )
                session.commit()
            assert all(getattr(a, "status", None) == "accepted" for a in answers)
        elapsed += time.perf_counter() - t0
    return elapsed


def readings_figure(
    engine: Engine, settings: Settings, url: str, n_meters: int, rounds: int
) -> None:
    """`rounds` rounds, each of the raw baseline then each contract, on routes of their own:
    one run of a few seconds moves by a fifth with what else the machine does, so the figure
    is the median of the rounds' ratios, each round's raw and pushed taken side by side."""
    n = 6 * n_meters
    ratios: dict[int, list[float]] = {contract: [] for contract in _WHO}
    print(
        f"readings, 6 devices, batches of {BATCH}, {n} readings each side, "
        f"{rounds} round(s) of raw then each contract:"
    )
    for round_ in range(1, rounds + 1):
        with Session(engine) as session:
            pushed = {contract: build(session, settings, 6, n_meters) for contract in _WHO}
            raw = build(session, settings, 6, n_meters)
            rows = [row for day in raw for row in raw_reading_rows(session, day)]
        theirs = len(rows) / raw_insert(engine, rows)
        print(f"  round {round_}: raw executemany {theirs:9.0f}/s")
        for contract, days in pushed.items():
            wall, latencies = push_all(url, _bodies(url, days, contract))
            caught_up = validated_after(engine) if settings.validation_workers else None
            ours = n / wall
            ratios[contract].append(ours / theirs)
            print(
                f"    pushed, contract {contract} ({_WHO[contract]}): {ours:9.0f}/s  ratio to "
                f"raw {ours / theirs:.2f}  p99 answer {p99(latencies):.2f} s"
                + ("" if caught_up is None else f"; validated {caught_up:.1f} s after")
            )
    for contract, of_rounds in ratios.items():
        print(
            f"  pushed, contract {contract} ({_WHO[contract]}): ratio to raw, "
            f"{_spread(of_rounds)}   (target >= 0.5; p99 <= 1 s)"
        )
    with Session(engine) as session:
        stored = build(session, settings, 6, n_meters)
    ours = n / stored_only(engine, stored)
    # Against the last round's raw executemany.
    print(f"  storing alone, 1 device:{ours:9.0f}/s  ratio to raw {ours / theirs:.2f}")


def _spread(ratios: list[float]) -> str:
    return (
        f"median of {len(ratios)}: {statistics.median(ratios):.2f} "
        f"({min(ratios):.2f}-{max(ratios):.2f})"
    )


_WHO = {COMPACT_CONTRACT: "as handhelds push", 1: "older handhelds"}


def _bodies(url: str, days: list[Day], contract: int) -> list[tuple[dict[str, str], list[bytes]]]:
    """Each device's headers and push bodies, as a handheld of that contract sends them."""
    work = []
    for day in days:
        items = readings_of(day)
        batches = [items[i : i + BATCH] for i in range(0, len(items), BATCH)]
        headers = login(url, day.username)
        if contract == COMPACT_CONTRACT:
            # As the handheld pushes: its readings as columns (common.compact).
            headers[CONTRACT_VERSION_HEADER] = str(contract)
            bodies = [
                gz(compact.encode_push(wire.Push.from_json({"readings": b}))) for b in batches
            ]
        else:
            bodies = [gz({"readings": b}) for b in batches]
        work.append((headers, bodies))
    return work


def track_figure(engine: Engine, settings: Settings, url: str) -> float:
    """One round: the raw COPY, then the pushes; the ratio."""
    devices = 8
    with Session(engine) as session:
        pushed = build(session, settings, devices, 1)
        raw = build(session, settings, devices, 1)
        users = [
            session.execute(select(User.id).where(User.username == d.username)).scalar_one()
            for d in raw
        ]
        for user in users:
            session.add(Device(id=f"raw-{user}", last_user_id=user))
        session.commit()
    now = clock.now()
    rows = [
        (
            f"raw-{user}",
            user,
            START.astimezone(UTC) + timedelta(seconds=5 * i),
            30.27,
            120.15,
            5.0,
            None,
            "gps",
            False,
            now,
        )
        for user in users
        for i in range(POINTS_PER_DAY)
    ]
    t0 = time.perf_counter()
    with engine.begin() as conn:
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        # Binary, its types told, as the push's own COPY: the fastest raw path, not a slower one.
        with cursor.copy(
            f"COPY track_points ({', '.join(bulk.TRACK_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            table = TrackPoint.__table__  # type: ignore[attr-defined]
            copy.set_types([copy_type(table.c[name]) for name in bulk.TRACK_COLUMNS])
            for row in rows:
                copy.write_row(row)
    raw_s = time.perf_counter() - t0
    body = gz({"track_points": points_of(POINTS_PER_DAY)})
    work = [(login(url, d.username), [body]) for d in pushed]
    wall, latencies = push_all(url, work)
    # As after the readings: what comes next starts on a server that has done this work.
    caught_up = validated_after(engine) if settings.validation_workers else None
    ours, theirs = len(rows) / wall, len(rows) / raw_s
    print(f"track points, {devices} devices, {POINTS_PER_DAY} points each, {len(rows)} each side:")
    print(f"  pushed:                 {ours:9.0f}/s  p99 answer {p99(latencies):.2f} s")
    print(f"  raw binary COPY:        {theirs:9.0f}/s")
    print(f"  ratio pushed / COPY:    {ours / theirs:9.2f}   (target >= 0.7)")
    if caught_up is not None:
        print(
            f"  validation queue empty {caught_up:.1f} s after the last answer (server's workers)"
        )
    return ours / theirs


def track_rounds(engine: Engine, settings: Settings, url: str, rounds: int) -> None:
    """The track figure `rounds` times and the median of its ratios: like the readings', one
    round moves with what the database is doing (autovacuum after the readings' rounds)."""
    ratios = [track_figure(engine, settings, url) for _ in range(rounds)]
    print(f"track points: ratio pushed / COPY, {_spread(ratios)}   (target >= 0.7)")


def growth_figure(engine: Engine, settings: Settings, url: str, sizes: list[int]) -> None:
    print("growth: reader-days pushed (300 readings in batches of 200 + 6,000 points each):")
    first = None
    points = gz({"track_points": points_of(POINTS_PER_DAY)})
    for n in sizes:
        with Session(engine) as session:
            days = build(session, settings, n, METERS_PER_DAY)
        work: list[tuple[dict[str, str], list[bytes]]] = [
            (login(url, d.username), []) for d in days
        ]
        for (_, bodies), day in zip(work, days, strict=True):
            items = readings_of(day)
            bodies += [gz({"readings": items[i : i + BATCH]}) for i in range(0, len(items), BATCH)]
            bodies.append(points)
        wall, latencies = push_all_by_day(url, work)
        per_day = wall / n
        first = first or per_day
        print(
            f"  {n:4d} reader-days: {wall:7.1f} s, {per_day:6.2f} s per reader-day "
            f"(x{per_day / first:.2f} of the first), p99 answer {p99(latencies):.2f} s"
        )


def push_all_by_day(
    url: str, work: list[tuple[dict[str, str], list[bytes]]]
) -> tuple[float, list[float]]:
    """Two devices at a time: each lane takes the next reader-day when it is done with one."""
    latencies: list[float] = []
    queue = list(work)
    lock = threading.Lock()

    def lane() -> None:
        with httpx.Client(base_url=url, timeout=600) as client:
            while True:
                with lock:
                    if not queue:
                        return
                    headers, bodies = queue.pop(0)
                for body in bodies:
                    t0 = time.perf_counter()
                    response = client.post(PUSH, content=body, headers=headers)
                    latencies.append(time.perf_counter() - t0)
                    assert response.status_code == 200, response.text

    t0 = time.perf_counter()
    threads = [threading.Thread(target=lane) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - t0, latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url")
    parser.add_argument("--meters", type=int, default=3_000, help="per device, readings figure")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of the readings and track figures"
    )
    parser.add_argument("--days", default="1,10,100", help="reader-days of the growth line")
    parser.add_argument("--growth-only", action="store_true", help="only the growth line")
    parser.add_argument(
        "--track-only",
        type=int,
        default=0,
        metavar="N",
        help="only the track points figure, N times in one server (PostgreSQL; the first on a "
        "server no push has warmed, as the whole run's is not)",
    )
    parser.add_argument(
        "--server-workers",
        type=int,
        default=1,
        help="server processes sharing the port (`gridwalk serve --workers N`); default 1",
    )
    parser.add_argument(
        "--validation-workers",
        type=int,
        default=Settings.model_fields["validation_workers"].default,
        help="the server's validation threads (default: the server's own default)",
    )
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds: at least 1")
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.db"
        fresh(url)  # the same empty tables for every run: figures of one run compare
        settings = bench_settings(url, validation_workers=args.validation_workers)
        engine = make_engine(url, pool_size=12)
        backend = engine.dialect.name
        print(f"database: {backend}, server processes: {args.server_workers}")
        with Server(settings, args.server_workers) as server:
            if args.track_only:
                if backend != "postgresql":
                    parser.error("--track-only: the track figure is PostgreSQL's")
                track_rounds(engine, settings, server, args.track_only)
            else:
                if not args.growth_only:
                    readings_figure(engine, settings, server, args.meters, args.rounds)
                    if backend == "postgresql":
                        track_rounds(engine, settings, server, args.rounds)
                growth_figure(engine, settings, server, [int(n) for n in args.days.split(",")])
        engine.dispose()


if __name__ == "__main__":
    main()
