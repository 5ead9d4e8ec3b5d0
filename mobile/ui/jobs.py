"""The crew's screens: a job (start, more time, note, finish with a meter check's result) and
a job opened on the spot."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from kivy.properties import BooleanProperty, ObjectProperty

from mobile.core.language import (
    CHECK_METHOD_LABELS,
    CHECK_OUTCOME_LABELS,
    JOB_KIND_LABELS,
    JOB_STATUS_LABELS,
    URGENCY_LABELS,
    _,
    code_of,
    label,
)
from mobile.core.views import StoreError
from mobile.ui.base import GridwalkScreen, ask, local_time_text


class JobScreen(GridwalkScreen):
    job_id = ObjectProperty("")
    status = ObjectProperty("")
    is_check = BooleanProperty(False)

    def on_pre_enter(self, *_args: Any) -> None:
        self.field.open_route()  # record the track while a job is open
        self.ids.error.text = ""
        self.refresh()

    def on_leave(self, *_args: Any) -> None:
        self.field.close_route()

    def refresh(self, *_args: Any) -> None:
        job = self.field.store.job(self.job_id)
        self.status = job.status
        self.is_check = job.kind == "meter_check"
        self.ids.title.text = _("{urgency} {kind}").format(
            urgency=label(URGENCY_LABELS, job.urgency), kind=label(JOB_KIND_LABELS, job.kind)
        )
        self.ids.summary.text = _("{content}\n{address}\nCrew: {crew}\nStatus: {status}").format(
            content=job.content,
            address=job.address or "",
            crew=", ".join(job.crew) or "-",
            status=label(JOB_STATUS_LABELS, job.status),
        )
        self.ids.times.text = _(
            "Started {started}\nExpected finish {expected}\nFinished {finished}"
        ).format(
            started=local_time_text(job.started_at),
            expected=local_time_text(job.expected_finish),
            finished=local_time_text(job.finished_at),
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
        check: dict[str, Any] | None = None
        if self.is_check:
            method = code_of(CHECK_METHOD_LABELS, self.ids.check_method.text)
            outcome = code_of(CHECK_OUTCOME_LABELS, self.ids.check_outcome.text)
            if outcome is None or method is None:
                self.ids.error.text = _("Choose the outcome of the check.")
                return
            check = {"method": method, "outcome": outcome}
            if method == "known_load":
                moved = self.ids.check_moved.text.strip()
                if not moved:
                    self.ids.error.text = _("Type how many kWh the register moved.")
                    return
                # The trade's field test: a 200 W lamp for 5 hours moves the register 1 kWh.
                check |= {"load_w": 200, "hours": 5, "register_moved_kwh": moved}
        note = self.ids.note.text
        self.app.question = ask(
            _("Finish job"),
            _("The job is done and power is back?"),
            _("Finish"),
            lambda: self._do(lambda: self.field.finish_job(self.job_id, note, meter_check=check)),
        )

    def back(self) -> None:
        self.app.show("today")


class NewJobScreen(GridwalkScreen):
    def create(self) -> None:
        self.ids.error.text = ""
        try:
            job_id = self.field.create_job(
                kind=code_of(JOB_KIND_LABELS, self.ids.kind.text) or self.ids.kind.text,
                urgency=code_of(URGENCY_LABELS, self.ids.urgency.text) or self.ids.urgency.text,
                content=self.ids.content.text,
                address=self.ids.address.text.strip() or None,
            )
        except StoreError as exc:
            self.ids.error.text = str(exc)
            return
        self.ids.content.text = ""
        self.ids.address.text = ""
        self.app.open_job(job_id)
