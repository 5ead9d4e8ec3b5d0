"""Completeness: at the close every meter of the route is read or skipped (else 漏抄), and the
route was walked roughly in its order."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from datetime import datetime

from common.rules.facts import (
    DEFAULT_THRESHOLDS,
    AssignmentFacts,
    Finding,
    MeterFacts,
    ReadingFacts,
    Thresholds,
)


def missed(
    assignment: AssignmentFacts,
    meters: Sequence[MeterFacts],
    readings: Sequence[ReadingFacts],
    now: datetime | None = None,
) -> list[Finding]:
    """At the window's close (the assignment closed, or its window over), every meter of the route
    with neither a reading nor a skip is flagged (漏抄)."""
    if not (assignment.closed or (now is not None and now >= assignment.closes_at)):
        return []
    done = {r.meter_id for r in readings}
    start, end = assignment.window_start.isoformat(), assignment.window_end.isoformat()
    return [
        Finding(
            "missed",
            "fail",
            {"meter": m.name, "sequence": m.sequence, "start": start, "end": end},
            meter_id=m.id,
        )
        for m in sorted(meters, key=lambda m: (m.sequence, m.id))
        if m.id not in done
    ]


def _inversions(values: list[int]) -> int:
    """Pairs out of order in `values` (merge sort, n log n)."""
    if len(values) < 2:
        return 0
    mid = len(values) // 2
    left, right = sorted(values[:mid]), sorted(values[mid:])
    count = _inversions(values[:mid]) + _inversions(values[mid:])
    for v in right:
        count += len(left) - bisect.bisect_right(left, v)
    return count


def wrong_meter_order(
    meters: Sequence[MeterFacts],
    readings: Sequence[ReadingFacts],
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> list[Finding]:
    """A route walked far from its sequence (more than order_inversion_fraction of pairs of
    meters read in reverse order) is noted, once per assignment."""
    sequence = {m.id: m.sequence for m in meters}
    taken = sorted(
        (r for r in readings if not r.reread and r.meter_id in sequence),
        key=lambda r: (r.read_at, r.confirmed_at, str(r.id)),
    )
    n = len(taken)
    if n < max(2, thresholds.order_min_readings):
        return []
    pairs = n * (n - 1) // 2
    inverted = _inversions([sequence[r.meter_id] for r in taken])
    if inverted <= thresholds.order_inversion_fraction * pairs:
        return []
    return [
        Finding(
            "wrong_meter_order",
            "info",
            {
                "inverted": inverted,
                "pairs": pairs,
                "threshold": thresholds.order_inversion_fraction,
            },
        )
    ]
