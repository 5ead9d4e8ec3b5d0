"""The rules' shortcuts give what the rules say plainly: the distance bound that spares measuring
most track steps never clears a step the distance would not, and the stay no_dwell judges, grown
from the point nearest the reading, is the one a listing of every stay picks, on varied days and
on real recorded walks (tests/common/varied_days.py, tests/data)."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from common.geo import METRES_PER_DEGREE_MAX, distance_m, offset, surely_within
from common.rules import presence
from common.rules.facts import MeterFacts, Thresholds, Track
from common.rules.presence import (
    _no_dwell,
    _off,
    _stay_judged,
    _stays,
    _Witnesses,
    no_dwell,
    not_on_track,
    on_track,
)
from common.rules.route import validate_route
from common.rules.track_cleaning import cleaned, walked_m
from common.rules.verdict import assignment_verdict
from server.demo.days import honest_day, reading_facts, street, track_facts
from server.models import Assignment
from server.validation import verdicts
from tests.common import test_presence
from tests.common.varied_days import START, varied_day

RULES = Thresholds()
DAYS = range(120)


def test_the_distance_bound_never_clears_what_the_distance_would_not() -> None:
    rng = random.Random(13)
    for _ in range(50_000):
        lat = rng.choice([rng.uniform(-89.9, 89.9), rng.choice([-89.9, 0.0, 89.9])])
        lon = rng.uniform(-180.0, 180.0)
        # due north, east or any way; a decimetre to a thousand kilometres
        bearing = rng.choice([0.0, math.pi / 2, rng.uniform(0, 2 * math.pi)])
        d = 10 ** rng.uniform(-1, 6)
        lat2, lon2 = offset(lat, lon, d * math.cos(bearing), d * math.sin(bearing))
        if abs(lat2) >= 90:
            continue
        # The tightest threshold the bound clears (it clears every larger one too).
        tightest = (abs(lat2 - lat) + abs(lon2 - lon)) * METRES_PER_DEGREE_MAX
        assert surely_within(lat, lon, lat2, lon2, tightest)
        assert distance_m(lat, lon, lat2, lon2) <= tightest, (lat, lon, lat2, lon2)


def test_a_walking_step_is_cleared_by_the_bound() -> None:
    here = (30.27, 120.15)
    step = offset(*here, 4.0, 3.0)  # 5 m in 5 s, against 120 km/h's 166 m
    assert surely_within(*here, *step, RULES.max_speed_kmh / 3.6 * 5)
    assert not surely_within(*here, *step, 4.0)


def judged_by_listing(w: _Witnesses) -> tuple[int, int] | None:
    """The stay as the rule reads: every stay listed, the nearest in time to the reading."""
    stays = _stays(w)
    return min(stays, key=lambda stay: _off(w, stay)) if stays else None


@pytest.mark.parametrize("seed", DAYS)
def test_the_stay_grown_from_the_nearest_point_is_the_one_every_stay_listed_gives(
    seed: int,
) -> None:
    day = varied_day(seed)
    track = cleaned(Track(day.track), RULES)
    meters = {m.id: m for m in day.meters}
    for r in day.readings:
        grown = _Witnesses(r, meters[r.meter_id], track, RULES)
        listed = _Witnesses(r, meters[r.meter_id], track, RULES)
        assert _stay_judged(grown) == judged_by_listing(listed), (seed, r.read_at)


def test_a_tie_in_time_is_settled_by_listing_every_stay(monkeypatch: pytest.MonkeyPatch) -> None:
    """Read halfway between two points off the meter, with a point at the meter 7.5 s either
    side: two stays as near the reading, which the walk from the nearest point cannot tell
    apart; every stay is listed and the earlier is judged, as the rule reads."""
    listings: list[_Witnesses] = []

    def listing(w: _Witnesses) -> list[tuple[int, int]]:
        listings.append(w)
        return _stays(w)

    monkeypatch.setattr(presence, "_stays", listing)
    at_meter = {-7.5, 7.5}
    track = Track(
        test_presence.at(s, 0.0 if s in at_meter else 200.0)
        for s in (k * 5 + 2.5 for k in range(-60, 60))
    )
    w = _Witnesses(test_presence.reading(), test_presence.meter_at(), track, RULES)
    first, last = _stay_judged(w)
    assert listings == [w]
    assert w.points[first].t == w.points[last].t == test_presence.at(-7.5).t
    found = on_track(test_presence.reading(), test_presence.meter_at(), track, RULES)
    assert found is not None
    assert found.code == "no_dwell"
    assert found.params["dwell_s"] == 0.0


def test_an_honest_reading_is_judged_from_the_points_of_its_stay() -> None:
    """The point of the walk: an honest day's readings measure their stays, not their windows."""
    meters = [
        MeterFacts(id=i + 1, lat=lat, lon=lon) for i, (lat, lon) in enumerate(street(40, seed=5))
    ]
    wire, wire_track = honest_day(meters, START, assignment_id=1, seed=5)
    track = cleaned(Track(track_facts(wire_track)), RULES)
    measured = window = 0
    for r in reading_facts(wire):
        w = _Witnesses(r, meters[r.meter_id - 1], track, RULES)
        assert _no_dwell(w) is None
        measured += sum(inside is not None for inside in w._inside)
        window += len(w)
    assert measured < window / 3


@pytest.mark.parametrize("seed", DAYS)
def test_on_track_says_what_not_on_track_and_no_dwell_say_alone(seed: int) -> None:
    day = varied_day(seed)
    shared = cleaned(Track(day.track), RULES)
    meters = {m.id: m for m in day.meters}
    other = cleaned(Track(day.track), RULES)  # nothing measured on it before
    for r in day.readings:
        meter = meters[r.meter_id]
        alone = [rule(r, meter, other, RULES) for rule in (not_on_track, no_dwell)]
        found = on_track(r, meter, shared, RULES)
        assert [f for f in alone if f is not None] == ([] if found is None else [found])


@pytest.mark.parametrize("walk", test_presence.WALKS)
@pytest.mark.parametrize("kmh", [None, 30.0])
def test_on_real_walks_and_drives_the_stay_grown_is_the_stay_listed(
    walk: str, kmh: float | None
) -> None:
    walked = test_presence.recorded(walk)
    spots = test_presence.reading_spots(walked)
    meters = test_presence.meters_along(walked, spots, seed=1)
    readings = test_presence.honest_readings(walked, spots, meters, 5.0)
    track = walked if kmh is None else test_presence.drive(walked, kmh, 5.0, walked[0].t)
    clean = cleaned(Track(track), RULES)
    for r, meter in zip(readings, meters, strict=True):
        for seconds in (0.0, 2.5, 60.0):
            moved = replace(r, read_at=r.read_at + timedelta(seconds=seconds))
            grown = _Witnesses(moved, meter, clean, RULES)
            listed = _Witnesses(moved, meter, clean, RULES)
            assert _stay_judged(grown) == judged_by_listing(listed)


def test_the_verdict_cleaned_with_the_rules_is_the_verdict_judged_alone() -> None:
    """verdicts.judge takes the reader's walk already cleaned for the rules when the walk is
    all of the reader's track; it must come to what judging the reader's own points alone does
    (mock points, coarse and network points, two readers, a colleague's points among them)."""
    everything = (datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC))
    shared = 0
    for seed in DAYS:
        day = varied_day(seed)
        indexed = Track(day.track)
        validate_route(day.assignment, day.meters, day.readings, indexed, RULES)  # cleans it
        for reader in sorted({p.reader_id for p in day.track}, key=str):
            assignment = Assignment(
                id=1,
                route_id=1,
                cycle_id=1,
                reader_id=reader,
                window_start=day.assignment.window_start,
                window_end=day.assignment.window_end,
            )
            times = [r.read_at for r in day.readings]
            start, end = verdicts.track_span(
                assignment.window_start, assignment.window_end, min(times), max(times)
            )
            own = sorted((p for p in day.track if p.reader_id == reader), key=lambda p: p.t)
            own = [p for p in own if start <= p.t <= end]
            shared += len(own) == len(indexed.walk_of(reader))
            alone = verdicts.Judged(
                assignment_verdict(day.meters, day.readings, own, RULES),
                round(walked_m(own, RULES)),
            )
            judged = verdicts.judge(
                None,  # type: ignore[arg-type]  # the track covers the span: nothing is read
                assignment=assignment,
                meters=day.meters,
                readings=day.readings,
                track=indexed,
                held=everything,
                thresholds=RULES,
            )
            assert judged == alone, seed
    assert shared > len(DAYS) // 2  # most days take the shared cleaning
