"""The restoration estimate from past repairs: a median and the range most of them fell in,
or nothing with too few of them."""

from __future__ import annotations

import pytest

from common.rules.restoration import estimate_from_history


def test_the_median_and_the_middle_share_of_past_repairs() -> None:
    estimate = estimate_from_history([150, 60, 600, 90, 120], min_jobs=5)
    assert estimate is not None
    # Sorted 60, 90, 120, 150, 600: the 10th percentile is 60 + 0.4 * 30, the 90th
    # 150 + 0.6 * 450 (interpolated between neighbours).
    assert (estimate.jobs, estimate.median_min, estimate.low_min, estimate.high_min) == (
        5,
        120.0,
        72.0,
        420.0,
    )
    half = estimate_from_history([60, 90, 120, 150, 600], min_jobs=5, share=0.5)
    assert half is not None
    assert (half.low_min, half.high_min) == (90.0, 150.0)


def test_too_few_past_repairs_give_no_estimate() -> None:
    assert estimate_from_history([60, 90, 120, 150], min_jobs=5) is None
    assert estimate_from_history([], min_jobs=0) is None


@pytest.mark.parametrize("durations", [[45.0] * 5, [45.0, 45.0, 45.0, 45.0, 45.0, 45.0]])
def test_repairs_that_all_took_as_long_give_that_time_and_no_range(
    durations: list[float],
) -> None:
    estimate = estimate_from_history(durations, min_jobs=5)
    assert estimate is not None
    assert (estimate.median_min, estimate.low_min, estimate.high_min) == (45.0, 45.0, 45.0)
