"""The supervisor's list of assignments, a page at a time: the figures of every assignment are
aggregated by the database (the whole-cycle queries, cycles.route_rows), only the verdict and
the distance walked are computed in Python, from the track, for the page's items only.

The verdict cleans and walks the whole track of the day (about 6,000 points; half a second of
pure rules a route), so it is also cached in the process: each page item's inputs are
fingerprinted in SQL (its readings and its route's meters: a GROUP BY each for the page; the
reader's track points over the span the verdict reads: an index scan each; the thresholds), and
a verdict is recomputed only when its fingerprint has changed. A new reading, a late track
point, a moved meter change the fingerprint; a worker that restarts, or another worker process,
computes its own on first sight.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select, true
from sqlmodel import Session, col
from sqlmodel import select as model_select

from server.audit.cycles import RT, A, C, M, R, route_rows, today
from server.audit.service import (
    SEVERITIES,
    Auditor,
    readings_of,
    track_of,
    track_span,
    verdict_out,
    verdict_said,
    walked_m,
)
from server.models import Assignment, Meter, TrackPoint
from server.validation import queue as validation_queue

# Verdicts kept per database (engine) in this process: a utility's open assignments and more.
CACHE_SIZE = 20_000


@dataclass(frozen=True)
class _Cached:
    fingerprint: tuple[Any, ...]
    code: str
    params: dict[str, Any]
    walked_m: int


_caches: weakref.WeakKeyDictionary[Engine, OrderedDict[int, _Cached]] = weakref.WeakKeyDictionary()


def _cache(session: Session) -> OrderedDict[int, _Cached]:
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    return _caches.setdefault(engine, OrderedDict())


def list_assignments(
    session: Session,
    *,
    auditor: Auditor,
    status: str | None = None,
    limit: int = 200,
    offset: int = 0,
) -> tuple[int, list[dict[str, Any]]]:
    """Assignments the auditor may see, newest window first, each with its progress: how many
    there are in all, and the page asked for."""
    visible = true() if auditor.user.role == "admin" else RT.c.grid_id == auditor.user.grid_id
    where = [visible] if status is None else [visible, A.c.status == status]
    rows = route_rows(where, today(auditor))
    page = list(
        session.execute(
            select(rows, C.c.code.label("cycle"), func.count().over().label("total"))
            .join(C, C.c.id == rows.c.cycle_id)
            .order_by(rows.c.window_start.desc(), rows.c.route_code, rows.c.assignment_id)
            .limit(limit)
            .offset(offset)
        )
    )
    if page:
        total = page[0].total
    else:
        # A page past the end still says how many there are.
        total = session.execute(select(func.count()).select_from(rows)).scalar_one()
    verdicts = _verdicts(session, auditor, page)
    # One query for the page: which of its assignments still have validation queued.
    pending = validation_queue.pending(session, [row.assignment_id for row in page])
    return total, [
        _item(row, verdicts[row.assignment_id], pending.get(row.assignment_id), auditor)
        for row in page
    ]


def _item(
    row: Any, verdict: _Cached, pending_since: datetime | None, auditor: Auditor
) -> dict[str, Any]:
    flagged = {"fail": row.fail, "warn": row.warn, "info": row.info}
    return {
        "id": row.assignment_id,
        "route_code": row.route_code,
        "route_name": row.route_name,
        "cycle": row.cycle,
        "reader": row.reader,
        "window_start": row.window_start.isoformat(),
        "window_end": row.window_end.isoformat(),
        "status": row.assignment_status,
        "meters": int(row.meters),
        "read": int(row.read),
        "skipped": int(row.skipped),
        "missing": int(row.unread),
        "window_closed": bool(row.window_closed),
        "flagged": {s: int(flagged[s]) for s in SEVERITIES},
        "meters_flagged": int(row.meters_flagged),
        "first_read_at": _iso(row.first_read_at),
        "last_read_at": _iso(row.last_read_at),
        "distance_walked_m": verdict.walked_m,
        "verdict": verdict_said(verdict.code, verdict.params, auditor.language),
        "validation_pending": pending_since is not None,
        "validation_pending_since": _iso(pending_since),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _verdicts(session: Session, auditor: Auditor, page: list[Any]) -> dict[int, _Cached]:
    cache = _cache(session)
    readings = _per(session, R.c.assignment_id, [r.assignment_id for r in page],
                    func.count(), func.max(R.c.received_at))  # fmt: skip
    meters = _per(session, M.c.route_id, [r.route_id for r in page],
                  func.count(), func.max(M.c.change_seq), func.max(M.c.updated_at),
                  func.sum(M.c.lat), func.sum(M.c.lon))  # fmt: skip
    out: dict[int, _Cached] = {}
    for row in page:
        fingerprint = (
            readings.get(row.assignment_id),
            meters.get(row.route_id),
            _track_fingerprint(session, row),
            auditor.thresholds,
        )
        cached = cache.get(row.assignment_id)
        if cached is None or cached.fingerprint != fingerprint:
            cached = _compute(session, auditor, row.assignment_id, fingerprint)
            cache[row.assignment_id] = cached
            if len(cache) > CACHE_SIZE:
                cache.popitem(last=False)
        cache.move_to_end(row.assignment_id)
        out[row.assignment_id] = cached
    return out


def _per(session: Session, key: Any, keys: list[int], *figures: Any) -> dict[int, tuple[Any, ...]]:
    """What the verdict reads of readings or meters, summed up by the database per key of the
    page, in one GROUP BY: a change to any of it changes the sums (readings are never updated)."""
    rows = session.execute(select(key, *figures).where(key.in_(set(keys))).group_by(key))
    return {row[0]: tuple(row[1:]) for row in rows}


def _track_fingerprint(session: Session, row: Any) -> tuple[Any, ...]:
    """The reader's track points over the span the verdict reads (service.track_span): points
    only come, so their count and last id say whether any did."""
    start, end = track_span(row.window_start, row.window_end, row.first_read_at, row.last_read_at)
    found = session.execute(
        select(func.count(), func.max(col(TrackPoint.id))).where(
            col(TrackPoint.user_id) == row.reader_id,
            col(TrackPoint.t) >= start,
            col(TrackPoint.t) <= end,
        )
    ).one()
    return tuple(found)


def _compute(
    session: Session, auditor: Auditor, assignment_id: int, fingerprint: tuple[Any, ...]
) -> _Cached:
    assignment = session.get(Assignment, assignment_id)
    assert assignment is not None
    meters = list(session.exec(model_select(Meter).where(Meter.route_id == assignment.route_id)))
    readings = readings_of(session, assignment_id)
    track = track_of(session, assignment, readings)
    verdict = verdict_out(meters, readings, track, auditor)
    return _Cached(
        fingerprint=fingerprint,
        code=verdict["code"],
        params=verdict["params"],
        walked_m=round(walked_m(track, auditor.thresholds)),
    )
