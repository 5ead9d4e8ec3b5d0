"""The customer where the reader stands, the typo check, and the location sources."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import gpxpy.gpx
import pytest

from common import clock, wire
from common.wire import Fix
from mobile.core.location import (
    FixedSource,
    GpxReplaySource,
    PlyerSource,
    TrackRecorder,
    parse_fixed,
)
from mobile.core.route import check_entry, nearest_unread, next_to_read, steady_nearest
from mobile.core.status import field_status, gps_quality
from mobile.core.store import Store
from tests.mobile.test_store import T0, pulled


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "device.db")
    store.apply_pull(
        wire.PullPage.from_json(pulled(n=4))
    )  # meters 100..103, about 33 m apart going north
    return store


def test_the_nearest_unread_meter_within_the_radius_pops_up(store: Store) -> None:
    meters = store.meters(7)
    near = nearest_unread(meters, 30.27 + 3e-4 + 0.00005, 120.15, radius_m=25)
    assert near is not None
    assert near[0].id == 101
    assert near[1] == pytest.approx(5.5, abs=0.5)
    assert nearest_unread(meters, 30.30, 120.15, radius_m=25) is None  # 3 km away: nobody


def test_after_a_meter_the_next_is_the_nearest_still_to_read_or_the_next_in_order(
    store: Store,
) -> None:
    store.confirm_reading(7, 101, value=Decimal(1100), read_at=T0, fix=None)
    meters = {m.id: m for m in store.meters(7)}
    done = meters[101]
    # In order: 102 follows 101; after the last (103) the route wraps round to 100, passed by.
    assert next_to_read(list(meters.values()), done, "sequence").id == 102
    assert next_to_read(list(meters.values()), meters[103], "sequence").id == 100
    # Nearest: from where the reader stands, whatever the order (100 is behind, but close).
    standing_by_100 = (30.27 + 0.00002, 120.15)
    assert next_to_read(list(meters.values()), done, "nearest", standing_by_100).id == 100
    # Without a fix, from the meter just read: both neighbours are 33 m off, the first wins.
    assert next_to_read(list(meters.values()), done, "nearest").id == 100
    for m in (100, 102, 103):
        store.confirm_reading(7, m, value=Decimal(1100 + m), read_at=T0, fix=None)
    assert next_to_read(store.meters(7), done, "nearest") is None  # the route is done


def test_the_customer_card_holds_still_while_gps_jitters_between_two_neighbours(
    store: Store,
) -> None:
    meters = store.meters(7)
    between = 30.27 + 1.5e-4  # halfway between meters 100 and 101, 16.5 m from each
    shown = nearest_unread(meters, between - 1e-5, 120.15, radius_m=25)
    assert shown is not None
    assert shown[0].id == 100
    # A jitter of a metre or two towards 101 makes 101 the nearest, but not clearly.
    jittered = nearest_unread(meters, between + 1e-5, 120.15, radius_m=25)
    assert jittered is not None
    assert jittered[0].id == 101
    held = steady_nearest(
        shown, jittered, meters, between + 1e-5, 120.15, margin_m=6, radius_m=25
    )
    assert held is not None
    assert held[0].id == 100
    # Walking on to 101 (10 m nearer to it than to 100) changes the card.
    at_101 = 30.27 + 3e-4 - 5e-5
    found = nearest_unread(meters, at_101, 120.15, radius_m=25)
    moved = steady_nearest(shown, found, meters, at_101, 120.15, margin_m=6, radius_m=25)
    assert moved is not None
    assert moved[0].id == 101


def test_the_status_line_tells_a_good_fix_from_a_poor_one_and_a_replay_from_the_gps() -> None:
    good = Fix(lat=30.27, lon=120.15, accuracy_m=8, fix_time=T0)
    poor = Fix(lat=30.27, lon=120.15, accuracy_m=65, fix_time=T0, provider="network")
    mocked = Fix(lat=30.27, lon=120.15, accuracy_m=3, fix_time=T0, mock=True)
    assert [gps_quality(f) for f in (good, poor, None)] == ["good", "poor", "none"]
    assert field_status(good, None, 2, None).simulated is None
    assert field_status(good, "replay", 2, None).simulated == "replay"
    assert field_status(mocked, None, 0, None).simulated == "mock"
    # This machine has no battery to ask about: the line leaves it out rather than invent one.
    status = field_status(None, None, 3, "2026-01-01T00:00:00+00:00")
    assert (status.gps, status.waiting, status.battery_percent) == ("none", 3, None)


def test_a_read_meter_no_longer_pops_up_but_a_reread_task_does(store: Store) -> None:
    store.confirm_reading(7, 101, value=Decimal(1100), read_at=T0, fix=None)
    here = (30.27 + 3e-4, 120.15)
    assert nearest_unread(store.meters(7), *here, radius_m=25) is None  # the others are 33 m off
    near = nearest_unread(store.meters(7), *here, radius_m=40)
    assert near is not None
    assert near[0].id in (100, 102)
    store.apply_pull(
        wire.PullPage.from_json(
            pulled(
                cursor="c2",
                assignments=[],
                reread_orders=[
                    {
                        "id": "o1",
                        "assignment_id": 7,
                        "meter_id": 101,
                        "reading_id": None,
                        "reason": "check",
                        "ordered_at": T0.isoformat(),
                    }
                ],
            )
        )
    )
    near = nearest_unread(store.meters(7), *here, radius_m=25)
    assert near is not None
    assert near[0].id == 101


@pytest.mark.parametrize(
    ("value", "used", "asks"),
    [
        ("1100", Decimal(100), None),
        ("999", Decimal(-1), "below last reading"),
        ("1900", Decimal(900), "more than the usual"),
        ("1010", Decimal(10), "less than the usual"),
        ("1234567", None, "more digits"),
    ],
)
def test_the_typo_check_asks_to_retype_out_of_range_values(
    store: Store, value: str, used: Decimal | None, asks: str | None
) -> None:
    check = check_entry(store.meter(7, 100), Decimal(value))  # last 1000, expected 50..400
    assert check.consumption == used
    if asks is None:
        assert not check.needs_reentry
    else:
        assert check.warning is not None
        assert asks in check.warning


def test_a_dial_roll_over_is_not_taken_for_a_typo(tmp_path: Path) -> None:
    store = Store(tmp_path / "d.db")
    body = pulled(n=1)
    body["assignments"][0]["meters"][0] |= {"digits": 4, "last_reading": "9990"}
    store.apply_pull(wire.PullPage.from_json(body))
    check = check_entry(store.meter(7, 100), Decimal("0120"))
    assert check.consumption == Decimal(130)
    assert not check.needs_reentry


def write_gpx(path: Path, n: int, step_s: int = 5) -> None:
    gpx = gpxpy.gpx.GPX()
    track = gpxpy.gpx.GPXTrack()
    segment = gpxpy.gpx.GPXTrackSegment()
    gpx.tracks.append(track)
    track.segments.append(segment)
    for i in range(n):
        segment.points.append(
            gpxpy.gpx.GPXTrackPoint(
                30.27 + i * 1e-5, 120.15, time=T0 + timedelta(seconds=step_s * i)
            )
        )
    path.write_text(gpx.to_xml())


def test_a_gpx_replay_plays_every_point_faster_and_stamps_it_now(tmp_path: Path) -> None:
    write_gpx(tmp_path / "walk.gpx", 20)
    source = GpxReplaySource(tmp_path / "walk.gpx", speed=500)
    fixes: list[Fix] = []
    source.configure(fixes.append, lambda *_: None)
    source.start()
    assert source.done.wait(10)
    source.stop()
    assert [round(f.lat, 5) for f in fixes] == [round(30.27 + i * 1e-5, 5) for i in range(20)]
    # Stamped with the device clock's now (frozen here), never with the GPX file's own times.
    assert {f.fix_time for f in fixes} == {clock.now()}
    assert {f.provider for f in fixes} == {"replay"}


def test_the_fixed_source_repeats_its_position(tmp_path: Path) -> None:
    source = FixedSource(30.1, 120.2, interval_s=0.01)
    got = threading.Event()
    fixes: list[Fix] = []

    def on_location(fix: Fix) -> None:
        fixes.append(fix)
        if len(fixes) >= 3:
            got.set()

    source.configure(on_location, lambda *_: None)
    source.start()
    assert got.wait(5)
    source.stop()
    assert {(f.lat, f.lon) for f in fixes} == {(30.1, 120.2)}
    assert parse_fixed("30.1,120.2") == (30.1, 120.2)
    with pytest.raises(ValueError, match="LAT,LON"):
        parse_fixed("here")
    with pytest.raises(ValueError, match="not a position"):
        parse_fixed("91,0")


def test_plyer_on_a_desktop_says_there_is_no_gps() -> None:
    statuses: list[tuple[str, str]] = []
    source = PlyerSource()
    source.configure(lambda _fix: None, lambda s, m: statuses.append((s, m)))
    source.start()  # no GPS: nothing happens, nothing breaks
    source.stop()
    assert statuses
    assert statuses[0][0] == "unavailable"


def test_the_recorder_keeps_a_point_every_interval_only_while_recording(store: Store) -> None:
    recorder = TrackRecorder(store, interval_s=5, min_distance_m=3)
    walk = [Fix(30.27 + i * 1.2e-5, 120.15, 5, T0 + timedelta(seconds=i)) for i in range(30)]
    for fix in walk[:10]:
        recorder.on_location(fix)
    assert store.track_count() == 0  # not recording: only the latest fix is kept
    assert recorder.latest == walk[9]
    recorder.recording = True
    for fix in walk[10:]:
        recorder.on_location(fix)
    # 20 s of walking at 1.3 m/s with a 5 s interval: a point at 10, 15, 20, 25 s.
    assert store.track_count() == 4
    assert recorder.current_fix(at=T0 + timedelta(seconds=60)) == walk[-1]
    assert recorder.current_fix(at=T0 + timedelta(minutes=10)) is None  # stale
