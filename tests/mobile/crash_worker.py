"""A handheld at work, stopped at a chosen point of its progress for test_crash_recovery to kill.

Usage: python -m tests.mobile.crash_worker DATA_DIR SERVER_URL USER PASSWORD STOP

STOP says where, counted in progress the worker makes (never in seconds, so a slow machine
stops at the same place as a fast one):
- `sql:K`  just before the K-th SQL statement the device database runs in this process: as
  often as not inside a write's transaction (after its INSERT, before its COMMIT);
- `push:K` when the K-th push of this process has been answered by the server and the device
  has not yet recorded the answer (the server holds the batch, the device does not know it);
- `none`   nowhere.
There it prints one line, `stopped <where> <what>`, and waits to be killed. Otherwise it reads
every meter of its route (register 1100 + sequence/10), keeps a track, syncs every three
readings, and exits 0 when everything is read and synced.
"""

from __future__ import annotations

import sys
import threading
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import httpx

from common import clock
from common.wire import Fix
from mobile.core.store import Store
from mobile.core.sync import SyncClient


class Stopper:
    """Counts progress and, at the chosen point, reports it and waits for the kill."""

    def __init__(self, stop: str) -> None:
        kind, _, at = stop.partition(":")
        self.kind = kind
        self.at = int(at) if at else 0
        self.counts = {"sql": 0, "push": 0}
        self.store: Store | None = None

    def step(self, kind: str, what: str) -> None:
        self.counts[kind] += 1
        if kind == self.kind and self.counts[kind] == self.at:
            in_tx = self.store is not None and self.store._db.in_transaction
            print(f"stopped {kind}:{self.at} in_transaction={int(in_tx)} {what}", flush=True)
            threading.Event().wait()  # until SIGKILL


class AnsweredPushes(httpx.HTTPTransport):
    """The real transport; a push's answer is read in full before the stopper is told."""

    def __init__(self, stopper: Stopper) -> None:
        super().__init__()
        self.stopper = stopper

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.url.path.endswith("/sync/push"):
            response.read()
            self.stopper.step("push", f"answered {response.status_code}")
        return response


def main(data_dir: str, server_url: str, username: str, password: str, stop: str) -> int:
    stopper = Stopper(stop)
    store = Store(Path(data_dir) / "device.db")
    stopper.store = store
    # The device database's own connection: every statement it runs is a step of progress.
    store._db.set_trace_callback(lambda sql: stopper.step("sql", " ".join(sql.split())[:60]))
    client = SyncClient(store, server_url=server_url, transport=AnsweredPushes(stopper))
    if not store.setting("refresh_token"):
        client.login(username, password)
    client.sync()
    for assignment in store.assignments():
        for i, meter in enumerate(m for m in store.meters(assignment.id) if not m.done):
            at = clock.now()
            fix = Fix(lat=meter.lat, lon=meter.lon, accuracy_m=5, fix_time=at)
            for k in range(5):
                store.add_track_point(
                    t=at - timedelta(seconds=5 * k, microseconds=i),
                    lat=meter.lat,
                    lon=meter.lon,
                    accuracy_m=5,
                )
            value = Decimal(1100 + meter.sequence // 10)
            store.save_draft(assignment.id, meter.id, value=value, read_at=at, fix=fix)
            store.confirm_reading(assignment.id, meter.id, value=value, read_at=at, fix=fix)
            if i % 3 == 2:
                client.sync()
    client.sync()
    client.close()
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:6]))
