"""The billing system's side: readings ready to bill as they come, what is held and why."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from server.api.deps import Caller, LanguageDep, SessionDep, SettingsDep, require_role
from server.billing import cycle as billing_cycle
from server.billing import export, feed
from server.schemas.answers import (
    BillingFeed,
    BillingHolds,
    BillingProgress,
    errors,
    file_answer,
)
from server.validation import runner as validation

router = APIRouter(prefix="/billing", tags=["billing"], responses=errors(401, 403, 404, 422))

# The billing system's machine account, and an admin looking at what it is given.
BillingDep = Annotated[Caller, Depends(require_role("billing", "admin"))]
CycleQuery = Annotated[
    str | None, Query(min_length=1, max_length=32, description="Only this cycle (its code)")
]
SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")
CycleParam = Annotated[str, Query(min_length=1, max_length=32, description="A cycle's code")]


@router.get("/readings", response_model=BillingFeed)
def readings(
    _caller: BillingDep,
    session: SessionDep,
    cycle: CycleQuery = None,
    cursor: Annotated[
        str | None,
        Query(max_length=40, description="The cursor of the last answer; none: from the start"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Items per page")] = 500,
) -> dict[str, Any]:
    """Readings ready to bill, in commit order after `cursor`: pulled again from an old cursor,
    the same items with the same content; a re-read comes as a new item naming what it
    `supersedes`."""
    return feed.page(session, cycle=cycle, cursor=cursor, limit=limit)


@router.get("/holds", response_model=BillingHolds)
def holds(
    _caller: BillingDep, session: SessionDep, language: LanguageDep, cycle: CycleParam
) -> dict[str, Any]:
    """The cycle's readings held back from billing, with their flags' codes and sentences (in
    the caller's language), and the accounts with no reading to bill (unread or skipped)."""
    return billing_cycle.holds(session, cycle=cycle, language=language)


@router.get("/progress", response_model=BillingProgress)
def progress(
    _caller: BillingDep, session: SessionDep, settings: SettingsDep, cycle: CycleParam
) -> dict[str, Any]:
    """Per grid: accounts ready, held, skipped and unread, and the days left in the window."""
    return billing_cycle.progress(session, cycle=cycle, tz=validation.window_tz(settings))


@router.get(
    "/readings.csv",
    response_class=Response,
    responses=file_answer("text/csv", "The cycle's readings ready to bill, with a control total"),
)
def readings_csv(
    _caller: BillingDep,
    session: SessionDep,
    cycle: CycleParam,
    encoding: Annotated[
        export.Encoding, Query(description="utf-8, or gbk for billing systems that expect it")
    ] = "utf-8",
) -> Response:
    """The cycle's readings ready to bill (each account's latest) as CSV, safe to open in a
    spreadsheet; the last line is the control total: TOTAL, count, kWh."""
    return Response(
        export.cycle_csv(session, cycle=cycle, encoding=encoding),
        media_type=f"text/csv; charset={encoding}",
        # A header is Latin-1: a cycle code is named in the file name only in safe characters.
        headers={
            "Content-Disposition": f'attachment; filename="billing-{SAFE_NAME.sub("_", cycle)}.csv"'
        },
    )
