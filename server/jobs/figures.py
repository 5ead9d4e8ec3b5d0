"""Jobs as the office reads them: a job with its events, and the response figures (report to
arrival, report to restoration) against the targets for its urgency."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from common import clock
from common.wire import iso
from server.catalog.accounts import grid_view
from server.core.config import Settings
from server.core.errors import Forbidden
from server.jobs.dispatch import OPEN_STATES, get_job
from server.models import (
    Account,
    Grid,
    Job,
    JobAccount,
    JobCrew,
    JobEvent,
    TrackPoint,
    User,
)
from server.schemas.wire import JobOut


def crews(session: Session, job_ids: list[Any]) -> dict[Any, list[str]]:
    out: dict[Any, list[str]] = {}
    if not job_ids:
        return out
    for job_id, username in session.exec(
        select(JobCrew.job_id, User.username)
        .join(User, col(User.id) == JobCrew.user_id)
        .where(col(JobCrew.job_id).in_(job_ids))
    ):
        out.setdefault(job_id, []).append(username)
    return {k: sorted(v) for k, v in out.items()}


def crew_members(session: Session, job_ids: list[Any]) -> dict[Any, list[dict[str, Any]]]:
    """Each job's crew by full name and phone, with their last known position and its time
    (their handheld's latest track point)."""
    out: dict[Any, list[dict[str, Any]]] = {}
    if not job_ids:
        return out
    rows = session.exec(
        select(JobCrew.job_id, User)
        .join(User, col(User.id) == JobCrew.user_id)
        .where(col(JobCrew.job_id).in_(job_ids))
    ).all()
    last: dict[int, dict[str, Any] | None] = {}
    for _, user in rows:
        if user.id in last:
            continue
        point = session.exec(
            select(TrackPoint)
            .where(TrackPoint.user_id == user.id)
            .order_by(col(TrackPoint.t).desc())
            .limit(1)
        ).first()
        last[user.id] = (  # type: ignore[index]
            {"lat": point.lat, "lon": point.lon, "at": iso(point.t)} if point else None
        )
    for job_id, user in rows:
        out.setdefault(job_id, []).append(
            {
                "username": user.username,
                "full_name": user.full_name or user.username,
                "phone": user.phone,
                "last_position": last[user.id],  # type: ignore[index]
            }
        )
    return {k: sorted(v, key=lambda m: m["username"]) for k, v in out.items()}


def account_numbers(session: Session, job_ids: list[Any]) -> dict[Any, list[str]]:
    out: dict[Any, list[str]] = {}
    if not job_ids:
        return out
    for job_id, number in session.exec(
        select(JobAccount.job_id, Account.account_no)
        .join(Account, col(Account.id) == JobAccount.account_id)
        .where(col(JobAccount.job_id).in_(job_ids))
    ):
        out.setdefault(job_id, []).append(number)
    return out


def job_out(job: Job, crew: list[str], accounts: list[str]) -> JobOut:
    return JobOut(
        id=job.id,
        kind=job.kind,
        urgency=job.urgency,
        status=job.status,
        content=job.content,
        crew=crew,
        lat=job.lat,
        lon=job.lon,
        address=job.address,
        expected_finish=job.expected_finish,
        started_at=job.started_at,
        finished_at=job.finished_at,
        planned_start=job.planned_start,
        accounts=accounts,
    )


def targets(settings: Settings, urgency: str) -> tuple[timedelta, timedelta]:
    """(arrive within, restore within) for an urgency."""
    if urgency == "urgent":
        return (
            timedelta(minutes=settings.job_urgent_response_minutes),
            timedelta(minutes=settings.job_urgent_restore_minutes),
        )
    return (
        timedelta(minutes=settings.job_normal_response_minutes),
        timedelta(minutes=settings.job_normal_restore_minutes),
    )


def response_figures(job: Job, settings: Settings, now: datetime) -> dict[str, Any]:
    """Response (report to arrival) and restoration (report to finish) against the targets.

    A planned outage has no response commitment: it is measured against its own plan."""
    if job.kind == "planned" or job.reported_at is None:
        return {"applies": False}
    respond_within, restore_within = targets(settings, job.urgency)
    respond_by = job.reported_at + respond_within
    restore_by = job.reported_at + restore_within

    def minutes(delta: timedelta) -> float:
        return round(delta.total_seconds() / 60, 1)

    response = job.started_at - job.reported_at if job.started_at else None
    restoration = job.finished_at - job.reported_at if job.finished_at else None
    open_ = job.status in OPEN_STATES
    return {
        "applies": True,
        "reported_at": job.reported_at.isoformat(),
        "response_target_min": minutes(respond_within),
        "restore_target_min": minutes(restore_within),
        "respond_by": respond_by.isoformat(),
        "restore_by": restore_by.isoformat(),
        "response_min": minutes(response) if response is not None else None,
        "restoration_min": minutes(restoration) if restoration is not None else None,
        "response_met": (response <= respond_within)
        if response is not None
        else (False if now > respond_by and open_ else None),
        "restore_met": (restoration <= restore_within)
        if restoration is not None
        else (False if now > restore_by and open_ else None),
    }


def job_detail(
    session: Session, settings: Settings, *, job_id: uuid.UUID, viewer: User
) -> dict[str, Any]:
    """A job with its event history and its response figures."""
    job = get_job(session, job_id)
    on_crew = session.get(JobCrew, (job.id, viewer.id)) is not None
    if viewer.role in ("crew", "reader") and not on_crew:
        raise Forbidden("this job is not yours", code="not_your_job")
    if viewer.role == "supervisor" and viewer.grid_id != job.grid_id and not on_crew:
        raise Forbidden("this job is not in your grid", code="not_your_grid")
    users = {u.id: u.username for u in session.exec(select(User))}
    events = session.exec(
        select(JobEvent)
        .where(JobEvent.job_id == job.id)
        .order_by(col(JobEvent.at), col(JobEvent.received_at))
    ).all()
    out = job_out(
        job,
        crews(session, [job.id]).get(job.id, []),
        account_numbers(session, [job.id]).get(job.id, []),
    ).model_dump(mode="json")
    grid = session.get(Grid, job.grid_id) if job.grid_id else None
    out |= {
        "grid": grid.code if grid else None,
        "reported_at": _iso_or_none(job.reported_at),
        "dispatched_at": _iso_or_none(job.dispatched_at),
        "cancelled_at": _iso_or_none(job.cancelled_at),
        "last_update": _iso_or_none(job.last_update_at),
        "start_position": _pos(job.start_lat, job.start_lon),
        "finish_position": _pos(job.finish_lat, job.finish_lon),
        "result_note": job.result_note,
        "meter_check": job.meter_check,
        "crew_members": crew_members(session, [job.id]).get(job.id, []),
        "follows_job_id": str(job.follows_job_id) if job.follows_job_id else None,
        "area": {
            "accounts": out["accounts"],
            "radius_m": job.area_radius_m,
            "route_id": job.area_route_id,
        },
        "response": response_figures(job, settings, clock.now()),
        "events": [
            {
                "id": str(e.id),
                "kind": e.kind,
                "at": e.at.isoformat(),
                "received_at": e.received_at.isoformat(),
                "by": users.get(e.user_id),
                "device_id": e.device_id,
                "expected_finish": _iso_or_none(e.expected_finish),
                "content": e.content,
                "crew": e.crew,
                "note": e.note,
                "fix": _pos(e.fix_lat, e.fix_lon),
                "meter_check": e.meter_check,
            }
            for e in events
        ],
    }
    return out


def _iso_or_none(t: datetime | None) -> str | None:
    return iso(t) if t is not None else None


def _pos(lat: float | None, lon: float | None) -> dict[str, float] | None:
    return {"lat": lat, "lon": lon} if lat is not None and lon is not None else None


def open_jobs(
    session: Session, settings: Settings, *, viewer: User, breaching_within_min: float | None = None
) -> list[dict[str, Any]]:
    """Open jobs (of my grid, for a supervisor), each with its figures; with
    `breaching_within_min`, only those whose next target falls due within that many minutes."""
    stmt = (
        select(Job)
        .where(col(Job.status).in_(OPEN_STATES), grid_view(viewer).seen(Job.grid_id))
        .order_by(col(Job.reported_at))
    )
    jobs = list(session.exec(stmt))
    now = clock.now()
    crew = crews(session, [j.id for j in jobs])
    out = []
    for job in jobs:
        figures = response_figures(job, settings, now)
        due = _next_due(job, figures)
        if breaching_within_min is not None and (
            due is None or due > now + timedelta(minutes=breaching_within_min)
        ):
            continue
        out.append(
            {
                "job_id": str(job.id),
                "kind": job.kind,
                "urgency": job.urgency,
                "status": job.status,
                "content": job.content,
                "crew": crew.get(job.id, []),
                "address": job.address,
                "reported_at": _iso_or_none(job.reported_at),
                "expected_finish": _iso_or_none(job.expected_finish),
                "next_due": _iso_or_none(due),
                "overdue": due is not None and due < now,
                "response": figures,
            }
        )
    return out


def _next_due(job: Job, figures: dict[str, Any]) -> datetime | None:
    if not figures.get("applies"):
        return None
    if job.started_at is None:
        return datetime.fromisoformat(figures["respond_by"])
    return datetime.fromisoformat(figures["restore_by"])
