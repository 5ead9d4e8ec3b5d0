"""The crew's screens: a job (start, more time, note, finish with a meter check's result) and
a job opened on the spot."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from kivy.properties import BooleanProperty, ObjectProperty

from mobile.core.views import StoreError
from mobile.ui.base import GridwalkScreen, ask, local_time_text

METER_CHECK_OUTCOMES = ("meter_ok", "meter_fast", "meter_slow", "meter_faulty", "inconclusive")


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
            f"Started {local_time_text(job.started_at)}   Expected finish "
            f"{local_time_text(job.expected_finish)}   Finished "
            f"{local_time_text(job.finished_at)}"
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
