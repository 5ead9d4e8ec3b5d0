"""An assignment's verdict: the day in one line, on hand-made days and a real recorded walk."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

from common.geo import offset
from common.i18n import translations
from common.rules.facts import MeterFacts, ReadingFacts, Thresholds, TrackFix
from common.rules.sentences import verdict_sentence
from common.rules.verdict import assignment_verdict, nothing_yet
from common.wire import Fix
from tests.common.test_track_cleaning import HOME, START, at, recorded_track

RULES = Thresholds()


def meter(i: int, north_m: float, east_m: float = 0.0) -> MeterFacts:
    return MeterFacts(i, *offset(*HOME, north_m, east_m), meter_no=f"M{i}")


def reading_at(m: MeterFacts, seconds: float, off_m: float = 0.0) -> ReadingFacts:
    """A reading of `m` whose fix lies `off_m` east of it, taken `seconds` into the day."""
    t = START + timedelta(seconds=seconds)
    lat, lon = offset(m.lat, m.lon, 0.0, off_m)
    return ReadingFacts(
        uuid.uuid4(), m.id, t, t, t + timedelta(minutes=1), fix=Fix(lat, lon, 6.0, t)
    )


# Ten meters 100 m apart up a street, 1.5 km north of home.
STREET = [meter(i, 1500.0 + 100.0 * i) for i in range(10)]


def test_a_reader_at_home_all_day_stayed_within_a_few_metres_far_from_the_route() -> None:
    # reader2: jitter in a 24 m box for 8 h, every reading typed with the meter's coordinates.
    rng = random.Random(7)
    track = [
        at(30 * i, rng.uniform(0, 24), rng.uniform(0, 24), accuracy_m=rng.uniform(3, 15))
        for i in range(960)
    ]
    readings = [reading_at(m, 60 * i) for i, m in enumerate(STREET)]
    verdict = assignment_verdict(STREET, readings, track, RULES)
    assert verdict.code == "stayed"
    assert verdict.params["spread_m"] <= 24 * 2**0.5 / 2 + 1
    assert 1_450 <= verdict.params["away_m"] <= 1_500
    assert verdict.params["span_s"] == 30 * 959
    assert (verdict.params["at_meter"], verdict.params["exact"]) == (0, 10)
    sentence = verdict_sentence(verdict.code, verdict.params)
    assert sentence.startswith(
        f"the track stayed within {verdict.params['spread_m']:.0f} m of one spot, "
        "1.5 km from the route, for 8.0 h"
    )
    assert "0 of 10 readings placed at their meter" in sentence
    assert "10 fix(es) exactly on the meter's coordinates: typed, not measured" in sentence
    chinese = verdict_sentence(verdict.code, verdict.params, translations("zh_CN").gettext)
    assert "1.5公里" in chinese
    assert "the track" not in chinese


def test_an_honest_walk_along_the_street_passes_each_meter_and_reads_at_each() -> None:
    track = [at(i, 1500.0 + 1.0 * i, accuracy_m=5.0) for i in range(1000)]
    readings = [reading_at(m, 100 * i, off_m=4.0) for i, m in enumerate(STREET)]
    verdict = assignment_verdict(STREET, readings, track, RULES)
    assert verdict.code == "walked"
    assert verdict.params["along"] is True
    assert (verdict.params["passed"], verdict.params["at_meter"]) == (10, 10)
    assert 960 <= verdict.params["walked_m"] <= 1_000
    assert verdict_sentence(verdict.code, verdict.params) == (
        f"walked {verdict.params['walked_m']:.0f} m along the route, past 10 of 10 meters; "
        "10 of 10 readings placed at their meter by their own fix"
    )


def test_a_walk_down_another_street_is_not_along_the_route() -> None:
    track = [at(i, 0.0, 1.4 * i, accuracy_m=5.0) for i in range(1000)]  # east, not north
    verdict = assignment_verdict(STREET, [], track, RULES)
    assert (verdict.code, verdict.params["along"], verdict.params["passed"]) == ("walked", False, 0)
    assert verdict_sentence(verdict.code, verdict.params).startswith(
        "walked 1.4 km, past only 0 of 10 meters"
    )


def test_readings_without_a_track_and_a_day_without_either() -> None:
    readings = [reading_at(m, 60 * i, off_m=200.0) for i, m in enumerate(STREET[:3])]
    verdict = assignment_verdict(STREET, readings, [], RULES)
    assert (verdict.code, verdict.params["done"], verdict.params["at_meter"]) == ("no_track", 3, 0)
    assert verdict_sentence(verdict.code, verdict.params) == (
        "no track; 3 of 10 meters read or skipped; "
        "0 of 3 readings placed at their meter by their own fix"
    )
    nothing = assignment_verdict(STREET, [], [], RULES)
    assert verdict_sentence(nothing.code, nothing.params) == "nothing read and no track yet"
    # What the audit says of an assignment never validated, without running the rule.
    assert nothing_yet(len(STREET)) == nothing


def test_a_mock_track_is_no_track_and_says_so() -> None:
    track = [
        TrackFix(p.t, p.lat, p.lon, 5.0, mock=True) for p in (at(i, 1.4 * i) for i in range(50))
    ]
    verdict = assignment_verdict(STREET, [], track, RULES)
    assert (verdict.code, verdict.params["mock_points"]) == ("nothing", 50)
    assert verdict_sentence(verdict.code, verdict.params) == (
        "nothing read and no track yet; 50 track point(s) from a mock location"
    )


def test_a_real_recorded_walk_with_meters_along_it_is_walked_along_the_route() -> None:
    # tests/data/cerknicko-jezero.gpx: meters put at every 30th point of the real walk, each
    # read with the fix the walk had then (no accuracy reported: the default is credited).
    track = recorded_track()
    meters = [MeterFacts(i, p.lat, p.lon, meter_no=f"M{i}") for i, p in enumerate(track[::30])]
    readings = [
        ReadingFacts(
            uuid.uuid4(), m.id, p.t, p.t, p.t, fix=Fix(*offset(p.lat, p.lon, 3.0, 3.0), 10.0, p.t)
        )
        for m, p in zip(meters, track[::30], strict=True)
    ]
    verdict = assignment_verdict(meters, readings, track, RULES)
    assert verdict.code == "walked"
    assert verdict.params["along"] is True
    assert verdict.params["passed"] == len(meters)
    assert verdict.params["at_meter"] == len(meters)
    assert verdict.params["exact"] == 0
    assert 12_000 <= verdict.params["walked_m"] <= 13_700
