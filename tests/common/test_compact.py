"""Contract 2's compact forms (common.compact): random tracks, readings and answers round-trip;
malformed columns are refused by name."""

from __future__ import annotations

import dataclasses
import json
import random
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from common import compact, wire
from common.wire import WireError

START = datetime(2026, 12, 3, 0, 0, tzinfo=UTC)


def random_track(rnd: random.Random, n: int) -> list[wire.TrackPoint]:
    """A walk with a fix every few seconds at any microsecond, noisy positions at full float
    precision anywhere on Earth, and now and then no accuracy, a speed, another provider, a
    mock location, a time in another offset."""
    t = START + timedelta(microseconds=rnd.randrange(10**12))
    lat, lon = rnd.uniform(-89, 89), rnd.uniform(-179, 179)
    points = []
    for _ in range(n):
        t += timedelta(microseconds=rnd.randrange(1, 40_000_000))
        lat = min(90.0, max(-90.0, lat + rnd.gauss(0, 2e-4)))
        lon = min(180.0, max(-180.0, lon + rnd.gauss(0, 2e-4)))
        zone = timezone(timedelta(hours=rnd.choice([0, 8, -5])))
        points.append(
            wire.TrackPoint(
                t=t.astimezone(zone),
                lat=lat,
                lon=lon,
                accuracy_m=None if rnd.random() < 0.1 else rnd.uniform(0, 300),
                speed=None if rnd.random() < 0.7 else rnd.uniform(0, 40),
                provider=rnd.choice(["gps"] * 8 + ["network", "fused"]),
                mock=rnd.random() < 0.05,
            )
        )
    return points


def over_json(data: object) -> object:
    """What the other end reads: the body goes through JSON text."""
    return json.loads(json.dumps(data, separators=(",", ":")))


@pytest.mark.parametrize("seed", range(40))
def test_a_random_track_round_trips_exactly_to_a_millionth_of_a_degree(seed: int) -> None:
    rnd = random.Random(seed)
    sent = random_track(rnd, rnd.choice([0, 1, 2, 50, 700]))
    got = compact.decode_track(over_json(compact.encode_track(sent)))
    assert len(got) == len(sent)
    for p, q in zip(sent, got, strict=True):
        assert q["t"] == p.t  # the same instant to the microsecond: the point's key
        assert q["t"].tzinfo is not None
        # Exactly the point rounded to 1e-6 degree, and so within half of it of the point.
        assert q["lat"] == round(p.lat * 1e6) / 1e6
        assert q["lon"] == round(p.lon * 1e6) / 1e6
        assert abs(q["lat"] - p.lat) <= 0.5e-6 + 1e-12
        assert abs(q["lon"] - p.lon) <= 0.5e-6 + 1e-12
        if p.accuracy_m is None:
            assert q["accuracy_m"] is None
        else:  # whole metres, never better than the device said
            assert p.accuracy_m <= q["accuracy_m"] < p.accuracy_m + 1
        if p.speed is None:
            assert q["speed"] is None
        else:
            assert abs(q["speed"] - p.speed) <= 0.05 + 1e-9
        assert (q["provider"], q["mock"]) == (p.provider, p.mock)


def test_a_decoded_point_is_a_v1_point_again() -> None:
    [point] = random_track(random.Random(1), 1)
    [item] = compact.decode_track(over_json(compact.encode_track([point])))
    again = wire.TrackPoint(**item)
    assert again.t == point.t
    assert compact.encode_track([again]) == compact.encode_track([point])


def random_readings(rnd: random.Random, n: int) -> list[wire.Reading]:
    readings = []
    t = START + timedelta(microseconds=rnd.randrange(10**12))
    for i in range(n):
        t += timedelta(microseconds=rnd.randrange(1, 600_000_000))
        skipped = rnd.random() < 0.1
        fix = None
        if rnd.random() < 0.9:
            fix = wire.Fix(
                lat=rnd.uniform(-90, 90),
                lon=rnd.uniform(-180, 180),
                accuracy_m=rnd.uniform(0, 100),
                fix_time=t - timedelta(microseconds=rnd.randrange(-(10**6), 10**8)),
                provider=rnd.choice(["gps", "network"]),
                mock=rnd.random() < 0.1,
            )
        readings.append(
            wire.Reading(
                id=str(uuid.UUID(int=rnd.getrandbits(128))),
                assignment_id=rnd.choice([7, 8, 2**31 - 1]),
                meter_id=rnd.randrange(1, 10**6),
                read_at=t.astimezone(timezone(timedelta(hours=8))),
                confirmed_at=t + timedelta(microseconds=rnd.randrange(10**8)),
                value=None if skipped else Decimal(rnd.randrange(10**9)) / 1000,
                skip_code=rnd.choice(wire.SKIP_CODES) if skipped else None,
                note=rnd.choice([None, None, "", "gate locked", "狗很凶"]),
                fix=fix,
                reread_of=str(uuid.uuid4()) if rnd.random() < 0.1 else None,
            )
        )
        del i
    return readings


@pytest.mark.parametrize("seed", range(20))
def test_random_readings_round_trip_exactly(seed: int) -> None:
    """A reading is never changed: sent in v2 it must be the very reading it was in v1."""
    rnd = random.Random(seed)
    sent = random_readings(rnd, rnd.choice([0, 1, 30]))
    got = compact.decode_readings(over_json(compact.encode_readings(sent)))
    assert [wire.Reading.from_json(over_json(_dumped(g))) for g in got] == sent


def test_a_fix_the_handheld_kept_goes_as_integers_and_comes_back_the_same() -> None:
    rnd = random.Random(5)
    readings = [
        dataclasses.replace(r, fix=compact.rounded_fix(r.fix) if r.fix else None)
        for r in random_readings(rnd, 30)
    ]
    encoded = compact.encode_readings(readings)
    assert all(isinstance(v, int) for v in encoded["fix"]["lat"] + encoded["fix"]["acc"] if v)
    assert len(encoded["id_hex"]) == 32 * 30
    got = compact.decode_readings(over_json(encoded))
    assert [wire.Reading.from_json(over_json(_dumped(g))) for g in got] == readings


@pytest.mark.parametrize("seed", range(20))
def test_a_kept_fix_is_within_the_wires_precision_and_never_claims_better(seed: int) -> None:
    rnd = random.Random(seed)
    for _ in range(200):
        fix = wire.Fix(
            lat=rnd.uniform(-90, 90),
            lon=rnd.uniform(-180, 180),
            accuracy_m=rnd.choice([rnd.uniform(0, 100), 4.3, 5.0, 0.1]),
            fix_time=START,
        )
        kept = compact.rounded_fix(fix)
        assert abs(kept.lat - fix.lat) <= 0.5e-6 + 1e-12
        assert abs(kept.lon - fix.lon) <= 0.5e-6 + 1e-12
        assert fix.accuracy_m <= kept.accuracy_m < fix.accuracy_m + 0.1 + 1e-9
        assert compact.rounded_fix(kept) == kept  # kept once, kept as it is


def _dumped(item: dict[str, object]) -> dict[str, object]:
    """A decoded item in v1's JSON (its times aware datetimes: ISO)."""
    out = dict(item)
    for key in ("read_at", "confirmed_at"):
        out[key] = wire.iso(item[key])  # type: ignore[arg-type]
    if item["fix"] is not None:
        fix = dict(item["fix"])  # type: ignore[call-overload]
        fix["fix_time"] = wire.iso(fix["fix_time"])
        out["fix"] = fix
    return out


def test_a_push_round_trips_and_keeps_its_job_events_as_they_are() -> None:
    rnd = random.Random(3)
    event = wire.JobEvent(id=str(uuid.uuid4()), job_id=str(uuid.uuid4()), kind="started", at=START)
    push = wire.Push(
        readings=tuple(random_readings(rnd, 3)),
        track_points=tuple(random_track(rnd, 5)),
        job_events=(event,),
        sent_at=START,
    )
    body = over_json(compact.encode_push(push))
    assert isinstance(body, dict)
    decoded = compact.decode_push(body)
    assert set(decoded) == {"readings", "track_points", "job_events", "sent_at"}
    assert (len(decoded["readings"]), len(decoded["track_points"])) == (3, 5)
    assert decoded["job_events"] == [event.to_json()]


def test_an_answer_is_ranges_and_refusals_and_reads_back_as_v1() -> None:
    ids = [f"id-{i}" for i in range(8)]
    statuses = ["accepted"] * 3 + ["duplicate", "rejected"] + ["accepted"] * 3
    v1 = {
        "results": [
            {"id": i, "status": s, "error": None, "detail": None, "params": None}
            | (
                {"error": "locked", "detail": "never changed", "params": {"n": 1}}
                if s == "rejected"
                else {}
            )
            for i, s in zip(ids, statuses, strict=True)
        ],
        "track": {"accepted": 10, "duplicate": 2, "rejected": [{"index": 4, "error": "bad"}]},
        "data_epoch": "e1",
    }
    answer = compact.encode_answer(v1)
    assert answer["accepted"] == [[0, 2], [5, 7]]
    assert answer["duplicate"] == [[3, 3]]
    assert answer["rejected"] == [
        {
            "index": 4,
            "status": "rejected",
            "error": "locked",
            "detail": "never changed",
            "params": {"n": 1},
        }
    ]
    back = compact.decode_answer(over_json(answer), ids)
    assert back == wire.PushAnswer.from_json(v1)


def test_three_hundred_accepted_readings_are_answered_in_a_few_bytes() -> None:
    v1 = {
        "results": [{"id": str(uuid.uuid4()), "status": "accepted"} for _ in range(300)],
        "track": {"accepted": 6000, "duplicate": 0, "rejected": []},
    }
    tight = {"separators": (",", ":")}  # as the server writes JSON
    small = len(json.dumps(compact.encode_answer(v1), **tight))  # type: ignore[arg-type]
    assert small < 120
    assert small * 100 < len(json.dumps(v1, **tight))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("columns", "complaint"),
    [
        ([], "track must be an object"),
        ({"n": 2, "t": [1], "lat": [1, 2], "lon": [1, 2]}, "t has 1 values; n is 2"),
        ({"n": 1, "t": [1], "lat": [1.5], "lon": [1]}, "expected an integer"),
        ({"n": 1, "t": [1], "lat": [True], "lon": [1]}, "expected an integer"),
        ({"n": 1, "t": [None], "lat": [1], "lon": [1]}, "may not be null"),
        ({"n": 1, "t": [1], "lat": [1]}, "lon is missing"),
        ({"n": 1, "t": [1], "lat": [1], "lon": [1], "mock": [3]}, "index 3 is outside"),
        ({"n": 1, "t": [10**30], "lat": [1], "lon": [1]}, "track:"),
        ({"n": -1}, "n must be a count"),
    ],
)
def test_malformed_track_columns_are_refused_by_name(columns: object, complaint: str) -> None:
    with pytest.raises(WireError, match=complaint):
        compact.decode_track(columns)


@pytest.mark.parametrize(
    ("answer", "complaint"),
    [
        ({"n": 3, "accepted": [[0, 1]]}, r"no result for item\(s\) \[\[2, 2\]\]"),
        ({"n": 2, "accepted": [[0, 2]]}, "outside"),
        ({"n": 1, "accepted": [[0]]}, "is not a"),
        ({"n": 5, "accepted": [[0, 4]]}, "5 results for 1 items pushed"),
    ],
)
def test_an_answer_that_does_not_fit_the_push_is_refused(answer: object, complaint: str) -> None:
    ids = ["a"] if answer["n"] == 5 else ["a", "b", "c"][: answer["n"]]  # type: ignore[index]
    with pytest.raises(WireError, match=complaint):
        compact.decode_answer(answer, ids)


def test_ids_packed_as_hex_come_back_canonical_in_either_case_and_bad_hex_is_named() -> None:
    ids = [str(uuid.UUID(int=i * 0x1234_5678_9ABC_DEF0_1234_5678_9ABC_DEF)) for i in (1, 7)]
    packed = "".join(uuid.UUID(i).hex for i in ids)
    base = {"n": 2, "assignment_id": [1, 0], "meter_id": [5, 1], "read_at": [0, 1]}
    columns = base | {"confirmed_after": [0, 0], "skip_code": ["dog", "dog"]}
    for spelt in (packed, packed.upper()):
        assert [r["id"] for r in compact.decode_readings(columns | {"id_hex": spelt})] == ids
    with pytest.raises(WireError, match="not a hex digit"):
        compact.decode_readings(columns | {"id_hex": "g" + packed[1:]})
