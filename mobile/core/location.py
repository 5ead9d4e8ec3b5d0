"""Where the handheld is: one small interface, three sources, and the track recorder.

`LocationSource.configure(on_location, on_status)`, `start()`, `stop()`. Callbacks may arrive on
another thread (plyer's do): whoever touches widgets from them must hop to the main thread.
- `PlyerSource`: the platform GPS through plyer (Android); on a desktop plyer has no GPS.
- `GpxReplaySource`: plays a GPX track, at real or accelerated speed, stamped with the time of
  playing (a demo walk is a walk happening now).
- `FixedSource`: one position, repeated (a desk, a test).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import gpxpy

from common import clock
from common.geo import distance_m
from common.wire import Fix
from mobile.core.language import _
from mobile.core.store import Store

OnLocation = Callable[[Fix], None]
OnStatus = Callable[[str, str], None]  # (status, message), e.g. ("unavailable", "no GPS")


class LocationSource(ABC):
    """A source of fixes."""

    # Not the device's own GPS: a recorded walk or a fixed point (demos, tests), said on screen.
    simulated: str | None = None

    def __init__(self) -> None:
        self._on_location: OnLocation = lambda _fix: None
        self._on_status: OnStatus = lambda _status, _message: None

    def configure(self, on_location: OnLocation, on_status: OnStatus) -> None:
        self._on_location = on_location
        self._on_status = on_status

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def stop(self) -> None: ...


class PlyerSource(LocationSource):
    """The platform's GPS through plyer. Where plyer has none (a desktop), says so."""

    def __init__(self, min_time_ms: int = 1000, min_distance_m: float = 0) -> None:
        super().__init__()
        self.min_time_ms = min_time_ms
        self.min_distance_m = min_distance_m
        self._gps: Any = None

    def configure(self, on_location: OnLocation, on_status: OnStatus) -> None:
        super().configure(on_location, on_status)
        try:
            from plyer import gps

            gps.configure(on_location=self._location, on_status=self._status)
        except (NotImplementedError, ImportError, ModuleNotFoundError):
            self._gps = None
            on_status("unavailable", _("This device has no GPS: readings carry no position."))
            return
        self._gps = gps

    def _location(self, **kwargs: Any) -> None:
        # Android marks fixes from a mock provider; plyer passes what the platform gives.
        self._on_location(
            Fix(
                lat=float(kwargs["lat"]),
                lon=float(kwargs["lon"]),
                accuracy_m=float(kwargs.get("accuracy") or 0),
                fix_time=clock.now(),
                provider=str(kwargs.get("provider", "gps")),
                mock=bool(kwargs.get("mock", False)),
            )
        )

    def _status(self, stype: str, status: Any) -> None:
        self._on_status(str(stype), str(status))

    def start(self) -> None:
        if self._gps is not None:
            self._gps.start(minTime=self.min_time_ms, minDistance=self.min_distance_m)

    def stop(self) -> None:
        if self._gps is not None:
            self._gps.stop()


@dataclass(frozen=True)
class ReplayPoint:
    offset_s: float  # seconds after the first point
    lat: float
    lon: float
    accuracy_m: float


def load_gpx(path: str | Path) -> list[ReplayPoint]:
    """The points of a GPX file's tracks (or route, or waypoints), with their time offsets."""
    with open(path, encoding="utf-8") as f:
        gpx = gpxpy.parse(f)
    raw: list[Any] = [p for t in gpx.tracks for s in t.segments for p in s.points]
    raw = raw or [p for r in gpx.routes for p in r.points] or list(gpx.waypoints)
    if not raw:
        raise ValueError(f"{path}: no track points")
    start = raw[0].time
    points = []
    for i, p in enumerate(raw):
        # Without times, walk at one point every 5 s.
        offset = (p.time - start).total_seconds() if p.time and start else i * 5.0
        accuracy = float(p.horizontal_dilution or 0) * 5 or 5.0
        points.append(ReplayPoint(offset, p.latitude, p.longitude, accuracy))
    return points


class GpxReplaySource(LocationSource):
    simulated = "replay"
    """Plays a GPX walk `speed` times faster than it was recorded, stamped with now.

    The walk can be held where it is (`pause`) and go on later (`resume`), as a reader stands
    at a meter while typing: a presenter's demo, or a test that must not race the walk."""

    provider = "replay"

    def __init__(self, path: str | Path, *, speed: float = 1.0, loop: bool = False) -> None:
        super().__init__()
        if speed <= 0:
            raise ValueError("replay speed must be above zero")
        self.points = load_gpx(path)
        self.speed = speed
        self.loop = loop
        self._stop = threading.Event()
        self._walking = threading.Event()
        self._walking.set()
        self._thread: threading.Thread | None = None
        self.done = threading.Event()

    def pause(self) -> None:
        """Hold the walk after the fix just given (from any thread, the replay's own too)."""
        self._walking.clear()

    def resume(self) -> None:
        self._walking.set()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._on_status(
            "provider-enabled",
            _("Replaying a recorded walk ({points} points, x{speed}): not a live GPS").format(
                points=len(self.points), speed=f"{self.speed:g}"
            ),
        )
        self._thread = threading.Thread(target=self._play, name="gpx-replay", daemon=True)
        self._thread.start()

    def _play(self) -> None:
        while True:
            previous = 0.0
            for point in self.points:
                if self._stop.wait(max(0.0, (point.offset_s - previous) / self.speed)):
                    return
                while not self._walking.wait(0.1):
                    if self._stop.is_set():
                        return
                previous = point.offset_s
                self._on_location(
                    Fix(
                        lat=point.lat,
                        lon=point.lon,
                        accuracy_m=point.accuracy_m,
                        fix_time=clock.now(),
                        provider=self.provider,
                        mock=False,
                    )
                )
            if not self.loop:
                self.done.set()
                self._on_status("provider-disabled", _("The recorded walk has ended."))
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


class FixedSource(LocationSource):
    simulated = "fixed"
    """One position, given every `interval_s` seconds."""

    provider = "fixed"

    def __init__(
        self, lat: float, lon: float, *, accuracy_m: float = 5.0, interval_s: float = 5.0
    ) -> None:
        super().__init__()
        self.lat, self.lon, self.accuracy_m, self.interval_s = lat, lon, accuracy_m, interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="fixed-location", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            self._on_location(
                Fix(
                    lat=self.lat,
                    lon=self.lon,
                    accuracy_m=self.accuracy_m,
                    fix_time=clock.now(),
                    provider=self.provider,
                    mock=False,
                )
            )
            if self._stop.wait(self.interval_s):
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def parse_fixed(text: str) -> tuple[float, float]:
    """'LAT,LON' as given to --fixed."""
    try:
        lat_text, lon_text = text.split(",")
        lat, lon = float(lat_text), float(lon_text)
    except ValueError:
        raise ValueError(f"--fixed wants LAT,LON, got {text!r}") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValueError(f"--fixed {text!r} is not a position on Earth")
    return lat, lon


class TrackRecorder:
    """Keeps the latest fix, and records a track point every `interval_s` seconds (or sooner
    after `min_distance_m` of movement) while recording is on (a route or a job is open)."""

    def __init__(
        self,
        store: Store,
        *,
        interval_s: float = 5.0,
        min_distance_m: float = 3.0,
        max_fix_age_s: float = 120.0,
    ) -> None:
        self.store = store
        self.interval = timedelta(seconds=interval_s)
        self.min_distance_m = min_distance_m
        self.max_fix_age = timedelta(seconds=max_fix_age_s)
        self.recording = False
        self.latest: Fix | None = None
        self._last_recorded: Fix | None = None
        self._lock = threading.Lock()
        self._store_lock = threading.Lock()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """No point is written while the store changes hands (a user logs in on a shared
        handheld): the GPS thread waits, then writes to the new owner's store."""
        with self._store_lock:
            yield

    def on_location(self, fix: Fix) -> None:
        with self._lock:
            self.latest = fix
            if not self.recording:
                return
            last = self._last_recorded
            if last is not None:
                elapsed = fix.fix_time - last.fix_time
                moved = distance_m(last.lat, last.lon, fix.lat, fix.lon)
                walking = elapsed >= self.interval and moved >= self.min_distance_m
                # Standing still at a meter: a point every few intervals is witness enough.
                if not walking and elapsed < self.interval * 6:
                    return
            self._last_recorded = fix
        with self._store_lock:
            self.store.add_track_point(
                t=fix.fix_time,
                lat=fix.lat,
                lon=fix.lon,
                accuracy_m=fix.accuracy_m,
                provider=fix.provider,
                mock=fix.mock,
            )

    def current_fix(self, at: datetime | None = None) -> Fix | None:
        """The latest fix if it is fresh enough to stand beside a reading."""
        fix = self.latest
        if fix is None or (at or clock.now()) - fix.fix_time > self.max_fix_age:
            return None
        return fix
