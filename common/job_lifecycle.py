"""A repair job's life, written once for the server and the handheld.

created -> assigned -> started -> finished, and cancelled from any open state; a note may be
added at any time. The server applies a crew's events by this rule; the handheld checks the same
rule before it logs an event (so the crew is told at once, offline) and shows its effect on the
local copy of the job. Standard library only: it ships in the handheld's APK.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class JobStatus(StrEnum):
    CREATED = "created"
    ASSIGNED = "assigned"
    STARTED = "started"
    FINISHED = "finished"
    CANCELLED = "cancelled"


class JobEventKind(StrEnum):
    CREATED = "created"  # a job opened on the spot by its crew
    ASSIGNED = "assigned"
    STARTED = "started"
    ETA_CHANGED = "eta_changed"
    NOTE = "note"
    FINISHED = "finished"
    CANCELLED = "cancelled"


OPEN_STATUSES = frozenset({JobStatus.CREATED, JobStatus.ASSIGNED, JobStatus.STARTED})
CLOSED_STATUSES = frozenset({JobStatus.FINISHED, JobStatus.CANCELLED})


@dataclass(frozen=True)
class JobFacts:
    """What the rule needs to know of a job."""

    status: JobStatus
    started_at: datetime | None = None
    is_meter_check: bool = False


@dataclass(frozen=True)
class EventFacts:
    """What the rule needs to know of an event."""

    kind: JobEventKind
    at: datetime
    has_crew: bool = False
    has_expected_finish: bool = False
    has_meter_check: bool = False


@dataclass(frozen=True)
class Refusal:
    """Why an event may not be applied: a stable code and a sentence for a person."""

    code: str  # "illegal_transition" (wrong state) or "invalid" (something missing)
    detail: str


def refusal(job: JobFacts, event: EventFacts) -> Refusal | None:
    """None if `event` may be applied to `job` in its state; otherwise why not."""
    kind = event.kind
    if kind is JobEventKind.NOTE:
        return None
    if kind is JobEventKind.CREATED:
        return Refusal("illegal_transition", "the job already exists")
    if job.status in CLOSED_STATUSES:
        return Refusal("illegal_transition", f"job is {job.status}: no {kind} any more")
    if kind is JobEventKind.ASSIGNED and not event.has_crew:
        return Refusal("invalid", "an assigned event needs the crew")
    if kind is JobEventKind.STARTED and job.status is JobStatus.STARTED:
        return Refusal("illegal_transition", "job is already started")
    if kind is JobEventKind.ETA_CHANGED and not event.has_expected_finish:
        return Refusal("invalid", "an eta_changed event needs expected_finish")
    if kind is JobEventKind.FINISHED:
        if job.status is not JobStatus.STARTED or job.started_at is None:
            return Refusal("illegal_transition", "finish before start: start the job first")
        if event.at < job.started_at:
            return Refusal(
                "illegal_transition",
                f"finish at {event.at.isoformat()} is before its start "
                f"{job.started_at.isoformat()}",
            )
        if job.is_meter_check and not event.has_meter_check:
            return Refusal("invalid", "a meter check is finished with its meter_check result")
    return None


def status_after(status: JobStatus, kind: JobEventKind) -> JobStatus:
    """The job's status once an allowed event of `kind` is applied."""
    if kind is JobEventKind.ASSIGNED:
        return JobStatus.ASSIGNED if status is JobStatus.CREATED else status
    if kind is JobEventKind.STARTED:
        return JobStatus.STARTED
    if kind is JobEventKind.FINISHED:
        return JobStatus.FINISHED
    if kind is JobEventKind.CANCELLED:
        return JobStatus.CANCELLED
    return status


def extended_finish(current: datetime | None, now: datetime, by: timedelta) -> datetime:
    """The expected finish after the crew says "`by` more": added to the current estimate, or
    to now when there is none or it has already passed (the crew is late: from now on)."""
    base = current if current is not None and current > now else now
    return base + by
