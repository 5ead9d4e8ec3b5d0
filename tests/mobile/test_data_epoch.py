"""The data epoch: after the server is restored from a backup and the operator starts a new
epoch, handhelds push again every record they still hold, and the server stores each once."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlmodel import Session, select

from common import wire
from common.clock import Clock
from mobile.core.store import Store
from mobile.core.sync import SyncClient
from server.models import Reading, TrackPoint
from tests.conftest import LiveServer
from tests.mobile.test_store import pulled
from tests.mobile.test_sync_client import T0, device, handheld, held, read_all  # noqa: F401
from tests.server.test_cli import gridwalk


def answer(results: list[dict[str, Any]], epoch: str | None) -> wire.PushAnswer:
    body: dict[str, Any] = {
        "results": results,
        "track": {"accepted": 0, "duplicate": 0, "rejected": []},
    }
    if epoch is not None:
        body["data_epoch"] = epoch
    return wire.PushAnswer.from_json(body)


def test_a_new_epoch_queues_again_what_the_server_acknowledged(
    tmp_path: Path, clock: Clock
) -> None:
    store = Store(tmp_path / "device.db")
    store.apply_pull(wire.PullPage.from_json(pulled(4, data_epoch="e1")))
    assert store.setting("data_epoch") == "e1"
    good = store.confirm_reading(7, 100, value=Decimal(1100), read_at=T0, fix=None)
    clock.advance(timedelta(seconds=10))
    bad = store.confirm_reading(7, 101, value=Decimal(1101), read_at=T0, fix=None)
    store.add_track_point(t=T0, lat=30.27, lon=120.15, accuracy_m=5)
    event = wire.JobEvent(id=str(uuid.uuid4()), job_id="job-1", kind="note", at=T0, note="n")
    store.log_job_event(event)
    batch = store.outbox_batch()
    store.record_push(
        batch,
        answer(
            [
                {"id": good.id, "status": "accepted"},
                {"id": bad.id, "status": "rejected", "error": "already_read"},
                {"id": event.id, "status": "duplicate"},
            ],
            "e1",
        ),
    )
    assert store.outbox_batch().empty
    assert store.setting("cursor") == "c1"

    # The server was restored and told a new epoch: what it took goes again; a rejection
    # stays a rejection; the next pull starts from the beginning.
    clock.advance(timedelta(seconds=10))
    late = store.confirm_reading(7, 102, value=Decimal(1102), read_at=T0, fix=None)
    batch = store.outbox_batch()
    assert batch.reading_ids == [late.id]
    store.record_push(batch, answer([{"id": late.id, "status": "accepted"}], "e2"))
    again = store.outbox_batch()
    assert again.reading_ids == [good.id]  # not `late`: the new server has just taken it
    assert again.event_ids == [event.id]
    assert len(again.push.track_points) == 1
    assert store.reading(bad.id).sync_status == "rejected"
    assert store.setting("cursor") is None
    assert store.setting("data_epoch") == "e2"


def test_a_server_without_an_epoch_changes_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "device.db")
    store.apply_pull(wire.PullPage.from_json(pulled(2, data_epoch="e1")))
    reading = store.confirm_reading(7, 100, value=Decimal(1100), read_at=T0, fix=None)
    sent = answer([{"id": reading.id, "status": "accepted"}], None)
    store.record_push(store.outbox_batch(), sent)
    store.apply_pull(wire.PullPage.from_json(pulled(2, cursor="c2")))
    assert store.outbox_batch().empty
    assert (store.setting("data_epoch"), store.setting("cursor")) == ("e1", "c2")


def backup(live_server: LiveServer, to: Path) -> Path | None:
    """A backup of the server's database (SQLite); None on PostgreSQL, restored by hand."""
    url = live_server.settings.database_url
    if not url.startswith("sqlite:///"):
        return None
    source = sqlite3.connect(url.removeprefix("sqlite:///"))
    copy = sqlite3.connect(to)
    source.backup(copy)
    copy.close()
    source.close()
    return to


def restore(live_server: LiveServer, session: Session, saved: Path | None) -> None:
    """Put the backup back while the server runs: on SQLite the file taken before the pushes
    (the backup API), on PostgreSQL the pushed tables emptied (TRUNCATE fires no row trigger)."""
    session.commit()  # the test's reads hold locks a restore must wait for
    if saved is None:
        with live_server.engine.begin() as conn:
            conn.execute(text("TRUNCATE readings, track_points CASCADE"))
        return
    source = sqlite3.connect(saved)
    target = sqlite3.connect(live_server.settings.database_url.removeprefix("sqlite:///"))
    source.backup(target)
    target.close()
    source.close()


def test_after_a_restore_and_a_new_epoch_the_server_gets_every_record_back_exactly_once(
    device: SyncClient,  # noqa: F811 - the fixture
    session: Session,
    live_server: LiveServer,
    tmp_path: Path,
) -> None:
    device.sync()
    first_epoch = device.store.setting("data_epoch")
    assert first_epoch is not None
    saved = backup(live_server, tmp_path / "backup.db")
    ids = read_all(device, 3)
    [assignment] = device.store.assignments()
    skip = device.store.skip_meter(
        assignment.id,
        device.store.meters(assignment.id)[3].id,
        skip_code="dog",
        note="",
        read_at=T0 + timedelta(minutes=9),
        fix=None,
    )
    ids.append(skip.id)
    device.sync()
    assert held(session, Reading) == 4

    restore(live_server, session, saved)
    assert held(session, Reading) == 0
    # Until the operator says so, the handheld cannot know: it sends nothing again.
    assert device.sync().pushed == 0

    done = gridwalk(live_server.settings.database_url, "new-data-epoch")
    assert done.exit_code == 0, done.output
    assert "New data epoch" in done.output
    # The push finds nothing to send; the pull hears the new epoch and queues all again.
    device.sync()
    assert device.store.setting("data_epoch") not in (None, first_epoch)
    assert device.store.sync_state().waiting == 4
    report = device.sync()
    assert (report.accepted, report.duplicate, report.points) == (4, 0, 3)
    session.commit()
    assert {str(i) for i in session.exec(select(Reading.id))} == set(ids)
    assert held(session, TrackPoint) == 3
    # Exactly once: nothing more to send, nothing more stored.
    assert device.sync().pushed == 0
    assert held(session, Reading) == 4

    # A restore noticed in a push's answer: the records go in the same sync.
    restore(live_server, session, saved)
    assert gridwalk(live_server.settings.database_url, "new-data-epoch").exit_code == 0
    late = device.store.confirm_reading(
        assignment.id,
        device.store.meters(assignment.id)[4].id,
        value=Decimal(1200),
        read_at=T0 + timedelta(minutes=12),
        fix=None,
    )
    report = device.sync()
    assert report.accepted == 5
    session.commit()
    assert {str(i) for i in session.exec(select(Reading.id))} == {*ids, late.id}
    assert held(session, TrackPoint) == 3
