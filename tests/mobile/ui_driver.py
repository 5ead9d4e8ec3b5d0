"""Drives the real handheld app in a real window (under Xvfb): what a reader's thumb does.

Run by tests/mobile/test_handheld_ui.py as a subprocess (Kivy owns its process's main loop):
    python -m tests.mobile.ui_driver SCENARIO.json
The scenario names the server, the user, the data dir, the GPX walk and where to put
screenshots; the driver writes what it did to the result file the scenario names.
Each step waits (polling, with a deadline) for what a person would wait to see, then taps.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Generator
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from common.wire import Fix
from mobile.core.location import GpxReplaySource, OnLocation, OnStatus

Step = Generator[float | Callable[[], bool], None, None]


class Harness:
    """The app under test and the thumb that drives it."""

    def __init__(self, scenario: dict[str, Any]):
        from kivy.core.window import Window

        from mobile.core.field import FieldSession, FieldSettings
        from mobile.core.location import FixedSource, LocationSource
        from mobile.ui.app import HandheldApp

        self.window = Window
        self.shots = Path(scenario["screenshots"])
        self.shots.mkdir(parents=True, exist_ok=True)
        self.result: dict[str, Any] = {
            "screenshots": [],
            "confirmed": [],
            "skipped": [],
            "error": None,
        }
        self.link = LinkProxy(scenario["server"])
        source: LocationSource
        self.walk: ReaderWalk | None = None
        if scenario.get("gpx"):
            source = self.walk = ReaderWalk(scenario["gpx"], speed=scenario["speed"])
            source.pause()  # the reader sets off when the route is open
        else:
            source = FixedSource(*scenario["fixed"], interval_s=1)
        # Replayed faster, the walk must be sampled faster too, or it leaves too few points.
        settings = FieldSettings(
            track_interval_s=scenario.get("track_interval_s", 5.0), sync_interval_s=2.0
        )
        self.field = FieldSession(scenario["data_dir"], source, settings)
        self.app = HandheldApp(
            self.field, default_server=self.link.url, lang=scenario.get("lang", "en")
        )

    def shot(self, name: str) -> None:
        saved = self.window.screenshot(name=str(self.shots / f"{name}.png"))
        self.result["screenshots"].append(saved)
        self.check_touch_targets(name)

    def check_touch_targets(self, where: str) -> None:
        """Every control a thumb can reach on what is shown is at least 48 dp tall."""
        from kivy.metrics import dp
        from kivy.uix.button import Button
        from kivy.uix.textinput import TextInput

        shown = [self.app.root.current_screen]
        if self.app.question is not None and self.app.question._window is not None:
            shown.append(self.app.question)
        small = self.result.setdefault("small_targets", [])
        for top in shown:
            for widget in top.walk(restrict=True):
                if not isinstance(widget, Button | TextInput):
                    continue
                if widget.disabled or widget.opacity == 0 or widget.height == 0:
                    continue
                if widget.height < dp(48) - 0.5:
                    name = type(widget).__name__
                    small.append(f"{where}: {name} {widget.text!r} {widget.height}")

    @staticmethod
    def press(widget: Any) -> None:
        widget.dispatch("on_press")
        widget.dispatch("on_release")

    def screen(self, name: str) -> Callable[[], bool]:
        return lambda: self.app.root is not None and self.app.root.current == name

    def log_in(self, sc: dict[str, Any]) -> Step:
        yield self.screen("login")
        if sc.get("try_languages"):
            # The person picks the language on the first screen; every screen follows.
            shown = self.result.setdefault("login_button", [])
            for name in sc["try_languages"]:
                self.app.root.get_screen("login").ids.language.text = name
                yield lambda n=name: self.app.root.get_screen("login").ids.language.text == n
                yield 0.2
                shown.append(self.app.root.get_screen("login").ids.login_button.text)
            self.result["language_kept"] = self.field.store.setting("language")
        login = self.app.root.get_screen("login")
        login.ids.server.text = self.link.url
        login.ids.username.text = sc["username"]
        login.ids.password.text = sc["password"]
        yield 0.3
        self.shot("01-login")
        self.press(login.ids.login_button)
        yield self.screen("today")


class ReaderWalk(GpxReplaySource):
    """The replayed walk stops where a meter to read pops up, as a reader does, and goes on
    when the driver says the reading is done: the flow never races the walk, however slow the
    machine."""

    def __init__(self, path: str, *, speed: float) -> None:
        super().__init__(path, speed=speed)
        self.stop_here: Callable[[Fix], bool] = lambda _fix: False

    def configure(self, on_location: OnLocation, on_status: OnStatus) -> None:
        def deliver(fix: Fix) -> None:
            on_location(fix)
            if self.stop_here(fix):
                self.pause()  # in the replay's own thread: no later fix is given meanwhile

        super().configure(deliver, on_status)


class LinkProxy:
    """The handheld's data link: a TCP relay to the server that can be cut and restored."""

    def __init__(self, server_url: str):
        target = urlsplit(server_url)
        self.target = (target.hostname or "127.0.0.1", target.port or 80)
        self.up = True
        self._open: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        self.up = False
        for sock in list(self._open):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def restore(self) -> None:
        self.up = True

    def _accept(self) -> None:
        while True:
            client, _ = self._listener.accept()
            if not self.up:
                client.close()
                continue
            server = socket.create_connection(self.target)
            self._open |= {client, server}
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                self._open.discard(sock)
                with contextlib.suppress(OSError):
                    sock.close()


def reader_flow(h: Harness, sc: dict[str, Any]) -> Step:
    """Log in, walk the route, read meters through the pop-up, skip one, sync."""
    from mobile.core.language import SKIP_LABELS, label
    from mobile.core.route import plain

    yield from h.log_in(sc)
    today = h.app.root.get_screen("today")
    yield (
        lambda: (
            bool(h.field.store.assignments())
            and bool(today.ids.work.children)
            and hasattr(today.ids.work.children[-1], "assignment_id")
        )
    )
    yield 0.5
    h.shot("02-today")
    h.press(today.ids.work.children[-1])  # the first route
    yield h.screen("route")
    route = h.app.root.get_screen("route")
    assert h.walk is not None
    h.walk.stop_here = lambda _fix: h.field.nearest(route.assignment_id) is not None
    h.walk.resume()
    for n in range(sc["readings"]):
        yield lambda: route.nearest_id != 0
        meter = h.field.store.meter(route.assignment_id, route.nearest_id)
        yield 0.2
        if n == 0:
            h.shot("03-route-popup")
            h.result["texts"] = {
                "progress": route.ids.progress.text,
                "popup_title": route.ids.popup_title.text,
                "popup_button": route.ids.popup_button.text,
            }
        h.press(route.ids.popup_button)
        yield h.screen("reading")
        reading = h.app.root.get_screen("reading")
        value = plausible(meter)
        if n == 0:
            # A typo first: the check asks to type it again.
            reading.ids.value.text = plain(value * 10)
            h.press(reading.ids.confirm_button)
            yield lambda r=reading: r.ids.warning.text != ""
            h.shot("04-typo-check")
        reading.ids.value.text = plain(value)
        yield 0.2
        if n == 0:
            h.shot("05-reading")
        h.press(reading.ids.confirm_button)
        yield lambda: h.app.question is not None and h.app.question._window is not None
        if n == 0:
            h.shot("06-confirm-question")
        h.press(h.app.question.yes_button)
        yield lambda r=reading: r.locked and r.ids.locked.text != ""
        if n == 0:
            yield 0.5
            h.shot("07-locked")
            h.result["texts"]["locked"] = reading.ids.locked.text
            h.result["texts"]["next"] = reading.next_text
            assert reading.ids.entry.disabled, "a locked reading must not be editable"
            assert reading.ids.entry.opacity == 0
        h.result["confirmed"].append({"meter_id": meter.id, "value": plain(value)})
        h.press(reading.ids.back_button)
        yield h.screen("route")
        h.walk.resume()  # on to the next meter
    # Skip the last meter of the route from the list.
    last = route.ids.meters.children[0]
    h.press(last)
    yield h.screen("reading")
    reading = h.app.root.get_screen("reading")
    reading.ids.skip_code.text = label(SKIP_LABELS, "dog")
    reading.ids.skip_note.text = "dog in the yard"
    h.press(reading.ids.skip_button)
    yield lambda: h.app.question is not None and h.app.question._window is not None
    h.press(h.app.question.yes_button)
    yield lambda: reading.locked and reading.ids.locked.text != ""
    yield 0.5  # the question's popup fades out
    h.shot("08-skipped")
    h.result["skipped"].append({"meter_id": last.meter_id, "skip_code": "dog"})
    h.press(reading.ids.back_button)
    yield h.screen("route")
    yield 0.3
    h.shot("09-route-progress")
    h.press(route.ids.back_button)
    yield h.screen("today")
    h.press(today.ids.sync_button)
    yield (
        lambda: (
            h.field.store.sync_state().waiting == 0
            and h.field.store.sync_state().last_sync_at is not None
        )
    )
    today.refresh()
    yield 0.3
    h.shot("10-synced")
    h.result["track_points"] = h.field.store.track_count()
    h.result["readings"] = [
        {
            "id": r.id,
            "meter_id": r.meter_id,
            "value": str(r.value) if r.value is not None else None,
            "skip_code": r.skip_code,
            "sync_status": r.sync_status,
        }
        for r in h.field.store.readings()
    ]


def crew_flow(h: Harness, sc: dict[str, Any]) -> Step:
    """Log in, get the job, lose the link, start it, change the expected finish, finish it,
    get the link back and sync."""
    yield from h.log_in(sc)
    today = h.app.root.get_screen("today")
    yield (
        lambda: (
            bool(h.field.store.jobs())
            and any(getattr(b, "job_id", None) for b in today.ids.work.children)
        )
    )
    yield 0.3
    h.shot("02-today-job")
    h.link.cut()
    h.result["offline_from"] = now_iso()
    job_button = next(b for b in reversed(today.ids.work.children) if getattr(b, "job_id", None))
    h.press(job_button)
    yield h.screen("job")
    job = h.app.root.get_screen("job")
    yield 0.3
    h.shot("03-job")
    h.press(job.ids.start_button)
    yield lambda: job.status == "started"
    h.press(job.ids.eta_120)
    yield lambda: h.field.store.job(job.job_id).expected_finish is not None
    yield 0.2
    h.shot("04-started-offline")
    job.ids.note.text = "fuse replaced, supply restored"
    h.press(job.ids.finish_button)
    yield lambda: h.app.question is not None and h.app.question._window is not None
    h.press(h.app.question.yes_button)
    yield lambda: job.status == "finished"
    finish = h.field.store.job(job.job_id).expected_finish
    h.result["expected_finish"] = finish.isoformat() if finish else None
    h.press(job.ids.back_button)
    yield h.screen("today")
    yield lambda: bool(h.field.store.sync_state().last_error)  # the link is down: said so
    today.refresh()
    yield 0.3
    h.shot("05-offline-waiting")
    h.result["waiting_offline"] = h.field.store.sync_state().waiting
    h.link.restore()
    h.press(today.ids.sync_button)
    yield (
        lambda: (
            h.field.store.sync_state().waiting == 0
            and h.field.store.sync_state().last_error is None
        )
    )
    today.refresh()
    yield 0.3
    h.shot("06-synced")
    h.result["job_id"] = job.job_id
    h.result["events"] = h.field.store.job_events(job.job_id)


def now_iso() -> str:
    from common import clock
    from common.wire import iso

    return iso(clock.now())


def look_flow(h: Harness, sc: dict[str, Any]) -> Step:
    """Log in on a fresh handheld and look at a route as the office holds it: its progress,
    the list with its customers, and a meter read the day before on another handheld."""
    yield from h.log_in(sc)
    today = h.app.root.get_screen("today")
    route_code = sc["route_code"]
    yield lambda: any(
        getattr(b, "assignment_id", None) and b.text.startswith(route_code)
        for b in today.ids.work.children
    )
    yield 0.3
    h.shot("02-today")
    button = next(
        b
        for b in today.ids.work.children
        if getattr(b, "assignment_id", None) and b.text.startswith(route_code)
    )
    h.press(button)
    yield h.screen("route")
    route = h.app.root.get_screen("route")
    yield 0.5
    h.shot("03-route")
    h.result["texts"] = {"progress": route.ids.progress.text, "title": route.ids.title.text}
    first = route.ids.meters.children[-1]  # the first in the route's order
    h.result["texts"]["first_meter"] = first.text
    h.press(first)
    yield h.screen("reading")
    reading = h.app.root.get_screen("reading")
    yield lambda: reading.ids.locked.text != ""
    yield 0.3
    h.shot("04-read-elsewhere")
    h.result["texts"]["locked"] = reading.ids.locked.text
    h.result["texts"]["customer"] = reading.ids.customer.text


FLOWS = {"reader": reader_flow, "crew": crew_flow, "look": look_flow}


def main(scenario_path: str) -> int:
    sc = json.loads(Path(scenario_path).read_text())
    os.environ["KIVY_NO_ARGS"] = "1"
    from kivy.clock import Clock

    h = Harness(sc)
    steps = FLOWS[sc.get("flow", "reader")](h, sc)
    waiting: dict[str, Any] = {"until": None, "deadline": None}

    def tick(dt: float) -> None:
        now = time.monotonic()
        try:
            cond = waiting["until"]
            if callable(cond):
                if not cond():
                    if now > waiting["deadline"]:
                        raise TimeoutError(f"waited {sc['timeout']} s in vain")
                    return
            elif cond is not None and now < cond:
                return
            nxt = next(steps)
            if callable(nxt):
                waiting["until"], waiting["deadline"] = nxt, now + sc["timeout"]
            else:
                waiting["until"] = now + float(nxt)
        except StopIteration:
            finish()
        except Exception:  # any failure ends the run, with its traceback and a screenshot
            h.result["error"] = traceback.format_exc()
            try:
                h.shot("99-failure")
            finally:
                finish()

    def finish() -> None:
        Path(sc["result"]).write_text(json.dumps(h.result, indent=2))
        event.cancel()
        h.app.stop()

    event = Clock.schedule_interval(tick, 0.05)
    h.app.run()
    return 0 if h.result["error"] is None else 1


def plausible(meter: Any) -> Decimal:
    """A register inside the meter's expected range: last reading plus a usual cycle's use."""
    last = meter.last_reading or Decimal(0)
    low, high = meter.expected_low or Decimal(50), meter.expected_high or Decimal(400)
    used = ((low + high) / 2 / meter.multiplier).quantize(Decimal(1))
    return (last + used) % (Decimal(10) ** meter.digits)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
