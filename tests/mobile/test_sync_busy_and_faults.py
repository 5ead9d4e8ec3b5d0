"""The handheld against a busy server and a server that fails on one record, over real HTTP.

The real app is served by uvicorn behind a test-only wrapper that answers a push 503 (the
server's own busy answer) or 500 when told to; everything else reaches the real app."""

from __future__ import annotations

import gzip
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, cast

import pytest
import uvicorn
from sqlalchemy import Engine
from sqlmodel import Session, select
from starlette.responses import PlainTextResponse
from starlette.types import Message, Receive, Scope, Send

from common.clock import Clock
from mobile.core.sync import BusyError, ServerFaultError, SyncClient, Syncer
from server.core.admission import busy
from server.core.config import Settings
from server.main import create_app
from server.models import Reading, TrackPoint
from tests.factories import PASSWORD, assign, make_route, make_user
from tests.mobile.test_sync_client import handheld, held, read_all

__all__ = ["handheld"]  # a fixture, used by name

PUSH = "/api/v1/sync/push"


class Faults:
    """ASGI wrapper: pushes carrying a poisoned text answer 500, the next `busy` pushes
    answer 503 with Retry-After; it counts the pushes that reach it."""

    def __init__(self, app: Any):
        self.app = app
        self.poison: set[str] = set()
        self.fail_all = False
        self.busy = 0
        self.retry_after_s = 30
        self.pushes = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PUSH:
            await self.app(scope, receive, send)
            return
        self.pushes += 1
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if self.busy:
            self.busy -= 1
            await busy(self.retry_after_s)(scope, receive, send)
            return
        text = gzip.decompress(body).decode() if body[:2] == b"\x1f\x8b" else body.decode()
        # Contract 2 packs a push's reading ids as one string of their hex digits.
        poisoned = any(p in text or p.replace("-", "") in text for p in self.poison)
        if self.fail_all or poisoned:
            await PlainTextResponse("Internal Server Error", 500)(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


@pytest.fixture
def faults(settings: Settings, engine: Engine) -> Iterator[tuple[str, Faults]]:
    """The real app behind the wrapper, served by uvicorn on a free loopback port."""
    wrapper = Faults(create_app(settings, engine))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = uvicorn.Server(
        uvicorn.Config(wrapper, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", wrapper
    server.should_exit = True
    thread.join(timeout=20)


@pytest.fixture
def device(
    handheld: Callable[[str, str], SyncClient],
    faults: tuple[str, Faults],
    session: Session,
    settings: Settings,
) -> SyncClient:
    make_user(session, settings, "reader1", "reader", "G1")
    make_route(session, "R-1", 6)
    assign(session, "R-1", "reader1")
    client = handheld("device", faults[0])
    client.login("reader1", PASSWORD)
    client.sync()
    return client


def test_a_record_the_server_fails_on_is_isolated_held_and_shown_and_the_rest_stored(
    device: SyncClient, faults: tuple[str, Faults], session: Session
) -> None:
    _, wrapper = faults
    ids = read_all(device, 5)
    bad = ids[2]
    wrapper.poison.add(bad)
    for _ in range(device.max_item_faults - 1):
        with pytest.raises(ServerFaultError):
            device.sync()
        # Everything beside the bad record is stored; the bad one waits to be tried again.
        assert held(session, Reading) == 4
        assert held(session, TrackPoint) == 5
        assert device.store.sync_state().waiting == 1
    report = device.sync()
    assert report.held == 1
    assert bad not in {str(r) for r in session.exec(select(Reading.id))}
    # Held on the device as refused by the server, shown like any refusal, never deleted.
    [refused] = device.store.rejected()
    assert refused.id == bad
    assert refused.sync_error == "server_error"
    assert "refused by the server (error)" in (refused.sync_detail or "")
    assert device.store.sync_state().rejected == 1
    assert device.store.sync_state().waiting == 0
    assert bad in {r.id for r in device.store.readings()}
    # The outbox moves on: what is read next goes through.
    wrapper.poison.clear()
    assert device.sync().pushed == 0


def test_a_server_failing_every_push_has_nothing_held(
    device: SyncClient, faults: tuple[str, Faults], session: Session
) -> None:
    _, wrapper = faults
    read_all(device, 3)
    wrapper.fail_all = True
    for _ in range(device.max_item_faults + 1):
        with pytest.raises(ServerFaultError):
            device.sync()
    # Not the records' fault: none is held, all wait for a server that works again.
    assert device.store.sync_state().rejected == 0
    assert device.store.sync_state().waiting == 3
    wrapper.fail_all = False
    assert device.sync().accepted == 3
    assert held(session, Reading) == 3


def test_a_busy_server_is_left_alone_for_its_retry_after(
    device: SyncClient, faults: tuple[str, Faults], session: Session, clock: Clock
) -> None:
    _, wrapper = faults
    read_all(device, 2)
    wrapper.busy, wrapper.retry_after_s = 1, 30
    with pytest.raises(BusyError) as busy_answer:
        device.sync()
    assert busy_answer.value.retry_after == 30
    assert "busy" in (device.store.setting("last_error") or "")
    assert wrapper.pushes == 1
    # Before the time the server asked for, nothing is sent.
    clock.advance(timedelta(seconds=29))
    with pytest.raises(BusyError):
        device.sync()
    assert wrapper.pushes == 1
    clock.advance(timedelta(seconds=2))
    assert device.sync().accepted == 2
    assert wrapper.pushes == 2
    assert held(session, Reading) == 2


def test_the_background_syncer_waits_at_least_the_retry_after() -> None:
    syncer = Syncer(cast(SyncClient, None), max_backoff=300.0)  # never started
    assert syncer.wait_after(BusyError("busy", 40.0), 5.0) == 40.0
    assert syncer.wait_after(BusyError("busy", 2.0), 5.0) == 5.0
    assert syncer.wait_after(BusyError("busy", None), 5.0) == 5.0
    assert syncer.wait_after(ServerFaultError("500"), 10.0) == 10.0
