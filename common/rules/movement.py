"""Plausible movement: between readings, and between track points, no faster than a person on
foot or in a vehicle can go; readings at distinct places not seconds apart."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC

from common.geo import distance_m, surely_within
from common.rules.facts import (
    DEFAULT_THRESHOLDS,
    Finding,
    MeterFacts,
    ReadingFacts,
    Thresholds,
    Track,
    TrackFix,
    rounded,
    utc_text,
)
from common.rules.track_cleaning import cleaned, credited_accuracy


def claimed_position(
    reading: ReadingFacts, meters: Mapping[int, MeterFacts]
) -> tuple[float, float] | None:
    """Where a reading claims the reader was: at its meter (or, for an unknown meter, its fix)."""
    meter = meters.get(reading.meter_id)
    if meter is not None:
        return meter.lat, meter.lon
    if reading.fix is not None:
        return reading.fix.lat, reading.fix.lon
    return None


def by_reader(readings: Iterable[ReadingFacts]) -> list[list[ReadingFacts]]:
    """Each reader's readings in the order taken."""
    groups: dict[int | None, list[ReadingFacts]] = {}
    for r in readings:
        groups.setdefault(r.reader_id, []).append(r)
    return [
        sorted(rs, key=lambda r: (r.read_at, r.confirmed_at, str(r.id))) for rs in groups.values()
    ]


def _consecutive_places(
    readings: Iterable[ReadingFacts], meters: Mapping[int, MeterFacts], thresholds: Thresholds
) -> Iterable[tuple[ReadingFacts, ReadingFacts, float]]:
    """Consecutive readings of one reader at distinct places, with the distance between."""
    for walk in by_reader(readings):
        for a, b in itertools.pairwise(walk):
            pa, pb = claimed_position(a, meters), claimed_position(b, meters)
            if pa is None or pb is None:
                continue
            d = distance_m(pa[0], pa[1], pb[0], pb[1])
            if d > thresholds.distinct_place_m:
                yield a, b, d


def meter_name(meters: Mapping[int, MeterFacts], meter_id: int) -> str:
    meter = meters.get(meter_id)
    return meter.name if meter is not None else f"#{meter_id}"


def _too_quick(a: ReadingFacts, b: ReadingFacts, thresholds: Thresholds) -> bool:
    return (b.confirmed_at - a.confirmed_at).total_seconds() < thresholds.min_work_interval_s


def too_fast(
    readings: Sequence[ReadingFacts],
    meters: Mapping[int, MeterFacts],
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> list[Finding]:
    """Two readings at distinct places confirmed closer in time than a meter can be read are
    flagged (on the later one)."""
    findings = []
    for a, b, d in _consecutive_places(readings, meters, thresholds):
        if not _too_quick(a, b, thresholds):
            continue
        gap = (b.confirmed_at - a.confirmed_at).total_seconds()
        findings.append(
            Finding(
                "too_fast",
                "fail",
                {
                    "meter": meter_name(meters, b.meter_id),
                    "previous": meter_name(meters, a.meter_id),
                    "gap_s": rounded(gap),
                    "distance_m": rounded(d),
                    "minimum_s": thresholds.min_work_interval_s,
                },
                b.id,
                b.meter_id,
            )
        )
    return findings


def speed_kmh(metres: float, seconds: float) -> float:
    return math.inf if seconds <= 0 else metres / seconds * 3.6


def speed_param(speed: float) -> float | None:
    """A speed for params: None for a move in no time (JSON has no infinity)."""
    return None if math.isinf(speed) else rounded(speed)


def impossible_speed(
    readings: Sequence[ReadingFacts],
    meters: Mapping[int, MeterFacts],
    track: Track,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> list[Finding]:
    """Moving faster than max_speed_kmh between consecutive readings, or between consecutive
    points of the cleaned track beyond their accuracy, is flagged: one finding per reading,
    one per track jump."""
    limit = thresholds.max_speed_kmh
    findings = []
    for a, b, d in _consecutive_places(readings, meters, thresholds):
        if _too_quick(a, b, thresholds):
            continue  # too_fast says it
        dt = (b.read_at - a.read_at).total_seconds()
        speed = speed_kmh(d, dt)
        if speed <= limit:
            continue
        findings.append(
            Finding(
                "impossible_speed",
                "fail",
                {
                    "meter": meter_name(meters, b.meter_id),
                    "previous": meter_name(meters, a.meter_id),
                    "distance_m": rounded(d),
                    "gap_s": rounded(dt),
                    "speed_kmh": speed_param(speed),
                    "limit_kmh": limit,
                },
                b.id,
                b.meter_id,
            )
        )
    # Judged cleaned (no spikes, outliers or sub-second pairs), as presence is: cleaned once.
    for walk in cleaned(track, thresholds).walks():
        findings += _track_jumps(walk, thresholds)
    return findings


def _track_jumps(walk: Sequence[TrackFix], thresholds: Thresholds) -> list[Finding]:
    limit = thresholds.max_speed_kmh
    findings = []
    run: list[tuple[TrackFix, TrackFix, float, float, float]] = []  # a, b, metres, s, km/h

    def close_run() -> None:
        if not run:
            return
        first, worst = run[0], max(run, key=lambda seg: seg[2])
        _, _, d, dt, speed = worst
        start = first[0]
        reader = "" if start.reader_id is None else f"{start.reader_id}@"
        findings.append(
            Finding(
                "impossible_speed",
                "warn",
                {
                    "distance_m": rounded(d),
                    "gap_s": rounded(dt),
                    "at": utc_text(worst[0].t),
                    "speed_kmh": speed_param(speed),
                    "limit_kmh": limit,
                    "steps": len(run),
                },
                subject=f"track:{reader}{start.t.astimezone(UTC):%Y-%m-%dT%H:%M:%S}",
            )
        )
        run.clear()

    limit_m_s = limit / 3.6
    for a, b in itertools.pairwise(walk):
        dt = (b.t - a.t).total_seconds()
        # Most steps of a walk are cleared without measuring them.
        if surely_within(a.lat, a.lon, b.lat, b.lon, limit_m_s * dt):
            close_run()
            continue
        d = distance_m(a.lat, a.lon, b.lat, b.lon)
        slack = credited_accuracy(a, thresholds) + credited_accuracy(b, thresholds)
        speed = speed_kmh(d - slack, dt) if d > slack else 0.0
        if speed > limit:
            run.append((a, b, d, dt, speed_kmh(d, dt)))
        else:
            close_run()
    close_run()
    return findings
