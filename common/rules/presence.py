"""Presence: a reading counts as taken at the meter only if the handheld was there (its own
fix, and the track around it); no fix, a stale one or a mock one is flagged."""

from __future__ import annotations

import math

from common.geo import distance_m
from common.rules.facts import (
    DEFAULT_THRESHOLDS,
    Finding,
    MeterFacts,
    ReadingFacts,
    Thresholds,
    Track,
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


def far_from_meter(
    reading: ReadingFacts, meter: MeterFacts, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> Finding | None:
    """A fix farther from the meter than the presence radius plus the fix's accuracy is flagged."""
    fix = reading.fix
    if fix is None or fix_problem(reading, thresholds) is not None:
        return None  # no_fix says it: a stale or coarse fix is no evidence either way
    d = distance_m(fix.lat, fix.lon, meter.lat, meter.lon)
    accuracy = accuracy_credit(fix.accuracy_m, thresholds)
    if d <= thresholds.presence_radius_m + accuracy:
        return None
    return Finding(
        "far_from_meter",
        "fail",
        {
            "meter": meter.name,
            "distance_m": rounded(d),
            "radius_m": thresholds.presence_radius_m,
            "accuracy_m": rounded(accuracy),
        },
        reading.id,
        meter.id,
    )


def not_on_track(
    reading: ReadingFacts,
    meter: MeterFacts,
    track: Track,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> Finding | None:
    """The reader's own track must pass within the presence radius (plus the point's accuracy)
    of the meter within track_window_s of read_at; the track is the witness a typed fix is not."""
    window = thresholds.track_window_s
    radius = thresholds.presence_radius_m
    nearest = math.inf
    for p in track.nearest_first(reading.read_at, window, reading.reader_id):
        if is_mock(p.mock, p.provider, thresholds.mock_providers):
            continue
        if p.accuracy_m is not None and p.accuracy_m > thresholds.max_fix_accuracy_m:
            continue
        d = distance_m(p.lat, p.lon, meter.lat, meter.lon)
        if d <= radius + accuracy_credit(p.accuracy_m, thresholds):
            return None
        nearest = min(nearest, d)
    params = {
        "meter": meter.name,
        "window_s": window,
        "radius_m": radius,
        # None: the track has no point near the reading's time at all.
        "nearest_m": None if math.isinf(nearest) else rounded(nearest),
    }
    return Finding("not_on_track", "fail", params, reading.id, meter.id)
