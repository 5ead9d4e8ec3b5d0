"""The change counter is stamped in one place: any synced row that is added or changed gets a
new number at flush, so no service can forget it and silently keep a change from handhelds."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient
from sqlmodel import Session, SQLModel

from server.core.changes import committed_change_seq, is_synced
from server.core.config import Settings
from server.models import Assignment, Job, Meter, RereadOrder, Withdrawal
from tests.factories import make_user, reader_day


def test_the_synced_tables_are_those_with_a_change_seq() -> None:
    synced = {
        mapper.class_.__name__
        for mapper in SQLModel._sa_registry.mappers  # type: ignore[attr-defined]
        if "change_seq" in mapper.columns
    }
    assert synced == {"Meter", "Assignment", "RereadOrder", "Job", "Withdrawal"}
    assert all(is_synced(cls()) for cls in (Meter, Assignment, RereadOrder, Job, Withdrawal))


def test_every_added_or_changed_synced_row_gets_a_new_number_one_per_flush(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client, n_meters=3)
    supervisor = make_user(session, settings, "sup1", "supervisor", "G1")
    before = committed_change_seq(session)
    session.commit()

    meter, assignment = day.meters[0], day.assignment
    meter.expected_high = 450
    assignment.status = "closed"
    order = RereadOrder(
        assignment_id=assignment.id, meter_id=meter.id, reason="dog", ordered_by=supervisor.id
    )
    job = Job(id=uuid.uuid4(), kind="fault", urgency="urgent", content="line down")
    gone = Withdrawal(user_id=supervisor.id, object_type="job", object_id=str(job.id))
    session.add_all([meter, assignment, order, job, gone])
    session.commit()

    stamped = {row.change_seq for row in (meter, assignment, order, job, gone)}
    assert stamped == {before + 1}  # one flush, one number, taken after every older one
    assert committed_change_seq(session) == before + 1
    untouched = day.meters[1]
    session.refresh(untouched)
    assert untouched.change_seq <= before  # a row nobody changed keeps its number

    meter.lat += 0.0001
    session.add(meter)
    session.commit()
    assert meter.change_seq == before + 2
