"""The tamper-evident chain: every reading received and every admin act is a hash-chained ledger
entry, the database refuses to change one, and `gridwalk verify` names whatever was changed
behind the app's back (with the database's locks turned off, as a table owner can)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, insert, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col, select

from server.core import ledger
from server.core.config import Settings
from server.models import AdminLog, LedgerEntry, Reading
from server.sync.records import stored_reading_hash
from tests.factories import READ_AT, ReaderDay, reading
from tests.server.test_audit import AUDIT, add_flag, push, setup_day, walk
from tests.server.test_bad_input import waiting_on_a_lock
from tests.server.test_cli import gridwalk


def chain(session: Session) -> list[LedgerEntry]:
    entries = list(session.exec(select(LedgerEntry).order_by(col(LedgerEntry.seq))).all())
    session.commit()  # end the read: what the next request writes is seen
    return entries


@contextmanager
def locks_off(engine: Engine, table: str) -> Iterator[Connection]:
    """A connection on which `table`'s append-only lock is off: what the table's owner can do.
    (On PostgreSQL the owner may not SET session_replication_role: that takes a superuser.)"""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
            yield conn
            conn.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER USER"))
        else:
            for verb in ("update", "delete"):
                conn.execute(text(f"DROP TRIGGER {table}_locked_{verb}"))
            yield conn


def a_day_of_work(
    session: Session, settings: Settings, client: TestClient
) -> tuple[ReaderDay, list[str]]:
    """Four readings pushed, a flag reviewed, a re-read ordered and read, the assignment
    closed; returns the day and the ids of the walk's readings (meter 4 stays unread)."""
    day, sup = setup_day(session, settings, client)
    items = walk(day, session, client)
    flag = add_flag(session, day, items[0]["id"])
    review = client.post(
        f"{AUDIT}/flags/{flag.id}/review",
        headers=sup,
        json={"decision": "accepted", "note": "new meter fitted"},
    )
    assert review.status_code == 200, review.text
    order = client.post(
        f"{AUDIT}/assignments/{day.assignment.id}/rereads",
        headers=sup,
        json={"meter_id": day.meters[1].id, "reason": "register unchanged"},
    )
    assert order.status_code == 201, order.text
    again = reading(
        day.assignment.id,
        day.meters[1],
        value="1177",
        at=READ_AT + timedelta(hours=1),
        reread_of=order.json()["id"],
    )
    assert push(client, day, readings=[again])["results"][0]["status"] == "accepted"
    closed = client.post(f"{AUDIT}/assignments/{day.assignment.id}/close", headers=sup)
    assert closed.status_code == 200, closed.text
    return day, [item["id"] for item in items]


def test_every_reading_review_reread_close_and_admin_act_is_a_chained_entry(
    db_url: str, session: Session, settings: Settings, client: TestClient
) -> None:
    _day, ids = a_day_of_work(session, settings, client)
    entries = chain(session)
    readings = [e.subject_id for e in entries if e.action == "reading.received"]
    assert set(ids) <= set(readings)
    assert len(readings) == 5  # the walk and the re-read
    assert {"flag.accepted", "reread.order", "assignment.close"} <= {e.action for e in entries}
    held = {str(r.id): r.content_hash for r in session.exec(select(Reading)).all()}
    assert {e.subject_id: e.content_hash for e in entries if e.subject == "reading"} == held
    logs = session.exec(select(AdminLog)).all()
    assert sorted(e.subject_id for e in entries if e.subject == "admin_log") == sorted(
        str(log.id) for log in logs
    )
    prev = ledger.GENESIS
    for seq, entry in enumerate(entries, start=1):
        assert (entry.seq, entry.prev_hash) == (seq, prev)
        assert entry.hash == ledger.entry_hash(prev, ledger.entry_content(entry))
        prev = entry.hash
    session.commit()

    result = gridwalk(db_url, "verify")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Intact: {len(entries)} ledger entries, 5 readings")
    assert len(result.output.splitlines()) == 1


def test_a_rolled_back_request_or_item_leaves_no_entry(session: Session) -> None:
    session.add(AdminLog(action="request.failed", object_type="t", object_id="1"))
    session.flush()
    session.rollback()  # the request raised
    refused = session.begin_nested()  # an item's savepoint, rolled back
    session.add(AdminLog(action="item.refused", object_type="t", object_id="2"))
    session.flush()
    refused.rollback()
    session.add(AdminLog(action="kept", object_type="t", object_id="3"))
    session.commit()
    assert [e.action for e in chain(session)] == ["kept"]


def test_the_database_refuses_to_change_or_delete_a_ledger_or_admin_log_entry(
    engine: Engine, session: Session
) -> None:
    session.add(AdminLog(action="user.create", object_type="user", object_id="1"))
    session.commit()
    for statement in (
        "UPDATE ledger SET action = 'x'",
        "DELETE FROM ledger",
        "UPDATE audit_log SET detail = NULL",
        "DELETE FROM audit_log",
    ):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    assert len(chain(session)) == 1


def test_verify_names_a_changed_reading_an_edited_admin_log_entry_and_a_forged_reading(
    db_url: str, engine: Engine, session: Session, settings: Settings, client: TestClient
) -> None:
    day, ids = a_day_of_work(session, settings, client)
    changed = uuid.UUID(ids[2])
    with locks_off(engine, "readings") as conn:
        conn.execute(
            text("UPDATE readings SET value = value - 100 WHERE id = :id"),
            {"id": changed.hex if conn.dialect.name == "sqlite" else changed},
        )
    review = session.exec(select(AdminLog).where(AdminLog.action == "flag.accepted")).one()
    session.commit()
    with locks_off(engine, "audit_log") as conn:
        conn.execute(
            text("UPDATE audit_log SET actor_id = NULL WHERE id = :id"), {"id": review.id}
        )
    # A reading slipped in past the app (INSERT is not locked): not in the chain.
    original = session.get(Reading, changed)
    assert original is not None
    forged = original.model_dump() | {"id": uuid.uuid4(), "meter_id": day.meters[4].id}
    forged["content_hash"] = stored_reading_hash(Reading(**forged))  # a careful forger
    session.commit()
    with engine.begin() as conn:
        conn.execute(insert(Reading), [forged])

    result = gridwalk(db_url, "verify")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert f"error: reading {changed}: its content no longer matches its hash" in lines
    assert f"error: admin log entry {review.id}: its content no longer matches ledger entry" in (
        result.output
    )
    assert f"error: reading {forged['id']}: not in the ledger" in lines
    assert lines[-1].startswith("error: TAMPERED: 3 problem(s)")


def test_verify_names_the_first_broken_entry_and_a_reading_whose_entry_is_gone(
    db_url: str, engine: Engine, session: Session, settings: Settings, client: TestClient
) -> None:
    a_day_of_work(session, settings, client)
    entries = chain(session)
    edited = entries[3]
    with locks_off(engine, "ledger") as conn:
        conn.execute(text("UPDATE ledger SET action = 'x' WHERE seq = :seq"), {"seq": edited.seq})
        gone = next(e for e in entries[5:] if e.subject == "reading")
        conn.execute(text("DELETE FROM ledger WHERE seq = :seq"), {"seq": gone.seq})

    result = gridwalk(db_url, "verify")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == (
        f"error: ledger entry {edited.seq}: its content no longer matches its hash "
        "(first broken entry)"
    )
    assert f"error: reading {gone.subject_id}: not in the ledger" in lines
    assert sum("first broken entry" in line for line in lines) == 1


def test_verify_sees_entries_cut_off_the_end_of_the_chain(
    db_url: str, engine: Engine, session: Session
) -> None:
    for n in range(3):
        session.add(AdminLog(action="user.create", object_type="user", object_id=str(n)))
        session.commit()
    assert gridwalk(db_url, "verify").exit_code == 0
    with locks_off(engine, "ledger") as conn:
        conn.execute(text("DELETE FROM ledger WHERE seq = 3"))
    result = gridwalk(db_url, "verify")
    assert result.exit_code == 1
    assert "error: ledger entry 3: the chain ends at entry 2 but its head names entry 3" in (
        result.output
    )


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_concurrent_writers_queue_on_the_chain_and_it_never_forks(
    engine: Engine, session: Session
) -> None:
    first = Session(engine)
    ledger.append(first, [ledger.Link("first", "admin_log", "1", "0" * 64)])  # holds the lock
    failures: list[BaseException] = []

    def second() -> None:
        with Session(engine) as other:
            try:
                other.add(AdminLog(action="second", object_type="t", object_id="2"))
                other.commit()
            except BaseException as exc:  # reported below, in the test's thread
                failures.append(exc)

    racer = threading.Thread(target=second)
    racer.start()
    deadline = time.monotonic() + 30
    while not waiting_on_a_lock(engine):
        assert time.monotonic() < deadline, "the second writer never reached the chain"
        time.sleep(0.01)
    first.commit()
    first.close()
    racer.join(timeout=60)
    assert failures == []
    entries = chain(session)
    assert [(e.seq, e.action) for e in entries] == [(1, "first"), (2, "second")]
    assert entries[1].prev_hash == entries[0].hash


def test_the_migration_chains_the_readings_and_admin_acts_stored_before_it(
    db_url: str, session: Session, settings: Settings, client: TestClient
) -> None:
    a_day_of_work(session, settings, client)
    held = {e.subject_id: e.content_hash for e in chain(session)}
    client.close()
    assert gridwalk(db_url, "db", "downgrade", "0003", "--yes").exit_code == 0  # no ledger
    assert gridwalk(db_url, "db", "upgrade").exit_code == 0
    assert {e.subject_id: e.content_hash for e in chain(session)} == held
    result = gridwalk(db_url, "verify")
    assert result.exit_code == 0, result.output
