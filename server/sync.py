"""The sync contract's server side: what a device pulls, and how a pushed outbox is stored.

Pull: every row a device may hold carries `change_seq`, the change counter's value in the
transaction that last changed it. Numbers are handed out under the counter's row lock, so they
are in commit order; a pull reads the committed counter first (`hi`) and sends what changed in
(`lo`, `hi`]. A change committed during the pull has a number above `hi` and comes next time.
Large pulls are paged by meter, keyset-style, so that a row changed between pages is never
skipped: it leaves this pull's range and falls into the next one.

Push: one transaction, one savepoint per item: a bad item is rejected with a reason and the rest
stored; an item is stored whole or not at all. Readings are never updated: the same id again is
a duplicate (same content) or `locked` (other content).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import AwareDatetime, BaseModel, ValidationError
from sqlalchemy import and_, exists, insert, or_, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from common import clock
from common.numbers import plain
from common.wire import iso
from server import jobs
from server.core.changes import committed_change_seq
from server.core.config import Settings
from server.errors import Invalid, ItemRefused, TooLarge
from server.models import (
    Account,
    Assignment,
    Cycle,
    Device,
    Job,
    JobCrew,
    JobEvent,
    Meter,
    Reading,
    RereadOrder,
    Route,
    TrackPoint,
    User,
    Withdrawal,
    fix_columns,
)
from server.schemas.wire import (
    AssignmentOut,
    Fix,
    JobEventIn,
    JobOut,
    MeterOut,
    PullResponse,
    PushResponse,
    PushResult,
    ReadingIn,
    RereadOrderOut,
    TrackPointIn,
    TrackRejection,
    TrackResult,
    Withdrawn,
)
from server.validation import affected_assignments_for_track, validate_assignment

# --------------------------------------------------------------------------------------- pull


@dataclass(frozen=True)
class Cursor:
    """Where a device is in the change sequence; `after` is set while a paged pull goes on."""

    lo: int
    hi: int | None = None
    after: tuple[int, int, int] | None = None  # (assignment id, meter sequence, meter id)

    def encode(self) -> str:
        data: dict[str, Any] = {"v": 1, "lo": self.lo}
        if self.hi is not None and self.after is not None:
            data |= {"hi": self.hi, "after": list(self.after)}
        raw = json.dumps(data, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str | None) -> Cursor:
        if not text:
            return cls(lo=0)
        try:
            data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            if data.get("v") != 1 or not isinstance(data["lo"], int) or data["lo"] < 0:
                raise ValueError
            after = data.get("after")
            if after is None:
                return cls(lo=data["lo"])
            hi = data["hi"]
            if (
                not isinstance(hi, int)
                or len(after) != 3
                or not all(isinstance(x, int) for x in after)
            ):
                raise ValueError
            return cls(lo=data["lo"], hi=hi, after=(after[0], after[1], after[2]))
        except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
            raise Invalid(
                "cursor is not one this server handed out: pull again without a cursor",
                code="invalid_cursor",
            ) from None


def pull(session: Session, settings: Settings, *, user: User, cursor: str | None) -> PullResponse:
    """Everything for `user` that changed since `cursor` (no cursor: everything), one page."""
    assert user.id is not None
    cur = Cursor.decode(cursor)
    lo = cur.lo
    hi = cur.hi if cur.after is not None and cur.hi is not None else committed_change_seq(session)
    if lo > hi:
        raise Invalid(
            "cursor is ahead of this server: pull again without a cursor", code="invalid_cursor"
        )

    def in_range(column: Any) -> Any:
        return and_(column > lo, column <= hi)

    assignments = session.exec(
        select(Assignment, Route, Cycle)
        .join(Route, col(Route.id) == Assignment.route_id)
        .join(Cycle, col(Cycle.id) == Assignment.cycle_id)
        .where(Assignment.reader_id == user.id)
    ).all()
    open_by_id = {
        a.id: (a, r, c) for a, r, c in assignments if a.id is not None and a.status == "open"
    }

    headers: set[int] = set()
    withdrawn: list[Withdrawn] = []
    rereads: list[RereadOrderOut] = []
    jobs: list[JobOut] = []
    first_page = cur.after is None
    if first_page:
        for a, _r, _c in assignments:
            assert a.id is not None
            if lo < a.change_seq <= hi:
                if a.status == "open":
                    headers.add(a.id)
                else:
                    withdrawn.append(Withdrawn(type="assignment", id=str(a.id), assignment_id=a.id))
        withdrawn += [
            Withdrawn.model_validate(
                {"type": w.object_type, "id": w.object_id, "assignment_id": w.assignment_id}
            )
            for w in session.exec(
                select(Withdrawal)
                .where(Withdrawal.user_id == user.id, in_range(Withdrawal.change_seq))
                .order_by(col(Withdrawal.id))
            )
        ]
        rereads, closed = _reread_orders(session, user_id=user.id, in_range=in_range)
        withdrawn += closed
        jobs = _jobs(session, user_id=user.id, in_range=in_range)

    meter_rows = _meter_page(
        session, settings, open_ids=list(open_by_id), in_range=in_range, after=cur.after
    )
    has_more = len(meter_rows) > settings.pull_page_size
    meter_rows = meter_rows[: settings.pull_page_size]

    meters_by_assignment: dict[int, list[MeterOut]] = {}
    for assignment_id, meter, account in meter_rows:
        meters_by_assignment.setdefault(assignment_id, []).append(_meter_out(meter, account))
    out: list[AssignmentOut] = []
    for assignment_id in sorted(headers | set(meters_by_assignment)):
        a, r, c = open_by_id[assignment_id]
        out.append(
            AssignmentOut(
                id=assignment_id,
                route_code=r.code,
                route_name=r.name,
                cycle=c.code,
                window_start=a.window_start,
                window_end=a.window_end,
                meters=meters_by_assignment.get(assignment_id, []),
            )
        )

    if has_more:
        last_assignment, last_meter, _ = meter_rows[-1]
        assert last_meter.id is not None
        next_cursor = Cursor(
            lo=lo, hi=hi, after=(last_assignment, last_meter.sequence, last_meter.id)
        )
    else:
        next_cursor = Cursor(lo=hi)
    return PullResponse(
        cursor=next_cursor.encode(),
        has_more=has_more,
        assignments=out,
        jobs=jobs,
        reread_orders=rereads,
        withdrawn=withdrawn,
    )


def _meter_page(
    session: Session,
    settings: Settings,
    *,
    open_ids: list[int],
    in_range: Any,
    after: tuple[int, int, int] | None,
) -> list[tuple[int, Meter, Account]]:
    if not open_ids:
        return []
    # A new (or changed) assignment sends all its meters; otherwise only the meters that changed.
    stmt = (
        select(Assignment.id, Meter, Account)
        .join(Meter, col(Meter.route_id) == Assignment.route_id)
        .join(Account, col(Account.id) == Meter.account_id)
        .where(col(Assignment.id).in_(open_ids))
        .where(or_(in_range(Assignment.change_seq), in_range(Meter.change_seq)))
    )
    if after is not None:
        stmt = stmt.where(tuple_(Assignment.id, Meter.sequence, Meter.id) > tuple_(*after))
    stmt = stmt.order_by(col(Assignment.id), col(Meter.sequence), col(Meter.id)).limit(
        settings.pull_page_size + 1
    )
    return [(a_id, meter, account) for a_id, meter, account in session.exec(stmt) if a_id]


def _meter_out(meter: Meter, account: Account) -> MeterOut:
    assert meter.id is not None
    return MeterOut(
        id=meter.id,
        meter_no=meter.meter_no,
        account_no=account.account_no,
        customer_name=account.customer_name,
        address=account.address,
        lat=meter.lat,
        lon=meter.lon,
        digits=meter.digits,
        multiplier=meter.multiplier,
        last_reading=meter.last_reading,
        last_read_at=meter.last_read_at,
        expected_low=meter.expected_low,
        expected_high=meter.expected_high,
        sequence=meter.sequence,
    )


def _reread_orders(
    session: Session, *, user_id: int, in_range: Any
) -> tuple[list[RereadOrderOut], list[Withdrawn]]:
    rows = session.exec(
        select(RereadOrder)
        .join(Assignment, col(Assignment.id) == RereadOrder.assignment_id)
        .where(Assignment.reader_id == user_id, in_range(RereadOrder.change_seq))
        .order_by(col(RereadOrder.change_seq))
    ).all()
    orders = [
        RereadOrderOut(
            id=o.id,
            assignment_id=o.assignment_id,
            meter_id=o.meter_id,
            reading_id=o.reading_id,
            reason=o.reason,
            ordered_at=o.created_at,
        )
        for o in rows
        if o.status == "open"
    ]
    closed = [
        Withdrawn(type="reread_order", id=str(o.id), assignment_id=o.assignment_id)
        for o in rows
        if o.status != "open"
    ]
    return orders, closed


def _jobs(session: Session, *, user_id: int, in_range: Any) -> list[JobOut]:
    found = session.exec(
        select(Job)
        .join(JobCrew, col(JobCrew.job_id) == Job.id)
        .where(JobCrew.user_id == user_id, in_range(Job.change_seq))
        .order_by(col(Job.change_seq))
    ).all()
    ids = [j.id for j in found]
    crew, accounts = jobs.crews(session, ids), jobs.account_numbers(session, ids)
    return [jobs.job_out(j, crew.get(j.id, []), accounts.get(j.id, [])) for j in found]


# --------------------------------------------------------------------------------------- push

PUSH_FIELDS = {"sent_at", "readings", "track_points", "job_events"}
MAX_READINGS = 5_000
MAX_JOB_EVENTS = 5_000
MAX_TRACK_POINTS = 100_000


@dataclass(frozen=True)
class Pusher:
    """Who pushes: the user and the device of the access token."""

    user: User
    device_id: str

    @property
    def user_id(self) -> int:
        assert self.user.id is not None
        return self.user.id


def parse_envelope(payload: Any) -> tuple[datetime | None, list[Any], list[Any], list[Any]]:
    """Check the push body's outer shape; items are checked one by one later."""
    if not isinstance(payload, dict):
        raise Invalid(
            "push body must be a JSON object with readings, track_points, job_events",
            code="invalid_body",
        )
    unknown = sorted(set(payload) - PUSH_FIELDS)
    if unknown:
        raise Invalid(
            f"unknown field(s) in push body: {', '.join(unknown)}",
            code="invalid_body",
            extra={"field": unknown[0]},
        )
    lists: list[list[Any]] = []
    for name, limit in (
        ("readings", MAX_READINGS),
        ("track_points", MAX_TRACK_POINTS),
        ("job_events", MAX_JOB_EVENTS),
    ):
        value = payload.get(name, [])
        if not isinstance(value, list):
            raise Invalid(f"{name} must be a list", code="invalid_body", extra={"field": name})
        if len(value) > limit:
            raise TooLarge(
                f"{name} has {len(value)} items; at most {limit} per push",
                code="too_many_items",
                extra={"field": name},
            )
        lists.append(value)
    sent_at = None
    if payload.get("sent_at") is not None:
        try:
            sent_at = _SentAt.model_validate({"sent_at": payload["sent_at"]}).sent_at
        except ValidationError:
            raise Invalid(
                "sent_at must be an ISO 8601 time with a UTC offset",
                code="invalid_body",
                extra={"field": "sent_at"},
            ) from None
    return sent_at, lists[0], lists[1], lists[2]


class _SentAt(BaseModel):
    sent_at: AwareDatetime


def push(session: Session, settings: Settings, *, pusher: Pusher, payload: Any) -> PushResponse:
    """Store a pushed outbox item by item; the answer has one result per reading and event.

    The assignments the push touched are validated in the same transaction, so a supervisor
    sees the flags the moment the push lands."""
    sent_at, raw_readings, raw_points, raw_events = parse_envelope(payload)
    received_at = clock.now()
    results = [
        _one(
            session,
            raw,
            ReadingIn,
            lambda item: _store_reading(session, pusher, item, sent_at, received_at),
        )
        for raw in raw_readings
    ]
    touched = {
        int(raw["assignment_id"])
        for raw, result in zip(raw_readings, results, strict=True)
        if result.status == "accepted"
    }
    track, span = _store_track(session, pusher, raw_points, received_at)
    if span is not None:
        # A late track batch re-validates the readings it covers.
        touched |= affected_assignments_for_track(
            session, user_id=pusher.user_id, t_min=span[0], t_max=span[1], settings=settings
        )
    results += _job_events_in_time_order(session, pusher, raw_events, received_at)
    for assignment_id in sorted(touched):  # one lock order for every push
        validate_assignment(
            session, assignment_id=assignment_id, settings=settings, now=received_at
        )
    device = session.get(Device, pusher.device_id)
    if device is not None:
        device.last_seen_at = received_at
        session.add(device)
    session.flush()
    return PushResponse(results=results, track=track)


def _one(
    session: Session,
    raw: Any,
    model: type[ReadingIn] | type[JobEventIn],
    store: Any,
    parsed: ReadingIn | JobEventIn | None = None,
) -> PushResult:
    raw_id = raw.get("id") if isinstance(raw, dict) else None
    item_id = raw_id if isinstance(raw_id, str) else None
    try:
        item = parsed or model.model_validate(raw)
    except ValidationError as exc:
        return PushResult(
            id=item_id, status="rejected", error="invalid", detail=_validation_detail(exc)
        )
    try:
        try:
            with session.begin_nested():
                status = store(item)
        except IntegrityError:
            # A concurrent push of the same outbox (the device retried mid-request) stored it
            # first; looking again answers duplicate, locked or already_read.
            with session.begin_nested():
                status = store(item)
    except ItemRefused as rej:
        return PushResult(id=str(item.id), status="rejected", error=rej.error, detail=rej.detail)
    return PushResult(id=str(item.id), status=status)


def _validation_detail(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "item"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def _fix_canonical(fix: Fix | None) -> dict[str, Any] | None:
    if fix is None:
        return None
    return {
        "lat": fix.lat,
        "lon": fix.lon,
        "accuracy_m": fix.accuracy_m,
        "fix_time": iso(fix.fix_time),
        "provider": fix.provider,
        "mock": fix.mock,
    }


def _hash(content: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def reading_hash(r: ReadingIn) -> str:
    """The content of a reading, independent of how the device wrote its numbers and times."""
    return _hash(
        {
            "assignment_id": r.assignment_id,
            "meter_id": r.meter_id,
            "value": plain(r.value),
            "skip_code": r.skip_code,
            "note": r.note,
            "read_at": iso(r.read_at),
            "confirmed_at": iso(r.confirmed_at),
            "fix": _fix_canonical(r.fix),
            "reread_of": str(r.reread_of) if r.reread_of else None,
        }
    )


def _store_reading(
    session: Session, pusher: Pusher, r: ReadingIn, sent_at: datetime | None, received_at: datetime
) -> str:
    content_hash = reading_hash(r)
    held = session.get(Reading, r.id)
    if held is not None:
        if held.content_hash == content_hash:
            return "duplicate"
        raise ItemRefused(
            "locked",
            "a reading with this id is already held with other content; "
            "a confirmed reading is never changed",
        )
    assignment = session.get(Assignment, r.assignment_id)
    if assignment is None:
        raise ItemRefused("unknown_assignment", f"no assignment {r.assignment_id}")
    if assignment.reader_id != pusher.user_id and not _was_given(
        session, pusher.user_id, assignment_id=r.assignment_id, at=r.read_at
    ):
        raise ItemRefused(
            "not_your_assignment",
            f"assignment {r.assignment_id} is not given to {pusher.user.username}",
        )
    meter = session.get(Meter, r.meter_id)
    if meter is None or meter.route_id != assignment.route_id:
        raise ItemRefused(
            "meter_not_on_route",
            f"meter {r.meter_id} is not on the route of assignment {r.assignment_id}",
        )
    if r.value is not None and r.value >= Decimal(10) ** meter.digits:
        raise ItemRefused(
            "value_exceeds_dials",
            f"{r.value} does not fit the {meter.digits} dials of meter {meter.meter_no}",
        )
    supersedes = None
    if r.reread_of is not None:
        order = session.get(RereadOrder, r.reread_of)
        if order is None or (order.assignment_id, order.meter_id) != (r.assignment_id, r.meter_id):
            raise ItemRefused(
                "unknown_reread_order",
                f"no re-read order {r.reread_of} for this meter and assignment",
            )
        if order.status != "open":
            raise ItemRefused(
                "reread_order_closed", f"re-read order {r.reread_of} is {order.status}"
            )
        supersedes = _current_reading_id(session, r.assignment_id, r.meter_id)
        order.status = "done"
        order.reading_id = r.id
        session.add(order)
    elif (
        session.exec(
            select(Reading.id).where(
                Reading.assignment_id == r.assignment_id,
                Reading.meter_id == r.meter_id,
                col(Reading.reread_of).is_(None),
            )
        ).first()
        is not None
    ):
        raise ItemRefused(
            "already_read",
            f"meter {meter.meter_no} already has a reading in "
            "this assignment; a new one needs a supervisor's re-read order",
        )
    session.add(
        Reading(
            id=r.id,
            assignment_id=r.assignment_id,
            meter_id=r.meter_id,
            value=r.value,
            skip_code=r.skip_code,
            note=r.note,
            read_at=r.read_at,
            confirmed_at=r.confirmed_at,
            **fix_columns(r.fix),
            reread_of=r.reread_of,
            supersedes=supersedes,
            user_id=pusher.user_id,
            device_id=pusher.device_id,
            sent_at=sent_at,
            received_at=received_at,
            content_hash=content_hash,
        )
    )
    session.flush()
    return "accepted"


def _was_given(session: Session, user_id: int, *, assignment_id: int, at: datetime) -> bool:
    """Was the assignment this user's when they read at `at`? A route moved to another reader
    while the first was offline keeps the readings taken before the move."""
    moved_away = session.exec(
        select(Withdrawal.created_at).where(
            Withdrawal.user_id == user_id,
            Withdrawal.object_type == "assignment",
            Withdrawal.object_id == str(assignment_id),
        )
    ).all()
    return any(at < moved for moved in moved_away)


def _current_reading_id(session: Session, assignment_id: int, meter_id: int) -> Any:
    """The reading of this meter that no later reading supersedes (None if never read)."""
    later = aliased(Reading)
    return session.exec(
        select(Reading.id).where(
            Reading.assignment_id == assignment_id,
            Reading.meter_id == meter_id,
            ~exists().where(col(later.supersedes) == Reading.id),
        )
    ).first()


def _store_track(
    session: Session, pusher: Pusher, raw_points: list[Any], received_at: datetime
) -> tuple[TrackResult, tuple[datetime, datetime] | None]:
    """Store the new points; answer in aggregate, with the time span of what was stored."""
    result = TrackResult()
    fresh: dict[datetime, TrackPointIn] = {}
    for index, raw in enumerate(raw_points):
        try:
            point = TrackPointIn.model_validate(raw)
        except ValidationError as exc:
            result.rejected.append(TrackRejection(index=index, error=_validation_detail(exc)))
            continue
        t = point.t.astimezone(UTC)
        if t in fresh:
            result.duplicate += 1
        else:
            fresh[t] = point
    if not fresh:
        return result, None
    held = set(
        session.exec(
            select(TrackPoint.t).where(
                TrackPoint.device_id == pusher.device_id,
                col(TrackPoint.t) >= min(fresh),
                col(TrackPoint.t) <= max(fresh),
            )
        )
    )
    rows = [
        {
            "device_id": pusher.device_id,
            "user_id": pusher.user_id,
            "t": t,
            "lat": p.lat,
            "lon": p.lon,
            "accuracy_m": p.accuracy_m,
            "speed": p.speed,
            "provider": p.provider,
            "mock": p.mock,
            "received_at": received_at,
        }
        for t, p in fresh.items()
        if t not in held
    ]
    result.duplicate += len(fresh) - len(rows)
    result.accepted = len(rows)
    if not rows:
        return result, None
    session.execute(insert(TrackPoint), rows)
    stored = [t for t in fresh if t not in held]
    return result, (min(stored), max(stored))


def job_event_hash(e: JobEventIn) -> str:
    return _hash(
        {
            "job_id": str(e.job_id),
            "kind": e.kind,
            "at": iso(e.at),
            "fix": _fix_canonical(e.fix),
            "expected_finish": iso(e.expected_finish) if e.expected_finish else None,
            "content": e.content,
            "crew": e.crew,
            "note": e.note,
        }
    )


def _store_job_event(session: Session, pusher: Pusher, e: JobEventIn, received_at: datetime) -> str:
    content_hash = job_event_hash(e)
    held = session.get(JobEvent, e.id)
    if held is not None:
        if held.content_hash == content_hash:
            return "duplicate"
        raise ItemRefused("locked", "a job event with this id is already held with other content")
    jobs.apply_device_event(
        session,
        user=pusher.user,
        device_id=pusher.device_id,
        event=e,
        content_hash=content_hash,
        received_at=received_at,
    )
    return "accepted"


def _job_events_in_time_order(
    session: Session, pusher: Pusher, raw_events: list[Any], received_at: datetime
) -> list[PushResult]:
    """Apply a push's job events in the order of their `at` times (a device may list a start
    after the finish it came before); answer them in the order sent."""
    parsed: list[tuple[int, JobEventIn | None, Any]] = []
    for index, raw in enumerate(raw_events):
        try:
            parsed.append((index, JobEventIn.model_validate(raw), raw))
        except ValidationError:
            parsed.append((index, None, raw))
    results: dict[int, PushResult] = {}
    for index, item, raw in sorted(
        parsed, key=lambda p: (p[1].at if p[1] is not None else received_at, p[0])
    ):
        results[index] = _one(
            session,
            raw,
            JobEventIn,
            lambda event: _store_job_event(session, pusher, event, received_at),
            parsed=item,
        )
    return [results[i] for i in range(len(raw_events))]
