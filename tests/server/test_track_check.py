"""A pushed track point's fast check agrees with TrackPointIn, the one truth: what it accepts the
model accepts with the same values, and a push's track is answered exactly as the model alone
answers it (each refusal by index, in the model's words)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from common import compact, wire
from server.schemas import wire as schemas
from server.schemas.requests import SCANNED
from server.schemas.wire import TrackPointIn, fast_track_row, track_row
from server.sync import bulk
from server.sync.bulk import check_track
from tests.factories import READ_AT, track_point

CHINA = timezone(timedelta(hours=8))
GOOD: dict[str, Any] = {"t": "2026-12-04T08:00:00+08:00", "lat": 30.27, "lon": 120.15}
DROP = object()  # the field left out
BOUNDS = (0, 0.0, -0.0, True, False, None, "1", math.nan, math.inf, -math.inf, 10**400, [], {})
TIMES = (
    "2026-12-04T00:00:00Z", "2026-12-04T00:00:00z", "2026-12-04T00:00:00.5Z",
    "2026-12-04T00:00:00.123456+00:00", "2026-12-04T00:00:00.1234567Z",
    "2026-12-04T00:00:00,5Z", "2026-12-04 00:00:00Z", "2026-12-04t00:00:00Z",
    "2026-12-04T00:00:00", "2026-12-04T00:00Z", "2026-12-04", "2026-W49-5T00:00:00Z",
    "20261204T000000Z", "2026-12-04T00:00:00+0800", "2026-12-04T00:00:00+05:30",
    "2026-12-04T00:00:00-00:00", "2026-12-04T00:00:00+23:59", "2026-12-04T00:00:00+24:00",
    "2026-02-29T00:00:00Z", "2026-12-04T24:00:00Z", "2026-12-04T23:59:60Z",
    "1999-12-31T23:59:59Z", "2000-01-01T00:00:00Z", "2000-01-01T07:59:59+08:00",
    "2099-12-31T23:59:59Z", "2100-01-01T00:00:00Z", "2099-12-31T20:00:00-08:00",
    "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+01:00", "", " 2026-12-04T00:00:00Z",
    "2026-12-04T00:00:00Z\n", "２０２６-12-04T00:00:00Z", "a\x00b", 1764806400, 1764806400.5,
    datetime(2026, 12, 4, tzinfo=UTC), datetime(2026, 12, 4, 8, tzinfo=CHINA),
    datetime(2026, 12, 4, tzinfo=UTC).replace(tzinfo=None), datetime(2100, 1, 1, tzinfo=UTC),
    None, True,
)  # fmt: skip
# Per field: good values, values written unusually, bad ones.
CELLS: dict[str, tuple[Any, ...]] = {
    "t": TIMES,
    "lat": (30.27, 90, 90.0, -90, 90.000001, -90.5, 1e308, "30.27", *BOUNDS),
    "lon": (120.15, 180, -180.0, 180.01, -200, 7, *BOUNDS),
    "accuracy_m": (5.0, 5, 100_000, 100_000.1, -0.1, 1e-300, *BOUNDS),
    "speed": (1.5, 500, 500.5, -1, *BOUNDS),
    "provider": ("gps", "network", "", "p" * 32, "p" * 33, "a\x00b", "a\x1fb", "a\x7fb",
                 "tab\there", "东", None, 5, ["gps"]),
    "mock": (False, True, 0, 1, "true", "false", None, 0.0),
    "extra": ("x", None),
}  # fmt: skip
POINTS = st.one_of(
    st.lists(
        st.sampled_from(list(CELLS)).flatmap(
            lambda c: st.tuples(st.just(c), st.sampled_from((*CELLS[c], DROP)))
        ),
        max_size=3,
    ).map(lambda changes: _changed(GOOD, changes)),
    st.sampled_from((None, [], "point", 5, [GOOD])),
)


def _changed(point: dict[str, Any], changes: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(point)
    for name, value in changes:
        if value is DROP:
            out.pop(name, None)
        else:
            out[name] = value
    return out


def _context(scanned: bool) -> dict[str, bool] | None:
    return SCANNED if scanned else None


def _same(fast: schemas.TrackRow, full: schemas.TrackRow) -> bool:
    """The same values of the same types (an int is not stored where the model made a float)."""
    return all(
        type(a) is type(b) and (a == b or (a != a and b != b))
        for a, b in zip(fast, full, strict=True)
    ) and fast[0].utcoffset() == timedelta(0)


@settings(max_examples=1500, deadline=None)
@given(POINTS, st.booleans())
@example(GOOD | {"t": "2000-01-01T07:59:59+08:00"}, True)
@example(GOOD | {"t": "2099-12-31T20:00:00-08:00"}, True)
@example(GOOD | {"lat": 10**400}, False)
@example(GOOD | {"provider": "a\x00b"}, False)
@example(GOOD | {"provider": "a\x00b"}, True)
def test_what_the_fast_check_accepts_the_model_accepts_with_the_same_values(
    raw: Any, scanned: bool
) -> None:
    fast = fast_track_row(raw, scanned)
    try:
        full = track_row(TrackPointIn.model_validate(raw, context=_context(scanned)))
    except ValidationError:
        assert fast is None
        return
    assert fast is None or _same(fast, full)


def _model_alone(raw_points: list[Any], scanned: bool) -> bulk.CheckedTrack:
    """How a push's track was checked before the fast check: every point by the model."""
    result = schemas.TrackResult()
    fresh: dict[datetime, schemas.TrackRow] = {}
    for index, raw in enumerate(raw_points):
        try:
            row = track_row(TrackPointIn.model_validate(raw, context=_context(scanned)))
        except ValidationError as exc:
            result.rejected.append(
                schemas.TrackRejection(index=index, error=bulk.validation_detail(exc))
            )
            continue
        if row[0] in fresh:
            result.duplicate += 1
        else:
            fresh[row[0]] = row
    return bulk.CheckedTrack(result, fresh)


@settings(max_examples=300, deadline=None)
@given(st.lists(POINTS, max_size=12), st.booleans())
def test_a_track_is_answered_as_the_model_alone_answers_it(
    raw_points: list[Any], scanned: bool
) -> None:
    checked = check_track(raw_points, _context(scanned))
    expected = _model_alone(raw_points, scanned)
    assert checked.result == expected.result
    assert checked.fresh.keys() == expected.fresh.keys()
    assert all(_same(checked.fresh[t], expected.fresh[t]) for t in expected.fresh)


def _points() -> list[wire.TrackPoint]:
    return [
        wire.TrackPoint(
            t=READ_AT + timedelta(seconds=5 * i, microseconds=1234 * (i % 3)),
            lat=30.27 + i * 1e-5,
            lon=120.15,
            accuracy_m=None if i % 4 == 0 else 4.0 + i % 7,
            speed=None if i % 2 else 1.2,
            provider="network" if i % 5 == 0 else "gps",
            mock=i % 9 == 0,
        )
        for i in range(40)
    ]


@pytest.mark.parametrize(
    "raw_points",
    [
        pytest.param([p.to_json() for p in _points()], id="contract 1, the handheld's"),
        pytest.param(compact.decode_track(compact.encode_track(_points())), id="contract 2"),
        pytest.param([track_point(READ_AT + timedelta(seconds=i)) for i in range(5)], id="tests'"),
    ],
)
@pytest.mark.parametrize("scanned", [True, False])
def test_a_good_track_in_the_usual_spelling_never_reaches_the_model(
    raw_points: list[Any], scanned: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model is for what the fast check refuses: a handheld's good points never reach it."""

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the model checked a point")

    monkeypatch.setattr(TrackPointIn, "model_validate", refuse)
    checked = check_track(raw_points, _context(scanned))
    assert (len(checked.fresh), checked.result.rejected) == (len(raw_points), [])
