"""The pulled work on the device: a pull page applied with its cursor in one transaction, and
the assignments, meters and jobs the screens show."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from decimal import Decimal

from common import wire
from common.wire import iso
from mobile.core.device_db import DeviceDb
from mobile.core.outbox import note_data_epoch
from mobile.core.views import (
    AssignmentView,
    MeterView,
    StoreError,
    datetime_or_none,
    decimal_or_none,
    iso_or_none,
    str_or_none,
)


class PulledWork(DeviceDb):
    """The assignments, meters, re-read orders and jobs the server sent."""

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
                        "last_read_at, expected_low, expected_high, sequence, server_state, "
                        "server_reading_id, server_read_at, server_value, server_skip_code, "
                        "withdrawn) VALUES "
                        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0) "
                        "ON CONFLICT "
                        "(assignment_id, id) DO UPDATE SET meter_no = excluded.meter_no, "
                        "account_no = excluded.account_no, customer_name = "
                        "excluded.customer_name, address = excluded.address, lat = excluded.lat, "
                        "lon = excluded.lon, digits = excluded.digits, multiplier = "
                        "excluded.multiplier, last_reading = excluded.last_reading, "
                        "last_read_at = excluded.last_read_at, expected_low = "
                        "excluded.expected_low, expected_high = excluded.expected_high, "
                        "sequence = excluded.sequence, server_state = excluded.server_state, "
                        "server_reading_id = excluded.server_reading_id, server_read_at = "
                        "excluded.server_read_at, server_value = excluded.server_value, "
                        "server_skip_code = excluded.server_skip_code, withdrawn = 0",
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
                            str_or_none(m.last_reading),
                            iso_or_none(m.last_read_at),
                            str_or_none(m.expected_low),
                            str_or_none(m.expected_high),
                            m.sequence,
                            m.state,
                            m.reading_id,
                            iso_or_none(m.read_at),
                            str_or_none(m.value),
                            m.skip_code,
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
                        iso_or_none(j.expected_finish),
                        iso_or_none(j.started_at),
                        iso_or_none(j.finished_at),
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
            # A page from a restored server was cut from a cursor of its former life: the
            # cursor is dropped instead, and the next pull starts from the beginning.
            if note_data_epoch(db, page.data_epoch) is None:
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
                   SUM(CASE WHEN r.value IS NOT NULL
                       OR (r.id IS NULL AND m.server_state = 'read') THEN 1 ELSE 0 END)
                       AS n_read,
                   SUM(CASE WHEN r.skip_code IS NOT NULL
                       OR (r.id IS NULL AND m.server_state = 'skipped') THEN 1 ELSE 0 END)
                       AS n_skipped
            FROM assignments a
            LEFT JOIN meters m ON m.assignment_id = a.id AND m.withdrawn = 0
            LEFT JOIN readings r ON r.id = (
                SELECT id FROM readings x WHERE x.assignment_id = a.id AND x.meter_id = m.id
                AND x.state = 'confirmed' AND x.sync_status != 'rejected'
                ORDER BY x.confirmed_at DESC LIMIT 1)
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
                   r.skip_code AS reading_skip, o.id AS order_id, o.reason AS order_reason,
                   CASE WHEN r.sync_status = 'rejected' THEN r.sync_error END AS refusal
            FROM meters m
            LEFT JOIN readings r ON r.id = (
                SELECT id FROM readings x WHERE x.assignment_id = m.assignment_id
                AND x.meter_id = m.id AND x.state = 'confirmed'
                ORDER BY x.sync_status = 'rejected', x.confirmed_at DESC LIMIT 1)
            LEFT JOIN reread_orders o ON o.assignment_id = m.assignment_id
                AND o.meter_id = m.id AND o.status = 'open'
                AND NOT EXISTS (SELECT 1 FROM readings y WHERE y.reread_of = o.id
                                AND y.state = 'confirmed')
            WHERE m.assignment_id = ? AND m.withdrawn = 0
            ORDER BY m.sequence, m.id
            """,
            (assignment_id,),
        )
        return [meter_view(r) for r in rows]

    def meter(self, assignment_id: int, meter_id: int) -> MeterView:
        for m in self.meters(assignment_id):
            if m.id == meter_id:
                return m
        raise StoreError(f"meter {meter_id} is not on this route")

    def jobs(self) -> list[wire.Job]:
        """The crew's jobs as the wire brought them, with what was logged here since."""
        return [
            wire.Job(
                id=r["id"],
                kind=r["kind"],
                urgency=r["urgency"],
                status=r["status"],
                content=r["content"],
                crew=tuple(json.loads(r["crew"])),
                lat=r["lat"],
                lon=r["lon"],
                address=r["address"],
                expected_finish=datetime_or_none(r["expected_finish"]),
                started_at=datetime_or_none(r["started_at"]),
                finished_at=datetime_or_none(r["finished_at"]),
            )
            for r in self._rows(
                "SELECT * FROM jobs WHERE withdrawn = 0 ORDER BY "
                "status = 'finished', expected_finish, id"
            )
        ]

    def job(self, job_id: str) -> wire.Job:
        for j in self.jobs():
            if j.id == job_id:
                return j
        raise StoreError(f"no job {job_id}")


def meter_view(r: sqlite3.Row) -> MeterView:
    """A meter with its state: this handheld's own confirmed reading if the office did not
    refuse it, else the office's (read on another handheld, or before this one was swapped in)."""
    status = "todo"
    reading_id, value = r["reading_id"], decimal_or_none(r["reading_value"])
    if reading_id is not None and (r["refusal"] is None or r["server_state"] == "unread"):
        status = "read" if r["reading_value"] is not None else "skipped"
    elsewhere = False
    if status == "todo" and r["server_state"] != "unread":
        status = "read" if r["server_state"] == "read" else "skipped"
        reading_id, value = r["server_reading_id"], decimal_or_none(r["server_value"])
        elsewhere = True
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
        last_reading=decimal_or_none(r["last_reading"]),
        last_read_at=datetime.fromisoformat(r["last_read_at"]) if r["last_read_at"] else None,
        expected_low=decimal_or_none(r["expected_low"]),
        expected_high=decimal_or_none(r["expected_high"]),
        sequence=r["sequence"],
        status=status,
        reading_id=reading_id,
        reading_value=value,
        reread_order_id=r["order_id"],
        reread_reason=r["order_reason"],
        refusal=r["refusal"],
        elsewhere=elsewhere,
        elsewhere_read_at=datetime_or_none(r["server_read_at"]) if elsewhere else None,
        elsewhere_skip_code=r["server_skip_code"] if elsewhere else None,
    )
