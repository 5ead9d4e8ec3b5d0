"""Route-days of every kind for checking that the rules' shortcuts change nothing: seeded, each a
mix of what the rules must tell apart (honest walks, drive-bys, jitter at a meter, fixes typed on
the meter, coarse, network and mock points, a phone switched off, a teleport, two readers, a
replay of an earlier day, meters with uncertain or learned positions), and read at moments that
make ties (exactly at a track point, halfway between two), where a search that stops early could
pick another point than a full scan. Uses only what the rules take (common.rules.facts) and the
demo's seeded days (server.demo.days)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from common.geo import offset
from common.rules.facts import (
    AssignmentFacts,
    EarlierTrack,
    LearnedPosition,
    MeterFacts,
    ReadingFacts,
    TrackFix,
)
from server.demo.days import home_day, honest_day, reading_facts, street, teleport, track_facts

START = datetime.fromisoformat("2026-03-10T09:00:00+08:00")


@dataclass(frozen=True)
class Day:
    assignment: AssignmentFacts
    meters: list[MeterFacts]
    readings: list[ReadingFacts]
    track: list[TrackFix]
    earlier: list[EarlierTrack]


def _meters(rng: random.Random, n: int, seed: int) -> list[MeterFacts]:
    spacing = rng.choice([(5.0, 15.0), (20.0, 60.0), (60.0, 110.0)])
    meters = []
    for i, (lat, lon) in enumerate(street(n, spacing_m=spacing, seed=seed)):
        learned = None
        if rng.random() < 0.3:  # learned a few metres off, or far off (a wrong map)
            far = rng.choice([3.0, 60.0])
            llat, llon = offset(lat, lon, rng.uniform(-far, far), rng.uniform(-far, far))
            learned = LearnedPosition(llat, llon, 3, 4.0)
        meters.append(
            MeterFacts(
                id=i + 1,
                lat=lat,
                lon=lon,
                meter_no=f"V-{i + 1:03d}",
                last_reading=Decimal(1000 + 7 * i),
                expected_low=Decimal(50),
                expected_high=Decimal(400),
                sequence=i + 1,
                position_uncertainty_m=rng.choice([0.0, 0.0, 8.0, 25.0]),
                learned=learned,
            )
        )
    return meters


def _drive_by(track: list[TrackFix], around: datetime, kmh: float) -> list[TrackFix]:
    """The track within two minutes of `around` replaced by a straight pass at `kmh` through
    where the reader was at `around`, a point every 5 s."""
    near = min(track, key=lambda p: abs((p.t - around).total_seconds()))
    kept = [p for p in track if abs((p.t - around).total_seconds()) > 120]
    metres_s = kmh / 3.6
    passing = [
        replace(
            near,
            t=around + timedelta(seconds=s),
            lat=offset(near.lat, near.lon, s * metres_s, 0)[0],
        )
        for s in range(-120, 121, 5)
    ]
    return sorted([*kept, *passing], key=lambda p: p.t)


def _snap(
    rng: random.Random, readings: list[ReadingFacts], track: list[TrackFix]
) -> list[ReadingFacts]:
    """Some readings moved to a track point's moment, or halfway between two: ties in time."""
    times = sorted(p.t for p in track)
    out = []
    for r in readings:
        roll = rng.random()
        if roll < 0.4 and times:
            nearest = min(
                range(len(times)), key=lambda i: abs((times[i] - r.read_at).total_seconds())
            )
            at = times[nearest]
            if roll < 0.2 and nearest + 1 < len(times):
                at = at + (times[nearest + 1] - at) / 2
            r = replace(r, read_at=at)
        out.append(r)
    return out


def varied_day(seed: int) -> Day:
    """One route-day, its kind and flaws drawn from `seed`."""
    rng = random.Random(seed)
    meters = _meters(rng, rng.randint(8, 30), seed)
    start = START + timedelta(minutes=rng.randint(0, 600))
    if rng.random() < 0.15:
        home = offset(meters[0].lat, meters[0].lon, 300.0, 200.0)
        wire, wire_track = home_day(meters, start, assignment_id=1, home=home, seed=seed)
    else:
        phone_off = (rng.randint(1, 4), 2) if rng.random() < 0.2 else None
        wire, wire_track = honest_day(
            meters, start, assignment_id=1, seed=seed, phone_off=phone_off
        )
        if rng.random() < 0.15 and len(wire_track) > 40:
            wire_track = teleport(wire_track, rng.randint(20, len(wire_track) - 10))
    readings = reading_facts(wire)
    track = track_facts(wire_track)
    for r in rng.sample(readings, k=min(len(readings), rng.randint(0, 3))):
        track = _drive_by(track, r.read_at, rng.choice([15.0, 30.0, 50.0]))
    track = [_flaw(rng, p) for p in track]
    readings = [_typed(rng, r, meters) for r in _snap(rng, readings, track)]
    readers = rng.random()
    if readers < 0.25:  # two readers, one after the other, on the same route
        half = readings[len(readings) // 2].read_at if readings else start
        track = [replace(p, reader_id=1 if p.t < half else 2) for p in track]
        readings = [replace(r, reader_id=1 if r.read_at < half else 2) for r in readings]
    elif readers < 0.5:  # the track of one reader under its id, readings of "the" reader
        track = [replace(p, reader_id=7) for p in track]
    elif readers < 0.6:  # a colleague's track too: everyone's points, readings of no one
        colleague = [replace(p, reader_id=9, lat=p.lat + 2e-4) for p in track[::3]]
        track = [*(replace(p, reader_id=7) for p in track), *colleague]
    earlier = []
    if rng.random() < 0.3 and track:
        shift = timedelta(days=rng.randint(1, 5), seconds=rng.randint(0, 900))
        earlier.append(
            EarlierTrack(
                (start - shift).date(),
                [((p.t - shift).timestamp(), p.lat, p.lon) for p in track],
                reader_id=3,
                reader="earlier",
            )
        )
    day = start.date()
    assignment = AssignmentFacts(day - timedelta(days=1), day + timedelta(days=rng.choice([-1, 1])))
    return Day(assignment, meters, readings, track, earlier)


def _flaw(rng: random.Random, p: TrackFix) -> TrackFix:
    roll = rng.random()
    if roll < 0.02:
        return replace(p, accuracy_m=150.0)  # coarse: places no one
    if roll < 0.04:
        return replace(p, provider="network", accuracy_m=rng.choice([None, 40.0]))
    if roll < 0.05:
        return replace(p, mock=True)
    if roll < 0.08:  # a jittery fix tens of metres off
        bearing = rng.uniform(0, 2 * math.pi)
        lat, lon = offset(p.lat, p.lon, 45 * math.cos(bearing), 45 * math.sin(bearing))
        return replace(p, lat=lat, lon=lon)
    if roll < 0.09:
        return replace(p, accuracy_m=None)
    return p


def _typed(rng: random.Random, r: ReadingFacts, meters: list[MeterFacts]) -> ReadingFacts:
    """Now and then a fix typed on the meter, or moved away from it."""
    if r.fix is None:
        return r
    meter = meters[r.meter_id - 1]
    roll = rng.random()
    if roll < 0.05:
        return replace(r, fix=replace(r.fix, lat=meter.lat, lon=meter.lon))
    if roll < 0.1:
        lat, lon = offset(r.fix.lat, r.fix.lon, rng.uniform(20, 200), 0.0)
        return replace(r, fix=replace(r.fix, lat=lat, lon=lon))
    return r
