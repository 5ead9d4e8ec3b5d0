"""The validation queue: a push stores, queues and answers; workers validate afterwards, each
assignment in its own transaction, surviving crashes and poison items (server/validation/queue.py).

These tests run the app with no worker and no draining in the request: the queue is drained
here, explicitly, so nothing depends on a thread's timing (except the one test of the
server's own worker, which waits for it with a bound)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine
from sqlmodel import Session, select

from common.clock import Clock
from server.core.config import Settings
from server.demo.days import home_day, honest_day
from server.main import create_app
from server.models import Assignment, AssignmentVerdict, BillingFeedItem, Flag, ValidationWork
from server.validation import queue, runner
from server.validation.runner import close_due_assignments
from tests.factories import (
    TODAY,
    WINDOW_END,
    ReaderDay,
    assign,
    auth,
    local_time,
    make_route,
    make_user,
    reader_day,
    reader_days,
    track_point,
)
from tests.server.test_cli import gridwalk

MORNING = local_time(TODAY - timedelta(days=1), 9)
HOME_OFFSET = 0.01  # about 1.4 km: every reading is far from the track


@pytest.fixture
def queued(settings: Settings) -> Settings:
    """The server as deployed, minus its worker: pushes queue, nothing drains but the test."""
    return settings.model_copy(update={"validation_in_request": False, "validation_workers": 0})


@pytest.fixture
def app_client(queued: Settings, engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(queued, engine)) as client:
        yield client


def push(client: TestClient, day: ReaderDay, **body: Any) -> dict[str, Any]:
    response = client.post("/api/v1/sync/push", headers=day.headers, json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def work(session: Session) -> dict[int, ValidationWork]:
    session.commit()  # a fresh look at what other transactions committed
    return {
        w.assignment_id: w
        for w in session.exec(
            select(ValidationWork).execution_options(populate_existing=True)
        ).all()
    }


def flag_codes(session: Session, assignment_id: int | None) -> list[tuple[str, Any]]:
    session.commit()
    return sorted(
        (f.code, f.reading_id)
        for f in session.exec(select(Flag).where(Flag.assignment_id == assignment_id)).all()
    )


def home_pushed(client: TestClient, day: ReaderDay) -> list[dict[str, Any]]:
    home = (day.meters[0].lat + HOME_OFFSET, day.meters[0].lon + HOME_OFFSET)
    readings, track = home_day(day.meters, MORNING, assignment_id=day.assignment.id, home=home)
    push(client, day, readings=readings, track_points=track)
    return readings


def two_home_days(
    client: TestClient, session: Session, settings: Settings
) -> tuple[ReaderDay, ReaderDay]:
    """Two readers' days typed at home and pushed: one to poison the queue, one beside it."""
    poison = reader_day(session, settings, client, n_meters=3)
    other = reader_day(
        session, settings, client, username="reader2", route_code="R-2", device_id="device-2"
    )
    home_pushed(client, poison)
    home_pushed(client, other)
    return poison, other


def test_a_push_answers_with_its_items_stored_and_the_work_queued_not_done(
    app_client: TestClient, session: Session, queued: Settings, engine: Engine
) -> None:
    day = reader_day(session, queued, app_client, n_meters=6)
    readings = home_pushed(app_client, day)
    queued_now = work(session)
    assert set(queued_now) == {day.assignment.id}
    item = queued_now[day.assignment.id]
    read_at = sorted(datetime.fromisoformat(r["read_at"]) for r in readings)
    # The span covers the readings (and the track, which runs round them).
    assert item.t_min <= read_at[0]
    assert item.t_max >= read_at[-1]
    assert (item.attempts, item.claimed_at) == (0, None)
    assert flag_codes(session, day.assignment.id) == []  # not validated yet

    drained = queue.drain(engine, queued)
    assert (drained.validated, drained.failed) == (1, 0)
    assert work(session) == {}
    found = flag_codes(session, day.assignment.id)
    # What validating inside the push used to give (test_validation_on_push): every reading
    # not on the track, and the meters typed with last cycle's register unchanged.
    not_on_track = {str(rid) for code, rid in found if code == "not_on_track"}
    assert not_on_track == {r["id"] for r in readings}
    assert sum(1 for code, _ in found if code == "unchanged") == 2


def test_the_queue_drains_to_the_same_flags_as_validating_directly(
    app_client: TestClient, session: Session, queued: Settings, engine: Engine
) -> None:
    day = reader_day(session, queued, app_client, n_meters=6)
    home_pushed(app_client, day)
    assert day.assignment.id is not None
    queue.drain(engine, queued)
    drained = flag_codes(session, day.assignment.id)
    with Session(engine) as direct:
        runner.validate_assignment(direct, assignment_id=day.assignment.id, settings=queued)
        direct.commit()
    assert flag_codes(session, day.assignment.id) == drained != []


def test_pushes_coalesce_into_one_item_with_their_spans_merged(
    app_client: TestClient, session: Session, queued: Settings, engine: Engine
) -> None:
    day = reader_day(session, queued, app_client, n_meters=4)
    readings, track = honest_day(day.meters, MORNING, assignment_id=day.assignment.id, seed=3)
    push(app_client, day, readings=readings[:2])
    held = work(session)[day.assignment.id]
    first_min, first_max, since = held.t_min, held.t_max, held.pending_since
    push(app_client, day, readings=readings[2:])
    push(app_client, day, track_points=track)
    [item] = work(session).values()
    assert item.version == 3
    assert item.pending_since == since
    assert item.t_min <= first_min
    assert item.t_max > first_max
    assert queue.drain(engine, queued).validated == 1
    assert flag_codes(session, day.assignment.id) == []  # the late track witnessed them all


def test_a_track_batch_queues_only_the_assignments_its_points_can_witness(
    app_client: TestClient, session: Session, queued: Settings, engine: Engine
) -> None:
    day = reader_day(session, queued, app_client, n_meters=2)
    make_route(session, "R-OLD", 2)
    make_route(session, "R-NEXT", 2)
    long_ago = TODAY - timedelta(days=40)
    old = assign(session, "R-OLD", "reader1", "C-old", long_ago - timedelta(days=4), long_ago)
    later = TODAY + timedelta(days=20)
    assign(session, "R-NEXT", "reader1", "C-next", later, later + timedelta(days=4))
    point = track_point(MORNING, day.meters[0].lat, day.meters[0].lon)
    push(app_client, day, track_points=[point])
    assert set(work(session)) == {day.assignment.id}
    assert old.id not in work(session)


def test_work_claimed_by_a_worker_that_died_is_taken_up_after_the_lease(
    app_client: TestClient,
    session: Session,
    queued: Settings,
    engine: Engine,
    clock: Clock,
) -> None:
    day = reader_day(session, queued, app_client, n_meters=6)
    home_pushed(app_client, day)
    dead = queue.claim(engine, queued, worker="crashed-host:1:0")
    assert dead is not None
    assert dead.assignment_id == day.assignment.id
    # The process dies here: claimed, never validated. Within the lease it is left alone ...
    assert queue.drain(engine, queued).validated == 0
    assert flag_codes(session, day.assignment.id) == []
    # ... and after it, another worker takes it up.
    clock.advance(timedelta(seconds=queued.validation_claim_lease_s + 1))
    assert queue.drain(engine, queued).validated == 1
    assert work(session) == {}
    assert flag_codes(session, day.assignment.id) != []


def test_a_push_during_validation_leaves_the_item_to_be_validated_again(
    app_client: TestClient, session: Session, queued: Settings, engine: Engine
) -> None:
    day = reader_day(session, queued, app_client, n_meters=4)
    readings, track = honest_day(day.meters, MORNING, assignment_id=day.assignment.id, seed=3)
    push(app_client, day, readings=readings)
    taken = queue.claim(engine, queued, worker="w1")
    assert taken is not None
    push(app_client, day, track_points=track)  # lands while w1 validates
    assert queue.validate_claimed(engine, queued, taken)
    [item] = work(session).values()
    assert (item.claimed_at, item.version) == (None, 2)  # w1 may not have seen the track
    assert queue.drain(engine, queued).validated == 1
    assert work(session) == {}
    assert flag_codes(session, day.assignment.id) == []


def test_a_poison_item_backs_off_and_does_not_block_the_others(
    app_client: TestClient,
    session: Session,
    queued: Settings,
    engine: Engine,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    poison, other = two_home_days(app_client, session, queued)
    assert set(work(session)) == {poison.assignment.id, other.assignment.id}

    real = queue.validate_assignment

    def validate(session: Session, *, assignment_id: int, **kw: Any) -> list[Flag]:
        if assignment_id == poison.assignment.id:
            raise RuntimeError("a row the rules choke on")
        return real(session, assignment_id=assignment_id, **kw)

    monkeypatch.setattr(queue, "validate_assignment", validate)
    drained = queue.drain(engine, queued)
    assert (drained.validated, drained.failed) == (1, 1)
    assert flag_codes(session, other.assignment.id) != []
    [item] = work(session).values()
    assert (item.assignment_id, item.attempts, item.claimed_at) == (poison.assignment.id, 1, None)
    assert item.last_error == "RuntimeError: a row the rules choke on"
    retry = timedelta(seconds=queued.validation_retry_s)
    assert item.next_attempt_at == clock.now() + retry
    assert queue.drain(engine, queued).failed == 0  # backing off: not due yet

    clock.advance(retry)
    assert queue.drain(engine, queued).failed == 1
    item = work(session)[poison.assignment.id]
    assert item.attempts == 2
    assert item.next_attempt_at == clock.now() + 2 * retry  # the wait doubles

    monkeypatch.setattr(queue, "validate_assignment", real)  # the bug is fixed
    clock.advance(2 * retry)
    assert queue.drain(engine, queued).validated == 1
    assert work(session) == {}
    assert flag_codes(session, poison.assignment.id) != []


def test_the_server_worker_validates_after_a_push_by_itself(
    session: Session, queued: Settings, engine: Engine
) -> None:
    # The day is made before the worker starts: on SQLite the test's own (deferred) session
    # cannot take the write lock while the worker's first look at the queue holds it.
    with TestClient(create_app(queued, engine)) as setup:
        day = reader_day(session, queued, setup, n_meters=6)
    session.commit()
    running = queued.model_copy(update={"validation_workers": 1, "validation_poll_s": 3600})
    with TestClient(create_app(running, engine)) as client:
        home_pushed(client, day)
        # A bound on waiting for the worker (woken by the push), not a measure of its speed:
        # the poll interval is an hour, so only the wake-up can have drained it.
        deadline = time.monotonic() + 120
        while work(session) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert work(session) == {}
    assert flag_codes(session, day.assignment.id) != []


# Several workers share a PostgreSQL database; SQLite's single writer has nothing to skip.
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_workers_never_take_the_same_item(
    app_client: TestClient, session: Session, queued: Settings, engine: Engine
) -> None:
    days = reader_days(session, queued, app_client, 6)
    for day in days:
        home_pushed(app_client, day)
    # A claim in progress (its row locked, not yet committed) is skipped, not waited for: a
    # worker that waited would fail here on the lock timeout instead.
    impatient = create_engine(
        engine.url.render_as_string(hide_password=False),
        connect_args={"options": "-c lock_timeout=5000"},
    )
    try:
        with Session(engine) as holder:
            first = holder.exec(
                select(ValidationWork)
                .order_by(ValidationWork.next_attempt_at, ValidationWork.assignment_id)
                .limit(1)
                .with_for_update()
            ).one()
            other = queue.claim(impatient, queued, worker="w2")
            assert other is not None
            assert other.assignment_id != first.assignment_id
            holder.rollback()
    finally:
        impatient.dispose()

    # Two workers draining at once validate each assignment once, never two at a time.
    real = queue.validate_assignment
    busy: set[int] = set()
    seen: list[int] = []
    overlaps: list[int] = []
    guard = threading.Lock()

    def validate(session: Session, *, assignment_id: int, **kw: Any) -> list[Flag]:
        with guard:
            if assignment_id in busy:
                overlaps.append(assignment_id)
            busy.add(assignment_id)
            seen.append(assignment_id)
        try:
            return real(session, assignment_id=assignment_id, **kw)
        finally:
            with guard:
                busy.discard(assignment_id)

    queue_validate = queue.validate_assignment
    try:
        queue.validate_assignment = validate  # type: ignore[assignment]
        results: list[queue.Drained] = []
        threads = [
            threading.Thread(
                target=lambda w=w: results.append(queue.drain(engine, queued, worker=w))
            )
            for w in ("w1", "w2")
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        queue.validate_assignment = queue_validate  # type: ignore[assignment]
    assert overlaps == []
    # w2's claim above is still held (a live worker's); the rest were validated once each.
    assert sorted(seen) == sorted(
        d.assignment.id for d in days if d.assignment.id != other.assignment_id
    )
    assert sum(r.validated for r in results) == len(days) - 1
    assert set(work(session)) == {other.assignment_id}


def test_closing_takes_the_assignment_off_the_queue(
    app_client: TestClient, session: Session, queued: Settings
) -> None:
    day = reader_day(session, queued, app_client, n_meters=3)
    home_pushed(app_client, day)
    make_user(session, queued, "sup1", "supervisor", "G1")
    sup = auth(app_client, "sup1", "sup-desk-01")
    url = f"/api/v1/audit/assignments/{day.assignment.id}/close"
    assert app_client.post(url, headers=sup).status_code == 200
    assert work(session) == {}
    assert ("missed", None) not in flag_codes(session, day.assignment.id)  # all were read
    assert any(code == "not_on_track" for code, _ in flag_codes(session, day.assignment.id))


def test_close_due_closes_each_assignment_in_its_own_transaction(
    session: Session,
    settings: Settings,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_user(session, settings, "reader1", "reader", "G1")
    ended = TODAY - timedelta(days=30)
    ids = []
    for i in range(3):
        make_route(session, f"R-{i}", 2)
        ids.append(
            assign(session, f"R-{i}", "reader1", f"C-{i}", ended - timedelta(days=4), ended).id
        )
    real = runner.judge_assignment

    def judge(session: Session, assignment: Assignment, **kw: Any) -> runner.Judgement:
        if assignment.id == ids[1]:
            raise RuntimeError("cannot validate")
        return real(session, assignment, **kw)

    monkeypatch.setattr(runner, "judge_assignment", judge)
    now = local_time(TODAY, 9)
    # The failing one is left open; the ones before and after it are closed and committed.
    assert close_due_assignments(engine, settings=settings, now=now) == [ids[0], ids[2]]
    session.commit()

    def statuses() -> list[str]:
        session.commit()
        return [
            session.exec(
                select(Assignment.status)
                .where(Assignment.id == i)
                .execution_options(populate_existing=True)
            ).one()
            for i in ids
        ]

    assert statuses() == ["closed", "open", "closed"]
    assert session.exec(select(Flag).where(Flag.assignment_id == ids[1])).all() == []
    # The next run takes up what is left.
    monkeypatch.setattr(runner, "judge_assignment", real)
    assert close_due_assignments(engine, settings=settings, now=now) == [ids[1]]
    assert statuses() == ["closed", "closed", "closed"]


@pytest.mark.parametrize("meanwhile", ["queued", "validated"])
def test_data_arriving_while_close_due_judges_is_judged_again_under_the_lock(
    app_client: TestClient,
    session: Session,
    queued: Settings,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    meanwhile: str,
) -> None:
    """close-due judges without the row lock, then writes under it: a reading pushed in between
    (its work still queued, or already validated by a worker) must not be written over by a
    judgement that did not see it."""
    day = reader_day(session, queued, app_client, n_meters=3)
    readings, track = honest_day(day.meters, MORNING, assignment_id=day.assignment.id, seed=5)
    push(app_client, day, readings=readings[:2], track_points=track)
    assert queue.drain(engine, queued).validated == 1
    real = runner.judge_assignment
    judged: list[set[str]] = []

    def judge(session: Session, assignment: Assignment, **kw: Any) -> runner.Judgement:
        judgement = real(session, assignment, **kw)
        if not kw.get("closing"):
            return judgement  # the worker's validation of the late reading
        judged.append({f.code for f in judgement.findings.values()})
        if len(judged) == 1:  # the late reading lands after the first judging
            push(app_client, day, readings=readings[2:])
            if meanwhile == "validated":
                assert queue.drain(engine, queued).validated == 1
        return judgement

    monkeypatch.setattr(runner, "judge_assignment", judge)
    after_window = local_time(WINDOW_END + timedelta(days=1), 9)
    assert close_due_assignments(engine, settings=queued, now=after_window) == [day.assignment.id]
    # Judged twice: first without the late reading (the third meter missed), then under the
    # lock with it, and that is what was written.
    assert judged == [{"missed"}, set()]
    assert flag_codes(session, day.assignment.id) == []
    assert work(session) == {}
    verdict = session.get(AssignmentVerdict, day.assignment.id)
    assert verdict is not None
    assert verdict.params["done"] == 3


def test_close_due_in_several_processes_closes_each_once(
    app_client: TestClient, session: Session, queued: Settings, engine: Engine
) -> None:
    """`close-due --workers 2`: two processes judge side by side; every ended assignment is
    closed once, with its flags, its verdict and its billing."""
    days = reader_days(session, queued, app_client, 4)
    for i, day in enumerate(days):
        readings, track = honest_day(day.meters, MORNING, assignment_id=day.assignment.id, seed=i)
        push(app_client, day, readings=readings[: i % 3 + 1], track_points=track)
    ids = [day.assignment.id for day in days]
    after_window = local_time(WINDOW_END + timedelta(days=1), 9)
    closed = close_due_assignments(engine, settings=queued, now=after_window, workers=2)
    assert closed == ids
    session.commit()
    for i, day in enumerate(days):
        read = i % 3 + 1
        assert [code for code, _ in flag_codes(session, day.assignment.id)] == ["missed"] * (
            3 - read
        )
        assignment = session.get(Assignment, day.assignment.id, populate_existing=True)
        assert assignment is not None
        assert assignment.status == "closed"
        verdict = session.get(AssignmentVerdict, day.assignment.id)
        assert verdict is not None
        assert (verdict.version, verdict.params["done"]) == (1, read)
        billed = session.exec(
            select(BillingFeedItem).where(BillingFeedItem.assignment_id == day.assignment.id)
        ).all()
        assert len(billed) == read
    assert work(session) == {}
    assert close_due_assignments(engine, settings=queued, now=after_window, workers=2) == []


def test_the_audit_api_says_when_validation_is_pending(
    app_client: TestClient, session: Session, queued: Settings, engine: Engine, clock: Clock
) -> None:
    day = reader_day(session, queued, app_client, n_meters=3)
    make_user(session, queued, "sup1", "supervisor", "G1")
    sup = auth(app_client, "sup1", "sup-desk-01")
    pushed_at = clock.now()
    home_pushed(app_client, day)
    clock.advance(timedelta(minutes=1))
    home_pushed(app_client, day)  # the same items again: nothing new, still pending since then

    def progress() -> list[tuple[bool, str | None, str | None]]:
        one = app_client.get(f"/api/v1/audit/assignments/{day.assignment.id}", headers=sup)
        listed = app_client.get("/api/v1/audit/assignments", headers=sup)
        assert one.status_code == listed.status_code == 200
        return [
            (
                a["validation_pending"],
                a["validation_pending_since"],
                a["verdict"]["code"] if a["verdict"] else None,
            )
            for a in (one.json()["assignment"], *listed.json())
        ]

    # Never validated: no verdict yet (it is judged with the flags), no distance walked.
    assert progress() == [(True, pushed_at.isoformat(), None)] * 2
    listed = app_client.get("/api/v1/audit/assignments", headers=sup).json()
    assert listed[0]["distance_walked_m"] is None
    queue.drain(engine, queued)
    assert progress() == [(False, None, "stayed")] * 2  # the reader's day at home
    home = (day.meters[0].lat + HOME_OFFSET, day.meters[0].lon + HOME_OFFSET)
    push(app_client, day, track_points=[track_point(MORNING + timedelta(hours=2), *home)])
    # Judged before: the verdict stays while the new data waits.
    assert progress() == [(True, clock.now().isoformat(), "stayed")] * 2


def test_validate_pending_drains_the_queue_and_names_what_keeps_failing(
    app_client: TestClient,
    session: Session,
    queued: Settings,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    poison, other = two_home_days(app_client, session, queued)
    real = queue.validate_assignment

    def validate(session: Session, *, assignment_id: int, **kw: Any) -> list[Flag]:
        if assignment_id == poison.assignment.id:
            raise RuntimeError("a row the rules choke on")
        return real(session, assignment_id=assignment_id, **kw)

    monkeypatch.setattr(queue, "validate_assignment", validate)
    result = gridwalk(db_url, "validate-pending")
    assert result.exit_code == 0, result.output
    assert "Validated 1 assignment(s); 1 failed this time." in result.output
    assert f"assignment {poison.assignment.id}: 1 failed attempt(s)" in result.output
    assert "RuntimeError: a row the rules choke on" in result.output
    assert set(work(session)) == {poison.assignment.id}
    assert flag_codes(session, other.assignment.id) != []
