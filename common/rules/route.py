"""All the rules over one route-day: what the server's runner and the tests call."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

from common.rules.completeness import missed, wrong_meter_order
from common.rules.consumption import (
    high_consumption,
    low_consumption,
    negative_consumption,
    unchanged,
)
from common.rules.copies import fix_on_meter, replayed_tracks
from common.rules.facts import (
    DEFAULT_THRESHOLDS,
    AssignmentFacts,
    EarlierTrack,
    Finding,
    MeterFacts,
    ReadingFacts,
    Thresholds,
    Track,
    TrackFix,
)
from common.rules.movement import impossible_speed, too_fast
from common.rules.presence import far_from_meter, mock_location, no_fix, on_track
from common.rules.timing import clock_skew, outside_window
from common.rules.track_cleaning import cleaned


def validate_route(
    assignment: AssignmentFacts,
    meters: Sequence[MeterFacts],
    readings: Sequence[ReadingFacts],
    track: Sequence[TrackFix] | Track,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    now: datetime | None = None,
    earlier: Sequence[EarlierTrack] = (),
) -> list[Finding]:
    """Every rule on one assignment: its route's meters, its readings, its reader's track, and
    the earlier tracks (of its readers, devices and route) its track may repeat."""
    indexed = track if isinstance(track, Track) else Track(track)
    clean = cleaned(indexed, thresholds)  # presence on the track is judged on it
    by_id = {m.id: m for m in meters}
    findings: list[Finding] = []
    for r in sorted(readings, key=lambda r: (r.read_at, r.confirmed_at, str(r.id))):
        meter = by_id.get(r.meter_id) or MeterFacts(id=r.meter_id, lat=math.nan, lon=math.nan)
        on_route = r.meter_id in by_id
        for found in (
            no_fix(r, meter, thresholds),
            mock_location(r, meter, indexed, thresholds),
            far_from_meter(r, meter, thresholds) if on_route else None,
            on_track(r, meter, clean, thresholds) if on_route else None,  # or no_dwell
            outside_window(r, meter, assignment, thresholds),
            clock_skew(r, meter, thresholds),
            negative_consumption(r, meter, thresholds),
            high_consumption(r, meter, thresholds),
            low_consumption(r, meter, thresholds),
            unchanged(r, meter, thresholds),
        ):
            if found is not None:
                findings.append(found)
    findings += too_fast(readings, by_id, thresholds)
    findings += impossible_speed(readings, by_id, indexed, thresholds)
    findings += missed(assignment, meters, readings, now)
    findings += wrong_meter_order(meters, readings, thresholds)
    findings += fix_on_meter(readings, by_id, assignment.tz, thresholds)
    worked = {(r.reader_id, r.read_at.astimezone(assignment.tz).date()) for r in readings}
    findings += replayed_tracks(indexed, earlier, assignment.tz, thresholds, worked)
    return findings
