"""Kill the handheld at random instants, mid-write and mid-sync: nothing confirmed is lost,
nothing is doubled."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import IO

from sqlmodel import Session, select

from server.models import Reading
from tests.conftest import LiveServer
from tests.factories import PASSWORD, assign, make_route, make_user

ROOT = Path(__file__).resolve().parents[2]
# Enough work (60 meters, 50 ms apart) that the first kills always land mid-route.
METERS = 60


def start_worker(data_dir: Path, url: str, log: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.mobile.crash_worker",
            str(data_dir),
            url,
            "reader1",
            PASSWORD,
            "0.05",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
    )


def test_killing_the_app_mid_write_and_mid_sync_loses_and_doubles_nothing(
    tmp_path: Path, live_server: LiveServer, session: Session
) -> None:
    make_user(session, live_server.settings, "reader1", "reader", "G1")
    make_route(session, "R-1", METERS)
    assign(session, "R-1", "reader1")
    rng = random.Random(7)
    kills = 0
    log_path = tmp_path / "worker.log"
    with log_path.open("ab") as log:
        for _ in range(60):
            worker = start_worker(tmp_path, live_server.url, log)
            try:
                worker.wait(timeout=rng.uniform(0.3, 0.9))
            except subprocess.TimeoutExpired:
                worker.send_signal(signal.SIGKILL)
                worker.wait()
                kills += 1
                continue
            break
        else:
            raise AssertionError("the worker never finished its route")
    assert worker.returncode == 0, log_path.read_text()
    assert kills >= 3, "the test must really kill the app a few times"

    device = sqlite3.connect(tmp_path / "device.db")
    confirmed = dict(
        device.execute("SELECT id, value FROM readings WHERE state = 'confirmed'").fetchall()
    )
    statuses = {
        s for (s,) in device.execute("SELECT sync_status FROM readings WHERE state = 'confirmed'")
    }
    per_meter = device.execute(
        "SELECT MAX(n) FROM (SELECT COUNT(*) AS n FROM readings WHERE state = 'confirmed' "
        "GROUP BY meter_id)"
    ).fetchone()[0]
    pending_points = device.execute(
        "SELECT COUNT(*) FROM track_points WHERE sync_status != 'synced'"
    ).fetchone()[0]
    device.close()

    session.commit()
    on_server = {str(r.id): r for r in session.exec(select(Reading))}
    assert len(confirmed) == METERS
    assert per_meter == 1
    assert statuses <= {"accepted", "duplicate"}
    assert set(on_server) == set(confirmed)
    # The server holds each confirmed value exactly (its scale may add zeros: 1105.000).
    assert {k: Decimal(v.value) for k, v in on_server.items()} == {
        k: Decimal(v) for k, v in confirmed.items()
    }
    assert pending_points == 0
