"""The device's own database: pulled routes and meters, drafts, confirmed readings, skips, the
GPS track, job events, and the outbox state of each record.

Every write is one SQLite transaction (WAL, synchronous=FULL): killing the app at any instant
leaves either the whole write or none of it. A confirmed reading is locked by triggers, so no
code path on the device can change it either. Record ids are UUIDs made here, so a record pushed
twice (the app died before it saw the answer) is a `duplicate` on the server, never a second copy.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from common import clock, wire
from common.job_lifecycle import JobEventKind, JobStatus, status_after
from common.wire import SKIP_CODES, Fix, iso
from mobile.core import migrations


class StoreError(Exception):
    """An action the store refuses, with a sentence for the screen."""


class AlreadyReadError(StoreError):
    pass


class LockedError(StoreError):
    pass


def _dec(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


@dataclass(frozen=True)
class AssignmentView:
    id: int
    route_code: str
    route_name: str
    cycle: str
    window_start: str
    window_end: str
    total: int
    read: int
    skipped: int

    @property
    def left(self) -> int:
        return self.total - self.read - self.skipped


@dataclass(frozen=True)
class MeterView(wire.Meter):
    """A meter of a route as the screens show it: the meter as the wire brought it, plus where
    it stands on this device."""

    assignment_id: int
    status: str  # todo | read | skipped
    reading_id: str | None
    reading_value: Decimal | None
    reread_order_id: str | None  # an open re-read order: a task on this meter
    reread_reason: str | None

    @property
    def done(self) -> bool:
        return self.status != "todo" and self.reread_order_id is None


@dataclass(frozen=True)
class ReadingView:
    id: str
    assignment_id: int
    meter_id: int
    value: Decimal | None
    skip_code: str | None
    note: str | None
    read_at: str | None
    confirmed_at: str | None
    state: str
    sync_status: str
    sync_error: str | None
    sync_detail: str | None
    reread_of: str | None

    @property
    def locked(self) -> bool:
        return self.state == "confirmed"


@dataclass(frozen=True)
class SyncState:
    waiting: int
    rejected: int
    last_sync_at: str | None
    last_error: str | None


@dataclass(frozen=True)
class JobView:
    id: str
    kind: str
    urgency: str
    status: str
    content: str
    crew: list[str]
    lat: float | None
    lon: float | None
    address: str | None
    expected_finish: str | None
    started_at: str | None
    finished_at: str | None


@dataclass
class OutboxBatch:
    """One push and the keys of what it carries, to mark when answered."""

    push: wire.Push
    reading_ids: list[str]
    event_ids: list[str]
    point_times: list[str]

    @property
    def empty(self) -> bool:
        return not (self.reading_ids or self.event_ids or self.point_times)


class Store:
    """The device database. Thread-safe: the sync thread and the UI share one connection."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a confirmation is on disk before the screen says it is locked.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=10000")
        with self._lock:
            migrations.migrate(self._db)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._db.execute(sql, params))

    # ------------------------------------------------------------------------------ settings

    def setting(self, key: str, default: str | None = None) -> str | None:
        rows = self._rows("SELECT value FROM settings WHERE key = ?", (key,))
        return rows[0]["value"] if rows else default

    def set_settings(self, **values: str | None) -> None:
        with self._tx() as db:
            for key, value in values.items():
                if value is None:
                    db.execute("DELETE FROM settings WHERE key = ?", (key,))
                else:
                    db.execute(
                        "INSERT INTO settings (key, value) VALUES (?, ?) "
                        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        (key, value),
                    )

    def device_id(self) -> str:
        """This handheld's id: made once, on first start, and kept."""
        with self._tx() as db:
            row = db.execute("SELECT value FROM settings WHERE key = 'device_id'").fetchone()
            if row is not None:
                return str(row["value"])
            device_id = f"gw-{uuid.uuid4().hex}"
            db.execute("INSERT INTO settings (key, value) VALUES ('device_id', ?)", (device_id,))
            return device_id

    # ------------------------------------------------------------------------------ pulled work

    def apply_pull(self, page: wire.PullPage) -> None:
        """Store one pull page and its cursor together: a crash in between re-pulls the page."""
        with self._tx() as db:
            for a in page.assignments:
                db.execute(
                    "INSERT INTO assignments (id, route_code, route_name, cycle, window_start, "
                    "window_end, withdrawn) VALUES (?, ?, ?, ?, ?, ?, 0) ON CONFLICT (id) DO "
                    "UPDATE SET route_code = excluded.route_code, route_name = "
                    "excluded.route_name, cycle = excluded.cycle, window_start = "
                    "excluded.window_start, window_end = excluded.window_end, withdrawn = 0",
                    (
                        a.id,
                        a.route_code,
                        a.route_name,
                        a.cycle,
                        a.window_start.isoformat(),
                        a.window_end.isoformat(),
                    ),
                )
                for m in a.meters:
                    db.execute(
                        "INSERT INTO meters (assignment_id, id, meter_no, account_no, "
                        "customer_name, address, lat, lon, digits, multiplier, last_reading, "
                        "last_read_at, expected_low, expected_high, sequence, withdrawn) VALUES "
                        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0) ON CONFLICT "
                        "(assignment_id, id) DO UPDATE SET meter_no = excluded.meter_no, "
                        "account_no = excluded.account_no, customer_name = "
                        "excluded.customer_name, address = excluded.address, lat = excluded.lat, "
                        "lon = excluded.lon, digits = excluded.digits, multiplier = "
                        "excluded.multiplier, last_reading = excluded.last_reading, "
                        "last_read_at = excluded.last_read_at, expected_low = "
                        "excluded.expected_low, expected_high = excluded.expected_high, "
                        "sequence = excluded.sequence, withdrawn = 0",
                        (
                            a.id,
                            m.id,
                            m.meter_no,
                            m.account_no,
                            m.customer_name,
                            m.address,
                            m.lat,
                            m.lon,
                            m.digits,
                            str(m.multiplier),
                            _str(m.last_reading),
                            _iso(m.last_read_at),
                            _str(m.expected_low),
                            _str(m.expected_high),
                            m.sequence,
                        ),
                    )
            for o in page.reread_orders:
                db.execute(
                    "INSERT INTO reread_orders (id, assignment_id, meter_id, reading_id, reason, "
                    "ordered_at, status) VALUES (?, ?, ?, ?, ?, ?, 'open') ON CONFLICT (id) DO "
                    "UPDATE SET reason = excluded.reason",
                    (
                        o.id,
                        o.assignment_id,
                        o.meter_id,
                        o.reading_id,
                        o.reason,
                        iso(o.ordered_at),
                    ),
                )
            for j in page.jobs:
                db.execute(
                    "INSERT INTO jobs (id, kind, urgency, status, content, crew, lat, lon, "
                    "address, expected_finish, started_at, finished_at, withdrawn) VALUES "
                    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0) ON CONFLICT (id) DO UPDATE SET "
                    "kind = excluded.kind, urgency = excluded.urgency, status = "
                    "excluded.status, content = excluded.content, crew = excluded.crew, "
                    "lat = excluded.lat, lon = excluded.lon, address = excluded.address, "
                    "expected_finish = excluded.expected_finish, started_at = "
                    "excluded.started_at, finished_at = excluded.finished_at, withdrawn = 0",
                    (
                        j.id,
                        j.kind,
                        j.urgency,
                        j.status,
                        j.content,
                        json.dumps(list(j.crew)),
                        j.lat,
                        j.lon,
                        j.address,
                        _iso(j.expected_finish),
                        _iso(j.started_at),
                        _iso(j.finished_at),
                    ),
                )
            for w in page.withdrawn:
                kind, ident = w.type, w.id
                if kind == "assignment":
                    db.execute("UPDATE assignments SET withdrawn = 1 WHERE id = ?", (int(ident),))
                elif kind == "meter":
                    db.execute(
                        "UPDATE meters SET withdrawn = 1 WHERE id = ? AND assignment_id = ?",
                        (int(ident), w.assignment_id),
                    )
                elif kind == "reread_order":
                    db.execute("UPDATE reread_orders SET status = 'closed' WHERE id = ?", (ident,))
                elif kind == "job":
                    db.execute("UPDATE jobs SET withdrawn = 1 WHERE id = ?", (ident,))
            db.execute(
                "INSERT INTO settings (key, value) VALUES ('cursor', ?) ON CONFLICT (key) "
                "DO UPDATE SET value = excluded.value",
                (page.cursor,),
            )

    def assignments(self) -> list[AssignmentView]:
        """Today's assignments with their progress."""
        rows = self._rows(
            """
            SELECT a.*, COUNT(m.id) AS total,
                   SUM(CASE WHEN r.value IS NOT NULL THEN 1 ELSE 0 END) AS n_read,
                   SUM(CASE WHEN r.skip_code IS NOT NULL THEN 1 ELSE 0 END) AS n_skipped
            FROM assignments a
            LEFT JOIN meters m ON m.assignment_id = a.id AND m.withdrawn = 0
            LEFT JOIN readings r ON r.id = (
                SELECT id FROM readings x WHERE x.assignment_id = a.id AND x.meter_id = m.id
                AND x.state = 'confirmed' ORDER BY x.confirmed_at DESC LIMIT 1)
            WHERE a.withdrawn = 0
            GROUP BY a.id ORDER BY a.window_end, a.route_code
            """
        )
        return [
            AssignmentView(
                id=r["id"],
                route_code=r["route_code"],
                route_name=r["route_name"],
                cycle=r["cycle"],
                window_start=r["window_start"],
                window_end=r["window_end"],
                total=r["total"],
                read=r["n_read"] or 0,
                skipped=r["n_skipped"] or 0,
            )
            for r in rows
        ]

    def meters(self, assignment_id: int) -> list[MeterView]:
        """The route's meters in sequence, each with its state and any open re-read task."""
        rows = self._rows(
            """
            SELECT m.*, r.id AS reading_id, r.value AS reading_value,
                   r.skip_code AS reading_skip, o.id AS order_id, o.reason AS order_reason
            FROM meters m
            LEFT JOIN readings r ON r.id = (
                SELECT id FROM readings x WHERE x.assignment_id = m.assignment_id
                AND x.meter_id = m.id AND x.state = 'confirmed'
                ORDER BY x.confirmed_at DESC LIMIT 1)
            LEFT JOIN reread_orders o ON o.assignment_id = m.assignment_id
                AND o.meter_id = m.id AND o.status = 'open'
                AND NOT EXISTS (SELECT 1 FROM readings y WHERE y.reread_of = o.id
                                AND y.state = 'confirmed')
            WHERE m.assignment_id = ? AND m.withdrawn = 0
            ORDER BY m.sequence, m.id
            """,
            (assignment_id,),
        )
        return [_meter_view(r) for r in rows]

    def meter(self, assignment_id: int, meter_id: int) -> MeterView:
        for m in self.meters(assignment_id):
            if m.id == meter_id:
                return m
        raise StoreError(f"meter {meter_id} is not on this route")

    # ------------------------------------------------------------------------------ readings

    def draft(self, assignment_id: int, meter_id: int) -> ReadingView | None:
        rows = self._rows(
            "SELECT * FROM readings WHERE assignment_id = ? AND meter_id = ? AND state = 'draft'",
            (assignment_id, meter_id),
        )
        return _reading_view(rows[0]) if rows else None

    def save_draft(
        self,
        assignment_id: int,
        meter_id: int,
        *,
        value: Decimal | None,
        read_at: datetime,
        fix: Fix | None,
        reread_of: str | None = None,
    ) -> str:
        """Keep what was typed, so that a crash mid-entry loses nothing; returns the draft id."""
        with self._tx() as db:
            row = db.execute(
                "SELECT id FROM readings WHERE assignment_id = ? AND meter_id = ? "
                "AND state = 'draft'",
                (assignment_id, meter_id),
            ).fetchone()
            fix_json = json.dumps(fix.to_json()) if fix else None
            if row is None:
                reading_id = str(uuid.uuid4())
                db.execute(
                    "INSERT INTO readings (id, assignment_id, meter_id, value, read_at, fix, "
                    "reread_of, state) VALUES (?, ?, ?, ?, ?, ?, ?, 'draft')",
                    (
                        reading_id,
                        assignment_id,
                        meter_id,
                        _str(value),
                        iso(read_at),
                        fix_json,
                        reread_of,
                    ),
                )
                return reading_id
            db.execute(
                "UPDATE readings SET value = ?, read_at = ?, fix = ?, reread_of = ? WHERE id = ?",
                (_str(value), iso(read_at), fix_json, reread_of, row["id"]),
            )
            return str(row["id"])

    def confirm_reading(
        self,
        assignment_id: int,
        meter_id: int,
        *,
        value: Decimal,
        read_at: datetime,
        fix: Fix | None,
        reread_of: str | None = None,
        confirmed_at: datetime | None = None,
    ) -> ReadingView:
        """Confirm a register value: from now on it is locked, and it waits in the outbox."""
        if not value.is_finite() or value < 0:
            raise StoreError("a register value is a number of zero or more")
        return self._confirm(
            assignment_id,
            meter_id,
            value=value,
            skip_code=None,
            note=None,
            read_at=read_at,
            fix=fix,
            reread_of=reread_of,
            confirmed_at=confirmed_at or clock.now(),
        )

    def skip_meter(
        self,
        assignment_id: int,
        meter_id: int,
        *,
        skip_code: str,
        note: str,
        read_at: datetime,
        fix: Fix | None,
        reread_of: str | None = None,
    ) -> ReadingView:
        """Record why a meter was not read; a skip is confirmed and locked like a reading."""
        if skip_code not in SKIP_CODES:
            raise StoreError(f"skip code must be one of {', '.join(SKIP_CODES)}")
        return self._confirm(
            assignment_id,
            meter_id,
            value=None,
            skip_code=skip_code,
            note=note.strip() or None,
            read_at=read_at,
            fix=fix,
            reread_of=reread_of,
            confirmed_at=clock.now(),
        )

    def _confirm(
        self,
        assignment_id: int,
        meter_id: int,
        *,
        value: Decimal | None,
        skip_code: str | None,
        note: str | None,
        read_at: datetime,
        fix: Fix | None,
        reread_of: str | None,
        confirmed_at: datetime,
    ) -> ReadingView:
        with self._tx() as db:
            if (
                db.execute(
                    "SELECT 1 FROM meters WHERE assignment_id = ? AND id = ?",
                    (assignment_id, meter_id),
                ).fetchone()
                is None
            ):
                raise StoreError(f"meter {meter_id} is not on this route")
            if reread_of is None:
                held = db.execute(
                    "SELECT 1 FROM readings WHERE assignment_id = ? AND meter_id = ? AND "
                    "state = 'confirmed'",
                    (assignment_id, meter_id),
                ).fetchone()
                if held is not None:
                    raise AlreadyReadError(
                        "this meter is already read; a new reading needs a "
                        "supervisor's re-read order"
                    )
            else:
                order = db.execute(
                    "SELECT status FROM reread_orders WHERE id = ?", (reread_of,)
                ).fetchone()
                answered = db.execute(
                    "SELECT 1 FROM readings WHERE reread_of = ? AND state = 'confirmed'",
                    (reread_of,),
                ).fetchone()
                if order is None or order["status"] != "open" or answered is not None:
                    raise AlreadyReadError("this re-read order is already answered or closed")
            draft = db.execute(
                "SELECT id FROM readings WHERE assignment_id = ? AND meter_id = ? "
                "AND state = 'draft'",
                (assignment_id, meter_id),
            ).fetchone()
            reading_id = draft["id"] if draft is not None else str(uuid.uuid4())
            values = (
                assignment_id,
                meter_id,
                _str(value),
                skip_code,
                note,
                iso(read_at),
                iso(confirmed_at),
                json.dumps(fix.to_json()) if fix else None,
                reread_of,
            )
            if draft is None:
                db.execute(
                    "INSERT INTO readings (assignment_id, meter_id, value, skip_code, note, "
                    "read_at, confirmed_at, fix, reread_of, state, sync_status, id) VALUES "
                    "(?, ?, ?, ?, ?, ?, ?, ?, ?, 'confirmed', 'pending', ?)",
                    (*values, reading_id),
                )
            else:
                db.execute(
                    "UPDATE readings SET assignment_id = ?, meter_id = ?, value = ?, "
                    "skip_code = ?, note = ?, read_at = ?, confirmed_at = ?, fix = ?, "
                    "reread_of = ?, state = 'confirmed', sync_status = 'pending' WHERE id = ?",
                    (*values, reading_id),
                )
            row = db.execute("SELECT * FROM readings WHERE id = ?", (reading_id,)).fetchone()
            return _reading_view(row)

    def reading(self, reading_id: str) -> ReadingView:
        rows = self._rows("SELECT * FROM readings WHERE id = ?", (reading_id,))
        if not rows:
            raise StoreError(f"no reading {reading_id}")
        return _reading_view(rows[0])

    def readings(self, *, state: str = "confirmed") -> list[ReadingView]:
        return [
            _reading_view(r)
            for r in self._rows(
                "SELECT * FROM readings WHERE state = ? ORDER BY confirmed_at, id", (state,)
            )
        ]

    # ------------------------------------------------------------------------------ track

    def add_track_point(
        self,
        *,
        t: datetime,
        lat: float,
        lon: float,
        accuracy_m: float | None,
        speed: float | None = None,
        provider: str = "gps",
        mock: bool = False,
    ) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO track_points (t, lat, lon, accuracy_m, speed, provider, "
                "mock) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (iso(t), lat, lon, accuracy_m, speed, provider, int(mock)),
            )

    def track_count(self) -> int:
        return int(self._rows("SELECT COUNT(*) AS n FROM track_points")[0]["n"])

    # ------------------------------------------------------------------------------ jobs

    def jobs(self) -> list[JobView]:
        return [
            JobView(
                id=r["id"],
                kind=r["kind"],
                urgency=r["urgency"],
                status=r["status"],
                content=r["content"],
                crew=json.loads(r["crew"]),
                lat=r["lat"],
                lon=r["lon"],
                address=r["address"],
                expected_finish=r["expected_finish"],
                started_at=r["started_at"],
                finished_at=r["finished_at"],
            )
            for r in self._rows(
                "SELECT * FROM jobs WHERE withdrawn = 0 ORDER BY "
                "status = 'finished', expected_finish, id"
            )
        ]

    def job(self, job_id: str) -> JobView:
        for j in self.jobs():
            if j.id == job_id:
                return j
        raise StoreError(f"no job {job_id}")

    def log_job_event(self, event: wire.JobEvent) -> None:
        """Log a job event for the outbox and apply it to the local job at once (offline); a
        `created` event (a job opened on the spot) makes the local job from what it carries."""
        with self._tx() as db:
            if event.kind == JobEventKind.CREATED:
                db.execute(
                    "INSERT OR IGNORE INTO jobs (id, kind, urgency, status, content, crew, lat, "
                    "lon, address) VALUES (?, ?, ?, 'created', ?, ?, ?, ?, ?)",
                    (
                        event.job_id,
                        event.job_kind,
                        event.urgency or "normal",
                        event.content or "",
                        json.dumps(list(event.crew or ())),
                        event.fix.lat if event.fix else None,
                        event.fix.lon if event.fix else None,
                        event.address,
                    ),
                )
            _apply_job_event(db, event)
            db.execute(
                "INSERT INTO job_events (id, job_id, kind, at, body) VALUES (?, ?, ?, ?, ?)",
                (event.id, event.job_id, event.kind, iso(event.at), json.dumps(event.to_json())),
            )

    def job_events(self, job_id: str | None = None) -> list[dict[str, Any]]:
        """The job events logged here, in time order, with their sync state."""
        where, params = ("WHERE job_id = ?", (job_id,)) if job_id else ("", ())
        return [
            {
                "id": r["id"],
                "job_id": r["job_id"],
                "kind": r["kind"],
                "at": r["at"],
                "sync_status": r["sync_status"],
                "sync_error": r["sync_error"],
            }
            for r in self._rows(f"SELECT * FROM job_events {where} ORDER BY at, id", params)  # noqa: S608 - a fixed clause
        ]

    # ------------------------------------------------------------------------------ outbox

    def outbox_batch(
        self, *, max_readings: int = 200, max_points: int = 2000, max_events: int = 200
    ) -> OutboxBatch:
        """The next push: confirmed readings, job events and track points not yet answered."""
        readings = self._rows(
            "SELECT * FROM readings WHERE state = 'confirmed' AND sync_status = 'pending' "
            "ORDER BY confirmed_at, id LIMIT ?",
            (max_readings,),
        )
        events = self._rows(
            "SELECT * FROM job_events WHERE sync_status = 'pending' ORDER BY at, id LIMIT ?",
            (max_events,),
        )
        points = self._rows(
            "SELECT * FROM track_points WHERE sync_status = 'pending' ORDER BY t LIMIT ?",
            (max_points,),
        )
        push = wire.Push(
            readings=tuple(_reading_wire(r) for r in readings),
            track_points=tuple(_point_wire(p) for p in points),
            job_events=tuple(wire.JobEvent.from_json(json.loads(e["body"])) for e in events),
        )
        return OutboxBatch(
            push=push,
            reading_ids=[r["id"] for r in readings],
            event_ids=[e["id"] for e in events],
            point_times=[p["t"] for p in points],
        )

    def record_push(self, batch: OutboxBatch, answer: wire.PushAnswer) -> None:
        """Mark what the server answered: accepted and duplicate leave the outbox; rejected
        stays visible with the server's reason and is not sent again."""
        results = answer.results
        ids = batch.reading_ids + batch.event_ids
        if len(results) != len(ids):
            raise StoreError("the server's answer does not match the batch sent")
        synced_at = iso(clock.now())
        with self._tx() as db:
            for i, (item_id, result) in enumerate(zip(ids, results, strict=True)):
                table = "readings" if i < len(batch.reading_ids) else "job_events"
                db.execute(
                    f"UPDATE {table} SET sync_status = ?, sync_error = ?, sync_detail = ?"  # noqa: S608 - table is one of two names
                    + (", synced_at = ?" if table == "readings" else "")
                    + " WHERE id = ?",
                    (
                        result.status,
                        result.error,
                        result.detail,
                        *((synced_at,) if table == "readings" else ()),
                        item_id,
                    ),
                )
            rejected = {r.index: r.error for r in answer.track.rejected}
            for index, t in enumerate(batch.point_times):
                if index in rejected:
                    db.execute(
                        "UPDATE track_points SET sync_status = 'rejected', sync_error = ? "
                        "WHERE t = ?",
                        (rejected[index], t),
                    )
                else:
                    db.execute("UPDATE track_points SET sync_status = 'synced' WHERE t = ?", (t,))

    def sync_state(self) -> SyncState:
        waiting = self._rows(
            "SELECT (SELECT COUNT(*) FROM readings WHERE state = 'confirmed' AND "
            "sync_status = 'pending') + (SELECT COUNT(*) FROM job_events WHERE "
            "sync_status = 'pending') AS n"
        )[0]["n"]
        rejected = self._rows(
            "SELECT (SELECT COUNT(*) FROM readings WHERE sync_status = 'rejected') + "
            "(SELECT COUNT(*) FROM job_events WHERE sync_status = 'rejected') AS n"
        )[0]["n"]
        return SyncState(
            waiting=int(waiting),
            rejected=int(rejected),
            last_sync_at=self.setting("last_sync_at"),
            last_error=self.setting("last_error"),
        )

    def rejected(self) -> list[ReadingView]:
        return [
            _reading_view(r)
            for r in self._rows(
                "SELECT * FROM readings WHERE sync_status = 'rejected' ORDER BY confirmed_at"
            )
        ]


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _iso(t: datetime | None) -> str | None:
    return None if t is None else iso(t)


def _meter_view(r: sqlite3.Row) -> MeterView:
    status = "todo"
    if r["reading_id"] is not None:
        status = "read" if r["reading_value"] is not None else "skipped"
    return MeterView(
        assignment_id=r["assignment_id"],
        id=r["id"],
        meter_no=r["meter_no"],
        account_no=r["account_no"],
        customer_name=r["customer_name"],
        address=r["address"],
        lat=r["lat"],
        lon=r["lon"],
        digits=r["digits"],
        multiplier=Decimal(r["multiplier"]),
        last_reading=_dec(r["last_reading"]),
        last_read_at=datetime.fromisoformat(r["last_read_at"]) if r["last_read_at"] else None,
        expected_low=_dec(r["expected_low"]),
        expected_high=_dec(r["expected_high"]),
        sequence=r["sequence"],
        status=status,
        reading_id=r["reading_id"],
        reading_value=_dec(r["reading_value"]),
        reread_order_id=r["order_id"],
        reread_reason=r["order_reason"],
    )


def _reading_view(r: sqlite3.Row) -> ReadingView:
    return ReadingView(
        id=r["id"],
        assignment_id=r["assignment_id"],
        meter_id=r["meter_id"],
        value=_dec(r["value"]),
        skip_code=r["skip_code"],
        note=r["note"],
        read_at=r["read_at"],
        confirmed_at=r["confirmed_at"],
        state=r["state"],
        sync_status=r["sync_status"],
        sync_error=r["sync_error"],
        sync_detail=r["sync_detail"],
        reread_of=r["reread_of"],
    )


def _reading_wire(r: sqlite3.Row) -> wire.Reading:
    return wire.Reading(
        id=r["id"],
        assignment_id=r["assignment_id"],
        meter_id=r["meter_id"],
        value=_dec(r["value"]),
        skip_code=r["skip_code"],
        note=r["note"],
        read_at=datetime.fromisoformat(r["read_at"]),
        confirmed_at=datetime.fromisoformat(r["confirmed_at"]),
        fix=wire.Fix.from_json(json.loads(r["fix"])) if r["fix"] else None,
        reread_of=r["reread_of"],
    )


def _point_wire(p: sqlite3.Row) -> wire.TrackPoint:
    return wire.TrackPoint(
        t=datetime.fromisoformat(p["t"]),
        lat=p["lat"],
        lon=p["lon"],
        accuracy_m=p["accuracy_m"],
        speed=p["speed"],
        provider=p["provider"],
        mock=bool(p["mock"]),
    )


def _apply_job_event(db: sqlite3.Connection, event: wire.JobEvent) -> None:
    """What an event does to the local copy of its job, so the screen shows it offline: the
    status by the one lifecycle (common.job_lifecycle), and the times and fields it carries."""
    kind, job_id, at = JobEventKind(event.kind), event.job_id, iso(event.at)
    row = db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
    if row is not None:
        status = status_after(JobStatus(row["status"]), kind)
        db.execute("UPDATE jobs SET status = ? WHERE id = ?", (str(status), job_id))
    if kind is JobEventKind.STARTED:
        db.execute("UPDATE jobs SET started_at = ? WHERE id = ?", (at, job_id))
    elif kind is JobEventKind.FINISHED:
        db.execute("UPDATE jobs SET finished_at = ? WHERE id = ?", (at, job_id))
    if event.expected_finish is not None and kind is not JobEventKind.NOTE:
        db.execute(
            "UPDATE jobs SET expected_finish = ? WHERE id = ?", (iso(event.expected_finish), job_id)
        )
    if event.content:
        db.execute("UPDATE jobs SET content = ? WHERE id = ?", (event.content, job_id))
    if event.crew is not None:
        db.execute("UPDATE jobs SET crew = ? WHERE id = ?", (json.dumps(list(event.crew)), job_id))
