"""The supervisor's audit: progress of each assignment, its meters, readings, track and flags
(reviews and re-read orders are in reviews.py, exports in exports.py).

A supervisor sees only the assignments of routes in their grid; an admin sees all.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, tzinfo
from typing import Any, Literal

from sqlmodel import Session, col, select

from common import clock
from common.geo import distance_m
from common.i18n import translations
from common.numbers import plain
from common.rules.facts import DEFAULT_THRESHOLDS, LearnedPosition, Thresholds, TrackFix
from common.rules.sentences import flag_sentence
from common.rules.verdict import EXACT_FIX_M
from server.core.errors import Forbidden, NotFound
from server.models import (
    Account,
    Assignment,
    AssignmentVerdict,
    Cycle,
    Flag,
    Meter,
    Reading,
    RereadOrder,
    Route,
    TrackPoint,
    User,
)
from server.validation import queue as validation_queue
from server.validation.learned_positions import learned_positions
from server.validation.verdicts import said, track_span

MeterState = Literal["read", "skipped", "disputed", "not_read_yet", "missed", "flagged"]
ReadingState = Literal["read", "skipped", "disputed"]
SEVERITIES = ("info", "warn", "fail")


@dataclass(frozen=True)
class Auditor:
    """Who audits: a supervisor (limited to their grid) or an admin, and the language their
    flags' sentences are said in (common.i18n.LANGUAGES), with the validation's thresholds
    (the walked distance is measured on the track as the rules clean it)."""

    user: User
    language: str = "en"
    # The zone of the assignment windows' dates (server.validation.runner.window_tz).
    window_tz: tzinfo = UTC
    thresholds: Thresholds = DEFAULT_THRESHOLDS

    def may_see(self, route: Route) -> bool:
        return self.user.role == "admin" or (
            self.user.role == "supervisor" and route.grid_id == self.user.grid_id
        )


def audited_assignment(
    session: Session, auditor: Auditor, assignment_id: int
) -> tuple[Assignment, Route]:
    assignment = session.get(Assignment, assignment_id)
    if assignment is None:
        raise NotFound(f"no assignment {assignment_id}", code="assignment_not_found")
    route = session.get(Route, assignment.route_id)
    assert route is not None
    if not auditor.may_see(route):
        raise Forbidden(f"assignment {assignment_id} is not in your grid", code="not_your_grid")
    return assignment, route


def readings_of(session: Session, assignment_id: int) -> list[Reading]:
    return list(
        session.exec(
            select(Reading)
            .where(Reading.assignment_id == assignment_id)
            .order_by(col(Reading.read_at), col(Reading.received_at))
        )
    )


def track_of(session: Session, assignment: Assignment, readings: list[Reading]) -> list[TrackPoint]:
    times = [r.read_at for r in readings]
    start, end = track_span(
        assignment.window_start,
        assignment.window_end,
        min(times, default=None),
        max(times, default=None),
    )
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


def track_fixes(track: list[TrackPoint]) -> list[TrackFix]:
    return [TrackFix(p.t, p.lat, p.lon, p.accuracy_m, p.mock, p.provider) for p in track]


def supersessions(readings: list[Reading]) -> dict[uuid.UUID, uuid.UUID]:
    return {r.supersedes: r.id for r in readings if r.supersedes is not None}


def window_closed(assignment: Assignment, tz: tzinfo) -> bool:
    """Closed, or its last day (a local date) is over: an unread meter is missed, not late."""
    return assignment.status != "open" or clock.now().astimezone(tz).date() > assignment.window_end


def is_disputed(flags: list[Flag]) -> bool:
    """A supervisor upheld one of the reading's flags: it stays on record, disputed."""
    return any(f.review == "rejected" for f in flags)


def reading_state(reading: Reading, flags: list[Flag]) -> ReadingState:
    if is_disputed(flags):
        return "disputed"
    return "read" if reading.value is not None else "skipped"


def meter_states(
    meters: list[Meter], readings: list[Reading], flags: list[Flag], closed: bool
) -> dict[int, MeterState]:
    """Each meter's state on the map: flagged (open warn/fail), then its current reading's
    state (read, skipped, disputed), else not read yet (window open) or missed (closed)."""
    replaced = supersessions(readings)
    current = {r.meter_id: r for r in readings if r.id not in replaced}
    flagged = {
        f.meter_id
        for f in flags
        if f.severity in ("warn", "fail") and f.review is None and f.meter_id is not None
    }
    by_reading: dict[uuid.UUID, list[Flag]] = {}
    for f in flags:
        if f.reading_id is not None:
            by_reading.setdefault(f.reading_id, []).append(f)
    states: dict[int, MeterState] = {}
    for m in meters:
        assert m.id is not None
        reading = current.get(m.id)
        if m.id in flagged:
            states[m.id] = "flagged"
        elif reading is None:
            states[m.id] = "missed" if closed else "not_read_yet"
        else:
            states[m.id] = reading_state(reading, by_reading.get(reading.id, []))
    return states


def flag_message(flag: Flag, language: str) -> str:
    """The flag's sentence in `language`, from its code and params; a flag without them (made
    by hand, or before params were kept) has only its stored sentence to say."""
    if flag.params is None:
        return flag.message
    try:
        return flag_sentence(flag.code, flag.params, translations(language).gettext)
    except (KeyError, TypeError, ValueError):
        return flag.message


def flag_out(flag: Flag, reviewer: str | None = None, language: str = "en") -> dict[str, Any]:
    return {
        "id": flag.id,
        "code": flag.code,
        "severity": flag.severity,
        "message": flag_message(flag, language),
        "params": flag.params,
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
    language: str = "en",
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
        "state": reading_state(reading, flags),
        "disputed": is_disputed(flags),
        "flags": [flag_out(f, _reviewer(f, reviewers), language) for f in flags],
    }


def _summary(
    session: Session,
    auditor: Auditor,
    assignment: Assignment,
    route: Route,
    cycle: Cycle,
    reader: User,
) -> dict[str, Any]:
    assert assignment.id is not None
    meters = list(session.exec(select(Meter).where(Meter.route_id == route.id)))
    readings = readings_of(session, assignment.id)
    flags = _flags(session, assignment.id)
    closed = window_closed(assignment, auditor.window_tz)
    states = Counter(meter_states(meters, readings, flags, closed).values())
    open_flags = Counter(f.severity for f in flags if f.review is None)
    replaced = supersessions(readings)
    current = [r for r in readings if r.id not in replaced]
    pending_since = validation_queue.pending(session, [assignment.id]).get(assignment.id)
    judged = session.get(AssignmentVerdict, assignment.id)
    verdict, walked = said(
        judged.code if judged else None,
        judged.params if judged else None,
        judged.walked_m if judged else None,
        meters=len(meters),
        has_readings=bool(readings),
        pending=pending_since is not None,
        language=auditor.language,
    )
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
        "window_closed": closed,
        "flagged": {s: open_flags.get(s, 0) for s in SEVERITIES},
        "meters_flagged": states.get("flagged", 0),
        "first_read_at": readings[0].read_at.isoformat() if readings else None,
        "last_read_at": readings[-1].read_at.isoformat() if readings else None,
        "distance_walked_m": walked,
        "verdict": verdict,
        "validation_pending": pending_since is not None,
        "validation_pending_since": pending_since.isoformat() if pending_since else None,
    }


def assignment_summary(session: Session, *, auditor: Auditor, assignment_id: int) -> dict[str, Any]:
    """One assignment's progress (the auditor must be allowed to see it)."""
    assignment, route = audited_assignment(session, auditor, assignment_id)
    cycle = session.get(Cycle, assignment.cycle_id)
    reader = session.get(User, assignment.reader_id)
    assert cycle is not None
    assert reader is not None
    return _summary(session, auditor, assignment, route, cycle, reader)


def assignment_detail(session: Session, *, auditor: Auditor, assignment_id: int) -> dict[str, Any]:
    """One assignment: summary, meters with their state, readings in order taken, track, flags."""
    assignment, route = audited_assignment(session, auditor, assignment_id)
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
    readings = readings_of(session, assignment_id)
    flags = _flags(session, assignment_id)
    states = meter_states(meters, readings, flags, window_closed(assignment, auditor.window_tz))
    track = track_of(session, assignment, readings)
    assert route.id is not None
    learned = learned_positions(
        session,
        route_id=route.id,
        assignment_id=assignment_id,
        thresholds=auditor.thresholds,
    )
    return {
        "assignment": _summary(session, auditor, assignment, route, cycle, reader),
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
                "position_uncertainty_m": m.position_uncertainty_m,
                # Where past cycles' honest fixes put it (None: too few of them).
                "learned_position": _learned_out(learned.get(m.id) if m.id is not None else None),
            }
            for m, a in rows
        ],
        "readings": readings_out(session, readings, flags, auditor.language),
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
        "flags": flags_out(session, flags, auditor.language),
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


def _learned_out(position: LearnedPosition | None) -> dict[str, Any] | None:
    if position is None:
        return None
    return {
        "lat": position.lat,
        "lon": position.lon,
        "readings": position.readings,
        "spread_m": position.spread_m,
    }


def _fix_out(reading: Reading, meter: Meter) -> dict[str, Any] | None:
    if reading.fix_lat is None or reading.fix_lon is None:
        return None
    gap = distance_m(reading.fix_lat, reading.fix_lon, meter.lat, meter.lon)
    return {
        "lat": reading.fix_lat,
        "lon": reading.fix_lon,
        "accuracy_m": reading.fix_accuracy_m,
        "fix_time": reading.fix_time.isoformat() if reading.fix_time else None,
        "provider": reading.fix_provider,
        "mock": reading.fix_mock,
        # The number behind presence, so a supervisor need not measure it on the map.
        "distance_to_meter_m": round(gap, 1),
        "exactly_on_meter": gap < EXACT_FIX_M,
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


def flags_out(session: Session, flags: list[Flag], language: str = "en") -> list[dict[str, Any]]:
    reviewers = _reviewers(session, flags)
    return [flag_out(f, _reviewer(f, reviewers), language) for f in flags]


def readings_out(
    session: Session, readings: list[Reading], flags: list[Flag], language: str = "en"
) -> list[dict[str, Any]]:
    by_reading: dict[uuid.UUID, list[Flag]] = {}
    for f in flags:
        if f.reading_id is not None:
            by_reading.setdefault(f.reading_id, []).append(f)
    replaced = supersessions(readings)
    meters = {
        m.id: m
        for m in session.exec(
            select(Meter).where(col(Meter.id).in_({r.meter_id for r in readings}))
        )
    }
    reviewers = _reviewers(session, flags)
    return [
        reading_out(
            r, by_reading.get(r.id, []), replaced.get(r.id), meters[r.meter_id], reviewers, language
        )
        for r in readings
    ]


def assignment_readings(
    session: Session, *, auditor: Auditor, assignment_id: int
) -> list[dict[str, Any]]:
    """Every reading held for the assignment, in the order taken, with its flags."""
    audited_assignment(session, auditor, assignment_id)
    return readings_out(
        session,
        readings_of(session, assignment_id),
        _flags(session, assignment_id),
        auditor.language,
    )


def assignment_flags(
    session: Session, *, auditor: Auditor, assignment_id: int
) -> list[dict[str, Any]]:
    """The assignment's flags."""
    audited_assignment(session, auditor, assignment_id)
    return flags_out(session, _flags(session, assignment_id), auditor.language)
