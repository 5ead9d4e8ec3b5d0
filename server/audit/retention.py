"""How long track points are kept: whole UTC months older than a number of months go, except a
month that still holds evidence the audit may need.

A reading's track is what proves it: the walk to the meter, the time spent there, the order of
the route. Retention removes track points only, never a reading (each keeps the GPS fix it was
confirmed with), a flag or a review. A month is kept whole while it overlaps the track span
(server.audit.service.track_span, widened to the assignment's whole window) of an assignment
whose audit is not settled:
- open (not closed yet: validation still reads its track);
- waiting in the validation queue;
- with a flag not yet reviewed, or a flag rejected (the reading disputed: 申校, a re-read, a
  billing hold all lean on that track);
- with a re-read order still open.
Once its flags are reviewed (accepted) and it is closed, its track ages out with its month.

A month is removed whole or kept whole, on both databases: on PostgreSQL its partition is
detached and dropped (server/core/partitions.py), on SQLite its rows are deleted in batches,
each batch its own transaction so the one writer's lock is never held long.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Table,
    and_,
    delete,
    func,
    or_,
    select,
    union,
)

from server.audit.service import track_span
from server.core import partitions
from server.core.partitions import Month, add_months, midnight, month_start
from server.models import Assignment, Flag, Reading, RereadOrder, TrackPoint, ValidationWork

# Rows deleted per transaction on SQLite.
BATCH = 5_000

_points = TrackPoint.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Evidence:
    """An unsettled assignment's track span: the months it overlaps are kept."""

    assignment_id: int
    start: datetime
    end: datetime


@dataclass
class MonthOutcome:
    month: Month
    points: int
    # The unsettled assignments whose evidence keeps the month (empty: it goes).
    kept_for: list[int] = field(default_factory=list)


@dataclass
class Retention:
    cutoff: date
    dry_run: bool
    months: list[MonthOutcome]

    @property
    def removed(self) -> list[MonthOutcome]:
        return [m for m in self.months if not m.kept_for]

    @property
    def kept(self) -> list[MonthOutcome]:
        return [m for m in self.months if m.kept_for]


def cutoff_of(now: datetime, keep_months: int) -> date:
    """The first day kept: `keep_months` whole months before the current one, so that
    `--keep-months 12` on 2026-12-04 keeps 2025-12-01 onwards."""
    return add_months(month_start(now), -keep_months)


def unsettled_evidence(conn: Connection) -> list[Evidence]:
    """The track spans of every assignment whose audit is not settled (see the module)."""
    a, w, f, o, r = (_table(m) for m in (Assignment, ValidationWork, Flag, RereadOrder, Reading))
    unsettled = union(
        select(a.c.id).where(a.c.status == "open"),
        select(w.c.assignment_id),
        select(f.c.assignment_id).where(or_(f.c.review.is_(None), f.c.review == "rejected")),
        select(o.c.assignment_id).where(o.c.status == "open"),
    ).subquery()
    rows = conn.execute(
        select(
            a.c.id, a.c.window_start, a.c.window_end, func.min(r.c.read_at), func.max(r.c.read_at)
        )
        .join(unsettled, unsettled.c[0] == a.c.id)
        .outerjoin(r, r.c.assignment_id == a.c.id)
        .group_by(a.c.id, a.c.window_start, a.c.window_end)
    ).all()
    found = []
    for assignment_id, window_start, window_end, first, last in rows:
        window = track_span(window_start, window_end, None, None)
        read = track_span(window_start, window_end, first, last)
        found.append(Evidence(assignment_id, min(window[0], read[0]), max(window[1], read[1])))
    return found


def _table(model: type) -> Table:
    table = model.__table__  # type: ignore[attr-defined]
    assert isinstance(table, Table)
    return table


def _months_before(conn: Connection, cutoff: date) -> Iterator[Month]:
    """Every month before `cutoff`, from the oldest point's."""
    oldest = conn.execute(select(func.min(_points.c.t))).scalar()
    if oldest is None:
        return
    first = month_start(oldest)
    while first < cutoff:
        yield Month(first)
        first = add_months(first, 1)


def _in(month: Month) -> ColumnElement[bool]:
    return and_(_points.c.t >= month.start, _points.c.t < month.end)


def plan(conn: Connection, cutoff: date) -> list[MonthOutcome]:
    """The months before `cutoff` that hold points, each with what keeps it (if anything)."""
    evidence = unsettled_evidence(conn)
    # An empty month's partition (made ahead, never filled) goes too.
    made = set(partitions.months(conn)) if partitions.is_partitioned(conn) else set()
    outcomes = []
    for month in sorted(
        set(_months_before(conn, cutoff)) | {m for m in made if m.end <= midnight(cutoff)},
        key=lambda m: m.first,
    ):
        points = conn.execute(select(func.count()).where(_in(month))).scalar_one()
        if not points and month not in made:
            continue
        kept_for = sorted(
            e.assignment_id for e in evidence if e.start < month.end and e.end >= month.start
        )
        outcomes.append(MonthOutcome(month, points, kept_for))
    return outcomes


def apply(engine: Engine, *, now: datetime, keep_months: int, dry_run: bool) -> Retention:
    """Remove the months older than `keep_months` that hold no unsettled evidence (or, with
    `dry_run`, only say which would go and which are kept, and why)."""
    cutoff = cutoff_of(now, keep_months)
    with engine.begin() as conn:
        if partitions.is_partitioned(conn):
            partitions.lock(conn)
        outcomes = plan(conn, cutoff)
    if not dry_run:
        for outcome in outcomes:
            if not outcome.kept_for:
                _remove(engine, outcome.month)
    return Retention(cutoff, dry_run, outcomes)


def _remove(engine: Engine, month: Month) -> None:
    with engine.begin() as conn:
        if partitions.is_partitioned(conn):
            partitions.lock(conn)
            # Evidence may have come since the plan (a flag rejected meanwhile): looked at
            # again under the lock, the month is left alone if so.
            if any(e.start < month.end and e.end >= month.start for e in unsettled_evidence(conn)):
                return
            if month in partitions.months(conn):
                partitions.drop_month(conn, month)
            # Points of the month the DEFAULT partition caught (no partition had been made).
            conn.execute(delete(_points).where(_in(month)))
            return
    while True:
        with engine.begin() as conn:
            if any(e.start < month.end and e.end >= month.start for e in unsettled_evidence(conn)):
                return
            batch = select(_points.c.id).where(_in(month)).limit(BATCH).scalar_subquery()
            if not conn.execute(delete(_points).where(_points.c.id.in_(batch))).rowcount:
                return
