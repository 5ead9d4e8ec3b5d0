"""The validation runner: feeds an assignment's rows to common.rules and keeps its flags and its
verdict (verdicts.py).

Rules live in common/rules/; this module only loads facts, runs `validate_route` and
reconciles the findings with the Flag rows already held, so that a supervisor's review survives
validating again: a finding that is still there keeps its row (its message and severity are
brought up to date), a new one is inserted, and one no longer found is deleted unless a review
is on record. Nothing here commits: the caller (a worker of the validation queue, a close) owns
the transaction, except close_due_assignments, which closes each assignment in transactions of
its own (judged in one that writes nothing, written under the row lock in another).
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Any

from sqlalchemy import Engine, and_, delete, not_, or_
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from common import clock
from common.rules.facts import (
    AssignmentFacts,
    EarlierTrack,
    Finding,
    MeterFacts,
    ReadingFacts,
    Stamp,
    Track,
    TrackFix,
)
from common.rules.route import validate_route
from common.wire import Fix
from server.billing import feed
from server.core.changes import log_admin_action
from server.core.config import Settings
from server.core.db import make_engine
from server.core.errors import Conflict, NotFound
from server.models import (
    Account,
    Assignment,
    Flag,
    Meter,
    Reading,
    TrackPoint,
    User,
    ValidationWork,
)
from server.validation import verdicts
from server.validation.learned_positions import learned_positions

MESSAGE_MAX = 1000  # Flag.message
logger = logging.getLogger("gridwalk")
EPOCH_DAY = date(1970, 1, 1)


def window_tz(settings: Settings) -> tzinfo:
    """The time zone in which a cycle's window dates are meant."""
    return timezone(timedelta(minutes=settings.validation_window_utc_offset_minutes))


def _midnight(day: date, tz: tzinfo) -> datetime:
    return datetime.combine(day, time.min, tzinfo=tz)


@dataclass(frozen=True)
class Judgement:
    """What the rules found of an assignment and its verdict, not yet written."""

    findings: dict[str, Finding]
    verdict: verdicts.Judged


def validate_assignment(
    session: Session, *, assignment_id: int, settings: Settings, now: datetime | None = None
) -> list[Flag]:
    """Validate one assignment and reconcile its flags; returns the current findings' flags."""
    assignment = _locked(session, assignment_id)
    judgement = judge_assignment(session, assignment, settings=settings, now=now or clock.now())
    return keep(session, assignment_id, judgement)


def _locked(session: Session, assignment_id: int) -> Assignment:
    # The row lock queues concurrent validations of one assignment (two pushes of the reader's
    # devices), so neither inserts a flag the other is inserting. SQLite's writers queue anyway.
    assignment = session.exec(
        select(Assignment)
        .where(Assignment.id == assignment_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()
    if assignment is None:
        raise NotFound(f"no assignment {assignment_id}", code="assignment_not_found")
    return assignment


def keep(session: Session, assignment_id: int, judgement: Judgement) -> list[Flag]:
    """Write a judgement in the caller's transaction, which holds the assignment's row lock:
    its flags reconciled with those held, its verdict stored."""
    flags = _reconcile(session, assignment_id, judgement.findings)
    verdicts.store(session, assignment_id, judgement.verdict)
    return flags


def judge_assignment(
    session: Session,
    assignment: Assignment,
    *,
    settings: Settings,
    now: datetime,
    closing: bool = False,
) -> Judgement:
    """Run the rules and the verdict over the assignment's rows as the session sees them (as if
    closed, if `closing`); nothing is written."""
    assignment_id = assignment.id
    assert assignment_id is not None
    thresholds = settings.thresholds()
    tz = window_tz(settings)
    learned = learned_positions(
        session,
        route_id=assignment.route_id,
        assignment_id=assignment_id,
        thresholds=thresholds,
    )
    # Rows as plain tuples, not ORM objects, on the session's connection (its transaction and
    # the assignment's lock): a route-day is 300 meters, 300 readings and 6,000 track points,
    # and ORM objects cost more to make than the rules take to judge them (bench/close_due.py).
    conn = session.connection()
    meters = [
        MeterFacts(
            id=m.id,
            lat=m.lat,
            lon=m.lon,
            meter_no=m.meter_no,
            digits=m.digits,
            multiplier=m.multiplier,
            last_reading=m.last_reading,
            expected_low=m.expected_low,
            expected_high=m.expected_high,
            sequence=m.sequence,
            active=m.active,
            position_uncertainty_m=m.position_uncertainty_m or 0.0,
            learned=learned.get(m.id),
        )
        for m in conn.execute(
            sa_select(*(col(getattr(Meter, name)) for name in METER_FACTS), col(Account.active))
            .join(Account, col(Account.id) == Meter.account_id)
            .where(col(Meter.route_id) == assignment.route_id)
            .order_by(col(Meter.sequence), col(Meter.id))
        )
    ]
    rows = list(
        conn.execute(
            sa_select(*(col(getattr(Reading, name)) for name in READING_FACTS)).where(
                col(Reading.assignment_id) == assignment_id
            )
        )
    )
    replaced = {r.supersedes for r in rows if r.supersedes is not None}
    readings = [reading_facts(r, superseded=r.id in replaced) for r in rows]

    # The track that can witness this assignment's work: its window (through the day after, for
    # late evenings and time zones) and, around each reading, the rules' time window, of every
    # reader who took a reading (a route moved mid-cycle has two).
    margin = timedelta(seconds=thresholds.track_window_s)
    start = _midnight(assignment.window_start, tz)
    end = _midnight(assignment.window_end + timedelta(days=2), tz)
    if rows:
        start = min(start, min(r.read_at for r in rows) - margin)
        end = max(end, max(r.read_at for r in rows) + margin)
    readers = {assignment.reader_id} | {r.user_id for r in rows}
    track = [
        TrackFix(
            t=t,
            lat=lat,
            lon=lon,
            accuracy_m=acc,
            mock=mock,
            provider=provider,
            reader_id=user,
            device_id=device,
        )
        # Columns, not ORM objects: a route-day is thousands of points.
        for user, device, t, lat, lon, acc, mock, provider in conn.execute(
            sa_select(
                col(TrackPoint.user_id),
                col(TrackPoint.device_id),
                col(TrackPoint.t),
                col(TrackPoint.lat),
                col(TrackPoint.lon),
                col(TrackPoint.accuracy_m),
                col(TrackPoint.mock),
                col(TrackPoint.provider),
            ).where(
                col(TrackPoint.user_id).in_(readers),
                col(TrackPoint.t) >= start,
                col(TrackPoint.t) <= end,
            )
        ).all()
    ]
    facts = AssignmentFacts(
        window_start=assignment.window_start,
        window_end=assignment.window_end,
        tz=tz,
        closed=closing or assignment.status == "closed",
    )
    devices = {p.device_id for p in track if p.device_id} | {r.device_id for r in rows}
    earlier = _earlier_tracks(
        session, assignment, readers, devices, (start, end), thresholds.replay_lookback_days, tz
    )
    indexed = Track(track)  # for the rules and the verdict: each reader's walk cleaned once
    findings = validate_route(facts, meters, readings, indexed, thresholds, now, earlier)
    # Judged with its flags, stored with them: the audit reads the verdict, never computes it.
    verdict = verdicts.judge(
        session,
        assignment=assignment,
        meters=meters,
        readings=readings,
        track=indexed,
        held=(start, end),
        thresholds=thresholds,
    )
    return Judgement({f.key: f for f in findings}, verdict)


def _earlier_tracks(
    session: Session,
    assignment: Assignment,
    readers: set[int],
    devices: set[str],
    span: tuple[datetime, datetime],
    days: int,
    tz: tzinfo,
) -> list[EarlierTrack]:
    """The tracks that this assignment's track (over `span`) may repeat, from `days` before it
    on: of its readers, of any reader of its route (in any cycle), and of whoever used its
    devices; one per reader, device and local day, named with the assignment the reader had
    that day. Its readers' own points within the span are its track (common.rules.copies
    judges its earlier days too), so they are not read twice."""
    if days <= 0:
        return []
    before, end = span
    since = before - timedelta(days=days)
    route_readers = set(
        session.exec(
            select(Assignment.reader_id)
            .where(Assignment.route_id == assignment.route_id)
            .distinct()
        ).all()
    )
    users = readers | route_readers
    # One query; ix_track_points_user_t and ix_track_points_device_t serve its two halves.
    who = or_(col(TrackPoint.user_id).in_(users), col(TrackPoint.device_id).in_(devices))
    # Grouped by local day with the window's fixed offset: a date and a TrackFix per point would
    # cost more than the rule itself (bench/replay.py).
    offset_s = (tz.utcoffset(before) or timedelta()).total_seconds()
    groups: dict[tuple[int, str, int], list[Stamp]] = {}
    # On the session's connection, not through the ORM's result machinery: plain rows.
    for user, device, t, lat, lon in session.connection().execute(
        sa_select(
            col(TrackPoint.user_id),
            col(TrackPoint.device_id),
            col(TrackPoint.t),
            col(TrackPoint.lat),
            col(TrackPoint.lon),
        ).where(
            who,
            col(TrackPoint.t) >= since,
            col(TrackPoint.t) <= end,
            not_(and_(col(TrackPoint.user_id).in_(readers), col(TrackPoint.t) >= before)),
        )
    ):
        epoch = t.timestamp()
        key = (user, device, int((epoch + offset_s) // 86_400))
        groups.setdefault(key, []).append((epoch, lat, lon))
    if not groups:
        return []
    found = {user for user, _, _ in groups}
    names = dict(
        session.execute(
            sa_select(col(User.id), col(User.username)).where(col(User.id).in_(found))
        ).all()
    )
    first_day, last_day = since.astimezone(tz).date(), end.astimezone(tz).date()
    held = session.execute(
        sa_select(
            col(Assignment.id),
            col(Assignment.reader_id),
            col(Assignment.window_start),
            col(Assignment.window_end),
        )
        .where(
            col(Assignment.reader_id).in_(found),
            col(Assignment.window_start) <= last_day,
            col(Assignment.window_end) >= first_day,
        )
        .order_by(col(Assignment.id))
    ).all()
    tracks = []
    for (user, device, n), points in sorted(groups.items()):
        day = EPOCH_DAY + timedelta(days=n)
        walked_for = next((a for a, r, s, e in held if r == user and s <= day <= e), None)
        points.sort()
        tracks.append(
            EarlierTrack(
                day,
                points,
                reader_id=user,
                reader=names.get(user, ""),
                device_id=device,
                assignment_id=walked_for,
            )
        )
    return tracks


# The columns the rules take of a meter and of a reading, loaded as plain rows.
METER_FACTS = (
    "id",
    "lat",
    "lon",
    "meter_no",
    "digits",
    "multiplier",
    "last_reading",
    "expected_low",
    "expected_high",
    "sequence",
    "position_uncertainty_m",
)
READING_FACTS = (
    "id",
    "meter_id",
    "read_at",
    "confirmed_at",
    "received_at",
    "value",
    "skip_code",
    "sent_at",
    "fix_lat",
    "fix_lon",
    "fix_accuracy_m",
    "fix_time",
    "fix_provider",
    "fix_mock",
    "supersedes",
    "reread_of",
    "user_id",
    "device_id",
)


def reading_facts(r: Reading | Any, *, superseded: bool) -> ReadingFacts:
    """A stored reading (a Reading, or a row of its READING_FACTS columns) as the rules take
    it (the audit's verdict takes it too)."""
    fix = None
    if r.fix_lat is not None and r.fix_lon is not None and r.fix_time is not None:
        fix = Fix(
            lat=r.fix_lat,
            lon=r.fix_lon,
            accuracy_m=r.fix_accuracy_m if r.fix_accuracy_m is not None else 0.0,
            fix_time=r.fix_time,
            provider=r.fix_provider or "gps",
            mock=bool(r.fix_mock),
        )
    return ReadingFacts(
        id=r.id,
        meter_id=r.meter_id,
        read_at=r.read_at,
        confirmed_at=r.confirmed_at,
        received_at=r.received_at,
        value=r.value,
        skip_code=r.skip_code,
        sent_at=r.sent_at,
        fix=fix,
        superseded=superseded,
        reread=r.reread_of is not None,
        reader_id=r.user_id,
    )


def _reconcile(session: Session, assignment_id: int, findings: dict[str, Finding]) -> list[Flag]:
    held = {
        f.key: f
        for f in session.exec(
            select(Flag).where(Flag.assignment_id == assignment_id, col(Flag.key).is_not(None))
        )
    }
    flags = []
    for key, finding in findings.items():
        message = finding.message[:MESSAGE_MAX]
        flag = held.pop(key, None)
        if flag is None:
            flag = Flag(
                assignment_id=assignment_id,
                key=key,
                code=finding.code,
                severity=finding.severity,
                message=message,
                params=finding.params,
                reading_id=finding.reading_id,
                meter_id=finding.meter_id,
            )
            session.add(flag)
        elif (flag.message, flag.severity, flag.params) != (
            message,
            finding.severity,
            finding.params,
        ):
            flag.message = message
            flag.severity = finding.severity
            flag.params = finding.params
            session.add(flag)
        flags.append(flag)
    for flag in held.values():
        if flag.review is None:
            session.delete(flag)
        # A reviewed flag stays: the review is on record even if the finding has gone.
    session.flush()
    return flags


def affected_assignments_for_track(
    session: Session,
    *,
    user_id: int,
    t_min: datetime,
    t_max: datetime,
    settings: Settings | None = None,
) -> set[int]:
    """The assignments whose validation a batch of `user_id`'s track points from t_min to t_max
    can change: those with the user's readings within the track window of it, and the user's
    assignments whose window's track span covers it."""
    settings = settings or Settings()
    tz = window_tz(settings)
    margin = timedelta(seconds=settings.validation_track_window_s)
    by_reading = session.exec(
        select(Reading.assignment_id)
        .where(
            Reading.user_id == user_id,
            col(Reading.read_at) >= t_min - margin,
            col(Reading.read_at) <= t_max + margin,
        )
        .distinct()
    ).all()
    # An assignment's track span runs from its window's first day to the end of the day after
    # its last (see validate_assignment).
    first_day = t_min.astimezone(tz).date()
    last_day = t_max.astimezone(tz).date()
    by_window = session.exec(
        select(Assignment.id).where(
            Assignment.reader_id == user_id,
            col(Assignment.window_start) <= last_day,
            col(Assignment.window_end) >= first_day - timedelta(days=1),
        )
    ).all()
    return set(by_reading) | {a for a in by_window if a is not None}


def close_assignment(
    session: Session,
    *,
    assignment_id: int,
    actor_id: int | None,
    settings: Settings,
    now: datetime | None = None,
) -> list[Flag]:
    """Close an assignment (its device is told it is withdrawn) and validate it: what is still
    unread is now `missed`. Returns the flags of the validation."""
    now = now or clock.now()
    assignment = _open_locked(session, assignment_id)
    judgement = judge_assignment(session, assignment, settings=settings, now=now, closing=True)
    return _write_close(
        session, assignment, judgement, actor_id=actor_id, settings=settings, now=now
    )


def _open_locked(session: Session, assignment_id: int) -> Assignment:
    assignment = _locked(session, assignment_id)
    if assignment.status == "closed":
        raise Conflict(f"assignment {assignment_id} is already closed", code="assignment_closed")
    return assignment


def _write_close(
    session: Session,
    assignment: Assignment,
    judgement: Judgement,
    *,
    actor_id: int | None,
    settings: Settings,
    now: datetime,
) -> list[Flag]:
    """Write a close judged as closed, in the transaction holding the assignment's row lock.
    The assignment's own change is written after the judging, not before: it takes the change
    counter's lock (PostgreSQL), which every close and push queues on, for the rest of the
    transaction."""
    assert assignment.id is not None
    flags = keep(session, assignment.id, judgement)
    # Validated just now with all its data: what was queued for it has nothing left to judge.
    session.execute(
        delete(ValidationWork).where(col(ValidationWork.assignment_id) == assignment.id)
    )
    assignment.status = "closed"
    assignment.closed_at = now
    session.add(assignment)
    session.flush()
    feed.append_ready(session, assignment_id=assignment.id, thresholds=settings.thresholds())
    log_admin_action(
        session,
        actor_id=actor_id,
        action="assignment.close",
        object_type="assignment",
        object_id=assignment.id,
        detail={"missed": sum(1 for f in flags if f.code == "missed"), "flags": len(flags)},
    )
    return flags


def close_due_assignments(
    engine: Engine, *, settings: Settings, now: datetime, workers: int = 1
) -> list[int]:
    """Close every open assignment whose window has ended (by the window's local date), each
    in transactions of its own (close_due_one): no lock is held across the cycle, a reader's
    push waits for one assignment's write at most, and a run cut short leaves the rest open for
    the next run to close. An assignment closed meanwhile by a supervisor is left as it is; one
    that fails is logged, left open and tried again on the next run. With `workers` > 1, that
    many processes close side by side (judging is CPU: one process uses one core); returns the
    ids closed, in id order."""
    today = now.astimezone(window_tz(settings)).date()
    with Session(engine) as session:
        due = [
            a
            for a in session.exec(
                select(Assignment.id)
                .where(Assignment.status == "open", col(Assignment.window_end) < today)
                .order_by(col(Assignment.id))
            ).all()
            if a is not None
        ]
    database = engine.url.database
    if workers > 1 and len(due) > 1 and database not in (None, "", ":memory:"):
        return _close_in_processes(engine, due, settings=settings, now=now, workers=workers)
    return [a for a in due if close_due_one(engine, a, settings=settings, now=now)]


def close_due_one(engine: Engine, assignment_id: int, *, settings: Settings, now: datetime) -> bool:
    """Close one ended assignment in two transactions; whether it was closed.

    First it is judged without its row lock, in a transaction that writes nothing (on SQLite it
    takes no write lock): closes judge side by side, and pushes are not held up by the rules.
    Then, under the lock, the judgement is written, unless the assignment's data moved in
    between: new data always queues validation work in its own transaction, and a validation
    that takes that work away stores a new verdict version in its own, so work queued at the
    write, or a version other than the one seen before judging, means it is judged again under
    the lock. (What never queues work, an import moving a meter, is judged as it stood when the
    close began, as if the close had come first.)"""
    try:
        judged = _judge_unlocked(engine, assignment_id, settings=settings, now=now)
        if judged is None:
            return False
        _close_locked(engine, assignment_id, *judged, settings=settings, now=now)
        return True
    except Conflict:
        return False  # closed by hand since the list was read
    except Exception:  # one assignment that cannot be closed must not hold up the rest
        logger.exception("closing assignment %s failed", assignment_id)
        return False


def _judge_unlocked(
    engine: Engine, assignment_id: int, *, settings: Settings, now: datetime
) -> tuple[int, Judgement | None] | None:
    """An open assignment's verdict version and its judgement as closed (None if work is queued
    for it: it is judged under the lock), in a transaction that writes nothing; None if it is
    not open."""
    with Session(engine) as session:
        # Read only: a deferred transaction on SQLite (see make_engine).
        session.connection(execution_options={"sqlite_deferred": True})
        assignment = session.get(Assignment, assignment_id)
        if assignment is None or assignment.status != "open":
            return None
        seen = verdicts.version(session, assignment_id)
        if session.get(ValidationWork, assignment_id) is not None:
            return seen, None
        return seen, judge_assignment(session, assignment, settings=settings, now=now, closing=True)


def _close_locked(
    engine: Engine,
    assignment_id: int,
    seen: int,
    judgement: Judgement | None,
    *,
    settings: Settings,
    now: datetime,
) -> None:
    """Write the close under the assignment's row lock, judging again if its data moved since
    `seen`; the only transaction of a close that holds a lock."""
    with Session(engine) as session:
        assignment = _open_locked(session, assignment_id)
        if (
            judgement is None
            or session.get(ValidationWork, assignment_id) is not None
            or verdicts.version(session, assignment_id) != seen
        ):
            judgement = judge_assignment(
                session, assignment, settings=settings, now=now, closing=True
            )
        _write_close(session, assignment, judgement, actor_id=None, settings=settings, now=now)
        session.commit()


def _close_in_processes(
    engine: Engine, due: list[int], *, settings: Settings, now: datetime, workers: int
) -> list[int]:
    url = engine.url.render_as_string(hide_password=False)
    # Spawned, not forked: a fork would share the parent's pooled connections.
    with ProcessPoolExecutor(
        max_workers=min(workers, len(due)),
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_close_worker,
        initargs=(url, settings),
    ) as pool:
        done = pool.map(_close_in_worker, due, itertools.repeat(now), chunksize=4)
        return [a for a, closed in zip(due, done, strict=True) if closed]


_worker: tuple[Engine, Settings] | None = None


def _start_close_worker(url: str, settings: Settings) -> None:
    global _worker  # one engine per worker process, made once
    _worker = (
        make_engine(url, sqlite_busy_timeout_s=settings.sqlite_busy_timeout_s),
        settings,
    )


def _close_in_worker(assignment_id: int, now: datetime) -> bool:
    assert _worker is not None
    engine, settings = _worker
    return close_due_one(engine, assignment_id, settings=settings, now=now)
