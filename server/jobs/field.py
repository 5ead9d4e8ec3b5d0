"""Jobs from the field: a crew's events from its handheld, applied in time order by the one
lifecycle rule (common.job_lifecycle); a job opened on the spot is its `created` event."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from common.i18n import N_
from common.job_lifecycle import (
    EventFacts,
    JobEventKind,
    JobStatus,
    refusal,
    status_after,
)
from server.core.errors import Invalid, ItemRefused
from server.jobs.dispatch import job_facts, set_crew, touch, users_named
from server.models import (
    Job,
    JobCrew,
    JobEvent,
    User,
    fix_columns,
)
from server.schemas.wire import Fix, JobEventIn


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
            raise ItemRefused("unknown_job", N_("no job {job}"), job=str(event.job_id))
        job = _job_from_the_field(session, user, event)
    elif event.kind == JobEventKind.CREATED:
        raise ItemRefused(
            "illegal_transition", N_("job {job} already exists"), job=str(event.job_id)
        )
    else:
        on_crew = session.get(JobCrew, (job.id, user.id)) is not None
        grid_supervisor = user.role == "supervisor" and user.grid_id == job.grid_id
        if not (on_crew or grid_supervisor):
            raise ItemRefused(
                "not_your_job",
                N_("{user} is not on the crew of job {job}"),
                user=user.username,
                job=str(job.id),
            )
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
    touch(session, job, event.at)
    session.flush()


def _job_from_the_field(session: Session, user: User, event: JobEventIn) -> Job:
    """A job a crew opened on the spot, offline: its `created` event carries what it is."""
    if event.job_kind is None:
        raise ItemRefused("invalid", N_("a created event needs job_kind"))
    if user.role not in ("crew", "supervisor"):
        raise ItemRefused(
            "not_your_job", N_("a user of role {role} cannot open repair jobs"), role=user.role
        )
    names = event.crew or [user.username]
    try:
        crew = users_named(session, names)
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
    set_crew(session, job, crew)
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
        raise ItemRefused(refused.code, refused.template, **refused.params)
    if kind is JobEventKind.ASSIGNED:
        try:
            set_crew(session, job, users_named(session, event.crew or []))
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


def _point(fix: Fix | None) -> tuple[float | None, float | None]:
    return (fix.lat, fix.lon) if fix else (None, None)
