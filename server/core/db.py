"""Engine and session, and the column types both SQLite and PostgreSQL keep the same way."""

from __future__ import annotations

import contextlib
import functools
import threading
import uuid
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, cast

import orjson
import psycopg
from sqlalchemy import Column, Connection, DateTime, Engine, Table, event
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.types import TypeDecorator
from sqlmodel import create_engine

from server.core.config import Settings


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware.

    SQLite has no time zones; without this, a time written aware would come back naive.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        if dialect.name == "postgresql":
            # make_engine pins each connection's TimeZone to UTC, so psycopg hands back
            # datetimes in UTC already: no Python call per value (a validation reads thousands).
            return None
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)
        parse_naive = super().result_processor(dialect, coltype)
        assert parse_naive is not None

        def aware(value: Any) -> datetime | None:
            # SQLite keeps the UTC time as text: parsed with its zone in one step, since
            # replace(tzinfo=...) alone costs several times the parse, and a validation reads
            # thousands of track points (bench/close_due.py). Text of another shape goes the
            # general way.
            if isinstance(value, str):
                try:
                    return datetime.fromisoformat(value + "+00:00")
                except ValueError:
                    pass
            return cast(datetime | None, parse_naive(value))

        return aware


# This process's turn at SQLite's one write lock (sqlite_write_turn).
_SQLITE_WRITE_TURN = threading.Lock()


def sqlite_write_turn(session: OrmSession) -> AbstractContextManager[object]:
    """On SQLite, wait here for this process's turn before taking the database's write lock,
    and hold it to the commit. Waiting on SQLite's own lock, each waiter sleeps and tries
    again (its busy handler sleeps up to 100 ms at a time), and the lock sits free meanwhile
    or goes to whoever tries next: with six handhelds pushing at once the slowest answers took
    1.1-2.1 s; queued here, the next push is woken as the lock is let go (0.2 s: bench/ingest).
    Other processes (`serve --workers`, the CLI) still meet at SQLite's lock. PostgreSQL locks
    rows, not the database: there this is nothing."""
    if session.get_bind().dialect.name == "sqlite":
        return _SQLITE_WRITE_TURN
    return contextlib.nullcontext()


def engine_for(settings: Settings) -> Engine:
    """The server's engine: the pool sized from the settings (see Settings.db_pool_size)."""
    return make_engine(
        settings.database_url,
        sqlite_busy_timeout_s=settings.sqlite_busy_timeout_s,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_s,
    )


def make_engine(
    url: str,
    *,
    sqlite_immediate: bool = True,
    sqlite_busy_timeout_s: float = 30.0,
    **kwargs: Any,
) -> Engine:
    """An engine for `url`; SQLite gets foreign keys, WAL, a busy timeout and (unless told
    otherwise) transactions that take the write lock when they begin."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": sqlite_busy_timeout_s},
            **kwargs,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.close()

        # pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINTs; take control.
        @event.listens_for(engine, "connect")
        def _no_pysqlite_begin(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            # IMMEDIATE takes the write lock up front, so two writers queue instead of one
            # failing with "database is locked" half-way through its transaction. A transaction
            # that only reads says so (execution option sqlite_deferred) and takes no lock.
            deferred = conn.get_execution_options().get("sqlite_deferred", False)
            conn.exec_driver_sql(
                "BEGIN IMMEDIATE" if sqlite_immediate and not deferred else "BEGIN"
            )

        return engine
    # Every session in UTC: timestamps come back from psycopg in UTC (see UTCDateTime), and
    # none depends on the server's or the role's configured zone.
    connect_args = dict(kwargs.pop("connect_args", {}))
    connect_args["options"] = f"{connect_args.get('options', '')} -c TimeZone=UTC".strip()
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args, **kwargs)


# What SQLite says when another writer holds the lock beyond the busy timeout, as against a bug
# such as "no such table".
_SQLITE_LOCKED = ("database is locked", "database table is locked")


def out_of_reach(exc: DBAPIError) -> Literal["busy", "down"] | None:
    """Whether a database error means "not now, try again": `busy` (SQLite locked by other
    writers), `down` (the server is down, restarting or unreachable, or the connection was
    cut), or None: a bug in a statement, which stays a 500.

    On PostgreSQL every OperationalError is of the "not now" kind: psycopg raises it for lost
    connections, administrator shutdown, too many connections and serialization failures."""
    if exc.connection_invalidated or isinstance(exc, InterfaceError):
        return "down"
    if not isinstance(exc, OperationalError):
        return None
    if type(exc.orig).__module__.startswith("sqlite3"):
        message = str(exc.orig).lower()
        if any(words in message for words in _SQLITE_LOCKED):
            return "busy"
        return "down" if "unable to open" in message else None
    return "down"


@functools.cache
def _array_of(column: Column[Any]) -> str:
    """The type a column's values travel in: the column's own without its length or scale (a
    cast to VARCHAR(n) would cut a longer text instead of refusing it). Remembered: compiling
    it makes a dialect, and every push asks again for each of its columns."""
    return column.type.compile(dialect=postgresql.dialect()).split("(")[0]


def copy_type(column: Column[Any]) -> str:
    """A column's type as psycopg names it for a binary COPY (`Copy.set_types`)."""
    name = _array_of(column).lower()
    return {"float": "float8"}.get(name, name)


def array_text(values: Iterable[int | uuid.UUID]) -> str:
    """PostgreSQL's text of an array of these ids (integers or UUIDs: nothing in either needs
    quoting), for a parameter cast to an array (`= ANY(CAST(:ids AS integer[]))`). A list
    parameter is written by psycopg element by element in Python, a regular expression each
    (a push's meters: two arrays of 200); a text, at once."""
    return "{" + ",".join(map(str, values)) + "}"


def insert_dicts(
    connection: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    same: dict[str, Any],
    returning: str,
    savepoint: bool = False,
) -> list[Any]:
    """PostgreSQL: `rows` (dicts of one shape), each with the columns `same` (whose value every
    row shares, sent once), inserted ON CONFLICT DO NOTHING by one short statement; the
    `returning` expression of each row inserted. The rows travel as one JSON text, written by
    orjson in C and made rows again by `json_to_recordset`: no statement text growing with the
    rows, and under half the CPU of binary arrays, whose elements psycopg writes one by one in
    Python (a push's readings, a close's billing lines). Values are what orjson writes: a
    Decimal as its text, a time with its offset (a naive one is UTC, as every session here is);
    a float must be finite (orjson writes NaN as null: the checks at the edge refuse one
    first). `savepoint`: a refused statement undoes itself alone, not the transaction (said to
    the driver: the session's savepoint costs a push more CPU than the statement)."""
    columns = list(rows[0])
    # Each column's type without its length or scale: a longer text is refused by the
    # insert, not cut to fit by a cast (_array_of).
    typed = ", ".join(f"{name} {_array_of(table.c[name])}" for name in columns)
    names = ", ".join([*columns, *same])
    scalars = "".join(f", %s::{_array_of(table.c[name])}" for name in same)
    statement = (
        f"INSERT INTO {table.name} ({names}) "  # noqa: S608 - the table's own names
        f"SELECT {', '.join(columns)}{scalars} FROM json_to_recordset(%s::json) AS r({typed}) "
        f"ON CONFLICT DO NOTHING RETURNING {returning}"
    )
    payload = orjson.dumps(rows, default=_json_default, option=orjson.OPT_NAIVE_UTC).decode()
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        if savepoint:
            cursor.execute("SAVEPOINT insert_dicts")
        try:
            # In the statement's order: the shared values come before the rows.
            cursor.execute(statement, [*same.values(), payload])
            inserted = [value for (value,) in cursor.fetchall()]
        except psycopg.Error:
            if savepoint:
                cursor.execute("ROLLBACK TO SAVEPOINT insert_dicts")
            raise
        if savepoint:
            cursor.execute("RELEASE SAVEPOINT insert_dicts")
        return inserted
    finally:
        cursor.close()


def _json_default(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} does not travel as JSON here")
