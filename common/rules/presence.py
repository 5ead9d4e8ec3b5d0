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
    m_text,
    s_text,
)


def no_fix(
    reading: ReadingFacts, meter: MeterFacts, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> Finding | None:
    """A reading must carry a fix of the moment it was taken: none, stale or coarse is flagged."""
    problem = fix_problem(reading, thresholds)
    if problem is None:
        return None
    return Finding(
        "no_fix", "warn", f"reading of meter {meter.name} {problem}", reading.id, meter.id
    )


def mock_location(
    reading: ReadingFacts,
    meter: MeterFacts,
    track: Track,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> Finding | None:
    """A fix, or track points around read_at, from a mock or simulated provider are flagged."""
    reasons = []
    fix = reading.fix
    if fix is not None and fix.mock:
        reasons.append("its fix came from a mock location provider")
    elif fix is not None and is_mock(fix.mock, fix.provider, thresholds.mock_providers):
        reasons.append(f"its fix came from the simulated provider '{fix.provider}'")
    window = thresholds.track_window_s
    mocked = track.mock_count(reading.read_at, window, reading.reader_id, thresholds.mock_providers)
    if mocked:
        reasons.append(
            f"{mocked} track point(s) within {s_text(window)} of it came from a mock "
            "location provider"
        )
    if not reasons:
        return None
    return Finding(
        "mock_location",
        "fail",
        f"reading of meter {meter.name}: {'; '.join(reasons)}",
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
        f"fix {m_text(d)} from meter {meter.name} "
        f"(allowed {m_text(thresholds.presence_radius_m)} + accuracy {m_text(accuracy)})",
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
    if math.isinf(nearest):
        message = (
            f"the track has no point within {s_text(window)} of the reading of meter {meter.name} "
            "(phone off, no GPS, or track not sent)"
        )
    else:
        message = (
            f"the track within {s_text(window)} of the reading never came near meter "
            f"{meter.name}: nearest point {m_text(nearest)} away "
            f"(allowed {m_text(radius)} + its accuracy)"
        )
    return Finding("not_on_track", "fail", message, reading.id, meter.id)
