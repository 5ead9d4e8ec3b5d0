"""The sync client: log in, push the outbox in gzip batches, pull with the cursor.

At-least-once: a batch whose answer is lost is sent again, and the server answers `duplicate`
for what it already holds. The store marks results in one transaction, so a crash at any point
resumes where it stopped. A background `Syncer` retries with back-off while there is no link.

A busy server (503 or 429) is left alone for at least its Retry-After. A batch the server fails
on (500) is split in halves and sent again, down to the single record that makes it fail; that
record, once it has failed `max_item_faults` syncs running while the server stores others, is
held as refused by the server (shown to the user, never deleted) and the rest moves on.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx

from common import clock, compact, wire
from common.contract import (
    API_PREFIX,
    APP_VERSION_HEADER,
    COMPACT_CONTRACT,
    CONTRACT_VERSION,
    CONTRACT_VERSION_HEADER,
    SUPPORTED_CONTRACT_VERSIONS,
)
from common.wire import iso
from mobile import APP_VERSION
from mobile.core import language
from mobile.core.language import _
from mobile.core.outbox import OutboxBatch
from mobile.core.store import Store

R = TypeVar("R", bound=wire.Record)


class SyncError(Exception):
    """Sync could not finish; the sentence is shown on the Today screen."""

    code: str | None = None  # the server's code for what it refused, when it gave one


class OfflineError(SyncError):
    """No link to the server (or it timed out): nothing was lost, sync will retry."""


class BusyError(OfflineError):
    """The server is busy or its database is out of reach (503, 429): try again after
    `retry_after` seconds (None: it did not say; back off as when offline)."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class ServerFaultError(SyncError):
    """The server failed on what was sent (500): nothing is lost, it is tried again."""


class LoginRequiredError(SyncError):
    """The server no longer accepts this device's tokens: the user must log in again."""


class UpgradeRequiredError(SyncError):
    """The server cannot serve this app version: it must be updated; records stay on the device."""


class _ContractChangedError(Exception):
    """The server speaks an older contract this app also speaks: say it again in that one."""


@dataclass
class SyncReport:
    pushed: int = 0
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    points: int = 0
    pulled_pages: int = 0
    # Records held as refused by the server after it failed on them again and again.
    held: int = 0


class SyncClient:
    """Talks the sync contract to one server for the store's device."""

    def __init__(
        self,
        store: Store,
        *,
        server_url: str | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 60.0,
        batch_readings: int = 200,
        batch_points: int = 2000,
        max_item_faults: int = 3,
    ):
        self.store = store
        url = server_url or store.setting("server_url")
        if not url:
            raise SyncError(_("No server address yet: log in first."))
        self.server_url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.server_url + API_PREFIX, timeout=timeout, transport=transport
        )
        self.batch_readings = batch_readings
        self.batch_points = batch_points
        self.max_item_faults = max_item_faults
        self._lock = threading.Lock()
        # Kept in memory: after a restart a record is given its tries again, which costs a
        # few requests and loses nothing.
        self._faults: dict[tuple[str, str], int] = {}
        self._not_before: datetime | None = None
        # The newest contract this app speaks, until a server says it speaks an older one only
        # (it was not updated yet): then that one, for this client's life.
        self.contract = CONTRACT_VERSION

    def close(self) -> None:
        self._http.close()

    # -------------------------------------------------------------------------- HTTP

    def _headers(self) -> dict[str, str]:
        headers = {
            APP_VERSION_HEADER: APP_VERSION,
            CONTRACT_VERSION_HEADER: str(self.contract),
            # Answers come gzipped (a route's pull ~9x smaller); httpx inflates them.
            "Accept-Encoding": "gzip",
            # The server says its sentences (refusals, errors) in the reader's language.
            "Accept-Language": language.current().replace("_", "-"),
        }
        token = self.store.setting("access_token")
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = self._headers() | kwargs.pop("headers", {})
        try:
            return self._http.request(method, path, headers=headers, **kwargs)
        except httpx.TransportError as exc:
            # What the crew reads on the Today screen: short, and that nothing is lost.
            raise OfflineError(
                _("No link to the server ({reason}): nothing is lost, will retry.").format(
                    reason=type(exc).__name__
                )
            ) from exc

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        self._wait_out()
        response = self._send(method, path, **kwargs)
        if response.status_code == 426 and self._step_down(response):
            if path == "/sync/push":
                raise _ContractChangedError  # its body is written in the contract
            response = self._send(method, path, **kwargs)
        if response.status_code == 401 and _code(response) == "token_expired":
            self._refresh()
            response = self._send(method, path, **kwargs)
        try:
            return _answer(response)
        except BusyError as exc:
            if exc.retry_after:
                self._not_before = clock.now() + timedelta(seconds=exc.retry_after)
            raise

    def _step_down(self, response: httpx.Response) -> bool:
        """Speak the server's contract from now on, if it only speaks an older one we speak."""
        try:
            body = response.json()
        except ValueError:
            return False
        if not isinstance(body, dict) or body.get("code") != "contract_unsupported":
            return False
        theirs = body.get("server_contract")
        if theirs not in SUPPORTED_CONTRACT_VERSIONS or theirs >= self.contract:
            return False
        self.contract = theirs
        return True

    def _wait_out(self) -> None:
        """Send nothing before the time a busy server asked for (by the clock, so a test can
        move it); what is asked in the meantime is answered busy here."""
        if self._not_before is None:
            return
        left = (self._not_before - clock.now()).total_seconds()
        if left <= 0:
            self._not_before = None
            return
        raise BusyError(
            _("The server is busy: nothing is lost, will retry in {seconds} s.").format(
                seconds=f"{left:.0f}"
            ),
            left,
        )

    def _refresh(self) -> None:
        token = self.store.setting("refresh_token")
        if not token:
            raise LoginRequiredError(_("Log in again."))
        response = self._send("POST", "/auth/refresh", json={"refresh_token": token})
        if response.status_code == 401:
            self.store.set_settings(access_token=None, refresh_token=None)
            raise LoginRequiredError(
                _("Log in again: {reason}").format(reason=_detail(response))
            )
        self._keep_tokens(_answer(response))

    def _keep_tokens(self, body: dict[str, Any]) -> None:
        self.store.set_settings(
            access_token=body["access_token"], refresh_token=body["refresh_token"]
        )

    # -------------------------------------------------------------------------- contract

    def login(self, username: str, password: str) -> dict[str, Any]:
        """Log this device in; the tokens and the user are kept in the store."""
        response = self._send(
            "POST",
            "/auth/login",
            json={
                "username": username,
                "password": password,
                "device_id": self.store.device_id(),
                "app_version": APP_VERSION,
            },
        )
        body: dict[str, Any] = _answer(response)
        user = body["user"]
        previous = self.store.setting("username")
        if previous and previous != user["username"]:
            # Another user on this handheld: their work stays in the outbox, the cursor restarts.
            self.store.set_settings(cursor=None)
        self.store.set_settings(
            server_url=self.server_url,
            username=user["username"],
            role=user["role"],
            user_id=str(user["id"]),
        )
        self._keep_tokens(body)
        return user

    def push(self) -> SyncReport:
        """Push the whole outbox, batch by batch."""
        report = SyncReport()
        with self._lock:
            while True:
                batch = self.store.outbox_batch(
                    max_readings=self.batch_readings, max_points=self.batch_points
                )
                if batch.empty:
                    return report
                failed = self._push_isolating(batch, report)
                if failed:
                    self._blame(failed, stored_others=len(failed) < _size(batch), report=report)

    def _push_isolating(self, batch: OutboxBatch, report: SyncReport) -> list[OutboxBatch]:
        """Push `batch`; if the server fails on it, push its halves, and theirs, down to
        single records. Returns the single records the server still failed on."""
        try:
            self._push_batch(batch, report)
        except ServerFaultError:
            if _size(batch) == 1:
                return [batch]
            first, second = _halves(batch)
            return self._push_isolating(first, report) + self._push_isolating(second, report)
        return []

    def _blame(self, failed: list[OutboxBatch], *, stored_others: bool, report: SyncReport) -> None:
        """Count a fault against each record the server failed on alone, and hold those that
        reached `max_item_faults`; raise while any is still to be tried again.

        A record is blamed only while the server stores others: if nothing beside it got
        through, an empty push asks whether the server stores anything at all, so that a
        server failing every push does not get the whole outbox held."""
        if not stored_others:
            self._push_batch(OutboxBatch(wire.Push(), [], [], []), SyncReport())
        waiting = 0
        for single in failed:
            key = _key(single)
            self._faults[key] = self._faults.get(key, 0) + 1
            if self._faults[key] < self.max_item_faults:
                waiting += 1
                continue
            del self._faults[key]
            self.store.hold_refused(
                single,
                error="server_error",
                detail=f"refused by the server (error), {self.max_item_faults} times; "
                "kept on this device",
            )
            report.held += 1
            report.rejected += 1
        if waiting:
            raise ServerFaultError(
                _("The server failed on {count} record(s): nothing is lost, will retry.").format(
                    count=waiting
                )
            )

    def _push_batch(self, batch: OutboxBatch, report: SyncReport) -> None:
        try:
            answer = self._push_in(self.contract, batch)
        except _ContractChangedError:
            answer = self._push_in(self.contract, batch)
        self.store.record_push(batch, answer)
        statuses = [r.status for r in answer.results]
        report.pushed += len(statuses)
        report.accepted += statuses.count("accepted")
        report.duplicate += statuses.count("duplicate")
        report.rejected += statuses.count("rejected") + len(answer.track.rejected)
        report.points += answer.track.accepted + answer.track.duplicate

    def _push_in(self, contract: int, batch: OutboxBatch) -> wire.PushAnswer:
        """Push `batch` written in `contract`: from 2 on, readings and track as columns and the
        answer compact (common.compact)."""
        push = dataclasses.replace(batch.push, sent_at=clock.now())
        compact_body = contract >= COMPACT_CONTRACT
        body = compact.encode_push(push) if compact_body else push.to_json()
        reply = self._call(
            "POST",
            "/sync/push",
            content=gzip.compress(json.dumps(body, separators=(",", ":")).encode()),
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )
        if not compact_body:
            return _read(wire.PushAnswer, reply)
        try:
            return compact.decode_answer(reply, batch.reading_ids + batch.event_ids)
        except wire.WireError as exc:
            raise _not_understood(exc) from None

    def pull(self) -> int:
        """Pull every page of what changed since the cursor; returns the number of pages."""
        pages = 0
        with self._lock:
            while True:
                cursor = self.store.setting("cursor")
                params = {"cursor": cursor} if cursor else {}
                try:
                    answer = self._call("GET", "/sync/pull", params=params)
                except SyncError as exc:
                    if exc.code != "invalid_cursor" or not cursor:
                        raise
                    # The server's history is behind this handheld's (its database was restored
                    # from a backup): pull everything again; what is held here stays.
                    self.store.set_settings(cursor=None)
                    continue
                page = _read(wire.PullPage, answer)
                self.store.apply_pull(page)
                pages += 1
                if not page.has_more:
                    return pages

    def sync(self) -> SyncReport:
        """Push, then pull; the outcome is kept for the Today screen."""
        try:
            report = self.push()
            report.pulled_pages = self.pull()
        except SyncError as exc:
            self.store.set_settings(last_error=str(exc))
            raise
        self.store.set_settings(last_sync_at=iso(clock.now()), last_error=None)
        return report


class Syncer:
    """Syncs in the background whenever there is a link: at once when nudged, every
    `interval` seconds otherwise, backing off from `min_backoff` to `max_backoff` while offline."""

    def __init__(
        self,
        client: SyncClient,
        *,
        interval: float = 60.0,
        min_backoff: float = 5.0,
        max_backoff: float = 300.0,
        on_change: Callable[[SyncReport | None, Exception | None], None] | None = None,
    ):
        self.client = client
        self.interval = interval
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.on_change = on_change
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="gridwalk-sync", daemon=True)
            self._thread.start()

    def nudge(self) -> None:
        """Sync now (a record was confirmed, or the user pressed Sync now)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _run(self) -> None:
        backoff = self.min_backoff
        while not self._stop.is_set():
            self._wake.clear()
            try:
                report = self.client.sync()
            except SyncError as exc:
                self._notify(None, exc)
                wait, backoff = self.wait_after(exc, backoff), min(backoff * 2, self.max_backoff)
            else:
                self._notify(report, None)
                wait, backoff = self.interval, self.min_backoff
            self._wake.wait(wait)

    def wait_after(self, error: SyncError, backoff: float) -> float:
        """How long to wait after a failed sync: at least what a busy server asked for."""
        if isinstance(error, LoginRequiredError | UpgradeRequiredError):
            return self.max_backoff  # a person must act; don't hammer the server
        if isinstance(error, BusyError) and error.retry_after is not None:
            return max(backoff, error.retry_after)
        return backoff

    def _notify(self, report: SyncReport | None, error: Exception | None) -> None:
        if self.on_change is not None:
            self.on_change(report, error)


def _read(shape: type[R], body: Any) -> R:
    """The server's answer in the contract's shape, or a SyncError saying how it is not."""
    try:
        return shape.from_json(body)
    except wire.WireError as exc:
        raise _not_understood(exc) from None


def _not_understood(exc: wire.WireError) -> SyncError:
    return SyncError(
        _("The server's answer is not what this app understands: {error}").format(error=exc)
    )


def _code(response: httpx.Response) -> str | None:
    try:
        code = response.json().get("code")
    except (ValueError, AttributeError):
        return None
    return code if isinstance(code, str) else None


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    return str(detail) if detail else f"HTTP {response.status_code}"


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds (it may be a number or an HTTP date), None if absent or bad."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, (parsedate_to_datetime(value) - clock.now()).total_seconds())
    except (TypeError, ValueError):
        return None


def _answer(response: httpx.Response) -> Any:
    if response.status_code == 426:
        raise UpgradeRequiredError(_detail(response))
    if response.status_code == 401:
        raise LoginRequiredError(_detail(response))
    if response.status_code in (429, 503):
        wait = _retry_after(response)
        raise BusyError(
            _("The server is busy: nothing is lost, will retry in {seconds} s.").format(
                seconds=f"{wait:.0f}" if wait is not None else "?"
            ),
            wait,
        )
    if response.status_code == 500:
        raise ServerFaultError(
            _("Server error {status}: nothing is lost, will retry.").format(
                status=response.status_code
            )
        )
    if response.status_code >= 500:
        # 502 and 504: a gateway without its server, which is not the records' doing.
        raise OfflineError(
            _("Server error {status}: nothing is lost, will retry.").format(
                status=response.status_code
            )
        )
    if response.status_code >= 400:
        refused = SyncError(_detail(response))
        refused.code = _code(response)
        raise refused
    return response.json()


def _size(batch: OutboxBatch) -> int:
    return len(batch.reading_ids) + len(batch.event_ids) + len(batch.point_times)


def _key(single: OutboxBatch) -> tuple[str, str]:
    """The one record a batch of one carries."""
    if single.reading_ids:
        return "reading", single.reading_ids[0]
    if single.event_ids:
        return "event", single.event_ids[0]
    return "point", single.point_times[0]


def _halves(batch: OutboxBatch) -> tuple[OutboxBatch, OutboxBatch]:
    """The batch's records in two batches of (nearly) equal size, in the order sent."""
    items: list[tuple[str, int]] = (
        [("reading", i) for i in range(len(batch.reading_ids))]
        + [("event", i) for i in range(len(batch.event_ids))]
        + [("point", i) for i in range(len(batch.point_times))]
    )
    middle = len(items) // 2
    return _part(batch, items[:middle]), _part(batch, items[middle:])


def _part(batch: OutboxBatch, items: list[tuple[str, int]]) -> OutboxBatch:
    readings = [i for kind, i in items if kind == "reading"]
    events = [i for kind, i in items if kind == "event"]
    points = [i for kind, i in items if kind == "point"]
    return OutboxBatch(
        push=wire.Push(
            readings=tuple(batch.push.readings[i] for i in readings),
            track_points=tuple(batch.push.track_points[i] for i in points),
            job_events=tuple(batch.push.job_events[i] for i in events),
        ),
        reading_ids=[batch.reading_ids[i] for i in readings],
        event_ids=[batch.event_ids[i] for i in events],
        point_times=[batch.point_times[i] for i in points],
    )
