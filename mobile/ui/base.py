"""What every screen of the handheld shares: the screen base, the yes/no question, times as
the screens write them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kivy.app import App
from kivy.factory import Factory
from kivy.metrics import dp
from kivy.properties import ObjectProperty
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.label import Label
from kivy.uix.modalview import ModalView
from kivy.uix.screenmanager import Screen

from mobile.core.field import FieldSession
from mobile.core.language import _, clock_time, moment, number
from mobile.core.status import FieldStatus

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


def status_text(status: FieldStatus) -> str:
    """The status line in words, read in sunlight at a glance."""
    if status.gps == "none":
        gps = _("GPS: no fix")
    else:
        quality = _("good") if status.gps == "good" else _("poor")
        gps = _("GPS {quality} +/-{metres} m").format(
            quality=quality, metres=number(round(status.accuracy_m or 0))
        )
    parts = [gps]
    if status.simulated is not None:
        parts.append(
            {"replay": _("REPLAYED WALK"), "fixed": _("FIXED POSITION")}.get(
                status.simulated, _("MOCK LOCATION")
            )
        )
    if status.battery_percent is not None:
        parts.append(
            _("battery {percent}%").format(percent=status.battery_percent)
            + (" +" if status.charging else "")
        )
    parts.append(_("to send {count}").format(count=status.waiting))
    parts.append(_("synced {time}").format(time=when(status.last_sync_at)))
    return "  ·  ".join(parts)


def ask(
    title: str, text: str, yes: str, on_yes: Callable[[], None], no: str | None = None
) -> ModalView:
    """A yes/no question in the app's own style: a white card, large words, two big buttons
    (the answer on the right, in the app's blue). Returns it (open) so a test can answer it."""
    view = ModalView(
        size_hint=(0.94, None),
        auto_dismiss=False,
        background="",
        background_color=(0, 0, 0, 0),
        overlay_color=(0, 0, 0, 0.55),
    )
    card = Factory.Card(padding=dp(18), spacing=dp(12))
    card.add_widget(Factory.Title(text=title, font_size="22sp"))
    body = Label(text=text, font_size="19sp", color=(0.13, 0.15, 0.18, 1), size_hint_y=None)
    body.bind(
        width=lambda label, width: setattr(label, "text_size", (width, None)),
        texture_size=lambda label, size: setattr(label, "height", size[1] + dp(8)),
    )
    card.add_widget(body)
    buttons = BoxLayout(size_hint_y=None, height=dp(56), spacing=dp(10))
    no_button = Factory.QuietButton(text=no if no is not None else _("Back"), height=dp(56))
    yes_button = Factory.BigButton(text=yes, height=dp(56))
    no_button.bind(on_release=lambda *_args: view.dismiss())

    def _yes(*_args: Any) -> None:
        view.dismiss()
        on_yes()

    yes_button.bind(on_release=_yes)
    buttons.add_widget(no_button)
    buttons.add_widget(yes_button)
    card.add_widget(buttons)
    card.bind(height=lambda _card, height: setattr(view, "height", height))
    view.add_widget(card)
    view.yes_button = yes_button
    view.no_button = no_button
    view.open()
    return view


class GridwalkScreen(Screen):
    field: FieldSession = ObjectProperty(None)

    @property
    def app(self) -> HandheldApp:
        from mobile.ui.app import HandheldApp  # the app imports the screens: a late import

        app = App.get_running_app()
        assert isinstance(app, HandheldApp)
        return app
