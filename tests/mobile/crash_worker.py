"""A handheld at work, to be killed at random instants by test_crash_recovery.

Usage: python -m tests.mobile.crash_worker DATA_DIR SERVER_URL USER PASSWORD PACE_S
Reads every meter of its route (register 1100 + sequence/10), keeps a track, syncs every few
readings, and exits 0 when everything is read and synced.
"""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from mobile.core.store import Fix, Store, now_utc
from mobile.core.sync import SyncClient


def main(data_dir: str, server_url: str, username: str, password: str, pace: str) -> int:
    store = Store(Path(data_dir) / "device.db")
    client = SyncClient(store, server_url=server_url)
    if not store.setting("refresh_token"):
        client.login(username, password)
    client.sync()
    for assignment in store.assignments():
        for i, meter in enumerate(m for m in store.meters(assignment.id) if not m.done):
            time.sleep(float(pace))  # walking to the meter: the app is killed at any point
            at = now_utc()
            fix = Fix(lat=meter.lat, lon=meter.lon, accuracy_m=5, fix_time=at)
            for k in range(5):
                store.add_track_point(
                    t=at - timedelta(seconds=5 * k, microseconds=i),
                    lat=meter.lat,
                    lon=meter.lon,
                    accuracy_m=5,
                )
            store.save_draft(
                assignment.id,
                meter.id,
                value=Decimal(1100 + meter.sequence // 10),
                read_at=at,
                fix=fix,
            )
            store.confirm_reading(
                assignment.id,
                meter.id,
                value=Decimal(1100 + meter.sequence // 10),
                read_at=at,
                fix=fix,
            )
            if i % 3 == 2:
                client.sync()
    client.sync()
    client.close()
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:6]))
