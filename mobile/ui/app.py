"""The handheld's Kivy app: screens that show the FieldSession's state and forward taps to it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kivy.app import App
from kivy.clock import Clock, mainthread
from kivy.lang import Builder
from kivy.logger import Logger
from kivy.uix.popup import Popup
from kivy.uix.screenmanager import NoTransition, ScreenManager

from mobile.core.field import FieldSession
from mobile.core.sync import SyncError, SyncReport
from mobile.ui.base import GridwalkScreen, ask

# The screens the kv file names: imported so that Kivy's Factory knows them before it loads.
from mobile.ui.jobs import JobScreen, NewJobScreen
from mobile.ui.reading import ReadingScreen, RouteScreen, TodayScreen

KV = Path(__file__).with_name("screens.kv")


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
        self.tell_start_notice()

    def tell_start_notice(self) -> None:
        """What the database check found at start (damage, lost work), until the user says
        they have read it: it is also what they tell their supervisor."""
        notice = self.field.store.start_notice()
        if notice is None:
            return
        Logger.error("Gridwalk: device database: %s", notice)
        seen = self.field.store.notice_seen
        self.question = ask("This handheld's data", notice, "I have read this", seen, "Later")

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
