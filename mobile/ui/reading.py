"""The reader's screens: today's work, a route with the customer where the reader stands,
and the reading (typed, checked, confirmed and locked, or skipped with a reason)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from kivy.clock import Clock
from kivy.factory import Factory
from kivy.properties import (
    BooleanProperty,
    ListProperty,
    NumericProperty,
    ObjectProperty,
    StringProperty,
)

from common.wire import SKIP_CODES
from mobile.core.field import EntryError
from mobile.core.language import (
    JOB_KIND_LABELS,
    JOB_STATUS_LABELS,
    SKIP_LABELS,
    SYNC_STATUS_LABELS,
    URGENCY_LABELS,
    _,
    code_of,
    label,
    number,
    refusal_advice,
)
from mobile.core.route import plain
from mobile.core.views import MeterView, StoreError
from mobile.ui.base import GridwalkScreen, ask, local_time_text, status_text


def _what(value: Decimal | None, skip_code: str | None) -> str:
    """A locked reading in a few words: its value, or why the meter was not read."""
    if value is not None:
        return _("{value} kWh").format(value=number(value))
    return _("skipped: {reason}").format(reason=label(SKIP_LABELS, skip_code))


class TodayScreen(GridwalkScreen):
    def on_pre_enter(self, *_args: Any) -> None:
        self.refresh()

    def refresh(self, *_args: Any) -> None:
        field = self.field
        self.ids.title.text = _("Today - {user}").format(user=field.username or "")
        state = field.store.sync_state()
        # What waits and when it last went are on the status line; here what needs the reader.
        lines: list[str] = []
        if state.rejected:
            lines.append(
                _("Refused by the office: {count} (see the meter)").format(count=state.rejected)
            )
        if state.last_error:
            lines.append(_("Last error: {error}").format(error=state.last_error))
        self.ids.sync_state.text = "\n".join(lines)
        _status, message = field.gps_status
        self.ids.gps_state.text = status_text(field.status()) + (
            f"\n{message}" if message and field.here() is None else ""
        )
        work = self.ids.work
        work.clear_widgets()
        for a in field.store.assignments():
            button = Factory.BigButton(
                text=_("{route}  {cycle}   read {read} / skipped {skipped} / left {left}").format(
                    route=a.route_code, cycle=a.cycle, read=a.read, skipped=a.skipped, left=a.left
                )
            )
            button.assignment_id = a.id
            button.bind(on_release=lambda b: self.app.open_route(b.assignment_id))
            work.add_widget(button)
        for j in field.store.jobs():
            button = Factory.BigButton(
                text=_("{urgency} {kind}: {content}  [{status}]").format(
                    urgency=label(URGENCY_LABELS, j.urgency),
                    kind=label(JOB_KIND_LABELS, j.kind),
                    content=j.content[:28],
                    status=label(JOB_STATUS_LABELS, j.status),
                )
            )
            if j.status in ("finished", "cancelled"):
                button.background_color = (0.55, 0.6, 0.66, 1)
            button.job_id = j.id
            button.bind(on_release=lambda b: self.app.open_job(b.job_id))
            work.add_widget(button)
        if field.role in ("crew", "supervisor"):
            new = Factory.QuietButton(text=_("+ New job here"))
            new.bind(on_release=lambda _b: self.app.show("new_job"))
            work.add_widget(new)
        if not work.children:
            work.add_widget(Factory.Caption(text=_("No work yet: sync when there is a link.")))

    def sync_now(self) -> None:
        self.field.sync_now()
        self.ids.sync_state.text += "\n" + _("Syncing...")

    def logout(self) -> None:
        waiting = self.field.unsent()
        if not waiting:
            self._do_logout()
            return
        # Not lost, not anyone else's: kept for this user, sent at their next login.
        self.app.question = ask(
            _("Log out"),
            _(
                "{count} records are not at the office yet. They stay on this handheld for "
                "{user} and are sent at {user}'s next login; no one else sees them."
            ).format(count=waiting, user=self.field.username or ""),
            _("Log out"),
            self._do_logout,
        )

    def _do_logout(self) -> None:
        self.field.logout()
        self.app.show("login")


class RouteScreen(GridwalkScreen):
    assignment_id = NumericProperty(0)
    nearest_id = NumericProperty(0)
    refused_count = NumericProperty(0)

    def on_pre_enter(self, *_args: Any) -> None:
        self.field.open_route()
        self.refresh()
        self._tick = Clock.schedule_interval(self.update_nearest, 1.0)

    def on_leave(self, *_args: Any) -> None:
        self._tick.cancel()

    def back(self) -> None:
        self.field.close_route()
        self.app.show("today")

    def refresh(self, *_args: Any) -> None:
        assignment = next(
            (a for a in self.field.store.assignments() if a.id == self.assignment_id), None
        )
        if assignment is None:
            self.app.show("today")
            return
        # A route named after its code says it once, not "R-101 R-101".
        name = assignment.route_name
        self.ids.title.text = (
            assignment.route_code
            if name in ("", assignment.route_code)
            else f"{assignment.route_code} {name}"
        )
        self.ids.status.text = status_text(self.field.status())
        self.ids.progress.text = _("read {read}, skipped {skipped}, left {left} of {total}").format(
            read=assignment.read,
            skipped=assignment.skipped,
            left=assignment.left,
            total=assignment.total,
        )
        box = self.ids.meters
        box.clear_widgets()
        meters = self.field.store.meters(self.assignment_id)
        self.refused_count = sum(1 for m in meters if m.refusal)
        only_refused = self.refused_count > 0 and self.ids.refused_filter.state == "down"
        for m in meters:
            if only_refused and not m.refusal:
                continue
            mark = {"read": _("DONE") + " ", "skipped": _("SKIP") + " "}.get(m.status, "")
            if m.reread_order_id:
                mark = _("RE-READ") + " "
            elif m.refusal:
                mark = _("REFUSED") + " "
            button = Factory.QuietButton(
                text=f"{mark}{m.sequence}  {m.meter_no}  {m.customer_name}", halign="left"
            )
            button.text_size = (None, None)
            button.meter_id = m.id
            if m.refusal and not m.reread_order_id:
                # Refused is not done: red, like the reason on the meter's own screen.
                button.background_color = (0.98, 0.80, 0.80, 1)
                button.color = (0.6, 0.08, 0.08, 1)
            elif m.done:
                button.background_color = (0.80, 0.92, 0.84, 1)
            button.bind(on_release=lambda b: self.app.open_meter(self.assignment_id, b.meter_id))
            box.add_widget(button)
        self.update_nearest()

    def hold_card(self, held: bool) -> None:
        self._card_held = held

    def update_nearest(self, *_args: Any) -> None:
        if getattr(self, "_card_held", False):
            return
        near = self.field.nearest(self.assignment_id, getattr(self, "_shown", None))
        self._shown = near
        self.ids.status.text = status_text(self.field.status())
        if near is None:
            self.nearest_id = 0
            fix = self.field.here()
            self.ids.popup_title.text = _("No meter to read here")
            self.ids.popup_body.text = (
                _("Walk to the next meter: its customer pops up here.")
                if fix
                else _("Waiting for a GPS fix...")
            )
            return
        meter, distance = near
        self.nearest_id = meter.id
        self.ids.popup_title.text = f"{meter.customer_name}  ({distance:.0f} m)"
        self.ids.popup_body.text = _(
            "{address}\nAccount {account}   Meter {meter}\nLast reading {last}"
        ).format(
            address=meter.address,
            account=meter.account_no,
            meter=meter.meter_no,
            last=number(meter.last_reading),
        )

    def read_nearest(self) -> None:
        if self.nearest_id:
            self.app.open_meter(self.assignment_id, self.nearest_id)


class ReadingScreen(GridwalkScreen):
    meter: MeterView | None = ObjectProperty(None, allownone=True)
    skip_codes = ListProperty(list(SKIP_CODES))
    locked = BooleanProperty(False)
    refused = BooleanProperty(False)
    next_text = StringProperty("")
    next_mode_text = StringProperty("")

    def show(self, meter: MeterView) -> None:
        self.meter = meter
        self._first_entry: Decimal | None = None
        self.ids.title.text = _("Meter {meter}").format(meter=meter.meter_no)
        self.ids.customer.text = _(
            "{customer}\n{address}\nAccount {account}   Last reading {last}"
        ).format(
            customer=meter.customer_name,
            address=meter.address,
            account=meter.account_no,
            last=number(meter.last_reading),
        )
        self.ids.task.text = (
            _("Re-read ordered: {reason}").format(reason=meter.reread_reason)
            if meter.reread_order_id
            else ""
        )
        self.ids.warning.text = ""
        self.ids.skip_code.text = _("why not read?")
        self.ids.skip_note.text = ""
        locked = meter.done
        self._set_locked(locked)
        if not locked:
            draft = self.field.store.draft(meter.assignment_id, meter.id)
            # The entry field takes digits as typed, not the language's number format.
            self.ids.value.text = plain(draft.value) if draft and draft.value is not None else ""

    def _set_locked(self, locked: bool) -> None:
        self.locked = locked
        meter = self.meter
        if locked and meter is not None and meter.elsewhere:
            # Read before this handheld had the route, or on another: the office holds it.
            self.refused = False
            what = _what(meter.reading_value, meter.elsewhere_skip_code)
            lines = [
                _("LOCKED  {what}{sync}").format(what=what, sync=""),
                _("Read on another handheld at {time}: the office holds it.").format(
                    time=local_time_text(meter.elsewhere_read_at)
                ),
            ]
            if meter.refusal:  # this handheld's own reading of it, refused
                self.refused = True
                happened, todo = refusal_advice(meter.refusal)
                lines += [happened, _("What to do: {advice}").format(advice=todo)]
            self.ids.locked.text = "\n".join(lines)
        elif locked and meter is not None:
            fresh = self.field.store.meter(meter.assignment_id, meter.id)
            reading = self.field.store.reading(fresh.reading_id) if fresh.reading_id else None
            what = _what(reading.value, reading.skip_code) if reading else ""
            sync = f"  [{label(SYNC_STATUS_LABELS, reading.sync_status)}]" if reading else ""
            lines = [
                _("LOCKED  {what}{sync}").format(what=what, sync=sync),
                _("A confirmed reading cannot be changed."),
            ]
            self.refused = bool(reading and reading.sync_status == "rejected")
            if reading and self.refused:
                happened, todo = refusal_advice(reading.sync_error or "")
                lines += [happened, _("What to do: {advice}").format(advice=todo)]
            self.ids.locked.text = "\n".join(lines)
        else:
            self.refused = False
            self.ids.locked.text = ""
        self._show_next()

    def _show_next(self) -> None:
        """Once this meter is done, the way on: the next meter by the reader's choice."""
        meter = self.meter
        self._next = self.field.next_meter(meter) if meter is not None and self.locked else None
        self.next_text = (
            _("Next: {customer} ({sequence})  >").format(
                customer=self._next.customer_name, sequence=self._next.sequence
            )
            if self._next is not None
            else ""
        )
        self.next_mode_text = (
            _("nearest") if self.field.next_mode == "nearest" else _("in order")
        )

    def go_next(self) -> None:
        if self._next is not None:
            self.show(self.field.store.meter(self._next.assignment_id, self._next.id))

    def toggle_next_mode(self) -> None:
        self.field.set_next_mode("sequence" if self.field.next_mode == "nearest" else "nearest")
        self._show_next()

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
            _("Consumption: {kwh} kWh").format(kwh=number(check.consumption))
            if check.consumption is not None
            else ""
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
            self.ids.warning.text = _("{warning}. Typed the same again? Confirm again.").format(
                warning=check.warning
            )
            self.ids.value.text = ""
            return
        self.app.question = ask(
            _("Confirm reading"),
            _("Meter {meter}: {value} kWh\nOnce confirmed it is locked for ever.").format(
                meter=meter.meter_no, value=number(value)
            ),
            _("Confirm"),
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
        code = code_of(SKIP_LABELS, self.ids.skip_code.text)
        if meter is None:
            return
        if code not in SKIP_CODES:
            self.ids.warning.text = _("Choose why the meter was not read.")
            return
        self.app.question = ask(
            _("Skip meter"),
            _("Meter {meter}: not read ({reason}).").format(
                meter=meter.meter_no, reason=label(SKIP_LABELS, code)
            ),
            _("Skip"),
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
