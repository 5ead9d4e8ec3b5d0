"""The device's SQLite database: one connection shared by the UI and the sync thread, one
transaction per write (WAL, synchronous=FULL), its migrations and its settings; checked at
start (db_health), with the tally beside it rewritten after every commit."""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mobile.core import db_health, migrations
from mobile.core.db_health import Finding, Tally
from mobile.core.language import _, moment

# Where the start-up check's message waits until the user has seen it.
NOTICE_KEY = "db_notice"


class DeviceDb:
    """The connection, its transactions, and the settings kept in it."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        self._file = None if self.path == ":memory:" else Path(self.path)
        finding = None
        if self._file is not None:
            self._file.parent.mkdir(parents=True, exist_ok=True)
            finding = db_health.check_at_start(self._file)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a confirmation is on disk before the screen says it is locked.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=10000")
        with self._lock:
            migrations.migrate(self._db)
        if finding is not None:
            self._keep_finding(finding)

    def _keep_finding(self, finding: Finding) -> None:
        """Keep the message for the screen, the device id the tally knew, and move the change
        number past the tally's, so that the next start does not report the same loss again."""
        last = finding.tally
        with self._tx() as db:
            db.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
                "SET value = excluded.value",
                (NOTICE_KEY, json.dumps(finding.notice, ensure_ascii=False)),
            )
            if last is not None:
                if last.device_id:
                    db.execute(
                        "INSERT OR IGNORE INTO settings (key, value) VALUES ('device_id', ?)",
                        (last.device_id,),
                    )
                db.execute(
                    "UPDATE change_counter SET number = MAX(number, ?) WHERE id = 1",
                    (last.change,),
                )
            # What was pulled may be lost with the rest: the next pull starts from the beginning.
            db.execute("DELETE FROM settings WHERE key = 'cursor'")

    def start_notice(self) -> str | None:
        """What the start-up check found, in plain words (the handheld's language), until the
        user has seen it."""
        kept = self.setting(NOTICE_KEY)
        if kept is None:
            return None
        return db_health.notice_text([tuple(part) for part in json.loads(kept)], _, moment)

    def notice_seen(self) -> None:
        self.set_settings(**{NOTICE_KEY: None})

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("UPDATE change_counter SET number = number + 1 WHERE id = 1")
                tally = Tally.of(self._db) if self._file is not None else None
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            if tally is not None and self._file is not None:
                # After the commit: the tally may lag the database, never lead it.
                db_health.write_tally(self._file, tally)

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
