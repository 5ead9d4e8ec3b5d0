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
    rounded,
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
    return Finding(
        "outside_window",
        "warn",
        {
            "meter": meter.name,
            "day": day.isoformat(),
            "zone": tz_name(assignment.tz),
            "when": "before" if day < assignment.window_start else "after",
            "start": assignment.window_start.isoformat(),
            "end": assignment.window_end.isoformat(),
        },
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
    # How long before the server received it the push was stamped (negative: after), when
    # beyond what clock and transit allow.
    stamped = None
    if reading.sent_at is not None:
        lag = (reading.received_at - reading.sent_at).total_seconds()
        if lag > tolerance + thresholds.push_transit_s or -lag > tolerance:
            stamped = rounded(lag)
    ahead = (max(reading.read_at, reading.confirmed_at) - reading.received_at).total_seconds()
    dated_ahead = rounded(ahead) if ahead > tolerance else None
    if stamped is None and dated_ahead is None:
        return None
    return Finding(
        "clock_skew",
        "warn",
        {
            "meter": meter.name,
            "stamped_s": stamped,
            "ahead_s": dated_ahead,
            "tolerance_s": tolerance,
            "transit_s": thresholds.push_transit_s,
        },
        reading.id,
        meter.id,
    )
