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


NEXT_MODES = ("nearest", "sequence")


def next_to_read(
    meters: list[MeterView],
    after: MeterView,
    mode: str,
    here: tuple[float, float] | None = None,
) -> MeterView | None:
    """The meter to go to after `after` is done: the nearest one still to read (from where the
    reader stands, else from `after`), or the next in the route's order, wrapping round to
    those passed by; None when the route is done."""
    todo = [m for m in meters if not m.done and m.id != after.id]
    if not todo:
        return None
    if mode == "sequence":
        ahead = [m for m in todo if (m.sequence, m.id) > (after.sequence, after.id)]
        return min(ahead or todo, key=lambda m: (m.sequence, m.id))
    lat, lon = here if here is not None else (after.lat, after.lon)
    return min(todo, key=lambda m: (distance_m(lat, lon, m.lat, m.lon), m.sequence))


def steady_nearest(
    shown: tuple[MeterView, float] | None,
    found: tuple[MeterView, float] | None,
    meters: Iterable[MeterView],
    lat: float,
    lon: float,
    *,
    margin_m: float,
    radius_m: float,
) -> tuple[MeterView, float] | None:
    """The customer card to show now: the one shown stays while it is still to read, within
    the radius, and no other meter is `margin_m` nearer, so that GPS jitter between two
    neighbours does not swap the card under the reader's thumb."""
    if shown is None or found is None or found[0].id == shown[0].id:
        return found
    still = next((m for m in meters if m.id == shown[0].id and not m.done), None)
    if still is None:
        return found
    d = distance_m(lat, lon, still.lat, still.lon)
    if d <= radius_m and found[1] > d - margin_m:
        return (still, d)
    return found


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
