"""What the handheld's screens read from its database: views of the pulled work, the records
made here and the outbox, and the refusals the store gives."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from common import wire
from common.wire import iso


class StoreError(Exception):
    """An action the store refuses, with a sentence for the screen."""


class AlreadyReadError(StoreError):
    pass


class LockedError(StoreError):
    pass


def str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def iso_or_none(t: datetime | None) -> str | None:
    return None if t is None else iso(t)


def datetime_or_none(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def decimal_or_none(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


@dataclass(frozen=True)
class AssignmentView:
    id: int
    route_code: str
    route_name: str
    cycle: str
    window_start: str
    window_end: str
    total: int
    read: int
    skipped: int

    @property
    def left(self) -> int:
        return self.total - self.read - self.skipped


@dataclass(frozen=True, kw_only=True)
class MeterView(wire.Meter):
    """A meter of a route as the screens show it: the meter as the wire brought it, plus where
    it stands on this device."""

    assignment_id: int
    status: str  # todo | read | skipped
    reading_id: str | None
    reading_value: Decimal | None
    reread_order_id: str | None  # an open re-read order: a task on this meter
    reread_reason: str | None
    # The office's code when it refused this meter's reading (already_read, ...); the reading
    # stays on the handheld, and the screens say what happened and what to do.
    refusal: str | None = None
    # Read (or skipped) at the office by another handheld, or before this one was swapped in:
    # nothing of it is on this device but what the pull said.
    elsewhere: bool = False
    elsewhere_read_at: datetime | None = None
    elsewhere_skip_code: str | None = None

    @property
    def done(self) -> bool:
        return self.status != "todo" and self.reread_order_id is None


@dataclass(frozen=True)
class ReadingView:
    id: str
    assignment_id: int
    meter_id: int
    value: Decimal | None
    skip_code: str | None
    note: str | None
    read_at: str | None
    confirmed_at: str | None
    state: str
    sync_status: str
    sync_error: str | None
    sync_detail: str | None
    reread_of: str | None

    @property
    def locked(self) -> bool:
        return self.state == "confirmed"


@dataclass(frozen=True)
class SyncState:
    waiting: int
    rejected: int
    last_sync_at: str | None
    last_error: str | None
