"""Loading accounts, routes and meters from a billing system's CSV export: every row or none.

Each row names one meter with its account and route. The file is the truth for every meter it
names: an optional column left empty (or absent) takes its default. Meters the file does not
name are left alone, so a file may carry a single route.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from common import clock
from server.catalog.accounts import get_or_create_grid
from server.catalog.meter_csv import (
    MeterRow,
    invalid_file,
    parse_meter_csv,
)
from server.core.changes import log_admin_action, next_change_seq
from server.core.errors import Conflict
from server.models import Account, Assignment, Meter, Route, Withdrawal

# Rows written between two progress reports; also the size of each bulk statement.
BATCH_ROWS = 1000
# Keys per IN (...) lookup: under SQLite's and PostgreSQL's bound-parameter limits.
LOOKUP_CHUNK = 500

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


def import_meters_csv(
    session: Session,
    text: str,
    *,
    actor_id: int | None,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Check every row of a meters CSV, then upsert all of them in one transaction, or none."""
    rows, errors = parse_meter_csv(text)
    if errors:
        session.rollback()
        raise invalid_file(errors)
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
    rows: list[MeterRow],
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
            Meter.position_uncertainty_m,
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
            row.position_uncertainty_m,
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
        position_uncertainty_m,
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
        "position_uncertainty_m": position_uncertainty_m,
    }


def _upsert_routes(
    session: Session,
    rows: list[MeterRow],
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
    session: Session, rows: list[MeterRow], *, now: datetime, report: ImportReport
) -> tuple[dict[str, int], set[int]]:
    """The id of every account the file names, and the ids of those renamed or readdressed.
    A phone the file gives replaces the one held; a file without one keeps it."""
    wanted = {row.account_no: (row.customer_name, row.address) for row in rows}
    phones = {row.account_no: row.phone for row in rows if row.phone is not None}
    existing = _lookup(
        session,
        [Account.id, Account.customer_name, Account.address, Account.phone],
        Account.account_no,
        wanted,
    )
    ids = {account_no: found[0] for account_no, found in existing.items()}
    new = [
        {
            "account_no": account_no,
            "customer_name": name,
            "address": address,
            "phone": phones.get(account_no),
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
            "phone": phones.get(account_no, found[3]),
            "updated_at": now,
        }
        for account_no, found in existing.items()
        if found[1:3] != wanted[account_no] or phones.get(account_no, found[3]) != found[3]
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
