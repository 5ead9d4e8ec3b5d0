"""Time: read within the assignment's window (local dates), by a device whose clock agrees
with the server's."""

from __future__ import annotations

from common.rules.facts import (
    DEFAULT_THRESHOLDS,
    AssignmentFacts,
    Finding,
    MeterFacts,
    ReadingFacts,
    Thresholds,
    s_text,
    tz_name,
)


def outside_window(
    reading: ReadingFacts,
    meter: MeterFacts,
    assignment: AssignmentFacts,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> Finding | None:
    """A reading taken before window_start or after window_end (local dates) is flagged."""
    if reading.reread:
        return None  # a supervisor ordered it, whenever that was
    day = reading.read_at.astimezone(assignment.tz).date()
    if assignment.window_start <= day <= assignment.window_end:
        return None
    where = "before" if day < assignment.window_start else "after"
    return Finding(
        "outside_window",
        "warn",
        f"meter {meter.name} read on {day.isoformat()} ({tz_name(assignment.tz)}), {where} "
        f"the window {assignment.window_start.isoformat()} to {assignment.window_end.isoformat()}",
        reading.id,
        meter.id,
    )


def clock_skew(
    reading: ReadingFacts, meter: MeterFacts, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> Finding | None:
    """A device clock off from the server's beyond tolerance (its push's sent_at against
    received_at, or a reading dated after the server received it) is flagged; a reading synced
    days after it was taken is offline work, not skew."""
    tolerance = thresholds.clock_skew_tolerance_s
    reasons = []
    if reading.sent_at is not None:
        lag = (reading.received_at - reading.sent_at).total_seconds()
        if lag > tolerance + thresholds.push_transit_s:
            reasons.append(
                f"its push was stamped {s_text(lag)} before the server received it "
                f"(allowed {s_text(tolerance + thresholds.push_transit_s)} for clock and transit): "
                "the device clock is behind"
            )
        elif -lag > tolerance:
            reasons.append(
                f"its push was stamped {s_text(lag)} after the server received it "
                f"(allowed {s_text(tolerance)}): the device clock is ahead"
            )
    ahead = (max(reading.read_at, reading.confirmed_at) - reading.received_at).total_seconds()
    if ahead > tolerance:
        reasons.append(
            f"it is dated {s_text(ahead)} after the server received it "
            f"(allowed {s_text(tolerance)})"
        )
    if not reasons:
        return None
    return Finding(
        "clock_skew",
        "warn",
        f"reading of meter {meter.name}: {'; '.join(reasons)}",
        reading.id,
        meter.id,
    )
