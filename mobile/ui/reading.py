"""The reader's screens: today's work, a route with the customer where the reader stands,
and the reading (typed, checked, confirmed and locked, or skipped with a reason)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from kivy.clock import Clock
from kivy.factory import Factory
from kivy.properties import BooleanProperty, ListProperty, NumericProperty, ObjectProperty

from common.wire import SKIP_CODES
from mobile.core.field import EntryError
from mobile.core.route import plain
from mobile.core.views import MeterView, StoreError
from mobile.ui.base import GridwalkScreen, ask, when


class TodayScreen(GridwalkScreen):
    def on_pre_enter(self, *_: Any) -> None:
        self.refresh()

    def refresh(self, *_: Any) -> None:
        field = self.field
        self.ids.title.text = f"Today - {field.username or ''}"
        state = field.store.sync_state()
        lines = [f"Waiting to send: {state.waiting}", f"Last sync: {when(state.last_sync_at)}"]
        if state.rejected:
            lines.append(f"Refused by the office: {state.rejected} (see the meter)")
        if state.last_error:
            lines.append(f"Last error: {state.last_error}")
        self.ids.sync_state.text = "\n".join(lines)
        _status, message = field.gps_status
        fix = field.here()
        self.ids.gps_state.text = (
            f"GPS: {fix.lat:.5f}, {fix.lon:.5f} (+/-{fix.accuracy_m:.0f} m)"
            if fix
            else f"GPS: {message or 'waiting for a fix'}"
        )
        work = self.ids.work
        work.clear_widgets()
        for a in field.store.assignments():
            button = Factory.BigButton(
                text=f"{a.route_code}  {a.cycle}   read {a.read} / skipped {a.skipped} / "
                f"left {a.left}"
            )
            button.assignment_id = a.id
            button.bind(on_release=lambda b: self.app.open_route(b.assignment_id))
            work.add_widget(button)
        for j in field.store.jobs():
            button = Factory.BigButton(
                text=f"{j.urgency.upper()} {j.kind}: {j.content[:28]}  [{j.status}]"
            )
            if j.status in ("finished", "cancelled"):
                button.background_color = (0.55, 0.6, 0.66, 1)
            button.job_id = j.id
            button.bind(on_release=lambda b: self.app.open_job(b.job_id))
            work.add_widget(button)
        if field.role in ("crew", "supervisor"):
            new = Factory.QuietButton(text="+ New job here")
            new.bind(on_release=lambda _b: self.app.show("new_job"))
            work.add_widget(new)
        if not work.children:
            work.add_widget(Factory.Caption(text="No work yet: sync when there is a link."))

    def sync_now(self) -> None:
        self.field.sync_now()
        self.ids.sync_state.text += "\nSyncing..."

    def logout(self) -> None:
        self.field.logout()
        self.app.show("login")


class RouteScreen(GridwalkScreen):
    assignment_id = NumericProperty(0)
    nearest_id = NumericProperty(0)

    def on_pre_enter(self, *_: Any) -> None:
        self.field.open_route()
        self.refresh()
        self._tick = Clock.schedule_interval(self.update_nearest, 1.0)

    def on_leave(self, *_: Any) -> None:
        self._tick.cancel()

    def back(self) -> None:
        self.field.close_route()
        self.app.show("today")

    def refresh(self, *_: Any) -> None:
        assignment = next(
            (a for a in self.field.store.assignments() if a.id == self.assignment_id), None
        )
        if assignment is None:
            self.app.show("today")
            return
        self.ids.title.text = f"{assignment.route_code} {assignment.route_name}"
        self.ids.progress.text = (
            f"read {assignment.read}, skipped {assignment.skipped}, "
            f"left {assignment.left} of {assignment.total}"
        )
        box = self.ids.meters
        box.clear_widgets()
        for m in self.field.store.meters(self.assignment_id):
            mark = {"read": "DONE ", "skipped": "SKIP "}.get(m.status, "")
            if m.reread_order_id:
                mark = "RE-READ "
            button = Factory.QuietButton(
                text=f"{mark}{m.sequence}  {m.meter_no}  {m.customer_name}", halign="left"
            )
            button.text_size = (None, None)
            button.meter_id = m.id
            if m.done:
                button.background_color = (0.80, 0.92, 0.84, 1)
            button.bind(on_release=lambda b: self.app.open_meter(self.assignment_id, b.meter_id))
            box.add_widget(button)
        self.update_nearest()

    def update_nearest(self, *_: Any) -> None:
        near = self.field.nearest(self.assignment_id)
        if near is None:
            self.nearest_id = 0
            fix = self.field.here()
            self.ids.popup_title.text = "No meter to read here"
            self.ids.popup_body.text = (
                "Walk to the next meter: its customer pops up here."
                if fix
                else "Waiting for a GPS fix..."
            )
            return
        meter, distance = near
        self.nearest_id = meter.id
        self.ids.popup_title.text = f"{meter.customer_name}  ({distance:.0f} m)"
        last = plain(meter.last_reading)
        self.ids.popup_body.text = (
            f"{meter.address}\nAccount {meter.account_no}   "
            f"Meter {meter.meter_no}\nLast reading {last}"
        )

    def read_nearest(self) -> None:
        if self.nearest_id:
            self.app.open_meter(self.assignment_id, self.nearest_id)


class ReadingScreen(GridwalkScreen):
    meter: MeterView | None = ObjectProperty(None, allownone=True)
    skip_codes = ListProperty(list(SKIP_CODES))
    locked = BooleanProperty(False)

    def show(self, meter: MeterView) -> None:
        self.meter = meter
        self._first_entry: Decimal | None = None
        self.ids.title.text = f"Meter {meter.meter_no}"
        last = plain(meter.last_reading)
        self.ids.customer.text = (
            f"{meter.customer_name}\n{meter.address}\nAccount "
            f"{meter.account_no}   Last reading {last}"
        )
        self.ids.task.text = (
            f"Re-read ordered: {meter.reread_reason}" if meter.reread_order_id else ""
        )
        self.ids.warning.text = ""
        self.ids.skip_code.text = "why not read?"
        self.ids.skip_note.text = ""
        locked = meter.done
        self._set_locked(locked)
        if not locked:
            draft = self.field.store.draft(meter.assignment_id, meter.id)
            self.ids.value.text = plain(draft.value) if draft and draft.value is not None else ""

    def _set_locked(self, locked: bool) -> None:
        self.locked = locked
        meter = self.meter
        if locked and meter is not None:
            fresh = self.field.store.meter(meter.assignment_id, meter.id)
            reading = self.field.store.reading(fresh.reading_id) if fresh.reading_id else None
            what = (
                f"{plain(reading.value)} kWh"
                if reading and reading.value is not None
                else f"skipped: {reading.skip_code}"
                if reading
                else ""
            )
            sync = f"  [{reading.sync_status}]" if reading else ""
            if reading and reading.sync_error:
                sync += f"\nRefused by the office: {reading.sync_error} - {reading.sync_detail}"
            self.ids.locked.text = f"LOCKED  {what}{sync}\nA confirmed reading cannot be changed."
        else:
            self.ids.locked.text = ""

    def typed(self, text: str) -> None:
        meter = self.meter
        if meter is None or self.locked:
            return
        try:
            _value, check = self.field.check(meter, text)
        except EntryError:
            self.ids.consumption.text = ""
            return
        self.field.keep_draft(meter, text)
        self.ids.consumption.text = (
            f"Consumption: {plain(check.consumption)} kWh" if check.consumption is not None else ""
        )

    def confirm(self) -> None:
        meter = self.meter
        if meter is None:
            return
        try:
            value, check = self.field.check(meter, self.ids.value.text)
        except EntryError as exc:
            self.ids.warning.text = str(exc)
            return
        if check.needs_reentry and self._first_entry != value:
            # A typo check, not a block: the same value typed twice goes through.
            self._first_entry = value
            self.ids.warning.text = f"{check.warning}. Typed the same again? Confirm again."
            self.ids.value.text = ""
            return
        self.app.question = ask(
            "Confirm reading",
            f"Meter {meter.meter_no}: {plain(value)} kWh\nOnce confirmed it is locked for ever.",
            "Confirm",
            lambda: self._do_confirm(value),
        )

    def _do_confirm(self, value: Decimal) -> None:
        assert self.meter is not None
        try:
            self.field.confirm(self.meter, value)
        except StoreError as exc:
            self.ids.warning.text = str(exc)
            return
        self._locked_now()

    def skip(self) -> None:
        meter = self.meter
        code = self.ids.skip_code.text
        if meter is None:
            return
        if code not in SKIP_CODES:
            self.ids.warning.text = "Choose why the meter was not read."
            return
        self.app.question = ask(
            "Skip meter",
            f"Meter {meter.meter_no}: not read ({code}).",
            "Skip",
            lambda: self._do_skip(code),
        )

    def _do_skip(self, code: str) -> None:
        assert self.meter is not None
        try:
            self.field.skip(self.meter, code, self.ids.skip_note.text)
        except StoreError as exc:
            self.ids.warning.text = str(exc)
            return
        self._locked_now()

    def _locked_now(self) -> None:
        assert self.meter is not None
        self.meter = self.field.store.meter(self.meter.assignment_id, self.meter.id)
        self._set_locked(True)

    def back(self) -> None:
        self.app.show("route")
