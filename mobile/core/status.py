"""The field status line: what a reader in the sun needs at a glance (GPS, a simulated
position, battery, records waiting, last sync), as facts the screens put into words."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from common.wire import Fix

# A fix this fine places the reader at a house; coarser ones (a phone indoors, a network fix)
# still count up to the validation's limit, but the reader should know they are poor.
GOOD_FIX_M = 20.0


@dataclass(frozen=True)
class FieldStatus:
    gps: str  # good | poor | none
    accuracy_m: float | None
    simulated: str | None  # replay | fixed | mock | None (the device's own GPS)
    battery_percent: int | None  # None: the platform does not say
    charging: bool
    waiting: int
    last_sync_at: str | None


def gps_quality(fix: Fix | None) -> str:
    if fix is None:
        return "none"
    return "good" if fix.accuracy_m is not None and fix.accuracy_m <= GOOD_FIX_M else "poor"


def battery() -> tuple[int | None, bool]:
    """The battery's charge in percent and whether it charges, as plyer reads it; (None, False)
    where the platform has no battery or no way to ask (a desktop, a test machine)."""
    try:
        from plyer import battery as plyer_battery

        status: dict[str, Any] = plyer_battery.status or {}
    except Exception:
        return None, False
    percent = status.get("percentage")
    if not isinstance(percent, int | float) or percent < 0:
        return None, False
    return round(percent), bool(status.get("isCharging"))


def field_status(
    fix: Fix | None, source_simulated: str | None, waiting: int, last_sync_at: str | None
) -> FieldStatus:
    percent, charging = battery()
    simulated = source_simulated or ("mock" if fix is not None and fix.mock else None)
    return FieldStatus(
        gps=gps_quality(fix),
        accuracy_m=fix.accuracy_m if fix is not None else None,
        simulated=simulated,
        battery_percent=percent,
        charging=charging,
        waiting=waiting,
        last_sync_at=last_sync_at,
    )
