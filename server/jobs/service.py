"""Repair jobs: created at the office (from a call) or on the spot by a crew, assigned to a crew,
started, re-estimated, finished or cancelled; and the response figures against the targets.

Every change takes a change number, so the crew's handhelds get the job on their next pull and
the outage board answers from it the moment the push lands.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from common import clock
from common.geo import distance_m
from common.job_lifecycle import (
    OPEN_STATUSES,
    EventFacts,
    JobEventKind,
    JobFacts,
    JobStatus,
    refusal,
    status_after,
)
from common.wire import iso
from server.core.changes import log_admin_action, touched
from server.core.config import Settings
from server.core.errors import Forbidden, Invalid, ItemRefused, NotFound
from server.models import (
    Account,
    Grid,
    Job,
    JobAccount,
    JobCrew,
    JobEvent,
    Meter,
    Route,
    User,
    Withdrawal,
    fix_columns,
)
from server.schemas.wire import Fix, JobEventIn, JobOut

OPEN_STATES = tuple(sorted(OPEN_STATUSES))
OUTAGE_KINDS = ("fault", "planned", "temporary_repair")


@dataclass(frozen=True)
class JobDraft:
    """What the office enters for a new job."""

    kind: str
    urgency: str
    content: str
    lat: float | None = None
    lon: float | None = None
    address: str | None = None
    accounts: tuple[str, ...] = ()
    crew: tuple[str, ...] = ()
    route_code: str | None = None
    radius_m: float | None = None
    planned_start: datetime | None = None
    expected_finish: datetime | None = None


# --------------------------------------------------------------------------------- office side


def _users(session: Session, names: list[str] | tuple[str, ...]) -> list[User]:
    found = {u.username: u for u in session.exec(select(User).where(col(User.username).in_(names)))}
    unknown = [n for n in names if n not in found]
    if unknown:
        raise Invalid(f"no such user(s) for the crew: {', '.join(unknown)}", code="unknown_crew")
    not_crew = [n for n in names if found[n].role not in ("crew", "supervisor")]
    if not_crew:
        raise Invalid(f"not repair crew: {', '.join(not_crew)}", code="not_crew")
    return [found[n] for n in names]


def _accounts(session: Session, numbers: tuple[str, ...]) -> list[Account]:
    found = {
        a.account_no: a
        for a in session.exec(select(Account).where(col(Account.account_no).in_(numbers)))
    }
    unknown = [n for n in numbers if n not in found]
    if unknown:
        raise Invalid(f"no such account(s): {', '.join(unknown)}", code="unknown_account")
    return [found[n] for n in numbers]


def create_job(session: Session, *, creator: User, draft: JobDraft) -> Job:
    """A job entered at the office: it reaches its crew's handhelds on their next pull."""
    if draft.kind == "planned" and draft.planned_start is None:
        raise Invalid("a planned outage needs its planned_start", code="planned_start_required")
    if (draft.radius_m is not None) and (draft.lat is None or draft.lon is None):
        raise Invalid("an area by radius needs lat and lon", code="radius_needs_point")
    if (
        draft.planned_start
        and draft.expected_finish
        and draft.expected_finish < draft.planned_start
    ):
        raise Invalid("expected_finish is before planned_start", code="invalid_window")
    # A name or an account given twice is one crew member, one account cut off.
    crew = _users(session, tuple(dict.fromkeys(draft.crew)))
    accounts = _accounts(session, tuple(dict.fromkeys(draft.accounts)))
    route = None
    if draft.route_code:
        route = session.exec(select(Route).where(Route.code == draft.route_code)).first()
        if route is None:
            raise Invalid(f"no route {draft.route_code!r}", code="unknown_route")
    now = clock.now()
    job = Job(
        kind=draft.kind,
        urgency=draft.urgency,
        status=JobStatus.ASSIGNED if crew else JobStatus.CREATED,
        content=draft.content,
        grid_id=_grid_of(session, creator, crew, accounts, route, draft.lat, draft.lon),
        lat=draft.lat,
        lon=draft.lon,
        address=draft.address,
        area_radius_m=draft.radius_m,
        area_route_id=route.id if route else None,
        reported_at=now,
        dispatched_at=now if crew else None,
        planned_start=draft.planned_start,
        expected_finish=draft.expected_finish,
        last_update_at=now,
        created_by=creator.id,
    )
    session.add(job)
    session.flush()
    _set_crew(session, job, crew)
    for account in accounts:
        assert account.id is not None
        session.add(JobAccount(job_id=job.id, account_id=account.id))
    _office_event(session, job, creator, "created", now, content=draft.content)
    if crew:
        _office_event(session, job, creator, "assigned", now, crew=list(draft.crew))
    log_admin_action(
        session,
        actor_id=creator.id,
        action="job.create",
        object_type="job",
        object_id=job.id,
        detail={"kind": draft.kind, "crew": list(draft.crew)},
    )
    session.flush()
    return job


def _grid_of(
    session: Session,
    creator: User,
    crew: list[User],
    accounts: list[Account],
    route: Route | None,
    lat: float | None,
    lon: float | None,
) -> int | None:
    """The grid the job is in: the area's (its route, its accounts' meters, the meters around
    its point), else the crew's, else the creator's."""
    if route is not None and route.grid_id is not None:
        return route.grid_id
    if accounts:
        grid_id = session.exec(
            select(Route.grid_id)
            .join(Meter, col(Meter.route_id) == Route.id)
            .where(Meter.account_id == accounts[0].id)
        ).first()
        if grid_id is not None:
            return grid_id
    if lat is not None and lon is not None:
        grid_id = _grid_near(session, lat, lon)
        if grid_id is not None:
            return grid_id
    for user in crew:
        if user.grid_id is not None:
            return user.grid_id
    return creator.grid_id


def _grid_near(session: Session, lat: float, lon: float) -> int | None:
    """The grid of the nearest meter within about a kilometre of a point."""
    box = 0.01  # degrees: about 1.1 km north-south, less east-west; enough to find a street
    near = session.exec(
        select(Meter.lat, Meter.lon, Route.grid_id)
        .join(Route, col(Route.id) == Meter.route_id)
        .where(
            col(Meter.lat).between(lat - box, lat + box),
            col(Meter.lon).between(lon - box, lon + box),
            col(Route.grid_id).is_not(None),
        )
    ).all()
    if not near:
        return None
    return min(near, key=lambda m: distance_m(lat, lon, m[0], m[1]))[2]


def _office_event(
    session: Session, job: Job, user: User, kind: str, at: datetime, **fields: Any
) -> None:
    assert user.id is not None
    payload = {"kind": kind, "at": at.isoformat(), **fields}
    session.add(
        JobEvent(
            id=uuid.uuid4(),
            job_id=job.id,
            kind=kind,
            at=at,
            user_id=user.id,
            device_id=None,
            content_hash=hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest(),
            **fields,
        )
    )


def assign_crew(session: Session, *, actor: User, job_id: uuid.UUID, crew: list[str]) -> Job:
    """Give the job to a crew (replacing the one it had)."""
    job = _get(session, job_id)
    _may_dispatch(session, actor, job)
    now = clock.now()
    _office_may(job, JobEventKind.ASSIGNED, now)
    crew = list(dict.fromkeys(crew))
    users = _users(session, crew)
    _set_crew(session, job, users)
    job.status = status_after(JobStatus(job.status), JobEventKind.ASSIGNED)
    job.dispatched_at = job.dispatched_at or now
    _touch(session, job, now)
    _office_event(session, job, actor, "assigned", now, crew=crew)
    log_admin_action(
        session,
        actor_id=actor.id,
        action="job.assign",
        object_type="job",
        object_id=job.id,
        detail={"crew": crew},
    )
    session.flush()
    return job


def cancel_job(session: Session, *, actor: User, job_id: uuid.UUID, note: str) -> Job:
    """Cancel an open job (a false alarm, a duplicate call)."""
    job = _get(session, job_id)
    _may_dispatch(session, actor, job)
    now = clock.now()
    _office_may(job, JobEventKind.CANCELLED, now)
    job.status = status_after(JobStatus(job.status), JobEventKind.CANCELLED)
    job.cancelled_at = now
    _touch(session, job, now)
    _office_event(session, job, actor, "cancelled", now, note=note)
    log_admin_action(
        session,
        actor_id=actor.id,
        action="job.cancel",
        object_type="job",
        object_id=job.id,
        detail={"note": note},
    )
    session.flush()
    return job


def _office_may(job: Job, kind: JobEventKind, at: datetime) -> None:
    """Refuse (422) what the lifecycle does not allow the office to do to this job now."""
    refused = refusal(job_facts(job), EventFacts(kind=kind, at=at, has_crew=True))
    if refused is not None:
        raise Invalid(refused.detail, code=refused.code)


def _may_dispatch(session: Session, actor: User, job: Job) -> None:
    if actor.role in ("admin", "agent"):
        return
    if actor.role == "supervisor" and actor.grid_id == job.grid_id:
        return
    raise Forbidden("this job is not in your grid", code="not_your_grid")


def _get(session: Session, job_id: uuid.UUID) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}", code="job_not_found")
    return job


def _set_crew(session: Session, job: Job, users: list[User]) -> None:
    """The job's crew becomes `users`; a member taken off is told so on their next pull."""
    keep = {u.id for u in users}
    held = list(session.exec(select(JobCrew).where(JobCrew.job_id == job.id)))
    for row in held:
        if row.user_id not in keep:
            session.delete(row)
            session.add(
                Withdrawal(
                    user_id=row.user_id,
                    object_type="job",
                    object_id=str(job.id),
                )
            )
    session.flush()
    had = {row.user_id for row in held}
    for user in users:
        if user.id is not None and user.id not in had:
            session.add(JobCrew(job_id=job.id, user_id=user.id))


def _touch(session: Session, job: Job, at: datetime) -> None:
    job.last_update_at = max(job.last_update_at or at, at)
    touched(job)  # its crew or accounts may be what changed: the job is sent again
    session.add(job)


# --------------------------------------------------------------------------------- field side


def apply_device_event(
    session: Session,
    *,
    user: User,
    device_id: str,
    event: JobEventIn,
    content_hash: str,
    received_at: datetime,
) -> None:
    """Apply one event from a handheld, or refuse it whole (ItemRefused) with the reason."""
    job = session.get(Job, event.job_id)
    if job is None:
        if event.kind != "created":
            raise ItemRefused("unknown_job", f"no job {event.job_id}")
        job = _job_from_the_field(session, user, event)
    elif event.kind == JobEventKind.CREATED:
        raise ItemRefused("illegal_transition", f"job {event.job_id} already exists")
    else:
        on_crew = session.get(JobCrew, (job.id, user.id)) is not None
        grid_supervisor = user.role == "supervisor" and user.grid_id == job.grid_id
        if not (on_crew or grid_supervisor):
            raise ItemRefused("not_your_job", f"{user.username} is not on the crew of job {job.id}")
        _transition(session, job, event)
    assert user.id is not None
    session.add(
        JobEvent(
            id=event.id,
            job_id=job.id,
            kind=event.kind,
            at=event.at,
            **fix_columns(event.fix),
            expected_finish=event.expected_finish,
            content=event.content,
            crew=event.crew,
            note=event.note,
            job_kind=event.job_kind,
            urgency=event.urgency,
            address=event.address,
            meter_check=event.meter_check.model_dump(mode="json") if event.meter_check else None,
            user_id=user.id,
            device_id=device_id,
            received_at=received_at,
            content_hash=content_hash,
        )
    )
    _touch(session, job, event.at)
    session.flush()


def _job_from_the_field(session: Session, user: User, event: JobEventIn) -> Job:
    """A job a crew opened on the spot, offline: its `created` event carries what it is."""
    if event.job_kind is None:
        raise ItemRefused("invalid", "a created event needs job_kind")
    if user.role not in ("crew", "supervisor"):
        raise ItemRefused("not_your_job", f"a {user.role} cannot open repair jobs")
    names = event.crew or [user.username]
    try:
        crew = _users(session, names)
    except Invalid as exc:
        raise ItemRefused(exc.code, exc.detail) from None
    fix = event.fix
    job = Job(
        id=event.job_id,
        kind=event.job_kind,
        urgency=event.urgency or "normal",
        status=JobStatus.ASSIGNED,
        content=event.content or "",
        grid_id=user.grid_id,
        lat=fix.lat if fix else None,
        lon=fix.lon if fix else None,
        address=event.address,
        reported_at=event.at,
        dispatched_at=event.at,
        expected_finish=event.expected_finish,
        created_by=user.id,
    )
    session.add(job)
    session.flush()
    _set_crew(session, job, crew)
    return job


def _transition(session: Session, job: Job, event: JobEventIn) -> None:
    """Apply `event` to `job`, or refuse it (ItemRefused) by the one lifecycle rule."""
    kind = JobEventKind(event.kind)
    refused = refusal(
        job_facts(job),
        EventFacts(
            kind=kind,
            at=event.at,
            has_crew=bool(event.crew),
            has_expected_finish=event.expected_finish is not None,
            has_meter_check=event.meter_check is not None,
        ),
    )
    if refused is not None:
        raise ItemRefused(refused.code, refused.detail)
    if kind is JobEventKind.ASSIGNED:
        try:
            _set_crew(session, job, _users(session, event.crew or []))
        except Invalid as exc:
            raise ItemRefused(exc.code, exc.detail) from None
        job.dispatched_at = job.dispatched_at or event.at
    elif kind is JobEventKind.STARTED:
        job.started_at = event.at
        job.start_lat, job.start_lon = _point(event.fix)
    elif kind is JobEventKind.FINISHED:
        job.finished_at = event.at
        job.finish_lat, job.finish_lon = _point(event.fix)
        job.result_note = event.note or job.result_note
        if event.meter_check is not None:
            job.meter_check = event.meter_check.model_dump(mode="json")
    elif kind is JobEventKind.CANCELLED:
        job.cancelled_at = event.at
    job.status = status_after(JobStatus(job.status), kind)
    if event.expected_finish is not None and kind is not JobEventKind.NOTE:
        job.expected_finish = event.expected_finish
    if event.content:
        job.content = event.content


def job_facts(job: Job) -> JobFacts:
    """What the lifecycle rule needs of a stored job."""
    return JobFacts(
        status=JobStatus(job.status),
        started_at=job.started_at,
        is_meter_check=job.kind == "meter_check",
    )


def _point(fix: Fix | None) -> tuple[float | None, float | None]:
    return (fix.lat, fix.lon) if fix else (None, None)


# --------------------------------------------------------------------------------- reading out


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
    job = _get(session, job_id)
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
    stmt = select(Job).where(col(Job.status).in_(OPEN_STATES)).order_by(col(Job.reported_at))
    if viewer.role == "supervisor":
        stmt = stmt.where(Job.grid_id == viewer.grid_id)
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
