"""The one place server and handheld read the time.

Every "now" in Gridwalk comes from `now()`: the server stamping what arrived, the validation
judging a window, the handheld dating a reading. A test (or `gridwalk demo --today`) can then
set the time by freezing or moving this clock, instead of depending on the day it runs; the
standard library only, so that it ships in the handheld's APK.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta


class Clock:
    """The wall clock, or a frozen instant that only moves when told to."""

    def __init__(self) -> None:
        self._frozen: datetime | None = None
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """The current time, timezone-aware in UTC."""
        frozen = self._frozen
        return datetime.now(UTC) if frozen is None else frozen

    @property
    def is_frozen(self) -> bool:
        return self._frozen is not None

    def freeze(self, at: datetime) -> None:
        """Stop the clock at `at` (aware) until `advance`, another `freeze` or `follow_system`."""
        if at.tzinfo is None:
            raise ValueError("a clock is frozen at an aware time, not a naive one")
        with self._lock:
            self._frozen = at.astimezone(UTC)

    def advance(self, delta: timedelta) -> datetime:
        """Move a frozen clock by `delta` and return the new time."""
        with self._lock:
            if self._frozen is None:
                raise RuntimeError("only a frozen clock can be moved")
            self._frozen += delta
            return self._frozen

    def follow_system(self) -> None:
        """Read the machine's clock again."""
        with self._lock:
            self._frozen = None

    @contextmanager
    def frozen_at(self, at: datetime) -> Iterator[Clock]:
        """Freeze at `at` for a block, then go back to what the clock was doing."""
        before = self._frozen
        self.freeze(at)
        try:
            yield self
        finally:
            with self._lock:
                self._frozen = before


clock = Clock()


def now() -> datetime:
    """The current time (UTC, aware), as the one clock says."""
    return clock.now()
