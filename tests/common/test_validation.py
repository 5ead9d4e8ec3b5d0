"""The rules of the trade on hand-made days: each flag fires where it should and nowhere else."""

from __future__ import annotations

import math
import random
import uuid
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from geopy.distance import geodesic

from common.geo import distance_m, offset
from common.rules.completeness import missed, wrong_meter_order
from common.rules.consumption import consumption, unchanged
from common.rules.facts import (
    AssignmentFacts,
    Finding,
    MeterFacts,
    ReadingFacts,
    Thresholds,
    Track,
    TrackFix,
)
from common.rules.movement import impossible_speed
from common.rules.presence import far_from_meter, no_fix, not_on_track
from common.rules.route import validate_route
from common.rules.timing import clock_skew
from common.wire import Fix
from server.demo.days import home_day, honest_day, reading_facts, street, teleport, track_facts
from server.schemas.wire import ReadingIn, TrackPointIn
from tests.factories import LOCAL, TODAY, WINDOW_END, WINDOW_START, local_time

# The rules are pure: every time is given to them. Dates still follow the run's NOW.
START = local_time(TODAY, 9)
WINDOW = AssignmentFacts(window_start=WINDOW_START, window_end=WINDOW_END)
CLOSED = AssignmentFacts(WINDOW_START, WINDOW_END, closed=True)
AFTER_WINDOW = local_time(WINDOW_END + timedelta(days=1), 0)


def route(
    n: int, *, spacing_m: tuple[float, float] = (70.0, 110.0), seed: int = 0
) -> list[MeterFacts]:
    """A route of `n` meters along a street, in sequence, each with last cycle's register."""
    return [
        MeterFacts(
            id=i + 1,
            lat=lat,
            lon=lon,
            meter_no=f"M-{i + 1:04d}",
            last_reading=Decimal(1000 + 7 * i),
            expected_low=Decimal(50),
            expected_high=Decimal(400),
            sequence=(i + 1) * 10,
        )
        for i, (lat, lon) in enumerate(street(n, spacing_m=spacing_m, seed=seed))
    ]


def codes(findings: Iterable[Finding]) -> Counter[str]:
    return Counter(f.code for f in findings)


def flagged(findings: Iterable[Finding], code: str) -> set[uuid.UUID | None]:
    return {f.reading_id for f in findings if f.code == code}


def ids(readings: Iterable[ReadingFacts]) -> set[uuid.UUID | None]:
    return {r.id for r in readings}


def validate(
    meters: list[MeterFacts],
    wire_readings: list[dict[str, Any]],
    wire_track: list[dict[str, Any]],
    *,
    assignment: AssignmentFacts = WINDOW,
    now: datetime | None = None,
    **facts: Any,
) -> tuple[list[ReadingFacts], list[Finding]]:
    readings = reading_facts(wire_readings, **facts)
    return readings, validate_route(
        assignment, meters, readings, track_facts(wire_track), Thresholds(), now
    )


# ------------------------------------------------------------------------------ distances


@pytest.mark.parametrize("lat", [-60.0, -23.5, 0.0, 30.27, 45.0, 67.0])
@pytest.mark.parametrize("metres", [0.5, 5.0, 40.0, 300.0, 2_000.0, 5_000.0, 50_000.0])
def test_distance_agrees_with_geopy_geodesic(lat: float, metres: float) -> None:
    rng = random.Random(f"{lat}/{metres}")
    for _ in range(12):
        start = (lat, rng.uniform(-180, 180))
        end = geodesic(meters=metres).destination(start, rng.uniform(0, 360))
        expected = geodesic(start, (end.latitude, end.longitude)).meters
        got = distance_m(start[0], start[1], end.latitude, end.longitude)
        assert abs(got - expected) <= max(0.0005 * expected, 0.01)


def test_distance_across_the_antimeridian_and_far_apart_agrees_with_geopy() -> None:
    assert distance_m(10.0, 179.9995, 10.0, -179.9995) == pytest.approx(
        geodesic((10.0, 179.9995), (10.0, -179.9995)).meters, rel=1e-6
    )
    assert distance_m(30.0, 120.0, 40.0, 116.0) == pytest.approx(
        geodesic((30.0, 120.0), (40.0, 116.0)).meters, rel=1e-9
    )


def test_offset_moves_the_given_metres() -> None:
    lat, lon = offset(30.0, 120.0, 300.0, 400.0)
    assert distance_m(30.0, 120.0, lat, lon) == pytest.approx(500.0, abs=0.01)


# --------------------------------------------------------------------------- honest days


@pytest.mark.parametrize("seed", range(5))
def test_an_honest_day_raises_no_flag_at_all(seed: int) -> None:
    meters = route(40, seed=seed)
    readings, track = honest_day(meters, START, assignment_id=1, seed=seed)
    _, findings = validate(meters, readings, track)
    assert findings == []
    _, findings = validate(meters, readings, track, assignment=CLOSED, now=AFTER_WINDOW)
    assert findings == []


def test_an_honest_day_on_a_dense_street_raises_no_flag_at_all() -> None:
    meters = route(60, spacing_m=(8.0, 40.0), seed=7)
    readings, track = honest_day(meters, START, assignment_id=1, seed=7)
    _, findings = validate(meters, readings, track)
    assert findings == []


def test_a_full_route_day_of_300_meters_raises_no_flag_at_all() -> None:
    meters = route(300, spacing_m=(30.0, 60.0), seed=3)
    readings, track = honest_day(meters, START, assignment_id=1, seed=3)
    assert len(track) > 5_000
    _, findings = validate(meters, readings, track, assignment=CLOSED, now=AFTER_WINDOW)
    assert findings == []


# ------------------------------------------------------------------------------ presence


def test_readings_typed_at_home_are_not_on_track_and_copied_registers_are_unchanged() -> None:
    meters = route(12)
    home = offset(meters[0].lat, meters[0].lon, -600.0, 500.0)
    wire, track = home_day(meters, START, assignment_id=1, home=home, unchanged_every=3)
    readings, findings = validate(meters, wire, track)
    # Every fix was typed onto the meter's coordinates: fix_on_meter, reading after reading.
    assert codes(findings) == {"not_on_track": 12, "unchanged": 4, "fix_on_meter": 12}
    assert flagged(findings, "fix_on_meter") == ids(readings)
    assert flagged(findings, "not_on_track") == ids(readings)
    copied = {r.id for r in readings if r.value == meters[r.meter_id - 1].last_reading}
    assert flagged(findings, "unchanged") == copied
    assert len(copied) == 4
    assert all(f.severity == "fail" for f in findings)
    message = next(f.message for f in findings if f.code == "not_on_track")
    assert "nearest point" in message
    assert " km away" in message or " m away" in message


def test_a_mock_location_day_is_flagged_mock_and_its_mock_track_witnesses_nothing() -> None:
    meters = route(10)
    wire, track = honest_day(meters, START, assignment_id=1, mock=True)
    readings, findings = validate(meters, wire, track)
    assert codes(findings) == {"mock_location": 10, "not_on_track": 10}
    assert flagged(findings, "mock_location") == ids(readings)


def test_a_simulated_provider_counts_as_mock() -> None:
    meters = route(3)
    wire, track = honest_day(meters, START, assignment_id=1)
    wire[1]["fix"]["provider"] = "gpx"
    readings, findings = validate(meters, wire, track)
    assert codes(findings) == {"mock_location": 1}
    assert flagged(findings, "mock_location") == {readings[1].id}


def test_a_gap_in_the_track_flags_only_the_readings_taken_while_the_phone_was_off() -> None:
    meters = route(30)
    wire, track = honest_day(meters, START, assignment_id=1, phone_off=(10, 10))
    readings, findings = validate(meters, wire, track)
    gap_s = (
        datetime.fromisoformat(wire[20]["read_at"]) - datetime.fromisoformat(wire[9]["read_at"])
    ).total_seconds()
    assert gap_s > 15 * 60  # about 20 minutes with the phone off
    assert codes(findings) == {"not_on_track": 10}
    assert flagged(findings, "not_on_track") == ids(readings[10:20])
    middle = next(f for f in findings if f.reading_id == readings[15].id)
    assert middle.message == (
        "the track has no point within 5 min of the reading of meter M-0016 "
        "(phone off, no GPS, or track not sent)"
    )


def test_a_fix_far_from_the_meter_says_how_far_and_what_was_allowed() -> None:
    meter = route(3)[2]
    lat, lon = offset(meter.lat, meter.lon, 212.0, 0.0)
    r = ReadingFacts(
        id=uuid.uuid4(),
        meter_id=meter.id,
        read_at=START,
        confirmed_at=START + timedelta(seconds=12),
        received_at=START + timedelta(minutes=1),
        value=Decimal(1200),
        fix=Fix(lat, lon, 8.0, START - timedelta(seconds=1)),
    )
    found = far_from_meter(r, meter)
    assert found is not None
    # A reported 8 m is credited the floor of 10 m.
    assert found.message == "fix 212 m from meter M-0003 (allowed 30 m + accuracy 10 m)"
    near = offset(meter.lat, meter.lon, 35.0, 0.0)
    assert (
        far_from_meter(r.__class__(**{**r.__dict__, "fix": Fix(*near, 8.0, START)}), meter) is None
    )


def test_a_reading_without_a_fix_or_with_a_stale_one_is_no_fix() -> None:
    meter = route(1)[0]
    base = ReadingFacts(
        id=uuid.uuid4(),
        meter_id=meter.id,
        read_at=START,
        confirmed_at=START + timedelta(seconds=12),
        received_at=START + timedelta(minutes=1),
        value=Decimal(1100),
    )
    assert no_fix(base, meter) is not None
    stale = Fix(meter.lat, meter.lon, 5.0, START - timedelta(minutes=10))
    found = no_fix(ReadingFacts(**{**base.__dict__, "fix": stale}), meter)
    assert found is not None
    assert "10 min before the reading" in found.message
    fresh = Fix(meter.lat, meter.lon, 5.0, START - timedelta(seconds=30))
    assert no_fix(ReadingFacts(**{**base.__dict__, "fix": fresh}), meter) is None
    # A stale fix is no evidence of distance either way.
    far_stale = Fix(meter.lat + 0.1, meter.lon, 5.0, START - timedelta(minutes=10))
    assert far_from_meter(ReadingFacts(**{**base.__dict__, "fix": far_stale}), meter) is None


def test_another_readers_track_does_not_witness_a_reading() -> None:
    meter = route(1)[0]
    r = ReadingFacts(
        id=uuid.uuid4(),
        meter_id=meter.id,
        read_at=START,
        confirmed_at=START + timedelta(seconds=12),
        received_at=START + timedelta(minutes=1),
        value=Decimal(1100),
        reader_id=2,
    )
    colleague = Track([TrackFix(START, meter.lat, meter.lon, 5.0, reader_id=1)])
    assert not_on_track(r, meter, colleague) is not None
    own = Track([TrackFix(START + timedelta(minutes=4), meter.lat, meter.lon, 5.0, reader_id=2)])
    assert not_on_track(r, meter, own) is None


# ------------------------------------------------------------------------------ movement


def test_ten_readings_300_m_apart_within_a_minute_are_too_fast() -> None:
    meters = route(10, spacing_m=(300.0, 300.0))
    wire, _ = home_day(meters, START, assignment_id=1, home=(0.0, 0.0), unchanged_every=0)
    t = START
    for w in wire:  # confirmed every 6 s, typed standing at the first meter
        w["read_at"], w["confirmed_at"] = t.isoformat(), (t + timedelta(seconds=4)).isoformat()
        w["fix"]["fix_time"] = t.isoformat()
        t += timedelta(seconds=6)
    _, track = home_day(meters[:1], START, assignment_id=1, home=(meters[0].lat, meters[0].lon))
    readings, findings = validate(meters, wire, track)
    assert codes(findings) == {"too_fast": 9, "not_on_track": 9, "fix_on_meter": 10}
    assert flagged(findings, "too_fast") == ids(readings[1:])
    first = next(f for f in findings if f.code == "too_fast")
    assert first.message == (
        "meter M-0002 confirmed 6 s after meter M-0001, 300 m away (a reading takes at least 15 s)"
    )


def test_a_track_teleport_of_5_km_in_10_s_is_one_impossible_speed() -> None:
    meters = route(10)
    wire, track = honest_day(meters, START, assignment_id=1)
    # The track stays 5 km away after the jump (after the last reading, so presence holds): a
    # single point that came straight back would be a spike, cleaned away before judging
    # (tests/common/test_track_cleaning.py).
    jumped = teleport(track, len(track) - 5, km=5.0)  # after the last reading
    _, findings = validate(meters, wire, jumped)
    assert codes(findings) == {"impossible_speed": 1}
    (found,) = findings
    assert (found.reading_id, found.meter_id) == (None, None)
    assert "track jumped 5.0 km in 10 s" in found.message


def test_a_track_that_stays_away_after_jumping_is_one_finding_per_jump() -> None:
    meters = route(3)
    track = [
        TrackFix(START + timedelta(seconds=5 * i), meters[0].lat, meters[0].lon, 5.0)
        for i in range(10)
    ]
    away = offset(meters[0].lat, meters[0].lon, 0.0, 5000.0)
    track[4:7] = [TrackFix(p.t, *away, 5.0, mock=True) for p in track[4:7]]
    findings = impossible_speed([], {m.id: m for m in meters}, Track(track))
    assert len(findings) == 2
    assert len({f.key for f in findings}) == 2


def test_gps_jitter_within_accuracy_is_not_a_jump() -> None:
    p = (30.0, 120.0)
    q = offset(*p, 35.0, 0.0)  # 35 m in one second, but each point is +-20 m
    track = Track([TrackFix(START, *p, 20.0), TrackFix(START + timedelta(seconds=1), *q, 20.0)])
    assert impossible_speed([], {}, track) == []


def test_readings_far_apart_in_too_little_time_are_impossible_speed() -> None:
    meters = [
        MeterFacts(1, 30.0, 120.0, "M-1"),
        MeterFacts(2, *offset(30.0, 120.0, 3000.0, 0.0), "M-2"),
    ]
    readings = [
        ReadingFacts(
            uuid.uuid4(),
            m.id,
            START + timedelta(seconds=60 * i),
            START + timedelta(seconds=60 * i + 10),
            START + timedelta(hours=1),
            Decimal(1),
        )
        for i, m in enumerate(meters)
    ]
    (found,) = impossible_speed(readings, {m.id: m for m in meters}, Track([]))
    assert found.reading_id == readings[1].id
    assert "3.0 km from the previous reading (meter M-1) 60 s earlier: 180 km/h" in found.message


# ---------------------------------------------------------------------------------- order


def test_a_reversed_walk_is_noted_as_wrong_meter_order_and_nothing_else() -> None:
    meters = route(20)
    wire, track = honest_day(list(reversed(meters)), START, assignment_id=1)
    _, findings = validate(meters, wire, track)
    assert codes(findings) == {"wrong_meter_order": 1}
    assert findings[0].severity == "info"
    assert "190 of 190 pairs" in findings[0].message


def test_a_shuffled_walk_is_noted_as_wrong_meter_order_and_nothing_else() -> None:
    meters = route(20)
    walk = meters[:]
    random.Random(5).shuffle(walk)
    wire, track = honest_day(walk, START, assignment_id=1)
    _, findings = validate(meters, wire, track)
    assert codes(findings) == {"wrong_meter_order": 1}


def test_a_walk_with_a_few_neighbours_swapped_is_in_order_enough() -> None:
    meters = route(20)
    walk = meters[:]
    for i in (2, 8, 14):
        walk[i], walk[i + 1] = walk[i + 1], walk[i]
    readings = reading_facts(honest_day(walk, START, assignment_id=1)[0])
    assert wrong_meter_order(meters, readings) == []


# ----------------------------------------------------------------------------------- time


def test_readings_before_the_window_in_local_time_are_outside_window() -> None:
    meters = route(20)
    # 23:40 China time on the day before the window opens: the first readings fall on it.
    eve = WINDOW_START - timedelta(days=1)
    start = local_time(eve, 23, 40)
    wire, track = honest_day(meters, start, assignment_id=1)
    readings, findings = validate(meters, wire, track)
    early = {r.id for r in readings if r.read_at.astimezone(LOCAL).date() < WINDOW_START}
    assert 0 < len(early) < len(readings)
    assert codes(findings) == {"outside_window": len(early)}
    assert flagged(findings, "outside_window") == early
    assert f"read on {eve.isoformat()} (UTC+08:00), before the window" in findings[0].message


def test_a_push_stamped_hours_before_it_arrived_is_clock_skew() -> None:
    meters = route(5)
    wire, track = honest_day(meters, START, assignment_id=1)
    _, findings = validate(meters, wire, track, stamp_early=timedelta(hours=3))
    assert codes(findings) == {"clock_skew": 5}
    assert "stamped 3.0 h before the server received it" in findings[0].message


def test_a_push_stamped_after_it_arrived_is_clock_skew() -> None:
    meters = route(5)
    wire, track = honest_day(meters, START, assignment_id=1)
    _, findings = validate(meters, wire, track, stamp_early=-timedelta(hours=2))
    assert codes(findings) == {"clock_skew": 5}
    assert "the device clock is ahead" in findings[0].message


def test_a_slow_push_on_gprs_is_not_clock_skew() -> None:
    meters = route(5)
    wire, track = honest_day(meters, START, assignment_id=1)
    _, findings = validate(meters, wire, track, stamp_early=timedelta(minutes=7))
    assert findings == []


def test_a_reading_synced_three_days_late_is_offline_work_not_clock_skew() -> None:
    meters = route(5)
    wire, track = honest_day(meters, START, assignment_id=1)
    _, findings = validate(meters, wire, track, sync_after=timedelta(days=3))
    assert findings == []


def test_a_reading_dated_after_the_server_received_it_is_clock_skew() -> None:
    meter = route(1)[0]
    r = ReadingFacts(
        id=uuid.uuid4(),
        meter_id=meter.id,
        read_at=START + timedelta(hours=1),
        confirmed_at=START + timedelta(hours=1, seconds=10),
        received_at=START,
        value=Decimal(1100),
    )
    found = clock_skew(r, meter)
    assert found is not None
    assert "dated 60 min after the server received it" in found.message


# ---------------------------------------------------------------------------- consumption


def test_consumption_rolls_over_the_dials_when_the_wrap_is_plausible() -> None:
    assert consumption(Decimal(10), Decimal(999990), 6, Decimal(1)) == 20
    assert consumption(Decimal(10), Decimal(9990), 4, Decimal(1)) == 20
    assert consumption(Decimal(10), Decimal(999990), 6, Decimal(40)) == 800
    assert consumption(Decimal(50), Decimal(100), 6, Decimal(1)) == -50
    assert consumption(Decimal("1100.5"), Decimal(1000), 6, Decimal(1)) == Decimal("100.5")


def test_a_wrap_within_expected_high_is_a_roll_over_even_past_the_fraction() -> None:
    # 3 dials: 900 -> 150 wraps 250 units, a quarter of the dials, but within expected_high.
    assert consumption(Decimal(150), Decimal(900), 3, Decimal(1)) == -750
    assert consumption(Decimal(150), Decimal(900), 3, Decimal(1), expected_high=Decimal(300)) == 250


def test_a_rolled_over_meter_is_not_flagged_and_a_backwards_one_is_negative_consumption() -> None:
    meters = route(4)
    meters[1] = MeterFacts(
        **{**meters[1].__dict__, "last_reading": Decimal(999990), "expected_low": Decimal(10)}
    )
    meters[2] = MeterFacts(**{**meters[2].__dict__, "last_reading": Decimal(100)})
    values = {meters[1].id: "10", meters[2].id: "50"}
    wire, track = honest_day(meters, START, assignment_id=1, values=values)
    readings, findings = validate(meters, wire, track)
    assert codes(findings) == {"negative_consumption": 1}
    assert flagged(findings, "negative_consumption") == {readings[2].id}
    assert findings[0].message == (
        "meter M-0003 reads 50, below last cycle's 100: -50 kWh (not a roll-over of its 6 dials)"
    )


def test_consumption_outside_the_expected_range_is_high_or_low() -> None:
    meters = route(4)
    last = [m.last_reading or 0 for m in meters]
    values = {meters[0].id: str(last[0] + 900), meters[1].id: str(last[1] + 3)}
    wire, track = honest_day(meters, START, assignment_id=1, values=values)
    readings, findings = validate(meters, wire, track)
    assert codes(findings) == {"high_consumption": 1, "low_consumption": 1}
    assert flagged(findings, "high_consumption") == {readings[0].id}
    assert flagged(findings, "low_consumption") == {readings[1].id}
    assert "used 900 kWh this cycle, above the expected 400 kWh at most" in findings[0].message


def test_unchanged_fails_on_a_busy_account_warns_on_a_quiet_one_and_is_fine_vacant() -> None:
    busy = route(1)[0]
    quiet = MeterFacts(**{**busy.__dict__, "expected_low": None})
    vacant = MeterFacts(**{**busy.__dict__, "active": False})
    r = ReadingFacts(uuid.uuid4(), busy.id, START, START, START, value=busy.last_reading)
    found = unchanged(r, busy)
    assert found is not None
    assert found.severity == "fail"
    found = unchanged(r, quiet)
    assert found is not None
    assert found.severity == "warn"
    assert unchanged(r, vacant) is None


def test_a_superseded_reading_is_checked_for_presence_but_not_for_consumption() -> None:
    meters = route(2)
    values = {meters[0].id: "5"}  # below last cycle's register: negative
    wire, track = honest_day(meters, START, assignment_id=1, values=values)
    home = offset(meters[0].lat, meters[0].lon, 900.0, 0.0)
    typed, _ = home_day(meters[:1], START - timedelta(hours=3), assignment_id=1, home=home)
    typed[0]["value"] = "5"
    readings, findings = validate(
        meters, [*typed, *wire], track, superseded={wire[0]["id"], typed[0]["id"]}
    )
    assert codes(findings) == {"not_on_track": 1}
    assert flagged(findings, "not_on_track") == {readings[0].id}
    _, current = validate(meters, [*typed, *wire], track, superseded={typed[0]["id"]})
    assert codes(current) == {"not_on_track": 1, "negative_consumption": 1}


# ------------------------------------------------------------------------------- missed


def test_meters_with_neither_reading_nor_skip_are_missed_at_close() -> None:
    meters = route(10)
    skips = {meters[3].id: "dog"}
    wire, track = honest_day(meters[:7], START, assignment_id=1, skips=skips)
    readings, findings = validate(meters, wire, track, assignment=CLOSED)
    assert codes(findings) == {"missed": 3}
    assert {f.meter_id for f in findings} == {8, 9, 10}
    assert all(f.reading_id is None for f in findings)
    # The window over counts as closed too; before that, nothing is missed yet.
    assert codes(missed(WINDOW, meters, readings, AFTER_WINDOW)) == {"missed": 3}
    assert missed(WINDOW, meters, readings, AFTER_WINDOW - timedelta(seconds=1)) == []


def test_finding_keys_are_unique_on_a_bad_day() -> None:
    meters = route(12)
    home = offset(meters[0].lat, meters[0].lon, -600.0, 500.0)
    wire, track = home_day(meters[:9], START, assignment_id=1, home=home)
    _, findings = validate(meters, wire, teleport(track, 30), assignment=CLOSED)
    assert len({f.key for f in findings}) == len(findings)
    assert {f.code for f in findings} >= {"not_on_track", "unchanged", "missed", "impossible_speed"}


def test_the_honest_day_wire_format_is_what_a_push_accepts() -> None:
    meters = route(3)
    wire, track = honest_day(meters, START, assignment_id=7, skips={2: "locked"})
    assert [ReadingIn.model_validate(w).skip_code for w in wire] == [None, "locked", None]
    assert all(not math.isnan(TrackPointIn.model_validate(p).lat) for p in track)
    assert len({p["t"] for p in track}) == len(track)  # one point per instant, as the device
