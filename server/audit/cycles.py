"""The whole cycle at a glance: progress per route and per reader, and flags per reader over the
last cycles (who fails often), for a supervisor's grid or, for an admin, the whole utility.

A utility's cycle is about 1,000 routes and 300,000 meters, so every figure is aggregated by the
database: a handful of GROUP BY queries over the cycle's rows, then sorting, filtering and paging
in SQL. Python only shapes what it is handed: a page of routes (days left are counted there) and
a row per reader (whose routes per status it adds up).

What the figures mean, as on the audit page (service.py): a meter is done when its current
reading (one no re-read superseded) is a reading or a skip; unread = meters - done. A route is
`complete` when nothing is unread, `missed` when its window has closed (or it was closed) with
meters unread, `not_started` when nothing is done yet, else `in_progress`. Open flags are the
unreviewed ones; over cycles a flag counts against its reader unless it was dismissed (the
reading stood), and an upheld one also counts as upheld.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from sqlalchemy import ColumnElement, Select, Table, and_, case, func, or_, select, true
from sqlalchemy.sql.selectable import Subquery
from sqlmodel import Session

from common import clock
from server.audit.service import Auditor
from server.core.errors import Forbidden, NotFound
from server.models import Assignment, Cycle, Flag, Grid, Meter, Reading, Route, User


def _table(model: Any) -> Table:
    table: Table = model.__table__
    return table


A = _table(Assignment)
C = _table(Cycle)
F = _table(Flag)
G = _table(Grid)
M = _table(Meter)
R = _table(Reading)
RT = _table(Route)
U = _table(User)

RouteStatus = Literal["not_started", "in_progress", "complete", "missed"]
ROUTE_STATUSES: tuple[RouteStatus, ...] = ("not_started", "in_progress", "complete", "missed")
RouteSort = Literal[
    "route", "grid", "reader", "meters", "read", "skipped", "unread", "fail", "warn",
    "days_left", "status",
]  # fmt: skip
ReaderSort = Literal["reader", "routes", "meters", "read", "skipped", "unread", "fail", "warn"]
Order = Literal["asc", "desc"]


@dataclass(frozen=True)
class CycleFilter:
    """What the tables show: a grid (by code), readers whose user name or full name holds
    `reader` (any case), routes of one status; the routes' sort and page; the readers' sort."""

    grid: str | None = None
    reader: str | None = None
    status: RouteStatus | None = None
    sort: RouteSort = "route"
    order: Order = "asc"
    limit: int = 100
    offset: int = 0
    readers_sort: ReaderSort = "reader"
    readers_order: Order = "asc"


def today(auditor: Auditor) -> date:
    """Today where the windows' dates are meant (a window's last day is a local date)."""
    return clock.now().astimezone(auditor.window_tz).date()


def _visible(auditor: Auditor) -> ColumnElement[bool]:
    """The routes the auditor may see: an admin all, a supervisor their grid's."""
    if auditor.user.role == "admin":
        return true()
    return RT.c.grid_id == auditor.user.grid_id


def _grid_id(session: Session, auditor: Auditor, code: str) -> int:
    grid = session.execute(select(G.c.id).where(G.c.code == code)).first()
    if grid is None:
        raise NotFound(f"no grid {code!r}", code="grid_not_found")
    if auditor.user.role != "admin" and grid.id != auditor.user.grid_id:
        raise Forbidden(f"grid {code!r} is not your grid", code="not_your_grid")
    grid_id: int = grid.id
    return grid_id


def _scope(session: Session, auditor: Auditor, grid: str | None) -> list[ColumnElement[bool]]:
    where = [_visible(auditor)]
    if grid is not None:
        where.append(RT.c.grid_id == _grid_id(session, auditor, grid))
    return where


def list_cycles(session: Session, *, auditor: Auditor) -> list[dict[str, Any]]:
    """The cycles with an assignment the auditor may see, newest window first, with their
    window (first day to last day of their routes' windows) and how many routes are open."""
    stmt = (
        select(
            C.c.code,
            func.min(A.c.window_start).label("window_start"),
            func.max(A.c.window_end).label("window_end"),
            func.count().label("routes"),
            func.sum(case((A.c.status == "open", 1), else_=0)).label("open"),
        )
        .select_from(A.join(C, C.c.id == A.c.cycle_id).join(RT, RT.c.id == A.c.route_id))
        .where(_visible(auditor))
        .group_by(C.c.code)
        .order_by(func.min(A.c.window_start).desc(), C.c.code.desc())
    )
    return [
        {
            "cycle": row.code,
            "window_start": row.window_start.isoformat(),
            "window_end": row.window_end.isoformat(),
            "routes": row.routes,
            "open": row.open,
        }
        for row in session.execute(stmt)
    ]


def _cycle_id(session: Session, code: str) -> int:
    found = session.execute(select(C.c.id).where(C.c.code == code)).first()
    if found is None:
        raise NotFound(f"no cycle {code!r}", code="cycle_not_found")
    cycle_id: int = found.id
    return cycle_id


def route_rows(where: list[ColumnElement[bool]], day: date) -> Subquery:
    """One row per assignment in scope (`where`: a cycle, the auditor's grid, a reader...), with
    its figures and status: the meters per route, the current readings per assignment and the
    open flags per assignment are each one GROUP BY restricted to the assignments in scope,
    joined to the assignments. The supervisor's list of assignments (assignment_list.py) pages
    the same rows."""
    # Each GROUP BY reads only the rows of the assignments in scope (a grid's, a reader's).
    scoped = A.join(RT, RT.c.id == A.c.route_id).join(U, U.c.id == A.c.reader_id)
    in_scope = where
    in_cycle = select(A.c.id).select_from(scoped).where(*in_scope)
    routes_in_cycle = select(A.c.route_id).select_from(scoped).where(*in_scope)
    meters = (
        select(M.c.route_id, func.count().label("meters"))
        .where(M.c.route_id.in_(routes_in_cycle))
        .group_by(M.c.route_id)
        .subquery("meters_per_route")
    )
    # The current readings are all the readings less the few a re-read superseded: two
    # GROUP BYs, rather than asking of each of 300,000 readings whether a later one replaced it.
    held = (
        select(
            R.c.assignment_id,
            func.count(R.c.value).label("read"),
            func.count(R.c.skip_code).label("skipped"),
            func.count().label("done"),
            func.min(R.c.read_at).label("first_read_at"),
            func.max(R.c.read_at).label("last_read_at"),
        )
        .where(R.c.assignment_id.in_(in_cycle))
        .group_by(R.c.assignment_id)
        .subquery("readings_per_assignment")
    )
    superseded = select(R.c.supersedes).where(R.c.supersedes.is_not(None))
    replaced = (
        select(
            R.c.assignment_id,
            func.count(R.c.value).label("read"),
            func.count(R.c.skip_code).label("skipped"),
            func.count().label("done"),
        )
        # Found from the re-reads (by the index on supersedes), which are few.
        .where(R.c.id.in_(superseded), R.c.assignment_id.in_(in_cycle))
        .group_by(R.c.assignment_id)
        .subquery("superseded_per_assignment")
    )

    def current(figure: str) -> ColumnElement[int]:
        # One current reading per meter: a re-read supersedes the one before.
        return func.coalesce(held.c[figure], 0) - func.coalesce(replaced.c[figure], 0)

    flags = (
        select(
            F.c.assignment_id,
            func.sum(case((F.c.severity == "fail", 1), else_=0)).label("fail"),
            func.sum(case((F.c.severity == "warn", 1), else_=0)).label("warn"),
            func.sum(case((F.c.severity == "info", 1), else_=0)).label("info"),
            # Meters shown as flagged on the map (service.meter_states).
            func.count(
                func.distinct(case((F.c.severity.in_(("warn", "fail")), F.c.meter_id)))
            ).label("meters_flagged"),
        )
        .where(F.c.assignment_id.in_(in_cycle), F.c.review.is_(None))
        .group_by(F.c.assignment_id)
        .subquery("open_flags_per_assignment")
    )
    n_meters = func.coalesce(meters.c.meters, 0)
    n_done = current("done")
    unread = n_meters - n_done
    closed = or_(A.c.status == "closed", A.c.window_end < day)
    status = case(
        (unread <= 0, "complete"),
        (closed, "missed"),
        (n_done == 0, "not_started"),
        else_="in_progress",
    )
    return (
        select(
            A.c.id.label("assignment_id"),
            A.c.cycle_id,
            A.c.route_id,
            A.c.status.label("assignment_status"),
            RT.c.code.label("route_code"),
            RT.c.name.label("route_name"),
            G.c.code.label("grid"),
            U.c.id.label("reader_id"),
            U.c.username.label("reader"),
            U.c.full_name.label("reader_name"),
            A.c.window_start,
            A.c.window_end,
            closed.label("window_closed"),
            n_meters.label("meters"),
            current("read").label("read"),
            current("skipped").label("skipped"),
            unread.label("unread"),
            func.coalesce(flags.c.fail, 0).label("fail"),
            func.coalesce(flags.c.warn, 0).label("warn"),
            func.coalesce(flags.c.info, 0).label("info"),
            func.coalesce(flags.c.meters_flagged, 0).label("meters_flagged"),
            held.c.first_read_at,
            held.c.last_read_at,
            status.label("status"),
        )
        .select_from(
            A.join(RT, RT.c.id == A.c.route_id)
            .join(U, U.c.id == A.c.reader_id)
            .outerjoin(G, G.c.id == RT.c.grid_id)
            .outerjoin(meters, meters.c.route_id == A.c.route_id)
            .outerjoin(held, held.c.assignment_id == A.c.id)
            .outerjoin(replaced, replaced.c.assignment_id == A.c.id)
            .outerjoin(flags, flags.c.assignment_id == A.c.id)
        )
        .where(*where)
        .subquery("route_rows")
    )


def _reader_match(text: str) -> ColumnElement[bool]:
    needle = text.lower()
    return or_(
        func.lower(U.c.username).contains(needle, autoescape=True),
        func.lower(U.c.full_name).contains(needle, autoescape=True),
    )


def _ordered(stmt: Select[Any], keys: list[Any], order: Order) -> Select[Any]:
    return stmt.order_by(*(k.desc() if order == "desc" else k.asc() for k in keys))


FIGURES = ("meters", "read", "skipped", "unread", "fail", "warn")


def cycle_overview(
    session: Session, *, auditor: Auditor, cycle: str, view: CycleFilter
) -> dict[str, Any]:
    """A cycle's routes (a sorted, filtered page) and readers, the totals of what the filters
    select, and how many routes are in each status (for the status filter)."""
    cycle_id = _cycle_id(session, cycle)
    day = today(auditor)
    where = _scope(session, auditor, view.grid)
    if view.reader:
        where.append(_reader_match(view.reader))
    rows = route_rows([A.c.cycle_id == cycle_id, *where], day)
    chosen = [rows.c.status == view.status] if view.status else []

    # The page, with the total and the totals of every row the filters select (window
    # functions run before LIMIT): one query.
    route_keys: dict[str, list[Any]] = {
        "route": [rows.c.route_code],
        "grid": [rows.c.grid, rows.c.route_code],
        "reader": [rows.c.reader, rows.c.route_code],
        # Closed windows have no day left: they come first, then the soonest to close.
        "days_left": [
            case((rows.c.window_closed, 0), else_=1),
            rows.c.window_end,
            rows.c.route_code,
        ],
        "status": [
            case({s: i for i, s in enumerate(ROUTE_STATUSES)}, value=rows.c.status),
            rows.c.route_code,
        ],
    }
    keys = route_keys.get(view.sort) or [rows.c[view.sort], rows.c.route_code]
    page = _ordered(
        select(
            rows,
            func.count().over().label("total"),
            *(func.sum(rows.c[f]).over().label(f"total_{f}") for f in FIGURES),
        ).where(*chosen),
        keys,
        view.order,
    )
    page_rows = list(session.execute(page.limit(view.limit).offset(view.offset)))
    if page_rows:
        first = page_rows[0]
        total = first.total
        totals = {f: int(getattr(first, f"total_{f}")) for f in FIGURES}
    else:
        # A page past the end still says how many there are.
        counted = session.execute(
            select(func.count(), *(func.coalesce(func.sum(rows.c[f]), 0) for f in FIGURES))
            .select_from(rows)
            .where(*chosen)
        ).one()
        total = counted[0]
        totals = {f: int(v) for f, v in zip(FIGURES, counted[1:], strict=True)}

    # The readers, in the same query the routes per status (before the status filter) and
    # the window in scope: a reader's figures count only the routes the status filter keeps,
    # and a reader with none of those is not shown.
    kept = rows.c.status == view.status if view.status else true()

    def of_kept(value: Any) -> Any:
        return func.sum(case((kept, value), else_=0))

    routes_kept = of_kept(1)
    if view.readers_sort == "reader":
        reader_keys: list[Any] = [rows.c.reader]
    elif view.readers_sort == "routes":
        reader_keys = [routes_kept]
    else:
        reader_keys = [of_kept(rows.c[view.readers_sort])]
    readers_stmt = _ordered(
        select(
            rows.c.reader,
            rows.c.reader_name,
            routes_kept.label("routes"),
            *(of_kept(rows.c[f]).label(f) for f in FIGURES),
            *(func.sum(case((rows.c.status == s, 1), else_=0)).label(s) for s in ROUTE_STATUSES),
            func.min(rows.c.window_start).label("window_start"),
            func.max(rows.c.window_end).label("window_end"),
        ).group_by(rows.c.reader_id, rows.c.reader, rows.c.reader_name),
        reader_keys,
        view.readers_order,
    ).order_by(rows.c.reader)
    reader_rows = session.execute(readers_stmt).all()
    by_status = {s: sum(int(getattr(r, s)) for r in reader_rows) for s in ROUTE_STATUSES}
    starts = [r.window_start for r in reader_rows]
    ends = [r.window_end for r in reader_rows]

    return {
        "cycle": cycle,
        "today": day.isoformat(),
        "window_start": min(starts).isoformat() if starts else None,
        "window_end": max(ends).isoformat() if ends else None,
        "grids": _grids_in_cycle(session, auditor, cycle_id),
        "total": total,
        "totals": totals,
        "by_status": by_status,
        "routes": [_route_out(r, day) for r in page_rows],
        "readers": [
            {
                "reader": r.reader,
                "reader_name": r.reader_name,
                "routes": r.routes,
                **{f: int(getattr(r, f)) for f in FIGURES},
            }
            for r in reader_rows
            if r.routes
        ],
    }


def _grids_in_cycle(session: Session, auditor: Auditor, cycle_id: int) -> list[str]:
    """The grids the auditor may pick in this cycle (an admin's grid filter)."""
    stmt = (
        select(G.c.code)
        .select_from(A.join(RT, RT.c.id == A.c.route_id).join(G, G.c.id == RT.c.grid_id))
        .where(A.c.cycle_id == cycle_id, _visible(auditor))
        .group_by(G.c.code)
        .order_by(G.c.code)
    )
    return list(session.execute(stmt).scalars())


def days_left(window_end: date, closed: bool, day: date) -> int:
    """Days of the window still to work, today included (0 once it has closed)."""
    return 0 if closed else max(0, (window_end - day).days + 1)


def _route_out(row: Any, day: date) -> dict[str, Any]:
    closed = bool(row.window_closed)
    return {
        "assignment_id": row.assignment_id,
        "route_code": row.route_code,
        "route_name": row.route_name,
        "grid": row.grid,
        "reader": row.reader,
        "reader_name": row.reader_name,
        "window_start": row.window_start.isoformat(),
        "window_end": row.window_end.isoformat(),
        "window_closed": closed,
        "days_left": days_left(row.window_end, closed, day),
        "status": row.status,
        **{f: int(getattr(row, f)) for f in FIGURES},
    }


def reader_flags(
    session: Session, *, auditor: Auditor, cycles: int, grid: str | None = None
) -> dict[str, Any]:
    """Flags per reader over the last `cycles` cycles the auditor sees (who fails often):
    per reader and per cycle, readings taken and the flags not dismissed, worst first."""
    where = _scope(session, auditor, grid)
    last = list(
        session.execute(
            select(C.c.id, C.c.code)
            .select_from(A.join(C, C.c.id == A.c.cycle_id).join(RT, RT.c.id == A.c.route_id))
            .where(*where)
            .group_by(C.c.id, C.c.code)
            .order_by(func.min(A.c.window_start).desc(), C.c.code.desc())
            .limit(cycles)
        )
    )
    codes = {row.id: row.code for row in reversed(last)}  # oldest first
    ids = list(codes)
    scope = and_(A.c.cycle_id.in_(ids), *where)
    joined = A.join(RT, RT.c.id == A.c.route_id)
    routes = session.execute(
        select(A.c.reader_id, A.c.cycle_id, func.count().label("routes"))
        .select_from(joined)
        .where(scope)
        .group_by(A.c.reader_id, A.c.cycle_id)
    ).all()
    readings = session.execute(
        select(A.c.reader_id, A.c.cycle_id, func.count().label("readings"))
        .select_from(R.join(joined, A.c.id == R.c.assignment_id))
        .where(scope)
        .group_by(A.c.reader_id, A.c.cycle_id)
    ).all()
    flags = session.execute(
        select(
            A.c.reader_id,
            A.c.cycle_id,
            func.sum(case((F.c.severity == "fail", 1), else_=0)).label("fail"),
            func.sum(case((F.c.severity == "warn", 1), else_=0)).label("warn"),
            func.sum(case((F.c.review == "rejected", 1), else_=0)).label("upheld"),
        )
        .select_from(F.join(joined, A.c.id == F.c.assignment_id))
        .where(scope, or_(F.c.review.is_(None), F.c.review != "accepted"))
        .group_by(A.c.reader_id, A.c.cycle_id)
    ).all()
    names = {
        row.id: (row.username, row.full_name)
        for row in session.execute(
            select(U.c.id, U.c.username, U.c.full_name).where(
                U.c.id.in_({r.reader_id for r in routes})
            )
        )
    }
    zero = {"routes": 0, "readings": 0, "fail": 0, "warn": 0, "upheld": 0}
    cells: dict[int, dict[int, dict[str, int]]] = {}
    for rows_of, fields in (
        (routes, ("routes",)),
        (readings, ("readings",)),
        (flags, ("fail", "warn", "upheld")),
    ):
        for row in rows_of:
            cell = cells.setdefault(row.reader_id, {}).setdefault(row.cycle_id, dict(zero))
            for name in fields:
                cell[name] = int(getattr(row, name))
    out = []
    for reader_id, per_cycle in cells.items():
        total = {k: sum(c[k] for c in per_cycle.values()) for k in zero}
        username, full_name = names[reader_id]
        out.append(
            {
                "reader": username,
                "reader_name": full_name,
                **total,
                # Per 100 readings: a reader of many routes is not "worse" for reading more.
                "fail_per_100": round(100 * total["fail"] / total["readings"], 1)
                if total["readings"]
                else None,
                "cycles": [{"cycle": codes[cid], **per_cycle.get(cid, zero)} for cid in codes],
            }
        )
    out.sort(key=lambda r: (-r["fail"], -r["warn"], r["reader"]))
    return {"cycles": list(codes.values()), "readers": out}
