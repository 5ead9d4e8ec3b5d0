"""One pushed record stored: a reading (locked once held: the same id again is a duplicate or
`locked`; a re-read supersedes), a job event; and the content hashes that make a resend a
`duplicate`. A record is its pusher's own: an id held by another user is `id_taken`."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime
from decimal import Decimal
from json.encoder import encode_basestring_ascii as _json_text  # json.dumps's own
from typing import TYPE_CHECKING, Any

from sqlalchemy import exists
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from common.i18n import N_
from common.numbers import plain
from common.wire import iso
from server.core.errors import ItemRefused
from server.jobs import field as jobs_in_the_field
from server.models import (
    Assignment,
    JobEvent,
    Meter,
    Reading,
    RereadOrder,
    Withdrawal,
    fix_columns,
)
from server.schemas.wire import (
    Fix,
    JobEventIn,
    ReadingIn,
)

if TYPE_CHECKING:  # push.py imports this module: the pusher is only a type here
    from server.sync.push import Pusher


def _fix_canonical(fix: Fix | None) -> dict[str, Any] | None:
    if fix is None:
        return None
    return _fix_content(fix.lat, fix.lon, fix.accuracy_m, fix.fix_time, fix.provider, fix.mock)


def _fix_content(
    lat: float | None,
    lon: float | None,
    accuracy_m: float | None,
    fix_time: datetime | None,
    provider: str | None,
    mock: bool | None,
) -> dict[str, Any]:
    # Optional only for a stored row whose fix columns were changed: it still hashes.
    return {
        "lat": lat,
        "lon": lon,
        "accuracy_m": accuracy_m,
        "fix_time": iso(fix_time) if fix_time is not None else None,
        "provider": provider,
        "mock": mock,
    }


def _hash(content: dict[str, Any]) -> str:
    return _text_hash(json.dumps(content, sort_keys=True))


def reading_hash(r: ReadingIn) -> str:
    """The content of a reading, independent of how the device wrote its numbers and times.

    A push hashes every reading it holds: ReadingIn has checked each field's type (an int, a
    finite float within bounds, a Decimal, an aware time, a skip code of plain letters), so
    each is written by its type's own writer, in a third less time than `_json` asking what
    it is (test_records: the same text as json.dumps)."""
    fix = r.fix
    return _text_hash(
        _reading_text(
            assignment_id=int.__repr__(r.assignment_id),
            confirmed_at=_time_text(r.confirmed_at),
            fix="null"
            if fix is None
            else _fix_text(
                accuracy_m=float.__repr__(fix.accuracy_m),
                fix_time=_time_text(fix.fix_time),
                lat=float.__repr__(fix.lat),
                lon=float.__repr__(fix.lon),
                mock="true" if fix.mock else "false",
                provider=_json_text(fix.provider),
            ),
            meter_id=int.__repr__(r.meter_id),
            note="null" if r.note is None else _json_text(r.note),
            read_at=_time_text(r.read_at),
            reread_of="null" if r.reread_of is None else f'"{r.reread_of}"',
            skip_code="null" if r.skip_code is None else f'"{r.skip_code}"',
            value="null" if r.value is None else f'"{plain(r.value)}"',
        )
    )


def _time_text(t: datetime) -> str:
    # iso() writes digits, dashes, colons, a T, a dot and a sign: nothing JSON escapes.
    return f'"{iso(t)}"'


def stored_reading_hash(row: Reading) -> str:
    """The content hash of a stored reading, from its columns: what `reading_hash` gave the
    reading as it arrived, unless the row was changed since."""
    fix = None
    if row.fix_lat is not None:
        fix = _fix_content(
            row.fix_lat,
            row.fix_lon,
            row.fix_accuracy_m,
            row.fix_time,
            row.fix_provider,
            row.fix_mock,
        )
    return _reading_hash(
        assignment_id=row.assignment_id,
        meter_id=row.meter_id,
        value=row.value,
        skip_code=row.skip_code,
        note=row.note,
        read_at=row.read_at,
        confirmed_at=row.confirmed_at,
        fix=fix,
        reread_of=row.reread_of,
    )


def _reading_hash(
    *,
    assignment_id: int,
    meter_id: int,
    value: Decimal | None,
    skip_code: str | None,
    note: str | None,
    read_at: datetime,
    confirmed_at: datetime,
    fix: dict[str, Any] | None,
    reread_of: uuid.UUID | None,
) -> str:
    """The hash of any content, its fields of whatever type (a stored row's, changed since)."""
    return _text_hash(
        _reading_text(
            assignment_id=_json(assignment_id),
            confirmed_at=_json(iso(confirmed_at)),
            fix="null"
            if fix is None
            else _fix_text(**{name: _json(value) for name, value in fix.items()}),
            meter_id=_json(meter_id),
            note=_json(note),
            read_at=_json(iso(read_at)),
            reread_of=_json(str(reread_of) if reread_of else None),
            skip_code=_json(skip_code),
            value=_json(plain(value)),
        )
    )


# What _hash writes of a reading's content (json.dumps, keys sorted), written field by field
# from each field's JSON text: the same text in half the time (test_records).
def _reading_text(
    *,
    assignment_id: str,
    confirmed_at: str,
    fix: str,
    meter_id: str,
    note: str,
    read_at: str,
    reread_of: str,
    skip_code: str,
    value: str,
) -> str:
    return (
        f'{{"assignment_id": {assignment_id}, "confirmed_at": {confirmed_at}, "fix": {fix}, '
        f'"meter_id": {meter_id}, "note": {note}, "read_at": {read_at}, '
        f'"reread_of": {reread_of}, "skip_code": {skip_code}, "value": {value}}}'
    )


def _fix_text(
    *, accuracy_m: str, fix_time: str, lat: str, lon: str, mock: str, provider: str
) -> str:
    return (
        f'{{"accuracy_m": {accuracy_m}, "fix_time": {fix_time}, "lat": {lat}, "lon": {lon}, '
        f'"mock": {mock}, "provider": {provider}}}'
    )


def _text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


_INFINITY = float("inf")


def _json(value: Any) -> str:
    """A JSON scalar as json.dumps writes it (ASCII; NaN and the infinities spelt its way)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _json_text(value)
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        if value != value:
            return "NaN"
        if value in (_INFINITY, -_INFINITY):
            return "Infinity" if value > 0 else "-Infinity"
        return float.__repr__(value)
    raise TypeError(f"not a JSON scalar: {value!r}")


def _id_taken(what: str) -> ItemRefused:
    """A record is deduplicated as its pusher's own: an id another user's record holds is
    neither a duplicate (that would tell the device it is stored) nor a change of theirs."""
    templates = {
        "reading": N_("a reading with this id is held for another user; send it with a new id"),
        "job event": N_("a job event with this id is held for another user; send it with a new id"),
    }
    return ItemRefused("id_taken", templates[what])


def store_reading(
    session: Session, pusher: Pusher, r: ReadingIn, sent_at: datetime | None, received_at: datetime
) -> str:
    content_hash = reading_hash(r)
    held = session.get(Reading, r.id)
    if held is not None:
        if held.user_id != pusher.user_id:
            raise _id_taken("reading")
        if held.content_hash == content_hash:
            return "duplicate"
        raise ItemRefused(
            "locked",
            N_(
                "a reading with this id is already held with other content; a confirmed "
                "reading is never changed"
            ),
        )
    assignment = session.get(Assignment, r.assignment_id)
    if assignment is None:
        raise ItemRefused(
            "unknown_assignment", N_("no assignment {assignment}"), assignment=r.assignment_id
        )
    if assignment.reader_id != pusher.user_id and not _was_given(
        session, pusher.user_id, assignment_id=r.assignment_id, at=r.read_at
    ):
        raise ItemRefused(
            "not_your_assignment",
            N_("assignment {assignment} is not given to {user}"),
            assignment=r.assignment_id,
            user=pusher.user.username,
        )
    meter = session.get(Meter, r.meter_id)
    if meter is None or meter.route_id != assignment.route_id:
        raise ItemRefused(
            "meter_not_on_route",
            N_("meter {meter} is not on the route of assignment {assignment}"),
            meter=r.meter_id,
            assignment=r.assignment_id,
        )
    if r.value is not None and r.value >= Decimal(10) ** meter.digits:
        raise ItemRefused(
            "value_exceeds_dials",
            N_("{value} does not fit the {digits} dials of meter {meter}"),
            value=plain(r.value),
            digits=meter.digits,
            meter=meter.meter_no,
        )
    supersedes = None
    if r.reread_of is not None:
        order = session.get(RereadOrder, r.reread_of)
        if order is None or (order.assignment_id, order.meter_id) != (r.assignment_id, r.meter_id):
            raise ItemRefused(
                "unknown_reread_order",
                N_("no re-read order {order} for this meter and assignment"),
                order=str(r.reread_of),
            )
        if order.status != "open":
            closed = {
                "done": N_("re-read order {order} is done"),
                "cancelled": N_("re-read order {order} is cancelled"),
            }
            raise ItemRefused(
                "reread_order_closed",
                closed.get(order.status, N_("re-read order {order} is closed")),
                order=str(r.reread_of),
            )
        supersedes = _current_reading_id(session, r.assignment_id, r.meter_id)
        order.status = "done"
        order.reading_id = r.id
        session.add(order)
    elif (
        session.exec(
            select(Reading.id).where(
                Reading.assignment_id == r.assignment_id,
                Reading.meter_id == r.meter_id,
                col(Reading.reread_of).is_(None),
            )
        ).first()
        is not None
    ):
        raise ItemRefused(
            "already_read",
            N_(
                "meter {meter} already has a reading in this assignment; a new one needs a "
                "supervisor's re-read order"
            ),
            meter=meter.meter_no,
        )
    session.add(
        Reading(
            id=r.id,
            assignment_id=r.assignment_id,
            meter_id=r.meter_id,
            value=r.value,
            skip_code=r.skip_code,
            note=r.note,
            read_at=r.read_at,
            confirmed_at=r.confirmed_at,
            **fix_columns(r.fix),
            reread_of=r.reread_of,
            supersedes=supersedes,
            user_id=pusher.user_id,
            device_id=pusher.device_id,
            sent_at=sent_at,
            received_at=received_at,
            content_hash=content_hash,
        )
    )
    session.flush()
    return "accepted"


def _was_given(session: Session, user_id: int, *, assignment_id: int, at: datetime) -> bool:
    """Was the assignment this user's when they read at `at`? A route moved to another reader
    while the first was offline keeps the readings taken before the move."""
    moved_away = session.exec(
        select(Withdrawal.created_at).where(
            Withdrawal.user_id == user_id,
            Withdrawal.object_type == "assignment",
            Withdrawal.object_id == str(assignment_id),
        )
    ).all()
    return any(at < moved for moved in moved_away)


def _current_reading_id(session: Session, assignment_id: int, meter_id: int) -> Any:
    """The reading of this meter that no later reading supersedes (None if never read)."""
    later = aliased(Reading)
    return session.exec(
        select(Reading.id).where(
            Reading.assignment_id == assignment_id,
            Reading.meter_id == meter_id,
            ~exists().where(col(later.supersedes) == Reading.id),
        )
    ).first()


def job_event_hash(e: JobEventIn) -> str:
    return _hash(
        {
            "job_id": str(e.job_id),
            "kind": e.kind,
            "at": iso(e.at),
            "fix": _fix_canonical(e.fix),
            "expected_finish": iso(e.expected_finish) if e.expected_finish else None,
            "content": e.content,
            "crew": e.crew,
            "note": e.note,
        }
    )


def store_job_event(session: Session, pusher: Pusher, e: JobEventIn, received_at: datetime) -> str:
    content_hash = job_event_hash(e)
    held = session.get(JobEvent, e.id)
    if held is not None:
        if held.user_id != pusher.user_id:
            raise _id_taken("job event")
        if held.content_hash == content_hash:
            return "duplicate"
        raise ItemRefused(
            "locked", N_("a job event with this id is already held with other content")
        )
    jobs_in_the_field.apply_device_event(
        session,
        user=pusher.user,
        device_id=pusher.device_id,
        event=e,
        content_hash=content_hash,
        received_at=received_at,
    )
    return "accepted"
