"""The supervisor's audit: assignments of my grid, readings, flags, reviews, re-reads, exports."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response
from pydantic import Field

from server.api.deps import Caller, LanguageDep, RowId, SessionDep, SettingsDep, require_role
from server.audit import assignment_list, cycles, exports, reviews, timeline
from server.audit import service as audit
from server.schemas.answers import (
    AssignmentDetail,
    AssignmentProgress,
    CycleBrief,
    CycleOverview,
    FlagOut,
    GeoTrackExport,
    ReadersFlags,
    ReadingOut,
    RereadOrdered,
    Timeline,
    errors,
    file_answer,
)
from server.schemas.requests import MAX_ROW_ID, RequestModel
from server.validation import runner as validation

router = APIRouter(prefix="/audit", tags=["audit"], responses=errors(400, 401, 403, 404, 409, 422))


def get_auditor(
    caller: Annotated[Caller, Depends(require_role("supervisor", "admin"))],
    language: LanguageDep,
    settings: SettingsDep,
) -> audit.Auditor:
    return audit.Auditor(
        user=caller.user,
        language=language,
        window_tz=validation.window_tz(settings),
        thresholds=settings.thresholds(),
    )


AuditorDep = Annotated[audit.Auditor, Depends(get_auditor)]


class ReviewIn(RequestModel):
    decision: Literal["accepted", "rejected"] = Field(
        description="accepted = dismiss the flag: the reading stands; "
        "rejected = uphold the flag: the reading is disputed (it stays on record)"
    )
    note: str = Field(min_length=1, max_length=1000)


class BulkReviewIn(ReviewIn):
    flag_ids: list[Annotated[int, Field(gt=0, le=MAX_ROW_ID)]] = Field(
        min_length=1, max_length=1000, description="Like flags, reviewed together or not at all"
    )


class RereadIn(RequestModel):
    meter_id: int = Field(gt=0, le=MAX_ROW_ID)
    reason: str = Field(min_length=1, max_length=500)


@router.get("/assignments", response_model=list[AssignmentProgress])
def list_assignments(
    auditor: AuditorDep,
    session: SessionDep,
    response: Response,
    status: Annotated[Literal["open", "closed"] | None, Query()] = None,
    limit: Annotated[
        int, Query(ge=1, le=1000, description="Assignments per page (newest window first)")
    ] = 200,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[dict[str, Any]]:
    """Assignments of my grid with their progress: read, skipped, missing, flagged, walked; a
    page of them, newest window first; X-Total-Count says how many there are in all."""
    total, page = assignment_list.list_assignments(
        session, auditor=auditor, status=status, limit=limit, offset=offset
    )
    response.headers["X-Total-Count"] = str(total)
    return page


GridQuery = Annotated[
    str | None,
    Query(min_length=1, max_length=32, description="Only this grid's routes (a grid code)"),
]


@router.get("/cycles", response_model=list[CycleBrief])
def list_cycles(auditor: AuditorDep, session: SessionDep) -> list[dict[str, Any]]:
    """The cycles with routes in my grid (an admin: the utility), newest first, with windows."""
    return cycles.list_cycles(session, auditor=auditor)


@router.get("/cycles/{cycle}", response_model=CycleOverview)
def cycle_overview(
    cycle: Annotated[str, Path(min_length=1, max_length=32, description="A cycle's code")],
    auditor: AuditorDep,
    session: SessionDep,
    grid: GridQuery = None,
    reader: Annotated[
        str | None,
        Query(min_length=1, max_length=64, description="Readers whose name holds this text"),
    ] = None,
    status: Annotated[cycles.RouteStatus | None, Query()] = None,
    sort: Annotated[cycles.RouteSort, Query(description="The routes' sort key")] = "route",
    order: Annotated[cycles.Order, Query()] = "asc",
    limit: Annotated[int, Query(ge=1, le=1000, description="Routes per page")] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    readers_sort: Annotated[cycles.ReaderSort, Query(description="The readers' sort key")] = (
        "reader"
    ),
    readers_order: Annotated[cycles.Order, Query()] = "asc",
) -> dict[str, Any]:
    """A whole cycle at a glance: progress per route (a sorted, filtered page) and per reader,
    with the totals of what the filters select and the days left in each window."""
    view = cycles.CycleFilter(
        grid=grid,
        reader=reader,
        status=status,
        sort=sort,
        order=order,
        limit=limit,
        offset=offset,
        readers_sort=readers_sort,
        readers_order=readers_order,
    )
    return cycles.cycle_overview(session, auditor=auditor, cycle=cycle, view=view)


@router.get("/readers/flags", response_model=ReadersFlags)
def readers_flags(
    auditor: AuditorDep,
    session: SessionDep,
    cycles_: Annotated[
        int, Query(alias="cycles", ge=1, le=36, description="How many recent cycles")
    ] = 3,
    grid: GridQuery = None,
) -> dict[str, Any]:
    """Flags per reader over the last cycles (who fails often); dismissed flags do not count."""
    return cycles.reader_flags(session, auditor=auditor, cycles=cycles_, grid=grid)


@router.get("/assignments/{assignment_id}", response_model=AssignmentDetail)
def get_assignment(
    assignment_id: RowId, auditor: AuditorDep, session: SessionDep
) -> dict[str, Any]:
    """One assignment: meters with their state, readings in order taken, the track, flags."""
    return audit.assignment_detail(session, auditor=auditor, assignment_id=assignment_id)


@router.get("/assignments/{assignment_id}/flags", response_model=list[FlagOut])
def get_flags(
    assignment_id: RowId, auditor: AuditorDep, session: SessionDep
) -> list[dict[str, Any]]:
    """The assignment's flags, each with its review."""
    return audit.assignment_flags(session, auditor=auditor, assignment_id=assignment_id)


@router.get("/assignments/{assignment_id}/readings", response_model=list[ReadingOut])
def get_readings(
    assignment_id: RowId, auditor: AuditorDep, session: SessionDep
) -> list[dict[str, Any]]:
    """Every reading held, in the order taken, with its flags and what superseded it."""
    return audit.assignment_readings(session, auditor=auditor, assignment_id=assignment_id)


@router.get("/assignments/{assignment_id}/timeline", response_model=Timeline)
def get_timeline(assignment_id: RowId, auditor: AuditorDep, session: SessionDep) -> dict[str, Any]:
    """Distance from the cleaned track to the meter being read, and speed, over time."""
    return timeline.assignment_timeline(session, auditor=auditor, assignment_id=assignment_id)


@router.post("/flags/review", response_model=list[FlagOut])
def review_flags(
    body: BulkReviewIn, auditor: AuditorDep, session: SessionDep
) -> list[dict[str, Any]]:
    """Review like flags with one note, all or none; a refusal's `errors` names each bad id."""
    flags = reviews.review_flags(
        session, auditor=auditor, flag_ids=body.flag_ids, decision=body.decision, note=body.note
    )
    return audit.flags_out(session, flags, auditor.language)


@router.post("/flags/{flag_id}/review", response_model=FlagOut)
def review_flag(
    flag_id: RowId, body: ReviewIn, auditor: AuditorDep, session: SessionDep
) -> dict[str, Any]:
    """Accept a flag (explained) or reject it (the reading stays, marked disputed)."""
    flag = reviews.review_flag(
        session, auditor=auditor, flag_id=flag_id, decision=body.decision, note=body.note
    )
    return audit.flag_out(flag, reviewer=auditor.user.username, language=auditor.language)


@router.post("/assignments/{assignment_id}/rereads", status_code=201, response_model=RereadOrdered)
def order_reread(
    assignment_id: RowId, body: RereadIn, auditor: AuditorDep, session: SessionDep
) -> dict[str, Any]:
    """Order a meter read again; the reader's device gets the order on its next pull."""
    order = reviews.order_reread(
        session,
        auditor=auditor,
        assignment_id=assignment_id,
        meter_id=body.meter_id,
        reason=body.reason,
    )
    return {
        "id": str(order.id),
        "assignment_id": order.assignment_id,
        "meter_id": order.meter_id,
        "status": order.status,
        "reason": order.reason,
        "reading_id": str(order.reading_id) if order.reading_id else None,
    }


@router.post("/assignments/{assignment_id}/close", response_model=AssignmentProgress)
def close_assignment(
    assignment_id: RowId, auditor: AuditorDep, session: SessionDep, settings: SettingsDep
) -> dict[str, Any]:
    """Close an assignment early and validate it: what is still unread is now `missed`."""
    audit.assignment_summary(session, auditor=auditor, assignment_id=assignment_id)
    validation.close_assignment(
        session, assignment_id=assignment_id, actor_id=auditor.user.id, settings=settings
    )
    return audit.assignment_summary(session, auditor=auditor, assignment_id=assignment_id)


@router.get(
    "/assignments/{assignment_id}/track.gpx",
    response_class=Response,
    responses=file_answer("application/gpx+xml", "The track as GPX 1.1"),
)
def export_gpx(assignment_id: RowId, auditor: AuditorDep, session: SessionDep) -> Response:
    """The reader's track with the readings as waypoints, as GPX."""
    return Response(
        exports.track_gpx(session, auditor=auditor, assignment_id=assignment_id),
        media_type="application/gpx+xml",
        headers={"Content-Disposition": f'attachment; filename="assignment-{assignment_id}.gpx"'},
    )


@router.get(
    "/assignments/{assignment_id}/track.geojson",
    response_class=Response,
    response_model=GeoTrackExport,
    responses=file_answer("application/geo+json", "A GeoJSON FeatureCollection", GeoTrackExport),
)
def export_geojson(assignment_id: RowId, auditor: AuditorDep, session: SessionDep) -> Response:
    """The track and the meters with their state, as GeoJSON."""
    return Response(
        json.dumps(exports.track_geojson(session, auditor=auditor, assignment_id=assignment_id)),
        media_type="application/geo+json",
    )


@router.get(
    "/assignments/{assignment_id}/readings.csv",
    response_class=Response,
    responses=file_answer("text/csv", "The readings as CSV, UTF-8"),
)
def export_csv(assignment_id: RowId, auditor: AuditorDep, session: SessionDep) -> Response:
    """The readings with their flags, as CSV."""
    return Response(
        exports.readings_csv(session, auditor=auditor, assignment_id=assignment_id),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="assignment-{assignment_id}.csv"'},
    )
