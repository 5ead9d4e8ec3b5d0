"""Route logic on the handheld: the customer where the reader stands, and the typo check."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from common import numbers
from common.geo import distance_m
from common.rules.consumption import consumption
from common.rules.facts import DEFAULT_THRESHOLDS
from mobile.core.language import _
from mobile.core.views import MeterView


def plain(value: Decimal | None) -> str:
    """A number as a person writes it (1225, 12.5); a dash for none."""
    return numbers.plain(value) or "-"


def nearest_unread(
    meters: Iterable[MeterView], lat: float, lon: float, radius_m: float
) -> tuple[MeterView, float] | None:
    """The nearest meter still to read (or with a re-read task) within `radius_m`, and how far."""
    best: tuple[MeterView, float] | None = None
    for meter in meters:
        if meter.done:
            continue
        d = distance_m(lat, lon, meter.lat, meter.lon)
        if d <= radius_m and (best is None or d < best[1]):
            best = (meter, d)
    return best


@dataclass(frozen=True)
class TypoCheck:
    """What the reader is asked before a register is confirmed."""

    consumption: Decimal | None
    warning: str | None  # a sentence asking to re-enter, or None when it looks right

    @property
    def needs_reentry(self) -> bool:
        return self.warning is not None


def check_entry(meter: MeterView, value: Decimal) -> TypoCheck:
    """Consumption of `value` and, when it is negative or outside the expected range, a request
    to type it again: a typo check, not a block."""
    if value >= Decimal(10) ** meter.digits:
        return TypoCheck(
            None,
            _("{value} has more digits than the meter's {digits} dials").format(
                value=plain(value), digits=meter.digits
            ),
        )
    if meter.last_reading is None:
        return TypoCheck(None, None)
    used = consumption(
        value,
        meter.last_reading,
        meter.digits,
        meter.multiplier,
        rollover_fraction=DEFAULT_THRESHOLDS.rollover_fraction,
        expected_high=meter.expected_high,
    )
    if used < 0:
        return TypoCheck(
            used,
            _("{value} is below last reading {last}: type it again").format(
                value=plain(value), last=plain(meter.last_reading)
            ),
        )
    if meter.expected_high is not None and used > meter.expected_high:
        return TypoCheck(
            used,
            _("{kwh} kWh is more than the usual {usual} kWh: type it again").format(
                kwh=plain(used), usual=plain(meter.expected_high)
            ),
        )
    if meter.expected_low is not None and used < meter.expected_low:
        return TypoCheck(
            used,
            _("{kwh} kWh is less than the usual {usual} kWh: type it again").format(
                kwh=plain(used), usual=plain(meter.expected_low)
            ),
        )
    return TypoCheck(used, None)
