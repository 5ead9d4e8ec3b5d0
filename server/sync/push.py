"""The push: a device's outbox, stored in one transaction with an answer per item.

Readings and track points are stored set-based (server.sync.bulk); what that cannot decide, and
every job event, goes item by item, a savepoint each: a bad item is rejected with a reason and
the rest stored; an item is stored whole or not at all. Readings are never updated: the same
id again is a duplicate (same content) or `locked` (other content).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from pydantic import AwareDatetime, BaseModel, ValidationError
from sqlalchemy import update
from sqlalchemy.exc import DataError, IntegrityError
from sqlmodel import Session, col

from common import clock, compact
from common.contract import COMPACT_CONTRACT
from common.i18n import N_
from common.wire import WireError
from server.core import changes
from server.core.config import Settings
from server.core.errors import Invalid, ItemRefused, TooLarge
from server.jobs import outages
from server.models import (
    Device,
    Job,
    Meter,
    User,
)
from server.schemas.requests import SCANNED
from server.schemas.wire import (
    JobEventIn,
    PushResponse,
    PushResult,
    ReadingIn,
)
from server.sync import bulk, epoch
from server.sync.records import store_job_event, store_reading
from server.validation import queue as validation_queue
from server.validation.runner import affected_assignments_for_track

PUSH_FIELDS = {"sent_at", "readings", "track_points", "job_events"}
# Contract 2: readings and the track as columns (common.compact), job events as in v1.
COMPACT_PUSH_FIELDS = {"sent_at", "readings", "track", "job_events"}
MAX_READINGS = 5_000
MAX_JOB_EVENTS = 5_000
MAX_TRACK_POINTS = 100_000

logger = logging.getLogger("gridwalk")


@dataclass(frozen=True)
class Pusher:
    """Who pushes: the user and the device of the access token."""

    user: User
    device_id: str
    language: str = "en"  # of the refusals' sentences (common.i18n.LANGUAGES)
    contract: int = 1  # the sync contract its body is in (common.contract)

    @cached_property
    def user_id(self) -> int:
        # Read once: the set-based path asks for it per item, and an ORM attribute is not free.
        assert self.user.id is not None
        return self.user.id


def parse_envelope(
    payload: Any, contract: int = 1
) -> tuple[datetime | None, list[Any], list[Any], list[Any]]:
    """Check the push body's outer shape; items are checked one by one later. A compact body
    (contract 2) is decoded here into the same item lists as a v1 body's."""
    fields = COMPACT_PUSH_FIELDS if contract >= COMPACT_CONTRACT else PUSH_FIELDS
    if not isinstance(payload, dict):
        raise Invalid(
            f"push body must be a JSON object with {', '.join(sorted(fields - {'sent_at'}))}",
            code="invalid_body",
        )
    unknown = sorted(set(payload) - fields)
    if unknown:
        raise Invalid(
            f"unknown field(s) in push body: {', '.join(unknown)}",
            code="invalid_body",
            extra={"field": unknown[0]},
        )
    if contract >= COMPACT_CONTRACT:
        # The counts the columns declare are checked before any item is made of them.
        for name, limit in (("readings", MAX_READINGS), ("track", MAX_TRACK_POINTS)):
            if _declared(payload.get(name)) > limit:
                raise TooLarge(
                    f"{name} has {_declared(payload[name])} items; at most {limit} per push",
                    code="too_many_items",
                    extra={"field": name},
                )
        try:
            payload = compact.decode_push(payload)
        except WireError as exc:
            raise Invalid(f"compact push body: {exc}", code="invalid_body") from None
    lists: list[list[Any]] = []
    for name, limit in (
        ("readings", MAX_READINGS),
        ("track_points", MAX_TRACK_POINTS),
        ("job_events", MAX_JOB_EVENTS),
    ):
        value = payload.get(name, [])
        if not isinstance(value, list):
            raise Invalid(f"{name} must be a list", code="invalid_body", extra={"field": name})
        if len(value) > limit:
            raise TooLarge(
                f"{name} has {len(value)} items; at most {limit} per push",
                code="too_many_items",
                extra={"field": name},
            )
        lists.append(value)
    sent_at = None
    if payload.get("sent_at") is not None:
        try:
            sent_at = _SentAt.model_validate({"sent_at": payload["sent_at"]}).sent_at
        except ValidationError:
            raise Invalid(
                "sent_at must be an ISO 8601 time with a UTC offset",
                code="invalid_body",
                extra={"field": "sent_at"},
            ) from None
    return sent_at, lists[0], lists[1], lists[2]


def _declared(columns: Any) -> int:
    """The count a compact column set declares (checked before it is decoded)."""
    n = columns.get("n") if isinstance(columns, dict) else None
    return n if isinstance(n, int) else 0


class _SentAt(BaseModel):
    sent_at: AwareDatetime


@dataclass(frozen=True)
class Outbox:
    """A push body unpacked and its readings and track checked: the work a push does before it
    touches the database, so that no lock (SQLite's write lock above all) is held meanwhile."""

    sent_at: datetime | None
    raw_readings: list[Any]
    readings: bulk.CheckedReadings
    track: bulk.CheckedTrack
    raw_events: list[Any]


def unpack(payload: Any, contract: int = 1, *, scanned: bool = False) -> Outbox:
    """`scanned`: the body's JSON text was cleared of control characters at once
    (requests.json_free_of_controls), so its items need not be walked for them one by one."""
    sent_at, raw_readings, raw_points, raw_events = parse_envelope(payload, contract)
    context = SCANNED if scanned else None
    return Outbox(
        sent_at,
        raw_readings,
        bulk.check_readings(raw_readings, context),
        bulk.check_track(raw_points, context),
        raw_events,
    )


def push(session: Session, settings: Settings, *, pusher: Pusher, payload: Any) -> PushResponse:
    """Store a pushed outbox (see `store`)."""
    return store(session, settings, pusher=pusher, outbox=unpack(payload, pusher.contract))


def store(session: Session, settings: Settings, *, pusher: Pusher, outbox: Outbox) -> PushResponse:
    """Store a pushed outbox item by item; the answer has one result per reading and event.

    The assignments the new data touches are queued for validation in the same transaction
    (server/validation/queue.py): the push answers without waiting for the rules, and the
    work commits, or not, with its data."""
    sent_at = outbox.sent_at
    received_at = clock.now()
    # Set-based first; what only the per-item path can answer goes through it, in order.
    results = [
        answer
        if isinstance(answer, PushResult)
        else _one(
            session,
            raw,
            ReadingIn,
            lambda item: store_reading(session, pusher, item, sent_at, received_at),
            parsed=answer,
            language=pusher.language,
        )
        for raw, answer in zip(
            outbox.raw_readings,
            bulk.store_readings(session, pusher, outbox.readings, sent_at, received_at),
            strict=True,
        )
    ]
    touched: dict[int, validation_queue.Span] = {}
    read_meters = set()
    for index, item, _ in outbox.readings.items:
        if results[index].status == "accepted":
            validation_queue.merge_span(touched, item.assignment_id, item.read_at, item.read_at)
            read_meters.add(item.meter_id)
    track, span = bulk.store_track(session, pusher, outbox.track, received_at)
    if span is not None:
        # A late track batch re-validates the readings it covers.
        for assignment_id in affected_assignments_for_track(
            session, user_id=pusher.user_id, t_min=span[0], t_max=span[1], settings=settings
        ):
            validation_queue.merge_span(touched, assignment_id, *span)
    results += _job_events_in_time_order(session, settings, pusher, outbox.raw_events, received_at)
    validation_queue.enqueue(session, touched, now=received_at)
    session.connection().execute(
        update(Device).where(col(Device.id) == pusher.device_id).values(last_seen_at=received_at)
    )
    session.flush()
    # The answer is made before the change number is taken: every push waits for the counter's
    # lock while another holds it, so nothing that can be done before is done under it.
    answer = PushResponse(results=results, track=track, data_epoch=epoch.current(session))
    if read_meters:
        # Each meter read here goes out again in the next pull with its new state, to this
        # handheld and to any other the route is on: one UPDATE, not a model loaded and flushed
        # per meter. Its change number is taken last, so the change counter's lock is held from
        # here to the commit only (see server.core.changes).
        changes.stamp(session, Meter.__table__, read_meters)  # type: ignore[attr-defined]
    return answer


def _one(
    session: Session,
    raw: Any,
    model: type[ReadingIn] | type[JobEventIn],
    store: Any,
    parsed: ReadingIn | JobEventIn | None = None,
    language: str = "en",
) -> PushResult:
    raw_id = raw.get("id") if isinstance(raw, dict) else None
    item_id = raw_id if isinstance(raw_id, str) else None
    try:
        item = parsed or model.model_validate(raw)
    except ValidationError as exc:
        return PushResult(
            id=item_id, status="rejected", error="invalid", detail=bulk.validation_detail(exc)
        )
    try:
        status = _stored(session, store, item)
    except ItemRefused as rej:
        return PushResult(
            id=str(item.id),
            status="rejected",
            error=rej.error,
            detail=rej.said_in(language),
            params=rej.params or None,
        )
    return PushResult(id=str(item.id), status=status)


def _stored(session: Session, store: Any, item: ReadingIn | JobEventIn) -> str:
    """`store(item)` in a savepoint: its answer, or ItemRefused when the database will not hold
    it (a value beyond a column, a constraint the checks missed), the rest of the push going on."""
    try:
        try:
            with session.begin_nested():
                return str(store(item))
        except IntegrityError:
            # A concurrent push of the same outbox (the device retried mid-request) stored it
            # first; looking again answers duplicate, locked or already_read.
            with session.begin_nested():
                return str(store(item))
    except (DataError, IntegrityError) as exc:
        logger.warning("push item %s not storable: %s", item.id, exc.orig)
        raise ItemRefused(
            "not_storable",
            N_("The database cannot hold this record: {reason}"),
            reason=type(exc.orig).__name__,
        ) from None


def _job_events_in_time_order(
    session: Session,
    settings: Settings,
    pusher: Pusher,
    raw_events: list[Any],
    received_at: datetime,
) -> list[PushResult]:
    """Apply a push's job events in the order of their `at` times (a device may list a start
    after the finish it came before); answer them in the order sent. A fault a crew opened on
    the spot follows an outage restored there shortly before, as one an agent enters does."""
    parsed: list[tuple[int, JobEventIn | None, Any]] = []
    for index, raw in enumerate(raw_events):
        try:
            parsed.append((index, JobEventIn.model_validate(raw), raw))
        except ValidationError:
            parsed.append((index, None, raw))
    results: dict[int, PushResult] = {}
    for index, item, raw in sorted(
        parsed, key=lambda p: (p[1].at if p[1] is not None else received_at, p[0])
    ):
        results[index] = _one(
            session,
            raw,
            JobEventIn,
            lambda event: store_job_event(session, pusher, event, received_at),
            parsed=item,
            language=pusher.language,
        )
        if item is not None and item.kind == "created" and results[index].status == "accepted":
            opened = session.get(Job, item.job_id)
            assert opened is not None
            outages.link_to_restored(session, settings, opened, item.at)
    return [results[i] for i in range(len(raw_events))]
