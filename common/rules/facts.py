"""What the rules of the trade take and give: thresholds, the facts of a route-day (meters,
readings, track, window), findings, and the wording they share. Pure, on the standard library."""

from __future__ import annotations

import bisect
import itertools
import uuid
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any, Literal, TypeVar, cast

from common.rules.sentences import flag_sentence
from common.wire import Fix

Severity = Literal["info", "warn", "fail"]
T = TypeVar("T")

CODES = (
    "no_fix",
    "mock_location",
    "far_from_meter",
    "not_on_track",
    "no_dwell",
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
    "replayed_track",
    "fix_on_meter",
)

CHINA_STANDARD_TIME = timezone(timedelta(hours=8))


@dataclass(frozen=True)
class Thresholds:
    """The numbers behind the rules; every one is a setting (GRIDWALK_VALIDATION_<NAME>).

    presence_radius_m (30): how far from the meter's mapped position a reader may stand, before
        the fix's or track point's own accuracy is added (meters sit on walls, the mapped point
        is a doorway or the street in front).
    max_fix_age_s (120): a fix further than this from read_at was not taken at the reading.
    max_fix_accuracy_m (100): a fix or track point coarser than this places no one anywhere;
        it is also the most accuracy credited to any position.
    min_credited_accuracy_m (10): the least accuracy credited to any position: a phone that
        reports 1-2 m does not cover multipath off walls and the meter's own mapping error.
    grey_zone_m (20): a fix up to this much beyond the allowance (radius + accuracy + the
        meter's position uncertainty) is only a warning, to review; beyond it, a failure.
    min_dwell_s (20): the track must stay within the allowance of the meter at least this long
        around the reading (finding, reading and confirming a meter takes that; a car at
        30 km/h crosses an 80 m allowance in under 10 s). A sparse track cannot show a short
        stay: no_dwell is raised only when the points just outside the stay are themselves
        less than this apart, so the stay was surely shorter.
    learned_min_readings (3): a meter's position is learned from past cycles' fixes only when
        at least this many readings of it raised no presence flag.
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
    min_judged_interval_s (1): track points closer in time than this are one instant (a
        GPS-and-network logger reports both within a second); no speed is judged between them.
    network_accuracy_floor_m (150): the least accuracy credited to a network (non-GPS) fix, so
        it is not judged by GPS standards.
    spike_m (50): a track point more than this from the points before and after it, which are
        within this of each other, is a spike that came straight back, and is dropped.
    stationary_radius_m (35): a track point within this of the last one kept is the jitter of
        someone standing still, not a step (a 24 m box of jitter has a 34 m diagonal).
    replay_lookback_days (35): how many days before a day's track the server looks for an
        earlier track (of the same reader, device or route) that it repeats.
    replay_grid_deg (1e-5): the grid (about 1 m) to which a track's steps are rounded to find
        runs of steps that repeat; rounding a copy to ~1e-6 degrees seldom moves a step across it.
    replay_run_steps (4): how many consecutive steps make a run that is looked up.
    replay_tolerance_deg (1e-6): how far (about 0.1 m, finer than any real GPS repeats) each
        end of a step may be from the earlier track's step at the shifted times (a copy rounded
        to 6 decimals is within it; the copy may be moved as a whole).
    replay_min_points (30): fewer steps than this repeating an earlier track are no replay.
    replay_min_share (0.5): the share of the steps found at the shifted times of an earlier
        track that must repeat it (a copy with a few points dropped or added still is one).
    on_meter_m (0.5): a fix closer than this to the meter's mapped position sits on the meter's
        coordinates: real GPS is never that exact, so the position was typed or copied.
    on_meter_min_readings (3): this many fixes on the meter in one reader's day are flagged.
    mock_providers: location providers that are simulations, not satellites (the handheld's GPX
        replay and fixed sources, and mock apps that name themselves).
    """

    presence_radius_m: float = 30.0
    max_fix_age_s: float = 120.0
    max_fix_accuracy_m: float = 100.0
    min_credited_accuracy_m: float = 10.0
    grey_zone_m: float = 20.0
    min_dwell_s: float = 20.0
    learned_min_readings: int = 3
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
    min_judged_interval_s: float = 1.0
    network_accuracy_floor_m: float = 150.0
    spike_m: float = 50.0
    stationary_radius_m: float = 35.0
    replay_lookback_days: int = 35
    replay_grid_deg: float = 1e-5
    replay_run_steps: int = 4
    replay_tolerance_deg: float = 1e-6
    replay_min_points: int = 30
    replay_min_share: float = 0.5
    on_meter_m: float = 0.5
    on_meter_min_readings: int = 3
    mock_providers: tuple[str, ...] = ("mock", "simulated", "gpx", "replay", "fixed")


DEFAULT_THRESHOLDS = Thresholds()


# ------------------------------------------------------------------------------------ facts


@dataclass(frozen=True)
class LearnedPosition:
    """Where a meter probably is, from the fixes of its past honest readings: their median,
    how many readings, and the median distance of those fixes from it (their spread)."""

    lat: float
    lon: float
    readings: int
    spread_m: float


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
    # How far the mapped position may be off (the billing system's own survey), in metres.
    position_uncertainty_m: float = 0.0
    learned: LearnedPosition | None = None  # from past cycles' honest fixes

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


# Not frozen, but hashable as if it were: a frozen dataclass's __init__ sets each field through
# object.__setattr__, three times the cost, and a validation makes 6,000 points a route-day
# (bench/close_due.py). Nothing changes a point once made (dataclasses.replace makes another).
@dataclass(unsafe_hash=True, slots=True)
class TrackFix:
    """A point of a reader's GPS track."""

    t: datetime
    lat: float
    lon: float
    accuracy_m: float | None = None
    mock: bool = False
    provider: str = "gps"
    reader_id: int | None = None
    device_id: str | None = None


Stamp = tuple[float, float, float]  # (seconds since the epoch, lat, lon)


@dataclass(frozen=True)
class EarlierTrack:
    """A track of an earlier local day that a day's track may repeat: one reader's points from
    one device as (seconds since the epoch, lat, lon) in time order (30 days of a reader are
    180,000 points: plain tuples, as the rows are read, not a TrackFix each), and which
    assignment (if any) they were walked for."""

    day: date
    points: Sequence[Stamp]
    reader_id: int | None = None
    reader: str = ""  # the reader's name, for the sentence
    device_id: str | None = None
    assignment_id: int | None = None


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

    `params` are its numbers and names (JSON values), from which common.rules.sentences says it
    in any language; `message` is that sentence in English. `subject` tells apart findings that
    share code, reading and meter (the time of a track jump); `key` names the finding across
    runs, so a stored flag can be matched to it again.
    """

    code: str
    severity: Severity
    params: dict[str, Any] = field(default_factory=dict, hash=False)
    reading_id: uuid.UUID | None = None
    meter_id: int | None = None
    subject: str = ""

    @property
    def message(self) -> str:
        return flag_sentence(self.code, self.params)

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
        self._derived: dict[Hashable, Any] = {}

    def __len__(self) -> int:
        return len(self._everyone[0])

    def walks(self) -> list[list[TrackFix]]:
        """Each reader's track, in time order."""
        return list(self._walks.values())

    def walk_of(self, reader_id: int | None) -> list[TrackFix]:
        """One reader's track, in time order (empty if none)."""
        return self._walks.get(reader_id, [])

    def timed_walks(self) -> list[tuple[list[TrackFix], list[float]]]:
        """Each reader's track, in time order, with its times (seconds since the epoch)."""
        return [(ps, self._times[r]) for r, ps in self._walks.items()]

    def _walk(self, reader_id: int | None) -> tuple[list[TrackFix], list[float]]:
        if reader_id is None:
            return self._everyone
        return self._walks.get(reader_id, []), self._times.get(reader_id, [])

    def _span(self, times: list[float], center: float, seconds: float) -> tuple[int, int]:
        return (
            bisect.bisect_left(times, center - seconds),
            bisect.bisect_right(times, center + seconds),
        )

    def derived(self, key: Hashable, make: Callable[[], T]) -> T:
        """What the rules compute from this track once (the cleaned track, the points that can
        place a reader), made on first asking and kept for every later reading and rule."""
        try:
            return cast(T, self._derived[key])
        except KeyError:
            made = self._derived[key] = make()
            return made

    def window(
        self, t: datetime, seconds: float, reader_id: int | None = None
    ) -> tuple[list[TrackFix], list[float]]:
        """The points of `reader_id`'s track (None: everyone's) within `seconds` of `t`, and
        their times (seconds since the epoch)."""
        points, times = self._walk(reader_id)
        lo, hi = self._span(times, t.timestamp(), seconds)
        return points[lo:hi], times[lo:hi]

    def around(self, t: datetime, seconds: float, reader_id: int | None = None) -> list[TrackFix]:
        """The points of `reader_id`'s track (None: everyone's) within `seconds` of `t`."""
        return self.window(t, seconds, reader_id)[0]

    def nearest_first(
        self, t: datetime, seconds: float, reader_id: int | None = None
    ) -> Iterator[TrackFix]:
        """The same points as `around`, closest in time to `t` first: where the reader was at
        `t` is most likely where they were seen near the meter, so a search ends early."""
        points, times = self.window(t, seconds, reader_id)
        return (points[i] for i in nearest_first(times, t.timestamp()))

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


def nearest_first(times: Sequence[float], center: float) -> Iterator[int]:
    """The indexes of sorted `times`, closest to `center` first (of two as close, the earlier)."""
    j = bisect.bisect_left(times, center)
    i = j - 1
    hi = len(times)
    while i >= 0 or j < hi:
        if j >= hi or (i >= 0 and center - times[i] <= times[j] - center):
            yield i
            i -= 1
        else:
            yield j
            j += 1


def is_mock(mock: bool | None, provider: str | None, mock_providers: tuple[str, ...]) -> bool:
    """Whether a position came from a mock location app or a simulated provider."""
    return bool(mock) or (provider or "").lower() in mock_providers


# ------------------------------------------------------------------------------- wording
# The words themselves are common/rules/sentences.py's: the rules give it numbers, rounded here.


def rounded(value: float, places: int = 1) -> float:
    """A measure as a finding's params keep it: to a tenth, which no sentence says finer."""
    return round(value, places)


def decimal_text(value: Decimal) -> str:
    """A register or kWh figure for params (JSON has no decimals: a string keeps every digit)."""
    return format(value.normalize(), "f")


def tz_name(tz: tzinfo) -> str:
    return datetime(2000, 1, 1, tzinfo=tz).tzname() or str(tz)


def utc_text(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# ----------------------------------------------------------------------------- positions


def accuracy_credit(accuracy_m: float | None, thresholds: Thresholds) -> float:
    """The accuracy a position is credited with: its own, within what any position may claim
    (at least min_credited_accuracy_m, at most max_fix_accuracy_m)."""
    if accuracy_m is None:
        accuracy_m = thresholds.default_track_accuracy_m
    return min(max(accuracy_m, thresholds.min_credited_accuracy_m), thresholds.max_fix_accuracy_m)


def fix_problem(reading: ReadingFacts, thresholds: Thresholds) -> dict[str, Any] | None:
    """Why the reading's fix does not place the reader at read_at, as a no_fix finding's params
    without the meter (None: it does)."""
    fix = reading.fix
    if fix is None:
        return {"problem": "none"}
    age = (reading.read_at - fix.fix_time).total_seconds()
    if abs(age) > thresholds.max_fix_age_s:
        return {
            "problem": "early" if age > 0 else "late",
            "age_s": rounded(abs(age)),
            "allowed_s": thresholds.max_fix_age_s,
        }
    if fix.accuracy_m > thresholds.max_fix_accuracy_m:
        return {
            "problem": "coarse",
            "accuracy_m": rounded(fix.accuracy_m),
            "allowed_m": thresholds.max_fix_accuracy_m,
        }
    return None
