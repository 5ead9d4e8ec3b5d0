"""Loading accounts, routes and meters from a billing system's CSV export: every row or none.

Each row names one meter with its account and route. The file is the truth for every meter it
names: an optional column left empty (or absent) takes its default. Meters the file does not
name are left alone, so a file may carry a single route.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from common import clock
from server.catalog.accounts import get_or_create_grid
from server.core.changes import log_admin_action, next_change_seq
from server.core.errors import Conflict, Invalid
from server.models import Account, Assignment, Meter, Route, Withdrawal

REQUIRED_COLUMNS = (
    "account_no",
    "customer_name",
    "address",
    "meter_no",
    "lat",
    "lon",
    "route_code",
    "sequence",
)
OPTIONAL_COLUMNS = (
    "digits",
    "multiplier",
    "last_reading",
    "last_read_at",
    "expected_low",
    "expected_high",
    "grid_code",
)
DEFAULT_DIGITS = 6
DEFAULT_MULTIPLIER = Decimal(1)
# Beyond this many, a list of errors helps no one (a wrong file, not a few bad rows).
MAX_LISTED_ERRORS = 1000
# Rows written between two progress reports; also the size of each bulk statement.
BATCH_ROWS = 1000
# Keys per IN (...) lookup: under SQLite's and PostgreSQL's bound-parameter limits.
LOOKUP_CHUNK = 500

_INTEGER = re.compile(r"^[+-]?\d+$")
_DECIMAL = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d{1,3})?$")
_NOT_FINITE = frozenset(
    {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}
)
_THOUSANDTH = Decimal("0.001")
_MAX_INT32 = 2**31 - 1

T = TypeVar("T")


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


@dataclass(frozen=True, slots=True)
class _Row:
    line: int
    account_no: str
    customer_name: str
    address: str
    meter_no: str
    lat: float
    lon: float
    route_code: str
    sequence: int
    digits: int
    multiplier: Decimal
    last_reading: Decimal | None
    last_read_at: datetime | None
    expected_low: Decimal | None
    expected_high: Decimal | None
    grid_code: str | None


def import_meters_csv(
    session: Session,
    text: str,
    *,
    actor_id: int | None,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Check every row of a meters CSV, then upsert all of them in one transaction, or none."""
    rows, errors = _parse(text)
    if errors:
        session.rollback()
        raise _invalid(errors)
    try:
        report = _apply(
            session,
            rows,
            actor_id=actor_id,
            progress=progress,
            digest=hashlib.sha256(text.encode("utf-8")).hexdigest(),
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


# --- checking the file ------------------------------------------------------------------------


def _error(line: int, column: str | None, message: str) -> dict[str, Any]:
    return {"line": line, "column": column, "error": message}


def _invalid(errors: list[dict[str, Any]]) -> Invalid:
    bad_lines = len({e["line"] for e in errors})
    shown = errors[:MAX_LISTED_ERRORS]
    detail = (
        f"the file has {len(errors)} error{'s' if len(errors) != 1 else ''} on "
        f"{bad_lines} line{'s' if bad_lines != 1 else ''}; nothing was imported"
    )
    if len(shown) < len(errors):
        detail += f" (the first {len(shown)} are listed)"
    return Invalid(detail, code="invalid_csv", extra={"errors": shown, "error_count": len(errors)})


class _Cells:
    """One data row's cells by column name, parsed into values while errors are collected."""

    def __init__(self, line: int, cells: dict[str, str], errors: list[dict[str, Any]]):
        self.line = line
        self.cells = cells
        self.errors = errors
        self.ok = True

    def fail(self, column: str, message: str) -> None:
        self.ok = False
        self.errors.append(_error(self.line, column, message))

    def text(self, column: str, *, max_length: int) -> str:
        value = self.cells.get(column, "")
        if not value:
            self.fail(column, f"{column} is empty")
        elif len(value) > max_length:
            self.fail(column, f"{column} is longer than {max_length} characters")
        return value

    def integer(self, column: str, *, default: int | None = None) -> int | None:
        value = self.cells.get(column, "")
        if not value:
            if default is None:
                self.fail(column, f"{column} is empty")
            return default
        if not _INTEGER.match(value):
            self.fail(column, f"{column} {value!r} is not a whole number")
            return None
        number = int(value)
        if abs(number) > _MAX_INT32:
            self.fail(column, f"{column} {value!r} is too large")
            return None
        return number

    def decimal(self, column: str, *, required: bool = False) -> Decimal | None:
        value = self.cells.get(column, "")
        if not value:
            if required:
                self.fail(column, f"{column} is empty")
            return None
        if value.lower() in _NOT_FINITE:
            self.fail(column, f"{column} {value!r} is not a finite number")
            return None
        if not _DECIMAL.match(value):
            self.fail(column, f"{column} {value!r} is not a number")
            return None
        try:
            return Decimal(value)
        except InvalidOperation:  # pragma: no cover - the pattern admits only valid literals
            self.fail(column, f"{column} {value!r} is not a number")
            return None

    def amount(self, column: str, *, below: Decimal) -> Decimal | None:
        """A non-negative decimal of at most 3 places (the columns' scale), under `below`."""
        value = self.decimal(column)
        if value is None:
            return None
        raw = self.cells[column]
        if value < 0:
            self.fail(column, f"{column} {raw} is negative")
            return None
        if value >= below:
            self.fail(column, f"{column} {raw} is too large")
            return None
        # More places would be rounded by the database, and the same file would then look
        # changed on every import.
        if value != value.quantize(_THOUSANDTH):
            self.fail(column, f"{column} {raw} has more than 3 decimal places")
            return None
        return value.quantize(_THOUSANDTH)

    def coordinate(self, column: str, *, limit: int) -> float | None:
        value = self.decimal(column, required=True)
        if value is None:
            return None
        number = float(value)
        if not math.isfinite(number) or not -limit <= number <= limit:
            self.fail(column, f"{column} {self.cells[column]} is outside -{limit}..{limit}")
            return None
        return number

    def timestamp(self, column: str) -> datetime | None:
        value = self.cells.get(column, "")
        if not value:
            return None
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            self.fail(
                column,
                f"{column} {value!r} is not an ISO date or date-time "
                "(such as 2026-10-28 or 2026-10-28T09:30:00+08:00)",
            )
            return None
        # A billing export without a zone means UTC: that is what this system stores.
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _parse_row(cells: _Cells) -> _Row | None:
    account_no = cells.text("account_no", max_length=64)
    customer_name = cells.text("customer_name", max_length=200)
    address = cells.text("address", max_length=500)
    meter_no = cells.text("meter_no", max_length=64)
    lat = cells.coordinate("lat", limit=90)
    lon = cells.coordinate("lon", limit=180)
    if lat == 0 and lon == 0:
        # The classic sign of an export with no position: presence could never be checked.
        cells.fail("lat", "lat and lon are both 0: the export has no position for this meter")
    route_code = cells.text("route_code", max_length=64)
    sequence = cells.integer("sequence")
    if sequence is not None and sequence < 0:
        cells.fail("sequence", f"sequence {sequence} is negative")
    digits = cells.integer("digits", default=DEFAULT_DIGITS)
    if digits is not None and not 3 <= digits <= 12:
        cells.fail("digits", f"digits {digits} is outside 3..12")
        digits = None
    multiplier = cells.amount("multiplier", below=Decimal(10) ** 9)
    if multiplier is not None and multiplier == 0:
        cells.fail("multiplier", "multiplier is 0: it must be above 0")
    last_reading = cells.amount("last_reading", below=Decimal(10) ** 12)
    if last_reading is not None and digits is not None and last_reading >= 10**digits:
        cells.fail(
            "last_reading",
            f"last_reading {cells.cells['last_reading']} has more digits than the meter's {digits}",
        )
    last_read_at = cells.timestamp("last_read_at")
    expected_low = cells.amount("expected_low", below=Decimal(10) ** 12)
    expected_high = cells.amount("expected_high", below=Decimal(10) ** 12)
    if expected_low is not None and expected_high is not None and expected_low > expected_high:
        cells.fail(
            "expected_low",
            f"expected_low {cells.cells['expected_low']} is above "
            f"expected_high {cells.cells['expected_high']}",
        )
    grid_code = cells.cells.get("grid_code", "")
    if len(grid_code) > 32:
        cells.fail("grid_code", "grid_code is longer than 32 characters")
    if not cells.ok:
        return None
    assert lat is not None
    assert lon is not None
    assert sequence is not None
    assert digits is not None
    return _Row(
        line=cells.line,
        account_no=account_no,
        customer_name=customer_name,
        address=address,
        meter_no=meter_no,
        lat=lat,
        lon=lon,
        route_code=route_code,
        sequence=sequence,
        digits=digits,
        multiplier=multiplier if multiplier is not None else DEFAULT_MULTIPLIER,
        last_reading=last_reading,
        last_read_at=last_read_at,
        expected_low=expected_low,
        expected_high=expected_high,
        grid_code=grid_code or None,
    )


def _parse(text: str) -> tuple[list[_Row], list[dict[str, Any]]]:
    """The rows of the file, or the errors of every bad line (line numbers as in an editor)."""
    errors: list[dict[str, Any]] = []
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    try:
        header: list[str] = []
        while not any(h.strip() for h in header):
            header = next(reader)
    except StopIteration:
        return [], [_error(1, None, "the file is empty: the first line must name the columns")]
    except csv.Error as exc:
        return [], [_error(reader.line_num, None, f"not readable as CSV: {exc}")]
    header_line = reader.line_num
    columns = [h.strip().lower() for h in header]
    for name in REQUIRED_COLUMNS:
        if name not in columns:
            errors.append(_error(header_line, name, f"the header has no {name} column"))
    for name in sorted({c for c in columns if columns.count(c) > 1}):
        errors.append(_error(header_line, name, f"the header names {name} more than once"))
    if errors:
        return [], errors

    rows: list[_Row] = []
    meter_lines: dict[str, int] = {}
    account_data: dict[str, tuple[str, str, int]] = {}
    route_grids: dict[str, tuple[str, int]] = {}
    end_of_previous = header_line
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            errors.append(_error(end_of_previous + 1, None, f"not readable as CSV: {exc}"))
            break
        # A quoted value may span lines: a record starts on the line after the previous one ended.
        line, end_of_previous = end_of_previous + 1, reader.line_num
        if not any(f.strip() for f in fields):
            continue
        if len(fields) != len(columns):
            errors.append(
                _error(
                    line,
                    None,
                    f"the line has {len(fields)} values but the header "
                    f"has {len(columns)} columns (an unquoted comma?)",
                )
            )
            continue
        cells = _Cells(line, {c: f.strip() for c, f in zip(columns, fields, strict=True)}, errors)
        meter_no = cells.cells["meter_no"]
        first = meter_lines.setdefault(meter_no, line) if meter_no else line
        if first != line:
            errors.append(_error(line, "meter_no", f"meter_no {meter_no} is also on line {first}"))
        row = _parse_row(cells)
        if row is None or first != line:
            continue
        name, address, first = account_data.setdefault(
            row.account_no, (row.customer_name, row.address, line)
        )
        if name != row.customer_name:
            errors.append(
                _error(
                    line,
                    "customer_name",
                    f"account_no {row.account_no} has another customer_name on line {first}",
                )
            )
        if address != row.address:
            errors.append(
                _error(
                    line,
                    "address",
                    f"account_no {row.account_no} has another address on line {first}",
                )
            )
        if row.grid_code is not None:
            grid, first = route_grids.setdefault(row.route_code, (row.grid_code, line))
            if grid != row.grid_code:
                errors.append(
                    _error(
                        line,
                        "grid_code",
                        f"route_code {row.route_code} has grid_code {grid} on line {first}",
                    )
                )
        rows.append(row)
    return rows, errors


# --- writing ----------------------------------------------------------------------------------


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _lookup(
    session: Session, columns: Sequence[Any], key: Any, values: Iterable[str]
) -> dict[str, tuple[Any, ...]]:
    """Rows whose `key` is one of `values`, keyed by it: a few queries, not one per row."""
    found: dict[str, tuple[Any, ...]] = {}
    for chunk in _chunks(sorted(set(values)), LOOKUP_CHUNK):
        for row in session.exec(select(key, *columns).where(key.in_(chunk))):
            found[row[0]] = tuple(row[1:])
    return found


def _apply(
    session: Session,
    rows: list[_Row],
    *,
    actor_id: int | None,
    progress: Callable[[int, int], None] | None,
    digest: str,
) -> ImportReport:
    now = clock.now()
    total = len(rows)
    report = ImportReport(rows=total)
    if progress is not None:
        progress(0, total)

    grid_ids: dict[str, int] = {}
    for code in sorted({r.grid_code for r in rows if r.grid_code}):
        grid = get_or_create_grid(session, code=code, actor_id=actor_id)
        assert grid.id is not None
        grid_ids[code] = grid.id

    route_ids = _upsert_routes(session, rows, grid_ids, now=now, report=report)
    account_ids, renamed = _upsert_accounts(session, rows, now=now, report=report)

    existing = _lookup(
        session,
        [
            Meter.id,
            Meter.account_id,
            Meter.route_id,
            Meter.sequence,
            Meter.lat,
            Meter.lon,
            Meter.digits,
            Meter.multiplier,
            Meter.last_reading,
            Meter.last_read_at,
            Meter.expected_low,
            Meter.expected_high,
        ],
        Meter.meter_no,
        (r.meter_no for r in rows),
    )
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    moved: list[tuple[int, int]] = []  # (meter id, route it left)
    for row in rows:
        values = (
            account_ids[row.account_no],
            route_ids[row.route_code],
            row.sequence,
            row.lat,
            row.lon,
            row.digits,
            row.multiplier,
            row.last_reading,
            row.last_read_at,
            row.expected_low,
            row.expected_high,
        )
        old = existing.get(row.meter_no)
        if old is None:
            inserts.append({"meter_no": row.meter_no, **_meter_values(values)})
        elif old[1:] != values or values[0] in renamed:
            # The handheld shows the account's name and address with the meter, so a renamed
            # account changes its meters too.
            updates.append({"id": old[0], **_meter_values(values)})
            if old[2] != values[1]:
                moved.append((old[0], old[2]))
        else:
            report.unchanged += 1

    if inserts or updates:
        # One number for the whole import: a pull sees all of it or none of it.
        seq = next_change_seq(session)
        for batch in (inserts, updates):
            for entry in batch:
                entry.update(change_seq=seq, updated_at=now)
        done = report.unchanged
        for chunk in _chunks(inserts, BATCH_ROWS):
            session.exec(insert(Meter), params=list(chunk))
            done += len(chunk)
            if progress is not None:
                progress(done, total)
        for chunk in _chunks(updates, BATCH_ROWS):
            session.exec(update(Meter), params=list(chunk))
            done += len(chunk)
            if progress is not None:
                progress(done, total)
        _withdraw_moved(session, moved, seq=seq, now=now)
    report.meters_created = len(inserts)
    report.meters_updated = len(updates)
    report.meters_moved = len(moved)
    if progress is not None:
        progress(total, total)
    log_admin_action(
        session,
        actor_id=actor_id,
        action="meters.import",
        object_type="csv",
        object_id=digest,
        detail=report.as_dict(),
    )
    return report


def _meter_values(values: tuple[Any, ...]) -> dict[str, Any]:
    (
        account_id,
        route_id,
        sequence,
        lat,
        lon,
        digits,
        multiplier,
        last_reading,
        last_read_at,
        expected_low,
        expected_high,
    ) = values
    return {
        "account_id": account_id,
        "route_id": route_id,
        "sequence": sequence,
        "lat": lat,
        "lon": lon,
        "digits": digits,
        "multiplier": multiplier,
        "last_reading": last_reading,
        "last_read_at": last_read_at,
        "expected_low": expected_low,
        "expected_high": expected_high,
    }


def _upsert_routes(
    session: Session,
    rows: list[_Row],
    grid_ids: dict[str, int],
    *,
    now: datetime,
    report: ImportReport,
) -> dict[str, int]:
    """The id of every route the file names; new ones created, changed grids set."""
    wanted: dict[str, int | None] = {}
    for row in rows:
        if row.grid_code is not None or row.route_code not in wanted:
            wanted[row.route_code] = grid_ids[row.grid_code] if row.grid_code else None
    existing = _lookup(session, [Route.id, Route.grid_id], Route.code, wanted)
    ids = {code: found[0] for code, found in existing.items()}
    new = [
        {"code": code, "name": code, "grid_id": grid_id, "created_at": now}
        for code, grid_id in wanted.items()
        if code not in existing
    ]
    if new:
        created = session.exec(insert(Route).returning(col(Route.code), col(Route.id)), params=new)
        ids.update(dict(created.all()))
    regridded = [
        {"id": found[0], "grid_id": wanted[code]}
        for code, found in existing.items()
        if wanted[code] is not None and found[1] != wanted[code]
    ]
    if regridded:
        session.exec(update(Route), params=regridded)
    report.routes_created = len(new)
    report.routes_updated = len(regridded)
    return ids


def _upsert_accounts(
    session: Session, rows: list[_Row], *, now: datetime, report: ImportReport
) -> tuple[dict[str, int], set[int]]:
    """The id of every account the file names, and the ids of those renamed or readdressed."""
    wanted = {row.account_no: (row.customer_name, row.address) for row in rows}
    existing = _lookup(
        session, [Account.id, Account.customer_name, Account.address], Account.account_no, wanted
    )
    ids = {account_no: found[0] for account_no, found in existing.items()}
    new = [
        {
            "account_no": account_no,
            "customer_name": name,
            "address": address,
            "active": True,
            "created_at": now,
            "updated_at": now,
        }
        for account_no, (name, address) in wanted.items()
        if account_no not in existing
    ]
    if new:
        for chunk in _chunks(new, BATCH_ROWS):
            created = session.exec(
                insert(Account).returning(col(Account.account_no), col(Account.id)),
                params=list(chunk),
            )
            ids.update(dict(created.all()))
    changed = [
        {
            "id": found[0],
            "customer_name": wanted[account_no][0],
            "address": wanted[account_no][1],
            "updated_at": now,
        }
        for account_no, found in existing.items()
        if found[1:] != wanted[account_no]
    ]
    for chunk in _chunks(changed, BATCH_ROWS):
        session.exec(update(Account), params=list(chunk))
    report.accounts_created = len(new)
    report.accounts_updated = len(changed)
    return ids, {entry["id"] for entry in changed}


def _withdraw_moved(
    session: Session, moved: list[tuple[int, int]], *, seq: int, now: datetime
) -> None:
    """Tell the reader of each open assignment of a route a meter left that it is gone."""
    if not moved:
        return
    open_by_route: dict[int, list[tuple[int, int]]] = {}
    for chunk in _chunks(sorted({route_id for _, route_id in moved}), LOOKUP_CHUNK):
        stmt = select(Assignment).where(
            col(Assignment.route_id).in_(chunk), Assignment.status == "open"
        )
        for assignment in session.exec(stmt):
            assert assignment.id is not None
            open_by_route.setdefault(assignment.route_id, []).append(
                (assignment.id, assignment.reader_id)
            )
    withdrawals = [
        {
            "user_id": reader_id,
            "object_type": "meter",
            "object_id": str(meter_id),
            "assignment_id": assignment_id,
            "change_seq": seq,
            "created_at": now,
        }
        for meter_id, route_id in moved
        for assignment_id, reader_id in open_by_route.get(route_id, [])
    ]
    if withdrawals:
        session.exec(insert(Withdrawal), params=withdrawals)
