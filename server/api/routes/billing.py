"""The billing system's side: readings ready to bill as they come, what is held and why."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from server.api.deps import Caller, SessionDep, require_role
from server.billing import feed
from server.schemas.answers import BillingFeed, errors

router = APIRouter(prefix="/billing", tags=["billing"], responses=errors(401, 403, 422))

# The billing system's machine account, and an admin looking at what it is given.
BillingDep = Annotated[Caller, Depends(require_role("billing", "admin"))]
CycleQuery = Annotated[
    str | None, Query(min_length=1, max_length=32, description="Only this cycle (its code)")
]


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
