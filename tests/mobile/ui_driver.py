"""Drives the real handheld app in a real window (under Xvfb): what a reader's thumb does.

Run by tests/mobile/test_handheld_ui.py as a subprocess (Kivy owns its process's main loop):
    python -m tests.mobile.ui_driver SCENARIO.json
The scenario names the server, the user, the data dir, the GPX walk and where to put
screenshots; the driver writes what it did to the result file the scenario names.
Each step waits (polling, with a deadline) for what a person would wait to see, then taps.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable, Generator
from decimal import Decimal
from pathlib import Path
from typing import Any

Step = Generator[float | Callable[[], bool], None, None]


def main(scenario_path: str) -> int:
    scenario = json.loads(Path(scenario_path).read_text())
    os.environ["KIVY_NO_ARGS"] = "1"
    from kivy.clock import Clock
    from kivy.core.window import Window

    from mobile.core.field import FieldSession, FieldSettings
    from mobile.core.location import GpxReplaySource
    from mobile.core.route import plain
    from mobile.ui.app import HandheldApp

    shots = Path(scenario["screenshots"])
    shots.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"screenshots": [], "confirmed": [], "skipped": [], "error": None}
    source = GpxReplaySource(scenario["gpx"], speed=scenario["speed"])
    # Replayed faster, the walk must be sampled faster too, or it leaves too few points.
    settings = FieldSettings(track_interval_s=scenario["track_interval_s"])
    field = FieldSession(scenario["data_dir"], source, settings)
    app = HandheldApp(field, default_server=scenario["server"])

    def shot(name: str) -> None:
        saved = Window.screenshot(name=str(shots / f"{name}.png"))
        result["screenshots"].append(saved)

    def press(widget: Any) -> None:
        widget.dispatch("on_press")
        widget.dispatch("on_release")

    def screen(name: str) -> Callable[[], bool]:
        return lambda: app.root is not None and app.root.current == name

    def scenario_steps() -> Step:
        yield screen("login")
        login = app.root.get_screen("login")
        login.ids.server.text = scenario["server"]
        login.ids.username.text = scenario["username"]
        login.ids.password.text = scenario["password"]
        yield 0.3
        shot("01-login")
        press(login.ids.login_button)
        yield screen("today")
        today = app.root.get_screen("today")
        yield (
            lambda: (
                bool(field.store.assignments())
                and bool(today.ids.work.children)
                and "left" in today.ids.work.children[-1].text
            )
        )
        yield 0.5
        shot("02-today")
        press(today.ids.work.children[-1])  # the first route
        yield screen("route")
        route = app.root.get_screen("route")
        for n in range(scenario["readings"]):
            yield lambda: route.nearest_id != 0
            meter = field.store.meter(route.assignment_id, route.nearest_id)
            yield 0.2
            if n == 0:
                shot("03-route-popup")
            press(route.ids.popup_button)
            yield screen("reading")
            reading = app.root.get_screen("reading")
            value = plausible(meter)
            if n == 0:
                # A typo first: the check asks to type it again.
                reading.ids.value.text = plain(value * 10)
                press(reading.ids.confirm_button)
                yield lambda r=reading: "again" in r.ids.warning.text
                shot("04-typo-check")
            reading.ids.value.text = plain(value)
            yield 0.2
            if n == 0:
                shot("05-reading")
            press(reading.ids.confirm_button)
            yield lambda: app.question is not None and app.question._window is not None
            if n == 0:
                shot("06-confirm-question")
            press(app.question.yes_button)
            yield lambda r=reading: r.ids.locked.text.startswith("LOCKED")
            if n == 0:
                yield 0.5
                shot("07-locked")
                assert reading.ids.entry.disabled, "a locked reading must not be editable"
                assert reading.ids.entry.opacity == 0
            result["confirmed"].append({"meter_id": meter.id, "value": plain(value)})
            press(reading.ids.back_button)
            yield screen("route")
        # Skip the last meter of the route from the list.
        last = route.ids.meters.children[0]
        press(last)
        yield screen("reading")
        reading = app.root.get_screen("reading")
        reading.ids.skip_code.text = "dog"
        reading.ids.skip_note.text = "dog in the yard"
        press(reading.ids.skip_button)
        yield lambda: app.question is not None and app.question._window is not None
        press(app.question.yes_button)
        yield lambda: reading.ids.locked.text.startswith("LOCKED")
        yield 0.5  # the question's popup fades out
        shot("08-skipped")
        result["skipped"].append({"meter_id": last.meter_id, "skip_code": "dog"})
        press(reading.ids.back_button)
        yield screen("route")
        yield 0.3
        shot("09-route-progress")
        press(route.ids.back_button)
        yield screen("today")
        press(today.ids.sync_button)
        yield (
            lambda: (
                field.store.sync_state().waiting == 0
                and field.store.sync_state().last_sync_at is not None
            )
        )
        today.refresh()
        yield 0.3
        shot("10-synced")
        result["track_points"] = field.store.track_count()
        result["readings"] = [
            {
                "id": r.id,
                "meter_id": r.meter_id,
                "value": str(r.value) if r.value is not None else None,
                "skip_code": r.skip_code,
                "sync_status": r.sync_status,
            }
            for r in field.store.readings()
        ]

    steps = scenario_steps()
    waiting: dict[str, Any] = {"until": None, "deadline": None}

    def tick(dt: float) -> None:
        import time

        now = time.monotonic()
        try:
            cond = waiting["until"]
            if callable(cond):
                if not cond():
                    if now > waiting["deadline"]:
                        raise TimeoutError(f"waited {scenario['timeout']} s in vain")
                    return
            elif cond is not None and now < cond:
                return
            nxt = next(steps)
            if callable(nxt):
                waiting["until"], waiting["deadline"] = nxt, now + scenario["timeout"]
            else:
                waiting["until"] = now + float(nxt)
        except StopIteration:
            finish()
        except Exception:  # any failure ends the run, with its traceback and a screenshot
            result["error"] = traceback.format_exc()
            try:
                shot("99-failure")
            finally:
                finish()

    def finish() -> None:
        Path(scenario["result"]).write_text(json.dumps(result, indent=2))
        event.cancel()
        app.stop()

    event = Clock.schedule_interval(tick, 0.05)
    app.run()
    return 0 if result["error"] is None else 1


def plausible(meter: Any) -> Decimal:
    """A register inside the meter's expected range: last reading plus a usual cycle's use."""
    last = meter.last_reading or Decimal(0)
    low, high = meter.expected_low or Decimal(50), meter.expected_high or Decimal(400)
    used = ((low + high) / 2 / meter.multiplier).quantize(Decimal(1))
    return (last + used) % (Decimal(10) ** meter.digits)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
