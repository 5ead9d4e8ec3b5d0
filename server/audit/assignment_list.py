"""The supervisor's list of assignments, a page at a time: the figures of every assignment are
aggregated by the database (the whole-cycle queries, cycles.route_rows), and its verdict and
distance walked are those the validation stored when it last judged it
(server/validation/verdicts.py), read with the page: nothing is computed from the track here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Table, func, select, true
from sqlmodel import Session

from server.audit.cycles import RT, A, C, route_rows, today
from server.audit.service import SEVERITIES, Auditor
from server.models import AssignmentVerdict, ValidationWork
from server.validation import verdicts

V: Table = AssignmentVerdict.__table__  # type: ignore[attr-defined]
W: Table = ValidationWork.__table__  # type: ignore[attr-defined]


def list_assignments(
    session: Session,
    *,
    auditor: Auditor,
    status: str | None = None,
    limit: int = 200,
    offset: int = 0,
) -> tuple[int, list[dict[str, Any]]]:
    """Assignments the auditor may see, newest window first, each with its progress: how many
    there are in all, and the page asked for."""
    visible = true() if auditor.user.role == "admin" else RT.c.grid_id == auditor.user.grid_id
    where = [visible] if status is None else [visible, A.c.status == status]
    rows = route_rows(where, today(auditor))
    page = list(
        session.execute(
            select(
                rows,
                C.c.code.label("cycle"),
                V.c.code.label("verdict_code"),
                V.c.params.label("verdict_params"),
                V.c.walked_m.label("verdict_walked_m"),
                W.c.pending_since,
                func.count().over().label("total"),
            )
            .join(C, C.c.id == rows.c.cycle_id)
            # What the validation last judged, and whether new data waits for it (queue.py).
            .outerjoin(V, V.c.assignment_id == rows.c.assignment_id)
            .outerjoin(W, W.c.assignment_id == rows.c.assignment_id)
            .order_by(rows.c.window_start.desc(), rows.c.route_code, rows.c.assignment_id)
            .limit(limit)
            .offset(offset)
        )
    )
    if page:
        total = page[0].total
    else:
        # A page past the end still says how many there are.
        total = session.execute(select(func.count()).select_from(rows)).scalar_one()
    return total, [_item(row, auditor) for row in page]


def _item(row: Any, auditor: Auditor) -> dict[str, Any]:
    pending_since = row.pending_since
    verdict, walked = verdicts.said(
        row.verdict_code,
        row.verdict_params,
        row.verdict_walked_m,
        meters=int(row.meters),
        has_readings=row.first_read_at is not None,
        pending=pending_since is not None,
        language=auditor.language,
    )
    flagged = {"fail": row.fail, "warn": row.warn, "info": row.info}
    return {
        "id": row.assignment_id,
        "route_code": row.route_code,
        "route_name": row.route_name,
        "cycle": row.cycle,
        "reader": row.reader,
        "window_start": row.window_start.isoformat(),
        "window_end": row.window_end.isoformat(),
        "status": row.assignment_status,
        "meters": int(row.meters),
        "read": int(row.read),
        "skipped": int(row.skipped),
        "missing": int(row.unread),
        "window_closed": bool(row.window_closed),
        "flagged": {s: int(flagged[s]) for s in SEVERITIES},
        "meters_flagged": int(row.meters_flagged),
        "first_read_at": _iso(row.first_read_at),
        "last_read_at": _iso(row.last_read_at),
        "distance_walked_m": walked,
        "verdict": verdict,
        "validation_pending": pending_since is not None,
        "validation_pending_since": _iso(pending_since),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
