"""The verdict: what an assignment's day comes to, in one line a supervisor reads before any
flag ("the track stayed within 24 m of one spot, 1.5 km from the route, for 8 h"). It says
what the cleaned track and the readings' fixes show; the flags say which rule each broke."""

from __future__ import annotations

import statistics
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from common.geo import distance_m
from common.rules.facts import (
    MeterFacts,
    ReadingFacts,
    Thresholds,
    TrackFix,
    fix_problem,
    is_mock,
    rounded,
)
from common.rules.presence import far_from_meter
from common.rules.track_cleaning import clean_track, credited_accuracy, walked_on

VerdictCode = Literal["nothing", "no_track", "stayed", "walked"]

# A fix this close to the meter's own coordinates was typed in or copied, not measured: real
# GPS never lands on a surveyed point to the centimetre (distances are shown to 0.1 m).
EXACT_FIX_M = 0.05


@dataclass(frozen=True)
class Walk:
    """A track cleaned for judging and the distance walked on it: what both the verdict and
    the distance the audit shows are made of, made once (cleaning is most of a verdict)."""

    cleaned: list[TrackFix]
    walked_m: float


def walk_of(points: Iterable[TrackFix], thresholds: Thresholds) -> Walk:
    cleaned = clean_track(points, thresholds)
    return Walk(cleaned, walked_on(cleaned, thresholds))


@dataclass(frozen=True)
class Verdict:
    """The day in one line: a code and the numbers its sentence is made of."""

    code: VerdictCode
    params: dict[str, Any] = field(default_factory=dict)


def exactly_on_meter(reading: ReadingFacts, meter: MeterFacts) -> bool:
    fix = reading.fix
    return fix is not None and distance_m(fix.lat, fix.lon, meter.lat, meter.lon) < EXACT_FIX_M


def fix_at_meter(reading: ReadingFacts, meter: MeterFacts, thresholds: Thresholds) -> bool:
    """The reading's own fix places it at the meter: fresh, not mock, within the presence rule's
    allowance (far_from_meter says nothing), and measured, not sitting on the meter's
    coordinates (which a real fix never does)."""
    fix = reading.fix
    return (
        fix is not None
        and fix_problem(reading, thresholds) is None
        and not is_mock(fix.mock, fix.provider, thresholds.mock_providers)
        and far_from_meter(reading, meter, thresholds) is None
        and not exactly_on_meter(reading, meter)
    )


def nothing_yet(meters: int) -> Verdict:
    """The day of an assignment on a route of `meters` meters that no reading nor track point
    has reached: what assignment_verdict says of it."""
    return Verdict(
        "nothing", {"meters": meters, "done": 0, "at_meter": 0, "exact": 0, "mock_points": 0}
    )


def assignment_verdict(
    meters: list[MeterFacts],
    readings: Iterable[ReadingFacts],
    track: Iterable[TrackFix],
    thresholds: Thresholds,
    *,
    walk: Walk | None = None,
) -> Verdict:
    """What the day comes to: nothing yet; readings without a track; a track that never left
    one spot (within stationary_radius_m of its middle, the jitter of someone standing still);
    or the distance walked on the cleaned track and how many meters it passed, each with how
    many of the current readings their own fix places at the meter. `walk`: the track's real
    points already cleaned and walked (`walk_of`), when the caller has them."""
    by_id = {m.id: m for m in meters}
    current = [r for r in readings if not r.superseded and r.meter_id in by_id]
    points = list(track)
    real = [p for p in points if not is_mock(p.mock, p.provider, thresholds.mock_providers)]
    counts: dict[str, Any] = {
        "meters": len(meters),
        "done": len(current),
        "at_meter": sum(1 for r in current if fix_at_meter(r, by_id[r.meter_id], thresholds)),
        "exact": sum(1 for r in current if exactly_on_meter(r, by_id[r.meter_id])),
        "mock_points": len(points) - len(real),
    }
    walk = walk or walk_of(real, thresholds)
    cleaned = walk.cleaned
    if not cleaned:
        return Verdict("no_track" if current else "nothing", counts)
    # The median, not the mean: a stray point the cleaning kept does not move the spot.
    lat = statistics.median(p.lat for p in cleaned)
    lon = statistics.median(p.lon for p in cleaned)
    spread = max(distance_m(lat, lon, p.lat, p.lon) for p in cleaned)
    if spread <= thresholds.stationary_radius_m:
        away = min((distance_m(lat, lon, m.lat, m.lon) for m in meters), default=None)
        return Verdict(
            "stayed",
            {
                **counts,
                "spread_m": rounded(spread),
                "away_m": None if away is None else rounded(away),
                "span_s": (cleaned[-1].t - cleaned[0].t).total_seconds(),
            },
        )
    # Each point with how far from it a meter counts as passed, by latitude: a degree of
    # latitude is at least 110.5 km, so only the points within the widest reach north or south
    # of a meter can pass it, and only those are measured (a day's track is thousands of
    # points, a route hundreds of meters).
    reach = sorted(
        (p.lat, p.lon, thresholds.presence_radius_m + credited_accuracy(p, thresholds))
        for p in cleaned
    )
    lats = [lat for lat, _, _ in reach]
    # A hair wider than the widest reach: a point on its edge is not lost to rounding.
    band = max(r for _, _, r in reach) / 110_500 * (1 + 1e-9)

    def passed_by_track(m: MeterFacts) -> bool:
        near = reach[bisect_left(lats, m.lat - band) : bisect_right(lats, m.lat + band)]
        return any(
            abs(lat - m.lat) * 110_500 <= r and distance_m(lat, lon, m.lat, m.lon) <= r
            for lat, lon, r in near
        )

    passed = sum(1 for m in meters if passed_by_track(m))
    return Verdict(
        "walked",
        {
            **counts,
            "walked_m": rounded(walk.walked_m),
            "passed": passed,
            # Along the route: the track passed most of its meters.
            "along": 2 * passed >= len(meters),
        },
    )
