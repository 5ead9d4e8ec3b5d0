"""What the reader and the crew record on the device: drafts, confirmed readings (locked by
triggers), skips, the GPS track, job events applied to the local job at once."""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from common import clock, wire
from common.compact import rounded_fix
from common.job_lifecycle import JobEventKind, JobStatus, status_after
from common.wire import SKIP_CODES, Fix, iso
from mobile.core.device_db import DeviceDb
from mobile.core.views import (
    AlreadyReadError,
    ReadingView,
    StoreError,
    decimal_or_none,
    str_or_none,
)


class FieldRecords(DeviceDb):
    """Records made here, each written in one transaction."""

    def draft(self, assignment_id: int, meter_id: int) -> ReadingView | None:
        rows = self._rows(
            "SELECT * FROM readings WHERE assignment_id = ? AND meter_id = ? AND state = 'draft'",
            (assignment_id, meter_id),
        )
        return reading_view(rows[0]) if rows else None

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
                        str_or_none(value),
                        iso(read_at),
                        fix_json,
                        reread_of,
                    ),
                )
                return reading_id
            db.execute(
                "UPDATE readings SET value = ?, read_at = ?, fix = ?, reread_of = ? WHERE id = ?",
                (str_or_none(value), iso(read_at), fix_json, reread_of, row["id"]),
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
                str_or_none(value),
                skip_code,
                note,
                iso(read_at),
                iso(confirmed_at),
                # At the precision contract 2 carries exactly (common.compact).
                json.dumps(rounded_fix(fix).to_json()) if fix else None,
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
            return reading_view(row)

    def reading(self, reading_id: str) -> ReadingView:
        rows = self._rows("SELECT * FROM readings WHERE id = ?", (reading_id,))
        if not rows:
            raise StoreError(f"no reading {reading_id}")
        return reading_view(rows[0])

    def readings(self, *, state: str = "confirmed") -> list[ReadingView]:
        return [
            reading_view(r)
            for r in self._rows(
                "SELECT * FROM readings WHERE state = ? ORDER BY confirmed_at, id", (state,)
            )
        ]

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


def reading_view(r: sqlite3.Row) -> ReadingView:
    return ReadingView(
        id=r["id"],
        assignment_id=r["assignment_id"],
        meter_id=r["meter_id"],
        value=decimal_or_none(r["value"]),
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
