"""The handheld's Kivy app: screens that show the FieldSession's state and forward taps to it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from kivy.app import App
from kivy.clock import Clock, mainthread
from kivy.factory import Factory
from kivy.lang import Builder
from kivy.metrics import dp
from kivy.properties import BooleanProperty, ListProperty, NumericProperty, ObjectProperty
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.button import Button
from kivy.uix.label import Label
from kivy.uix.popup import Popup
from kivy.uix.screenmanager import NoTransition, Screen, ScreenManager

from common.wire import SKIP_CODES
from mobile.core.field import EntryError, FieldSession
from mobile.core.route import plain
from mobile.core.sync import SyncError, SyncReport
from mobile.core.views import MeterView, StoreError

METER_CHECK_OUTCOMES = ("meter_ok", "meter_fast", "meter_slow", "meter_faulty", "inconclusive")
# Not handheld.kv: Kivy would load that by itself for HandheldApp, and the rules twice.
KV = Path(__file__).with_name("screens.kv")


def _when(iso_text: str | None) -> str:
    if not iso_text:
        return "never"
    return datetime.fromisoformat(iso_text).astimezone().strftime("%H:%M:%S")


def ask(title: str, text: str, yes: str, on_yes: Callable[[], None], no: str = "Back") -> Popup:
    """A yes/no question in a popup; returns it (open) so a test can answer it."""
    box = BoxLayout(orientation="vertical", padding=dp(12), spacing=dp(10))
    label = Label(text=text, color=(1, 1, 1, 1), text_size=(dp(280), None), halign="center")
    box.add_widget(label)
    buttons = BoxLayout(size_hint_y=None, height=dp(52), spacing=dp(8))
    popup = Popup(
        title=title, content=box, size_hint=(0.92, None), height=dp(260), auto_dismiss=False
    )
    no_button = Button(text=no)
    yes_button = Button(text=yes, background_normal="", background_color=(0.1, 0.42, 0.72, 1))
    no_button.bind(on_release=lambda *_: popup.dismiss())

    def _yes(*_: Any) -> None:
        popup.dismiss()
        on_yes()

    yes_button.bind(on_release=_yes)
    buttons.add_widget(no_button)
    buttons.add_widget(yes_button)
    box.add_widget(buttons)
    popup.yes_button = yes_button
    popup.open()
    return popup


class GridwalkScreen(Screen):
    field: FieldSession = ObjectProperty(None)

    @property
    def app(self) -> HandheldApp:
        app = App.get_running_app()
        assert isinstance(app, HandheldApp)
        return app


class LoginScreen(GridwalkScreen):
    def on_pre_enter(self, *_: Any) -> None:
        self.ids.server.text = (
            self.ids.server.text
            or self.field.store.setting("server_url", self.app.default_server)
            or ""
        )
        self.ids.username.text = self.ids.username.text or self.field.username or ""
        self.ids.device.text = f"This handheld: {self.field.store.device_id()}"

    def login(self) -> None:
        self.ids.error.text = ""
        try:
            self.field.login(
                self.ids.server.text.strip(), self.ids.username.text.strip(), self.ids.password.text
            )
        except SyncError as exc:
            self.ids.error.text = str(exc)
            return
        self.ids.password.text = ""
        self.app.show("today")


class TodayScreen(GridwalkScreen):
    def on_pre_enter(self, *_: Any) -> None:
        self.refresh()

    def refresh(self, *_: Any) -> None:
        field = self.field
        self.ids.title.text = f"Today - {field.username or ''}"
        state = field.store.sync_state()
        lines = [f"Waiting to send: {state.waiting}", f"Last sync: {_when(state.last_sync_at)}"]
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


def _local(iso_text: str | None) -> str:
    if not iso_text:
        return "-"
    return datetime.fromisoformat(iso_text).astimezone().strftime("%d %b %H:%M")


class JobScreen(GridwalkScreen):
    job_id = ObjectProperty("")
    status = ObjectProperty("")
    is_check = BooleanProperty(False)

    def on_pre_enter(self, *_: Any) -> None:
        self.field.open_route()  # record the track while a job is open
        self.ids.error.text = ""
        self.refresh()

    def on_leave(self, *_: Any) -> None:
        self.field.close_route()

    def refresh(self, *_: Any) -> None:
        job = self.field.store.job(self.job_id)
        self.status = job.status
        self.is_check = job.kind == "meter_check"
        self.ids.title.text = f"{job.urgency.upper()} {job.kind.replace('_', ' ')}"
        self.ids.summary.text = (
            f"{job.content}\n{job.address or ''}\nCrew: "
            f"{', '.join(job.crew) or '-'}\nStatus: {job.status}"
        )
        self.ids.times.text = (
            f"Started {_local(job.started_at)}   Expected finish "
            f"{_local(job.expected_finish)}   Finished "
            f"{_local(job.finished_at)}"
        )

    def _do(self, action: Callable[[], None]) -> None:
        self.ids.error.text = ""
        try:
            action()
        except StoreError as exc:
            self.ids.error.text = str(exc)
        self.refresh()

    def start(self) -> None:
        self._do(lambda: self.field.start_job(self.job_id))

    def eta(self, minutes: int) -> None:
        """+30 min, +1 h...: that much more than the current expected finish."""

        def extend() -> None:
            self.field.extend_eta(self.job_id, timedelta(minutes=minutes))

        self._do(extend)

    def add_note(self) -> None:
        self._do(lambda: self.field.note_job(self.job_id, self.ids.note.text))
        if not self.ids.error.text:
            self.ids.note.text = ""

    def finish(self) -> None:
        check = None
        if self.is_check:
            check = {"method": self.ids.check_method.text, "outcome": self.ids.check_outcome.text}
            if check["outcome"] not in METER_CHECK_OUTCOMES:
                self.ids.error.text = "choose the outcome of the check"
                return
            if check["method"] == "known_load":
                moved = self.ids.check_moved.text.strip()
                if not moved:
                    self.ids.error.text = "type how many kWh the register moved"
                    return
                # The trade's field test: a 200 W lamp for 5 hours moves the register 1 kWh.
                check |= {"load_w": 200, "hours": 5, "register_moved_kwh": moved}
        note = self.ids.note.text
        self.app.question = ask(
            "Finish job",
            "The job is done and power is back?",
            "Finish",
            lambda: self._do(lambda: self.field.finish_job(self.job_id, note, meter_check=check)),
        )

    def back(self) -> None:
        self.app.show("today")


class NewJobScreen(GridwalkScreen):
    def create(self) -> None:
        self.ids.error.text = ""
        try:
            job_id = self.field.create_job(
                kind=self.ids.kind.text,
                urgency=self.ids.urgency.text,
                content=self.ids.content.text,
                address=self.ids.address.text.strip() or None,
            )
        except StoreError as exc:
            self.ids.error.text = str(exc)
            return
        self.ids.content.text = ""
        self.ids.address.text = ""
        self.app.open_job(job_id)


class HandheldApp(App):
    """The handheld: a screen manager over one FieldSession."""

    title = "Gridwalk"

    def __init__(self, field: FieldSession, *, default_server: str = "", **kwargs: Any):
        super().__init__(**kwargs)
        self.field = field
        self.default_server = default_server
        self.question: Popup | None = None
        self._refresh = Clock.create_trigger(self._refresh_screens, 0.2)

    def build(self) -> ScreenManager:
        Builder.load_file(str(KV))
        sm = ScreenManager(transition=NoTransition())
        for cls, name in (
            (LoginScreen, "login"),
            (TodayScreen, "today"),
            (RouteScreen, "route"),
            (ReadingScreen, "reading"),
            (JobScreen, "job"),
            (NewJobScreen, "new_job"),
        ):
            sm.add_widget(cls(name=name, field=self.field))
        return sm

    def on_start(self) -> None:
        self.field._on_sync = self._synced
        self.field._on_status = self._gps_status
        self.field.start_location()
        self.show("today" if self.field.resume() else "login")

    def on_pause(self) -> bool:
        # Keep recording in the background on Android; the store is already on disk.
        return True

    def on_stop(self) -> None:
        self.field.close()

    def show(self, name: str) -> None:
        self.root.current = name

    def open_route(self, assignment_id: int) -> None:
        route = self.root.get_screen("route")
        route.assignment_id = assignment_id
        self.show("route")

    def open_job(self, job_id: str) -> None:
        self.root.get_screen("job").job_id = job_id
        self.show("job")

    def open_meter(self, assignment_id: int, meter_id: int) -> None:
        self.root.get_screen("reading").show(self.field.store.meter(assignment_id, meter_id))
        self.show("reading")

    # Sync and GPS callbacks come from other threads: many events make one redraw.
    @mainthread
    def _synced(self, _report: SyncReport | None, _error: Exception | None) -> None:
        self._refresh()

    @mainthread
    def _gps_status(self, _status: str, _message: str) -> None:
        self._refresh()

    def _refresh_screens(self, *_: Any) -> None:
        current = self.root.current_screen
        if isinstance(current, (TodayScreen, RouteScreen, JobScreen)):
            current.refresh()
