"""A pushed reading's fast check (wire.fast_reading) is only a shortcut: what it accepts, the
model accepts with the same values; what it refuses goes to the model, which decides and words
the refusal. A push's readings are answered as the model alone answered them, and a handheld's
readings, contract 1 or 2, never reach the model."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from common import compact, wire
from server.schemas.requests import SCANNED
from server.schemas.wire import ReadingIn, fast_reading
from server.sync.bulk import check_readings, validation_detail
from server.sync.records import reading_hash
from tests.factories import READ_AT
from tests.server.test_track_check import TIMES

CHINA = timezone(timedelta(hours=8))
ID = "0e8e0f5c-1b2a-4c3d-9e8f-0a1b2c3d4e5f"
FIX: dict[str, Any] = {
    "lat": 30.27,
    "lon": 120.15,
    "accuracy_m": 6.0,
    "fix_time": "2026-12-04T07:59:58+08:00",
    "provider": "gps",
    "mock": False,
}
GOOD: dict[str, Any] = {
    "id": ID,
    "assignment_id": 7,
    "meter_id": 11,
    "value": "1100.5",
    "read_at": "2026-12-04T08:00:00+08:00",
    "confirmed_at": "2026-12-04T08:00:20+08:00",
    "fix": FIX,
    "reread_of": None,
}
DROP = object()  # the field left out
ODD = (None, True, False, 0, -1, 1.5, math.nan, math.inf, 10**400, "", "x", [], {}, "a\x00b")
IDS = (ID, ID.upper(), "{" + ID + "}", ID.replace("-", ""), "urn:uuid:" + ID, ID[:-1], ID + "0",
       "0e8e0f5c-1b2a-4c3d-9e8f-0a1b2c3d4e5g", "ｏ" * 36)  # fmt: skip
KEYS = (1, 2**31 - 1, 2**31, 0, -5, "7", 7.0, True, 2**63)
# Per field of a reading: good values, values written unusually, bad ones.
CELLS: dict[str, tuple[Any, ...]] = {
    "id": (*IDS, *ODD),
    "assignment_id": (*KEYS, *ODD),
    "meter_id": (*KEYS, *ODD),
    "value": ("0", "1100.5", "1100.500", "1100.5000", "0.1234", "007.50", "999999999999.999",
              "1000000000000", "1e3", "-1", "+1", " 1", "1.", ".5", "1,5", "١٢", "NaN",
              "Infinity", 1100, 1100.5, -1, *ODD),
    "skip_code": ("no_access", "dog", "other", "DOG", "lost", *ODD),
    "note": ("gate locked", "门锁着", "n" * 500, "n" * 501, "line\nbreak", "tab\there",
             "a\x1fb", "a\x7fb", *ODD),
    "read_at": TIMES,
    "confirmed_at": (*TIMES, "2026-12-04T08:00:00+08:00", "2026-12-04T07:59:59+08:00",
                     "2026-12-04T00:00:00Z", "2026-12-03T23:59:59.999999Z"),
    "fix": (FIX, None, *ODD),
    "reread_of": (None, *IDS, *ODD),
    "extra": ("x", None),
}  # fmt: skip
FIX_CELLS: dict[str, tuple[Any, ...]] = {
    "lat": (30.27, 90, -90.0, 90.000001, "30.27", *ODD),
    "lon": (120.15, 180, -180, 180.5, *ODD),
    "accuracy_m": (6.0, 5, 100_000, 100_000.5, -0.1, *ODD),
    "fix_time": TIMES,
    "provider": ("gps", "network", "", "p" * 32, "p" * 33, "a\x00b", "tab\there", "东", *ODD),
    "mock": (False, True, 0, 1, "true", *ODD),
    "extra": ("x", None),
}  # fmt: skip


def _changed(base: dict[str, Any], changes: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(base)
    for name, value in changes:
        if value is DROP:
            out.pop(name, None)
        else:
            out[name] = value
    return out


def _changes(cells: dict[str, tuple[Any, ...]]) -> st.SearchStrategy[list[tuple[str, Any]]]:
    return st.lists(
        st.sampled_from(list(cells)).flatmap(
            lambda c: st.tuples(st.just(c), st.sampled_from((*cells[c], DROP)))
        ),
        max_size=3,
    )


FIXES = _changes(FIX_CELLS).map(lambda changes: _changed(FIX, changes))
READINGS = st.one_of(
    st.tuples(_changes(CELLS), FIXES).map(
        lambda c: _changed(GOOD | {"fix": c[1]}, c[0])  # the fix changed, and maybe replaced
    ),
    st.sampled_from((None, [], "reading", 5, [GOOD])),
)


def _context(scanned: bool) -> dict[str, bool] | None:
    return SCANNED if scanned else None


def _values(reading: ReadingIn) -> list[tuple[type, Any]]:
    """Every value of a reading, fix included, with its type (an int is not a float, a Decimal
    of other digits is another value) and each time's offset."""
    fix = reading.fix
    values = [getattr(reading, name) for name in ReadingIn.model_fields if name != "fix"]
    if fix is not None:
        values += [getattr(fix, name) for name in type(fix).model_fields]
    return [
        (
            type(v),
            (v, v.utcoffset())
            if isinstance(v, datetime)
            else str(v)
            if isinstance(v, Decimal)
            else v,
        )
        for v in values
    ]


@settings(max_examples=2000, deadline=None)
@given(READINGS, st.booleans())
@example(GOOD, True)
@example(GOOD | {"value": None, "skip_code": "dog"}, True)
@example(GOOD | {"value": "007.50"}, False)
@example(GOOD | {"note": "a\x00b"}, False)
@example(GOOD | {"fix": FIX | {"provider": "a\x00b"}}, False)
@example(GOOD | {"confirmed_at": "2026-12-04T07:59:59+08:00"}, True)
@example(GOOD | {"read_at": "2000-01-01T07:59:59+08:00"}, True)
def test_what_the_fast_check_accepts_the_model_accepts_with_the_same_values(
    raw: Any, scanned: bool
) -> None:
    fast = fast_reading(raw, scanned)
    try:
        full = ReadingIn.model_validate(raw, context=_context(scanned))
    except ValidationError:
        assert fast is None
        return
    if fast is not None:
        assert _values(fast) == _values(full)
        assert reading_hash(fast) == reading_hash(full)
        assert fast.model_fields_set == full.model_fields_set


def _model_alone(raw_readings: list[Any], scanned: bool) -> list[tuple[int, str]]:
    """How a push's readings were checked before the fast check: every one by the model; each
    answered by its refusal's words or its content hash."""
    out = []
    for index, raw in enumerate(raw_readings):
        try:
            item = ReadingIn.model_validate(raw, context=_context(scanned))
        except ValidationError as exc:
            out.append((index, validation_detail(exc)))
            continue
        out.append((index, reading_hash(item)))
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(READINGS, max_size=8), st.booleans())
def test_a_push_s_readings_are_answered_as_the_model_alone_answers_them(
    raw_readings: list[Any], scanned: bool
) -> None:
    checked = check_readings(raw_readings, _context(scanned))
    answered = [(index, content_hash) for index, _, content_hash in checked.items] + [
        (index, answer.detail)
        for index, answer in enumerate(checked.answers)
        if answer is not None and answer.detail is not None
    ]
    assert sorted(answered) == _model_alone(raw_readings, scanned)


def _readings() -> list[wire.Reading]:
    return [
        wire.Reading(
            id=str(uuid.uuid4()),
            assignment_id=3,
            meter_id=100 + i,
            read_at=READ_AT + timedelta(minutes=i, microseconds=1234 * (i % 3)),
            confirmed_at=READ_AT + timedelta(minutes=i, seconds=15),
            value=None if i % 7 == 3 else Decimal(f"{1000 + i}.{i % 10}"),
            skip_code="dog" if i % 7 == 3 else None,
            note="门锁着" if i % 5 == 0 else None,
            fix=None
            if i % 6 == 5
            else wire.Fix(
                lat=30.27 + i * 1e-5,
                lon=120.15,
                accuracy_m=4.0 + i % 7,
                fix_time=READ_AT + timedelta(minutes=i, seconds=-2),
                provider="network" if i % 4 == 0 else "gps",
                mock=i % 9 == 0,
            ),
        )
        for i in range(30)
    ]


@pytest.mark.parametrize(
    "raw_readings",
    [
        pytest.param([r.to_json() for r in _readings()], id="contract 1, the handheld's"),
        pytest.param(compact.decode_readings(compact.encode_readings(_readings())), id="v2"),
    ],
)
def test_a_handheld_s_good_readings_never_reach_the_model(
    raw_readings: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model is for what the fast check refuses: a handheld's good readings (a body with
    no control character: requests.json_free_of_controls) never reach it."""

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the model checked a reading")

    monkeypatch.setattr(ReadingIn, "model_validate", refuse)
    monkeypatch.setattr("server.sync.bulk._READINGS.validate_python", refuse)
    checked = check_readings(raw_readings, SCANNED)
    assert (len(checked.items), checked.answers) == (len(raw_readings), [None] * 30)


def test_the_fast_check_keeps_the_time_as_sent() -> None:
    """The offset a handheld wrote is kept (the model keeps it too); stored, it is UTC."""
    fast = fast_reading(GOOD, True)
    assert fast is not None
    assert fast.read_at == datetime(2026, 12, 4, 0, tzinfo=UTC)
    assert fast.read_at.utcoffset() == timedelta(hours=8)
    assert fast.read_at.astimezone(CHINA).hour == 8
