"""The handheld's database damaged for real (truncated, pages overwritten with garbage, its -wal
deleted or garbled after commits): the app starts without a traceback, a damaged file is moved
aside as found, what can be read is recovered, and the user is told; lost commits are never
taken for a new, empty handheld."""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from common import wire
from common.clock import Clock
from mobile.core.store import Store
from tests.mobile.test_store import pulled


def worked(path: Path, clock: Clock, *, readings: int = 12, points: int = 0) -> Store:
    """A handheld that pulled a route and confirmed `readings` meters (and kept a track)."""
    store = Store(path)
    store.apply_pull(wire.PullPage.from_json(pulled(60)))
    read(store, clock, range(readings))
    for i in range(points):
        at = clock.now() + timedelta(seconds=i)
        store.add_track_point(t=at, lat=30.27 + i * 1e-6, lon=120.15, accuracy_m=5)
    return store


def read(store: Store, clock: Clock, meters: range) -> None:
    for i in meters:
        clock.advance(timedelta(seconds=10))
        store.confirm_reading(7, 100 + i, value=Decimal(1100 + i), read_at=clock.now(), fix=None)


def aside_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".damaged-" in p.name)


def reopen_is_quiet(path: Path) -> None:
    """Once the user has seen the message, the next start says nothing more."""
    store = Store(path)
    store.notice_seen()
    store.close()
    again = Store(path)
    assert again.start_notice() is None
    again.close()


def test_a_normal_restart_says_nothing(tmp_path: Path, clock: Clock) -> None:
    store = worked(tmp_path / "device.db", clock)
    store.close()
    reopened = Store(tmp_path / "device.db")
    assert reopened.start_notice() is None
    assert len(reopened.readings()) == 12
    assert aside_files(tmp_path) == []


def test_a_database_truncated_to_nothing_is_not_taken_for_a_new_handheld(
    tmp_path: Path, clock: Clock
) -> None:
    path = tmp_path / "device.db"
    store = worked(path, clock)
    device_id = store.device_id()
    store.close()
    os.truncate(path, 0)

    reopened = Store(path)
    notice = reopened.start_notice()
    assert notice is not None
    assert "lost recent work" in notice
    assert "12 confirmed readings and skips" in notice
    assert "(12 not yet sent)" in notice
    # The empty file is kept as found; the handheld keeps its id, so the office knows it.
    [aside] = aside_files(tmp_path)
    assert (tmp_path / aside).stat().st_size == 0
    assert reopened.device_id() == device_id
    assert reopened.setting("cursor") is None  # the next pull starts again from the beginning
    reopened.close()
    reopen_is_quiet(path)


def wal_store(path: Path, clock: Clock) -> Store:
    """4 readings checkpointed into the file, then 8 more only in the -wal."""
    store = worked(path, clock, readings=4)
    store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store._db.execute("PRAGMA wal_autocheckpoint=0")
    read(store, clock, range(4, 12))
    assert path.with_name("device.db-wal").stat().st_size > 0
    return store


def crashed_copy(path: Path, to: Path, *, with_wal: bool) -> Path:
    """The files as a killed app leaves them (the database is still open here, so its -wal
    holds commits the main file has not got), copied to another folder."""
    to.mkdir()
    for name in ["device.db", "device.db.tally"] + (["device.db-wal"] if with_wal else []):
        shutil.copyfile(path.with_name(name), to / name)
    return to / "device.db"


def test_a_deleted_wal_that_held_commits_is_reported(tmp_path: Path, clock: Clock) -> None:
    store = wal_store(tmp_path / "device.db", clock)
    copy = crashed_copy(tmp_path / "device.db", tmp_path / "copy", with_wal=False)
    store.close()

    reopened = Store(copy)
    notice = reopened.start_notice()
    assert notice is not None
    assert "lost recent work" in notice
    assert "it held 12 confirmed readings and skips" in notice
    assert "now it holds 4 confirmed readings and skips" in notice
    assert len(reopened.readings()) == 4  # what the file held is kept and used
    assert aside_files(copy.parent) == []
    reopened.close()
    reopen_is_quiet(copy)


def test_a_garbled_wal_is_reported(tmp_path: Path, clock: Clock) -> None:
    store = wal_store(tmp_path / "device.db", clock)
    copy = crashed_copy(tmp_path / "device.db", tmp_path / "copy", with_wal=True)
    store.close()
    wal = copy.with_name("device.db-wal")
    with wal.open("r+b") as f:
        f.seek(32)  # past the WAL header: every frame's checksum now fails
        f.write(random.Random(1).randbytes(wal.stat().st_size - 32))

    reopened = Store(copy)
    notice = reopened.start_notice()
    assert notice is not None
    assert "lost recent work" in notice
    assert len(reopened.readings()) == 4


def pages_of(path: Path, table: str) -> tuple[int, list[int]]:
    """The page size and the leaf pages of a table (SQLite's dbstat)."""
    db = sqlite3.connect(path)
    try:
        size = db.execute("PRAGMA page_size").fetchone()[0]
        pages = [
            row[0]
            for row in db.execute(
                "SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY pageno",
                (table,),
            )
        ]
        return size, pages
    finally:
        db.close()


def overwrite(path: Path, page_size: int, pages: list[int]) -> None:
    garbage = random.Random(7)
    with path.open("r+b") as f:
        for page in pages:
            f.seek((page - 1) * page_size)
            f.write(garbage.randbytes(page_size))


@pytest.fixture
def tool(monkeypatch: pytest.MonkeyPatch) -> bool:
    """Recovery as on Android: Python's sqlite3 alone, no command-line tool. (Debian 12's
    sqlite3 3.40.1 fails `.recover` even on a sound file, so the tool's path, which merges its
    rows in where it works, cannot be exercised on these machines.)"""
    monkeypatch.setenv("PATH", "")
    return False


def test_pages_overwritten_with_garbage_are_moved_aside_and_what_is_readable_recovered(
    tmp_path: Path, clock: Clock, tool: bool
) -> None:
    path = tmp_path / "device.db"
    store = worked(path, clock, points=3000)
    batch = store.outbox_batch(max_readings=5, max_points=0)
    store.record_push(
        batch,
        wire.PushAnswer.from_json(
            {
                "results": [{"id": i, "status": "accepted"} for i in batch.reading_ids],
                "track": {"accepted": 0, "duplicate": 0, "rejected": []},
            }
        ),
    )
    before = {r.id: (r.value, r.sync_status) for r in store.readings()}
    device_id = store.device_id()
    store.close()
    size, track_pages = pages_of(path, "track_points")
    middle = len(track_pages) // 2
    overwrite(path, size, track_pages[middle : middle + 2])
    damaged = path.read_bytes()

    reopened = Store(path)  # no traceback
    notice = reopened.start_notice()
    assert notice is not None
    assert "was damaged" in notice
    [aside] = aside_files(tmp_path)
    assert f"moved aside as {aside}" in notice
    assert (tmp_path / aside).read_bytes() == damaged  # kept exactly as found
    assert "12 confirmed readings and skips" in notice
    assert "(7 not yet sent)" in notice
    # Every confirmed reading is back, with its sync state: the 7 unsent go out, the 5 don't.
    assert {r.id: (r.value, r.sync_status) for r in reopened.readings()} == before
    assert len(reopened.outbox_batch().reading_ids) == 7
    assert reopened.device_id() == device_id
    # The track lost what was on the garbled pages, and only that much or a little more.
    assert 3000 - 4 * size // 20 < reopened.track_count() < 3000
    # The pulled route is there, and the next pull starts again from the beginning.
    assert len(reopened.meters(7)) == 60
    assert reopened.setting("cursor") is None
    reopened.close()
    reopen_is_quiet(path)


def test_a_file_truncated_mid_way_is_moved_aside_and_its_first_pages_recovered(
    tmp_path: Path, clock: Clock, tool: bool
) -> None:
    path = tmp_path / "device.db"
    worked(path, clock, points=3000).close()
    os.truncate(path, path.stat().st_size // 2)

    reopened = Store(path)
    notice = reopened.start_notice()
    assert notice is not None
    assert "was damaged" in notice
    assert len(aside_files(tmp_path)) == 1
    # The route and the readings sit in the first pages, before the long track.
    assert len(reopened.readings()) == 12
    assert len(reopened.meters(7)) == 60
    assert 0 < reopened.track_count() < 3000


def test_a_garbled_header_is_moved_aside_and_the_handheld_works_on(
    tmp_path: Path, clock: Clock, tool: bool
) -> None:
    path = tmp_path / "device.db"
    worked(path, clock).close()
    overwrite(path, 100, [1])  # the first 100 bytes: "file is not a database"

    reopened = Store(path)
    notice = reopened.start_notice()
    assert notice is not None
    assert "was damaged" in notice
    assert len(aside_files(tmp_path)) == 1
    # The copy read for recovery gets a plain header: the pages past it are all there.
    assert len(reopened.readings()) == 12
    assert len(reopened.meters(7)) == 60
    # Whatever was lost, the handheld works on: it pulls and confirms again.
    reopened.apply_pull(wire.PullPage.from_json(pulled(60)))
    read(reopened, clock, range(12, 13))


def test_a_schema_missing_a_table_is_moved_aside_and_recovered(
    tmp_path: Path, clock: Clock
) -> None:
    path = tmp_path / "device.db"
    worked(path, clock).close()
    db = sqlite3.connect(path)
    db.execute("DROP TABLE jobs")
    db.commit()
    db.close()

    reopened = Store(path)
    notice = reopened.start_notice()
    assert notice is not None
    assert "lacks jobs" in notice
    assert len(aside_files(tmp_path)) == 1
    assert len(reopened.readings()) == 12
    assert reopened.jobs() == []
