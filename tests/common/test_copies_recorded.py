"""Copied positions on real recorded walks (tests/data/README.md): yesterday's real track replayed
today, the same real track pushed by two readers on two routes, and honest real days."""

from __future__ import annotations

import dataclasses
import random
from datetime import datetime, timedelta

import pytest

from common.geo import offset
from common.rules.copies import replayed_track, replayed_tracks, stamps
from common.rules.facts import (
    AssignmentFacts,
    EarlierTrack,
    MeterFacts,
    ReadingFacts,
    Track,
    TrackFix,
)
from common.rules.route import validate_route
from tests.common.test_copies import moves
from tests.common.test_presence import honest_readings, meters_along, reading_spots
from tests.common.test_track_cleaning import recorded_track
from tests.factories import LOCAL, TODAY, WINDOW_END, WINDOW_START, local_time

WALKS = ("cerknicko-jezero.gpx", "korita-zbevnica.gpx")
YESTERDAY = TODAY - timedelta(days=1)
DAY = timedelta(days=1)
WINDOW = AssignmentFacts(WINDOW_START, WINDOW_END)


def walked(name: str, start: datetime, reader_id: int = 1) -> list[TrackFix]:
    """The real recording moved (by whole seconds) to begin at `start`, as `reader_id`'s."""
    track = recorded_track(name)
    shift = timedelta(seconds=round((start - track[0].t).total_seconds()))
    return [dataclasses.replace(p, t=p.t + shift, reader_id=reader_id) for p in track]


def shifted(track: list[TrackFix], by: timedelta, reader_id: int = 1) -> list[TrackFix]:
    return [dataclasses.replace(p, t=p.t + by, reader_id=reader_id) for p in track]


def rewalked(track: list[TrackFix], by: timedelta, seed: int) -> list[TrackFix]:
    """The same path walked again `by` later: each fix a few metres off (GPS error), at a pace
    a few percent different, so no instant and no position repeats."""
    rng = random.Random(seed)
    t0, pace = track[0].t, rng.uniform(0.93, 0.97)
    return [
        dataclasses.replace(
            p,
            t=t0 + by + timedelta(seconds=round((p.t - t0).total_seconds() * pace)),
            lat=offset(p.lat, p.lon, rng.gauss(0, 3), rng.gauss(0, 3))[0],
            lon=offset(p.lat, p.lon, rng.gauss(0, 3), rng.gauss(0, 3))[1],
        )
        for p in track
    ]


def meters_and_readings(track: list[TrackFix]) -> tuple[list[MeterFacts], list[ReadingFacts]]:
    """Meters along a real walk where a reader honestly reads one (test_presence's spots: at
    walking pace, not where cerknicko was ridden), each read at the moment the walker was there,
    with the fix where the recorder was, a few metres off the meter as a real fix is."""
    spots = reading_spots(track)
    meters = meters_along(track, spots, seed=len(track))
    readings = honest_readings(track, spots, meters, accuracy_m=8.0)
    return meters, [
        dataclasses.replace(r, reader_id=track[i].reader_id)
        for r, i in zip(readings, spots, strict=True)
    ]


@pytest.mark.parametrize("name", WALKS)
def test_yesterdays_real_track_replayed_today_is_flagged_with_yesterday(name: str) -> None:
    earlier = walked(name, local_time(YESTERDAY, 9))
    today = shifted(earlier, DAY)  # the mock flag off: nothing but the copy tells
    assert not any(p.mock for p in today)
    findings = replayed_tracks(
        Track(today),
        [EarlierTrack(YESTERDAY, stamps(earlier), 1, "reader1", "device-0001", 41)],
        LOCAL,
    )
    (finding,) = findings
    assert finding.code == "replayed_track"
    assert finding.severity == "fail"
    assert finding.params == {
        "day": TODAY.isoformat(),
        "copied_day": YESTERDAY.isoformat(),
        "assignment": 41,
        "shift_s": 86_400,
        "repeated": moves(today),
        "points": len(today),
        "reader": None,
        "device": "device-0001",  # today's points carry no device: it is named
    }


@pytest.mark.parametrize("name", WALKS)
def test_the_whole_real_day_through_every_rule_is_flagged_replayed(name: str) -> None:
    earlier = walked(name, local_time(YESTERDAY, 9))
    today = shifted(earlier, DAY)
    meters, readings = meters_and_readings(today)
    findings = validate_route(
        WINDOW, meters, readings, today, earlier=[EarlierTrack(YESTERDAY, stamps(earlier), 1)]
    )
    # The readings were taken where the track went: only the copy gives the day away.
    assert [f.code for f in findings] == ["replayed_track"]


@pytest.mark.parametrize("name", WALKS)
def test_the_same_real_track_on_two_routes_by_two_readers_is_caught(name: str) -> None:
    first = walked(name, local_time(YESTERDAY, 9), reader_id=1)
    second = shifted(first, DAY + timedelta(minutes=47), reader_id=2)
    # Reader 2 reads route B: the copy of reader 1's walk of route A, moved onto B's streets.
    moved = [
        dataclasses.replace(p, lat=lat, lon=lon)
        for p in second
        for lat, lon in [offset(p.lat, p.lon, 2_500.0, -1_200.0)]
    ]
    for copy in (second, moved):
        other = EarlierTrack(YESTERDAY, stamps(first), 1, "reader1", "device-0001", 41)
        (finding,) = replayed_tracks(Track(copy), [other], LOCAL)
        assert finding.params["reader"] == "reader1"
        assert finding.params["shift_s"] == 86_400 + 47 * 60
        assert finding.params["repeated"] >= 0.95 * len(copy)
        assert "(assignment 41; reader reader1; device device-0001)" in finding.message


@pytest.mark.parametrize("name", WALKS)
def test_a_real_replay_rounded_with_points_dropped_is_still_caught(name: str) -> None:
    earlier = walked(name, local_time(YESTERDAY, 9))
    rng = random.Random(8)
    today = [
        dataclasses.replace(p, lat=round(p.lat, 6), lon=round(p.lon, 6))
        for p in shifted(earlier, DAY)
        if rng.random() > 0.1
    ]
    found = replayed_track(today, [EarlierTrack(YESTERDAY, stamps(earlier))])
    assert found is not None
    assert found[1] == 86_400
    assert found[2] >= 0.9 * len(today)


def test_honest_real_days_are_clean() -> None:
    # Each real walk today, against the other real walk and a walk of the same path yesterday
    # (a few metres of GPS error, another pace) as the earlier days: nothing is a copy, and
    # every rule passes the real day.
    for name, other in (WALKS, WALKS[::-1]):
        today = walked(name, local_time(TODAY, 9))
        candidates = [
            EarlierTrack(YESTERDAY, stamps(rewalked(today, -DAY, seed=len(name))), 1),
            EarlierTrack(YESTERDAY, stamps(walked(other, local_time(YESTERDAY, 8))), 1),
        ]
        assert replayed_track(today, candidates) is None
        meters, readings = meters_and_readings(today)
        assert validate_route(WINDOW, meters, readings, today, earlier=candidates) == []
