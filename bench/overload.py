"""Many handhelds pushing at once: back-pressure instead of a crash, every record stored once.

150 simulated devices (asyncio + httpx) push against a real uvicorn, each push 10 readings and
200 track points, for a bounded time; a 503 or 429 is honoured like the handheld does (wait at
least Retry-After, then send the same push again), as is a lost answer (send it again). Then
every device finishes the push it holds, and the database is checked: every reading and point
sent is stored, exactly once. Figures are ratios against a baseline from the same run on the
same server: the same pushes from one device alone.

Run: .venv/bin/python -m bench.overload [--database-url URL] [--devices 150] [--seconds 120]
(default: a temporary SQLite; give a PostgreSQL URL, e.g. from scripts/test-postgres.sh, for the
figure that matters. The database is migrated and gets the bench's users and routes.)
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func
from sqlmodel import Session, col, select

from common import clock
from common.contract import API_PREFIX
from common.rules.facts import CHINA_STANDARD_TIME
from server.catalog import accounts, assignments
from server.core import migrate
from server.core.config import Settings
from server.core.db import make_engine
from server.models import Account, Meter, Reading, Route, TrackPoint

PASSWORD = "bench-password"  # noqa: S105 - a throw-away database
PROJECT_DIR = Path(__file__).resolve().parents[1]
TODAY = clock.now().astimezone(CHINA_STANDARD_TIME).date()
# Yesterday's walk from 06:00 local, a point every 5 s: room for 40 pushes of 200 points.
YESTERDAY = TODAY - timedelta(days=1)
START = datetime(YESTERDAY.year, YESTERDAY.month, YESTERDAY.day, 6, tzinfo=CHINA_STANDARD_TIME)


@dataclass
class Device:
    username: str
    device_id: str
    assignment_id: int
    meters: list[tuple[int, float, float]]
    token: str = ""
    pushes_done: int = 0
    readings_sent: list[str] = field(default_factory=list)
    points_sent: int = 0


@dataclass
class Tally:
    answered: int = 0  # pushes answered 200
    busy: int = 0  # 503 and 429 answers
    errors: int = 0  # 5xx other than 503
    lost: int = 0  # no answer (timeout, connection dropped)
    latencies: list[float] = field(default_factory=list)  # of the 200 answers
    busy_latencies: list[float] = field(default_factory=list)  # of the 503 answers
    waited_s: float = 0.0  # time spent honouring Retry-After


def build(url: str, n_devices: int, meters_each: int) -> list[Device]:
    """Users, routes and assignments for the devices, in the bench's own names."""
    settings = Settings(
        environment="test", database_url=url, password_time_cost=1, password_memory_kib=1024
    )
    engine = make_engine(url)
    tag = uuid.uuid4().hex[:6]
    devices = []
    with Session(engine) as session:
        grid = accounts.get_or_create_grid(session, code=f"OV-{tag}")
        for d in range(n_devices):
            username = f"ov-{tag}-{d}"
            accounts.create_user(
                session,
                settings,
                username=username,
                password=PASSWORD,
                role="reader",
                grid_code=grid.code,
            )
            route = Route(code=f"OV-{tag}-{d}", name=f"overload {d}", grid_id=grid.id)
            session.add(route)
            session.flush()
            people = [
                Account(account_no=f"OV-{tag}-{d}-{i}", customer_name=f"C {i}", address=f"{i} St")
                for i in range(meters_each)
            ]
            session.add_all(people)
            session.flush()
            meters = [
                Meter(
                    meter_no=f"OV-{tag}-{d}-M{i}",
                    account_id=people[i].id or 0,
                    route_id=route.id or 0,
                    sequence=i,
                    lat=30.27 + i * 3e-4,
                    lon=120.15 + d * 1e-3,
                )
                for i in range(meters_each)
            ]
            session.add_all(meters)
            session.flush()
            assignment = assignments.assign_route(
                session,
                route_code=route.code,
                reader=username,
                cycle=f"OV-{tag}",
                window_start=TODAY - timedelta(days=5),
                window_end=TODAY + timedelta(days=5),
            )
            assert assignment.id is not None
            devices.append(
                Device(
                    username=username,
                    device_id=f"bench-{username}",
                    assignment_id=assignment.id,
                    meters=[(m.id or 0, m.lat, m.lon) for m in meters],
                )
            )
            session.commit()
    engine.dispose()
    return devices


def next_push(device: Device, n_readings: int, n_points: int) -> dict[str, Any] | None:
    """The device's next push: its next meters read, and the track walked meanwhile."""
    k = device.pushes_done
    meters = device.meters[k * n_readings : (k + 1) * n_readings]
    if len(meters) < n_readings:
        return None
    first_point = k * n_points
    readings = []
    for i, (meter_id, lat, lon) in enumerate(meters):
        at = START + timedelta(seconds=5 * (first_point + i * n_points // n_readings))
        readings.append(
            {
                "id": str(uuid.uuid4()),
                "assignment_id": device.assignment_id,
                "meter_id": meter_id,
                "value": f"{1000 + k * n_readings + i}.5",
                "read_at": at.isoformat(),
                "confirmed_at": (at + timedelta(seconds=15)).isoformat(),
                "fix": {"lat": lat, "lon": lon, "accuracy_m": 5.0, "fix_time": at.isoformat()},
            }
        )
    lat0, lon0 = meters[0][1], meters[0][2]
    points = [
        {
            "t": (START + timedelta(seconds=5 * (first_point + j))).isoformat(),
            "lat": round(lat0 + j * 1.5e-6, 7),
            "lon": lon0,
            "accuracy_m": 5.0,
        }
        for j in range(n_points)
    ]
    return {"readings": readings, "track_points": points}


def retry_after(response: httpx.Response) -> float:
    value = response.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else 5.0


async def login(http: httpx.AsyncClient, device: Device) -> None:
    while True:
        response = await http.post(
            "/auth/login",
            json={"username": device.username, "password": PASSWORD, "device_id": device.device_id},
        )
        if response.status_code in (429, 503):
            await asyncio.sleep(retry_after(response) * (1 + random.random()))
            continue
        response.raise_for_status()
        device.token = response.json()["access_token"]
        return


async def push_once(
    http: httpx.AsyncClient, device: Device, body: dict[str, Any], tally: Tally
) -> None:
    """Send one push until it is answered 200, as the handheld does: the same push again
    after Retry-After, after a 5xx, or when the answer is lost."""
    raw = gzip.compress(json.dumps(body, separators=(",", ":")).encode())
    headers = {
        "Authorization": f"Bearer {device.token}",
        "Content-Encoding": "gzip",
        "Content-Type": "application/json",
    }
    while True:
        t0 = time.perf_counter()
        try:
            response = await http.post("/sync/push", content=raw, headers=headers)
        except httpx.TransportError:
            tally.lost += 1
            await asyncio.sleep(5)
            continue
        elapsed = time.perf_counter() - t0
        if response.status_code == 200:
            tally.answered += 1
            tally.latencies.append(elapsed)
            results = response.json()["results"]
            bad = [r for r in results if r["status"] not in ("accepted", "duplicate")]
            if bad:
                raise RuntimeError(f"{device.username}: refused {bad[:2]}")
            return
        if response.status_code in (429, 503):
            tally.busy += 1
            tally.busy_latencies.append(elapsed)
            # At least Retry-After, spread a little so that a crowd turned away together
            # does not come back together.
            wait = retry_after(response) * (1 + 0.5 * random.random())
            tally.waited_s += wait
            await asyncio.sleep(wait)
            continue
        if response.status_code >= 500:
            tally.errors += 1
            await asyncio.sleep(5)
            continue
        raise RuntimeError(f"{device.username}: HTTP {response.status_code} {response.text[:200]}")


async def walk(
    http: httpx.AsyncClient,
    device: Device,
    tally: Tally,
    *,
    until: float,
    n_readings: int,
    n_points: int,
    max_pushes: int | None = None,
) -> None:
    """Push one batch after another until the time is up; the last one is always finished."""
    while time.monotonic() < until and (max_pushes is None or device.pushes_done < max_pushes):
        body = next_push(device, n_readings, n_points)
        if body is None:
            return  # the whole route is read
        await push_once(http, device, body, tally)
        device.pushes_done += 1
        device.readings_sent += [r["id"] for r in body["readings"]]
        device.points_sent += len(body["track_points"])


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def bench(
    url: str, devices: list[Device], args: argparse.Namespace
) -> tuple[Tally, float, Tally, float]:
    limits = httpx.Limits(max_connections=len(devices) + 10, max_keepalive_connections=None)
    async with httpx.AsyncClient(base_url=url + API_PREFIX, timeout=60.0, limits=limits) as http:
        await asyncio.gather(*(login(http, d) for d in devices))
        # Baseline: the same pushes from one device, alone.
        alone = Tally()
        t0 = time.perf_counter()
        await walk(
            http,
            devices[0],
            alone,
            until=float("inf"),
            n_readings=args.readings,
            n_points=args.points,
            max_pushes=args.baseline_pushes,
        )
        alone_s = time.perf_counter() - t0
        crowd = Tally()
        t0 = time.perf_counter()
        until = time.monotonic() + args.seconds
        await asyncio.gather(
            *(
                walk(http, d, crowd, until=until, n_readings=args.readings, n_points=args.points)
                for d in devices
            )
        )
        crowd_s = time.perf_counter() - t0
    return alone, alone_s, crowd, crowd_s


def check_stored(url: str, devices: list[Device]) -> tuple[int, int, int, int, int]:
    """Readings sent, held of them, held but never sent; points sent, and held."""
    engine = make_engine(url)
    sent = {rid for d in devices for rid in d.readings_sent}
    with Session(engine) as session:
        held = {
            str(rid)
            for rid in session.exec(
                select(Reading.id).where(
                    col(Reading.assignment_id).in_([d.assignment_id for d in devices])
                )
            )
        }
        points = session.exec(
            select(func.count())
            .select_from(TrackPoint)
            .where(col(TrackPoint.device_id).in_([d.device_id for d in devices]))
        ).one()
    engine.dispose()
    return (
        len(sent),
        len(held & sent),
        len(held - sent),
        sum(d.points_sent for d in devices),
        points,
    )


def serve(url: str, port: int, args: argparse.Namespace) -> subprocess.Popen[bytes]:
    env = os.environ | {
        "GRIDWALK_ENVIRONMENT": "test",
        "GRIDWALK_DATABASE_URL": url,
        "GRIDWALK_SECRET_KEY": secrets.token_urlsafe(40),
        "GRIDWALK_PASSWORD_TIME_COST": "1",
        "GRIDWALK_PASSWORD_MEMORY_KIB": "1024",
        "GRIDWALK_CLOSE_DUE_EVERY_MINUTES": "0",
    }
    for name in ("max_inflight_pushes", "max_inflight_requests", "db_pool_size", "db_max_overflow"):
        value = getattr(args, name)
        if value is not None:
            env[f"GRIDWALK_{name.upper()}"] = str(value)
    return subprocess.Popen(  # noqa: S603 - our own server
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "server.main:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=PROJECT_DIR,
        env=env,
    )


def wait_until_up(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url")
    parser.add_argument("--devices", type=int, default=150)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--readings", type=int, default=10, help="per push")
    parser.add_argument("--points", type=int, default=200, help="per push")
    parser.add_argument("--meters", type=int, default=200, help="per device's route")
    parser.add_argument("--baseline-pushes", type=int, default=5)
    for name in ("max-inflight-pushes", "max-inflight-requests", "db-pool-size", "db-max-overflow"):
        parser.add_argument(f"--{name}", type=int, help="server setting (default: its own)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/overload.db"
        migrate.upgrade(url)
        t0 = time.perf_counter()
        devices = build(url, args.devices, args.meters)
        print(f"built {len(devices)} devices' routes in {time.perf_counter() - t0:.0f} s")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server = serve(url, port, args)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_until_up(base)
            alone, alone_s, crowd, crowd_s = asyncio.run(bench(base, devices, args))
            still_up = httpx.get(base + "/healthz", timeout=5).status_code == 200
        finally:
            server.terminate()
            server.wait(30)
        sent, stored, extra, sent_points, stored_points = check_stored(url, devices)

    backend = url.split(":", 1)[0]
    per_push_alone = alone_s / max(alone.answered, 1)
    rate_alone = alone.answered / alone_s
    rate_crowd = crowd.answered / crowd_s
    print(
        f"database: {backend}; {args.devices} devices for {args.seconds:.0f} s, each push "
        f"{args.readings} readings + {args.points} track points"
    )
    print(
        f"baseline, 1 device alone:  {alone.answered} pushes, p50 "
        f"{pct(alone.latencies, 0.5) * 1000:.0f} ms, {rate_alone:.1f} pushes/s"
    )
    print(
        f"{args.devices} devices:              {crowd.answered} pushes answered 200 in "
        f"{crowd_s:.0f} s ({rate_crowd:.1f} pushes/s, ratio to baseline "
        f"{rate_crowd / rate_alone:.2f})"
    )
    print(
        f"  503/429 (busy):          {crowd.busy} (answered in p50 "
        f"{pct(crowd.busy_latencies, 0.5) * 1000:.0f} ms, p99 "
        f"{pct(crowd.busy_latencies, 0.99) * 1000:.0f} ms); "
        f"{crowd.busy / max(crowd.answered, 1):.2f} per push stored"
    )
    print(f"  500 and other 5xx:       {crowd.errors}   (must be 0)")
    print(f"  no answer within 60 s:   {crowd.lost}")
    print(
        f"  latency of 200s:         p50 {pct(crowd.latencies, 0.5) * 1000:.0f} ms "
        f"(ratio to baseline {pct(crowd.latencies, 0.5) / pct(alone.latencies, 0.5):.1f}), "
        f"p99 {pct(crowd.latencies, 0.99) * 1000:.0f} ms "
        f"(ratio {pct(crowd.latencies, 0.99) / pct(alone.latencies, 0.99):.1f})"
    )
    print(
        f"  per push alone {per_push_alone * 1000:.0f} ms; devices' waiting for Retry-After "
        f"{crowd.waited_s / args.devices:.0f} s each on average"
    )
    print(
        f"stored: {stored} of {sent} readings sent ({extra} never sent), {stored_points} of "
        f"{sent_points} points; server answering afterwards: {still_up}"
    )
    ok = (
        crowd.errors == 0
        and stored == sent
        and extra == 0
        and stored_points == sent_points
        and still_up
    )
    print("OK: no 500, every record stored exactly once" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
