"""The push stored set-based keeps every promise of the item-by-item push: answers in the order
sent, a duplicate answered `duplicate`, other content under a held id `locked`, one bad item
never blocking the rest, exactly the good items stored, each once, each chained in the ledger;
two pushes of one outbox at once store each reading once; the body is decoded off the event
loop."""

from __future__ import annotations

import gc
import json
import logging
import sys
import threading
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from server.api.routes import sync as sync_routes
from server.core import db
from server.core.config import Settings
from server.main import create_app
from server.models import LedgerEntry, Reading, TrackPoint
from server.schemas.requests import json_free_of_controls
from server.sync import bulk
from server.sync import push as pushing
from tests.conftest import LiveServer
from tests.factories import (
    READ_AT,
    login,
    make_route,
    make_user,
    meters_of,
    reader_day,
    reading,
    track_point,
)
from tests.server.test_cli import gridwalk

PUSH = "/api/v1/sync/push"


def stored(session: Session) -> dict[str, int]:
    """Each stored reading's id, with how many ledger links name it."""
    session.commit()  # a fresh view of what the requests wrote
    ids = {str(i) for i in session.exec(select(Reading.id)).all()}
    links = session.exec(
        select(LedgerEntry.subject_id).where(LedgerEntry.subject == "reading")
    ).all()
    return {i: sum(1 for s in links if s == i) for i in ids}


def test_a_batch_mixing_new_duplicate_conflicting_and_bad_items_is_answered_in_order(
    client: TestClient, session: Session, settings: Settings, db_url: str
) -> None:
    day = reader_day(session, settings, client, n_meters=6)
    other_route = make_route(session, "R-2", 1)
    a = day.assignment.id
    held = reading(a, day.meters[0])
    first = client.post(PUSH, headers=day.headers, json={"readings": [held]})
    assert first.json()["results"][0]["status"] == "accepted"

    new = reading(a, day.meters[1])
    new_twice = dict(new)
    other_content = held | {"value": "2222.5"}
    invalid = reading(a, day.meters[2]) | {"value": None}
    read_again = reading(a, day.meters[0])  # a new id for a meter already read
    beyond_dials = reading(a, day.meters[3], value="1000000")  # 7 digits on 6 dials
    off_route = reading(a, meters_of(session, other_route)[0])
    unknown = reading(999_999, day.meters[4])
    second_of_new = reading(a, day.meters[1])  # the meter the new item just read
    new_too = reading(a, day.meters[5], value=None, skip_code="no_access")
    batch = [
        new,
        held,
        other_content,
        invalid,
        read_again,
        beyond_dials,
        new_twice,
        off_route,
        unknown,
        second_of_new,
        new_too,
    ]
    response = client.post(PUSH, headers=day.headers, json={"readings": batch})
    assert response.status_code == 200, response.text
    answers = [(r["id"], r["status"], r["error"]) for r in response.json()["results"]]
    assert answers == [
        (new["id"], "accepted", None),
        (held["id"], "duplicate", None),
        (held["id"], "rejected", "locked"),
        (invalid["id"], "rejected", "invalid"),
        (read_again["id"], "rejected", "already_read"),
        (beyond_dials["id"], "rejected", "value_exceeds_dials"),
        (new["id"], "duplicate", None),
        (off_route["id"], "rejected", "meter_not_on_route"),
        (unknown["id"], "rejected", "unknown_assignment"),
        (second_of_new["id"], "rejected", "already_read"),
        (new_too["id"], "accepted", None),
    ]
    # Exactly the good ones, each once and each chained once; the chain still verifies.
    assert stored(session) == {held["id"]: 1, new["id"]: 1, new_too["id"]: 1}
    skip = session.get_one(Reading, uuid.UUID(new_too["id"]))
    assert (skip.value, skip.skip_code) == (None, "no_access")
    result = gridwalk(db_url, "verify")
    assert result.exit_code == 0, result.output


def test_the_same_batch_again_is_all_duplicates_and_stores_nothing(
    client: TestClient, session: Session, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retried outbox (its answer lost on the way) is answered set-based too: no item of it
    goes the per-item path."""
    day = reader_day(session, settings, client)
    batch = [reading(day.assignment.id, m) for m in day.meters]
    one_by_one: list[Any] = []
    store_reading = pushing.store_reading
    monkeypatch.setattr(
        pushing, "store_reading", lambda *a: one_by_one.append(a[2]) or store_reading(*a)
    )
    for expected in ("accepted", "duplicate"):
        response = client.post(PUSH, headers=day.headers, json={"readings": batch})
        assert [r["status"] for r in response.json()["results"]] == [expected] * len(batch)
    assert stored(session) == {r["id"]: 1 for r in batch}
    assert one_by_one == []


def test_track_points_mixing_new_held_repeated_and_bad_are_counted_and_stored_once(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client)
    ts = [READ_AT + timedelta(seconds=5 * i) for i in range(6)]
    client.post(PUSH, headers=day.headers, json={"track_points": [track_point(ts[0])]})
    points = [
        track_point(ts[0]),  # held
        track_point(ts[1]),
        track_point(ts[1]),  # twice in this push
        track_point(ts[2], lat=95.0),  # off the globe
        *(track_point(t) for t in ts[3:]),
    ]
    response = client.post(PUSH, headers=day.headers, json={"track_points": points})
    track = response.json()["track"]
    assert (track["accepted"], track["duplicate"]) == (4, 2)
    assert [r["index"] for r in track["rejected"]] == [3]
    session.commit()
    held = session.exec(select(TrackPoint.t).order_by(col(TrackPoint.t))).all()
    assert held == [ts[0], ts[1], *ts[3:]]


def test_a_time_with_no_utc_day_is_refused_by_index_not_a_500(
    client: TestClient, session: Session, settings: Settings
) -> None:
    """The last second of year 9999 west of UTC has no UTC time: moving it there overflows."""
    day = reader_day(session, settings, client)
    points = [track_point(READ_AT), {**track_point(READ_AT), "t": "9999-12-31T23:59:59-23:59"}]
    response = client.post(PUSH, headers=day.headers, json={"track_points": points})
    assert response.status_code == 200, response.text
    track = response.json()["track"]
    assert (track["accepted"], [r["index"] for r in track["rejected"]]) == (1, [1])
    assert "between 2000 and 2099" in track["rejected"][0]["error"]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_pushes_of_one_outbox_at_once_store_each_reading_once(
    live_server: LiveServer, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both pushes look up the ids before either inserts (a barrier holds them there): both see
    nothing held, both insert; the second waits on the first's rows, stores none of them, and
    the per-item path answers each `duplicate`."""
    settings = live_server.settings
    with TestClient(create_app(settings, live_server.engine)) as office:
        day = reader_day(session, settings, office, n_meters=20)
        token = login(office, "reader1", device_id="device-0002")["access_token"]
    both_looked = threading.Barrier(2, timeout=30)
    insert = bulk._insert_readings

    def insert_together(
        session: Session, rows: list[dict[str, Any]], same: dict[str, Any]
    ) -> set[str]:
        both_looked.wait()
        return insert(session, rows, same)

    monkeypatch.setattr(bulk, "_insert_readings", insert_together)
    batch = [reading(day.assignment.id, m) for m in day.meters]
    answers: dict[str, list[str]] = {}

    def send(headers: dict[str, str], name: str) -> None:
        response = httpx.post(
            live_server.url + PUSH, headers=headers, json={"readings": batch}, timeout=60
        )
        assert response.status_code == 200, response.text
        answers[name] = [r["status"] for r in response.json()["results"]]

    pushes = [
        threading.Thread(target=send, args=(day.headers, "one")),
        threading.Thread(target=send, args=({"Authorization": f"Bearer {token}"}, "two")),
    ]
    for thread in pushes:
        thread.start()
    for thread in pushes:
        thread.join(timeout=60)
    assert sorted(answers.values()) == [["accepted"] * 20, ["duplicate"] * 20]
    assert stored(session) == {r["id"]: 1 for r in batch}


def staging_counted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many points each push hands to the staging path (bulk.copy_then_insert), in order."""
    staged: list[int] = []
    copy_then_insert = bulk.copy_then_insert

    def staging(session: Session, table: Any, columns: Any, rows: Any, returning: str) -> Any:
        rows = list(rows)
        staged.append(len(rows))
        return copy_then_insert(session, table, columns, rows, returning)

    monkeypatch.setattr(bulk, "copy_then_insert", staging)
    return staged


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_pushes_of_one_track_at_once_store_each_point_once(
    live_server: LiveServer,
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Both pushes look for held points before either stores (a barrier holds them there): both
    see none and copy straight into track_points; the second waits on the first's rows, its
    COPY fails on the unique key, its savepoint alone is rolled back, and the staging path
    answers every point `duplicate`."""
    caplog.set_level(logging.INFO, logger="gridwalk")
    settings = live_server.settings
    with TestClient(create_app(settings, live_server.engine)) as office:
        day = reader_day(session, settings, office, n_meters=1)
    both_looked = threading.Barrier(2, timeout=30)
    held = bulk.track_held

    def held_together(*args: Any) -> bool:
        answer = held(*args)
        both_looked.wait()
        return answer

    monkeypatch.setattr(bulk, "track_held", held_together)
    staged = staging_counted(monkeypatch)
    ts = [READ_AT + timedelta(seconds=5 * i) for i in range(50)]
    points = [track_point(t) for t in ts]
    answers: list[tuple[int, int]] = []

    def send() -> None:
        response = httpx.post(
            live_server.url + PUSH, headers=day.headers, json={"track_points": points}, timeout=60
        )
        assert response.status_code == 200, response.text
        track = response.json()["track"]
        assert track["rejected"] == []
        answers.append((track["accepted"], track["duplicate"]))

    pushes = [threading.Thread(target=send) for _ in range(2)]
    for thread in pushes:
        thread.start()
    for thread in pushes:
        thread.join(timeout=60)
    assert sorted(answers) == [(0, 50), (50, 0)]
    assert staged == [50]  # the loser's points, answered by the staging path
    assert len([r for r in caplog.records if "stored meanwhile" in r.getMessage()]) == 1
    session.commit()
    held_ts = session.exec(select(TrackPoint.t).order_by(col(TrackPoint.t))).all()
    assert held_ts == ts


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_new_points_are_copied_straight_in_and_a_span_holding_one_goes_by_staging(
    client: TestClient,
    session: Session,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The look-up decides: a push whose span holds a point never tries the COPY (which would
    fail on the unique key, an error in the database's log for every retried push)."""
    caplog.set_level(logging.INFO, logger="gridwalk")
    day = reader_day(session, settings, client)
    staged = staging_counted(monkeypatch)
    ts = [READ_AT + timedelta(seconds=5 * i) for i in range(9)]

    def push(times: list[Any]) -> tuple[int, int]:
        body = {"track_points": [track_point(t) for t in times]}
        track = client.post(PUSH, headers=day.headers, json=body).json()["track"]
        return track["accepted"], track["duplicate"]

    assert push(ts[:3]) == (3, 0)
    assert push(ts[6:]) == (3, 0)
    assert staged == []
    # Its span (ts[2] to ts[6]) holds points of this reader's device: staged, stored once.
    assert push(ts[2:7]) == (3, 2)
    assert staged == [5]
    assert not [r for r in caplog.records if "stored meanwhile" in r.getMessage()]
    session.commit()
    assert session.exec(select(TrackPoint.t).order_by(col(TrackPoint.t))).all() == ts


def test_the_push_body_is_decoded_off_the_event_loop(
    live_server: LiveServer, session: Session
) -> None:
    """While one push's body is being decoded (held here until the test lets it go), the server
    still answers other requests: the decoding does not hold the event loop."""
    make_user(session, live_server.settings, "reader1", "reader", "G1")
    with TestClient(create_app(live_server.settings, live_server.engine)) as office:
        token = login(office, "reader1")["access_token"]
    decoding = threading.Event()
    go_on = threading.Event()
    decoded = sync_routes._decoded

    def held_decode(body: bytes, encoding: str, settings: Settings) -> Any:
        decoding.set()
        assert go_on.wait(timeout=30)
        return decoded(body, encoding, settings)

    pushed: list[int] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sync_routes, "_decoded", held_decode)
        pusher = threading.Thread(
            target=lambda: pushed.append(
                httpx.post(
                    live_server.url + PUSH,
                    headers={"Authorization": f"Bearer {token}"},
                    json={"readings": []},
                    timeout=60,
                ).status_code
            )
        )
        pusher.start()
        assert decoding.wait(timeout=30)
        try:
            assert httpx.get(live_server.url + "/healthz", timeout=10).status_code == 200
        finally:
            go_on.set()
            pusher.join(timeout=60)
    assert pushed == [200]


def test_two_new_items_under_one_id_store_the_first_as_sent_and_lock_the_second(
    client: TestClient, session: Session, settings: Settings, db_url: str
) -> None:
    """Each item is hashed as itself: the first is stored with its own content hash (the chain
    verifies) and the second, other content under the id just stored, is `locked`."""
    day = reader_day(session, settings, client, n_meters=2)
    first = reading(day.assignment.id, day.meters[0])
    second = reading(day.assignment.id, day.meters[1]) | {"id": first["id"]}
    response = client.post(PUSH, headers=day.headers, json={"readings": [first, second]})
    assert response.status_code == 200, response.text
    answers = [(r["status"], r["error"]) for r in response.json()["results"]]
    assert answers == [("accepted", None), ("rejected", "locked")]
    assert session.get_one(Reading, uuid.UUID(first["id"])).meter_id == day.meters[0].id
    result = gridwalk(db_url, "verify")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("note", "named"),
    [
        ("a\u0000b", "NUL"),
        ("a\u001fb", "U+001F"),
        ("a\bb", "U+0008"),
        ("a\fb", "U+000C"),
        ("a\u007fb", "U+007F"),
    ],
)
def test_a_control_character_in_a_pushed_reading_is_refused_though_bodies_are_scanned_whole(
    client: TestClient, session: Session, settings: Settings, note: str, named: str
) -> None:
    """The push clears a body of control characters in one scan of its text and skips the walk
    through each item only then: each way JSON can spell one (escaped, or DEL raw) still gets
    the item refused by name, and the rest of the push stored."""
    day = reader_day(session, settings, client, n_meters=2)
    bad = reading(day.assignment.id, day.meters[0], note=note)
    good = reading(day.assignment.id, day.meters[1])
    for body in (
        json.dumps({"readings": [bad, good]}),  # escaped (DEL as \u007f)
        json.dumps({"readings": [bad, good]}, ensure_ascii=False),  # DEL raw
    ):
        response = client.post(
            PUSH, headers=day.headers | {"Content-Type": "application/json"}, content=body
        )
        assert response.status_code == 200, response.text
        refused, stored_ = response.json()["results"]
        assert (refused["status"], refused["error"]) == ("rejected", "invalid")
        assert named in refused["detail"]
        assert stored_["status"] in ("accepted", "duplicate")


def test_json_free_of_controls_clears_only_text_that_can_hold_none() -> None:
    assert json_free_of_controls(json.dumps({"note": "line\r\n\tend, 中文"}).encode())
    for value in ("\u0000", "\u0001", "\b", "\f", "\u001f", "\u007f"):
        for ascii_only in (True, False):
            text = json.dumps({"note": f"a{value}b"}, ensure_ascii=ascii_only)
            assert not json_free_of_controls(text.encode()), (value, ascii_only)
    # Another encoding than UTF-8 (json.loads reads UTF-16 too) is never cleared.
    assert not json_free_of_controls(json.dumps({"note": "a"}).encode("utf-16"))


def test_the_server_shortens_the_thread_switch_interval_while_it_runs(
    settings: Settings, engine: Any
) -> None:
    before = sys.getswitchinterval()
    running = settings.model_copy(update={"thread_switch_interval_s": 0.0007})
    with TestClient(create_app(running, engine)):
        assert sys.getswitchinterval() == pytest.approx(0.0007)
    assert sys.getswitchinterval() == pytest.approx(before)


def test_the_server_sets_what_it_holds_aside_from_the_cycle_collector_while_it_runs(
    settings: Settings, engine: Any
) -> None:
    """Its tables, schemas and routes are frozen while it serves (a collection then walks only
    what requests make), and given back when it stops: nothing frozen stays uncollectable."""
    gc.unfreeze()
    with TestClient(create_app(settings, engine)):
        frozen = gc.get_freeze_count()
    assert frozen > 10_000  # the app, its modules' objects and SQLAlchemy's tables
    assert gc.get_freeze_count() == 0


def test_on_sqlite_a_push_stores_in_its_process_s_turn_at_the_write_lock(
    client: TestClient, session: Session, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's waiters for its one write lock sleep and try again, and six pushes at once had
    answers of seconds: a push waits for its process's turn first, which hands the lock on at
    once. PostgreSQL locks rows: no turn there."""
    day = reader_day(session, settings, client)
    turn_held: list[bool] = []
    store = pushing.store

    def store_noting_the_turn(*args: Any, **kwargs: Any) -> Any:
        turn_held.append(db._SQLITE_WRITE_TURN.locked())
        return store(*args, **kwargs)

    monkeypatch.setattr(pushing, "store", store_noting_the_turn)
    response = client.post(
        PUSH, headers=day.headers, json={"readings": [reading(day.assignment.id, day.meters[0])]}
    )
    assert response.status_code == 200, response.text
    assert turn_held == [session.get_bind().dialect.name == "sqlite"]
    assert not db._SQLITE_WRITE_TURN.locked()  # let go with the commit
