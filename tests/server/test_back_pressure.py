"""Back-pressure and a database that goes away: 503 with Retry-After, never a 500 or a queue.

The requests held in flight wait on events the test sets, so no outcome depends on timing."""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import Request
from fastapi.testclient import TestClient
from sqlalchemy import make_url, text
from sqlmodel import Session

from server.api.deps import SessionDep, check_client_version
from server.core.config import Settings
from server.core.db import make_engine
from server.main import create_app
from tests.factories import auth, make_user

PUSH = "/api/v1/sync/push"
PULL = "/api/v1/sync/pull"


def _settings(settings: Settings, **changes: Any) -> Settings:
    return settings.model_copy(update=changes)


class Hold:
    """A test-only dependency: the first request to `path` waits there until the test lets go."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def __call__(self, request: Request) -> None:
        if request.url.path != self.path:
            return
        self.calls += 1
        if self.calls == 1:
            self.entered.set()
            assert self.release.wait(60), "the test never let the held request go"


def _in_background(call: Any) -> tuple[threading.Thread, list[httpx.Response]]:
    answers: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: answers.append(call()), daemon=True)
    thread.start()
    return thread, answers


def test_a_push_beyond_the_in_flight_limit_is_answered_busy_at_once_with_retry_after(
    settings: Settings, engine: Any, session: Session
) -> None:
    make_user(session, settings, "reader1", "reader", "G1")
    limited = _settings(settings, max_inflight_pushes=1, busy_retry_after_s=7)
    app = create_app(limited, engine)
    hold = Hold(PUSH)
    app.dependency_overrides[check_client_version] = hold
    with TestClient(app) as client:
        headers = auth(client, "reader1")
        first, answers = _in_background(lambda: client.post(PUSH, json={}, headers=headers))
        assert hold.entered.wait(30)
        # The first push is in progress (admitted, holding its place): a second is turned away.
        second = client.post(PUSH, json={}, headers=headers)
        assert second.status_code == 503
        assert second.headers["Retry-After"] == "7"
        assert second.json()["code"] == "busy"
        # Pushes have their own places: a pull is still served meanwhile.
        assert client.get(PULL, headers=headers).status_code == 200
        hold.release.set()
        first.join(30)
        assert [a.status_code for a in answers] == [200]
        # The place is free again.
        assert client.post(PUSH, json={}, headers=headers).status_code == 200


def test_a_request_that_finds_no_pooled_connection_is_answered_busy(
    settings: Settings, session: Session
) -> None:
    make_user(session, settings, "reader1", "reader", "G1")
    tiny = make_engine(settings.database_url, pool_size=1, max_overflow=0, pool_timeout=0.1)
    try:
        with TestClient(create_app(settings, tiny)) as client:
            headers = auth(client, "reader1")
            with tiny.connect():  # the pool's only connection, taken until the block ends
                answer = client.get(PULL, headers=headers)
            assert answer.status_code == 503
            assert answer.json()["code"] == "busy"
            assert answer.headers["Retry-After"] == str(settings.busy_retry_after_s)
            assert client.get(PULL, headers=headers).status_code == 200
    finally:
        tiny.dispose()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # SQLite's own write lock
def test_sqlite_locked_beyond_the_busy_timeout_is_answered_busy(
    settings: Settings, session: Session
) -> None:
    make_user(session, settings, "reader1", "reader", "G1")
    quick = _settings(settings, sqlite_busy_timeout_s=0.05)
    with TestClient(create_app(quick)) as client:
        headers = auth(client, "reader1")
        other_writer = sqlite3.connect(make_url(settings.database_url).database or "")
        other_writer.isolation_level = None
        other_writer.execute("BEGIN IMMEDIATE")
        try:
            answer = client.post(PUSH, json={}, headers=headers)
        finally:
            other_writer.execute("ROLLBACK")
            other_writer.close()
        assert answer.status_code == 503
        assert answer.json()["code"] == "busy"
        assert "Retry-After" in answer.headers
        assert client.post(PUSH, json={}, headers=headers).status_code == 200


def test_a_broken_statement_is_still_a_500_not_a_503(settings: Settings, engine: Any) -> None:
    app = create_app(settings, engine)

    @app.get("/api/v1/test/broken")
    def broken(session: SessionDep) -> dict[str, str]:
        session.exec(text("SELECT * FROM no_such_table"))  # type: ignore[call-overload]
        return {}

    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/api/v1/test/broken").status_code == 500


def test_openapi_documents_the_503_and_its_retry_after(client: TestClient) -> None:
    push = client.get("/openapi.json").json()["paths"][PUSH]["post"]["responses"]
    assert push["503"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }
    assert "Retry-After" in push["503"]["headers"]


# ------------------------------------------------------------------ PostgreSQL goes away


class Cable:
    """A TCP forwarder between the app and PostgreSQL that a test can pull out and put back:
    pulled, live connections are cut and new ones are closed at once, as when the database
    server stops or the network between them fails."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.plugged = True
        self._lock = threading.Lock()
        self._live: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                near, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                if not self.plugged:
                    near.close()
                    continue
                far = socket.create_connection(self.target)
                self._live += [near, far]
            for a, b in ((near, far), (far, near)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def pull_out(self) -> None:
        with self._lock:
            self.plugged = False
            for s in self._live:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self._live.clear()

    def put_back(self) -> None:
        with self._lock:
            self.plugged = True

    def close(self) -> None:
        self.pull_out()
        self.listener.close()


@pytest.fixture
def cable(settings: Settings) -> Iterator[Cable]:
    assert settings.database_url.startswith("postgresql"), "a PostgreSQL server to lose"
    url = make_url(settings.database_url)
    made = Cable(url.host or "127.0.0.1", url.port or 5432)
    yield made
    made.close()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_postgresql_out_of_reach_answers_503_then_serves_again_when_back(
    settings: Settings, session: Session, cable: Cable
) -> None:
    make_user(session, settings, "reader1", "reader", "G1")
    via_cable = make_url(settings.database_url).set(host="127.0.0.1", port=cable.port)
    app_settings = _settings(
        settings, database_url=via_cable.render_as_string(hide_password=False)
    )
    with TestClient(create_app(app_settings)) as client:
        headers = auth(client, "reader1")
        assert client.get(PULL, headers=headers).status_code == 200
        cable.pull_out()
        for _ in range(2):  # the pooled connection is found dead, and no new one is made
            gone = client.get(PULL, headers=headers)
            assert gone.status_code == 503
            assert gone.json()["code"] == "database_unavailable"
            assert gone.headers["Retry-After"] == str(settings.db_down_retry_after_s)
        assert client.post(PUSH, json={}, headers=headers).status_code == 503
        cable.put_back()
        assert client.get(PULL, headers=headers).status_code == 200
        assert client.post(PUSH, json={}, headers=headers).status_code == 200


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # its backends to terminate
def test_postgresql_cutting_a_request_mid_transaction_answers_503_and_the_next_is_served(
    settings: Settings, session: Session
) -> None:
    name = f"gridwalk-cut-{uuid.uuid4().hex[:8]}"
    url = make_url(settings.database_url).update_query_dict({"application_name": name})
    app_engine = make_engine(url.render_as_string(hide_password=False))
    app = create_app(settings, app_engine)
    hold = Hold("/api/v1/test/held")

    @app.get("/api/v1/test/held")
    def held(request: Request, session: SessionDep) -> dict[str, int]:
        session.exec(text("SELECT 1"))  # type: ignore[call-overload]
        hold(request)  # in a transaction, with its connection, until the test lets go
        return {"one": session.exec(text("SELECT 1")).scalar_one()}  # type: ignore[call-overload]

    try:
        with TestClient(app) as client:
            thread, answers = _in_background(lambda: client.get("/api/v1/test/held"))
            assert hold.entered.wait(30)
            # What a restart of PostgreSQL does to the app's connections. The app's role may
            # end its own backends, so no superuser is needed.
            session.exec(  # type: ignore[call-overload]
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = :name"
                ).bindparams(name=name)
            )
            session.commit()
            hold.release.set()
            thread.join(30)
            [cut] = answers
            assert cut.status_code == 503
            assert cut.json()["code"] == "database_unavailable"
            assert "Retry-After" in cut.headers
            assert client.get("/api/v1/test/held").json() == {"one": 1}
    finally:
        app_engine.dispose()
