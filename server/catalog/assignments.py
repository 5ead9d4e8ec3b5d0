"""Cycles and assignments: giving a route to a reader for a cycle's window."""

from __future__ import annotations

import re
from datetime import date
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from server.core.changes import log_admin_action, touched
from server.core.errors import Invalid, NotFound
from server.models import Assignment, Cycle, Route, User, Withdrawal
from server.schemas.requests import FIRST_DAY, LAST_DAY

_CYCLE_CODE = re.compile(r"^[A-Za-z0-9._-]{1,32}$")
# A code that starts like a month (2026-11, 2026-11b) must name a real one.
T = TypeVar("T")
_MONTH_LIKE = re.compile(r"^(\d{4})-(\d{2})(?!\d)")
# A reading window is days long (3 to 5 in the trade), a quarter at the very most; a longer
# one is a typing error that would wreck every audit of it.
MAX_WINDOW_DAYS = 92


def get_or_create_cycle(session: Session, *, code: str, actor_id: int | None = None) -> Cycle:
    """The cycle named `code` (such as 2026-11), created on first mention."""
    if not _CYCLE_CODE.match(code):
        raise Invalid(
            f"cycle code {code!r} must be 1 to 32 letters, digits, '.', '_' or '-'",
            code="invalid_cycle",
        )
    month = _MONTH_LIKE.match(code)
    if month and not 1 <= int(month.group(2)) <= 12:
        raise Invalid(
            f"cycle code {code!r} names month {month.group(2)}: a month is 01 to 12",
            code="invalid_cycle",
        )
    cycle = session.exec(select(Cycle).where(Cycle.code == code)).first()
    if cycle is None:
        cycle = _created_once(session, Cycle(code=code), select(Cycle).where(Cycle.code == code))
        log_admin_action(
            session,
            actor_id=actor_id,
            action="cycle.create",
            object_type="cycle",
            object_id=cycle.id,
            detail={"code": code},
        )
    return cycle


def _created_once(session: Session, row: T, lookup: Any) -> T:
    """Insert `row`, or, when a concurrent request inserted the same key first, take theirs:
    two admins creating the same cycle (or assignment) at once make one, and neither fails."""
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
        return row
    except IntegrityError:
        found: T | None = session.exec(lookup).first()
        if found is None:
            raise
        return found


def check_window(window_start: date, window_end: date) -> None:
    """Refuse a reading window that is backwards, too long, or outside this century."""
    if window_end < window_start:
        raise Invalid(
            f"window_end {window_end} is before window_start {window_start}", code="invalid_window"
        )
    for name, day in (("window_start", window_start), ("window_end", window_end)):
        if not FIRST_DAY <= day <= LAST_DAY:
            raise Invalid(
                f"{name} {day} is outside {FIRST_DAY.year}-{LAST_DAY.year}", code="invalid_window"
            )
    if (window_end - window_start).days + 1 > MAX_WINDOW_DAYS:
        raise Invalid(
            f"the window {window_start} to {window_end} is "
            f"{(window_end - window_start).days + 1} days long: at most {MAX_WINDOW_DAYS}",
            code="invalid_window",
        )


def assign_route(
    session: Session,
    *,
    route_code: str,
    reader: str,
    cycle: str,
    window_start: date,
    window_end: date,
    actor_id: int | None = None,
) -> Assignment:
    """Give a route to a reader for a cycle; giving it again moves it (the old reader's device
    is told it is withdrawn) or changes its window."""
    check_window(window_start, window_end)
    route = session.exec(select(Route).where(Route.code == route_code)).first()
    if route is None:
        raise NotFound(f"no route {route_code!r}: import its meters first", code="route_not_found")
    user = session.exec(select(User).where(User.username == reader)).first()
    if user is None:
        raise NotFound(f"no user {reader!r}", code="user_not_found")
    if user.role != "reader":
        raise Invalid(f"user {reader!r} is a {user.role}, not a reader", code="not_a_reader")
    assert user.id is not None
    assert route.id is not None
    cyc = get_or_create_cycle(session, code=cycle, actor_id=actor_id)
    assert cyc.id is not None
    same_key = select(Assignment).where(
        Assignment.route_id == route.id, Assignment.cycle_id == cyc.id
    )
    assignment = session.exec(same_key).first()
    action = "assignment.update"
    if assignment is None:
        new = Assignment(
            route_id=route.id,
            cycle_id=cyc.id,
            reader_id=user.id,
            window_start=window_start,
            window_end=window_end,
        )
        assignment = _created_once(session, new, same_key)
        if assignment is new:
            action = "assignment.create"
    if action == "assignment.update":
        if assignment.reader_id != user.id:
            session.add(
                Withdrawal(
                    user_id=assignment.reader_id,
                    object_type="assignment",
                    object_id=str(assignment.id),
                    assignment_id=assignment.id,
                )
            )
        assignment.reader_id = user.id
        assignment.window_start = window_start
        assignment.window_end = window_end
        touched(assignment)  # given again: the reader's handheld gets it again
    session.add(assignment)
    session.flush()
    log_admin_action(
        session,
        actor_id=actor_id,
        action=action,
        object_type="assignment",
        object_id=assignment.id,
        detail={
            "route": route_code,
            "reader": reader,
            "cycle": cycle,
            "window_start": window_start.isoformat(),
            "window_end": window_end.isoformat(),
        },
    )
    return assignment
