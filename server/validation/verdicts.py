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

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from common import clock
from common.i18n import translations
from common.rules.facts import MeterFacts, ReadingFacts, Thresholds, TrackFix
from common.rules.sentences import verdict_sentence
from common.rules.track_cleaning import walked_m
from common.rules.verdict import Verdict, assignment_verdict, nothing_yet
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


def judge(
    session: Session,
    *,
    assignment: Assignment,
    meters: list[MeterFacts],
    readings: list[ReadingFacts],
    track: list[TrackFix],
    held: tuple[datetime, datetime],
    thresholds: Thresholds,
) -> AssignmentVerdict:
    """Judge the assignment's day and store the verdict in the caller's transaction (the caller
    holds the assignment's row lock: one writer per row). `meters`, `readings` and `track` are
    what the runner loaded for the rules: its meters carry their position uncertainty and learned
    positions, so the verdict's "at the meter" says what far_from_meter says; its `track` holds
    every point of the route's readers within `held`, from which the reader's own points over
    `track_span` are taken (read again only when the span reaches beyond `held`): a close reads
    a day's rows once, not twice."""
    assert assignment.id is not None
    times = [r.read_at for r in readings]
    start, end = track_span(
        assignment.window_start,
        assignment.window_end,
        min(times, default=None),
        max(times, default=None),
    )
    if held[0] <= start and end <= held[1]:
        own = [
            p for p in track if p.reader_id == assignment.reader_id and start <= p.t <= end
        ]
        own.sort(key=lambda p: p.t)
    else:
        own = _reader_track(session, assignment.reader_id, start, end)
    verdict = assignment_verdict(meters, readings, own, thresholds)
    # Every point, mock ones too (the verdict's own walked_m leaves them out): the distance the
    # audit has always shown beside the figures.
    walked = round(walked_m(own, thresholds))
    row = session.get(AssignmentVerdict, assignment.id)
    if row is None:
        row = AssignmentVerdict(
            assignment_id=assignment.id, code=verdict.code, params=verdict.params, walked_m=walked
        )
    row.code, row.params, row.walked_m = verdict.code, verdict.params, walked
    row.judged_at = clock.now()
    session.add(row)
    session.flush()
    return row


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
