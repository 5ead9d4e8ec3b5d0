"""Test data, made through the real services (so the tests exercise the paths the app uses)."""

from __future__ import annotations

import math
import sqlite3
import struct
import uuid
import zlib
from contextlib import closing
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from common import clock
from common.geo import offset
from common.rules.facts import CHINA_STANDARD_TIME
from server.catalog import accounts, assignments
from server.catalog.imports import ImportReport, import_meters_csv
from server.core.config import Settings
from server.models import Account, Assignment, Meter, Route

PASSWORD = "correct-horse-battery"
BASE_LAT, BASE_LON = 30.2741, 120.1551

# Time is an input. NOW is this run's "now", read once from the real clock (so a run under
# `faketime '+120 days'` moves it too); the `clock` fixture freezes server and handheld at it,
# and every date a test needs is written relative to it, never as a calendar date.
LOCAL = CHINA_STANDARD_TIME  # the utility's local time, in which windows are dated
NOW = clock.now().replace(microsecond=0)
TODAY = NOW.astimezone(LOCAL).date()
CYCLE = f"{TODAY:%Y-%m}"
WINDOW_START, WINDOW_END = TODAY - timedelta(days=5), TODAY + timedelta(days=5)
# Last cycle's reading of every meter, and a reading taken this morning (before NOW).
LAST_READ_AT = NOW - timedelta(days=31)
READ_AT = NOW - timedelta(hours=2)


def local_time(day: date, hour: int, minute: int = 0) -> datetime:
    """`hour:minute` of a local day, as an aware time."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=LOCAL)


def make_user(
    session: Session, settings: Settings, username: str, role: str, grid_code: str | None = None
) -> Any:
    if grid_code is not None:
        accounts.get_or_create_grid(session, code=grid_code)
    user = accounts.create_user(
        session, settings, username=username, password=PASSWORD, role=role, grid_code=grid_code
    )
    session.commit()
    return user


# Customers as a utility in China has them: the screens and exports are tested in Chinese.
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN_NAMES = ("芳", "强", "秀英", "伟", "敏", "静", "磊", "洋", "艳", "军", "杰", "娟", "涛")


def make_route(
    session: Session, code: str, n_meters: int, *, grid_code: str = "G1", digits: int = 6
) -> Route:
    """A route of `n_meters` meters about 40 m apart along a street, with their accounts."""
    grid = accounts.get_or_create_grid(session, code=grid_code)
    route = Route(code=code, name=f"庆春路{code}段", grid_id=grid.id)
    session.add(route)
    session.flush()
    for i in range(n_meters):
        account = Account(
            account_no=f"{code}-A{i:04d}",
            customer_name=f"{SURNAMES[i % len(SURNAMES)]}{GIVEN_NAMES[i % len(GIVEN_NAMES)]}",
            address=f"杭州市上城区庆春路{i + 1}号",
            phone=f"1380571{i:04d}",
        )
        session.add(account)
        session.flush()
        session.add(
            Meter(
                meter_no=f"{code}-M{i:04d}",
                account_id=account.id,
                route_id=route.id,
                sequence=(i + 1) * 10,
                lat=BASE_LAT + i * 0.00036,
                lon=BASE_LON,
                digits=digits,
                last_reading=1000 + i,
                last_read_at=LAST_READ_AT,
                expected_low=50,
                expected_high=400,
            )
        )
    session.commit()
    return route


def assign(
    session: Session,
    route_code: str,
    reader: str,
    cycle: str = CYCLE,
    start: date = WINDOW_START,
    end: date = WINDOW_END,
) -> Assignment:
    assignment = assignments.assign_route(
        session,
        route_code=route_code,
        reader=reader,
        cycle=cycle,
        window_start=start,
        window_end=end,
    )
    session.commit()
    return assignment


def meters_of(session: Session, route: Route) -> list[Meter]:
    meters = list(
        session.exec(
            select(Meter).where(Meter.route_id == route.id).order_by(Meter.sequence)  # type: ignore[arg-type]
        )
    )
    session.commit()  # end the read: the next read sees what requests wrote meanwhile
    return meters


def login(client: TestClient, username: str, device_id: str = "device-0001") -> dict[str, Any]:
    response = client.post(
        "/api/v1/auth/login",
        json={"username": username, "password": PASSWORD, "device_id": device_id},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def auth(client: TestClient, username: str, device_id: str = "device-0001") -> dict[str, str]:
    return {"Authorization": f"Bearer {login(client, username, device_id)['access_token']}"}


def near(meter: Meter) -> tuple[float, float]:
    """Where a handheld's fix puts a reader standing at `meter`: a few metres off (a real fix is
    never exactly on the meter's coordinates), in a direction set by the meter, so every run
    is the same."""
    bearing = (meter.id or 0) * 2.4  # radians: successive meters' fixes point different ways
    return offset(meter.lat, meter.lon, 4.0 * math.cos(bearing), 4.0 * math.sin(bearing))


def reading(
    assignment_id: int, meter: Meter, value: Any = "1100.5", *, at: datetime = READ_AT, **extra: Any
) -> dict[str, Any]:
    lat, lon = near(meter)
    body: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "assignment_id": assignment_id,
        "meter_id": meter.id,
        "value": value,
        "read_at": at.isoformat(),
        "confirmed_at": (at + timedelta(seconds=20)).isoformat(),
        "fix": {
            "lat": lat,
            "lon": lon,
            "accuracy_m": 6.0,
            "fix_time": (at - timedelta(seconds=2)).isoformat(),
            "provider": "gps",
            "mock": False,
        },
        "reread_of": None,
    }
    body.update(extra)
    return body


def track_point(
    t: datetime, lat: float = BASE_LAT, lon: float = BASE_LON, **extra: Any
) -> dict[str, Any]:
    return {"t": t.isoformat(), "lat": lat, "lon": lon, "accuracy_m": 5.0, **extra}


@dataclass
class ReaderDay:
    """A reader with a route of meters assigned and logged in on a device."""

    route: Route
    meters: list[Meter]
    assignment: Assignment
    headers: dict[str, str]


def reader_day(
    session: Session,
    settings: Settings,
    client: TestClient,
    *,
    username: str = "reader1",
    route_code: str = "R-1",
    n_meters: int = 5,
    device_id: str = "device-0001",
) -> ReaderDay:
    make_user(session, settings, username, "reader", grid_code="G1")
    route = make_route(session, route_code, n_meters)
    assignment = assign(session, route_code, username)
    return ReaderDay(
        route, meters_of(session, route), assignment, auth(client, username, device_id)
    )


def reader_days(
    session: Session, settings: Settings, client: TestClient, n: int, *, n_meters: int = 3
) -> list[ReaderDay]:
    """`n` readers (reader0…), each with a route of `n_meters` meters (R-0…) and a handheld of
    their own."""
    return [
        reader_day(
            session,
            settings,
            client,
            username=f"reader{i}",
            route_code=f"R-{i}",
            device_id=f"device-{i:04d}",
            n_meters=n_meters,
        )
        for i in range(n)
    ]


def dispatch_fault(office: TestClient, agent: dict[str, str], **extra: Any) -> dict[str, Any]:
    """An agent enters an urgent fault for crew1 on R-1's second account; gives the job."""
    response = office.post(
        "/api/v1/jobs",
        headers=agent,
        json={
            "kind": "fault",
            "urgency": "urgent",
            "content": "transformer fuse blown",
            "lat": BASE_LAT,
            "lon": BASE_LON,
            "accounts": ["R-1-A0001"],
            "crew": ["crew1"],
            **extra,
        },
    )
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


def imported(session: Session, text: str, **options: Any) -> ImportReport:
    """The meter import run as a command runs it: its own unit of work, committed."""
    report = import_meters_csv(session, text, actor_id=None, **options)
    session.commit()
    return report


def solid_png(rgb: tuple[int, int, int], size: int = 256) -> bytes:
    """A map tile of one colour, as PNG (made here: no imaging library needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * size  # filter byte 0, then the row's pixels
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * size))
        + chunk(b"IEND", b"")
    )


def make_mbtiles(path: Path, tiles: dict[tuple[int, int, int], bytes], **metadata: str) -> Path:
    """An MBTiles file holding `tiles`, keyed by XYZ (z, x, y as a web map asks): stored by
    TMS row, counted from the south, as the format has it."""
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE metadata (name TEXT, value TEXT)")
        conn.execute(
            "CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, "
            "tile_data BLOB)"
        )
        conn.executemany(
            "INSERT INTO metadata VALUES (?, ?)",
            {"name": "test base map", "format": "png", **metadata}.items(),
        )
        conn.executemany(
            "INSERT INTO tiles VALUES (?, ?, ?, ?)",
            [(z, x, (1 << z) - 1 - y, data) for (z, x, y), data in tiles.items()],
        )
        conn.commit()
    return path


def tile_of(lat: float, lon: float, z: int) -> tuple[int, int]:
    """The XYZ column and row of the web-map tile holding a point at zoom `z`."""
    n = 1 << z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y
