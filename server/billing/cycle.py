"""A cycle as billing sees it: each account's state (ready, held, skipped, unread), the readings
held with their reasons, and the counts per grid with the days left in the window."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any, Literal

from sqlmodel import Session, col, select

from common import clock
from server.audit.cycles import days_left
from server.audit.service import flag_message, window_closed
from server.billing.feed import current_readings, flags_by_reading, holding_flags, is_pending
from server.core.errors import NotFound
from server.models import (
    Account,
    Assignment,
    BillingFeedItem,
    Cycle,
    Flag,
    Grid,
    Meter,
    Reading,
    Route,
)

BillingState = Literal["ready", "held", "skipped", "unread"]
# Why a reading is not billed yet: a fail flag open or upheld, new data not yet validated, or
# no previous register to bill the consumption from.
HoldReason = Literal["flagged", "validation_pending", "no_previous_register"]


@dataclass
class AccountState:
    meter: Meter
    account: Account
    route: Route
    grid_code: str | None
    assignment: Assignment
    state: BillingState
    reading: Reading | None = None
    reason: HoldReason | None = None
    flags: list[Flag] = field(default_factory=list)


def cycle_states(session: Session, cycle_code: str) -> list[AccountState]:
    """Every metered account on a route assigned in the cycle, with its billing state."""
    cycle = session.exec(select(Cycle).where(Cycle.code == cycle_code)).first()
    if cycle is None:
        raise NotFound(f"no cycle {cycle_code!r}", code="cycle_not_found")
    grids: dict[int | None, str] = {g.id: g.code for g in session.exec(select(Grid))}
    states: list[AccountState] = []
    rows = session.exec(
        select(Assignment, Route)
        .join(Route, col(Route.id) == Assignment.route_id)
        .where(Assignment.cycle_id == cycle.id)
        .order_by(col(Route.code))
    ).all()
    for assignment, route in rows:
        assert assignment.id is not None
        readings = list(session.exec(select(Reading).where(Reading.assignment_id == assignment.id)))
        current = {r.meter_id: r for r in current_readings(readings)}
        fed = set(
            session.exec(
                select(BillingFeedItem.reading_id).where(
                    BillingFeedItem.assignment_id == assignment.id
                )
            )
        )
        flags = flags_by_reading(session, assignment.id)
        pending = is_pending(session, assignment.id)
        for meter, account in session.exec(
            select(Meter, Account)
            .join(Account, col(Account.id) == Meter.account_id)
            .where(Meter.route_id == route.id)
            .order_by(col(Meter.sequence), col(Meter.id))
        ):
            reading = current.get(meter.id) if meter.id is not None else None
            state = AccountState(
                meter, account, route, grids.get(route.grid_id), assignment, "unread", reading
            )
            if reading is None:
                pass  # not read yet
            elif reading.value is None:
                state.state = "skipped"
            elif reading.id in fed:
                state.state = "ready"
            else:
                state.state = "held"
                state.flags = holding_flags(flags.get(reading.id, []))
                state.reason = (
                    "validation_pending"
                    if pending
                    else "flagged"
                    if state.flags
                    else "no_previous_register"
                )
            states.append(state)
    return states


def holds(session: Session, *, cycle: str, language: str) -> dict[str, Any]:
    """The readings held back, with their flags' codes and sentences in `language`, and the
    accounts with no reading to bill (not read yet, or skipped), for billing to plan the rest."""
    states = cycle_states(session, cycle)
    held = [
        {
            "reading_id": str(s.reading.id),
            "account_no": s.account.account_no,
            "meter_no": s.meter.meter_no,
            "route": s.route.code,
            "grid": s.grid_code,
            "read_at": s.reading.read_at.isoformat(),
            "current": str(s.reading.value),
            "reason": s.reason,
            "flags": [
                {
                    "code": f.code,
                    "review": f.review,
                    "message": flag_message(f, language),
                }
                for f in s.flags
            ],
        }
        for s in states
        if s.state == "held" and s.reading is not None
    ]
    unread = [
        {
            "account_no": s.account.account_no,
            "meter_no": s.meter.meter_no,
            "route": s.route.code,
            "grid": s.grid_code,
            "state": s.state,
            "skip_code": s.reading.skip_code if s.reading is not None else None,
        }
        for s in states
        if s.state in ("skipped", "unread")
    ]
    return {"cycle": cycle, "held": held, "unread": unread}


def progress(session: Session, *, cycle: str, tz: tzinfo) -> dict[str, Any]:
    """Per grid: accounts ready, held, skipped and unread, and the days left in its windows
    (the latest window of the grid's routes; 0 once every one has closed)."""
    today = clock.now().astimezone(tz).date()
    grids: dict[str | None, dict[str, Any]] = {}
    seen: set[tuple[str | None, int | None]] = set()
    for s in cycle_states(session, cycle):
        row = grids.setdefault(
            s.grid_code,
            {"grid": s.grid_code, "ready": 0, "held": 0, "skipped": 0, "unread": 0, "days_left": 0},
        )
        row[s.state] += 1
        if (s.grid_code, s.assignment.id) not in seen:
            seen.add((s.grid_code, s.assignment.id))
            left = days_left(s.assignment.window_end, window_closed(s.assignment, tz), today)
            row["days_left"] = max(row["days_left"], left)
    return {
        "cycle": cycle,
        "grids": sorted(grids.values(), key=lambda g: g["grid"] or ""),
    }
