"""Where a route's meters probably are, learned from past cycles: the fixes of their readings in
other assignments that raised no presence flag (common.rules.presence.learn_position makes the
median of them). Validation uses it as a second place a meter may be; the audit shows it."""

from __future__ import annotations

from sqlalchemy import exists, not_
from sqlalchemy import select as sa_select
from sqlmodel import Session, col

from common.rules.facts import LearnedPosition, Thresholds
from common.rules.presence import PRESENCE_CODES, learn_position
from server.models import Flag, Meter, Reading


def learned_positions(
    session: Session, *, route_id: int, assignment_id: int, thresholds: Thresholds
) -> dict[int, LearnedPosition]:
    """By meter id, the learned position of each meter of the route that has one, from the
    readings of other assignments than `assignment_id` (whose fixes are what is being judged).
    One query over the route's readings."""
    presence_flag = exists().where(
        col(Flag.reading_id) == col(Reading.id), col(Flag.code).in_(PRESENCE_CODES)
    )
    rows = session.execute(
        sa_select(col(Reading.meter_id), col(Reading.fix_lat), col(Reading.fix_lon))
        .join(Meter, col(Meter.id) == Reading.meter_id)
        .where(
            col(Meter.route_id) == route_id,
            col(Reading.assignment_id) != assignment_id,
            col(Reading.fix_lat).is_not(None),
            col(Reading.fix_lon).is_not(None),
            col(Reading.fix_mock).is_not(True),  # NULL (no flag sent) or false
            not_(presence_flag),
        )
    ).all()
    fixes: dict[int, list[tuple[float, float]]] = {}
    for meter_id, lat, lon in rows:
        fixes.setdefault(meter_id, []).append((lat, lon))
    learned = {m: learn_position(f, thresholds) for m, f in fixes.items()}
    return {m: p for m, p in learned.items() if p is not None}
