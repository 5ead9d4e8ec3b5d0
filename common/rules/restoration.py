"""When power is probably back: an estimate from how long past jobs of the same kind and
urgency took, from report to restoration, for an outage whose crew has given no time yet.

Pure: the durations come in, the estimate goes out; where they come from is the server's."""

from __future__ import annotations

import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class HistoryEstimate:
    """The median report-to-restoration time of `jobs` past jobs, and the range the middle
    `share` of them fell in (low to high), in minutes."""

    jobs: int
    median_min: float
    low_min: float
    high_min: float
    share: float


def _quantile(ordered: list[float], q: float) -> float:
    """The q-quantile of sorted values, interpolated between neighbours (as spreadsheets do)."""
    at = q * (len(ordered) - 1)
    below = int(at)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (at - below)


def estimate_from_history(
    durations_min: list[float], *, min_jobs: int, share: float = 0.8
) -> HistoryEstimate | None:
    """The estimate, or None with fewer than `min_jobs` past jobs: too few to say anything a
    caller could plan by, and an invented time is worse than none."""
    if len(durations_min) < max(min_jobs, 1):
        return None
    ordered = sorted(durations_min)
    tail = (1 - share) / 2
    return HistoryEstimate(
        jobs=len(ordered),
        median_min=round(statistics.median(ordered), 1),
        low_min=round(_quantile(ordered, tail), 1),
        high_min=round(_quantile(ordered, 1 - tail), 1),
        share=share,
    )
