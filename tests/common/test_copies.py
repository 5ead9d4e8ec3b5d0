"""Copied positions on hand-made days: a track replayed from an earlier day, fixes typed onto the
meter's coordinates. The same rules on real recorded walks are in test_copies_recorded.py."""

from __future__ import annotations

import dataclasses
import itertools
import random
from datetime import date, timedelta

from common.geo import offset
from common.rules.copies import fix_on_meter, replayed_track, replayed_tracks, stamps
from common.rules.facts import EarlierTrack, Thresholds, Track, TrackFix
from common.rules.route import validate_route
from server.demo.days import home_day, honest_day, reading_facts, street, track_facts
from tests.common.test_validation import WINDOW, route
from tests.factories import LOCAL, TODAY, local_time

RULES = Thresholds()
YESTERDAY = TODAY - timedelta(days=1)
DAY = timedelta(days=1)


def walk(seed: int = 0, start_day: date = YESTERDAY, n: int = 40) -> list[TrackFix]:
    """An honest walk down the same street (meters at the same places), noisy as GPS is."""
    meters = route(n)
    _, track = honest_day(meters, local_time(start_day, 9), assignment_id=1, seed=seed)
    return [dataclasses.replace(p, reader_id=1) for p in track_facts(track)]


def shifted(track: list[TrackFix], by: timedelta, **changes: object) -> list[TrackFix]:
    return [dataclasses.replace(p, t=p.t + by, **changes) for p in track]  # type: ignore[arg-type]


def yesterday(track: list[TrackFix], **kind: object) -> EarlierTrack:
    return EarlierTrack(YESTERDAY, stamps(track), **kind)  # type: ignore[arg-type]


def moves(track: list[TrackFix]) -> int:
    """How many steps of a track move at all (every one of them repeats in an exact copy)."""
    return sum((a.lat, a.lon) != (b.lat, b.lon) for a, b in itertools.pairwise(track))


def test_a_track_shifted_by_exactly_one_day_is_a_replay_of_that_day() -> None:
    earlier = walk()
    today = shifted(earlier, DAY)
    found = replayed_track(today, [yesterday(earlier, assignment_id=7)])
    assert found is not None
    copied, shift, repeated, total = found
    assert (copied.day, shift, repeated, total) == (YESTERDAY, 86_400, moves(today), len(today))
    (finding,) = replayed_tracks(Track(today), [yesterday(earlier, reader_id=1)], LOCAL)
    assert finding.severity == "fail"
    assert finding.params["copied_day"] == YESTERDAY.isoformat()
    assert finding.params["day"] == TODAY.isoformat()
    assert finding.params["reader"] is None  # the reader's own
    assert finding.message.startswith(
        f"the track of {TODAY} repeats the track of {YESTERDAY} shifted by 24.0 h: "
    )


def test_the_same_street_walked_honestly_twice_is_no_replay() -> None:
    # The same meters, the same walking speeds and dwell ranges: only GPS noise and the
    # reader's pace differ, as between two real days.
    first, second = walk(seed=1), walk(seed=2, start_day=TODAY)
    assert replayed_track(second, [yesterday(first)]) is None
    # Even walked at the same seconds of the day with the same pace (seed), but another day's
    # GPS noise, it is no replay: the points are metres apart, never a tenth of a metre.
    rng = random.Random(3)
    again = [
        TrackFix(p.t + DAY, *offset(p.lat, p.lon, rng.gauss(0, 3), rng.gauss(0, 3)), 5.0)
        for p in first
    ]
    assert replayed_track(again, [yesterday(first)]) is None


def test_ten_days_of_the_same_street_walked_honestly_are_no_replay_of_one_another() -> None:
    days = [walk(seed=10 + d, start_day=TODAY - timedelta(days=10 - d)) for d in range(10)]
    for d, today in enumerate(days[1:], start=1):
        earlier = [EarlierTrack(TODAY - timedelta(days=10 - e), stamps(days[e])) for e in range(d)]
        assert replayed_track(today, earlier) is None


def test_a_replay_with_points_dropped_and_added_and_rounded_is_still_caught() -> None:
    earlier = walk()
    rng = random.Random(4)
    today = []
    for p in shifted(earlier, 2 * DAY + timedelta(seconds=17)):
        if rng.random() < 0.1:
            continue  # dropped
        today.append(dataclasses.replace(p, lat=round(p.lat, 6), lon=round(p.lon, 6)))
        if rng.random() < 0.05:  # an added point, between this one and the next
            today.append(dataclasses.replace(today[-1], t=p.t + timedelta(seconds=2)))
    found = replayed_track(today, [EarlierTrack(YESTERDAY - DAY, stamps(earlier))])
    assert found is not None
    _, shift, repeated, total = found
    assert shift == 2 * 86_400 + 17
    assert repeated >= 0.8 * total


def test_a_copy_moved_onto_another_street_by_another_reader_is_caught_with_their_name() -> None:
    earlier = walk()
    today = [
        TrackFix(p.t + DAY, *offset(p.lat, p.lon, 800.0, -300.0), p.accuracy_m, reader_id=2)
        for p in earlier
    ]
    other = yesterday(earlier, reader_id=1, reader="reader1", device_id="device-0001")
    (finding,) = replayed_tracks(Track(today), [other], LOCAL)
    assert finding.params["reader"] == "reader1"
    assert finding.params["device"] == "device-0001"
    assert "(reader reader1; device device-0001)" in finding.message


def test_a_replay_of_the_readers_own_earlier_day_in_the_same_track_is_caught() -> None:
    earlier = walk()
    (finding,) = replayed_tracks(Track([*earlier, *shifted(earlier, DAY)]), [], LOCAL)
    assert finding.params["copied_day"] == YESTERDAY.isoformat()
    assert finding.subject == f"replay:1@{TODAY}"


def test_only_the_days_readings_were_taken_on_are_judged() -> None:
    earlier = walk()
    track = Track([*earlier, *shifted(earlier, DAY)])
    assert replayed_tracks(track, [], LOCAL, worked={(1, YESTERDAY)}) == []
    assert len(replayed_tracks(track, [], LOCAL, worked={(1, TODAY)})) == 1
    assert len(replayed_tracks(track, [], LOCAL, worked={(None, TODAY)})) == 1  # any reader's


def test_only_earlier_days_are_copied_from() -> None:
    earlier = walk()
    today = Track(shifted(earlier, DAY))
    assert replayed_tracks(today, [EarlierTrack(TODAY, stamps(earlier))], LOCAL) == []


def test_a_logger_holding_a_still_position_on_two_days_is_no_replay() -> None:
    spot = street(1)[0]
    start = local_time(YESTERDAY, 9)
    still = [TrackFix(start + timedelta(seconds=5 * i), *spot, 5.0) for i in range(500)]
    assert replayed_track(shifted(still, DAY), [yesterday(still)]) is None


# --------------------------------------------------------------------------- fix_on_meter


def test_fixes_on_the_meter_reading_after_reading_are_flagged_each() -> None:
    meters = route(6)
    home = offset(meters[0].lat, meters[0].lon, -600.0, 500.0)
    wire, _ = home_day(meters, local_time(TODAY, 9), assignment_id=1, home=home)
    readings = reading_facts(wire)
    by_id = {m.id: m for m in meters}
    found = fix_on_meter(readings, by_id, LOCAL)
    assert {f.reading_id for f in found} == {r.id for r in readings}
    assert all(f.severity == "fail" for f in found)
    assert found[0].message == (
        "fix of meter M-0001 is 0.00 m from the meter's coordinates, one of 6 such fixes in a row "
        "(a real fix is seldom within 0.5 m of the meter)"
    )
    # Two are suspicious (the audit page says so), not a flag.
    assert fix_on_meter(readings[:2], by_id, LOCAL) == []
    assert len(fix_on_meter(readings[:2], by_id, LOCAL, Thresholds(on_meter_min_readings=2))) == 2


def test_an_honest_day_has_no_fix_on_the_meter_nor_a_replay() -> None:
    meters = route(40)
    wire, track = honest_day(meters, local_time(TODAY, 9), assignment_id=1, seed=5)
    _, earlier = honest_day(meters, local_time(YESTERDAY, 9), assignment_id=1, seed=6)
    findings = validate_route(
        WINDOW,
        meters,
        reading_facts(wire),
        track_facts(track),
        RULES,
        earlier=[EarlierTrack(YESTERDAY, stamps(track_facts(earlier)))],
    )
    assert findings == []
