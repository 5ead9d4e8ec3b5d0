"""The one job lifecycle rule that server and handheld both apply."""

from __future__ import annotations

from datetime import timedelta

import pytest

from common.job_lifecycle import (
    EventFacts,
    JobEventKind,
    JobFacts,
    JobStatus,
    extended_finish,
    refusal,
    status_after,
)
from tests.factories import NOW

K, S = JobEventKind, JobStatus


def event(kind: JobEventKind, **facts: bool) -> EventFacts:
    return EventFacts(kind=kind, at=NOW, **facts)


@pytest.mark.parametrize(
    ("status", "kind", "after"),
    [
        (S.CREATED, K.ASSIGNED, S.ASSIGNED),
        (S.STARTED, K.ASSIGNED, S.STARTED),  # a new crew member joins a job under way
        (S.CREATED, K.STARTED, S.STARTED),
        (S.ASSIGNED, K.STARTED, S.STARTED),
        (S.STARTED, K.ETA_CHANGED, S.STARTED),
        (S.STARTED, K.FINISHED, S.FINISHED),
        (S.ASSIGNED, K.CANCELLED, S.CANCELLED),
        (S.FINISHED, K.NOTE, S.FINISHED),
        (S.CANCELLED, K.NOTE, S.CANCELLED),
    ],
)
def test_allowed_events_move_the_job_on(
    status: JobStatus, kind: JobEventKind, after: JobStatus
) -> None:
    job = JobFacts(status=status, started_at=NOW - timedelta(hours=1))
    facts = event(kind, has_crew=True, has_expected_finish=True)
    assert refusal(job, facts) is None
    assert status_after(status, kind) is after


@pytest.mark.parametrize(
    ("job", "facts", "code", "says"),
    [
        (JobFacts(S.FINISHED), event(K.STARTED), "illegal_transition", "job is closed"),
        (
            JobFacts(S.CANCELLED),
            event(K.ETA_CHANGED, has_expected_finish=True),
            "illegal_transition",
            "job is closed",
        ),
        (JobFacts(S.STARTED, NOW), event(K.STARTED), "illegal_transition", "already started"),
        (JobFacts(S.ASSIGNED), event(K.FINISHED), "illegal_transition", "before it starts"),
        (
            JobFacts(S.STARTED, NOW + timedelta(minutes=5)),
            event(K.FINISHED),
            "illegal_transition",
            "is before the start",
        ),
        (
            JobFacts(S.STARTED, NOW, is_meter_check=True),
            event(K.FINISHED),
            "invalid",
            "finished with its result",
        ),
        (JobFacts(S.CREATED), event(K.ASSIGNED), "invalid", "needs its crew"),
        (JobFacts(S.STARTED, NOW), event(K.ETA_CHANGED), "invalid", "needs its time"),
        (JobFacts(S.ASSIGNED), event(K.CREATED), "illegal_transition", "already exists"),
    ],
)
def test_refused_events_say_why(job: JobFacts, facts: EventFacts, code: str, says: str) -> None:
    refused = refusal(job, facts)
    assert refused is not None
    assert refused.code == code
    assert says in refused.detail


def test_more_time_is_added_to_the_current_estimate_not_to_now() -> None:
    """The crew's "+1 h" when the job was expected to end in 30 minutes: 90 minutes from now."""
    current = NOW + timedelta(minutes=30)
    assert extended_finish(current, NOW, timedelta(hours=1)) == NOW + timedelta(minutes=90)


def test_more_time_on_a_late_job_or_one_without_estimate_counts_from_now() -> None:
    late = NOW - timedelta(minutes=20)
    assert extended_finish(late, NOW, timedelta(hours=1)) == NOW + timedelta(hours=1)
    assert extended_finish(None, NOW, timedelta(hours=1)) == NOW + timedelta(hours=1)
