"""The validation runner on both databases: flags follow the findings, reviews survive, closing
an assignment flags what was missed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from common.geo import distance_m
from server.audit import reviews
from server.audit import service as audit
from server.core.config import Settings
from server.core.errors import Conflict
from server.demo.days import home_day, honest_day
from server.models import AdminLog, Assignment, Flag
from server.validation.runner import (
    affected_assignments_for_track,
    close_assignment,
    close_due_assignments,
    validate_assignment,
)
from tests.factories import (
    NOW,
    TODAY,
    ReaderDay,
    assign,
    auth,
    local_time,
    make_route,
    make_user,
    reader_day,
)

PUSH = "/api/v1/sync/push"
START = local_time(TODAY - timedelta(days=4), 9)  # inside the factories' window (TODAY ± 5)
DURING = NOW  # the window is still open


def aid(day: ReaderDay) -> int:
    """The assignment's id (the factories' rows are flushed, so it has one)."""
    assert day.assignment.id is not None
    return day.assignment.id


def push(
    client: TestClient,
    day: ReaderDay,
    readings: Sequence[dict[str, Any]] = (),
    track: Sequence[dict[str, Any]] = (),
) -> None:
    body = {
        "sent_at": NOW.isoformat(),
        "readings": list(readings),
        "track_points": list(track),
    }
    response = client.post(PUSH, headers=day.headers, json=body)
    assert response.status_code == 200, response.text
    assert {r["status"] for r in response.json()["results"]} <= {"accepted"}


def validate(
    session: Session, settings: Settings, day: ReaderDay, now: datetime = DURING
) -> list[Flag]:
    session.commit()  # a fresh view of what the requests wrote
    assert day.assignment.id is not None
    flags = validate_assignment(session, assignment_id=aid(day), settings=settings, now=now)
    session.commit()
    return flags


def held(session: Session, day: ReaderDay) -> list[Flag]:
    session.commit()
    return list(
        session.exec(
            select(Flag).where(Flag.assignment_id == day.assignment.id).order_by(col(Flag.id))
        )
    )


def codes(flags: Sequence[Flag]) -> Counter[str]:
    return Counter(f.code for f in flags)


def test_an_honest_day_leaves_no_flags(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client, n_meters=8)
    readings, track = honest_day(day.meters, START, assignment_id=aid(day))
    push(client, day, readings, track)
    assert validate(session, settings, day) == []
    assert held(session, day) == []


def test_a_day_typed_at_home_is_flagged_reading_by_reading(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client, n_meters=6)
    home = (day.meters[0].lat + 0.01, day.meters[0].lon)  # about 1.1 km north
    readings, track = home_day(day.meters, START, assignment_id=aid(day), home=home)
    push(client, day, readings, track)
    flags = validate(session, settings, day)
    # Typed fixes sit on the meters' coordinates, reading after reading.
    assert codes(flags) == {"not_on_track": 6, "unchanged": 2, "fix_on_meter": 6}
    assert held(session, day) == flags
    by_meter = {m.id: m for m in day.meters}
    for flag in flags:
        assert flag.key is not None
        assert flag.reading_id is not None
        assert flag.meter_id in by_meter
        assert by_meter[flag.meter_id].meter_no in flag.message


def test_validating_again_changes_nothing(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client, n_meters=4)
    home = (day.meters[0].lat + 0.01, day.meters[0].lon)
    readings, track = home_day(day.meters, START, assignment_id=aid(day), home=home)
    push(client, day, readings, track)
    first = [(f.id, f.key, f.message) for f in validate(session, settings, day)]
    again = [(f.id, f.key, f.message) for f in validate(session, settings, day)]
    assert again == first


def test_a_finding_still_there_keeps_its_flag_and_review_and_gets_the_new_message(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client, n_meters=3)
    supervisor = make_user(session, settings, "sup1", "supervisor", grid_code="G1")
    readings, track = honest_day(day.meters, START, assignment_id=aid(day))
    readings[1]["fix"]["lat"] += 0.002  # about 220 m north of the meter
    push(client, day, readings, track)
    (flag,) = validate(session, settings, day)
    assert flag.code == "far_from_meter"
    assert "(allowed 30 m + accuracy" in flag.message
    assert flag.id is not None
    reviews.review_flag(
        session,
        auditor=audit.Auditor(user=supervisor),
        flag_id=flag.id,
        decision="accepted",
        note="meter is in the back yard; the mapped point is the street",
    )
    session.commit()  # the review is its own unit of work, as a request is

    stricter = settings.model_copy(update={"validation_presence_radius_m": 20.0})
    (again,) = validate(session, stricter, day)
    assert again.id == flag.id
    assert "(allowed 20 m + accuracy" in again.message
    (kept,) = held(session, day)
    assert (kept.id, kept.review, kept.message) == (flag.id, "accepted", again.message)
    assert kept.review_note == "meter is in the back yard; the mapped point is the street"


def test_a_late_track_clears_unreviewed_flags_and_keeps_the_reviewed_one(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client, n_meters=5)
    supervisor = make_user(session, settings, "sup1", "supervisor", grid_code="G1")
    readings, track = honest_day(day.meters, START, assignment_id=aid(day))
    push(client, day, readings)  # the track comes in a later push
    flags = validate(session, settings, day)
    assert codes(flags) == {"not_on_track": 5}
    reviewed = flags[2]
    assert reviewed.id is not None
    reviews.review_flag(
        session,
        auditor=audit.Auditor(user=supervisor),
        flag_id=reviewed.id,
        decision="rejected",
        note="called the reader: says GPS was off",
    )
    session.commit()  # the review is its own unit of work, as a request is

    push(client, day, track=track)
    times = [datetime.fromisoformat(p["t"]) for p in track]
    session.commit()
    assert day.assignment.id in affected_assignments_for_track(
        session,
        user_id=day.assignment.reader_id,
        t_min=min(times),
        t_max=max(times),
        settings=settings,
    )
    assert validate(session, settings, day) == []
    (kept,) = held(session, day)
    assert (kept.id, kept.code, kept.review) == (reviewed.id, "not_on_track", "rejected")


def test_a_flag_made_by_hand_is_left_alone(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client, n_meters=2)
    assert day.assignment.id is not None
    session.add(
        Flag(
            assignment_id=aid(day),
            meter_id=day.meters[0].id,
            code="note",
            severity="info",
            message="customer asked for a call before the visit",
        )
    )
    session.commit()
    assert validate(session, settings, day) == []
    assert [f.code for f in held(session, day)] == ["note"]


def test_closing_an_assignment_flags_the_missed_meters_and_is_audited(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client, n_meters=6)
    supervisor = make_user(session, settings, "sup1", "supervisor", grid_code="G1")
    readings, track = honest_day(
        day.meters[:4],
        START,
        assignment_id=aid(day),
        skips={day.meters[3].id: "locked"},
    )
    push(client, day, readings, track)
    assert validate(session, settings, day) == []
    before = day.assignment.change_seq
    assert day.assignment.id is not None

    flags = close_assignment(
        session, assignment_id=aid(day), actor_id=supervisor.id, settings=settings
    )
    session.commit()
    assert codes(flags) == {"missed": 2}
    assert {f.meter_id for f in flags} == {day.meters[4].id, day.meters[5].id}
    closed = session.get(Assignment, day.assignment.id)
    assert closed is not None
    assert closed.status == "closed"
    assert closed.closed_at is not None
    assert closed.change_seq > before
    entry = session.exec(select(AdminLog).where(AdminLog.action == "assignment.close")).one()
    assert (entry.actor_id, entry.object_id) == (supervisor.id, str(day.assignment.id))
    with pytest.raises(Conflict):
        close_assignment(session, assignment_id=aid(day), actor_id=supervisor.id, settings=settings)


def test_due_assignments_are_those_whose_window_ended_in_local_time(
    session: Session, settings: Settings, engine: Engine
) -> None:
    make_user(session, settings, "reader1", "reader", grid_code="G1")
    make_route(session, "R-1", 3)
    make_route(session, "R-2", 3)
    ended_on = TODAY - timedelta(days=3)
    ended = assign(session, "R-1", "reader1", "C-a", ended_on - timedelta(days=7), ended_on)
    running = assign(session, "R-2", "reader1", "C-b")
    # 17:00 UTC on the window's last day is already the next day in China: it has ended.
    now = datetime.combine(ended_on, time(17), tzinfo=UTC)
    assert close_due_assignments(engine, settings=settings, now=now) == [ended.id]
    session.commit()
    assert close_due_assignments(engine, settings=settings, now=now) == []
    statuses = {
        a.id: a.status
        for a in session.exec(select(Assignment).execution_options(populate_existing=True))
    }
    assert statuses == {ended.id: "closed", running.id: "open"}
    flags = session.exec(select(Flag).where(Flag.assignment_id == ended.id)).all()
    assert codes(flags) == {"missed": 3}


def test_a_track_batch_affects_the_assignments_whose_window_or_readings_it_covers(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client, n_meters=3)  # window TODAY ± 5 days

    def local_noon(days: int, hour: int = 12) -> datetime:
        return local_time(TODAY + timedelta(days=days), hour)

    make_route(session, "R-2", 3)
    early_end = TODAY - timedelta(days=15)
    early = assign(session, "R-2", "reader1", "C-early", early_end - timedelta(days=9), early_end)
    assert early.id is not None
    session.commit()

    def affected(t: datetime) -> set[int]:
        return affected_assignments_for_track(
            session, user_id=day.assignment.reader_id, t_min=t, t_max=t, settings=settings
        )

    assert affected(local_noon(-20)) == {early.id}
    assert affected(local_noon(0)) == {day.assignment.id}
    assert affected(local_noon(-10)) == set()
    # The day after the window still belongs to it (a late evening, a time zone away).
    assert affected(local_noon(-14, hour=20)) == {early.id}
    other = make_user(session, settings, "reader2", "reader", grid_code="G1")
    assert (
        affected_assignments_for_track(
            session,
            user_id=other.id,
            t_min=NOW - timedelta(hours=12),
            t_max=NOW + timedelta(hours=12),
            settings=settings,
        )
        == set()
    )


def test_a_track_batch_affects_an_assignment_read_outside_its_window(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client, n_meters=3)
    assert day.assignment.id is not None
    when = local_time(TODAY - timedelta(days=8), 10)  # three days before the window opens
    readings, _ = honest_day(day.meters[:1], when, assignment_id=aid(day))
    push(client, day, readings)
    session.commit()
    read_at = datetime.fromisoformat(readings[0]["read_at"])
    assert affected_assignments_for_track(
        session,
        user_id=day.assignment.reader_id,
        t_min=read_at + timedelta(minutes=2),
        t_max=read_at + timedelta(minutes=4),
        settings=settings,
    ) == {day.assignment.id}
    flags = validate(session, settings, day)
    assert codes(flags) == {"outside_window": 1, "not_on_track": 1}


def test_every_threshold_is_a_setting_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GRIDWALK_VALIDATION_MAX_SPEED_KMH", "90")
    monkeypatch.setenv("GRIDWALK_VALIDATION_MOCK_PROVIDERS", '["mock", "gpx"]')
    thresholds = Settings().thresholds()
    assert thresholds.max_speed_kmh == 90
    assert thresholds.mock_providers == ("mock", "gpx")
    assert Settings(validation_presence_radius_m=25).thresholds().presence_radius_m == 25


def test_a_meter_resurveyed_80_m_off_is_found_where_past_cycles_read_it(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client, n_meters=4)
    make_user(session, settings, "sup1", "supervisor", grid_code="G1")
    supervisor = auth(client, "sup1", "sup-desk-01")
    # Three past cycles read the meters where they are mapped today, with no presence flag.
    for k in (3, 2, 1):
        start = TODAY - timedelta(days=30 * k)
        past = assign(session, "R-1", "reader1", f"P{k}", start, start + timedelta(days=5))
        assert past.id is not None
        readings, track = honest_day(
            day.meters, local_time(start, 9), assignment_id=past.id, seed=k
        )
        push(client, day, readings, track)
        assert (
            validate_assignment(session, assignment_id=past.id, settings=settings, now=DURING) == []
        )
        session.commit()
    # The billing system's new survey puts each meter 80 m east of where it is.
    where = [
        SimpleNamespace(
            id=m.id,
            lat=m.lat,
            lon=m.lon,
            last_reading=m.last_reading,
            expected_low=m.expected_low,
            expected_high=m.expected_high,
        )
        for m in day.meters
    ]
    for m in day.meters:
        m.lon += 80 / 96_300  # metres per degree of longitude at 30.27° N
        session.add(m)
    session.commit()
    readings, track = honest_day(where, START, assignment_id=aid(day))
    push(client, day, readings, track)
    assert validate(session, settings, day) == []
    # Without the past cycles' fixes, the same day fails presence at every meter.
    forgetful = settings.model_copy(update={"validation_learned_min_readings": 4})
    flags = validate_assignment(session, assignment_id=aid(day), settings=forgetful, now=DURING)
    session.rollback()
    assert {(f.code, f.severity) for f in flags} >= {("far_from_meter", "fail")}
    # The audit shows where each meter probably is.
    answer = client.get(f"/api/v1/audit/assignments/{aid(day)}", headers=supervisor)
    assert answer.status_code == 200, answer.text
    detail = answer.json()
    for meter, spot in zip(detail["meters"], where, strict=True):
        learned = meter["learned_position"]
        assert learned["readings"] == 3
        assert distance_m(learned["lat"], learned["lon"], spot.lat, spot.lon) < 10
        assert 0 < learned["spread_m"] < 15


def shifted(track: Sequence[dict[str, Any]], by: timedelta) -> list[dict[str, Any]]:
    """Pushed track points moved in time by `by`: a replay of them, mock flag off."""
    return [{**p, "t": (datetime.fromisoformat(p["t"]) + by).isoformat()} for p in track]


def test_a_day_replaying_the_day_before_is_flagged_through_the_runner(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client, n_meters=8)
    first, track = honest_day(day.meters[:4], START, assignment_id=aid(day), seed=1)
    push(client, day, first, track)
    assert validate(session, settings, day) == []
    # The next day's readings come with yesterday's track replayed a day later.
    second, _ = honest_day(
        day.meters[4:], START + timedelta(days=1), assignment_id=aid(day), seed=2
    )
    push(client, day, second, shifted(track, timedelta(days=1)))
    flags = validate(session, settings, day)
    [replay] = [f for f in flags if f.code == "replayed_track"]
    assert replay.severity == "fail"
    assert replay.params is not None
    assert replay.params["copied_day"] == START.date().isoformat()
    assert replay.params["day"] == (START.date() + timedelta(days=1)).isoformat()
    assert replay.params["shift_s"] == 86_400
    assert replay.params["repeated"] >= 0.95 * len(track)
    assert replay.message.startswith(f"the track of {replay.params['day']} repeats the track of ")


def test_an_honest_second_day_on_the_same_street_is_no_replay(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client, n_meters=8)
    first, track = honest_day(day.meters, START, assignment_id=aid(day), seed=1)
    push(client, day, first[:4], track)
    # The same street walked again the next day, with its own GPS noise and pace.
    _, again = honest_day(day.meters, START + timedelta(days=1), assignment_id=aid(day), seed=2)
    push(client, day, first[4:6], again)
    assert "replayed_track" not in codes(validate(session, settings, day))


def test_a_replay_of_a_previous_cycles_track_names_that_days_assignment(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client, n_meters=6)
    month_ago = TODAY - timedelta(days=30)
    old = assign(
        session,
        day.route.code,
        "reader1",
        cycle=f"{month_ago:%Y-%m}-prev",
        start=month_ago - timedelta(days=2),
        end=month_ago + timedelta(days=2),
    )
    then = local_time(month_ago, 9)
    _, track = honest_day(day.meters, then, assignment_id=aid(day), seed=3)
    push(client, day, (), track)  # last cycle's walk, on the server since
    readings, _ = honest_day(day.meters, START, assignment_id=aid(day), seed=4)
    push(client, day, readings, shifted(track, START - then))
    flags = validate(session, settings, day)
    [replay] = [f for f in flags if f.code == "replayed_track"]
    assert replay.params is not None
    assert replay.params["copied_day"] == month_ago.isoformat()
    assert replay.params["assignment"] == old.id
    assert replay.params["shift_s"] == (START - then).total_seconds()
    assert replay.params["reader"] is None  # the reader's own track
    # With the look-back shorter than the month, the earlier track is not loaded.
    near = Settings(**{**settings.model_dump(), "validation_replay_lookback_days": 20})
    session.commit()
    flags = validate_assignment(session, assignment_id=aid(day), settings=near, now=DURING)
    assert "replayed_track" not in codes(flags)
    session.rollback()


def test_a_replay_of_another_readers_walk_on_a_shared_device_names_that_reader(
    client: TestClient, session: Session, settings: Settings
) -> None:
    # reader1 walks R-1 with the handheld; the next day reader2, on R-2 with the same handheld,
    # pushes readings with reader1's walk replayed as their own track.
    first = reader_day(session, settings, client, n_meters=6)
    other = reader_day(session, settings, client, username="reader2", route_code="R-2", n_meters=6)
    readings, track = honest_day(first.meters, START, assignment_id=aid(first), seed=5)
    push(client, first, readings, track)
    own, _ = honest_day(other.meters, START + timedelta(days=1), assignment_id=aid(other), seed=6)
    push(client, other, own, shifted(track, timedelta(days=1)))
    [replay] = [f for f in validate(session, settings, other) if f.code == "replayed_track"]
    assert replay.params is not None
    assert replay.params["reader"] == "reader1"
    assert replay.params["device"] is None  # the same handheld
    assert replay.params["assignment"] == aid(first)
    assert replay.params["copied_day"] == START.date().isoformat()
    assert "replayed_track" not in codes(validate(session, settings, first))
