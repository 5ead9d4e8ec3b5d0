"""A reading cycle's rows, generated for the benches and written in bulk (SQLite: executemany;
PostgreSQL: COPY), not through the ORM or the API: grids, readers and their devices, routes of
meters with their accounts, one cycle with an open assignment per route, its readings (and
flags), and, for a walked cycle, each reader's track of the day.

Two kinds of day (`Cycle.walked`): a share of the meters read or skipped some hours ago, without
fixes or track (the whole-cycle overview's figures are counts), or each route walked honestly
yesterday (server.demo.days.honest_day: every meter read with its fix, ~5,300 track points a
route), which is what the audit's verdict is judged from.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, Table, text
from sqlmodel import Session

from common import clock
from server.catalog import accounts
from server.core.config import Settings
from server.demo.days import honest_day
from server.models import (
    Account,
    Assignment,
    Cycle,
    Device,
    Flag,
    Meter,
    Reading,
    Route,
    TrackPoint,
    User,
)
from server.validation.runner import window_tz

PASSWORD = "bench-password"  # noqa: S105 - a throw-away database
CODE = "BENCH-CYCLE"
TZ = window_tz(Settings())
TODAY = clock.now().astimezone(TZ).date()
YESTERDAY = TODAY - timedelta(days=1)
# Where a walked day starts: yesterday morning.
START = datetime(YESTERDAY.year, YESTERDAY.month, YESTERDAY.day, 8, tzinfo=TZ)
FIRST_USER = 1_000
CHUNK = 20_000


@dataclass(frozen=True)
class CycleShape:
    """How big the cycle is and what its day was: `routes` routes of `meters_per_route` in
    `grids` grids, route r read by reader r % `readers`; walked (every meter, with fixes and a
    track) or read in shares, with a share of the readings flagged (some reviewed)."""

    routes: int
    readers: int
    grids: int = 1
    meters_per_route: int = 300
    walked: bool = False
    read_share: float = 0.90
    skip_share: float = 0.03
    flag_share: float = 0.0


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


@dataclass(frozen=True)
class _Meter:
    """What honest_day reads of a meter."""

    id: int
    lat: float
    lon: float
    meter_no: str
    digits: int = 6
    multiplier: Decimal = Decimal(1)
    last_reading: Decimal | None = None
    expected_low: Decimal | None = None
    expected_high: Decimal | None = None


def _t(value: str) -> datetime:
    return datetime.fromisoformat(value)


def generate(engine: Engine, settings: Settings, shape: CycleShape) -> dict[str, int]:
    """The cycle of `shape`, with an admin (bench-admin) and GRID-01's supervisor (bench-sup),
    both signing in with PASSWORD; gives the rows of each table."""
    rng = random.Random(12)
    now = clock.now().replace(microsecond=0)
    with Session(engine) as session:
        for g in range(shape.grids):
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
    per_route = shape.meters_per_route
    if shape.walked:
        window = (YESTERDAY - timedelta(days=1), TODAY + timedelta(days=2))
    else:
        window = (TODAY - timedelta(days=2), TODAY + timedelta(days=2))
    counts: dict[str, int] = {}
    with engine.begin() as conn:
        grid_ids = [row.id for row in conn.execute(text("SELECT id FROM grids ORDER BY code"))]
        counts["users"] = bulk(
            conn,
            User,
            ("id", "username", "full_name", "password_hash", "role", "grid_id", "active",
             "created_at"),
            (
                (FIRST_USER + i, f"reader{i:03d}", f"Reader {i:03d}", "not-a-login", "reader",
                 grid_ids[i * shape.grids // shape.readers], True, now)
                for i in range(shape.readers)
            ),
        )  # fmt: skip
        bulk(
            conn,
            Device,
            ("id", "last_user_id", "first_seen_at", "last_seen_at", "token_generation"),
            ((f"dev-{i:03d}", FIRST_USER + i, now, now, 0) for i in range(shape.readers)),
        )
        counts["routes"] = bulk(
            conn,
            Route,
            ("id", "code", "name", "grid_id", "created_at"),
            (
                (r + 1, f"R{r + 1:04d}", f"Route {r + 1}",
                 grid_ids[r * shape.grids // shape.routes], now)
                for r in range(shape.routes)
            ),
        )  # fmt: skip
        n_meters = shape.routes * per_route
        counts["accounts"] = bulk(
            conn,
            Account,
            ("id", "account_no", "customer_name", "address", "active", "created_at", "updated_at"),
            (
                (i + 1, f"A{i + 1:07d}", f"Customer {i + 1}", f"{i + 1} Long Street", True, now,
                 now)
                for i in range(n_meters)
            ),
        )  # fmt: skip
        # A street a route, 1 km apart: no route's track passes another's meters.
        meters = [
            _Meter(
                i + 1,
                30.27 + (i % per_route) * 3e-4,
                120.15 + (i // per_route) * 1e-2,
                f"M{i + 1:07d}",
            )
            for i in range(n_meters)
        ]
        counts["meters"] = bulk(
            conn,
            Meter,
            ("id", "meter_no", "account_id", "route_id", "sequence", "lat", "lon", "digits",
             "multiplier", "change_seq", "updated_at"),
            (
                (m.id, m.meter_no, m.id, (m.id - 1) // per_route + 1, (m.id - 1) % per_route,
                 m.lat, m.lon, 6, Decimal(1), 0, now)
                for m in meters
            ),
        )  # fmt: skip
        bulk(conn, Cycle, ("id", "code", "created_at"), [(1, CODE, now)])
        reader_of = [r % shape.readers for r in range(shape.routes)]
        counts["assignments"] = bulk(
            conn,
            Assignment,
            ("id", "route_id", "cycle_id", "reader_id", "window_start", "window_end", "status",
             "change_seq", "created_at"),
            (
                (r + 1, r + 1, 1, FIRST_USER + reader_of[r], *window, "open", 0, now)
                for r in range(shape.routes)
            ),
        )  # fmt: skip
        readings: list[tuple[Any, ...]] = []
        points: list[tuple[Any, ...]] = []
        if shape.walked:
            for r in range(shape.routes):
                user, device = FIRST_USER + reader_of[r], f"dev-{reader_of[r]:03d}"
                day = meters[r * per_route : (r + 1) * per_route]
                wire_readings, wire_track = honest_day(day, START, assignment_id=r + 1, seed=r)
                for w in wire_readings:
                    fix = w["fix"]
                    readings.append(
                        (uuid.UUID(w["id"]), r + 1, w["meter_id"], Decimal(w["value"]), None,
                         _t(w["read_at"]), _t(w["confirmed_at"]), fix["lat"], fix["lon"],
                         fix["accuracy_m"], _t(fix["fix_time"]), fix["provider"], fix["mock"],
                         user, device, now, "0" * 64)
                    )  # fmt: skip
                points.extend(
                    (device, user, _t(p["t"]), p["lat"], p["lon"], p["accuracy_m"], p["provider"],
                     p["mock"], now)
                    for p in wire_track
                )  # fmt: skip
        else:
            read_at = now - timedelta(hours=3)
            for i in range(n_meters):
                draw = rng.random()
                if draw >= shape.read_share + shape.skip_share:
                    continue
                route = i // per_route
                skipped = draw >= shape.read_share
                readings.append(
                    (uuid.uuid4(), route + 1, i + 1, None if skipped else Decimal(1000 + i % 500),
                     "no_access" if skipped else None, read_at, read_at, None, None, None, None,
                     None, None, FIRST_USER + reader_of[route], f"dev-{reader_of[route]:03d}", now,
                     "0" * 64)
                )  # fmt: skip
        counts["readings"] = bulk(
            conn,
            Reading,
            ("id", "assignment_id", "meter_id", "value", "skip_code", "read_at", "confirmed_at",
             "fix_lat", "fix_lon", "fix_accuracy_m", "fix_time", "fix_provider", "fix_mock",
             "user_id", "device_id", "received_at", "content_hash"),
            readings,
        )  # fmt: skip
        if points:
            counts["track_points"] = bulk(
                conn,
                TrackPoint,
                ("device_id", "user_id", "t", "lat", "lon", "accuracy_m", "provider", "mock",
                 "received_at"),
                points,
            )  # fmt: skip
        if shape.flag_share:
            flagged = rng.sample(readings, int(len(readings) * shape.flag_share))
            counts["flags"] = bulk(
                conn,
                Flag,
                ("assignment_id", "reading_id", "meter_id", "key", "code", "severity", "message",
                 "review", "created_at"),
                (
                    (row[1], row[0], row[2], f"far_from_meter:{row[0]}", "far_from_meter",
                     "fail" if k % 3 == 0 else "warn", "far from the meter",
                     ("accepted", "rejected", None, None)[k % 4], now)
                    for k, row in enumerate(flagged)
                ),
            )  # fmt: skip
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
