"""Loading accounts, routes and meters from a billing system's CSV export: every row or none.

Each row names one meter with its account and route. The file is the truth for every meter it
names: an optional column left empty (or absent) takes its default. Meters the file does not
name are left alone, so a file may carry a single route.

A utility's export is 150,000-300,000 rows, so the file is read as a stream and never held. On
PostgreSQL a plain file (most exports: meter_csv.plain_meter_csv) is checked a block of lines at
a time and copied into a temporary table as it stands (_copy_plain); any other file, and every
file on SQLite, is checked row by row as it is read (meter_csv.read_meter_csv: a quick check,
the full one for the rows it refuses) and staged (COPY on PostgreSQL, executemany on SQLite).
The database then finds the rows that contradict each other (meters_named_twice,
rows_that_disagree). When every row was good, a handful of set-based statements join the staged
rows to the tables and insert or update what differs, never the rows that are already as the
file says. Memory stays bounded: no row is kept once staged.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import IO, Any

import psycopg
import psycopg.errors
from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    FromClause,
    Insert,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    and_,
    case,
    cast,
    exists,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy import (
    column as named_column,
)
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import Session

from common import clock
from common.i18n import N_
from server.catalog.accounts import get_or_create_grid
from server.catalog.meter_csv import (
    DEFAULT_DIGITS,
    DEFAULT_MULTIPLIER,
    PLAIN_DELIMITER,
    STAGED_COLUMNS,
    NotPlainError,
    invalid_file,
    plain_meter_csv,
    read_meter_csv,
    row_error,
)
from server.core.changes import log_admin_action, next_change_seq
from server.core.errors import Conflict, Invalid
from server.models import Account, Assignment, Grid, Meter, Route, Withdrawal

logger = logging.getLogger("gridwalk")

# Rows between two progress reports; also the size of each executemany on SQLite.
BATCH_ROWS = 5000
# New accounts from which an import on PostgreSQL refreshes the statistics before it joins them.
PLANNED_AGAIN_AFTER = 1000
# Bytes read at a time from the file.
READ_CHUNK = 1 << 16
# What the database does once the file is read, step by step, as a progress bar names it (a
# utility's first load spends most of its time here: bench/README.md).
WRITING_STEPS = (
    N_("grids and routes"),
    N_("accounts"),
    N_("meters"),
    N_("changed accounts"),
)


@dataclass
class ImportReport:
    """What an import did, counted."""

    rows: int = 0
    accounts_created: int = 0
    accounts_updated: int = 0
    meters_created: int = 0
    meters_updated: int = 0
    unchanged: int = 0
    routes_created: int = 0
    routes_updated: int = 0
    meters_moved: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _table(model: Any) -> Table:
    table: Table = model.__table__
    return table


A, AC, G, M, RT, W = (_table(m) for m in (Assignment, Account, Grid, Meter, Route, Withdrawal))

# The meter's columns the file sets.
METER_COLUMNS = STAGED_COLUMNS[STAGED_COLUMNS.index("sequence") :]


def _stage_table() -> Table:
    """The staged rows, typed as the columns they go to (the same values reach the database
    the ORM would write)."""
    return Table(
        "meter_import",
        MetaData(),
        Column("line", Integer, nullable=False),
        Column("account_no", AC.c.account_no.type),
        Column("customer_name", AC.c.customer_name.type),
        Column("address", AC.c.address.type),
        Column("phone", AC.c.phone.type),
        Column("meter_no", M.c.meter_no.type),
        Column("route_code", RT.c.code.type),
        Column("grid_code", G.c.code.type),
        *(Column(name, M.c[name].type) for name in METER_COLUMNS),
        prefixes=["TEMPORARY"],
    )


def _accounts_table() -> Table:
    """The staged rows by account: what an account becomes, the line that first names it, and
    whether another line describes it otherwise (grouped once, read by the checks and by the
    accounts' insert and update)."""
    return Table(
        "meter_import_accounts",
        MetaData(),
        Column("account_no", AC.c.account_no.type, nullable=False),
        Column("first_line", Integer, nullable=False),
        Column("customer_name", AC.c.customer_name.type),
        Column("address", AC.c.address.type),
        Column("phone", AC.c.phone.type),
        Column("described_twice", Boolean, nullable=False),
        prefixes=["TEMPORARY"],
    )


def _group_accounts(conn: Connection, stage: Table, accounts: Table) -> None:
    st = stage.c
    conn.execute(
        insert(accounts).from_select(
            [c.name for c in accounts.c],
            select(
                st.account_no,
                func.min(st.line),
                func.max(st.customer_name),
                func.max(st.address),
                func.max(st.phone),
                or_(
                    func.min(st.customer_name) != func.max(st.customer_name),
                    func.min(st.address) != func.max(st.address),
                ),
            ).group_by(st.account_no),
        )
    )


def _routes_table() -> Table:
    """The staged rows by route: its grid_code, the first line that gives one, and whether
    another line gives another (grouped once, read by the check and by the routes' writes)."""
    return Table(
        "meter_import_routes",
        MetaData(),
        Column("route_code", RT.c.code.type, nullable=False),
        Column("grid_code", G.c.code.type),
        Column("first_line", Integer),
        Column("regridded", Boolean, nullable=False),
        prefixes=["TEMPORARY"],
    )


def _group_routes(conn: Connection, stage: Table, routes: Table) -> None:
    st = stage.c
    conn.execute(
        insert(routes).from_select(
            [c.name for c in routes.c],
            select(
                st.route_code,
                func.max(st.grid_code),
                func.min(case((st.grid_code.is_not(None), st.line))),
                # Both NULL when no line gives a grid_code: not regridded.
                func.coalesce(func.min(st.grid_code) != func.max(st.grid_code), False),
            ).group_by(st.route_code),
        )
    )


def import_meters_csv(
    session: Session,
    source: IO[bytes] | str,
    *,
    actor_id: int | None,
    progress: Callable[[int, int], None] | None = None,
    writing: Callable[[str], None] | None = None,
) -> ImportReport:
    """Check every row of a meters CSV (a binary stream, UTF-8, or text) as it is read and
    stage it, then upsert all of them in one transaction, or none. `progress(done, total)` is
    told the bytes read so far and the file's size; then `writing(step)` each of
    WRITING_STEPS as the database begins it. A file with a bad row reaches no step, but for a
    meter named twice in a first load, which the meters' insert finds (and all is undone)."""
    stream = io.BytesIO(source.encode("utf-8")) if isinstance(source, str) else source
    try:
        report = _import(
            session, stream, actor_id=actor_id, progress=progress, writing=writing or _quiet
        )
        session.flush()  # another writer's same keys fail here, not at the caller's commit
    except IntegrityError:
        session.rollback()
        # Our own checks passed, so another writer inserted the same keys in the meantime.
        raise Conflict(
            "another import changed the same accounts, routes or meters at the "
            "same time: nothing was written; import the file again",
            code="import_conflict",
        ) from None
    except BaseException:
        session.rollback()
        raise
    return report


class _Digest(io.RawIOBase):
    """The file as read, hashed on the way (the admin log names the file by its digest)."""

    def __init__(self, raw: IO[bytes]):
        self.raw = raw
        self.sha = hashlib.sha256()
        self.done = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.sha.update(data)
        self.done += n
        return n


def _size(stream: IO[bytes]) -> int:
    if not stream.seekable():
        return 0
    here = stream.tell()
    size = stream.seek(0, io.SEEK_END) - here
    stream.seek(here)
    return size


def _lines(counted: _Digest) -> Iterator[str]:
    text = io.TextIOWrapper(
        io.BufferedReader(counted, READ_CHUNK), encoding="utf-8-sig", newline=""
    )
    try:
        yield from text
    except UnicodeDecodeError:
        raise Invalid(
            f"file is not UTF-8 text (near byte {counted.done})", code="not_utf8"
        ) from None


def _quiet(step: str) -> None:
    pass


def _import(
    session: Session,
    stream: IO[bytes],
    *,
    actor_id: int | None,
    progress: Callable[[int, int], None] | None,
    writing: Callable[[str], None],
) -> ImportReport:
    conn = session.connection()
    stage, accounts, routes = _stage_table(), _accounts_table(), _routes_table()
    for table in (stage, accounts, routes):
        table.drop(conn, checkfirst=True)  # one left by an earlier import on this connection
        table.create(conn)
    total = _size(stream)
    counted = _Digest(stream)
    if progress is not None:
        progress(0, total)

    def report_progress() -> None:
        if progress is not None:
            progress(counted.done, max(total, counted.done))

    errors: list[dict[str, Any]] = []
    refused: list[tuple[int, str]] = []
    postgresql = conn.dialect.name == "postgresql"
    rows = None
    if postgresql and stream.seekable():
        start = stream.tell()
        rows = _copy_plain(session, conn, stage, counted, report_progress)
        if rows is None:  # not plain: read again from the start, row by row
            stream.seek(start)
            counted = _Digest(stream)
            report_progress()
    if rows is None:
        staged = read_meter_csv(
            _lines(counted),
            errors,
            moment_text=datetime.isoformat if postgresql else _sqlite_moment,
            refused=refused,
        )
        rows = (_copy if postgresql else _insert)(conn, staged, report_progress)
    report_progress()
    with _planned(conn) if postgresql else nullcontext():
        _group_accounts(conn, stage, accounts)
        _group_routes(conn, stage, routes)
        if postgresql:
            conn.exec_driver_sql("ANALYZE meter_import_accounts, meter_import_routes")
        errors += rows_that_disagree(conn, stage, accounts, routes)
        # A meter named twice. Into a table without meters every staged row is inserted, and
        # the meters' unique index finds a second one: the grouping (0.3-0.4 s of a 300,000-row
        # first load) runs only if it does. Otherwise (a meter twice would be updated twice, or
        # the file is refused anyway and each bad line must be named) it runs now.
        twice: Callable[[], list[dict[str, Any]]] | None = None
        if errors or conn.execute(select(M.c.id).limit(1)).first() is not None:
            errors += meters_named_twice(conn, stage, refused)
        else:
            twice = partial(meters_named_twice, conn, stage, refused)
        if errors:
            for table in (stage, accounts, routes):
                table.drop(conn)
            session.rollback()
            raise invalid_file(sorted(errors, key=lambda e: e["line"]))
        report = _upsert(
            session,
            conn,
            stage,
            rows,
            accounts,
            routes,
            actor_id=actor_id,
            writing=writing,
            checked_once=_keys_built_once if postgresql else None,
            named_twice=twice,
        )
    for table in (stage, accounts, routes):
        table.drop(conn)
    log_admin_action(
        session,
        actor_id=actor_id,
        action="meters.import",
        object_type="csv",
        object_id=counted.sha.hexdigest(),
        detail=report.as_dict(),
    )
    return report


def _sqlite_moment(moment: datetime) -> str:
    """A UTC time as SQLAlchemy writes one to SQLite (so that the same time compares equal)."""
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def _copy_line(values: list[str]) -> str:
    """A staged row as a line of COPY's text format ("" is NULL: no staged text is empty)."""
    line = "\t".join(values)
    if "\\" in line or "\n" in line or "\r" in line or line.count("\t") != len(values) - 1:
        line = "\t".join(
            v.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
            for v in values
        )
    return line + "\n"


def _copy(conn: Connection, rows: Iterator[list[str]], report: Callable[[], None]) -> int:
    """Stage the good rows with COPY as they come (PostgreSQL); gives how many. The file is
    read to its end even after a bad row, so that every bad row is named (and then nothing
    staged is written)."""
    count = 0
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    names = ", ".join(STAGED_COLUMNS)
    with cursor.copy(f"COPY meter_import ({names}) FROM STDIN WITH (NULL '')") as copy:
        batch: list[str] = []
        for row in rows:
            batch.append(_copy_line(row))
            if len(batch) == BATCH_ROWS:
                copy.write("".join(batch))
                batch = []
                report()
            count += 1
        copy.write("".join(batch))
    return count


def _copy_plain(
    session: Session,
    conn: Connection,
    stage: Table,
    counted: _Digest,
    report: Callable[[], None],
) -> int | None:
    """Stage a plain file (meter_csv.plain_meter_csv) with COPY a block at a time, and give
    how many rows; or stage nothing and give None when it is not plain (the caller then reads
    it row by row). A failure of the database here means the same: the row-by-row reading
    meets it again, or names what in the file caused it."""
    text = io.TextIOWrapper(
        io.BufferedReader(counted, READ_CHUNK), encoding="utf-8-sig", newline=""
    )
    attempt = session.begin_nested()
    session.connection()  # the savepoint is taken when the session next uses its connection
    try:
        columns, blocks = plain_meter_csv(text)
        names = []
        for at, column in enumerate(columns):
            if column not in STAGED_COLUMNS:  # a column the import does not read
                column = f"unread_{at}"
                conn.exec_driver_sql(f"ALTER TABLE meter_import ADD COLUMN {column} text")
            names.append(column)
        conn.exec_driver_sql(
            f"ALTER TABLE meter_import ADD CONSTRAINT compared CHECK ({_compared(conn, stage)})"
        )
        # A date-time without a zone is UTC, as meter_csv reads one.
        zone = conn.exec_driver_sql("SELECT current_setting('TimeZone')").scalar_one()
        conn.exec_driver_sql("SELECT set_config('TimeZone', 'UTC', true)")
        rows = 0
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        delimiter = f"E'\\x{ord(PLAIN_DELIMITER):02x}'"
        with cursor.copy(
            f"COPY meter_import ({', '.join(names)}, line) "
            f"FROM STDIN WITH (DELIMITER {delimiter}, NULL '')"
        ) as copy:
            for block in blocks:
                copy.write(block)
                rows += block.count("\n")
                report()
        conn.exec_driver_sql("SELECT set_config('TimeZone', %s, true)", (zone,))
        st = stage.c
        conn.execute(
            update(stage)
            .values(
                digits=func.coalesce(st.digits, DEFAULT_DIGITS),
                multiplier=func.coalesce(st.multiplier, DEFAULT_MULTIPLIER),
            )
            .where(or_(st.digits.is_(None), st.multiplier.is_(None)))
        )
    except (NotPlainError, UnicodeDecodeError, psycopg.errors.CheckViolation) as exc:
        logger.debug("import: the file is not plain (%r): read row by row", exc)
        attempt.rollback()
        return None
    except (DBAPIError, psycopg.Error) as exc:
        logger.warning("import: staging a plain file failed (%s): read row by row", exc)
        attempt.rollback()
        return None
    attempt.commit()
    logger.debug("import: %d rows staged as a plain file", rows)
    return rows


def _compared(conn: Connection, stage: Table) -> str:
    """The staged rows' CHECK for a plain file: the rules the block pattern cannot see, that
    compare cells (meter_csv._quick_values: lat and lon both 0, a multiplier of 0, a
    last_reading with more digits than the meter, expected_low above expected_high). A row
    breaking one stops the COPY, and the file is read row by row, which names it."""
    # Named alone: a CHECK names its own table's columns unqualified.
    c = {name: named_column(name, stage.c[name].type) for name in STAGED_COLUMNS}
    broken = or_(
        and_(c["lat"] == 0, c["lon"] == 0),
        c["multiplier"] == 0,
        c["last_reading"]
        >= func.power(cast(literal(10), Numeric), func.coalesce(c["digits"], DEFAULT_DIGITS)),
        c["expected_low"] > c["expected_high"],
    )
    return str(not_(broken).compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))


def _typed(stage: Table) -> Callable[[list[str]], tuple[Any, ...]]:
    """A staged row's text as the values SQLAlchemy would bind on SQLite (floats for numerics:
    its Numeric binds them so)."""
    kinds = []
    for name in STAGED_COLUMNS:
        python_type = stage.c[name].type.python_type
        kinds.append(
            int if python_type is int else float if python_type in (float, Decimal) else str
        )

    def typed(values: list[str]) -> tuple[Any, ...]:
        return tuple(
            None if value == "" else kind(value) for kind, value in zip(kinds, values, strict=True)
        )

    return typed


def _insert(conn: Connection, rows: Iterator[list[str]], report: Callable[[], None]) -> int:
    """Stage the good rows in batches of executemany (SQLite), as _copy does."""
    count = 0
    typed = _typed(_stage_table())
    marks = ", ".join("?" for _ in STAGED_COLUMNS)
    statement = f"INSERT INTO meter_import ({', '.join(STAGED_COLUMNS)}) VALUES ({marks})"  # noqa: S608 - our column names
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(typed(row))
        count += 1
        if len(batch) == BATCH_ROWS:
            conn.exec_driver_sql(statement, batch)
            batch = []
            report()
    if batch:
        conn.exec_driver_sql(statement, batch)
    return count


# --- writing ----------------------------------------------------------------------------------


def _inserted(conn: Connection, statement: Insert) -> int:
    """Run an INSERT ... SELECT; gives how many rows it added (SQLAlchemy fetches an INSERT's
    row count only when asked)."""
    count: int = conn.execute(statement.execution_options(preserve_rowcount=True)).rowcount
    return count


@contextmanager
def _planned(conn: Connection) -> Iterator[None]:
    """PostgreSQL planning the statements that each join or group every staged row once."""
    # Settings local to the transaction, put back after: a failed import rolls them back.
    saved = conn.exec_driver_sql(
        "SELECT current_setting('jit'), current_setting('default_statistics_target'), "
        "current_setting('work_mem')"
    ).one()
    # Just-in-time compilation: these statements run once, and their estimated cost (large
    # for a utility's file) makes PostgreSQL spend seconds compiling each of them.
    conn.exec_driver_sql("SELECT set_config('jit', 'off', true)")
    # A temporary table has no statistics: without them the joins are planned as if it held
    # a few rows. A sample of 3,000 rows tells its size and spread as well as 30,000 would.
    conn.exec_driver_sql("SELECT set_config('default_statistics_target', '10', true)")
    conn.exec_driver_sql("ANALYZE meter_import")
    # Grouping a utility's file by account sorts on disk with the default 4 MB.
    conn.exec_driver_sql("SELECT set_config('work_mem', '64MB', true)")
    yield
    conn.exec_driver_sql(
        "SELECT set_config('jit', %s, true), set_config('default_statistics_target', %s, true), "
        "set_config('work_mem', %s, true)",
        tuple(saved),
    )


def meters_named_twice(
    conn: Connection, stage: Table, refused: list[tuple[int, str]]
) -> list[dict[str, Any]]:
    """The staged rows naming a meter an earlier line names (also a line `refused` for its own
    errors: its line and meter_no), each named by its line, in the order of the lines. The
    database groups the rows by meter_no, so the import's memory does not grow with the file."""
    st = stage.c
    errors: list[dict[str, Any]] = []
    named: FromClause = stage
    if refused:
        bad_rows = Table(
            "meter_import_refused",
            MetaData(),
            Column("line", Integer, nullable=False),
            Column("meter_no", String, nullable=False),
            prefixes=["TEMPORARY"],
        )
        bad_rows.drop(conn, checkfirst=True)
        bad_rows.create(conn)
        # Text PostgreSQL cannot hold (a NUL) cannot be the same as a staged meter_no.
        keys = [{"line": n, "meter_no": m} for n, m in refused if "\x00" not in m]
        if keys:
            conn.execute(insert(bad_rows), keys)
        named = union_all(select(st.line, st.meter_no), select(bad_rows)).subquery("named")
    twice = (
        select(named.c.meter_no, func.min(named.c.line).label("first"))
        .group_by(named.c.meter_no)
        .having(func.count() > 1)
        .subquery("meters_twice")
    )
    for line, meter_no, first_line in conn.execute(
        select(named.c.line, named.c.meter_no, twice.c.first)
        .join(twice, twice.c.meter_no == named.c.meter_no)
        .where(named.c.line != twice.c.first)
    ):
        errors.append(
            row_error(line, "meter_no", f"meter_no {meter_no} is also on line {first_line}")
        )
    return sorted(errors, key=lambda e: e["line"])


def rows_that_disagree(
    conn: Connection, stage: Table, accounts: Table, routes: Table
) -> list[dict[str, Any]]:
    """The staged rows that describe an account or a route otherwise than an earlier line,
    each named by its line: another customer_name or address, another grid_code (no grid_code
    says nothing). Grouped by the database (`accounts` and `routes` hold the rows grouped)."""
    st = stage.c
    first = stage.alias("first_row")
    errors: list[dict[str, Any]] = []

    twice = select(accounts).where(accounts.c.described_twice).subquery("accounts_twice")
    for line, account_no, first_line, other_name, other_address in conn.execute(
        select(
            st.line,
            st.account_no,
            twice.c.first_line,
            st.customer_name != first.c.customer_name,
            st.address != first.c.address,
        )
        .join(twice, twice.c.account_no == st.account_no)
        .join(first, first.c.line == twice.c.first_line)
        .where(or_(st.customer_name != first.c.customer_name, st.address != first.c.address))
    ):
        for differs, column in ((other_name, "customer_name"), (other_address, "address")):
            if differs:
                errors.append(
                    row_error(
                        line,
                        column,
                        f"account_no {account_no} has another {column} on line {first_line}",
                    )
                )

    regridded = select(routes).where(routes.c.regridded).subquery("routes_regridded")
    for line, route_code, grid_code, first_line in conn.execute(
        select(st.line, st.route_code, first.c.grid_code, regridded.c.first_line)
        .join(regridded, regridded.c.route_code == st.route_code)
        .join(first, first.c.line == regridded.c.first_line)
        .where(st.grid_code.is_not(None), st.grid_code != first.c.grid_code)
    ):
        errors.append(
            row_error(
                line,
                "grid_code",
                f"route_code {route_code} has grid_code {grid_code} on line {first_line}",
            )
        )
    return errors


def _upsert(
    session: Session,
    conn: Connection,
    stage: Table,
    rows: int,
    per_account: FromClause,
    named: FromClause,
    *,
    actor_id: int | None,
    writing: Callable[[str], None],
    checked_once: Callable[[Connection, Table], AbstractContextManager[None]] | None = None,
    named_twice: Callable[[], list[dict[str, Any]]] | None = None,
) -> ImportReport:
    """Join the staged rows to the tables and write what differs, a statement a step (each of
    WRITING_STEPS told to `writing` as it begins); `per_account` holds the staged rows grouped
    by account (_accounts_table), `named` by route (_routes_table). The accounts' and the
    meters' inserts run inside `checked_once(conn, table)` when given; `named_twice`, when
    given, names the rows repeating a meter if the insert breaks the meters' unique constraint
    (nothing else could: the file's meters were all new)."""
    now = clock.now()
    st = stage.c
    report = ImportReport(rows=rows)
    routes_step, accounts_step, meters_step, changed_accounts_step = WRITING_STEPS

    writing(routes_step)
    # Grids are few: created one by one, each logged (accounts.get_or_create_grid).
    codes = conn.execute(select(named.c.grid_code).where(named.c.grid_code.is_not(None)).distinct())
    for code in sorted(codes.scalars()):
        get_or_create_grid(session, code=code, actor_id=actor_id)

    # Routes: the grid a route's rows name (the checks made them agree); none keeps its grid.
    grid_of = select(G.c.id).where(G.c.code == named.c.grid_code).scalar_subquery()
    wanted = (
        select(named.c.route_code.label("code"), grid_of.label("grid_id"))
        .select_from(named)
        .subquery("wanted_routes")
    )
    regrid = (
        update(RT)
        .values(grid_id=wanted.c.grid_id)
        .where(
            RT.c.code == wanted.c.code,
            wanted.c.grid_id.is_not(None),
            RT.c.grid_id.is_distinct_from(wanted.c.grid_id),
        )
    )
    report.routes_updated = conn.execute(regrid).rowcount
    new_routes = select(
        wanted.c.code, wanted.c.code, wanted.c.grid_id, literal(now, RT.c.created_at.type)
    ).where(~exists().where(RT.c.code == wanted.c.code))
    report.routes_created = _inserted(
        conn, insert(RT).from_select(["code", "name", "grid_id", "created_at"], new_routes)
    )

    writing(accounts_step)
    # Accounts the file names first: a meter may move to a new one. Those held before have ids
    # up to this one (ids only grow); only they can need updating, below.
    last_held = conn.execute(select(func.max(AC.c.id))).scalar_one()
    stamp = literal(now, AC.c.created_at.type)
    new_accounts = select(
        per_account.c.account_no,
        per_account.c.customer_name,
        per_account.c.address,
        per_account.c.phone,
        literal(True),
        stamp,
        stamp,
    ).where(~exists().where(AC.c.account_no == per_account.c.account_no))
    with checked_once(conn, AC) if checked_once is not None else nullcontext():
        report.accounts_created = _inserted(
            conn,
            insert(AC).from_select(
                ["account_no", "customer_name", "address", "phone", "active", "created_at",
                 "updated_at"],
                new_accounts,
            ),
        )  # fmt: skip

    if conn.dialect.name == "postgresql" and report.accounts_created >= PLANNED_AGAIN_AFTER:
        # The joins below are planned from the tables' statistics, which know nothing of the
        # accounts this transaction added (autovacuum sees them only after the commit). A
        # million-row first import without this was still inserting meters after 27 minutes
        # (300,000 rows take seconds): a plan made for an empty accounts table, we believe.
        conn.exec_driver_sql("ANALYZE accounts")
        conn.exec_driver_sql("ANALYZE routes")

    writing(meters_step)
    # Meters, under one change number for the whole import (a pull sees all of it or none).
    # The number is taken first, inside a savepoint given back when no meter changed: a file
    # that changes nothing leaves the counter (and its lock) alone.
    numbered = session.begin_nested()
    seq = next_change_seq(session)
    written = {
        "account_id": AC.c.id,
        "route_id": RT.c.id,
        **{name: st[name] for name in METER_COLUMNS},
        "change_seq": literal(seq, M.c.change_seq.type),
        "updated_at": literal(now, M.c.updated_at.type),
    }
    # Each staged row with its account and route.
    joined = (AC.c.account_no == st.account_no, RT.c.code == st.route_code)
    moved = (M.c.meter_no == st.meter_no, RT.c.code == st.route_code, M.c.route_id != RT.c.id)
    # How many meters the file names exist, and how many of those move: a file of new meters
    # skips the update, a file of known ones the insert. None when the table held no meter
    # (named_twice given): a utility's first load skips this join too.
    existing = 0
    if named_twice is None:
        existing, report.meters_moved = conn.execute(
            select(
                func.count(M.c.id),
                func.coalesce(func.sum(case((M.c.route_id != RT.c.id, 1), else_=0)), 0),
            ).select_from(
                stage.join(RT, RT.c.code == st.route_code).outerjoin(M, M.c.meter_no == st.meter_no)
            )
        ).one()
    if report.meters_moved:
        _withdraw_moved(conn, moved, seq=seq, now=now)
    if existing:
        report.meters_updated = conn.execute(
            update(M)
            .values(**written)
            .where(
                M.c.meter_no == st.meter_no,
                *joined,
                or_(
                    # The handheld shows the account's name and address with the meter: a
                    # meter whose account the file renames (below) is sent again.
                    AC.c.customer_name != st.customer_name,
                    AC.c.address != st.address,
                    M.c.account_id != AC.c.id,
                    M.c.route_id != RT.c.id,
                    *(M.c[name].is_distinct_from(st[name]) for name in METER_COLUMNS),
                ),
            )
        ).rowcount
    if existing < rows:
        try:
            with checked_once(conn, M) if checked_once is not None else nullcontext():
                report.meters_created = _inserted(
                    conn,
                    insert(M).from_select(
                        ["meter_no", *written],
                        select(st.meter_no, *written.values()).where(
                            *joined, ~exists().where(M.c.meter_no == st.meter_no)
                        ),
                    ),
                )
        except IntegrityError:
            if named_twice is None:
                raise
            numbered.rollback()
            found = named_twice()
            if found:
                raise invalid_file(found) from None
            raise  # another writer's meters: import_meters_csv says so
    if report.meters_created or report.meters_updated:
        numbered.commit()
    else:
        numbered.rollback()
    report.unchanged = rows - report.meters_created - report.meters_updated

    writing(changed_accounts_step)
    if last_held is not None:
        report.accounts_updated = _updated_accounts(conn, per_account, last_held, now=now)
    # The rows were written past the ORM: what the session holds of them is stale.
    session.expire_all()
    return report


@contextmanager
def _keys_built_once(conn: Connection, table: Table) -> Iterator[None]:
    """A first load into `table` on PostgreSQL, by the tables' owner: its foreign keys, unique
    constraints and plain indexes are dropped around the insert and made again (a foreign key
    checked by one join instead of a trigger per row, an index built by one sort instead of
    300,000 inserts: ~2.5 s and ~0.6 s of a 300,000-row first load, bench/README.md). A meter
    named twice then breaks the unique constraint as it is made again, instead of in the
    insert: the same IntegrityError. The primary key stays. Inside the import's transaction: a
    failure anywhere rolls them back with the rows, and no other transaction sees the table
    without them (ALTER TABLE holds it, and the tables its keys name, exclusively until the
    commit; on an empty table there is no pull to keep waiting). Anyone else (the app role may
    not alter tables), or a table that holds rows: as is."""
    owner = conn.exec_driver_sql(
        "SELECT pg_has_role(current_user, relowner, 'USAGE') FROM pg_class "
        "WHERE oid = %s::regclass",
        (table.name,),
    ).scalar_one()
    if not owner or conn.execute(select(literal(1)).select_from(table).limit(1)).first():
        yield
        return
    # Foreign keys dropped before unique constraints, and made again after them: a foreign key
    # may lean on one.
    keys = conn.exec_driver_sql(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype IN ('f', 'u') ORDER BY contype, conname",
        (table.name,),
    ).all()
    indexes = conn.exec_driver_sql(
        "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = %s::regclass "
        "AND NOT i.indisunique AND NOT EXISTS "
        "(SELECT FROM pg_constraint WHERE conindid = i.indexrelid) ORDER BY c.relname",
        (table.name,),
    ).all()
    for name, _ in keys:
        conn.exec_driver_sql(f'ALTER TABLE {table.name} DROP CONSTRAINT "{name}"')
    for name, _ in indexes:
        conn.exec_driver_sql(f'DROP INDEX "{name}"')
    yield
    for _, definition in indexes:
        conn.exec_driver_sql(definition)
    for name, definition in reversed(keys):
        conn.exec_driver_sql(f'ALTER TABLE {table.name} ADD CONSTRAINT "{name}" {definition}')


def _updated_accounts(
    conn: Connection, per_account: FromClause, last_held: int, *, now: datetime
) -> int:
    """Write the file's name, address and phone to the accounts held before that it changes;
    gives how many."""
    updated: int = conn.execute(
        update(AC)
        .values(
            customer_name=per_account.c.customer_name,
            address=per_account.c.address,
            # A phone the file gives replaces the one held; a file without one keeps it.
            phone=func.coalesce(per_account.c.phone, AC.c.phone),
            updated_at=literal(now, AC.c.updated_at.type),
        )
        .where(
            AC.c.id <= last_held,
            AC.c.account_no == per_account.c.account_no,
            or_(
                AC.c.customer_name != per_account.c.customer_name,
                AC.c.address != per_account.c.address,
                and_(
                    per_account.c.phone.is_not(None),
                    AC.c.phone.is_distinct_from(per_account.c.phone),
                ),
            ),
        )
    ).rowcount
    return updated


def _withdraw_moved(conn: Connection, moved: tuple[Any, ...], *, seq: int, now: datetime) -> None:
    """Tell the reader of each open assignment of a route a meter leaves that it is gone."""
    withdrawn = select(
        A.c.reader_id,
        literal("meter", W.c.object_type.type),
        func.cast(M.c.id, String),
        A.c.id,
        literal(seq, W.c.change_seq.type),
        literal(now, W.c.created_at.type),
    ).where(*moved, A.c.route_id == M.c.route_id, A.c.status == "open")
    conn.execute(
        insert(W).from_select(
            ["user_id", "object_type", "object_id", "assignment_id", "change_seq", "created_at"],
            withdrawn,
        )
    )
