"""The outbox: what is not yet answered, taken in batches for a push, and the server's answer
recorded item by item (accepted and duplicate leave it; rejected stays visible)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta

from common import clock, wire
from common.wire import iso
from mobile.core.device_db import DeviceDb
from mobile.core.records import reading_view
from mobile.core.views import ReadingView, StoreError, SyncState, decimal_or_none


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


class Outbox(DeviceDb):
    """Batches of the outbox and the answers to them."""

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
            # Before this batch is marked: what the server held in an older epoch goes again,
            # what it has just taken in this one does not.
            note_data_epoch(db, answer.data_epoch)
            for i, (item_id, result) in enumerate(zip(ids, results, strict=True)):
                table = "readings" if i < len(batch.reading_ids) else "job_events"
                db.execute(
                    f"UPDATE {table} SET sync_status = ?, sync_error = ?, sync_detail = ?, "  # noqa: S608 - table is one of two names
                    "synced_at = ? WHERE id = ?",
                    (result.status, result.error, result.detail, synced_at, item_id),
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
                    db.execute(
                        "UPDATE track_points SET sync_status = 'synced', synced_at = ? WHERE t = ?",
                        (synced_at, t),
                    )

    def prune(self, retention: timedelta) -> dict[str, int]:
        """Delete what the server acknowledged more than `retention` ago; returns how many of
        each. Until then it is kept, to be pushed again if the server is restored from a backup
        (note_data_epoch). A reading stays while its assignment is open on the device: the
        screens show its meter as read."""
        cutoff = clock.now() - retention
        with self._tx() as db:
            readings = db.execute(
                "DELETE FROM readings WHERE state = 'confirmed' AND sync_status IN "
                "('accepted', 'duplicate') AND synced_at < ? AND assignment_id NOT IN "
                "(SELECT id FROM assignments WHERE withdrawn = 0 AND window_end >= ?)",
                (iso(cutoff), cutoff.date().isoformat()),
            ).rowcount
            events = db.execute(
                "DELETE FROM job_events WHERE sync_status IN ('accepted', 'duplicate') "
                "AND synced_at < ?",
                (iso(cutoff),),
            ).rowcount
            points = db.execute(
                "DELETE FROM track_points WHERE sync_status = 'synced' AND synced_at < ?",
                (iso(cutoff),),
            ).rowcount
        return {"readings": readings, "job_events": events, "track_points": points}

    def hold_refused(self, batch: OutboxBatch, *, error: str, detail: str) -> None:
        """Hold what `batch` carries as refused by the server: it leaves the outbox, stays on
        the device and is shown with `error` and `detail`, like a record the server rejected."""
        with self._tx() as db:
            for table, ids in (("readings", batch.reading_ids), ("job_events", batch.event_ids)):
                for item_id in ids:
                    db.execute(
                        f"UPDATE {table} SET sync_status = 'rejected', sync_error = ?, "  # noqa: S608 - table is one of two names
                        "sync_detail = ? WHERE id = ?",
                        (error, detail, item_id),
                    )
            for t in batch.point_times:
                db.execute(
                    "UPDATE track_points SET sync_status = 'rejected', sync_error = ? WHERE t = ?",
                    (error, t),
                )

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
            reading_view(r)
            for r in self._rows(
                "SELECT * FROM readings WHERE sync_status = 'rejected' ORDER BY confirmed_at"
            )
        ]


def note_data_epoch(db: sqlite3.Connection, epoch: str | None) -> int | None:
    """Note the server's data epoch (inside the caller's transaction). When it has changed, the
    server was restored from a backup and may have lost what it acknowledged: every record still
    held that it had taken goes back into the outbox, and the next pull starts from the
    beginning (the server's change numbers were rewound too). Returns how many records were
    queued again, or None if the epoch has not changed."""
    if epoch is None:
        return None  # a server that predates the epoch
    known = db.execute("SELECT value FROM settings WHERE key = 'data_epoch'").fetchone()
    db.execute(
        "INSERT INTO settings (key, value) VALUES ('data_epoch', ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (epoch,),
    )
    if known is None or known["value"] == epoch:
        return None  # the first epoch this handheld hears of is the one it has been talking to
    queued = 0
    for table in ("readings", "job_events"):
        queued += db.execute(
            f"UPDATE {table} SET sync_status = 'pending', sync_error = NULL, "  # noqa: S608 - one of two names
            "sync_detail = NULL WHERE sync_status IN ('accepted', 'duplicate')"
        ).rowcount
    queued += db.execute(
        "UPDATE track_points SET sync_status = 'pending' WHERE sync_status = 'synced'"
    ).rowcount
    db.execute("DELETE FROM settings WHERE key = 'cursor'")
    return queued


def _reading_wire(r: sqlite3.Row) -> wire.Reading:
    return wire.Reading(
        id=r["id"],
        assignment_id=r["assignment_id"],
        meter_id=r["meter_id"],
        value=decimal_or_none(r["value"]),
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
