"""The handheld's Kivy app: screens that show the FieldSession's state and forward taps to it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kivy.app import App
from kivy.clock import Clock, mainthread
from kivy.lang import Builder
from kivy.logger import Logger
from kivy.uix.modalview import ModalView
from kivy.uix.screenmanager import NoTransition, ScreenManager

from common.i18n import LANGUAGES, choose_language
from mobile.core import language
from mobile.core.field import FieldSession
from mobile.core.language import _
from mobile.core.sync import SyncError, SyncReport
from mobile.ui.base import GridwalkScreen, ask
from mobile.ui.fonts import FontNotFound, use_cjk_font

# The screens the kv file names: imported so that Kivy's Factory knows them before it loads.
from mobile.ui.jobs import JobScreen, NewJobScreen
from mobile.ui.reading import ReadingScreen, RouteScreen, TodayScreen

KV = Path(__file__).with_name("screens.kv")


class LoginScreen(GridwalkScreen):
    def on_pre_enter(self, *_args: Any) -> None:
        self.ids.server.text = (
            self.ids.server.text
            or self.field.store.setting("server_url", self.app.default_server)
            or ""
        )
        self.ids.username.text = self.ids.username.text or self.field.username or ""
        self.ids.device.text = _("This handheld: {device}").format(
            device=self.field.store.device_id()
        )
        self.ids.language.text = LANGUAGES[language.current()]
        self.ids.error.text = self.ids.error.text or self.app.font_problem

    def login(self) -> None:
        self.login_as(
            self.ids.server.text.strip(), self.ids.username.text.strip(), self.ids.password.text
        )

    def login_as(self, server: str, username: str, password: str) -> None:
        self.ids.error.text = ""
        try:
            self.field.login(server, username, password)
        except SyncError as exc:
            # An unattended start that cannot log in stays here, the reason shown, for a person.
            self.ids.server.text, self.ids.username.text = server, username
            self.ids.error.text = str(exc)
            return
        self.ids.password.text = ""
        self.app.show("today")

    def choose_language(self, shown: str) -> None:
        chosen = next((code for code, name in LANGUAGES.items() if name == shown), None)
        if chosen is not None and chosen != language.current():
            self.app.switch_language(chosen)


class HandheldApp(App):
    """The handheld: a screen manager over one FieldSession."""

    title = "Gridwalk"

    def __init__(
        self,
        field: FieldSession,
        *,
        default_server: str = "",
        lang: str | None = None,
        autologin: tuple[str, str] | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.field = field
        self.default_server = default_server
        self.autologin = autologin
        # The person's own choice on this handheld, else --lang, else the system's.
        language.use(choose_language(field.store.setting("language"), lang))
        self.question: ModalView | None = None
        self.font_problem = ""
        self._refresh = Clock.create_trigger(self._refresh_screens, 0.2)

    def build(self) -> ScreenManager:
        try:
            Logger.info("Gridwalk: writing with %s", use_cjk_font())
        except FontNotFound as exc:
            # The app still works (digits and Latin letters show); the person is told why the
            # names are boxes, in the log and on the first screen.
            self.font_problem = str(exc)
            Logger.warning("Gridwalk: %s", exc)
        Builder.load_file(str(KV))
        sm = ScreenManager(transition=NoTransition())
        self._add_screens(sm)
        return sm

    def _add_screens(self, sm: ScreenManager) -> None:
        for cls, name in (
            (LoginScreen, "login"),
            (TodayScreen, "today"),
            (RouteScreen, "route"),
            (ReadingScreen, "reading"),
            (JobScreen, "job"),
            (NewJobScreen, "new_job"),
        ):
            sm.add_widget(cls(name=name, field=self.field))

    def switch_language(self, chosen: str) -> None:
        """Speak `chosen` from now on, on every screen: kept on this handheld, and the screens
        are made again (their words are set when they are built)."""
        self.field.store.set_settings(language=chosen)
        language.use(chosen)
        sm = self.root
        current = sm.current
        kept = {"server": "", "username": ""}
        login = sm.get_screen("login")
        kept = {key: login.ids[key].text for key in kept}
        sm.clear_widgets()
        self._add_screens(sm)
        for key, text in kept.items():
            sm.get_screen("login").ids[key].text = text
        self.show(current)

    def on_start(self) -> None:
        self.field._on_sync = self._synced
        self.field._on_status = self._gps_status
        self.field.start_location()
        if self.field.resume():
            self.show("today")
        elif self.autologin is not None:
            self.show("login")
            self.root.get_screen("login").login_as(self.default_server, *self.autologin)
        else:
            self.show("login")
        self.tell_start_notice()

    def tell_start_notice(self) -> None:
        """What the database check found at start (damage, lost work), until the user says
        they have read it: it is also what they tell their supervisor."""
        notice = self.field.store.start_notice()
        if notice is None:
            return
        Logger.error("Gridwalk: device database: %s", notice)
        seen = self.field.store.notice_seen
        self.question = ask(
            _("This handheld's data"), notice, _("I have read this"), seen, _("Later")
        )

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

    def _refresh_screens(self, *_args: Any) -> None:
        current = self.root.current_screen
        if isinstance(current, (TodayScreen, RouteScreen, JobScreen)):
            current.refresh()
