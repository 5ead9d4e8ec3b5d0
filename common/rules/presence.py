"""Presence: a reading counts as taken at the meter only if the handheld was there (its own
fix, and the track around it, long enough to read a meter); no fix, a stale one or a mock one
is flagged.

Where the meter is, is itself uncertain: the mapped position (from another day's survey, give or
take the meter's position_uncertainty_m) and, when past cycles' honest fixes agree on one, the
learned position. A position passes near the meter if it is within the allowance of either:
presence_radius_m + the position's credited accuracy + that position's own uncertainty."""

from __future__ import annotations

import bisect
import statistics
from collections.abc import Sequence
from typing import Any, NamedTuple

from common.geo import distance_m, surely_within
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
    nearest_first,
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


class Nearest(NamedTuple):  # a tuple, not a dataclass: made for thousands of points a day
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


def _places(p: TrackFix, thresholds: Thresholds) -> bool:
    """Whether a track point can place the reader: not mock, not coarse."""
    return not is_mock(p.mock, p.provider, thresholds.mock_providers) and (
        p.accuracy_m is None or p.accuracy_m <= thresholds.max_fix_accuracy_m
    )


def _placing(track: Track, thresholds: Thresholds) -> Track:
    """The points of `track` that can place the reader, sorted out once for every reading."""
    return track.derived(
        ("placing", thresholds.mock_providers, thresholds.max_fix_accuracy_m),
        lambda: Track(p for walk in track.walks() for p in walk if _places(p, thresholds)),
    )


TIE_S = 1e-3  # times closer than this to being as near the reading are taken as a tie


class _Witnesses:
    """The track points that can place the reader within track_window_s of a reading, in time
    order, each measured against the meter when a rule first asks: an honest reading is
    witnessed by the points nearest its time, so its rules measure a stay, not the window.
    not_on_track and no_dwell of one reading share them."""

    def __init__(
        self, reading: ReadingFacts, meter: MeterFacts, track: Track, thresholds: Thresholds
    ) -> None:
        self.reading, self.meter, self.thresholds = reading, meter, thresholds
        self.at = reading.read_at.timestamp()
        self.points, self.times = _placing(track, thresholds).window(
            reading.read_at, thresholds.track_window_s, reading.reader_id
        )
        self._near: list[Nearest | None] = [None] * len(self.points)
        self._inside: list[bool | None] = [None] * len(self.points)
        self._first_inside: int | None = -1  # not searched yet

    def __len__(self) -> int:
        return len(self.points)

    def near(self, i: int) -> Nearest:
        near = self._near[i]
        if near is None:
            p = self.points[i]
            credit = accuracy_credit(p.accuracy_m, self.thresholds)
            near = nearest_position(p.lat, p.lon, credit, self.meter, self.thresholds)
            self._near[i] = near
        return near

    def inside(self, i: int) -> bool:
        """Whether the i-th point is within the allowance of the meter."""
        inside = self._inside[i]
        if inside is None:
            p, meter = self.points[i], self.meter
            allowance = (
                self.thresholds.presence_radius_m
                + accuracy_credit(p.accuracy_m, self.thresholds)
                + meter.position_uncertainty_m
            )
            # Most points of a stay are well within the mapped position's allowance: cleared
            # by the bound, measured only when it cannot tell.
            inside = surely_within(p.lat, p.lon, meter.lat, meter.lon, allowance) or (
                self.near(i).beyond_m <= 0
            )
            self._inside[i] = inside
        return inside

    def first_inside(self) -> int | None:
        """The point within the allowance nearest in time to the reading (of two as near, the
        earlier), or None: where the reader was at read_at is most likely where they were seen
        near the meter, so an honest reading's search ends at once."""
        if self._first_inside == -1:
            self._first_inside = next(
                (i for i in nearest_first(self.times, self.at) if self.inside(i)), None
            )
        return self._first_inside


def not_on_track(
    reading: ReadingFacts,
    meter: MeterFacts,
    track: Track,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> Finding | None:
    """The reader's own (cleaned) track must pass within the allowance of the meter within
    track_window_s of read_at; the track is the witness a typed fix is not."""
    return _not_on_track(_Witnesses(reading, meter, track, thresholds))


def _not_on_track(w: _Witnesses) -> Finding | None:
    if w.first_inside() is not None:
        return None
    closest: Nearest | None = None
    for i in nearest_first(w.times, w.at):  # of two as close, the nearest in time
        near = w.near(i)
        if closest is None or near.distance_m < closest.distance_m:
            closest = near
    params = {
        "meter": w.meter.name,
        "window_s": w.thresholds.track_window_s,
        "radius_m": w.thresholds.presence_radius_m,
        # None: the track has no point near the reading's time at all.
        "nearest_m": None if closest is None else rounded(closest.distance_m),
    }
    if closest is not None:
        params.update(_allowance_params(closest))
    return Finding("not_on_track", "fail", params, w.reading.id, w.meter.id)


def _stays(w: _Witnesses) -> list[tuple[int, int]]:
    """The stretches (first, last index) of points within the allowance. One point outside
    between two inside is jitter of someone standing there, not a leaving: it is bridged."""
    inside = [i for i in range(len(w)) if w.inside(i)]
    stays: list[tuple[int, int]] = []
    for i in inside:
        if stays and i - stays[-1][1] <= 2:
            stays[-1] = (stays[-1][0], i)
        else:
            stays.append((i, i))
    return stays


def _stay_judged(w: _Witnesses) -> tuple[int, int] | None:
    """The stay judged for the reading: the one containing read_at, else the nearest to it in
    time (of two as near, the earlier); None if the track never came within the allowance.

    Grown from the point within the allowance nearest in time (first_inside), through points
    inside and single points outside between two inside, as `_stays` joins them: no other stay
    can be nearer, since every point of one is at least as far in time. Only when another
    point inside is as far (a tie the walk cannot settle) are all stays listed."""
    k = w.first_inside()
    if k is None:
        return None
    first = last = k
    while True:
        if first >= 1 and w.inside(first - 1):
            first -= 1
        elif first >= 2 and w.inside(first - 2):
            first -= 2
        else:
            break
    n = len(w)
    while True:
        if last + 1 < n and w.inside(last + 1):
            last += 1
        elif last + 2 < n and w.inside(last + 2):
            last += 2
        else:
            break
    # Points nearer in time than the first inside are outside (measured already); one inside
    # as near, beyond the stay, is a tie: then every stay is listed, as the rule reads.
    d = abs(w.times[k] - w.at) + TIE_S
    lo, hi = bisect.bisect_left(w.times, w.at - d), bisect.bisect_right(w.times, w.at + d)
    if any(w.inside(i) for i in range(lo, hi) if not first <= i <= last):
        return min(_stays(w), key=lambda stay: _off(w, stay))
    return first, last


def _off(w: _Witnesses, stay: tuple[int, int]) -> float:
    """How far in time a stay is from the reading: 0 if it contains read_at."""
    first, last, at = w.points[stay[0]].t, w.points[stay[1]].t, w.reading.read_at
    if first <= at <= last:
        return 0.0
    return min(abs((first - at).total_seconds()), abs((last - at).total_seconds()))


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
    return _no_dwell(_Witnesses(reading, meter, track, thresholds))


def _no_dwell(w: _Witnesses) -> Finding | None:
    stay = _stay_judged(w)
    if stay is None:
        return None  # not_on_track says it
    first, last = stay
    if first == 0 or last == len(w) - 1:
        return None  # the stay runs to the window's edge or the track's end: not short
    points = w.points
    dwell = (points[last].t - points[first].t).total_seconds()
    at_most = (points[last + 1].t - points[first - 1].t).total_seconds()
    if at_most > w.thresholds.min_dwell_s:
        return None  # it may have lasted min_dwell_s between the points (dwell < at_most)
    closest = min((w.near(i) for i in range(first, last + 1)), key=lambda near: near.distance_m)
    params = {
        "meter": w.meter.name,
        "dwell_s": rounded(dwell),
        "at_most_s": rounded(at_most),
        "needed_s": w.thresholds.min_dwell_s,
        "nearest_m": rounded(closest.distance_m),
        "radius_m": w.thresholds.presence_radius_m,
        **_allowance_params(closest),
    }
    return Finding("no_dwell", "fail", params, w.reading.id, w.meter.id)


def on_track(
    reading: ReadingFacts,
    meter: MeterFacts,
    track: Track,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> Finding | None:
    """not_on_track or no_dwell of one reading, measuring each point once for both (one at
    most is raised: no_dwell judges a stay, which not_on_track would have found)."""
    w = _Witnesses(reading, meter, track, thresholds)
    return _not_on_track(w) or _no_dwell(w)
