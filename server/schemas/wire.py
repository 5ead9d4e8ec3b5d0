"""The sync contract checked at the server's edge: pydantic twins of common.wire's dataclasses
(same fields, which tests/common/test_wire.py proves), with the bounds a request must keep."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from server.schemas.requests import (
    MAX_ROW_ID,
    Moment,
    RequestModel,
    control_character,
    in_our_times,
)

SkipCode = Literal["no_access", "locked", "dog", "meter_missing", "meter_damaged", "other"]
SKIP_CODES: tuple[str, ...] = SkipCode.__args__  # type: ignore[attr-defined]

JobEventKind = Literal[
    "created", "assigned", "started", "eta_changed", "note", "finished", "cancelled"
]
JOB_EVENT_KINDS: tuple[str, ...] = JobEventKind.__args__  # type: ignore[attr-defined]

PushStatus = Literal["accepted", "duplicate", "rejected"]


# Bounded floats: NaN and the infinities are outside any bounds, and pydantic refuses them by
# the bounds (in its core: no validator of ours to call for every coordinate of every push).
Latitude = Annotated[float, Field(ge=-90, le=90)]
Longitude = Annotated[float, Field(ge=-180, le=180)]
Accuracy = Annotated[float, Field(ge=0, le=100_000)]


class WireModel(RequestModel):
    """Strict about unknown fields: a typo in a field name must not be silently dropped."""

    model_config = ConfigDict(extra="forbid")


class Fix(WireModel):
    """A GPS fix as the handheld had it when the reading was taken."""

    lat: Latitude
    lon: Longitude
    accuracy_m: Accuracy
    fix_time: Moment
    provider: str = Field(default="gps", max_length=32)
    mock: bool = False


class ReadingIn(WireModel):
    """One meter reading, or one skip, as confirmed on the handheld."""

    id: uuid.UUID
    assignment_id: int = Field(gt=0, le=MAX_ROW_ID)
    meter_id: int = Field(gt=0, le=MAX_ROW_ID)
    value: Decimal | None = Field(default=None, ge=0, max_digits=15, decimal_places=3)
    skip_code: SkipCode | None = None
    note: str | None = Field(default=None, max_length=500)
    read_at: Moment
    confirmed_at: Moment
    fix: Fix | None = None
    reread_of: uuid.UUID | None = None

    @model_validator(mode="after")
    def _value_or_skip(self) -> ReadingIn:
        if (self.value is None) == (self.skip_code is None):
            raise ValueError("a reading has exactly one of value or skip_code")
        if self.value is not None and not self.value.is_finite():
            raise ValueError("value must be a finite number")
        if self.confirmed_at < self.read_at:
            raise ValueError("confirmed_at is before read_at")
        return self


class TrackPointIn(WireModel):
    """One point of the handheld's GPS track."""

    t: Moment
    lat: Latitude
    lon: Longitude
    accuracy_m: Accuracy | None = None
    speed: Annotated[float, Field(ge=0, le=500)] | None = None
    provider: str = Field(default="gps", max_length=32)
    mock: bool = False


# A track point as stored: t (in UTC), lat, lon, accuracy_m, speed, provider, mock.
TrackRow = tuple[datetime, float, float, float | None, float | None, str, bool]


def track_row(point: TrackPointIn) -> TrackRow:
    return (
        point.t.astimezone(UTC),
        point.lat,
        point.lon,
        point.accuracy_m,
        point.speed,
        point.provider,
        point.mock,
    )


def _track_point_bounds() -> tuple[Any, ...]:
    """TrackPointIn's fields and bounds, read from its own JSON schema: the fast check below
    states no rule of its own. A field it does not know stops the server at import (and every
    test), rather than let a point through unchecked."""
    schema = TrackPointIn.model_json_schema()
    fields = schema["properties"]
    if set(fields) != {"t", "lat", "lon", "accuracy_m", "speed", "provider", "mock"} or set(
        schema["required"]
    ) != {"t", "lat", "lon"}:
        raise RuntimeError("TrackPointIn changed: teach fast_track_row its fields")

    def number(name: str) -> tuple[float, float]:
        spec = fields[name]
        spec = spec["anyOf"][0] if "anyOf" in spec else spec
        return spec["minimum"], spec["maximum"]

    provider = fields["provider"]
    return (
        frozenset(fields),
        frozenset(schema["required"]),
        *(number(name) for name in ("lat", "lon", "accuracy_m", "speed")),
        (provider["default"], provider["maxLength"]),
        fields["mock"]["default"],
    )


_KEYS, _REQUIRED, _LAT, _LON, _ACCURACY, _SPEED, _PROVIDER, _MOCK = _track_point_bounds()
# The usual spelling of an aware time, which `datetime.fromisoformat` reads as pydantic does;
# any other (a week date, a space for the T, seven decimals) is the model's to read or refuse.
_ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)\Z")
_NUMBER = (float, int)  # exactly: what else the model coerces (a bool, "1.5") is its own to


def _fast_moment(raw: Any) -> datetime | None:
    """An aware time in the usual spelling (or one a compact body's decoding made), within our
    times, as the model reads it; None for anything else."""
    if type(raw) is str:
        if _ISO_TIME.match(raw) is None:
            return None
        try:
            t = datetime.fromisoformat(raw)
        except ValueError:
            return None
    elif type(raw) is datetime and raw.utcoffset() is not None:
        t = raw
    else:
        return None
    try:
        return in_our_times(t)
    except (ValueError, OverflowError):
        return None


def fast_track_row(raw: Any, scanned: bool) -> TrackRow | None:
    """The row of a track point that TrackPointIn would accept as it is, or None: the model
    decides those (accepting some, refusing others with its messages). A point in the usual
    spelling (what every handheld sends) costs about half the model's time this way, and makes no
    model object. `scanned`: the body was cleared of control characters at once."""
    if type(raw) is not dict or not _KEYS.issuperset(raw) or not raw.keys() >= _REQUIRED:
        return None
    t = _fast_moment(raw["t"])
    if t is None:
        return None
    t = t.astimezone(UTC)
    lat, lon = raw["lat"], raw["lon"]
    accuracy, speed = raw.get("accuracy_m"), raw.get("speed")
    provider = raw.get("provider", _PROVIDER[0])
    mock = raw.get("mock", _MOCK)
    # A bound compared also refuses NaN and the infinities (every number here has bounds).
    if not (
        type(lat) in _NUMBER
        and _LAT[0] <= lat <= _LAT[1]
        and type(lon) in _NUMBER
        and _LON[0] <= lon <= _LON[1]
        and (
            accuracy is None
            or (type(accuracy) in _NUMBER and _ACCURACY[0] <= accuracy <= _ACCURACY[1])
        )
        and (speed is None or (type(speed) in _NUMBER and _SPEED[0] <= speed <= _SPEED[1]))
        and type(provider) is str
        and len(provider) <= _PROVIDER[1]
        and (scanned or control_character(provider) is None)
        and type(mock) is bool
    ):
        return None
    return (
        t,
        float(lat),
        float(lon),
        None if accuracy is None else float(accuracy),
        None if speed is None else float(speed),
        provider,
        mock,
    )


JobKind = Literal["fault", "planned", "temporary_repair", "meter_check"]
JOB_KINDS: tuple[str, ...] = JobKind.__args__  # type: ignore[attr-defined]
Urgency = Literal["urgent", "normal"]


class MeterCheck(WireModel):
    """A meter check's (申校) field result: switch everything off and watch the pulse lamp, or
    run a known load for some hours and see how far the register moved."""

    method: Literal["pulse_lamp", "known_load"]
    load_w: float | None = Field(default=None, gt=0, le=1_000_000)
    hours: float | None = Field(default=None, gt=0, le=1000)
    register_moved_kwh: Decimal | None = Field(default=None, ge=0, max_digits=12, decimal_places=3)
    lamp_still_with_load_off: bool | None = None
    outcome: Literal["meter_ok", "meter_fast", "meter_slow", "meter_faulty", "inconclusive"]

    @model_validator(mode="after")
    def _load_test_complete(self) -> MeterCheck:
        if self.method == "known_load" and None in (
            self.load_w,
            self.hours,
            self.register_moved_kwh,
        ):
            raise ValueError("a known-load check needs load_w, hours and register_moved_kwh")
        return self


class JobEventIn(WireModel):
    """One event of a repair job, logged on the handheld.

    A job made on the spot (offline) is its `created` event: it brings `job_kind`, `urgency`,
    `content`, `crew`, the place (`fix`, `address`) with it."""

    id: uuid.UUID
    job_id: uuid.UUID
    kind: JobEventKind
    at: Moment
    fix: Fix | None = None
    expected_finish: Moment | None = None
    content: str | None = Field(default=None, max_length=2000)
    crew: list[str] | None = Field(default=None, max_length=20)
    note: str | None = Field(default=None, max_length=2000)
    job_kind: JobKind | None = None
    urgency: Urgency | None = None
    address: str | None = Field(default=None, max_length=500)
    meter_check: MeterCheck | None = None


class PushRequest(WireModel):
    """What the handheld pushes: its outbox, in one batch."""

    sent_at: Moment | None = None
    readings: list[ReadingIn] = Field(default_factory=list)
    track_points: list[TrackPointIn] = Field(default_factory=list)
    job_events: list[JobEventIn] = Field(default_factory=list)


class PushResult(BaseModel):
    """The server's answer for one reading or job event."""

    id: str | None
    status: PushStatus
    error: str | None = None
    # The refusal's sentence in the pusher's language (Accept-Language), and its numbers.
    detail: str | None = None
    params: dict[str, Any] | None = None


class TrackRejection(BaseModel):
    index: int
    error: str


class TrackResult(BaseModel):
    accepted: int = 0
    duplicate: int = 0
    rejected: list[TrackRejection] = Field(default_factory=list)


class PushResponse(BaseModel):
    results: list[PushResult]
    track: TrackResult
    data_epoch: str | None = Field(
        default=None, description="the server's data epoch, as in the pull"
    )


class MeterOut(BaseModel):
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
    state: Literal["unread", "read", "skipped"] = "unread"
    reading_id: str | None = None
    read_at: datetime | None = None
    value: Decimal | None = None
    skip_code: str | None = None


class AssignmentOut(BaseModel):
    id: int
    route_code: str
    route_name: str
    cycle: str
    window_start: date
    window_end: date
    meters: list[MeterOut]


class RereadOrderOut(BaseModel):
    id: uuid.UUID
    assignment_id: int
    meter_id: int
    reading_id: uuid.UUID | None
    reason: str
    ordered_at: datetime


class JobOut(BaseModel):
    """A job as a crew's handheld gets it."""

    id: uuid.UUID
    kind: str
    urgency: str
    status: str
    content: str
    crew: list[str]
    lat: float | None
    lon: float | None
    address: str | None
    expected_finish: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    planned_start: datetime | None = None
    accounts: list[str] = Field(default_factory=list)


class Withdrawn(BaseModel):
    """Something the device held that is no longer its to work on."""

    type: Literal["assignment", "meter", "job", "reread_order"]
    id: str
    assignment_id: int | None = None


class PullResponse(BaseModel):
    cursor: str
    has_more: bool
    assignments: list[AssignmentOut]
    jobs: list[JobOut]
    reread_orders: list[RereadOrderOut]
    withdrawn: list[Withdrawn]
    data_epoch: str | None = Field(
        default=None,
        description="which life of the server's data this is: a new one after a restore from "
        "backup; a handheld that sees it change pushes again every record it still holds",
    )
