"""What a supervisor decides on an audited route: a flag accepted (explained) or rejected (the
reading disputed), a meter ordered read again (复抄)."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from common import clock
from common.i18n import N_
from server.audit.service import Auditor, audited_assignment, readings_of, supersessions
from server.billing import feed
from server.core.changes import log_admin_action
from server.core.errors import Conflict, Forbidden, Invalid, NotFound, Problem
from server.models import (
    Assignment,
    Flag,
    Meter,
    RereadOrder,
    Route,
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
    # A dismissed fail flag may release its reading to billing (an upheld one never does).
    feed.append_ready(session, assignment_id=flag.assignment_id, thresholds=auditor.thresholds)
    return flag


def review_flags(
    session: Session, *, auditor: Auditor, flag_ids: list[int], decision: str, note: str
) -> list[Flag]:
    """Review like flags at once with one note, all or none: every id is checked first, and
    one bad id (unknown, not in the auditor's grid, already reviewed the other way) refuses
    the lot, naming each bad id. A flag already reviewed the same way keeps its own note (it
    was decided on its own); a decision the other way is changed one flag at a time, with its
    own note, never swept along in a batch."""
    ids = list(dict.fromkeys(flag_ids))
    flags = {
        f.id: f for f in session.exec(select(Flag).where(col(Flag.id).in_(ids))) if f.id is not None
    }
    routes: dict[int, Route | None] = {}
    errors: list[dict[str, Any]] = []
    for flag_id in ids:
        flag = flags.get(flag_id)
        if flag is None:
            errors.append({"flag_id": flag_id, "code": "flag_not_found"})
            continue
        if flag.assignment_id not in routes:
            assignment = session.get(Assignment, flag.assignment_id)
            routes[flag.assignment_id] = (
                session.get(Route, assignment.route_id) if assignment is not None else None
            )
        route = routes[flag.assignment_id]
        if route is None or not auditor.may_see(route):
            errors.append({"flag_id": flag_id, "code": "not_your_grid"})
        elif flag.review is not None and flag.review != decision:
            errors.append({"flag_id": flag_id, "code": "already_reviewed", "review": flag.review})
    if errors:
        # One status for the answer: what the caller may not do first, then what conflicts,
        # then what does not exist; `errors` names every bad id whatever its kind.
        kinds = {e["code"] for e in errors}
        problem: type[Problem] = (
            Forbidden
            if "not_your_grid" in kinds
            else Conflict
            if "already_reviewed" in kinds
            else Invalid
        )
        raise problem(
            N_("{count} of the flags cannot be reviewed together: none was reviewed"),
            code="flags_refused",
            params={"count": len(errors)},
            extra={"errors": errors},
        )
    return [
        flags[i]
        if flags[i].review == decision
        else review_flag(session, auditor=auditor, flag_id=i, decision=decision, note=note)
        for i in ids
    ]


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
