"""A reading's content hash: written field by field, it is the hash of json.dumps of its content
(keys sorted), byte for byte, whatever the content holds; readings stored before it was written
so still answer `duplicate` when sent again."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from common.numbers import plain
from common.wire import iso
from server.schemas.requests import control_character
from server.schemas.wire import SKIP_CODES, ReadingIn
from server.sync import records

TEXT = st.one_of(
    st.none(), st.text(max_size=20), st.sampled_from(["", "东街 1 号", '"\\\n\t', "\x7f"])
)
NUMBER = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0.1, 1e16, 1e-7, -0.0, 120.15510000000001, 5]),
)
# Naive bounds: hypothesis puts the zone on.
MOMENT = st.datetimes(
    min_value=datetime(1900, 1, 2),  # noqa: DTZ001
    max_value=datetime(2999, 12, 30),  # noqa: DTZ001
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5, minutes=-30))]
    ),
)
FIX = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {
            "lat": NUMBER,
            "lon": NUMBER,
            "accuracy_m": NUMBER,
            "fix_time": st.one_of(st.none(), MOMENT.map(iso)),
            "provider": TEXT,
            "mock": st.one_of(st.none(), st.booleans()),
        }
    ),
)
CONTENT = st.fixed_dictionaries(
    {
        "assignment_id": st.integers(1, 2**31),
        "meter_id": st.integers(1, 2**31),
        "value": st.one_of(st.none(), st.decimals(allow_nan=False, allow_infinity=False, places=3)),
        "skip_code": TEXT,
        "note": TEXT,
        "read_at": MOMENT,
        "confirmed_at": MOMENT,
        "fix": FIX,
        "reread_of": st.one_of(st.none(), st.uuids()),
    }
)


@settings(max_examples=2000, deadline=None)
@given(CONTENT)
def test_a_reading_s_hash_is_that_of_its_content_as_json_dumps_writes_it(
    content: dict[str, Any],
) -> None:
    as_json_dumps_has_it = records._hash(
        content
        | {
            "value": plain(content["value"]),
            "read_at": iso(content["read_at"]),
            "confirmed_at": iso(content["confirmed_at"]),
            "reread_of": str(content["reread_of"]) if content["reread_of"] else None,
        }
    )
    assert records._reading_hash(**content) == as_json_dumps_has_it


def test_a_known_reading_s_hash_is_what_it_was() -> None:
    """The hash of one reading, as the first server stored it: a change of spelling would make
    every reading held `locked` when its handheld sends it again."""
    read_at = datetime(2026, 10, 25, 9, 0, tzinfo=UTC)
    assert (
        records._reading_hash(
            assignment_id=7,
            meter_id=42,
            value=Decimal("1225.500"),
            skip_code=None,
            note="门口有狗",
            read_at=read_at,
            confirmed_at=read_at + timedelta(seconds=15),
            fix=records._fix_content(30.2741, 120.1551, 5.0, read_at, "gps", False),
            reread_of=uuid.UUID(int=1),
        )
        == EXPECTED
    )


# sha256 of json.dumps(content, sort_keys=True), as the first server wrote it.
EXPECTED = "94a47def0f2256edc742bfaa44ac50a130193226e62e755c351f156db5298af2"


# A reading as ReadingIn lets it through: the numbers within its bounds, as a handheld or a
# script may write them (an int for a float, a float for an int), times in any zone.
CHECKED = st.fixed_dictionaries(
    {
        "id": st.uuids().map(str),
        "assignment_id": st.integers(1, 2**31 - 1) | st.integers(1, 2**31 - 1).map(float),
        "meter_id": st.integers(1, 2**31 - 1),
        "read_at": st.datetimes(
            min_value=datetime(2000, 1, 2),  # noqa: DTZ001
            max_value=datetime(2099, 12, 30),  # noqa: DTZ001
            timezones=st.sampled_from([UTC, timezone(timedelta(hours=8))]),
        ),
        "confirm_after_s": st.integers(0, 10_000),
        "reading": st.one_of(
            st.fixed_dictionaries(
                {
                    "value": st.decimals(0, 10**11, places=3).map(str)
                    | st.integers(0, 10**9)
                    | st.sampled_from(["0", "1225.500", "1E+3", "0.000"])
                }
            ),
            st.fixed_dictionaries({"skip_code": st.sampled_from(list(SKIP_CODES))}),
        ),
        "note": st.none() | st.text(max_size=30).filter(lambda t: not control_character(t)),
        "fix": st.none()
        | st.fixed_dictionaries(
            {
                "lat": st.floats(-90, 90) | st.integers(-90, 90),
                "lon": st.floats(-180, 180),
                "accuracy_m": st.floats(0, 100_000) | st.just(5),
                "fix_time": st.just("2026-12-01T08:00:00.5+08:00"),
            },
            optional={"provider": st.sampled_from(["gps", "network", "东"]), "mock": st.booleans()},
        ),
        "reread_of": st.none() | st.uuids().map(str),
    }
)


@settings(max_examples=1000, deadline=None)
@given(CHECKED)
def test_a_checked_reading_s_hash_is_that_of_its_content_as_json_dumps_writes_it(
    drawn: dict[str, Any],
) -> None:
    read_at = drawn.pop("read_at")
    after = drawn.pop("confirm_after_s")
    r = ReadingIn.model_validate(
        drawn
        | drawn.pop("reading")
        | {"read_at": read_at.isoformat(), "confirmed_at": read_at + timedelta(seconds=after)}
    )
    assert records.reading_hash(r) == records._hash(
        {
            "assignment_id": r.assignment_id,
            "meter_id": r.meter_id,
            "value": plain(r.value),
            "skip_code": r.skip_code,
            "note": r.note,
            "read_at": iso(r.read_at),
            "confirmed_at": iso(r.confirmed_at),
            "fix": None
            if r.fix is None
            else {
                "lat": r.fix.lat,
                "lon": r.fix.lon,
                "accuracy_m": r.fix.accuracy_m,
                "fix_time": iso(r.fix.fix_time),
                "provider": r.fix.provider,
                "mock": r.fix.mock,
            },
            "reread_of": str(r.reread_of) if r.reread_of else None,
        }
    )
