"""Route validation: the rules of the trade as pure functions (no database, no HTTP).

Each rule is one function named after the flag code it produces, with its thresholds as named
fields of `Thresholds`. The server's runner (server/validation.py) feeds the rules rows turned
into the small frozen facts below; tests feed them hand-made days. `validate_route` runs them all.

Decisions worth knowing:
- Presence has two witnesses. The reading's own fix (`far_from_meter`, `no_fix`) can be typed
  or faked by an app; the track recorded around the reading (`not_on_track`) is harder to fake,
  so it is checked on its own. Mock track points witness nothing.
- A superseded reading (a re-read replaced it) is still checked for presence, time and movement:
  it is the record of what the reader claimed. Consumption rules apply to the current reading of
  a meter only, since a re-read exists precisely to replace a doubtful register.
- Re-reads are ordered by a supervisor, so they are exempt from the window and from the route's
  order; they still must be taken at the meter.
- Skips (no value, a skip code) claim presence at the meter too ("the gate was locked"), so the
  presence and movement rules apply to them; consumption rules do not.
- One problem, one finding: `unchanged` is not also reported as `low_consumption`; two readings
  too close in time are `too_fast`, not also `impossible_speed`; a track teleport is one finding
  per jump however many points it spans.
"""

from __future__ import annotations

import bisect
import itertools
import math
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Literal

from common.geo import distance_m
from common.wire import Fix

Severity = Literal["info", "warn", "fail"]

CODES = (
    "no_fix",
    "mock_location",
    "far_from_meter",
    "not_on_track",
    "impossible_speed",
    "too_fast",
    "outside_window",
    "clock_skew",
    "negative_consumption",
    "high_consumption",
    "low_consumption",
    "unchanged",
    "missed",
    "wrong_meter_order",
)

CHINA_STANDARD_TIME = timezone(timedelta(hours=8))
_METRES_PER_DEGREE_MAX = 111_700.0  # a degree of latitude at the poles; of longitude, less


@dataclass(frozen=True)
class Thresholds:
    """The numbers behind the rules; every one is a setting (GRIDWALK_VALIDATION_<NAME>).

    presence_radius_m (30): how far from the meter's mapped position a reader may stand, before
        the fix's or track point's own accuracy is added (meters sit on walls, the mapped point
        is a doorway or the street in front).
    max_fix_age_s (120): a fix further than this from read_at was not taken at the reading.
    max_fix_accuracy_m (100): a fix or track point coarser than this places no one anywhere;
        it is also the most accuracy credited to any position.
    track_window_s (300): the track must pass the meter within this many seconds either side
        of read_at; also the span searched for mock track points.
    default_track_accuracy_m (20): accuracy assumed for a track point that reports none.
    max_speed_kmh (120): faster than a vehicle in town is not a reader moving.
    min_work_interval_s (15): less than this between two confirmations at different places is
        not enough to find, read and confirm a meter.
    distinct_place_m (20): readings closer than this are the same place (a meter room), so time
        and speed between them are not checked.
    clock_skew_tolerance_s (300): how far a device clock may differ from the server's.
    push_transit_s (300): extra time a push may take on a slow link (GPRS), on top of the
        tolerance, between the device stamping `sent_at` and the server receiving it.
    rollover_fraction (0.1): a register below last cycle's is a dial roll-over only if the
        wrapped consumption is at most this fraction of the dial range (or within expected_high);
        otherwise it is negative consumption.
    order_inversion_fraction (0.3): the route counts as walked out of sequence when more than
        this fraction of pairs of meters were read in the opposite order to their sequence.
    order_min_readings (5): fewer readings than this say nothing about order.
    mock_providers: location providers that are simulations, not satellites (the handheld's GPX
        replay and fixed sources, and mock apps that name themselves).
    """

    presence_radius_m: float = 30.0
    max_fix_age_s: float = 120.0
    max_fix_accuracy_m: float = 100.0
    track_window_s: float = 300.0
    default_track_accuracy_m: float = 20.0
    max_speed_kmh: float = 120.0
    min_work_interval_s: float = 15.0
    distinct_place_m: float = 20.0
    clock_skew_tolerance_s: float = 300.0
    push_transit_s: float = 300.0
    rollover_fraction: float = 0.1
    order_inversion_fraction: float = 0.3
    order_min_readings: int = 5
    mock_providers: tuple[str, ...] = ("mock", "simulated", "gpx", "replay", "fixed")


DEFAULT_THRESHOLDS = Thresholds()


# ------------------------------------------------------------------------------------ facts


@dataclass(frozen=True)
class MeterFacts:
    """A meter of the route, with what last cycle left on it and its account's state."""

    id: int
    lat: float
    lon: float
    meter_no: str = ""
    digits: int = 6
    multiplier: Decimal = Decimal(1)
    last_reading: Decimal | None = None
    expected_low: Decimal | None = None  # kWh per cycle
    expected_high: Decimal | None = None  # kWh per cycle
    sequence: int = 0
    active: bool = True  # the account is occupied / in service

    @property
    def name(self) -> str:
        return self.meter_no or f"#{self.id}"


@dataclass(frozen=True)
class ReadingFacts:
    """A confirmed reading or skip, with the push it came in (`sent_at` by the device clock)."""

    id: uuid.UUID
    meter_id: int
    read_at: datetime
    confirmed_at: datetime
    received_at: datetime
    value: Decimal | None = None
    skip_code: str | None = None
    sent_at: datetime | None = None
    fix: Fix | None = None  # the handheld's GPS fix, as the wire carries it
    superseded: bool = False  # a later re-read replaced it
    reread: bool = False  # it answers a supervisor's re-read order
    reader_id: int | None = None  # who took it; None: the one reader of the route


@dataclass(frozen=True)
class TrackFix:
    """A point of a reader's GPS track."""

    t: datetime
    lat: float
    lon: float
    accuracy_m: float | None = None
    mock: bool = False
    provider: str = "gps"
    reader_id: int | None = None


@dataclass(frozen=True)
class AssignmentFacts:
    """The window (local dates in `tz`) within which the route must be read, and its state."""

    window_start: date
    window_end: date
    tz: tzinfo = CHINA_STANDARD_TIME
    closed: bool = False

    @property
    def opens_at(self) -> datetime:
        return datetime.combine(self.window_start, time.min, tzinfo=self.tz)

    @property
    def closes_at(self) -> datetime:
        """The instant the window ends: midnight after window_end, local time."""
        return datetime.combine(self.window_end + timedelta(days=1), time.min, tzinfo=self.tz)


@dataclass(frozen=True)
class Finding:
    """One finding of the validation: what is wrong, how badly, and about which reading/meter.

    `subject` tells apart findings that share code, reading and meter (the time of a track
    jump); `key` names the finding across runs, so a stored flag can be matched to it again.
    """

    code: str
    severity: Severity
    message: str
    reading_id: uuid.UUID | None = None
    meter_id: int | None = None
    subject: str = ""

    @property
    def key(self) -> str:
        reading = "" if self.reading_id is None else str(self.reading_id)
        meter = "" if self.meter_id is None else str(self.meter_id)
        return f"{self.code}|{reading}|{meter}|{self.subject}"


# ------------------------------------------------------------------------------------ track


class Track:
    """GPS track points sorted by time per reader, so a time window is two bisections away."""

    def __init__(self, points: Iterable[TrackFix]) -> None:
        walks: dict[int | None, list[TrackFix]] = {}
        for p in points:
            walks.setdefault(p.reader_id, []).append(p)
        self._walks = {r: sorted(ps, key=lambda p: p.t) for r, ps in walks.items()}
        self._times = {r: [p.t.timestamp() for p in ps] for r, ps in self._walks.items()}
        if len(self._walks) == 1:  # the usual case: one reader
            (only,) = self._walks
            self._everyone = (self._walks[only], self._times[only])
        else:
            everyone = sorted((p for ps in self._walks.values() for p in ps), key=lambda p: p.t)
            self._everyone = (everyone, [p.t.timestamp() for p in everyone])
        self._mock_counts: dict[tuple[int | None, tuple[str, ...]], list[int]] = {}

    def __len__(self) -> int:
        return len(self._everyone[0])

    def walks(self) -> list[list[TrackFix]]:
        """Each reader's track, in time order."""
        return list(self._walks.values())

    def _walk(self, reader_id: int | None) -> tuple[list[TrackFix], list[float]]:
        if reader_id is None:
            return self._everyone
        return self._walks.get(reader_id, []), self._times.get(reader_id, [])

    def _span(self, times: list[float], center: float, seconds: float) -> tuple[int, int]:
        return (
            bisect.bisect_left(times, center - seconds),
            bisect.bisect_right(times, center + seconds),
        )

    def around(self, t: datetime, seconds: float, reader_id: int | None = None) -> list[TrackFix]:
        """The points of `reader_id`'s track (None: everyone's) within `seconds` of `t`."""
        points, times = self._walk(reader_id)
        lo, hi = self._span(times, t.timestamp(), seconds)
        return points[lo:hi]

    def nearest_first(
        self, t: datetime, seconds: float, reader_id: int | None = None
    ) -> Iterator[TrackFix]:
        """The same points as `around`, closest in time to `t` first: where the reader was at
        `t` is most likely where they were seen near the meter, so a search ends early."""
        points, times = self._walk(reader_id)
        center = t.timestamp()
        lo, hi = self._span(times, center, seconds)
        j = bisect.bisect_left(times, center, lo, hi)
        i = j - 1
        while i >= lo or j < hi:
            if j >= hi or (i >= lo and center - times[i] <= times[j] - center):
                yield points[i]
                i -= 1
            else:
                yield points[j]
                j += 1

    def mock_count(
        self, t: datetime, seconds: float, reader_id: int | None, mock_providers: tuple[str, ...]
    ) -> int:
        """How many points within `seconds` of `t` came from a mock or simulated provider."""
        points, times = self._walk(reader_id)
        counts = self._mock_counts.get((reader_id, mock_providers))
        if counts is None:  # running counts, once per reader: then any window is a subtraction
            counts = [
                0,
                *itertools.accumulate(is_mock(p.mock, p.provider, mock_providers) for p in points),
            ]
            self._mock_counts[(reader_id, mock_providers)] = counts
        lo, hi = self._span(times, t.timestamp(), seconds)
        return counts[hi] - counts[lo]


def is_mock(mock: bool | None, provider: str | None, mock_providers: tuple[str, ...]) -> bool:
    """Whether a position came from a mock location app or a simulated provider."""
    return bool(mock) or (provider or "").lower() in mock_providers


# ------------------------------------------------------------------------------- formatting


def _m(metres: float) -> str:
    if metres >= 10_000:
        return f"{metres / 1000:.0f} km"
    if metres >= 1000:
        return f"{metres / 1000:.1f} km"
    return f"{metres:.0f} m"


def _s(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _kwh(value: Decimal) -> str:
    return f"{value.normalize():,f} kWh"


def _reg(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _utc(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _tz_name(tz: tzinfo) -> str:
    return datetime(2000, 1, 1, tzinfo=tz).tzname() or str(tz)


# ------------------------------------------------------------------------------- positions


def _credit(accuracy_m: float | None, thresholds: Thresholds) -> float:
    """The accuracy a position is credited with: its own, within what any position may claim."""
    if accuracy_m is None:
        accuracy_m = thresholds.default_track_accuracy_m
    return min(accuracy_m, thresholds.max_fix_accuracy_m)


def _fix_problem(reading: ReadingFacts, thresholds: Thresholds) -> str | None:
    """Why the reading's fix does not place the reader at read_at (None: it does)."""
    fix = reading.fix
    if fix is None:
        return "has no position"
    age = (reading.read_at - fix.fix_time).total_seconds()
    if age > thresholds.max_fix_age_s:
        return (
            f"has a fix taken {_s(age)} before the reading (allowed {_s(thresholds.max_fix_age_s)})"
        )
    if -age > thresholds.max_fix_age_s:
        return (
            f"has a fix taken {_s(age)} after the reading (allowed {_s(thresholds.max_fix_age_s)})"
        )
    if fix.accuracy_m > thresholds.max_fix_accuracy_m:
        return (
            f"has a fix of accuracy {_m(fix.accuracy_m)}, too coarse to place the reader "
            f"(allowed {_m(thresholds.max_fix_accuracy_m)})"
        )
    return None


# ------------------------------------------------------------------------- presence rules


def no_fix(
    reading: ReadingFacts, meter: MeterFacts, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> Finding | None:
    """A reading must carry a fix of the moment it was taken: none, stale or coarse is flagged."""
    problem = _fix_problem(reading, thresholds)
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
            f"{mocked} track point(s) within {_s(window)} of it came from a mock location provider"
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
    if fix is None or _fix_problem(reading, thresholds) is not None:
        return None  # no_fix says it: a stale or coarse fix is no evidence either way
    d = distance_m(fix.lat, fix.lon, meter.lat, meter.lon)
    accuracy = _credit(fix.accuracy_m, thresholds)
    if d <= thresholds.presence_radius_m + accuracy:
        return None
    return Finding(
        "far_from_meter",
        "fail",
        f"fix {_m(d)} from meter {meter.name} "
        f"(allowed {_m(thresholds.presence_radius_m)} + accuracy {_m(accuracy)})",
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
        if d <= radius + _credit(p.accuracy_m, thresholds):
            return None
        nearest = min(nearest, d)
    if math.isinf(nearest):
        message = (
            f"the track has no point within {_s(window)} of the reading of meter {meter.name} "
            "(phone off, no GPS, or track not sent)"
        )
    else:
        message = (
            f"the track within {_s(window)} of the reading never came near meter "
            f"{meter.name}: nearest point {_m(nearest)} away "
            f"(allowed {_m(radius)} + its accuracy)"
        )
    return Finding("not_on_track", "fail", message, reading.id, meter.id)


# ------------------------------------------------------------------------- movement rules


def _position(
    reading: ReadingFacts, meters: Mapping[int, MeterFacts]
) -> tuple[float, float] | None:
    """Where a reading claims the reader was: at its meter (or, for an unknown meter, its fix)."""
    meter = meters.get(reading.meter_id)
    if meter is not None:
        return meter.lat, meter.lon
    if reading.fix is not None:
        return reading.fix.lat, reading.fix.lon
    return None


def _by_reader(readings: Iterable[ReadingFacts]) -> list[list[ReadingFacts]]:
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
    for walk in _by_reader(readings):
        for a, b in itertools.pairwise(walk):
            pa, pb = _position(a, meters), _position(b, meters)
            if pa is None or pb is None:
                continue
            d = distance_m(pa[0], pa[1], pb[0], pb[1])
            if d > thresholds.distinct_place_m:
                yield a, b, d


def _name(meters: Mapping[int, MeterFacts], meter_id: int) -> str:
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
                f"meter {_name(meters, b.meter_id)} confirmed {_s(gap)} after meter "
                f"{_name(meters, a.meter_id)}, {_m(d)} away "
                f"(a reading takes at least {_s(thresholds.min_work_interval_s)})",
                b.id,
                b.meter_id,
            )
        )
    return findings


def _speed_kmh(metres: float, seconds: float) -> float:
    return math.inf if seconds <= 0 else metres / seconds * 3.6


def _kmh(speed: float) -> str:
    return "instantly" if math.isinf(speed) else f"{speed:,.0f} km/h"


def impossible_speed(
    readings: Sequence[ReadingFacts],
    meters: Mapping[int, MeterFacts],
    track: Track,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> list[Finding]:
    """Moving faster than max_speed_kmh between consecutive readings, or between consecutive
    track points beyond their accuracy, is flagged: one finding per reading, one per track jump."""
    limit = thresholds.max_speed_kmh
    findings = []
    for a, b, d in _consecutive_places(readings, meters, thresholds):
        if _too_quick(a, b, thresholds):
            continue  # too_fast says it
        dt = (b.read_at - a.read_at).total_seconds()
        speed = _speed_kmh(d, dt)
        if speed <= limit:
            continue
        findings.append(
            Finding(
                "impossible_speed",
                "fail",
                f"reading of meter {_name(meters, b.meter_id)} is {_m(d)} from the previous "
                f"reading (meter {_name(meters, a.meter_id)}) {_s(dt)} earlier: "
                f"{_kmh(speed)} (limit {limit:.0f} km/h)",
                b.id,
                b.meter_id,
            )
        )
    for walk in track.walks():
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
        how = "" if len(run) == 1 else f"; {len(run)} steps in a row were too fast"
        findings.append(
            Finding(
                "impossible_speed",
                "warn",
                f"track jumped {_m(d)} in {_s(dt)} at {_utc(worst[0].t)}: "
                f"{_kmh(speed)} (limit {limit:.0f} km/h){how}",
                subject=f"track:{reader}{start.t.astimezone(UTC):%Y-%m-%dT%H:%M:%S}",
            )
        )
        run.clear()

    limit_m_s = limit / 3.6
    for a, b in itertools.pairwise(walk):
        dt = (b.t - a.t).total_seconds()
        # A degree is at most this long in any direction, so most steps of a walk are cleared
        # without measuring them.
        if (abs(b.lat - a.lat) + abs(b.lon - a.lon)) * _METRES_PER_DEGREE_MAX <= limit_m_s * dt:
            close_run()
            continue
        d = distance_m(a.lat, a.lon, b.lat, b.lon)
        slack = _credit(a.accuracy_m, thresholds) + _credit(b.accuracy_m, thresholds)
        speed = _speed_kmh(d - slack, dt) if d > slack else 0.0
        if speed > limit:
            run.append((a, b, d, dt, _speed_kmh(d, dt)))
        else:
            close_run()
    close_run()
    return findings


# ----------------------------------------------------------------------------- time rules


def outside_window(
    reading: ReadingFacts,
    meter: MeterFacts,
    assignment: AssignmentFacts,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> Finding | None:
    """A reading taken before window_start or after window_end (local dates) is flagged."""
    if reading.reread:
        return None  # a supervisor ordered it, whenever that was
    day = reading.read_at.astimezone(assignment.tz).date()
    if assignment.window_start <= day <= assignment.window_end:
        return None
    where = "before" if day < assignment.window_start else "after"
    return Finding(
        "outside_window",
        "warn",
        f"meter {meter.name} read on {day.isoformat()} ({_tz_name(assignment.tz)}), {where} "
        f"the window {assignment.window_start.isoformat()} to {assignment.window_end.isoformat()}",
        reading.id,
        meter.id,
    )


def clock_skew(
    reading: ReadingFacts, meter: MeterFacts, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> Finding | None:
    """A device clock off from the server's beyond tolerance (its push's sent_at against
    received_at, or a reading dated after the server received it) is flagged; a reading synced
    days after it was taken is offline work, not skew."""
    tolerance = thresholds.clock_skew_tolerance_s
    reasons = []
    if reading.sent_at is not None:
        lag = (reading.received_at - reading.sent_at).total_seconds()
        if lag > tolerance + thresholds.push_transit_s:
            reasons.append(
                f"its push was stamped {_s(lag)} before the server received it "
                f"(allowed {_s(tolerance + thresholds.push_transit_s)} for clock and transit): "
                "the device clock is behind"
            )
        elif -lag > tolerance:
            reasons.append(
                f"its push was stamped {_s(lag)} after the server received it "
                f"(allowed {_s(tolerance)}): the device clock is ahead"
            )
    ahead = (max(reading.read_at, reading.confirmed_at) - reading.received_at).total_seconds()
    if ahead > tolerance:
        reasons.append(
            f"it is dated {_s(ahead)} after the server received it (allowed {_s(tolerance)})"
        )
    if not reasons:
        return None
    return Finding(
        "clock_skew",
        "warn",
        f"reading of meter {meter.name}: {'; '.join(reasons)}",
        reading.id,
        meter.id,
    )


# ---------------------------------------------------------------------- consumption rules


def consumption(
    value: Decimal,
    last: Decimal,
    digits: int,
    multiplier: Decimal,
    *,
    rollover_fraction: Decimal | float = Decimal("0.1"),
    expected_high: Decimal | None = None,
) -> Decimal:
    """Consumption in kWh from last cycle's register to this one on an N-dial meter.

    A register below the last one is a roll-over (999990 -> 000010 is +20 on six dials) when the
    wrapped consumption is plausible: at most `rollover_fraction` of the dial range, or within
    `expected_high`. Otherwise the result is negative: the register went backwards.
    """
    units = value - last
    if units < 0:
        dial_range = Decimal(10) ** digits
        wrapped = units + dial_range
        plausible = wrapped <= dial_range * Decimal(str(rollover_fraction)) or (
            expected_high is not None and wrapped * multiplier <= expected_high
        )
        if plausible:
            units = wrapped
    return units * multiplier


def _consumption(
    reading: ReadingFacts, meter: MeterFacts, thresholds: Thresholds
) -> Decimal | None:
    """The consumption the consumption rules judge, or None when they have nothing to judge."""
    if reading.value is None or reading.superseded or meter.last_reading is None:
        return None
    return consumption(
        reading.value,
        meter.last_reading,
        meter.digits,
        meter.multiplier,
        rollover_fraction=thresholds.rollover_fraction,
        expected_high=meter.expected_high,
    )


def negative_consumption(
    reading: ReadingFacts, meter: MeterFacts, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> Finding | None:
    """A register below last cycle's that is not a plausible dial roll-over is flagged."""
    used = _consumption(reading, meter, thresholds)
    if used is None or used >= 0:
        return None
    assert reading.value is not None
    assert meter.last_reading is not None
    return Finding(
        "negative_consumption",
        "fail",
        f"meter {meter.name} reads {_reg(reading.value)}, below last cycle's "
        f"{_reg(meter.last_reading)}: {_kwh(used)} (not a roll-over of its {meter.digits} dials)",
        reading.id,
        meter.id,
    )


def high_consumption(
    reading: ReadingFacts, meter: MeterFacts, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> Finding | None:
    """Consumption above the account's expected_high for a cycle is flagged."""
    used = _consumption(reading, meter, thresholds)
    if used is None or meter.expected_high is None or used <= meter.expected_high:
        return None
    return Finding(
        "high_consumption",
        "warn",
        f"meter {meter.name} used {_kwh(used)} this cycle, above the expected "
        f"{_kwh(meter.expected_high)} at most",
        reading.id,
        meter.id,
    )


def low_consumption(
    reading: ReadingFacts, meter: MeterFacts, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> Finding | None:
    """Consumption below the active account's expected_low for a cycle is flagged (an unchanged
    register is `unchanged`, a backwards one `negative_consumption`)."""
    used = _consumption(reading, meter, thresholds)
    if used is None or meter.expected_low is None or not meter.active:
        return None
    if used <= 0 or used >= meter.expected_low:
        return None
    return Finding(
        "low_consumption",
        "warn",
        f"meter {meter.name} used {_kwh(used)} this cycle, below the expected "
        f"{_kwh(meter.expected_low)} at least",
        reading.id,
        meter.id,
    )


def unchanged(
    reading: ReadingFacts, meter: MeterFacts, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> Finding | None:
    """The same register as last cycle on an active account is flagged: the mark of an estimated
    reading (估抄). It fails where the account usually uses power, warns where it may not."""
    if (
        reading.value is None
        or reading.superseded
        or meter.last_reading is None
        or not meter.active
        or reading.value != meter.last_reading
    ):
        return None
    low = meter.expected_low
    usually_uses = low is not None and low > 0
    usage = f" that usually uses at least {_kwh(low)}" if low is not None and low > 0 else ""
    return Finding(
        "unchanged",
        "fail" if usually_uses else "warn",
        f"meter {meter.name} reads {_reg(reading.value)}, unchanged since last cycle, on an "
        f"active account{usage}",
        reading.id,
        meter.id,
    )


# --------------------------------------------------------------------------- route rules


def missed(
    assignment: AssignmentFacts,
    meters: Sequence[MeterFacts],
    readings: Sequence[ReadingFacts],
    now: datetime | None = None,
) -> list[Finding]:
    """At the window's close (the assignment closed, or its window over), every meter of the route
    with neither a reading nor a skip is flagged (漏抄)."""
    if not (assignment.closed or (now is not None and now >= assignment.closes_at)):
        return []
    done = {r.meter_id for r in readings}
    window = f"{assignment.window_start.isoformat()} to {assignment.window_end.isoformat()}"
    return [
        Finding(
            "missed",
            "fail",
            f"meter {m.name} (sequence {m.sequence}) has neither a reading nor a skip at the "
            f"close of the window {window}",
            meter_id=m.id,
        )
        for m in sorted(meters, key=lambda m: (m.sequence, m.id))
        if m.id not in done
    ]


def _inversions(values: list[int]) -> int:
    """Pairs out of order in `values` (merge sort, n log n)."""
    if len(values) < 2:
        return 0
    mid = len(values) // 2
    left, right = sorted(values[:mid]), sorted(values[mid:])
    count = _inversions(values[:mid]) + _inversions(values[mid:])
    for v in right:
        count += len(left) - bisect.bisect_right(left, v)
    return count


def wrong_meter_order(
    meters: Sequence[MeterFacts],
    readings: Sequence[ReadingFacts],
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> list[Finding]:
    """A route walked far from its sequence (more than order_inversion_fraction of pairs of
    meters read in reverse order) is noted, once per assignment."""
    sequence = {m.id: m.sequence for m in meters}
    taken = sorted(
        (r for r in readings if not r.reread and r.meter_id in sequence),
        key=lambda r: (r.read_at, r.confirmed_at, str(r.id)),
    )
    n = len(taken)
    if n < max(2, thresholds.order_min_readings):
        return []
    pairs = n * (n - 1) // 2
    inverted = _inversions([sequence[r.meter_id] for r in taken])
    if inverted <= thresholds.order_inversion_fraction * pairs:
        return []
    return [
        Finding(
            "wrong_meter_order",
            "info",
            f"route walked far from its sequence: {inverted:,} of {pairs:,} pairs of meters "
            f"read in reverse order ({inverted / pairs:.0%}; more than "
            f"{thresholds.order_inversion_fraction:.0%} is noted)",
        )
    ]


# ------------------------------------------------------------------------------- all rules


def validate_route(
    assignment: AssignmentFacts,
    meters: Sequence[MeterFacts],
    readings: Sequence[ReadingFacts],
    track: Sequence[TrackFix] | Track,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    now: datetime | None = None,
) -> list[Finding]:
    """Every rule on one assignment: its route's meters, its readings, its reader's track."""
    indexed = track if isinstance(track, Track) else Track(track)
    by_id = {m.id: m for m in meters}
    findings: list[Finding] = []
    for r in sorted(readings, key=lambda r: (r.read_at, r.confirmed_at, str(r.id))):
        meter = by_id.get(r.meter_id) or MeterFacts(id=r.meter_id, lat=math.nan, lon=math.nan)
        on_route = r.meter_id in by_id
        for found in (
            no_fix(r, meter, thresholds),
            mock_location(r, meter, indexed, thresholds),
            far_from_meter(r, meter, thresholds) if on_route else None,
            not_on_track(r, meter, indexed, thresholds) if on_route else None,
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
    return findings
