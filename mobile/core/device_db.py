"""The device's SQLite database: one connection shared by the UI and the sync thread, one
transaction per write (WAL, synchronous=FULL), its migrations and its settings."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mobile.core import migrations


class DeviceDb:
    """The connection, its transactions, and the settings kept in it."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a confirmation is on disk before the screen says it is locked.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=10000")
        with self._lock:
            migrations.migrate(self._db)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._db.execute(sql, params))

    # ------------------------------------------------------------------------------ settings

    def setting(self, key: str, default: str | None = None) -> str | None:
        rows = self._rows("SELECT value FROM settings WHERE key = ?", (key,))
        return rows[0]["value"] if rows else default

    def set_settings(self, **values: str | None) -> None:
        with self._tx() as db:
            for key, value in values.items():
                if value is None:
                    db.execute("DELETE FROM settings WHERE key = ?", (key,))
                else:
                    db.execute(
                        "INSERT INTO settings (key, value) VALUES (?, ?) "
                        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        (key, value),
                    )

    def device_id(self) -> str:
        """This handheld's id: made once, on first start, and kept."""
        with self._tx() as db:
            row = db.execute("SELECT value FROM settings WHERE key = 'device_id'").fetchone()
            if row is not None:
                return str(row["value"])
            device_id = f"gw-{uuid.uuid4().hex}"
            db.execute("INSERT INTO settings (key, value) VALUES ('device_id', ?)", (device_id,))
            return device_id
