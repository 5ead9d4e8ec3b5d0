"""The pull: everything for a user that changed since their cursor.

Every row a device may hold carries `change_seq`, the change counter's value in the transaction
that last changed it. Numbers are handed out under the counter's row lock, so they are in commit
order; a pull reads the committed counter first (`hi`) and sends what changed in (`lo`, `hi`]. A
change committed during the pull has a number above `hi` and comes next time. Large pulls are
paged by meter, keyset-style, so that a row changed between pages is never skipped: it leaves
this pull's range and falls into the next one.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, tuple_
from sqlmodel import Session, col, select

from server.core.changes import committed_change_seq
from server.core.config import Settings
from server.core.errors import Invalid
from server.jobs import figures
from server.models import (
    Account,
    Assignment,
    Cycle,
    Job,
    JobCrew,
    Meter,
    Reading,
    RereadOrder,
    Route,
    User,
    Withdrawal,
)
from server.schemas.wire import (
    AssignmentOut,
    JobOut,
    MeterOut,
    PullResponse,
    RereadOrderOut,
    Withdrawn,
)
from server.sync import epoch


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

    held = _current_readings(session, meter_rows)
    meters_by_assignment: dict[int, list[MeterOut]] = {}
    for assignment_id, meter, account in meter_rows:
        meters_by_assignment.setdefault(assignment_id, []).append(
            _meter_out(meter, account, held.get((assignment_id, meter.id or 0)))
        )
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
        data_epoch=epoch.current(session),
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


def _current_readings(
    session: Session, meter_rows: list[tuple[int, Meter, Account]]
) -> dict[tuple[int, int], Reading]:
    """The reading that stands for each meter of the page in its assignment (the last of a
    chain of re-reads: the one nothing supersedes), whichever handheld sent it."""
    if not meter_rows:
        return {}
    assignment_ids = {a for a, _m, _acc in meter_rows}
    meter_ids = {m.id for _a, m, _acc in meter_rows}
    readings = session.exec(
        select(Reading).where(
            col(Reading.assignment_id).in_(assignment_ids), col(Reading.meter_id).in_(meter_ids)
        )
    ).all()
    superseded = {r.supersedes for r in readings if r.supersedes is not None}
    return {(r.assignment_id, r.meter_id): r for r in readings if r.id not in superseded}


def _meter_out(meter: Meter, account: Account, reading: Reading | None = None) -> MeterOut:
    assert meter.id is not None
    state = "unread"
    if reading is not None:
        state = "skipped" if reading.skip_code is not None else "read"
    return MeterOut(
        state=state,
        reading_id=str(reading.id) if reading is not None else None,
        read_at=reading.read_at if reading is not None else None,
        value=reading.value if reading is not None else None,
        skip_code=reading.skip_code if reading is not None else None,
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
    crew, accounts = figures.crews(session, ids), figures.account_numbers(session, ids)
    return [figures.job_out(j, crew.get(j.id, []), accounts.get(j.id, [])) for j in found]
