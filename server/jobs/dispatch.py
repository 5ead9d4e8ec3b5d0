"""Jobs from the office: entered from a call or planned ahead, given to a crew, cancelled; and
what both sides share (the job's crew, its facts for the lifecycle rule)."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
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
from server.catalog.accounts import GridView, grid_view, visible_accounts
from server.core.changes import log_admin_action, touched
from server.core.errors import Forbidden, Invalid, NotFound
from server.models import (
    Account,
    Job,
    JobAccount,
    JobCrew,
    JobEvent,
    Meter,
    Route,
    User,
    Withdrawal,
)

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


def users_named(session: Session, names: list[str] | tuple[str, ...]) -> list[User]:
    found = {u.username: u for u in session.exec(select(User).where(col(User.username).in_(names)))}
    unknown = [n for n in names if n not in found]
    if unknown:
        raise Invalid(f"no such user(s) for the crew: {', '.join(unknown)}", code="unknown_crew")
    not_crew = [n for n in names if found[n].role not in ("crew", "supervisor")]
    if not_crew:
        raise Invalid(f"not repair crew: {', '.join(not_crew)}", code="not_crew")
    return [found[n] for n in names]


def _accounts(session: Session, view: GridView, numbers: tuple[str, ...]) -> list[Account]:
    found = visible_accounts(session, view, list(numbers))
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
    crew = users_named(session, tuple(dict.fromkeys(draft.crew)))
    # A supervisor enters jobs in their own grid: another grid's account or route is unknown.
    view = grid_view(creator)
    accounts = _accounts(session, view, tuple(dict.fromkeys(draft.accounts)))
    route = None
    if draft.route_code:
        route = session.exec(select(Route).where(Route.code == draft.route_code)).first()
        if route is None or not view.sees(route.grid_id):
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
    set_crew(session, job, crew)
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
    job = get_job(session, job_id)
    _may_dispatch(session, actor, job)
    now = clock.now()
    _office_may(job, JobEventKind.ASSIGNED, now)
    crew = list(dict.fromkeys(crew))
    users = users_named(session, crew)
    set_crew(session, job, users)
    job.status = status_after(JobStatus(job.status), JobEventKind.ASSIGNED)
    job.dispatched_at = job.dispatched_at or now
    touch(session, job, now)
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
    job = get_job(session, job_id)
    _may_dispatch(session, actor, job)
    now = clock.now()
    _office_may(job, JobEventKind.CANCELLED, now)
    job.status = status_after(JobStatus(job.status), JobEventKind.CANCELLED)
    job.cancelled_at = now
    touch(session, job, now)
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
    if grid_view(actor).sees(job.grid_id):
        return
    raise Forbidden("this job is not in your grid", code="not_your_grid")


def get_job(session: Session, job_id: uuid.UUID) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}", code="job_not_found")
    return job


def set_crew(session: Session, job: Job, users: list[User]) -> None:
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


def touch(session: Session, job: Job, at: datetime) -> None:
    job.last_update_at = max(job.last_update_at or at, at)
    touched(job)  # its crew or accounts may be what changed: the job is sent again
    session.add(job)


def job_facts(job: Job) -> JobFacts:
    """What the lifecycle rule needs of a stored job."""
    return JobFacts(
        status=JobStatus(job.status),
        started_at=job.started_at,
        is_meter_check=job.kind == "meter_check",
    )
