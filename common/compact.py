"""Sync contract v2's compact forms, written once for the handheld and the server.

A reader-day over GPRS is mostly its track: v1 spells each point as an object with an ISO time
and full floats (~11.6 B a point gzipped). v2 sends the track as columns of delta-encoded
integers (gzip then finds the runs): time in microseconds (exact: the time is the point's key,
and a point sent once in v1 and again in v2 must be the same point), latitude and longitude in
millionths of a degree (0.11 m, well inside any fix's accuracy), accuracy in whole metres
rounded up (never better than the device said). Readings go as columns too, but exactly: a
reading is never changed, and the same reading sent again must be the same content to the last
digit, so its times are exact microseconds and its fix's numbers go as integers (millionths of
a degree, tenths of a metre) only when that is exactly what they are: the handheld keeps a
reading's fix at that precision (`rounded_fix`), a fix kept otherwise goes as its floats. Ids
that are canonical UUIDs go as one string of hex digits (a third fewer bytes gzipped).

The answer comes back compact too: accepted and duplicate items as ranges of their index in
the push (readings first, then job events, as v1's results), refusals spelt out.

Pure standard library: it ships in the handheld's APK. Malformed compact data raises WireError.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from common import wire
from common.wire import WireError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LATLON_SCALE = 1_000_000  # millionths of a degree


def micros(t: datetime) -> int:
    """An aware time as whole microseconds since 1970 (exact: integer arithmetic)."""
    if t.tzinfo is None:
        raise ValueError("naive datetime: the wire carries aware times only")
    return (t - EPOCH) // timedelta(microseconds=1)


def from_micros(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def e6(degrees: float) -> int:
    return round(degrees * LATLON_SCALE)


def deltas(values: Sequence[int | None]) -> list[int | None]:
    """Each value less the previous one that is not None; None stays None."""
    out: list[int | None] = []
    previous = 0
    for value in values:
        if value is None:
            out.append(None)
            continue
        out.append(value - previous)
        previous = value
    return out


def undeltas(values: Sequence[Any]) -> list[int | None]:
    out: list[int | None] = []
    previous = 0
    for value in values:
        if value is None:
            out.append(None)
            continue
        _check_int(value)
        previous += value
        out.append(previous)
    return out


def rounded_fix(fix: wire.Fix) -> wire.Fix:
    """A fix at the precision the wire carries exactly: 1e-6 degree (0.11 m, far finer than any
    GPS), accuracy rounded up to 0.1 m (never better than the device said)."""
    return wire.Fix(
        lat=e6(fix.lat) / LATLON_SCALE,
        lon=e6(fix.lon) / LATLON_SCALE,
        accuracy_m=math.ceil(round(fix.accuracy_m * 10, 6)) / 10,
        fix_time=fix.fix_time,
        provider=fix.provider,
        mock=fix.mock,
    )


def _scaled(value: float, scale: int) -> int | float:
    """`value` times `scale` as an integer when that is exactly the value, else the float."""
    if not math.isfinite(value * scale):
        return value
    n = round(value * scale)
    return n if n / scale == value else value


def _unscaled(value: Any, scale: int) -> Any:
    """An integer is `value * scale`; anything else (a float, a bad value) goes on as it is,
    for the server's checks to judge."""
    return value / scale if isinstance(value, int) and not isinstance(value, bool) else value


def _uuid_hex(ids: Sequence[str]) -> str | None:
    """Canonical UUIDs as one string of their hex digits; None if any is not one."""
    out = []
    for text in ids:
        try:
            if str(uuid.UUID(text)) != text:
                return None
        except ValueError:
            return None
        out.append(text.replace("-", ""))
    return "".join(out)


_LOWER_HEX = re.compile(r"[0-9a-f]*\Z")


def _ids(data: dict[str, Any], n: int) -> list[Any]:
    packed = data.get("id_hex")
    if packed is None:
        return _column(data, "id", n)
    if not isinstance(packed, str) or len(packed) != 32 * n:
        raise WireError(f"id_hex must be {n} UUIDs of 32 hex digits")
    if _LOWER_HEX.match(packed):
        # As _uuid_hex wrote them: each cut into the canonical text, with no UUID made and
        # written out again (a fifth of a push's decoding).
        return [
            f"{packed[i : i + 8]}-{packed[i + 8 : i + 12]}-{packed[i + 12 : i + 16]}-"
            f"{packed[i + 16 : i + 20]}-{packed[i + 20 : i + 32]}"
            for i in range(0, len(packed), 32)
        ]
    try:
        return [str(uuid.UUID(packed[i : i + 32])) for i in range(0, len(packed), 32)]
    except ValueError:
        raise WireError("id_hex has a character that is not a hex digit") from None


def _check_int(value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise WireError(f"expected an integer, got {value!r}")


def _column(data: dict[str, Any], name: str, n: int, *, optional: bool = False) -> list[Any]:
    """The column `name` of n values; an optional column left out is n Nones."""
    value = data.get(name)
    if value is None:
        if optional:
            return [None] * n
        raise WireError(f"{name} is missing")
    if not isinstance(value, list):
        raise WireError(f"{name} must be a list")
    if len(value) != n:
        raise WireError(f"{name} has {len(value)} values; n is {n}")
    return value


def _count(data: Any, what: str) -> int:
    if not isinstance(data, dict):
        raise WireError(f"{what} must be an object")
    n = data.get("n")
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise WireError(f"{what}.n must be a count")
    return n


def _strings(values: Sequence[str]) -> str | list[str]:
    """One string when all are the same (the provider: nearly always "gps"), else the list."""
    return values[0] if values and all(v == values[0] for v in values) else list(values)


def _unstrings(data: dict[str, Any], name: str, n: int, default: str) -> list[Any]:
    value = data.get(name, default)
    if isinstance(value, str):
        return [value] * n
    return _column(data, name, n)


def _flags(values: Sequence[bool]) -> list[int]:
    """The indexes of the true ones (mock locations: nearly never)."""
    return [i for i, v in enumerate(values) if v]


def _unflags(data: dict[str, Any], name: str, n: int) -> list[bool]:
    indexes = data.get(name, [])
    if not isinstance(indexes, list):
        raise WireError(f"{name} must be a list of indexes")
    out = [False] * n
    for i in indexes:
        _check_int(i)
        if not 0 <= i < n:
            raise WireError(f"{name}: index {i} is outside 0..{n - 1}")
        out[i] = True
    return out


def _sparse(values: list[Any]) -> list[Any] | None:
    """A column of mostly None is left out when it is all None."""
    return None if all(v is None for v in values) else values


def _put(out: dict[str, Any], name: str, column: list[Any] | None) -> None:
    if column is not None:
        out[name] = column


def _guarded(what: str, decode: Callable[[], Any]) -> Any:
    try:
        return decode()
    except WireError as exc:
        raise WireError(f"{what}: {exc}") from None
    except (TypeError, ValueError, ArithmeticError, OverflowError) as exc:
        raise WireError(f"{what}: {exc}") from None


# ------------------------------------------------------------------------------ the track


def encode_track(points: Sequence[wire.TrackPoint]) -> dict[str, Any]:
    """A track as columns of delta-encoded integers (see the module's docstring)."""
    out: dict[str, Any] = {
        "n": len(points),
        "t": deltas([micros(p.t) for p in points]),
        "lat": deltas([e6(p.lat) for p in points]),
        "lon": deltas([e6(p.lon) for p in points]),
    }
    _put(
        out,
        "acc",
        _sparse([None if p.accuracy_m is None else math.ceil(p.accuracy_m) for p in points]),
    )
    # Speed in tenths of a metre a second; the recorder sends none today.
    _put(out, "speed", _sparse([None if p.speed is None else round(p.speed * 10) for p in points]))
    if points:
        out["provider"] = _strings([p.provider for p in points])
    _put(out, "mock", _flags([p.mock for p in points]) or None)
    return out


def decode_track(data: Any) -> list[dict[str, Any]]:
    """The points of an encoded track, as v1 items (times aware, in UTC): the server checks
    each one as it checks a v1 point, and refuses a bad one by its index."""
    return list(_guarded("track", lambda: _decode_track(data)))


def _decode_track(data: Any) -> list[dict[str, Any]]:
    n = _count(data, "track")
    times = undeltas(_column(data, "t", n))
    lats = undeltas(_column(data, "lat", n))
    lons = undeltas(_column(data, "lon", n))
    accuracies = _column(data, "acc", n, optional=True)
    speeds = _column(data, "speed", n, optional=True)
    providers = _unstrings(data, "provider", n, "gps")
    mocks = _unflags(data, "mock", n)
    points = []
    for i in range(n):
        t, lat, lon = times[i], lats[i], lons[i]
        if t is None or lat is None or lon is None:
            raise WireError(f"point {i}: t, lat and lon may not be null")
        for value in (accuracies[i], speeds[i]):
            if value is not None:
                _check_int(value)
        points.append(
            {
                "t": from_micros(t),
                "lat": lat / LATLON_SCALE,
                "lon": lon / LATLON_SCALE,
                "accuracy_m": None if accuracies[i] is None else float(accuracies[i]),
                "speed": None if speeds[i] is None else speeds[i] / 10,
                "provider": providers[i],
                "mock": mocks[i],
            }
        )
    return points


# ------------------------------------------------------------------------------ readings


def encode_readings(readings: Sequence[wire.Reading]) -> dict[str, Any]:
    """Readings as columns, exact: times as microseconds (confirmed and fix times after the
    read), fixes with their floats."""
    read = [micros(r.read_at) for r in readings]
    fixes = [r.fix for r in readings]
    ids = [r.id for r in readings]
    packed = _uuid_hex(ids)
    out: dict[str, Any] = {
        "n": len(readings),
        **({"id": ids} if packed is None else {"id_hex": packed}),
        "assignment_id": deltas([r.assignment_id for r in readings]),
        "meter_id": deltas([r.meter_id for r in readings]),
        "read_at": deltas(read),
        "confirmed_after": [
            micros(r.confirmed_at) - t for r, t in zip(readings, read, strict=True)
        ],
    }
    _put(out, "value", _sparse([None if r.value is None else str(r.value) for r in readings]))
    _put(out, "skip_code", _sparse([r.skip_code for r in readings]))
    _put(out, "note", _sparse([r.note for r in readings]))
    _put(out, "reread_of", _sparse([r.reread_of for r in readings]))
    if any(f is not None for f in fixes):
        out["fix"] = {
            "lat": [None if f is None else _scaled(f.lat, LATLON_SCALE) for f in fixes],
            "lon": [None if f is None else _scaled(f.lon, LATLON_SCALE) for f in fixes],
            "acc": [None if f is None else _scaled(f.accuracy_m, 10) for f in fixes],
            "after": [
                None if f is None else micros(f.fix_time) - t
                for f, t in zip(fixes, read, strict=True)
            ],
            "provider": _strings([f.provider if f is not None else "gps" for f in fixes]),
        }
        _put(out["fix"], "mock", _flags([f is not None and f.mock for f in fixes]) or None)
    return out


def decode_readings(data: Any) -> list[dict[str, Any]]:
    """The readings of `encode_readings` as v1 items, for the server to check one by one."""
    return list(_guarded("readings", lambda: _decode_readings(data)))


def _decode_readings(data: Any) -> list[dict[str, Any]]:
    n = _count(data, "readings")
    ids = _ids(data, n)
    assignments = undeltas(_column(data, "assignment_id", n))
    meters = undeltas(_column(data, "meter_id", n))
    read = undeltas(_column(data, "read_at", n))
    confirmed = _column(data, "confirmed_after", n)
    values = _column(data, "value", n, optional=True)
    skips = _column(data, "skip_code", n, optional=True)
    notes = _column(data, "note", n, optional=True)
    rereads = _column(data, "reread_of", n, optional=True)
    fixes = _decode_fixes(data.get("fix"), n, read)
    items = []
    for i in range(n):
        t = read[i]
        if t is None:
            raise WireError(f"reading {i}: read_at may not be null")
        _check_int(confirmed[i])
        item: dict[str, Any] = {
            "id": ids[i],
            "assignment_id": assignments[i],
            "meter_id": meters[i],
            "read_at": from_micros(t),
            "confirmed_at": from_micros(t + confirmed[i]),
            "value": values[i],
            "skip_code": skips[i],
            "note": notes[i],
            "fix": fixes[i],
            "reread_of": rereads[i],
        }
        items.append(item)
    return items


def _decode_fixes(data: Any, n: int, read: list[int | None]) -> list[dict[str, Any] | None]:
    if data is None:
        return [None] * n
    if not isinstance(data, dict):
        raise WireError("fix must be an object")
    lats, lons = _column(data, "lat", n), _column(data, "lon", n)
    accuracies, after = _column(data, "acc", n), _column(data, "after", n)
    providers = _unstrings(data, "provider", n, "gps")
    mocks = _unflags(data, "mock", n)
    out: list[dict[str, Any] | None] = []
    for i in range(n):
        if lats[i] is None:
            out.append(None)
            continue
        t = read[i]
        _check_int(after[i])
        if t is None:
            raise WireError(f"reading {i}: read_at may not be null")
        out.append(
            {
                "lat": _unscaled(lats[i], LATLON_SCALE),
                "lon": _unscaled(lons[i], LATLON_SCALE),
                "accuracy_m": _unscaled(accuracies[i], 10),
                "fix_time": from_micros(t + after[i]),
                "provider": providers[i],
                "mock": mocks[i],
            }
        )
    return out


# ------------------------------------------------------------------------------ the push


def encode_push(push: wire.Push) -> dict[str, Any]:
    """A v2 push body: readings and track compact, job events (few, and rich) as in v1."""
    out: dict[str, Any] = {
        "readings": encode_readings(push.readings),
        "track": encode_track(push.track_points),
        "job_events": [e.to_json() for e in push.job_events],
    }
    if push.sent_at is not None:
        out["sent_at"] = wire.iso(push.sent_at)
    return out


def decode_push(data: dict[str, Any]) -> dict[str, Any]:
    """A v2 push body as the v1 body it stands for (items as dicts, for the server's checks)."""
    out = {k: v for k, v in data.items() if k not in ("readings", "track")}
    out["readings"] = decode_readings(data["readings"]) if "readings" in data else []
    out["track_points"] = decode_track(data["track"]) if "track" in data else []
    return out


# ------------------------------------------------------------------------------ the answer


def ranges(indexes: Sequence[int]) -> list[list[int]]:
    """Increasing indexes as [first, last] runs: 0..299 accepted is [[0, 299]]."""
    out: list[list[int]] = []
    for i in indexes:
        if out and out[-1][1] == i - 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return out


def encode_answer(answer: dict[str, Any]) -> dict[str, Any]:
    """A v1 push answer (its JSON) made compact: the statuses of the results as ranges of their
    index, refusals whole (with the index they answer), the track's counts as they are."""
    accepted, duplicate, refused = [], [], []
    for i, result in enumerate(answer["results"]):
        if result["status"] == "accepted":
            accepted.append(i)
        elif result["status"] == "duplicate":
            duplicate.append(i)
        else:
            # The device knows each item's id by its index.
            fields = {k: v for k, v in result.items() if v is not None and k != "id"}
            refused.append({"index": i} | fields)
    out = {
        "n": len(answer["results"]),
        "accepted": ranges(accepted),
        "duplicate": ranges(duplicate),
        "rejected": refused,
        "track": answer["track"],
    }
    if answer.get("data_epoch") is not None:
        out["data_epoch"] = answer["data_epoch"]
    return out


def decode_answer(data: Any, ids: Sequence[str]) -> wire.PushAnswer:
    """A compact answer as the v1 PushAnswer, its results in the order of `ids` (what was
    pushed: readings, then job events)."""
    answer: wire.PushAnswer = _guarded("answer", lambda: _decode_answer(data, ids))
    return answer


def _decode_answer(data: Any, ids: Sequence[str]) -> wire.PushAnswer:
    n = _count(data, "answer")
    if n != len(ids):
        raise WireError(f"{n} results for {len(ids)} items pushed")
    results: list[wire.PushResult | None] = [None] * n
    for status in ("accepted", "duplicate"):
        runs = data.get(status, [])
        if not isinstance(runs, list):
            raise WireError(f"{status} must be a list of ranges")
        for run in runs:
            if not (isinstance(run, list) and len(run) == 2):
                raise WireError(f"{status}: {run!r} is not a [first, last] range")
            first, last = run
            _check_int(first)
            _check_int(last)
            if not 0 <= first <= last < n:
                raise WireError(f"{status}: range {run} is outside 0..{n - 1}")
            for i in range(first, last + 1):
                results[i] = wire.PushResult(id=ids[i], status=status)
    refused = data.get("rejected", [])
    if not isinstance(refused, list):
        raise WireError("rejected must be a list")
    for item in refused:
        if not isinstance(item, dict):
            raise WireError("a rejected item must be an object")
        index = item.get("index")
        if not isinstance(index, int) or isinstance(index, bool):
            raise WireError(f"rejected: index {index!r} is not an integer")
        if not 0 <= index < n:
            raise WireError(f"rejected: index {index} is outside 0..{n - 1}")
        fields = {k: v for k, v in item.items() if k != "index"}
        results[index] = wire.PushResult.from_json(fields | {"id": ids[index]})
    missing = [i for i, r in enumerate(results) if r is None]
    if missing:
        raise WireError(f"no result for item(s) {ranges(missing)}")
    return wire.PushAnswer(
        results=tuple(r for r in results if r is not None),
        track=wire.TrackResult.from_json(data.get("track", {})),
        data_epoch=data.get("data_epoch"),
    )
