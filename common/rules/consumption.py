"""Plausible consumption: this reading minus the last (with dial roll-over, times the
multiplier); negative, far outside the usual range, or unchanged on an occupied account."""

from __future__ import annotations

from decimal import Decimal

from common.rules.facts import (
    DEFAULT_THRESHOLDS,
    Finding,
    MeterFacts,
    ReadingFacts,
    Thresholds,
    decimal_text,
)


def consumption(
    value: Decimal,
    last: Decimal,
    digits: int,
    multiplier: Decimal,
    *,
    rollover_fraction: Decimal | float = Decimal("0.1"),
    expected_high: Decimal | None = None,
) -> Decimal:
    """Consumption in kWh from last cycle's register to this one on an N-dial meter.

    A register below the last one is a roll-over (999990 -> 000010 is +20 on six dials) when the
    wrapped consumption is plausible: at most `rollover_fraction` of the dial range, or within
    `expected_high`. Otherwise the result is negative: the register went backwards.
    """
    units = value - last
    if units < 0:
        dial_range = Decimal(10) ** digits
        wrapped = units + dial_range
        plausible = wrapped <= dial_range * Decimal(str(rollover_fraction)) or (
            expected_high is not None and wrapped * multiplier <= expected_high
        )
        if plausible:
            units = wrapped
    return units * multiplier


def consumption_of(
    reading: ReadingFacts, meter: MeterFacts, thresholds: Thresholds
) -> Decimal | None:
    """The consumption the consumption rules judge, or None when they have nothing to judge."""
    if reading.value is None or reading.superseded or meter.last_reading is None:
        return None
    return consumption(
        reading.value,
        meter.last_reading,
        meter.digits,
        meter.multiplier,
        rollover_fraction=thresholds.rollover_fraction,
        expected_high=meter.expected_high,
    )


def negative_consumption(
    reading: ReadingFacts, meter: MeterFacts, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> Finding | None:
    """A register below last cycle's that is not a plausible dial roll-over is flagged."""
    used = consumption_of(reading, meter, thresholds)
    if used is None or used >= 0:
        return None
    assert reading.value is not None
    assert meter.last_reading is not None
    return Finding(
        "negative_consumption",
        "fail",
        {
            "meter": meter.name,
            "value": decimal_text(reading.value),
            "last": decimal_text(meter.last_reading),
            "kwh": decimal_text(used),
            "digits": meter.digits,
        },
        reading.id,
        meter.id,
    )


def high_consumption(
    reading: ReadingFacts, meter: MeterFacts, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> Finding | None:
    """Consumption above the account's expected_high for a cycle is flagged."""
    used = consumption_of(reading, meter, thresholds)
    if used is None or meter.expected_high is None or used <= meter.expected_high:
        return None
    return Finding(
        "high_consumption",
        "warn",
        {
            "meter": meter.name,
            "kwh": decimal_text(used),
            "expected_kwh": decimal_text(meter.expected_high),
        },
        reading.id,
        meter.id,
    )


def low_consumption(
    reading: ReadingFacts, meter: MeterFacts, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> Finding | None:
    """Consumption below the active account's expected_low for a cycle is flagged (an unchanged
    register is `unchanged`, a backwards one `negative_consumption`)."""
    used = consumption_of(reading, meter, thresholds)
    if used is None or meter.expected_low is None or not meter.active:
        return None
    if used <= 0 or used >= meter.expected_low:
        return None
    return Finding(
        "low_consumption",
        "warn",
        {
            "meter": meter.name,
            "kwh": decimal_text(used),
            "expected_kwh": decimal_text(meter.expected_low),
        },
        reading.id,
        meter.id,
    )


def unchanged(
    reading: ReadingFacts, meter: MeterFacts, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> Finding | None:
    """The same register as last cycle on an active account is flagged: the mark of an estimated
    reading (估抄). It fails where the account usually uses power, warns where it may not."""
    if (
        reading.value is None
        or reading.superseded
        or meter.last_reading is None
        or not meter.active
        or reading.value != meter.last_reading
    ):
        return None
    low = meter.expected_low
    usually_uses = low is not None and low > 0
    return Finding(
        "unchanged",
        "fail" if usually_uses else "warn",
        {
            "meter": meter.name,
            "value": decimal_text(reading.value),
            "usual_kwh": decimal_text(low) if low is not None and low > 0 else None,
        },
        reading.id,
        meter.id,
    )
