"""A day in the field: what the screens ask for, in one place, with no Kivy.

The screens only show and forward; this object holds the store, the sync client, the location
source and the track recorder, and answers: who am I, what is today's work, which customer is
here, and what happens when a register is entered, confirmed or skipped.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import quote

from common import clock, wire
from common.job_lifecycle import (
    EventFacts,
    JobEventKind,
    JobFacts,
    JobStatus,
    extended_finish,
    refusal,
)
from common.wire import Fix
from mobile.core import db_health
from mobile.core.language import _
from mobile.core.location import LocationSource, TrackRecorder
from mobile.core.route import (
    NEXT_MODES,
    TypoCheck,
    check_entry,
    nearest_unread,
    next_to_read,
    steady_nearest,
)
from mobile.core.status import FieldStatus, field_status
from mobile.core.store import Store
from mobile.core.sync import SyncClient, Syncer, SyncReport
from mobile.core.views import MeterView, ReadingView, StoreError


@dataclass
class FieldSettings:
    """Settings of the handheld (kept with its data)."""

    popup_radius_m: float = 25.0
    # Another meter must be this much nearer before the customer card changes: fixes jitter
    # by metres, and two neighbours' meters are often closer than that to each other.
    popup_switch_margin_m: float = 6.0
    track_interval_s: float = 5.0
    track_min_distance_m: float = 3.0
    sync_interval_s: float = 60.0
    # How long records the server acknowledged stay on the handheld: pushed again if the
    # server is restored from an older backup (a new data epoch), then pruned at start.
    retention_days: float = 30.0


class EntryError(StoreError):
    """What the reader typed is not a register value."""


def parse_register(text: str) -> Decimal:
    """A register as typed: digits, optionally a decimal point; nothing else."""
    cleaned = text.strip()
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise EntryError(_("{text} is not a number").format(text=text.strip() or '""')) from None
    if not value.is_finite() or value < 0 or cleaned.startswith(("+", "-")):
        raise EntryError(_("A register is a number of zero or more."))
    if value.as_tuple().exponent < -3:  # type: ignore[operator]
        raise EntryError(_("A register has at most three decimals."))
    return value


# The store in use is always this file, and belongs to one user (its `username`): the others'
# stores wait under users/, each with its outbox, until their owner logs in again.
ACTIVE_STORE = "gridwalk-device.db"
PARKED_STORES = "users"
# What a login writes into the store: the server and who is logged in, with their tokens.
SESSION_SETTINGS = ("server_url", "username", "role", "user_id", "access_token", "refresh_token")
# What belongs to the handheld, not to whoever holds it: carried from store to store.
DEVICE_SETTINGS = ("device_id", "server_url", "language", "next_meter")


def _store_files(path: Path) -> list[Path]:
    """A store's file and what moves with it: SQLite's -wal and -shm, and the health tally."""
    companions = [path.with_name(path.name + suffix) for suffix in db_health.COMPANIONS]
    return [path, *companions, db_health.tally_path(path)]


def _move_store(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    for a, b in zip(_store_files(source), _store_files(target), strict=True):
        if a.exists():
            os.replace(a, b)


class FieldSession:
    """The handheld's state for the screens."""

    def __init__(
        self,
        data_dir: str | Path,
        location: LocationSource,
        settings: FieldSettings | None = None,
        on_sync: Callable[[SyncReport | None, Exception | None], None] | None = None,
        on_status: Callable[[str, str], None] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.settings = settings or FieldSettings()
        self.store = Store(self.data_dir / ACTIVE_STORE)
        self.store.prune(timedelta(days=self.settings.retention_days))
        self.recorder = TrackRecorder(
            self.store,
            interval_s=self.settings.track_interval_s,
            min_distance_m=self.settings.track_min_distance_m,
        )
        self.location = location
        self.gps_status = ("", "")
        self._on_status = on_status
        self._on_sync = on_sync
        self.location.configure(self.recorder.on_location, self._status)
        self.client: SyncClient | None = None
        self.syncer: Syncer | None = None
        self._lock = threading.Lock()

    def listen(
        self,
        *,
        on_sync: Callable[[SyncReport | None, Exception | None], None],
        on_status: Callable[[str, str], None],
    ) -> None:
        """Who hears of sync outcomes and GPS status (set before `resume`/`login`)."""
        self._on_sync = on_sync
        self._on_status = on_status

    def _status(self, status: str, message: str) -> None:
        self.gps_status = (status, message)
        if self._on_status is not None:
            self._on_status(status, message)

    # ------------------------------------------------------------------ session

    @property
    def logged_in(self) -> bool:
        return bool(self.store.setting("refresh_token"))

    @property
    def username(self) -> str | None:
        return self.store.setting("username")

    @property
    def role(self) -> str | None:
        return self.store.setting("role")

    def login(self, server_url: str, username: str, password: str) -> None:
        """Log in (needs a link once); after that the handheld works offline. Another user
        than the store's owner gets their own store: the owner's waits for them, unseen."""
        # The server says yes before any store changes hands: a wrong password moves nothing.
        probe = Store(":memory:")
        probe.set_settings(device_id=self.store.device_id())
        client = SyncClient(probe, server_url=server_url)
        try:
            user = client.login(username, password)
        finally:
            client.close()
        session = {key: probe.setting(key) for key in SESSION_SETTINGS}
        probe.close()
        self.shutdown_sync()
        self._hand_to(str(user["username"]))
        self.store.set_settings(**session)
        self._use(SyncClient(self.store))

    def _parked(self, username: str) -> Path:
        return self.data_dir / PARKED_STORES / f"{quote(username, safe='')}.db"

    def _hand_to(self, username: str) -> None:
        """Make `username`'s store the one in use: the current owner's is parked under their
        name (their unsent records go out at their next login, never under another's token),
        and `username`'s own comes back if it was parked."""
        owner = self.store.setting("username")
        if owner == username:
            return
        carried = {key: self.store.setting(key) for key in DEVICE_SETTINGS}
        active = self.data_dir / ACTIVE_STORE
        with self.recorder.paused():
            self.store.close()
            # A store nobody logged into holds the device's settings only (work needs a pull,
            # a pull needs a login); it is set aside all the same, never deleted.
            _move_store(active, self._parked(owner) if owner else self._parked(".nobody"))
            if self._parked(username).exists():
                _move_store(self._parked(username), active)
            self.store = Store(active)
            self.store.set_settings(**{k: v for k, v in carried.items() if v is not None})
            self.recorder.store = self.store

    def unsent(self) -> int:
        """Records of this user not yet at the office (what logging out leaves waiting)."""
        return self.store.sync_state().waiting

    def resume(self) -> bool:
        """After a restart: carry on with the kept server and tokens, if any."""
        if not self.logged_in or not self.store.setting("server_url"):
            return False
        self._use(SyncClient(self.store))
        return True

    def _use(self, client: SyncClient) -> None:
        with self._lock:
            if self.syncer is not None:
                self.syncer.stop()
            if self.client is not None:
                self.client.close()
            self.client = client
            self.syncer = Syncer(
                client, interval=self.settings.sync_interval_s, on_change=self._sync_changed
            )
            self.syncer.start()

    def _sync_changed(self, report: SyncReport | None, error: Exception | None) -> None:
        if self._on_sync is not None:
            self._on_sync(report, error)

    def sync_now(self) -> None:
        if self.syncer is not None:
            self.syncer.nudge()

    def logout(self) -> None:
        """Forget the tokens. The outbox stays with its owner's store and is sent after their
        next login; another user logging in next gets a store of their own."""
        self.store.set_settings(access_token=None, refresh_token=None)
        self.shutdown_sync()

    def shutdown_sync(self) -> None:
        with self._lock:
            if self.syncer is not None:
                self.syncer.stop()
                self.syncer = None
            if self.client is not None:
                self.client.close()
                self.client = None

    def close(self) -> None:
        self.shutdown_sync()
        self.location.stop()
        self.store.close()

    # ------------------------------------------------------------------ location

    def start_location(self) -> None:
        self.location.start()

    def stop_location(self) -> None:
        self.location.stop()

    def open_route(self) -> None:
        """A route or job is open: record the track."""
        self.recorder.recording = True

    def close_route(self) -> None:
        self.recorder.recording = False

    def here(self) -> Fix | None:
        return self.recorder.current_fix()

    def status(self) -> FieldStatus:
        """The status line's facts: GPS quality, a simulated position, battery, the outbox."""
        state = self.store.sync_state()
        return field_status(
            self.here(), self.location.simulated, state.waiting, state.last_sync_at
        )

    def nearest(
        self, assignment_id: int, shown: tuple[MeterView, float] | None = None
    ) -> tuple[MeterView, float] | None:
        """The customer to pop up: the nearest meter still to read within the radius; the one
        `shown` now stays unless another is clearly nearer."""
        fix = self.here()
        if fix is None:
            return None
        meters = self.store.meters(assignment_id)
        radius = self.settings.popup_radius_m
        found = nearest_unread(meters, fix.lat, fix.lon, radius)
        return steady_nearest(
            shown,
            found,
            meters,
            fix.lat,
            fix.lon,
            margin_m=self.settings.popup_switch_margin_m,
            radius_m=radius,
        )

    def next_meter(self, meter: MeterView) -> MeterView | None:
        """Where to go after `meter` is done, by the reader's choice (nearest or in order)."""
        fix = self.here()
        return next_to_read(
            self.store.meters(meter.assignment_id),
            meter,
            self.next_mode,
            (fix.lat, fix.lon) if fix is not None else None,
        )

    @property
    def next_mode(self) -> str:
        mode = self.store.setting("next_meter", "nearest")
        return mode if mode in NEXT_MODES else "nearest"

    def set_next_mode(self, mode: str) -> None:
        if mode not in NEXT_MODES:
            raise ValueError(f"next meter by {mode!r}: one of {', '.join(NEXT_MODES)}")
        self.store.set_settings(next_meter=mode)

    # ------------------------------------------------------------------ readings

    def check(self, meter: MeterView, text: str) -> tuple[Decimal, TypoCheck]:
        value = parse_register(text)
        return value, check_entry(meter, value)

    def keep_draft(self, meter: MeterView, text: str) -> None:
        """Keep what is typed, so that a crash loses nothing; ignore what is not a number yet."""
        try:
            value = parse_register(text)
        except EntryError:
            return
        self.store.save_draft(
            meter.assignment_id,
            meter.id,
            value=value,
            read_at=clock.now(),
            fix=self.here(),
            reread_of=meter.reread_order_id,
        )

    def confirm(
        self, meter: MeterView, value: Decimal, read_at: datetime | None = None
    ) -> ReadingView:
        """Confirm: locked from now on, and on its way to the office."""
        at = read_at or clock.now()
        reading = self.store.confirm_reading(
            meter.assignment_id,
            meter.id,
            value=value,
            read_at=at,
            fix=self.here(),
            reread_of=meter.reread_order_id,
        )
        self.sync_now()
        return reading

    def skip(self, meter: MeterView, skip_code: str, note: str) -> ReadingView:
        reading = self.store.skip_meter(
            meter.assignment_id,
            meter.id,
            skip_code=skip_code,
            note=note,
            read_at=clock.now(),
            fix=self.here(),
            reread_of=meter.reread_order_id,
        )
        self.sync_now()
        return reading

    # ------------------------------------------------------------------ jobs

    def create_job(
        self, *, kind: str, urgency: str, content: str, address: str | None = None
    ) -> str:
        """Open a job on the spot (works offline): it is its `created` event, with me as crew."""
        if not content.strip():
            raise EntryError(_("Say what the job is."))
        job_id = str(uuid.uuid4())
        me = self.username or ""
        self.store.log_job_event(
            wire.JobEvent(
                id=str(uuid.uuid4()),
                job_id=job_id,
                kind=JobEventKind.CREATED,
                at=clock.now(),
                fix=self.here(),
                job_kind=kind,
                urgency=urgency,
                content=content.strip(),
                crew=(me,),
                address=address,
            )
        )
        self.sync_now()
        return job_id

    def start_job(self, job_id: str, expected_finish: datetime | None = None) -> None:
        """Arrived: the start time and place are recorded."""
        self._job_event(job_id, JobEventKind.STARTED, expected_finish=expected_finish)

    def change_eta(self, job_id: str, expected_finish: datetime) -> None:
        """A new expected finish, as a time."""
        if expected_finish <= clock.now():
            raise EntryError(_("The expected finish must be in the future."))
        self._job_event(job_id, JobEventKind.ETA_CHANGED, expected_finish=expected_finish)

    def extend_eta(self, job_id: str, by: timedelta) -> datetime:
        """The crew's "+1 h": that much more than the current estimate (from now if it has
        passed or there is none). Returns the new expected finish."""
        job = self.store.job(job_id)
        finish = extended_finish(job.expected_finish, clock.now(), by)
        self.change_eta(job_id, finish)
        return finish

    def finish_job(self, job_id: str, note: str, meter_check: dict[str, Any] | None = None) -> None:
        self._job_event(
            job_id, JobEventKind.FINISHED, note=note.strip() or None, meter_check=meter_check
        )

    def note_job(self, job_id: str, note: str) -> None:
        if not note.strip():
            raise EntryError(_("The note is empty."))
        self._job_event(job_id, JobEventKind.NOTE, note=note.strip())

    def _job_event(self, job_id: str, kind: JobEventKind, **fields: Any) -> None:
        # The lifecycle the server applies (common.job_lifecycle), checked here first so the
        # crew is told at once, offline, rather than finding a rejection after the next sync.
        job = self.store.job(job_id)
        at = clock.now()
        refused = refusal(
            JobFacts(
                status=JobStatus(job.status),
                started_at=job.started_at,
                is_meter_check=job.kind == "meter_check",
            ),
            EventFacts(
                kind=kind,
                at=at,
                has_crew=bool(fields.get("crew")),
                has_expected_finish=fields.get("expected_finish") is not None,
                has_meter_check=fields.get("meter_check") is not None,
            ),
        )
        if refused is not None:
            raise EntryError(refused.said(_))
        check = fields.pop("meter_check", None)
        try:
            result = wire.MeterCheck.from_json(check) if check is not None else None
        except wire.WireError as exc:
            raise EntryError(
                _("The meter check's result is incomplete: {error}").format(error=exc)
            ) from None
        self.store.log_job_event(
            wire.JobEvent(
                id=str(uuid.uuid4()),
                job_id=job_id,
                kind=kind,
                at=at,
                fix=self.here(),
                meter_check=result,
                **fields,
            )
        )
        self.sync_now()
