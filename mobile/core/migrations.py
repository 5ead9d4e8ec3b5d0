"""The device database's schema, as small named migrations recorded in a table.

Alembic is too heavy for a handheld; like sqlite-utils' migrations, each step has a name, runs
once, in a transaction, and is recorded in `_migrations`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

Migration = tuple[str, Callable[[sqlite3.Connection], None]]


def _run_script(db: sqlite3.Connection, script: str) -> None:
    """Run statements one by one: executescript() would COMMIT the migration's transaction."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            db.execute(statement)
            statement = ""
    if statement.strip():
        raise ValueError(f"incomplete SQL statement in migration: {statement.strip()[:60]}")


def _m001_initial(db: sqlite3.Connection) -> None:
    _run_script(
        db,
        """
        CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT);

        CREATE TABLE assignments (
            id INTEGER PRIMARY KEY,
            route_code TEXT NOT NULL,
            route_name TEXT NOT NULL DEFAULT '',
            cycle TEXT NOT NULL,
            window_start TEXT NOT NULL,
            window_end TEXT NOT NULL,
            withdrawn INTEGER NOT NULL DEFAULT 0
        );

        CREATE TABLE meters (
            assignment_id INTEGER NOT NULL REFERENCES assignments(id),
            id INTEGER NOT NULL,
            meter_no TEXT NOT NULL,
            account_no TEXT NOT NULL,
            customer_name TEXT NOT NULL,
            address TEXT NOT NULL,
            lat REAL NOT NULL,
            lon REAL NOT NULL,
            digits INTEGER NOT NULL,
            multiplier TEXT NOT NULL,
            last_reading TEXT,
            last_read_at TEXT,
            expected_low TEXT,
            expected_high TEXT,
            sequence INTEGER NOT NULL,
            withdrawn INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (assignment_id, id)
        );

        -- A reading or a skip. A draft may change; a confirmed one never does (triggers below).
        CREATE TABLE readings (
            id TEXT PRIMARY KEY,
            assignment_id INTEGER NOT NULL,
            meter_id INTEGER NOT NULL,
            value TEXT,
            skip_code TEXT,
            note TEXT,
            read_at TEXT,
            confirmed_at TEXT,
            fix TEXT,
            reread_of TEXT,
            state TEXT NOT NULL CHECK (state IN ('draft', 'confirmed')),
            sync_status TEXT NOT NULL DEFAULT 'local'
                CHECK (sync_status IN ('local', 'pending', 'accepted', 'duplicate', 'rejected')),
            sync_error TEXT,
            sync_detail TEXT,
            synced_at TEXT
        );
        CREATE INDEX ix_readings_meter ON readings (assignment_id, meter_id);
        CREATE INDEX ix_readings_outbox ON readings (sync_status);

        CREATE TRIGGER readings_confirmed_locked BEFORE UPDATE OF
            id, assignment_id, meter_id, value, skip_code, note, read_at, confirmed_at, fix,
            reread_of, state ON readings
        WHEN OLD.state = 'confirmed'
        BEGIN SELECT RAISE(ABORT, 'reading is confirmed and locked'); END;

        CREATE TRIGGER readings_confirmed_kept BEFORE DELETE ON readings
        WHEN OLD.state = 'confirmed'
        BEGIN SELECT RAISE(ABORT, 'reading is confirmed and locked'); END;

        CREATE TABLE track_points (
            t TEXT PRIMARY KEY,
            lat REAL NOT NULL,
            lon REAL NOT NULL,
            accuracy_m REAL,
            speed REAL,
            provider TEXT NOT NULL,
            mock INTEGER NOT NULL DEFAULT 0,
            sync_status TEXT NOT NULL DEFAULT 'pending'
                CHECK (sync_status IN ('pending', 'synced', 'rejected')),
            sync_error TEXT
        );
        CREATE INDEX ix_track_outbox ON track_points (sync_status, t);

        CREATE TABLE reread_orders (
            id TEXT PRIMARY KEY,
            assignment_id INTEGER NOT NULL,
            meter_id INTEGER NOT NULL,
            reading_id TEXT,
            reason TEXT NOT NULL,
            ordered_at TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'open'
        );

        CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            urgency TEXT NOT NULL,
            status TEXT NOT NULL,
            content TEXT NOT NULL,
            crew TEXT NOT NULL DEFAULT '[]',
            lat REAL,
            lon REAL,
            address TEXT,
            expected_finish TEXT,
            started_at TEXT,
            finished_at TEXT,
            withdrawn INTEGER NOT NULL DEFAULT 0
        );

        CREATE TABLE job_events (
            id TEXT PRIMARY KEY,
            job_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            at TEXT NOT NULL,
            body TEXT NOT NULL,
            sync_status TEXT NOT NULL DEFAULT 'pending'
                CHECK (sync_status IN ('pending', 'accepted', 'duplicate', 'rejected')),
            sync_error TEXT,
            sync_detail TEXT
        );
        CREATE INDEX ix_job_events_outbox ON job_events (sync_status);
        """,
    )


def _m002_change_counter(db: sqlite3.Connection) -> None:
    # One row, raised by every write transaction and copied to the tally beside the file after
    # each commit: a database whose number is behind its tally has lost commits (db_health).
    _run_script(
        db,
        """
        CREATE TABLE change_counter (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            number INTEGER NOT NULL
        );
        INSERT INTO change_counter (id, number) VALUES (1, 0);
        """,
    )


def _m003_retention(db: sqlite3.Connection) -> None:
    # When the server acknowledged each record, so that it is kept a retention period after
    # (records acknowledged before this migration count from their own time).
    _run_script(
        db,
        """
        ALTER TABLE job_events ADD COLUMN synced_at TEXT;
        ALTER TABLE track_points ADD COLUMN synced_at TEXT;
        UPDATE job_events SET synced_at = at WHERE sync_status IN ('accepted', 'duplicate');
        UPDATE track_points SET synced_at = t WHERE sync_status = 'synced';
        UPDATE readings SET synced_at = confirmed_at
            WHERE sync_status IN ('accepted', 'duplicate') AND synced_at IS NULL;

        -- A confirmed reading may leave the device only once the server holds it: pruned
        -- after the retention period. One the server has not acknowledged stays for ever.
        DROP TRIGGER readings_confirmed_kept;
        CREATE TRIGGER readings_confirmed_kept BEFORE DELETE ON readings
        WHEN OLD.state = 'confirmed' AND (
            OLD.sync_status NOT IN ('accepted', 'duplicate') OR OLD.synced_at IS NULL
        )
        BEGIN SELECT RAISE(ABORT, 'reading is confirmed and locked'); END;
        """,
    )


def _m004_server_state(db: sqlite3.Connection) -> None:
    # Each meter as the office holds it (read on this handheld or another): what a fresh or
    # swapped handheld shows, and what it does not offer again.
    _run_script(
        db,
        """
        ALTER TABLE meters ADD COLUMN server_state TEXT NOT NULL DEFAULT 'unread'
            CHECK (server_state IN ('unread', 'read', 'skipped'));
        ALTER TABLE meters ADD COLUMN server_reading_id TEXT;
        ALTER TABLE meters ADD COLUMN server_read_at TEXT;
        ALTER TABLE meters ADD COLUMN server_value TEXT;
        ALTER TABLE meters ADD COLUMN server_skip_code TEXT;
        """,
    )


MIGRATIONS: list[Migration] = [
    ("001_initial", _m001_initial),
    ("002_change_counter", _m002_change_counter),
    ("003_retention", _m003_retention),
    ("004_server_state", _m004_server_state),
]

# The tables that hold the handheld's settings and work, parents before children.
WORK_TABLES = (
    "settings",
    "assignments",
    "meters",
    "readings",
    "track_points",
    "reread_orders",
    "jobs",
    "job_events",
)
# The tables the migrations make, all of them there once every migration is recorded.
TABLES = frozenset({*WORK_TABLES, "change_counter"})


def schema_problem(tables: set[str], done: set[str]) -> str | None:
    """What is wrong with a schema of these tables and recorded migrations, or None: a file
    with tables but no record of its migrations, or one missing a table its record promises."""
    if not tables - {"_migrations"}:
        return None  # a new or empty file: the migrations make everything
    if "_migrations" not in tables:
        return "its schema has no record of its migrations"
    if {name for name, _ in MIGRATIONS} <= done and (missing := TABLES - tables):
        return f"its schema lacks {', '.join(sorted(missing))}"
    return None


def migrate(db: sqlite3.Connection) -> list[str]:
    """Apply the migrations not yet recorded, each in its own transaction; return their names."""
    db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
    done = {row[0] for row in db.execute("SELECT name FROM _migrations")}
    applied = []
    for name, step in MIGRATIONS:
        if name in done:
            continue
        db.execute("BEGIN IMMEDIATE")
        try:
            step(db)
            db.execute(
                "INSERT INTO _migrations (name, applied_at) VALUES (?, datetime('now'))", (name,)
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        applied.append(name)
    return applied
