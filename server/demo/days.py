"""Reader-days for tests, benches and the demo: pure functions that return what a handheld would
push (dicts with the fields of server.schemas.wire.ReadingIn and TrackPointIn), seeded, so a day is
the same every run.

A meter here is anything with `id`, `lat`, `lon` and optionally `last_reading`, `expected_low`,
`expected_high`, `digits`, `multiplier` (a server Meter, a MeterOut, a MeterFacts).
`reading_facts` and `track_facts` turn a day into what common.rules's rules take.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import gpxpy.gpx

from common.geo import distance_m, offset
from common.rules.facts import ReadingFacts, TrackFix
from common.wire import Fix
from server.schemas.wire import ReadingIn, TrackPointIn

STEP_S = 5  # a track point every 5 s
WALK_M_S = (1.0, 1.4)  # a reader walks at about 1.2 m/s
DWELL_S = (30.0, 90.0)  # finding, reading and confirming a meter
ACCURACY_M = (4.0, 10.0)  # a handheld's GPS outdoors

Wire = dict[str, Any]


def street(
    n: int,
    *,
    start: tuple[float, float] = (30.2741, 120.1551),
    spacing_m: tuple[float, float] = (70.0, 110.0),
    seed: int = 0,
) -> list[tuple[float, float]]:
    """`n` meter positions along a gently winding street, `spacing_m` apart."""
    rng = random.Random(seed)
    heading = rng.uniform(0, 2 * math.pi)
    lat, lon = start
    spots = [(lat, lon)]
    for _ in range(n - 1):
        heading += rng.uniform(-0.35, 0.35)
        step = rng.uniform(*spacing_m)
        lat, lon = offset(lat, lon, step * math.cos(heading), step * math.sin(heading))
        spots.append((lat, lon))
    return spots


def _iso(t: datetime) -> str:
    return t.isoformat()


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _noisy(lat: float, lon: float, accuracy: float, rng: random.Random) -> tuple[float, float]:
    """A GPS position near (lat, lon): error about half the accuracy per axis, at most 1.5 times
    the accuracy (an honest receiver's reported accuracy is roughly its 68 % radius)."""
    north, east = rng.gauss(0, accuracy / 2), rng.gauss(0, accuracy / 2)
    r = math.hypot(north, east)
    if r > 1.5 * accuracy:
        north, east = north * 1.5 * accuracy / r, east * 1.5 * accuracy / r
    return offset(lat, lon, north, east)


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def plausible_value(meter: Any, rng: random.Random) -> str:
    """A register this cycle: last cycle's plus a consumption inside the expected range."""
    last = _dec(getattr(meter, "last_reading", None))
    if last is None:
        return f"{rng.uniform(1000, 9000):.1f}"
    low = _dec(getattr(meter, "expected_low", None)) or Decimal(50)
    high = _dec(getattr(meter, "expected_high", None)) or Decimal(400)
    multiplier = _dec(getattr(meter, "multiplier", None)) or Decimal(1)
    digits = int(getattr(meter, "digits", 6) or 6)
    margin = (high - low) / 10
    kwh = Decimal(str(rng.uniform(float(low + margin), float(high - margin))))
    value = (last + kwh / multiplier) % (Decimal(10) ** digits)
    return format(value.quantize(Decimal("0.1")), "f")


@dataclass(frozen=True)
class _Leg:
    t0: datetime
    t1: datetime
    a: tuple[float, float]
    b: tuple[float, float]

    def at(self, t: datetime) -> tuple[float, float]:
        span = (self.t1 - self.t0).total_seconds()
        f = 0.0 if span <= 0 else (t - self.t0).total_seconds() / span
        return self.a[0] + (self.b[0] - self.a[0]) * f, self.a[1] + (self.b[1] - self.a[1]) * f


def _sample(
    legs: Sequence[_Leg], rng: random.Random, *, mock: bool, provider: str = "gps"
) -> list[Wire]:
    """Track points every STEP_S seconds along the legs, with GPS noise."""
    points = []
    t = legs[0].t0
    i = 0
    while t <= legs[-1].t1:
        while legs[i].t1 < t:
            i += 1
        accuracy = rng.uniform(*ACCURACY_M)
        lat, lon = _noisy(*legs[i].at(t), accuracy, rng)
        points.append(
            {
                "t": _iso(t),
                "lat": round(lat, 7),
                "lon": round(lon, 7),
                "accuracy_m": round(accuracy, 1),
                "provider": provider,
                "mock": mock,
            }
        )
        t += timedelta(seconds=STEP_S)
    return points


def _reading(
    rng: random.Random,
    *,
    assignment_id: int,
    meter: Any,
    read_at: datetime,
    confirmed_at: datetime,
    fix: tuple[float, float, float, datetime] | None,
    value: str | None,
    skip_code: str | None,
    mock: bool,
) -> Wire:
    body: Wire = {
        "id": _uuid(rng),
        "assignment_id": assignment_id,
        "meter_id": meter.id,
        "value": value,
        "skip_code": skip_code,
        "read_at": _iso(read_at),
        "confirmed_at": _iso(confirmed_at),
        "fix": None,
        "reread_of": None,
    }
    if fix is not None:
        lat, lon, accuracy, fix_time = fix
        body["fix"] = {
            "lat": round(lat, 7),
            "lon": round(lon, 7),
            "accuracy_m": round(accuracy, 1),
            "fix_time": _iso(fix_time),
            "provider": "gps",
            "mock": mock,
        }
    return body


def honest_day(
    meters: Sequence[Any],
    start: datetime,
    *,
    assignment_id: int,
    seed: int = 0,
    mock: bool = False,
    phone_off: tuple[int, int] | None = None,
    values: Mapping[Any, str] | None = None,
    skips: Mapping[Any, str] | None = None,
) -> tuple[list[Wire], list[Wire]]:
    """A reader walks to each meter in the order given, stands there 30-90 s, reads and confirms
    it, and walks on at about 1.2 m/s; the handheld records a point every 5 s.

    mock: every fix and point comes from a mock location provider.
    phone_off=(k, n): the phone is off from leaving the meter before index k until arriving at
        index k + n, so meters k .. k+n-1 are read with no track (their fixes still come).
    values / skips: by meter id, the register to enter, or the skip code to confirm instead.
    """
    rng = random.Random(seed)
    values = values or {}
    skips = skips or {}
    legs: list[_Leg] = []
    readings: list[Wire] = []
    arrivals: list[datetime] = []
    departures: list[datetime] = []
    t = start
    here: tuple[float, float] | None = None
    for meter in meters:
        bearing = rng.uniform(0, 2 * math.pi)
        step = rng.uniform(1, 5)  # the reader stands a few metres from the mapped meter
        spot = offset(meter.lat, meter.lon, step * math.cos(bearing), step * math.sin(bearing))
        if here is not None:
            walk_s = distance_m(*here, *spot) / rng.uniform(*WALK_M_S)
            legs.append(_Leg(t, t + timedelta(seconds=walk_s), here, spot))
            t += timedelta(seconds=walk_s)
        arrivals.append(t)
        dwell = rng.uniform(*DWELL_S)
        legs.append(_Leg(t, t + timedelta(seconds=dwell), spot, spot))
        read_at = t + timedelta(seconds=rng.uniform(5, dwell - 22))
        confirmed_at = read_at + timedelta(seconds=rng.uniform(8, 15))
        accuracy = rng.uniform(*ACCURACY_M)
        fix_lat, fix_lon = _noisy(*spot, accuracy, rng)
        fix_time = read_at - timedelta(seconds=rng.uniform(0.5, 3))
        skip = skips.get(meter.id)
        readings.append(
            _reading(
                rng,
                assignment_id=assignment_id,
                meter=meter,
                read_at=read_at,
                confirmed_at=confirmed_at,
                fix=(fix_lat, fix_lon, accuracy, fix_time),
                value=None if skip else values.get(meter.id) or plausible_value(meter, rng),
                skip_code=skip,
                mock=mock,
            )
        )
        t += timedelta(seconds=dwell)
        departures.append(t)
        here = spot
    track = _sample(legs, rng, mock=mock)
    if phone_off is not None:
        k, n = phone_off
        off = departures[k - 1] if k > 0 else start - timedelta(seconds=1)
        on = arrivals[k + n] if k + n < len(arrivals) else t + timedelta(seconds=1)
        track = [p for p in track if not off < datetime.fromisoformat(p["t"]) < on]
    return readings, track


def home_day(
    meters: Sequence[Any],
    start: datetime,
    *,
    assignment_id: int,
    home: tuple[float, float],
    seed: int = 0,
    unchanged_every: int = 3,
) -> tuple[list[Wire], list[Wire]]:
    """A reader who stays at `home` and types the readings: every fix typed to the meter's mapped
    position, 30-60 s apart; the handheld's track sits at home all the while. Every
    `unchanged_every`-th meter (from the first) gets last cycle's register again (估抄)."""
    rng = random.Random(seed)
    readings = []
    t = start
    for i, meter in enumerate(meters):
        t += timedelta(seconds=rng.uniform(30, 60))
        last = _dec(getattr(meter, "last_reading", None))
        copy = unchanged_every > 0 and i % unchanged_every == 0 and last is not None
        readings.append(
            _reading(
                rng,
                assignment_id=assignment_id,
                meter=meter,
                read_at=t,
                confirmed_at=t + timedelta(seconds=rng.uniform(5, 10)),
                fix=(meter.lat, meter.lon, 5.0, t - timedelta(seconds=1)),
                value=format(last, "f")
                if copy and last is not None
                else plausible_value(meter, rng),
                skip_code=None,
                mock=False,
            )
        )
    pad = timedelta(minutes=10)
    track = _sample([_Leg(start - pad, t + pad, home, home)], rng, mock=False)
    return readings, track


def teleport(track: Sequence[Wire], index: int, *, km: float = 5.0) -> list[Wire]:
    """The track with its points from `index` on moved `km` east and the point before it
    dropped: one jump of `km` in two track steps (10 s), and the track stays there (a single
    point that comes straight back is a spike, which the rules clean away before judging)."""
    moved = []
    for p in track[index:]:
        q = dict(p)
        q["lat"], q["lon"] = offset(q["lat"], q["lon"], 0.0, km * 1000)
        moved.append(q)
    return [*track[: index - 1], *moved]


def reading_facts(
    wire: Iterable[Wire],
    *,
    sync_after: timedelta = timedelta(seconds=30),
    stamp_early: timedelta = timedelta(seconds=2),
    superseded: Collection[str] = (),
) -> list[ReadingFacts]:
    """What the server holds for pushed readings, as the rules see it: each received
    `sync_after` its confirmation, in a push the device stamped `stamp_early` before that."""
    out = []
    for w in wire:
        r = ReadingIn.model_validate(w)
        received_at = r.confirmed_at + sync_after
        fix = r.fix
        out.append(
            ReadingFacts(
                id=r.id,
                meter_id=r.meter_id,
                read_at=r.read_at,
                confirmed_at=r.confirmed_at,
                received_at=received_at,
                value=r.value,
                skip_code=r.skip_code,
                sent_at=received_at - stamp_early,
                fix=None
                if fix is None
                else Fix(fix.lat, fix.lon, fix.accuracy_m, fix.fix_time, fix.provider, fix.mock),
                superseded=str(r.id) in superseded,
                reread=r.reread_of is not None,
            )
        )
    return out


def track_facts(wire: Iterable[Wire]) -> list[TrackFix]:
    """Pushed track points as the rules see them."""
    out = []
    for w in wire:
        p = TrackPointIn.model_validate(w)
        out.append(TrackFix(p.t, p.lat, p.lon, p.accuracy_m, p.mock, p.provider))
    return out


def walk_gpx(meters: Sequence[Any], start: datetime, *, seed: int = 0) -> str:
    """An honest walk along `meters` (in the order given) as GPX, for a handheld's replay."""
    _, track = honest_day(meters, start, assignment_id=0, seed=seed)
    gpx = gpxpy.gpx.GPX()
    gpx.creator = "Gridwalk"
    segment = gpxpy.gpx.GPXTrackSegment()
    gpx.tracks.append(gpxpy.gpx.GPXTrack(name="Gridwalk demo walk"))
    gpx.tracks[0].segments.append(segment)
    for p in track:
        segment.points.append(
            gpxpy.gpx.GPXTrackPoint(p["lat"], p["lon"], time=datetime.fromisoformat(p["t"]))
        )
    return gpx.to_xml(version="1.1")
