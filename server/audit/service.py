"""The supervisor's audit: progress of each assignment, its readings and flags, reviews,
re-read orders, and exports (GPX, GeoJSON, CSV).

A supervisor sees only the assignments of routes in their grid; an admin sees all.
"""

from __future__ import annotations

import csv
import io
import itertools
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any, Literal

import gpxpy.gpx
from sqlmodel import Session, col, select

from common import clock
from common.geo import distance_m
from common.numbers import plain
from server.core.changes import log_admin_action
from server.core.errors import Conflict, Forbidden, Invalid, NotFound
from server.models import (
    Account,
    Assignment,
    Cycle,
    Flag,
    Meter,
    Reading,
    RereadOrder,
    Route,
    TrackPoint,
    User,
)

MeterState = Literal["read", "skipped", "missing", "flagged"]
SEVERITIES = ("info", "warn", "fail")


@dataclass(frozen=True)
class Auditor:
    """Who audits: a supervisor (limited to their grid) or an admin."""

    user: User

    def may_see(self, route: Route) -> bool:
        return self.user.role == "admin" or (
            self.user.role == "supervisor" and route.grid_id == self.user.grid_id
        )


def _assignment(session: Session, auditor: Auditor, assignment_id: int) -> tuple[Assignment, Route]:
    assignment = session.get(Assignment, assignment_id)
    if assignment is None:
        raise NotFound(f"no assignment {assignment_id}", code="assignment_not_found")
    route = session.get(Route, assignment.route_id)
    assert route is not None
    if not auditor.may_see(route):
        raise Forbidden(f"assignment {assignment_id} is not in your grid", code="not_your_grid")
    return assignment, route


def _track_span(assignment: Assignment, readings: list[Reading]) -> tuple[datetime, datetime]:
    """The time span of the reader's track that belongs to this assignment's work."""
    times = [r.read_at for r in readings]
    if times:
        return min(times) - timedelta(hours=1), max(times) + timedelta(hours=1)
    # Window dates are local; a day either side covers every time zone.
    start = datetime.combine(assignment.window_start, time.min, tzinfo=UTC)
    end = datetime.combine(assignment.window_end, time.max, tzinfo=UTC)
    return start - timedelta(days=1), end + timedelta(days=1)


def _readings(session: Session, assignment_id: int) -> list[Reading]:
    return list(
        session.exec(
            select(Reading)
            .where(Reading.assignment_id == assignment_id)
            .order_by(col(Reading.read_at), col(Reading.received_at))
        )
    )


def _track(session: Session, assignment: Assignment, readings: list[Reading]) -> list[TrackPoint]:
    start, end = _track_span(assignment, readings)
    return list(
        session.exec(
            select(TrackPoint)
            .where(
                TrackPoint.user_id == assignment.reader_id,
                col(TrackPoint.t) >= start,
                col(TrackPoint.t) <= end,
            )
            .order_by(col(TrackPoint.t))
        )
    )


def _flags(session: Session, assignment_id: int) -> list[Flag]:
    return list(
        session.exec(select(Flag).where(Flag.assignment_id == assignment_id).order_by(col(Flag.id)))
    )


def walked_m(track: list[TrackPoint]) -> float:
    """Distance along the track, in metres."""
    return sum(distance_m(a.lat, a.lon, b.lat, b.lon) for a, b in itertools.pairwise(track))


def _superseded_by(readings: list[Reading]) -> dict[uuid.UUID, uuid.UUID]:
    return {r.supersedes: r.id for r in readings if r.supersedes is not None}


def meter_states(
    meters: list[Meter], readings: list[Reading], flags: list[Flag]
) -> dict[int, MeterState]:
    """Each meter's state on the map: flagged (open warn/fail), read, skipped, or missing."""
    replaced = _superseded_by(readings)
    current = {r.meter_id: r for r in readings if r.id not in replaced}
    flagged = {
        f.meter_id
        for f in flags
        if f.severity in ("warn", "fail") and f.review is None and f.meter_id is not None
    }
    states: dict[int, MeterState] = {}
    for m in meters:
        assert m.id is not None
        reading = current.get(m.id)
        if m.id in flagged:
            states[m.id] = "flagged"
        elif reading is None:
            states[m.id] = "missing"
        else:
            states[m.id] = "read" if reading.value is not None else "skipped"
    return states


def flag_out(flag: Flag, reviewer: str | None = None) -> dict[str, Any]:
    return {
        "id": flag.id,
        "code": flag.code,
        "severity": flag.severity,
        "message": flag.message,
        "reading_id": str(flag.reading_id) if flag.reading_id else None,
        "meter_id": flag.meter_id,
        "review": flag.review,
        "review_note": flag.review_note,
        "reviewed_at": flag.reviewed_at.isoformat() if flag.reviewed_at else None,
        "reviewed_by": reviewer,
    }


def reading_out(
    reading: Reading,
    flags: list[Flag],
    superseded_by: uuid.UUID | None,
    meter: Meter,
    reviewers: dict[int, str],
) -> dict[str, Any]:
    return {
        "id": str(reading.id),
        "meter_id": reading.meter_id,
        "value": plain(reading.value),
        "skip_code": reading.skip_code,
        "note": reading.note,
        "read_at": reading.read_at.isoformat(),
        "confirmed_at": reading.confirmed_at.isoformat(),
        "received_at": reading.received_at.isoformat(),
        "fix": _fix_out(reading, meter),
        "reread_of": str(reading.reread_of) if reading.reread_of else None,
        "supersedes": str(reading.supersedes) if reading.supersedes else None,
        "superseded_by": str(superseded_by) if superseded_by else None,
        "disputed": any(f.review == "rejected" for f in flags),
        "flags": [flag_out(f, _reviewer(f, reviewers)) for f in flags],
    }


def list_assignments(
    session: Session, *, auditor: Auditor, status: str | None = None
) -> list[dict[str, Any]]:
    """Assignments the auditor may see, newest window first, each with its progress."""
    stmt = (
        select(Assignment, Route, Cycle, User)
        .join(Route, col(Route.id) == Assignment.route_id)
        .join(Cycle, col(Cycle.id) == Assignment.cycle_id)
        .join(User, col(User.id) == Assignment.reader_id)
        .order_by(col(Assignment.window_start).desc(), col(Route.code))
    )
    if auditor.user.role != "admin":
        stmt = stmt.where(Route.grid_id == auditor.user.grid_id)
    if status is not None:
        stmt = stmt.where(Assignment.status == status)
    return [
        _summary(session, assignment, route, cycle, reader)
        for assignment, route, cycle, reader in session.exec(stmt)
    ]


def _summary(
    session: Session, assignment: Assignment, route: Route, cycle: Cycle, reader: User
) -> dict[str, Any]:
    assert assignment.id is not None
    meters = list(session.exec(select(Meter).where(Meter.route_id == route.id)))
    readings = _readings(session, assignment.id)
    flags = _flags(session, assignment.id)
    track = _track(session, assignment, readings)
    states = Counter(meter_states(meters, readings, flags).values())
    open_flags = Counter(f.severity for f in flags if f.review is None)
    replaced = _superseded_by(readings)
    current = [r for r in readings if r.id not in replaced]
    return {
        "id": assignment.id,
        "route_code": route.code,
        "route_name": route.name,
        "cycle": cycle.code,
        "reader": reader.username,
        "window_start": assignment.window_start.isoformat(),
        "window_end": assignment.window_end.isoformat(),
        "status": assignment.status,
        "meters": len(meters),
        "read": sum(1 for r in current if r.value is not None),
        "skipped": sum(1 for r in current if r.skip_code is not None),
        "missing": len(meters) - len({r.meter_id for r in current}),
        "flagged": {s: open_flags.get(s, 0) for s in SEVERITIES},
        "meters_flagged": states.get("flagged", 0),
        "first_read_at": readings[0].read_at.isoformat() if readings else None,
        "last_read_at": readings[-1].read_at.isoformat() if readings else None,
        "distance_walked_m": round(walked_m(track)),
    }


def assignment_summary(session: Session, *, auditor: Auditor, assignment_id: int) -> dict[str, Any]:
    """One assignment's progress (the auditor must be allowed to see it)."""
    assignment, route = _assignment(session, auditor, assignment_id)
    cycle = session.get(Cycle, assignment.cycle_id)
    reader = session.get(User, assignment.reader_id)
    assert cycle is not None
    assert reader is not None
    return _summary(session, assignment, route, cycle, reader)


def assignment_detail(session: Session, *, auditor: Auditor, assignment_id: int) -> dict[str, Any]:
    """One assignment: summary, meters with their state, readings in order taken, track, flags."""
    assignment, route = _assignment(session, auditor, assignment_id)
    cycle = session.get(Cycle, assignment.cycle_id)
    reader = session.get(User, assignment.reader_id)
    assert cycle is not None
    assert reader is not None
    rows = session.exec(
        select(Meter, Account)
        .join(Account, col(Account.id) == Meter.account_id)
        .where(Meter.route_id == route.id)
        .order_by(col(Meter.sequence))
    ).all()
    meters = [m for m, _ in rows]
    readings = _readings(session, assignment_id)
    flags = _flags(session, assignment_id)
    states = meter_states(meters, readings, flags)
    track = _track(session, assignment, readings)
    return {
        "assignment": _summary(session, assignment, route, cycle, reader),
        "meters": [
            {
                "id": m.id,
                "meter_no": m.meter_no,
                "account_no": a.account_no,
                "customer_name": a.customer_name,
                "address": a.address,
                "lat": m.lat,
                "lon": m.lon,
                "sequence": m.sequence,
                "last_reading": plain(m.last_reading),
                "state": states[m.id],  # type: ignore[index]
            }
            for m, a in rows
        ],
        "readings": readings_out(session, readings, flags),
        "track": [
            {
                "t": p.t.isoformat(),
                "lat": p.lat,
                "lon": p.lon,
                "accuracy_m": p.accuracy_m,
                "mock": p.mock,
            }
            for p in track
        ],
        "flags": flags_out(session, flags),
        "reread_orders": [
            {
                "id": str(o.id),
                "meter_id": o.meter_id,
                "status": o.status,
                "reason": o.reason,
                "reading_id": str(o.reading_id) if o.reading_id else None,
            }
            for o in session.exec(
                select(RereadOrder).where(RereadOrder.assignment_id == assignment_id)
            )
        ],
    }


def _fix_out(reading: Reading, meter: Meter) -> dict[str, Any] | None:
    if reading.fix_lat is None or reading.fix_lon is None:
        return None
    return {
        "lat": reading.fix_lat,
        "lon": reading.fix_lon,
        "accuracy_m": reading.fix_accuracy_m,
        "fix_time": reading.fix_time.isoformat() if reading.fix_time else None,
        "provider": reading.fix_provider,
        "mock": reading.fix_mock,
        # The number behind presence, so a supervisor need not measure it on the map.
        "distance_to_meter_m": round(
            distance_m(reading.fix_lat, reading.fix_lon, meter.lat, meter.lon), 1
        ),
    }


def _reviewer(flag: Flag, reviewers: dict[int, str]) -> str | None:
    return reviewers.get(flag.reviewed_by) if flag.reviewed_by is not None else None


def _reviewers(session: Session, flags: list[Flag]) -> dict[int, str]:
    ids = {f.reviewed_by for f in flags if f.reviewed_by is not None}
    if not ids:
        return {}
    return {
        u.id: u.username
        for u in session.exec(select(User).where(col(User.id).in_(ids)))
        if u.id is not None
    }


def flags_out(session: Session, flags: list[Flag]) -> list[dict[str, Any]]:
    reviewers = _reviewers(session, flags)
    return [flag_out(f, _reviewer(f, reviewers)) for f in flags]


def readings_out(
    session: Session, readings: list[Reading], flags: list[Flag]
) -> list[dict[str, Any]]:
    by_reading: dict[uuid.UUID, list[Flag]] = {}
    for f in flags:
        if f.reading_id is not None:
            by_reading.setdefault(f.reading_id, []).append(f)
    replaced = _superseded_by(readings)
    meters = {
        m.id: m
        for m in session.exec(
            select(Meter).where(col(Meter.id).in_({r.meter_id for r in readings}))
        )
    }
    reviewers = _reviewers(session, flags)
    return [
        reading_out(r, by_reading.get(r.id, []), replaced.get(r.id), meters[r.meter_id], reviewers)
        for r in readings
    ]


def assignment_readings(
    session: Session, *, auditor: Auditor, assignment_id: int
) -> list[dict[str, Any]]:
    """Every reading held for the assignment, in the order taken, with its flags."""
    _assignment(session, auditor, assignment_id)
    return readings_out(session, _readings(session, assignment_id), _flags(session, assignment_id))


def assignment_flags(
    session: Session, *, auditor: Auditor, assignment_id: int
) -> list[dict[str, Any]]:
    """The assignment's flags."""
    _assignment(session, auditor, assignment_id)
    return flags_out(session, _flags(session, assignment_id))


def review_flag(
    session: Session, *, auditor: Auditor, flag_id: int, decision: str, note: str
) -> Flag:
    """Accept a flag (explained) or reject the reading behind it (it stays, marked disputed)."""
    flag = session.get(Flag, flag_id)
    if flag is None:
        raise NotFound(f"no flag {flag_id}", code="flag_not_found")
    _assignment(session, auditor, flag.assignment_id)
    if decision not in ("accepted", "rejected"):
        raise Invalid("decision must be 'accepted' or 'rejected'", code="invalid_decision")
    if not note.strip():
        raise Invalid("a review needs a note saying why", code="note_required")
    previous = flag.review
    flag.review = decision
    flag.review_note = note.strip()
    flag.reviewed_by = auditor.user.id
    flag.reviewed_at = clock.now()
    session.add(flag)
    log_admin_action(
        session,
        actor_id=auditor.user.id,
        action=f"flag.{decision}",
        object_type="flag",
        object_id=flag.id,
        detail={
            "code": flag.code,
            "note": flag.review_note,
            "previous": previous,
            "reading_id": str(flag.reading_id) if flag.reading_id else None,
        },
    )
    session.flush()
    return flag


def order_reread(
    session: Session, *, auditor: Auditor, assignment_id: int, meter_id: int, reason: str
) -> RereadOrder:
    """Order a meter read again; the order reaches the reader's device on its next pull."""
    assignment, route = _assignment(session, auditor, assignment_id)
    meter = session.get(Meter, meter_id)
    if meter is None or meter.route_id != route.id:
        raise Invalid(
            f"meter {meter_id} is not on this assignment's route", code="meter_not_on_route"
        )
    if not reason.strip():
        raise Invalid("a re-read order needs a reason", code="reason_required")
    if assignment.status != "open":
        raise Conflict(
            "the assignment is closed: re-reads go to an open assignment", code="assignment_closed"
        )
    if (
        session.exec(
            select(RereadOrder).where(
                RereadOrder.assignment_id == assignment_id,
                RereadOrder.meter_id == meter_id,
                RereadOrder.status == "open",
            )
        ).first()
        is not None
    ):
        raise Conflict(
            f"meter {meter.meter_no} already has an open re-read order",
            code="reread_already_ordered",
        )
    readings = [r for r in _readings(session, assignment_id) if r.meter_id == meter_id]
    replaced = _superseded_by(readings)
    current = next((r.id for r in readings if r.id not in replaced), None)
    assert auditor.user.id is not None
    order = RereadOrder(
        assignment_id=assignment_id,
        meter_id=meter_id,
        reading_id=current,
        reason=reason.strip(),
        ordered_by=auditor.user.id,
    )
    session.add(order)
    session.flush()
    log_admin_action(
        session,
        actor_id=auditor.user.id,
        action="reread.order",
        object_type="reread_order",
        object_id=order.id,
        detail={
            "assignment_id": assignment_id,
            "meter_id": meter_id,
            "reading_id": str(current) if current else None,
            "reason": reason,
        },
    )
    session.flush()
    return order


def track_gpx(session: Session, *, auditor: Auditor, assignment_id: int) -> str:
    """The reader's track, and the readings as waypoints, as GPX 1.1."""
    assignment, route = _assignment(session, auditor, assignment_id)
    readings = _readings(session, assignment_id)
    meters = {m.id: m for m in session.exec(select(Meter).where(Meter.route_id == route.id))}
    gpx = gpxpy.gpx.GPX()
    gpx.creator = "Gridwalk"
    gpx.name = f"{route.code} assignment {assignment_id}"
    track = gpxpy.gpx.GPXTrack(name=gpx.name)
    segment = gpxpy.gpx.GPXTrackSegment()
    track.segments.append(segment)
    gpx.tracks.append(track)
    for p in _track(session, assignment, readings):
        segment.points.append(
            gpxpy.gpx.GPXTrackPoint(p.lat, p.lon, time=p.t, horizontal_dilution=None)
        )
    for r in readings:
        meter = meters[r.meter_id]
        lat, lon = (r.fix_lat, r.fix_lon) if r.fix_lat is not None else (meter.lat, meter.lon)
        what = plain(r.value) if r.value is not None else f"skip: {r.skip_code}"
        gpx.waypoints.append(
            gpxpy.gpx.GPXWaypoint(lat, lon, time=r.read_at, name=meter.meter_no, description=what)
        )
    return gpx.to_xml(version="1.1")


def track_geojson(session: Session, *, auditor: Auditor, assignment_id: int) -> dict[str, Any]:
    """The track as a LineString and the meters as Points with their state, as GeoJSON."""
    detail = assignment_detail(session, auditor=auditor, assignment_id=assignment_id)
    features: list[dict[str, Any]] = [
        {
            "type": "Feature",
            "geometry": {
                "type": "LineString",
                "coordinates": [[p["lon"], p["lat"]] for p in detail["track"]],
            },
            "properties": {"kind": "track", "times": [p["t"] for p in detail["track"]]},
        }
    ]
    features += [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [m["lon"], m["lat"]]},
            "properties": {
                "kind": "meter",
                "meter_id": m["id"],
                "meter_no": m["meter_no"],
                "sequence": m["sequence"],
                "state": m["state"],
            },
        }
        for m in detail["meters"]
    ]
    return {"type": "FeatureCollection", "features": features}


CSV_COLUMNS = (
    "order",
    "reading_id",
    "meter_no",
    "account_no",
    "value",
    "skip_code",
    "read_at",
    "received_at",
    "superseded_by",
    "disputed",
    "flags",
)


def readings_csv(session: Session, *, auditor: Auditor, assignment_id: int) -> str:
    """The readings with their flags, one row per reading in the order taken."""
    _, route = _assignment(session, auditor, assignment_id)
    numbers = {
        m.id: (m.meter_no, a.account_no)
        for m, a in session.exec(
            select(Meter, Account)
            .join(Account, col(Account.id) == Meter.account_id)
            .where(Meter.route_id == route.id)
        )
    }
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for i, r in enumerate(
        assignment_readings(session, auditor=auditor, assignment_id=assignment_id), start=1
    ):
        meter_no, account_no = numbers[r["meter_id"]]
        writer.writerow(
            [
                i,
                r["id"],
                meter_no,
                account_no,
                r["value"] or "",
                r["skip_code"] or "",
                r["read_at"],
                r["received_at"],
                r["superseded_by"] or "",
                "yes" if r["disputed"] else "",
                "; ".join(f"{f['severity']}:{f['code']}" for f in r["flags"]),
            ]
        )
    return out.getvalue()
