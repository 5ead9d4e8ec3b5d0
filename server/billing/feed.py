"""The billing feed: readings handed to billing once they are ready to bill, in commit order.

Ready to bill: a confirmed reading with a register (not a skip), the current one for its meter
(not superseded), its assignment validated since the reading came (no validation_work queued),
and no fail flag on it that is open or upheld (a dismissed one releases it). An upheld reading
stays out for good; its re-read is a new reading, which enters naming it in `supersedes`.

`append_ready` is called where readiness can change: when a validation has taken its work off
the queue, and when a supervisor reviews a flag. Items are never changed or removed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, or_
from sqlalchemy import select as sa_select
from sqlalchemy.dialects import sqlite
from sqlmodel import Session, col, select

from common import clock
from common.rules.consumption import consumption
from common.rules.facts import Thresholds
from server.core.changes import committed_change_seq, next_change_seq
from server.core.db import insert_dicts
from server.core.errors import Invalid
from server.models import (
    Account,
    Assignment,
    BillingFeedItem,
    Cycle,
    Flag,
    Meter,
    Reading,
    ValidationWork,
)


def holding_flags(flags: list[Flag]) -> list[Flag]:
    """The flags that keep a reading from billing: fail flags open or upheld."""
    return [f for f in flags if f.severity == "fail" and f.review != "accepted"]


def current_readings(readings: list[Reading]) -> list[Reading]:
    """The readings no other reading supersedes, in the order taken."""
    replaced = {r.supersedes for r in readings if r.supersedes is not None}
    return sorted((r for r in readings if r.id not in replaced), key=lambda r: r.read_at)


def flags_by_reading(session: Session, assignment_id: int) -> dict[uuid.UUID, list[Flag]]:
    by_reading: dict[uuid.UUID, list[Flag]] = {}
    for f in session.exec(select(Flag).where(Flag.assignment_id == assignment_id)):
        if f.reading_id is not None:
            by_reading.setdefault(f.reading_id, []).append(f)
    return by_reading


def is_pending(session: Session, assignment_id: int) -> bool:
    """New data of the assignment waits to be validated: none of its readings is ready yet."""
    return session.get(ValidationWork, assignment_id) is not None


def append_ready(session: Session, *, assignment_id: int, thresholds: Thresholds) -> int:
    """Append the assignment's readings that are ready to bill and not in the feed yet;
    returns how many. In the caller's transaction."""
    if is_pending(session, assignment_id):
        return 0
    assignment = session.get(Assignment, assignment_id)
    if assignment is None:
        return 0
    cycle = session.get(Cycle, assignment.cycle_id)
    assert cycle is not None
    # Plain rows of the columns used (a close appends a route's 300 readings): ORM objects
    # would cost more to make than the append itself.
    readings: list[Any] = list(
        session.execute(
            sa_select(
                col(Reading.id),
                col(Reading.meter_id),
                col(Reading.read_at),
                col(Reading.value),
                col(Reading.supersedes),
            ).where(col(Reading.assignment_id) == assignment_id)
        )
    )
    fed = set(
        session.exec(
            select(BillingFeedItem.reading_id).where(
                col(BillingFeedItem.reading_id).in_([r.id for r in readings])
            )
        )
    )
    flags = flags_by_reading(session, assignment_id)
    candidates = [
        r
        for r in current_readings(readings)
        if r.value is not None and r.id not in fed and not holding_flags(flags.get(r.id, []))
    ]
    meters: dict[int, Any] = {
        m.id: m
        for m in session.execute(
            sa_select(
                col(Meter.id),
                col(Meter.meter_no),
                col(Meter.last_reading),
                col(Meter.digits),
                col(Meter.multiplier),
                col(Meter.expected_high),
                col(Account.account_no),
            )
            .join(Account, col(Account.id) == Meter.account_id)
            .where(col(Meter.id).in_({r.meter_id for r in candidates}))
        )
    }
    rows = []
    for r in candidates:
        meter = meters[r.meter_id]
        assert r.value is not None
        if meter.last_reading is None:
            continue  # no register to bill from: billing sees it in the holds
        rows.append(
            {
                "reading_id": r.id,
                "supersedes": r.supersedes,
                "account_no": meter.account_no,
                "meter_no": meter.meter_no,
                "read_at": r.read_at,
                "previous": meter.last_reading,
                "current": r.value,
                "consumption_kwh": kwh(r.value, meter, thresholds),
                "created_at": clock.now(),
            }
        )
    if not rows:
        return 0
    # A review and a validation of one assignment may append at once: the second to commit
    # adds nothing twice (it waits for the first's row, then skips it) instead of failing.
    table = BillingFeedItem.__table__  # type: ignore[attr-defined]
    same = {
        "assignment_id": assignment_id,
        "cycle": cycle.code,
        "feed_seq": next_change_seq(session),
    }
    if session.get_bind().dialect.name == "postgresql":
        # One short statement (db.insert_dicts): a close appends a route's 300
        # readings, and a statement of 300 rows' parameters costs psycopg more to take apart
        # than the database to run.
        return len(insert_dicts(session.connection(), table, rows, same=same, returning="id"))
    # The rows as parameters of one statement (sent in batches by SQLAlchemy's
    # insertmanyvalues), not written into it: a statement holding them would be compiled anew
    # for each close.
    return len(
        session.connection()
        .execute(
            sqlite.insert(table)
            .on_conflict_do_nothing(index_elements=[table.c.reading_id])
            .returning(table.c.id),
            [row | same for row in rows],
        )
        .all()
    )


def kwh(value: Decimal, meter: Meter | Any, thresholds: Thresholds) -> Decimal:
    """The consumption as the validation computes it: roll-over and multiplier applied."""
    assert meter.last_reading is not None
    return consumption(
        value,
        meter.last_reading,
        meter.digits,
        meter.multiplier,
        rollover_fraction=thresholds.rollover_fraction,
        expected_high=meter.expected_high,
    )


@dataclass(frozen=True)
class FeedCursor:
    """After which item a consumer is: the item's (feed_seq, id)."""

    seq: int = 0
    id: int = 0

    def encode(self) -> str:
        return f"{self.seq}.{self.id}"

    @classmethod
    def decode(cls, text: str | None) -> FeedCursor:
        if not text:
            return cls()
        seq, _, id_ = text.partition(".")
        if not (seq.isdecimal() and id_.isdecimal()) or len(text) > 40:
            raise Invalid(
                "cursor is not one this server handed out: start again without a cursor",
                code="invalid_cursor",
            )
        return cls(int(seq), int(id_))


def item_out(item: BillingFeedItem) -> dict[str, Any]:
    return {
        "reading_id": str(item.reading_id),
        "account_no": item.account_no,
        "meter_no": item.meter_no,
        "cycle": item.cycle,
        "read_at": item.read_at.isoformat(),
        "previous": str(item.previous),
        "current": str(item.current),
        "consumption_kwh": str(item.consumption_kwh),
        "supersedes": str(item.supersedes) if item.supersedes else None,
    }


def page(session: Session, *, cycle: str | None, cursor: str | None, limit: int) -> dict[str, Any]:
    """The items after `cursor`, in commit order, up to `limit`. Only items whose change number
    has committed are answered: one committing meanwhile has a higher number and comes next."""
    after = FeedCursor.decode(cursor)
    hi = committed_change_seq(session)
    if after.seq > hi:
        raise Invalid(
            "cursor is ahead of this server: start again without a cursor", code="invalid_cursor"
        )
    query = select(BillingFeedItem).where(
        col(BillingFeedItem.feed_seq) <= hi,
        or_(
            col(BillingFeedItem.feed_seq) > after.seq,
            and_(col(BillingFeedItem.feed_seq) == after.seq, col(BillingFeedItem.id) > after.id),
        ),
    )
    if cycle is not None:
        query = query.where(BillingFeedItem.cycle == cycle)
    rows = list(
        session.exec(
            query.order_by(col(BillingFeedItem.feed_seq), col(BillingFeedItem.id)).limit(limit + 1)
        )
    )
    has_more = len(rows) > limit
    rows = rows[:limit]
    last = FeedCursor(rows[-1].feed_seq, rows[-1].id or 0) if rows else after
    return {"items": [item_out(r) for r in rows], "cursor": last.encode(), "has_more": has_more}
