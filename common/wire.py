"""The sync contract's shapes, written once: what the handheld sends and reads, and the server.

Frozen dataclasses on the standard library alone (they ship in the handheld's APK, which leaves
pydantic out), each with `to_json()` (a dict ready for `json.dumps`) and `from_json(data)`. The
server checks the same shapes at its edge with pydantic twins (server.schemas.wire), and a test
proves that twin and dataclass have the same fields. Times are aware datetimes (ISO 8601 on the
wire), registers and multipliers Decimals (strings on the wire), record ids strings (UUIDs).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cache
from typing import Any, ClassVar, Self, get_args, get_origin

SKIP_CODES = ("no_access", "locked", "dog", "meter_missing", "meter_damaged", "other")
METER_STATES = ("unread", "read", "skipped")
PUSH_STATUSES = ("accepted", "duplicate", "rejected")
WITHDRAWN_TYPES = ("assignment", "meter", "job", "reread_order")


def iso(t: datetime) -> str:
    """An aware time as the wire writes it: ISO 8601 in UTC."""
    if t.tzinfo is None:
        raise ValueError("naive datetime: the wire carries aware times only")
    return t.astimezone(UTC).isoformat()


class WireError(ValueError):
    """Data that does not have the shape of the contract."""


@dataclass(frozen=True)
class Record:
    """Base of the wire shapes: their JSON form comes from their fields' types."""

    # Fields left out of the JSON when they hold None (the server's defaults apply).
    omit_none: ClassVar[frozenset[str]] = frozenset()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None and f.name in self.omit_none:
                continue
            out[f.name] = _dump(value)
        return out

    @classmethod
    def from_json(cls, data: Any) -> Self:
        if not isinstance(data, dict):
            raise WireError(f"{cls.__name__}: expected an object, got {type(data).__name__}")
        hints = _hints(cls)  # type: ignore[arg-type]  # a class is hashable
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name in data:
                try:
                    values[f.name] = _load(hints[f.name], data[f.name])
                except (TypeError, ValueError, ArithmeticError) as exc:
                    raise WireError(f"{cls.__name__}.{f.name}: {exc}") from None
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise WireError(f"{cls.__name__}: {f.name} is missing")
        return cls(**values)


@cache
def _hints(cls: type[Record]) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _dump(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_json()
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, tuple | list):
        return [_dump(v) for v in value]
    return value


def _load(hint: Any, value: Any) -> Any:
    origin, args = get_origin(hint), get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            if type(None) in args:
                return None
            raise ValueError("may not be null")
        (inner,) = [a for a in args if a is not type(None)]
        return _load(inner, value)
    if value is None:
        raise ValueError("may not be null")
    if origin is tuple:
        if not isinstance(value, list):
            raise ValueError(f"expected a list, got {type(value).__name__}")
        return tuple(_load(args[0], v) for v in value)
    if isinstance(hint, type) and issubclass(hint, Record):
        return hint.from_json(value)
    if hint is datetime:
        t = datetime.fromisoformat(value)
        if t.tzinfo is None:
            raise ValueError(f"{value!r} has no time zone")
        return t
    if hint is date:
        return date.fromisoformat(value)
    if hint is Decimal:
        return Decimal(str(value))
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"expected a number, got {value!r}")
        return float(value)
    if hint is bool or hint is int or hint is str:
        if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
            raise ValueError(f"expected {hint.__name__}, got {value!r}")
        return value
    if hint is Any:
        return value
    raise TypeError(f"no wire form for {hint!r}")


# ------------------------------------------------------------------------------ the push


@dataclass(frozen=True)
class Fix(Record):
    """A GPS fix as the handheld had it when a reading was taken or a job event logged."""

    lat: float
    lon: float
    accuracy_m: float
    fix_time: datetime
    provider: str = "gps"
    mock: bool = False


@dataclass(frozen=True)
class Reading(Record):
    """One meter reading, or one skip, as confirmed on the handheld."""

    id: str
    assignment_id: int
    meter_id: int
    read_at: datetime
    confirmed_at: datetime
    value: Decimal | None = None
    skip_code: str | None = None
    note: str | None = None
    fix: Fix | None = None
    reread_of: str | None = None


@dataclass(frozen=True)
class TrackPoint(Record):
    """One point of the handheld's GPS track."""

    omit_none: ClassVar[frozenset[str]] = frozenset({"accuracy_m", "speed"})

    t: datetime
    lat: float
    lon: float
    accuracy_m: float | None = None
    speed: float | None = None
    provider: str = "gps"
    mock: bool = False


@dataclass(frozen=True)
class MeterCheck(Record):
    """A meter check's (申校) field result."""

    omit_none: ClassVar[frozenset[str]] = frozenset(
        {"load_w", "hours", "register_moved_kwh", "lamp_still_with_load_off"}
    )

    method: str  # pulse_lamp | known_load
    outcome: str  # meter_ok | meter_fast | meter_slow | meter_faulty | inconclusive
    load_w: float | None = None
    hours: float | None = None
    register_moved_kwh: Decimal | None = None
    lamp_still_with_load_off: bool | None = None


@dataclass(frozen=True)
class JobEvent(Record):
    """One event of a repair job, logged on the handheld (see common.job_lifecycle). A job
    opened on the spot is its `created` event, which brings job_kind, urgency, content, crew
    and the place with it."""

    omit_none: ClassVar[frozenset[str]] = frozenset(
        {
            "fix",
            "expected_finish",
            "content",
            "crew",
            "note",
            "job_kind",
            "urgency",
            "address",
            "meter_check",
        }
    )

    id: str
    job_id: str
    kind: str
    at: datetime
    fix: Fix | None = None
    expected_finish: datetime | None = None
    content: str | None = None
    crew: tuple[str, ...] | None = None
    note: str | None = None
    job_kind: str | None = None
    urgency: str | None = None
    address: str | None = None
    meter_check: MeterCheck | None = None


@dataclass(frozen=True)
class Push(Record):
    """What the handheld pushes: its outbox, in one batch."""

    omit_none: ClassVar[frozenset[str]] = frozenset({"sent_at"})

    readings: tuple[Reading, ...] = ()
    track_points: tuple[TrackPoint, ...] = ()
    job_events: tuple[JobEvent, ...] = ()
    sent_at: datetime | None = None


@dataclass(frozen=True)
class PushResult(Record):
    """The server's answer for one reading or job event, in the order they were pushed."""

    id: str | None
    status: str  # one of PUSH_STATUSES
    error: str | None = None
    detail: str | None = None  # the refusal's sentence, in the pusher's Accept-Language
    params: Any | None = None  # its names and numbers, a JSON object (None: it has none)


@dataclass(frozen=True)
class TrackRejection(Record):
    index: int
    error: str


@dataclass(frozen=True)
class TrackResult(Record):
    """Track points are answered in aggregate; rejected ones by their index in the push."""

    accepted: int = 0
    duplicate: int = 0
    rejected: tuple[TrackRejection, ...] = ()


@dataclass(frozen=True)
class PushAnswer(Record):
    results: tuple[PushResult, ...]
    track: TrackResult
    # The server's data epoch (see PullPage); None from a server that predates it.
    data_epoch: str | None = None


# ------------------------------------------------------------------------------ the pull


@dataclass(frozen=True)
class Meter(Record):
    """A meter of an assigned route, as the handheld needs it in the field."""

    id: int
    meter_no: str
    account_no: str
    customer_name: str
    address: str
    lat: float
    lon: float
    digits: int
    multiplier: Decimal
    last_reading: Decimal | None
    last_read_at: datetime | None
    expected_low: Decimal | None
    expected_high: Decimal | None
    sequence: int
    # The meter in this assignment as the office holds it, whichever handheld read it: a fresh
    # or swapped handheld shows the route's true state and does not offer a read meter again.
    state: str = "unread"  # one of METER_STATES
    reading_id: str | None = None
    read_at: datetime | None = None
    value: Decimal | None = None
    skip_code: str | None = None


@dataclass(frozen=True)
class Assignment(Record):
    """A route given to this reader for a cycle, with its meters (window: local dates)."""

    id: int
    route_code: str
    route_name: str
    cycle: str
    window_start: date
    window_end: date
    meters: tuple[Meter, ...]


@dataclass(frozen=True)
class RereadOrder(Record):
    """A supervisor's order to read a meter again (复抄)."""

    id: str
    assignment_id: int
    meter_id: int
    reading_id: str | None
    reason: str
    ordered_at: datetime


@dataclass(frozen=True)
class Job(Record):
    """A repair job as a crew's handheld gets it."""

    id: str
    kind: str
    urgency: str
    status: str
    content: str
    crew: tuple[str, ...]
    lat: float | None
    lon: float | None
    address: str | None
    expected_finish: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    planned_start: datetime | None = None
    accounts: tuple[str, ...] = ()


@dataclass(frozen=True)
class Withdrawn(Record):
    """Something the device held that is no longer its to work on."""

    type: str  # one of WITHDRAWN_TYPES
    id: str
    assignment_id: int | None = None


@dataclass(frozen=True)
class PullPage(Record):
    """One page of what changed for this user since the cursor."""

    cursor: str
    has_more: bool
    assignments: tuple[Assignment, ...]
    jobs: tuple[Job, ...]
    reread_orders: tuple[RereadOrder, ...]
    withdrawn: tuple[Withdrawn, ...]
    # Which life of the server's data this is: a new one after a restore from backup tells the
    # handheld to push again what it still holds. None from a server that predates it.
    data_epoch: str | None = None


WIRE_RECORDS: tuple[type[Record], ...] = (
    Fix,
    Reading,
    TrackPoint,
    MeterCheck,
    JobEvent,
    Push,
    PushResult,
    TrackRejection,
    TrackResult,
    PushAnswer,
    Meter,
    Assignment,
    RereadOrder,
    Job,
    Withdrawn,
    PullPage,
)
