"""An assignment's verdict (common/rules/verdict.py) and the distance walked on its track, judged
whenever the validation runner judges the assignment and stored with its flags, in the same
transaction (assignment_verdicts): the supervisor's list and summary read them, and never run
the rules over a day's track on a request (a fifth of a second a route, every route of a page).

The verdict reads what the audit shows of the day: the route's meters, the assignment's readings
and its reader's track over `track_span` (the flags read a wider track: runner.py).

No row: the assignment has never been validated. If data waits for it in the validation queue,
or it has readings, it is not judged yet (`said` gives no verdict); otherwise nothing that
touches it has come, and its day comes to `nothing`. Migration 0013 queued every assignment of
a database that had none of these rows, so none with data is left without one once the queue
has been drained (by the server's workers or `gridwalk validate-pending`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from common import clock
from common.i18n import translations
from common.rules.facts import MeterFacts, ReadingFacts, Thresholds, Track, TrackFix, is_mock
from common.rules.sentences import verdict_sentence
from common.rules.track_cleaning import cleaned, walked_on
from common.rules.verdict import Verdict, Walk, assignment_verdict, nothing_yet, walk_of
from server.models import Assignment, AssignmentVerdict, TrackPoint


def track_span(
    window_start: date,
    window_end: date,
    first_read_at: datetime | None,
    last_read_at: datetime | None,
) -> tuple[datetime, datetime]:
    """The time span of the reader's track that belongs to this assignment's work: an hour
    either side of its readings, or its whole window when it has none."""
    if first_read_at is not None and last_read_at is not None:
        return first_read_at - timedelta(hours=1), last_read_at + timedelta(hours=1)
    # Window dates are local; a day either side covers every time zone.
    start = datetime.combine(window_start, time.min, tzinfo=UTC)
    end = datetime.combine(window_end, time.max, tzinfo=UTC)
    return start - timedelta(days=1), end + timedelta(days=1)


@dataclass(frozen=True)
class Judged:
    """An assignment's verdict and the distance walked on its track, judged but not stored."""

    verdict: Verdict
    walked_m: int


def judge(
    session: Session,
    *,
    assignment: Assignment,
    meters: list[MeterFacts],
    readings: list[ReadingFacts],
    track: Track,
    held: tuple[datetime, datetime],
    thresholds: Thresholds,
) -> Judged:
    """Judge the assignment's day; nothing is written (`store` keeps it). `meters`, `readings`
    and `track` are what the runner loaded for the rules: its meters carry their position
    uncertainty and learned positions, so the verdict's "at the meter" says what far_from_meter
    says; its `track` (indexed, as the rules took it) holds every point of the route's readers
    within `held`, from which the
    reader's own points over `track_span` are taken (read again only when the span reaches
    beyond `held`): a close reads a day's rows once, not twice."""
    times = [r.read_at for r in readings]
    start, end = track_span(
        assignment.window_start,
        assignment.window_end,
        min(times, default=None),
        max(times, default=None),
    )
    walk = None
    if held[0] <= start and end <= held[1]:
        whole = track.walk_of(assignment.reader_id)
        own = [p for p in whole if start <= p.t <= end]
        if len(own) == len(whole):
            # The reader's whole walk, which the rules clean too: cleaned once for both (the
            # cleaning is most of a verdict's cost).
            clean = cleaned(track, thresholds).walk_of(assignment.reader_id)
            walk = Walk(clean, walked_on(clean, thresholds))
    else:
        own = _reader_track(session, assignment.reader_id, start, end)
    # The distance the audit has always shown beside the figures is walked on every point,
    # mock ones too (the verdict's own leaves them out); without mock points, the usual day,
    # both are one walk, cleaned once.
    walk = walk or walk_of(own, thresholds)
    real_only = not any(is_mock(p.mock, p.provider, thresholds.mock_providers) for p in own)
    verdict = assignment_verdict(
        meters, readings, own, thresholds, walk=walk if real_only else None
    )
    return Judged(verdict, round(walk.walked_m))


def store(session: Session, assignment_id: int, judged: Judged) -> AssignmentVerdict:
    """Keep a judged verdict in the caller's transaction (the caller holds the assignment's row
    lock: one writer per row); each store counts one more `version`."""
    row = session.get(AssignmentVerdict, assignment_id)
    if row is None:
        row = AssignmentVerdict(
            assignment_id=assignment_id,
            code=judged.verdict.code,
            params=judged.verdict.params,
            walked_m=judged.walked_m,
            version=0,
        )
    row.code, row.params, row.walked_m = judged.verdict.code, judged.verdict.params, judged.walked_m
    row.version += 1
    row.judged_at = clock.now()
    session.add(row)
    session.flush()
    return row


def version(session: Session, assignment_id: int) -> int:
    """How many times the assignment has been judged and stored (0: never): a judgement made
    outside the row lock is stored only if this has not moved meanwhile."""
    return (
        session.execute(
            select(col(AssignmentVerdict.version)).where(
                col(AssignmentVerdict.assignment_id) == assignment_id
            )
        ).scalar_one_or_none()
        or 0
    )


def _reader_track(
    session: Session, reader_id: int | None, start: datetime, end: datetime
) -> list[TrackFix]:
    # Columns, not ORM objects: a route-day is thousands of points.
    return [
        TrackFix(t, lat, lon, accuracy_m, mock, provider)
        for t, lat, lon, accuracy_m, mock, provider in session.execute(
            select(
                col(TrackPoint.t),
                col(TrackPoint.lat),
                col(TrackPoint.lon),
                col(TrackPoint.accuracy_m),
                col(TrackPoint.mock),
                col(TrackPoint.provider),
            )
            .where(
                col(TrackPoint.user_id) == reader_id,
                col(TrackPoint.t) >= start,
                col(TrackPoint.t) <= end,
            )
            .order_by(col(TrackPoint.t))
        )
    ]


def said(
    code: str | None,
    params: dict[str, Any] | None,
    walked: int | None,
    *,
    meters: int,
    has_readings: bool,
    pending: bool,
    language: str,
) -> tuple[dict[str, Any] | None, int | None]:
    """A stored verdict (`code`, `params`, `walked`; None: no row) as the audit answers it, in
    `language`, with the distance walked; (None, None) while the assignment is not judged yet."""
    if code is not None and params is not None:
        return verdict_out(Verdict(code, params), language), walked  # type: ignore[arg-type]
    if pending or has_readings:
        return None, None
    return verdict_out(nothing_yet(meters), language), 0


def verdict_out(verdict: Verdict, language: str) -> dict[str, Any]:
    return {
        "code": verdict.code,
        "params": verdict.params,
        "message": verdict_sentence(verdict.code, verdict.params, translations(language).gettext),
    }
