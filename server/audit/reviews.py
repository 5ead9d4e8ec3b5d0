"""What a supervisor decides on an audited route: a flag accepted (explained) or rejected (the
reading disputed), a meter ordered read again (复抄)."""

from __future__ import annotations

from sqlmodel import Session, select

from common import clock
from server.audit.service import Auditor, audited_assignment, readings_of, supersessions
from server.core.changes import log_admin_action
from server.core.errors import Conflict, Invalid, NotFound
from server.models import (
    Flag,
    Meter,
    RereadOrder,
)


def review_flag(
    session: Session, *, auditor: Auditor, flag_id: int, decision: str, note: str
) -> Flag:
    """Accept a flag (explained) or reject the reading behind it (it stays, marked disputed)."""
    flag = session.get(Flag, flag_id)
    if flag is None:
        raise NotFound(f"no flag {flag_id}", code="flag_not_found")
    audited_assignment(session, auditor, flag.assignment_id)
    if decision not in ("accepted", "rejected"):
        raise Invalid("decision must be 'accepted' or 'rejected'", code="invalid_decision")
    if not note.strip():
        raise Invalid("a review needs a note saying why", code="note_required")
    previous = flag.review
    flag.review = decision
    flag.review_note = note.strip()
    flag.reviewed_by = auditor.user.id
    flag.reviewed_at = clock.now()
    session.add(flag)
    log_admin_action(
        session,
        actor_id=auditor.user.id,
        action=f"flag.{decision}",
        object_type="flag",
        object_id=flag.id,
        detail={
            "code": flag.code,
            "note": flag.review_note,
            "previous": previous,
            "reading_id": str(flag.reading_id) if flag.reading_id else None,
        },
    )
    session.flush()
    return flag


def order_reread(
    session: Session, *, auditor: Auditor, assignment_id: int, meter_id: int, reason: str
) -> RereadOrder:
    """Order a meter read again; the order reaches the reader's device on its next pull."""
    assignment, route = audited_assignment(session, auditor, assignment_id)
    meter = session.get(Meter, meter_id)
    if meter is None or meter.route_id != route.id:
        raise Invalid(
            f"meter {meter_id} is not on this assignment's route", code="meter_not_on_route"
        )
    if not reason.strip():
        raise Invalid("a re-read order needs a reason", code="reason_required")
    if assignment.status != "open":
        raise Conflict(
            "the assignment is closed: re-reads go to an open assignment", code="assignment_closed"
        )
    if (
        session.exec(
            select(RereadOrder).where(
                RereadOrder.assignment_id == assignment_id,
                RereadOrder.meter_id == meter_id,
                RereadOrder.status == "open",
            )
        ).first()
        is not None
    ):
        raise Conflict(
            f"meter {meter.meter_no} already has an open re-read order",
            code="reread_already_ordered",
        )
    readings = [r for r in readings_of(session, assignment_id) if r.meter_id == meter_id]
    replaced = supersessions(readings)
    current = next((r.id for r in readings if r.id not in replaced), None)
    assert auditor.user.id is not None
    order = RereadOrder(
        assignment_id=assignment_id,
        meter_id=meter_id,
        reading_id=current,
        reason=reason.strip(),
        ordered_by=auditor.user.id,
    )
    session.add(order)
    session.flush()
    log_admin_action(
        session,
        actor_id=auditor.user.id,
        action="reread.order",
        object_type="reread_order",
        object_id=order.id,
        detail={
            "assignment_id": assignment_id,
            "meter_id": meter_id,
            "reading_id": str(current) if current else None,
            "reason": reason,
        },
    )
    session.flush()
    return order
