"""Repair jobs (dispatch and figures), the outage board, and an account's consumption."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import AwareDatetime, Field

from common import clock
from server.api.deps import Caller, CallerDep, SessionDep, SettingsDep, require_role
from server.catalog.accounts import grid_view
from server.jobs import dispatch, figures, outages
from server.schemas.answers import (
    AffectedCustomers,
    ConsumptionHistory,
    Customer,
    JobDetail,
    OpenJob,
    OutageRow,
    errors,
    file_answer,
)
from server.schemas.requests import RequestModel, Text
from server.schemas.wire import JobKind, Latitude, Longitude, Urgency

router = APIRouter(tags=["jobs and outages"], responses=errors(400, 401, 403, 404, 422))

Dispatcher = Annotated[Caller, Depends(require_role("agent", "supervisor", "admin"))]


class JobCreate(RequestModel):
    kind: JobKind
    urgency: Urgency = "normal"
    content: str = Field(min_length=1, max_length=2000, description="what is being done")
    lat: Latitude | None = None
    lon: Longitude | None = None
    address: str | None = Field(default=None, max_length=500)
    accounts: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=5000, description="account numbers the outage cuts off"
    )
    crew: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=20, description="usernames"
    )
    route_code: str | None = Field(
        default=None, max_length=64, description="the outage cuts off a whole route"
    )
    radius_m: float | None = Field(
        default=None, gt=0, le=50_000, description="the outage cuts off a radius around lat/lon"
    )
    planned_start: AwareDatetime | None = None
    expected_finish: AwareDatetime | None = None


class CrewIn(RequestModel):
    crew: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        min_length=1, max_length=20
    )


class CancelIn(RequestModel):
    note: str = Field(min_length=1, max_length=2000)


@router.post("/jobs", status_code=201, response_model=JobDetail)
def create_job(
    body: JobCreate, caller: Dispatcher, session: SessionDep, settings: SettingsDep
) -> dict[str, Any]:
    """Enter a job (from a customer's call, or a planned outage ahead of time)."""
    job = dispatch.create_job(
        session,
        creator=caller.user,
        draft=dispatch.JobDraft(
            kind=body.kind,
            urgency=body.urgency,
            content=body.content,
            lat=body.lat,
            lon=body.lon,
            address=body.address,
            accounts=tuple(body.accounts),
            crew=tuple(body.crew),
            route_code=body.route_code,
            radius_m=body.radius_m,
            planned_start=body.planned_start,
            expected_finish=body.expected_finish,
        ),
    )
    outages.link_to_restored(session, settings, job, clock.now())
    return figures.job_detail(session, settings, job_id=job.id, viewer=caller.user)


@router.get("/jobs", response_model=list[OpenJob])
def list_jobs(
    caller: Dispatcher,
    session: SessionDep,
    settings: SettingsDep,
    breaching_within_min: Annotated[float | None, Query(ge=0, le=10_000)] = None,
) -> list[dict[str, Any]]:
    """Open jobs (of my grid), with their response figures; with `breaching_within_min`, only
    those about to miss a target (or already past it)."""
    return figures.open_jobs(
        session, settings, viewer=caller.user, breaching_within_min=breaching_within_min
    )


@router.get("/jobs/{job_id}", response_model=JobDetail)
def get_job(
    job_id: uuid.UUID, caller: CallerDep, session: SessionDep, settings: SettingsDep
) -> dict[str, Any]:
    """A job with its event history and its response figures."""
    return figures.job_detail(session, settings, job_id=job_id, viewer=caller.user)


@router.post("/jobs/{job_id}/assign", response_model=JobDetail)
def assign_job(
    job_id: uuid.UUID, body: CrewIn, caller: Dispatcher, session: SessionDep, settings: SettingsDep
) -> dict[str, Any]:
    """Give a job to a crew; their handhelds get it on the next pull."""
    dispatch.assign_crew(session, actor=caller.user, job_id=job_id, crew=body.crew)
    return figures.job_detail(session, settings, job_id=job_id, viewer=caller.user)


@router.post("/jobs/{job_id}/cancel", response_model=JobDetail)
def cancel_job(
    job_id: uuid.UUID,
    body: CancelIn,
    caller: Dispatcher,
    session: SessionDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    """Cancel an open job (a false alarm, a duplicate call)."""
    dispatch.cancel_job(session, actor=caller.user, job_id=job_id, note=body.note)
    return figures.job_detail(session, settings, job_id=job_id, viewer=caller.user)


@router.get("/outages", response_model=list[OutageRow])
def list_outages(
    caller: Dispatcher,
    session: SessionDep,
    settings: SettingsDep,
    account_no: Annotated[Text | None, Query(max_length=64)] = None,
    lat: Annotated[float | None, Query(ge=-90, le=90)] = None,
    lon: Annotated[float | None, Query(ge=-180, le=180)] = None,
    grid: Annotated[Text | None, Query(max_length=32)] = None,
    address: Annotated[
        Text | None,
        Query(
            max_length=200,
            description="an address fragment, street and house number, customer name or "
            "account number (庆春路36 finds 杭州市上城区庆春路36号)",
        ),
    ] = None,
) -> list[dict[str, Any]]:
    """Is there an outage at this account, this address, this point, in this grid, and when is
    power back? Restored outages stay a while, as `restored`. (A supervisor: in their grid.)"""
    return outages.outages(
        session,
        settings,
        view=grid_view(caller.user),
        now=clock.now(),
        account_no=account_no,
        lat=lat,
        lon=lon,
        grid=grid,
        address=address,
    )


@router.get("/customers", response_model=list[Customer])
def find_customers(
    caller: Dispatcher,
    session: SessionDep,
    settings: SettingsDep,
    address: Annotated[Text, Query(min_length=1, max_length=200)],
) -> list[dict[str, Any]]:
    """The customers an address fragment, a name or an account number finds, best first: the
    agent picks the caller among them. (A supervisor: of their grid.)"""
    return outages.customers(session, settings, view=grid_view(caller.user), text=address)


@router.get("/jobs/{job_id}/customers", response_model=AffectedCustomers)
def affected_customers(
    job_id: uuid.UUID, caller: Dispatcher, session: SessionDep
) -> dict[str, Any]:
    """The customers an outage cuts off, with their phones: for the notices of a planned one."""
    job, accounts = outages.affected_customers(session, view=grid_view(caller.user), job_id=job_id)
    return {
        "job_id": str(job.id),
        "kind": job.kind,
        "planned_start": job.planned_start.isoformat() if job.planned_start else None,
        "expected_finish": job.expected_finish.isoformat() if job.expected_finish else None,
        "customers": [
            {
                "account_no": a.account_no,
                "customer_name": a.customer_name,
                "address": a.address,
                "phone": a.phone,
            }
            for a in accounts
        ],
    }


@router.get(
    "/jobs/{job_id}/customers.csv",
    response_class=Response,
    responses=file_answer("text/csv", "The affected customers as CSV, UTF-8"),
)
def affected_customers_csv(job_id: uuid.UUID, caller: Dispatcher, session: SessionDep) -> Response:
    """The customers an outage cuts off, with their phones, as CSV (as the audit export is)."""
    _, accounts = outages.affected_customers(session, view=grid_view(caller.user), job_id=job_id)
    return Response(
        outages.affected_customers_csv(accounts),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="outage-{job_id}-customers.csv"'},
    )


@router.get("/accounts/{account_no}/consumption", response_model=ConsumptionHistory)
def account_consumption(
    account_no: Text, caller: Dispatcher, session: SessionDep
) -> dict[str, Any]:
    """The account's consumption per cycle, to explain a bill before a meter check (申校).
    (A supervisor: an account of their grid; another grid's is 404.)"""
    return outages.consumption_history(session, view=grid_view(caller.user), account_no=account_no)
