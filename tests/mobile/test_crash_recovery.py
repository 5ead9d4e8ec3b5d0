"""Kill the handheld at random points of its progress, mid-write and mid-sync: nothing
confirmed is lost, nothing is doubled. The points are counted in the worker's progress (SQL
statements, answered pushes), never in seconds: a busy machine kills at the same places."""

from __future__ import annotations

import os
import random
import selectors
import signal
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import IO

import pytest
from sqlmodel import Session, select

from server.models import Reading
from tests.conftest import LiveServer
from tests.factories import PASSWORD, assign, make_route, make_user

# The handheld runs in its own process, on the machine's clock: so does the server here.
pytestmark = pytest.mark.real_clock

ROOT = Path(__file__).resolve().parents[2]
METERS = 60


# Where each run is stopped, in progress (never in seconds): SQL statements of the device
# database, or answered pushes. Five statement stops of up to 150 and three push stops of up
# to 3 leave the route half read, so every stop lands mid-route; a last run finishes it.
STOPS = ("sql", "push", "sql", "sql", "push", "sql", "push", "sql")
# A bound on a hung worker, far beyond any run's length: a failure, never an outcome.
HUNG_S = 300


def run_worker(data_dir: Path, url: str, stop: str, log: IO[bytes]) -> str | None:
    """Run the worker until it reports its stop (then kill it, return the report) or exits."""
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.mobile.crash_worker",
            str(data_dir),
            url,
            "reader1",
            PASSWORD,
            stop,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=log,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
    )
    assert worker.stdout is not None
    try:
        with selectors.DefaultSelector() as waiting:
            waiting.register(worker.stdout, selectors.EVENT_READ)
            ready = waiting.select(HUNG_S)
        assert ready, f"the worker neither stopped at {stop} nor finished in {HUNG_S} s"
        report = worker.stdout.readline().decode().strip()
        if report.startswith("stopped "):
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            return report
        assert worker.wait(timeout=HUNG_S) == 0, f"the worker failed ({stop})"
        return None
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        worker.stdout.close()


def confirmed_on_device(data_dir: Path) -> int:
    device = sqlite3.connect(data_dir / "device.db")
    try:
        n: int = device.execute(
            "SELECT COUNT(*) FROM readings WHERE state = 'confirmed'"
        ).fetchone()[0]
        return n
    finally:
        device.close()


def test_killing_the_app_mid_write_and_mid_sync_loses_and_doubles_nothing(
    tmp_path: Path, live_server: LiveServer, session: Session
) -> None:
    make_user(session, live_server.settings, "reader1", "reader", "G1")
    make_route(session, "R-1", METERS)
    assign(session, "R-1", "reader1")
    rng = random.Random(7)
    kills: list[str] = []
    log_path = tmp_path / "worker.log"
    with log_path.open("ab") as log:
        for kind in STOPS:
            at = rng.randint(1, 150) if kind == "sql" else rng.randint(1, 3)
            report = run_worker(tmp_path, live_server.url, f"{kind}:{at}", log)
            assert report is not None, f"the route was finished before the stop {kind}:{at}"
            kills.append(report)
        before_last = confirmed_on_device(tmp_path)
        assert run_worker(tmp_path, live_server.url, "none", log) is None, log_path.read_text()
    # The stops fell mid-route: some meters were read before the last run, not all.
    assert 0 < before_last < METERS
    # Killed inside a write's transaction, and after the server had taken a push the device
    # had not yet recorded: the two places where a record could be lost or doubled.
    assert any(k.startswith("stopped sql:") and "in_transaction=1" in k for k in kills), kills
    assert sum(k.startswith("stopped push:") for k in kills) == STOPS.count("push"), kills

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
    # Killed after a commit and before the tally beside the file caught up: never a false alarm.
    notice = device.execute("SELECT value FROM settings WHERE key = 'db_notice'").fetchone()
    device.close()
    assert notice is None

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
