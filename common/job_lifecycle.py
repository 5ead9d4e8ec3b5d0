"""A repair job's life, written once for the server and the handheld.

created -> assigned -> started -> finished, and cancelled from any open state; a note may be
added at any time. The server applies a crew's events by this rule; the handheld checks the same
rule before it logs an event (so the crew is told at once, offline) and shows its effect on the
local copy of the job. Standard library only: it ships in the handheld's APK.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from common.i18n import N_, say


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
    """Why an event may not be applied: a stable code, and a sentence for a person kept as a
    message of the catalog and its values, so that it is said in the reader's language."""

    code: str  # "illegal_transition" (wrong state) or "invalid" (something missing)
    template: str
    params: dict[str, Any] = field(default_factory=dict)

    def said(self, gettext: Callable[[str], str] = lambda message: message) -> str:
        """The sentence through `gettext`; English, the message itself, by default."""
        return say(self.template, self.params, gettext)

    @property
    def detail(self) -> str:
        return self.said()


def refusal(job: JobFacts, event: EventFacts) -> Refusal | None:
    """None if `event` may be applied to `job` in its state; otherwise why not."""
    kind = event.kind
    if kind is JobEventKind.NOTE:
        return None
    if kind is JobEventKind.CREATED:
        return Refusal("illegal_transition", N_("The job already exists."))
    if job.status in CLOSED_STATUSES:
        return Refusal("illegal_transition", N_("The job is closed: nothing more can be logged."))
    if kind is JobEventKind.ASSIGNED and not event.has_crew:
        return Refusal("invalid", N_("Assigning a job needs its crew."))
    if kind is JobEventKind.STARTED and job.status is JobStatus.STARTED:
        return Refusal("illegal_transition", N_("The job is already started."))
    if kind is JobEventKind.ETA_CHANGED and not event.has_expected_finish:
        return Refusal("invalid", N_("A new expected finish needs its time."))
    if kind is JobEventKind.FINISHED:
        if job.status is not JobStatus.STARTED or job.started_at is None:
            return Refusal(
                "illegal_transition", N_("Start the job first: it cannot finish before it starts.")
            )
        if event.at < job.started_at:
            return Refusal(
                "illegal_transition",
                N_("The finish ({finish}) is before the start ({start})."),
                {"finish": event.at.isoformat(), "start": job.started_at.isoformat()},
            )
        if job.is_meter_check and not event.has_meter_check:
            return Refusal("invalid", N_("A meter check is finished with its result."))
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
