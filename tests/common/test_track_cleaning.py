"""Cleaning the track before judging it: each filter on a hand-made track."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.etree import ElementTree

from common.geo import distance_m, offset
from common.rules.facts import Thresholds, Track, TrackFix, accuracy_credit
from common.rules.movement import impossible_speed
from common.rules.track_cleaning import clean_track, walked_m
from tests.factories import TODAY, local_time

START = local_time(TODAY, 9)
HOME = (30.25, 120.16)
RULES = Thresholds()


def at(
    seconds: float,
    north_m: float = 0.0,
    east_m: float = 0.0,
    accuracy_m: float | None = None,
    provider: str = "gps",
) -> TrackFix:
    lat, lon = offset(*HOME, north_m, east_m)
    return TrackFix(START + timedelta(seconds=seconds), lat, lon, accuracy_m, provider=provider)


def test_a_network_fix_a_tenth_of_a_second_after_a_gps_fix_is_not_impossible_speed() -> None:
    # The logger: 59 m in 0.12 s reads as 1,811 km/h.
    track = [at(0, accuracy_m=5.0), at(0.12, 59.0, accuracy_m=40.0, provider="network")]
    assert impossible_speed([], {}, Track(track)) == []
    assert clean_track(track, RULES) == track[:1]  # one instant: the finer fix is kept
    # Without the rule (no interval, GPS standards for network fixes) it is flagged.
    strict = Thresholds(min_judged_interval_s=0.0, network_accuracy_floor_m=0.0)
    assert [f.code for f in impossible_speed([], {}, Track(track), strict)] == ["impossible_speed"]


def test_a_network_fix_seconds_later_is_credited_the_network_floor() -> None:
    track = [at(0, accuracy_m=5.0), at(3, 200.0, accuracy_m=20.0, provider="network")]
    assert impossible_speed([], {}, Track(track)) == []
    strict = Thresholds(network_accuracy_floor_m=0.0)
    assert len(impossible_speed([], {}, Track(track), strict)) == 1


def test_a_spike_that_comes_straight_back_is_dropped() -> None:
    track = [at(0, accuracy_m=5.0), at(5, 0, 800.0, accuracy_m=5.0), at(10, 3.0, accuracy_m=5.0)]
    assert clean_track(track, RULES) == [track[0], track[2]]
    assert impossible_speed([], {}, Track(track)) == []
    assert walked_m(track, RULES) == 0.0
    # A jump that stays away is not a spike.
    stays = [*track[:2], at(10, 0, 805.0, accuracy_m=5.0)]
    assert clean_track(stays, RULES) == stays
    assert len(impossible_speed([], {}, Track(stays))) == 1


def test_a_point_coarser_than_the_limit_is_dropped() -> None:
    track = [at(0, accuracy_m=5.0), at(5, 500.0, accuracy_m=1500.0), at(10, accuracy_m=5.0)]
    assert clean_track(track, Thresholds(spike_m=10_000.0)) == [track[0], track[2]]


def test_jitter_inside_a_24_m_box_walks_about_nothing() -> None:
    # reader2 sat at home all day: the raw hops sum to kilometres.
    rng = random.Random(12)
    track = [
        at(5 * i, rng.uniform(0, 24), rng.uniform(0, 24), accuracy_m=rng.uniform(3, 15))
        for i in range(2000)
    ]
    raw = sum(distance_m(a.lat, a.lon, b.lat, b.lon) for a, b in itertools.pairwise(track))
    assert raw > 3_000
    assert walked_m(track, RULES) == 0.0


def test_a_walk_down_a_street_keeps_its_length() -> None:
    track = [at(i, 1.4 * i, accuracy_m=5.0) for i in range(1000)]  # 1.4 km at 1.4 m/s
    assert 1_360 <= walked_m(track, RULES) <= 1_400


DATA = Path(__file__).parent.parent / "data"
GPX_10 = {"g": "http://www.topografix.com/GPX/1/0"}


def recorded_track(name: str = "cerknicko-jezero.gpx") -> list[TrackFix]:
    """A real Garmin track of tests/data/README.md, as track points (no accuracy reported);
    points without a time are left out."""
    root = ElementTree.parse(DATA / name).getroot()  # noqa: S314 (our own committed test data)
    points = []
    for p in root.iterfind(".//g:trkpt", GPX_10):
        stamp = p.find("g:time", GPX_10)
        if stamp is None or stamp.text is None:
            continue
        t = datetime.fromisoformat(stamp.text.replace("Z", "+00:00"))
        points.append(TrackFix(t, float(p.attrib["lat"]), float(p.attrib["lon"])))
    return points


def test_a_real_recorded_track_keeps_its_length_when_cleaned() -> None:
    track = recorded_track()
    assert len(track) == 296
    raw = sum(distance_m(a.lat, a.lon, b.lat, b.lon) for a, b in itertools.pairwise(track))
    walked = walked_m(track, RULES)
    assert 0.9 * raw <= walked <= raw  # 13.2 of 13.7 km: corners and stops, no more


def test_a_real_recorded_track_is_judged_clean() -> None:
    # Its one jump: the first fix after a 44 s gap lies 184 m off the track it rejoins 2 s
    # later. Raw, that step is impossible; cleaned (an outlier: from before the gap to 2 s
    # after is a plausible walk), nothing is flagged.
    raw = recorded_track()
    i = next(i for i, p in enumerate(raw) if p.t == datetime(2010, 8, 5, 15, 40, tzinfo=UTC))
    b, c = raw[i], raw[i + 1]
    beyond = distance_m(b.lat, b.lon, c.lat, c.lon) - 2 * accuracy_credit(None, RULES)
    assert beyond / (c.t - b.t).total_seconds() * 3.6 > RULES.max_speed_kmh
    assert impossible_speed([], {}, Track(raw)) == []


def test_an_outlier_is_dropped_but_a_real_jump_stays() -> None:
    t0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    a = TrackFix(t0, 30.27, 120.15, 5)
    # 28 s later, 200 m aside (a plausible 26 km/h from A), then 2 s later back on the walk,
    # 80 m on from A: the step out of B is impossible, A to C is a walk. B is an outlier.
    b = TrackFix(t0 + timedelta(seconds=28), 30.27, 120.15 + 2.08e-3, 5)
    c = TrackFix(t0 + timedelta(seconds=30), 30.27 + 7.2e-4, 120.15, 5)
    assert clean_track([a, b, c], RULES) == [a, c]
    # A real jump: 3 km in 30 s is impossible from A to C too, so nothing is dropped.
    far = TrackFix(t0 + timedelta(seconds=30), 30.297, 120.15, 5)
    assert clean_track([a, b, far], RULES) == [a, b, far]
