"""An assignment's day over time, for the audit page's timeline: how far the reader's cleaned
track was from the meter they were about to read, and how fast they moved between points.

The meter "being read" at a moment is the meter of the next reading taken (in the order
taken): a reader walking up to it closes in on it, a reader at home stays far from every one.
Computed from the track as the rules clean it (common/rules/track_cleaning.py, the judging
chain: spikes and outliers out, jitter kept, as impossible_speed sees it)."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from common.geo import distance_m
from common.rules.facts import Thresholds, TrackFix, is_mock
from common.rules.track_cleaning import clean_track
from server.audit.service import Auditor, audited_assignment, readings_of, track_fixes, track_of
from server.models import Meter

# A pause in the cleaned track longer than this (the handheld off at lunch, the night between two
# days of a window) is a break: the charts lift the pen there instead of drawing a straight line
# through hours nobody was tracked, and no speed is made of the step across it.
BREAK_S = 600


@dataclass(frozen=True)
class Read:
    """A reading as the timeline marks it."""

    id: str
    t: datetime
    meter_id: int
    lat: float  # the meter's position
    lon: float


def day_timeline(
    track: Sequence[TrackFix], reads: Sequence[Read], thresholds: Thresholds
) -> dict[str, Any]:
    """Each cleaned track point with its distance to the next reading's meter (None after the
    last reading), the speed from the point before, and whether a break (BREAK_S) precedes it;
    each reading with the track's distance to its meter at the point nearest in time (None: no
    point within track_window_s)."""
    cleaned = clean_track(track, thresholds)
    reads = sorted(reads, key=lambda r: r.t)
    times = [r.t for r in reads]
    points: list[dict[str, Any]] = []
    for i, p in enumerate(cleaned):
        ahead = bisect.bisect_left(times, p.t)
        target = reads[ahead] if ahead < len(reads) else None
        speed = None
        gap = False
        if i:
            before = cleaned[i - 1]
            seconds = (p.t - before.t).total_seconds()
            gap = seconds > BREAK_S
            if 0 < seconds <= BREAK_S:
                step = distance_m(before.lat, before.lon, p.lat, p.lon)
                speed = round(step / seconds * 3.6, 1)
        points.append(
            {
                "t": p.t.isoformat(),
                "meter_id": target.meter_id if target else None,
                "distance_m": round(distance_m(p.lat, p.lon, target.lat, target.lon), 1)
                if target
                else None,
                "speed_kmh": speed,
                "break_before": gap,
            }
        )
    stamps = [p.t for p in cleaned]
    marks = []
    for r in reads:
        distance = None
        j = bisect.bisect_left(stamps, r.t)
        near = [cleaned[k] for k in (j - 1, j) if 0 <= k < len(cleaned)]
        if near:
            nearest = min(near, key=lambda p: abs((p.t - r.t).total_seconds()))
            if abs((nearest.t - r.t).total_seconds()) <= thresholds.track_window_s:
                distance = round(distance_m(nearest.lat, nearest.lon, r.lat, r.lon), 1)
        marks.append(
            {
                "reading_id": r.id,
                "t": r.t.isoformat(),
                "meter_id": r.meter_id,
                "distance_m": distance,
            }
        )
    return {"points": points, "readings": marks}


def assignment_timeline(
    session: Session, *, auditor: Auditor, assignment_id: int
) -> dict[str, Any]:
    """The assignment's timeline (the auditor must be allowed to see it)."""
    assignment, _ = audited_assignment(session, auditor, assignment_id)
    readings = readings_of(session, assignment_id)
    meters = {
        m.id: m
        for m in session.exec(
            select(Meter).where(col(Meter.id).in_({r.meter_id for r in readings}))
        )
    }
    reads = [
        Read(str(r.id), r.read_at, r.meter_id, meters[r.meter_id].lat, meters[r.meter_id].lon)
        for r in readings
    ]
    track = [
        p
        for p in track_fixes(track_of(session, assignment, readings))
        # A mock point places no one (as for the rules).
        if not is_mock(p.mock, p.provider, auditor.thresholds.mock_providers)
    ]
    return day_timeline(track, reads, auditor.thresholds)
