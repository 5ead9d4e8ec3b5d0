"""Cleaning a reader's track before it is judged or measured, as GPS tracking servers do
(traccar's FilterHandler): a chain of small named filters, each a generator over the previous
one, so the whole chain is one pass. Speed, presence on the track (a spike near the meter
vouches for nothing, and neither does a stay made of them) and walked distance are judged on
the cleaned track; walked distance also without standing-still jitter. Mock points are kept:
the mock rule counts them."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator

from common.geo import distance_m, surely_within
from common.rules.facts import Thresholds, Track, TrackFix, accuracy_credit

Filter = Callable[[Iterable[TrackFix], Thresholds], Iterator[TrackFix]]


def is_network(p: TrackFix, thresholds: Thresholds) -> bool:
    """A fix placed by cell towers or Wi-Fi, not satellites (mock providers are the mock rule's)."""
    provider = p.provider.lower()
    return provider != "gps" and provider not in thresholds.mock_providers


def credited_accuracy(p: TrackFix, thresholds: Thresholds) -> float:
    """The accuracy a track point is judged with: its own as any position's, and at least
    network_accuracy_floor_m for a network fix (which reports a radius it rarely keeps)."""
    credit = accuracy_credit(p.accuracy_m, thresholds)
    if is_network(p, thresholds):
        credit = max(credit, thresholds.network_accuracy_floor_m)
    return credit


def drop_coarse(points: Iterable[TrackFix], thresholds: Thresholds) -> Iterator[TrackFix]:
    """A point coarser than max_fix_accuracy_m places no one anywhere."""
    for p in points:
        if p.accuracy_m is None or p.accuracy_m <= thresholds.max_fix_accuracy_m:
            yield p


def merge_instants(points: Iterable[TrackFix], thresholds: Thresholds) -> Iterator[TrackFix]:
    """Points under min_judged_interval_s after the first of their group are one instant (a
    GPS-and-network logger reports both within a second): the finest of them is kept, so no
    speed is judged over a sub-second gap."""
    group: list[TrackFix] = []

    def finest() -> TrackFix:
        if len(group) == 1:  # the usual case: nothing to choose
            return group[0]
        return min(group, key=lambda q: credited_accuracy(q, thresholds))

    for p in points:
        if group and (p.t - group[0].t).total_seconds() >= thresholds.min_judged_interval_s:
            yield finest()
            group = []
        group.append(p)
    if group:
        yield finest()


def drop_spikes(points: Iterable[TrackFix], thresholds: Thresholds) -> Iterator[TrackFix]:
    """A -> B -> C where B is more than spike_m from both A and C, and C is back within spike_m
    of A: B is a spike (multipath, a bad network fix) and is dropped."""
    a: TrackFix | None = None
    b: TrackFix | None = None
    limit = thresholds.spike_m
    for c in points:
        if (
            a is not None
            and b is not None
            and not surely_within(a.lat, a.lon, b.lat, b.lon, limit)  # a step: most end here
            and distance_m(a.lat, a.lon, b.lat, b.lon) > limit
            and distance_m(b.lat, b.lon, c.lat, c.lon) > limit
            and distance_m(a.lat, a.lon, c.lat, c.lon) <= limit
        ):
            b = c  # B never happened; A stays the point before
            continue
        if a is not None:
            yield a
        a, b = b, c
    yield from (p for p in (a, b) if p is not None)


def _possible(a: TrackFix, b: TrackFix, thresholds: Thresholds) -> bool:
    """Whether going from `a` to `b` in the time between is within max_speed_kmh, beyond the
    two points' credited accuracy."""
    seconds = (b.t - a.t).total_seconds()
    if seconds > 0 and surely_within(
        a.lat, a.lon, b.lat, b.lon, thresholds.max_speed_kmh / 3.6 * seconds
    ):
        return True  # within reach even with no accuracy credited: most steps end here
    slack = credited_accuracy(a, thresholds) + credited_accuracy(b, thresholds)
    beyond = distance_m(a.lat, a.lon, b.lat, b.lon) - slack
    return beyond <= 0 or (seconds > 0 and beyond / seconds * 3.6 <= thresholds.max_speed_kmh)


def drop_outliers(points: Iterable[TrackFix], thresholds: Thresholds) -> Iterator[TrackFix]:
    """A -> B -> C where the step into or out of B is impossible but going straight from A to C
    is not: B is an outlier (the first fix after a gap, a stray network fix) and is dropped. A
    real jump stays, since from A to C is impossible too."""
    a: TrackFix | None = None
    b: TrackFix | None = None
    for c in points:
        if (
            a is not None
            and b is not None
            and not (_possible(a, b, thresholds) and _possible(b, c, thresholds))
            and _possible(a, c, thresholds)
        ):
            b = c  # B never happened; A stays the point before
            continue
        if a is not None:
            yield a
        a, b = b, c
    yield from (p for p in (a, b) if p is not None)


def drop_jitter(points: Iterable[TrackFix], thresholds: Thresholds) -> Iterator[TrackFix]:
    """A point within stationary_radius_m (or its credited accuracy, if larger) of the last point
    kept is the jitter of someone standing still, not a step: it is dropped."""
    last: TrackFix | None = None
    for p in points:
        if last is not None:
            radius = max(thresholds.stationary_radius_m, credited_accuracy(p, thresholds))
            if distance_m(last.lat, last.lon, p.lat, p.lon) <= radius:
                continue
        last = p
        yield p


JUDGING: tuple[Filter, ...] = (drop_coarse, merge_instants, drop_spikes, drop_outliers)
# Jitter is not dropped for judging speed (each step's accuracy already excuses it, and an
# anchor held still would merge a jump out and back into one); it is for walked distance
# (walked_on drops it after these).


def clean_track(
    points: Iterable[TrackFix], thresholds: Thresholds, filters: tuple[Filter, ...] = JUDGING
) -> list[TrackFix]:
    """One reader's track (in time order) through each filter in order, in one pass."""
    cleaned: Iterable[TrackFix] = points
    for step in filters:
        cleaned = step(cleaned, thresholds)
    return list(cleaned)


def cleaned(track: Track, thresholds: Thresholds) -> Track:
    """Each reader's track cleaned for judging, as one Track again; cleaned once per track and
    thresholds, however many rules judge it."""
    return track.derived(
        ("cleaned", thresholds),
        lambda: Track(p for walk in track.walks() for p in clean_track(walk, thresholds)),
    )


def walked_m(points: Iterable[TrackFix], thresholds: Thresholds) -> float:
    """Distance along the cleaned track without its jitter, in metres: standing still walks
    nowhere."""
    return walked_on(clean_track(points, thresholds), thresholds)


def walked_on(cleaned: Iterable[TrackFix], thresholds: Thresholds) -> float:
    """walked_m of a track clean_track has already cleaned for judging (the walking filters are
    the judging ones, then drop_jitter: a track is cleaned once for both)."""
    kept = drop_jitter(cleaned, thresholds)
    return sum(distance_m(a.lat, a.lon, b.lat, b.lon) for a, b in itertools.pairwise(kept))
