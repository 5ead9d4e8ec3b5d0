"""Presence: a reading counts as taken at the meter only if the handheld was there (its own
fix, and the track around it, long enough to read a meter); no fix, a stale one or a mock one
is flagged.

Where the meter is, is itself uncertain: the mapped position (from another day's survey, give or
take the meter's position_uncertainty_m) and, when past cycles' honest fixes agree on one, the
learned position. A position passes near the meter if it is within the allowance of either:
presence_radius_m + the position's credited accuracy + that position's own uncertainty."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from common.geo import distance_m
from common.rules.facts import (
    DEFAULT_THRESHOLDS,
    Finding,
    LearnedPosition,
    MeterFacts,
    ReadingFacts,
    Thresholds,
    Track,
    TrackFix,
    accuracy_credit,
    fix_problem,
    is_mock,
    rounded,
)


def no_fix(
    reading: ReadingFacts, meter: MeterFacts, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> Finding | None:
    """A reading must carry a fix of the moment it was taken: none, stale or coarse is flagged."""
    problem = fix_problem(reading, thresholds)
    if problem is None:
        return None
    return Finding("no_fix", "warn", {"meter": meter.name, **problem}, reading.id, meter.id)


def mock_location(
    reading: ReadingFacts,
    meter: MeterFacts,
    track: Track,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> Finding | None:
    """A fix, or track points around read_at, from a mock or simulated provider are flagged."""
    fix = reading.fix
    fix_mock = fix is not None and fix.mock
    simulated = (
        fix is not None
        and not fix.mock
        and is_mock(fix.mock, fix.provider, thresholds.mock_providers)
    )
    window = thresholds.track_window_s
    mocked = track.mock_count(reading.read_at, window, reading.reader_id, thresholds.mock_providers)
    if not (fix_mock or simulated or mocked):
        return None
    return Finding(
        "mock_location",
        "fail",
        {
            "meter": meter.name,
            "fix_mock": fix_mock,
            "provider": fix.provider if simulated and fix is not None else None,
            "mock_points": mocked,
            "window_s": window,
        },
        reading.id,
        meter.id,
    )


# The codes that doubt the reader was at the meter: a reading that raised one does not teach
# where the meter is (server/validation/learned_positions.py). A fix typed onto the meter's
# coordinates (fix_on_meter) would teach the mapped position back to itself.
PRESENCE_CODES = (
    "no_fix",
    "mock_location",
    "far_from_meter",
    "not_on_track",
    "no_dwell",
    "fix_on_meter",
)


# ------------------------------------------------------------------- where the meter may be


@dataclass(frozen=True)
class Nearest:
    """A position against the meter's candidate positions: the one it comes closest to within
    its allowance (`beyond_m` <= 0: within it)."""

    distance_m: float
    beyond_m: float
    learned: bool  # the learned position, not the mapped one
    uncertainty_m: float  # that position's own uncertainty, part of the allowance


def nearest_position(
    lat: float, lon: float, credit_m: float, meter: MeterFacts, thresholds: Thresholds
) -> Nearest:
    """How a position credited `credit_m` of accuracy stands against the meter's mapped
    position (with its uncertainty) and its learned one, if any: the one it is least beyond."""
    allowance = thresholds.presence_radius_m + credit_m
    d = distance_m(lat, lon, meter.lat, meter.lon)
    best = Nearest(
        d, d - allowance - meter.position_uncertainty_m, False, meter.position_uncertainty_m
    )
    learned = meter.learned
    if learned is not None:
        d = distance_m(lat, lon, learned.lat, learned.lon)
        if d - allowance < best.beyond_m:
            best = Nearest(d, d - allowance, True, 0.0)
    return best


def learn_position(
    fixes: Sequence[tuple[float, float]], thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> LearnedPosition | None:
    """Where a meter probably is, from the fixes of its past readings that raised no presence
    flag: their median (one wrong fix does not move it), if there are learned_min_readings."""
    if not fixes or len(fixes) < thresholds.learned_min_readings:
        return None
    lat = statistics.median(f[0] for f in fixes)
    lon = statistics.median(f[1] for f in fixes)
    spread = statistics.median(distance_m(f[0], f[1], lat, lon) for f in fixes)
    return LearnedPosition(lat, lon, len(fixes), rounded(spread))


def _allowance_params(near: Nearest) -> dict[str, Any]:
    """What a presence finding says of the allowance beyond the radius and accuracy."""
    params: dict[str, Any] = {}
    if near.uncertainty_m > 0:
        params["uncertainty_m"] = rounded(near.uncertainty_m)
    if near.learned:
        params["learned"] = True
    return params


# ----------------------------------------------------------------------------------- rules


def far_from_meter(
    reading: ReadingFacts, meter: MeterFacts, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> Finding | None:
    """A fix beyond the allowance of the meter (presence radius + the fix's credited accuracy +
    the meter position's uncertainty, from the mapped or the learned position) is flagged: by
    up to grey_zone_m beyond as a warning to review, farther as a failure."""
    fix = reading.fix
    if fix is None or fix_problem(reading, thresholds) is not None:
        return None  # no_fix says it: a stale or coarse fix is no evidence either way
    accuracy = accuracy_credit(fix.accuracy_m, thresholds)
    near = nearest_position(fix.lat, fix.lon, accuracy, meter, thresholds)
    if near.beyond_m <= 0:
        return None
    grey = near.beyond_m <= thresholds.grey_zone_m
    params: dict[str, Any] = {
        "meter": meter.name,
        "distance_m": rounded(near.distance_m),
        "radius_m": thresholds.presence_radius_m,
        "accuracy_m": rounded(accuracy),
        **_allowance_params(near),
    }
    if grey:
        params["grey_zone_m"] = thresholds.grey_zone_m
    return Finding("far_from_meter", "warn" if grey else "fail", params, reading.id, meter.id)


@dataclass(frozen=True)
class _Witness:
    point: TrackFix
    near: Nearest


def _places(p: TrackFix, thresholds: Thresholds) -> bool:
    """Whether a track point can place the reader: not mock, not coarse."""
    return not is_mock(p.mock, p.provider, thresholds.mock_providers) and (
        p.accuracy_m is None or p.accuracy_m <= thresholds.max_fix_accuracy_m
    )


def _witness(p: TrackFix, meter: MeterFacts, thresholds: Thresholds) -> _Witness:
    credit = accuracy_credit(p.accuracy_m, thresholds)
    return _Witness(p, nearest_position(p.lat, p.lon, credit, meter, thresholds))


def not_on_track(
    reading: ReadingFacts,
    meter: MeterFacts,
    track: Track,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> Finding | None:
    """The reader's own (cleaned) track must pass within the allowance of the meter within
    track_window_s of read_at; the track is the witness a typed fix is not."""
    closest: _Witness | None = None
    # Nearest in time first: where the reader was at read_at is most likely where they were
    # seen near the meter, so an honest reading's search ends at once.
    for p in track.nearest_first(reading.read_at, thresholds.track_window_s, reading.reader_id):
        if not _places(p, thresholds):
            continue
        w = _witness(p, meter, thresholds)
        if w.near.beyond_m <= 0:
            return None
        if closest is None or w.near.distance_m < closest.near.distance_m:
            closest = w
    params = {
        "meter": meter.name,
        "window_s": thresholds.track_window_s,
        "radius_m": thresholds.presence_radius_m,
        # None: the track has no point near the reading's time at all.
        "nearest_m": None if closest is None else rounded(closest.near.distance_m),
    }
    if closest is not None:
        params.update(_allowance_params(closest.near))
    return Finding("not_on_track", "fail", params, reading.id, meter.id)


def _stays(witnesses: list[_Witness]) -> list[tuple[int, int]]:
    """The stretches (first, last index) of points within the allowance. One point outside
    between two inside is jitter of someone standing there, not a leaving: it is bridged."""
    inside = [i for i, w in enumerate(witnesses) if w.near.beyond_m <= 0]
    stays: list[tuple[int, int]] = []
    for i in inside:
        if stays and i - stays[-1][1] <= 2:
            stays[-1] = (stays[-1][0], i)
        else:
            stays.append((i, i))
    return stays


def no_dwell(
    reading: ReadingFacts,
    meter: MeterFacts,
    track: Track,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> Finding | None:
    """The reader's (cleaned) track must stay within the allowance of the meter for min_dwell_s
    around the reading: a person stops to read a meter, a car driven past does not. The stay
    judged is the one containing read_at, else the nearest to it in time. Only a stay the track
    proves short is flagged: the points just outside it must be less than min_dwell_s apart
    (a sparse track, or a stay at the edge of the window, may hide a longer one)."""
    witnesses = [
        _witness(p, meter, thresholds)
        for p in track.around(reading.read_at, thresholds.track_window_s, reading.reader_id)
        if _places(p, thresholds)
    ]
    stays = _stays(witnesses)
    if not stays:
        return None  # not_on_track says it
    at = reading.read_at

    def off(stay: tuple[int, int]) -> float:
        first, last = witnesses[stay[0]].point.t, witnesses[stay[1]].point.t
        if first <= at <= last:
            return 0.0
        return min(abs((first - at).total_seconds()), abs((last - at).total_seconds()))

    first, last = min(stays, key=off)
    if first == 0 or last == len(witnesses) - 1:
        return None  # the stay runs to the window's edge or the track's end: not short
    dwell = (witnesses[last].point.t - witnesses[first].point.t).total_seconds()
    at_most = (witnesses[last + 1].point.t - witnesses[first - 1].point.t).total_seconds()
    if at_most > thresholds.min_dwell_s:
        return None  # it may have lasted min_dwell_s between the points (dwell < at_most)
    closest = min(witnesses[first : last + 1], key=lambda w: w.near.distance_m)
    params = {
        "meter": meter.name,
        "dwell_s": rounded(dwell),
        "at_most_s": rounded(at_most),
        "needed_s": thresholds.min_dwell_s,
        "nearest_m": rounded(closest.near.distance_m),
        "radius_m": thresholds.presence_radius_m,
        **_allowance_params(closest.near),
    }
    return Finding("no_dwell", "fail", params, reading.id, meter.id)
