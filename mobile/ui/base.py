"""What every screen of the handheld shares: the screen base, the yes/no question, times as
the screens write them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kivy.app import App
from kivy.metrics import dp
from kivy.properties import ObjectProperty
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.button import Button
from kivy.uix.label import Label
from kivy.uix.popup import Popup
from kivy.uix.screenmanager import Screen

from mobile.core.field import FieldSession
from mobile.core.language import _, clock_time, moment

if TYPE_CHECKING:
    from mobile.ui.app import HandheldApp


def when(iso_text: str | None) -> str:
    """When something last happened today, in the handheld's zone: 14:05."""
    if not iso_text:
        return _("never")
    return clock_time(datetime.fromisoformat(iso_text))


def local_time_text(t: datetime | None) -> str:
    """A day and time as the screen shows it, in the handheld's own zone, the zone named."""
    return moment(t)


def ask(
    title: str, text: str, yes: str, on_yes: Callable[[], None], no: str | None = None
) -> Popup:
    """A yes/no question in a popup; returns it (open) so a test can answer it."""
    box = BoxLayout(orientation="vertical", padding=dp(12), spacing=dp(10))
    label = Label(text=text, color=(1, 1, 1, 1), text_size=(dp(280), None), halign="center")
    box.add_widget(label)
    buttons = BoxLayout(size_hint_y=None, height=dp(52), spacing=dp(8))
    popup = Popup(
        title=title, content=box, size_hint=(0.92, None), height=dp(260), auto_dismiss=False
    )
    no_button = Button(text=no if no is not None else _("Back"))
    yes_button = Button(text=yes, background_normal="", background_color=(0.1, 0.42, 0.72, 1))
    no_button.bind(on_release=lambda *_: popup.dismiss())

    def _yes(*_args: Any) -> None:
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
        from mobile.ui.app import HandheldApp  # the app imports the screens: a late import

        app = App.get_running_app()
        assert isinstance(app, HandheldApp)
        return app
