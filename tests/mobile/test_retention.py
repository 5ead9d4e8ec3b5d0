"""Records the server acknowledged stay on the handheld for the retention period (to be pushed
again after a restore from backup), then are pruned; nothing unacknowledged ever is."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from common import wire
from common.clock import Clock
from mobile.core.field import FieldSession, FieldSettings
from mobile.core.location import FixedSource
from mobile.core.store import Store
from tests.mobile.test_data_epoch import answer
from tests.mobile.test_store import pulled
from tests.mobile.test_sync_client import T0

RETENTION = timedelta(days=30)


def closed_route(**extra: object) -> wire.PullPage:
    """Route 7, its window already over: nothing on the screens needs its readings."""
    body = pulled(4, **extra)
    body["assignments"][0]["window_end"] = (T0 - timedelta(days=1)).date().isoformat()
    return wire.PullPage.from_json(body)


def acknowledged_day(store: Store, clock: Clock) -> dict[str, str]:
    """Two readings and a skip confirmed, a job event, a track point; the server takes all but
    the second reading (rejected); a third reading is confirmed later and not yet sent."""
    ids = {}
    for name, meter in (("taken", 100), ("rejected", 101)):
        clock.advance(timedelta(seconds=10))
        ids[name] = store.confirm_reading(7, meter, value=Decimal(1100), read_at=T0, fix=None).id
    event = wire.JobEvent(id=str(uuid.uuid4()), job_id="job-1", kind="note", at=T0, note="n")
    store.log_job_event(event)
    store.add_track_point(t=T0, lat=30.27, lon=120.15, accuracy_m=5)
    batch = store.outbox_batch()
    store.record_push(
        batch,
        answer(
            [
                {"id": ids["taken"], "status": "accepted"},
                {"id": ids["rejected"], "status": "rejected", "error": "already_read"},
                {"id": event.id, "status": "duplicate"},
            ],
            "e1",
        ),
    )
    ids["unsent"] = store.confirm_reading(7, 102, value=Decimal(1), read_at=T0, fix=None).id
    return ids


def test_acknowledged_records_are_kept_for_the_retention_period_then_pruned(
    tmp_path: Path, clock: Clock
) -> None:
    store = Store(tmp_path / "device.db")
    store.apply_pull(closed_route())
    ids = acknowledged_day(store, clock)
    clock.advance(RETENTION - timedelta(minutes=1))
    assert store.prune(RETENTION) == {"readings": 0, "job_events": 0, "track_points": 0}
    assert len(store.readings()) == 3
    clock.advance(timedelta(minutes=2))
    assert store.prune(RETENTION) == {"readings": 1, "job_events": 1, "track_points": 1}
    # The rejected one stays visible, the unsent one stays in the outbox, for ever.
    assert {r.id for r in store.readings()} == {ids["rejected"], ids["unsent"]}
    assert store.outbox_batch().reading_ids == [ids["unsent"]]
    assert store.job_events() == []
    assert store.track_count() == 0


def test_a_reading_of_an_open_assignment_is_kept_past_the_retention_period(
    tmp_path: Path, clock: Clock
) -> None:
    store = Store(tmp_path / "device.db")
    store.apply_pull(wire.PullPage.from_json(pulled(4)))
    body = pulled(4)
    body["assignments"][0]["window_end"] = (T0 + RETENTION * 2).date().isoformat()
    store.apply_pull(wire.PullPage.from_json(body))
    acknowledged_day(store, clock)
    clock.advance(RETENTION + timedelta(days=1))
    assert store.prune(RETENTION)["readings"] == 0
    assert store.meter(7, 100).done  # the screens still show it read


def test_the_lock_still_keeps_an_unacknowledged_confirmed_reading(
    tmp_path: Path, clock: Clock
) -> None:
    store = Store(tmp_path / "device.db")
    store.apply_pull(closed_route())
    ids = acknowledged_day(store, clock)
    db = sqlite3.connect(tmp_path / "device.db")
    for name in ("rejected", "unsent"):
        with pytest.raises(sqlite3.IntegrityError, match="locked"):
            db.execute("DELETE FROM readings WHERE id = ?", (ids[name],))
    db.close()


def test_the_handheld_prunes_at_start(tmp_path: Path, clock: Clock) -> None:
    store = Store(tmp_path / "gridwalk-device.db")
    store.apply_pull(closed_route())
    ids = acknowledged_day(store, clock)
    store.close()
    clock.advance(timedelta(days=8))
    settings = FieldSettings(retention_days=7)
    field = FieldSession(tmp_path, FixedSource(30.27, 120.15), settings)
    try:
        assert {r.id for r in field.store.readings()} == {ids["rejected"], ids["unsent"]}
    finally:
        field.close()
