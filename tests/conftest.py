"""Shared fixtures: one database fixture parametrised over SQLite and PostgreSQL.

The schema is built once per backend by the real Alembic history; each test then gets it
empty (SQLite: a copy of the migrated file; PostgreSQL: every table truncated).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlmodel import Session, SQLModel

from common.clock import Clock
from common.clock import clock as the_clock
from server.core import migrate
from server.core.config import Settings
from server.core.db import make_engine
from server.main import create_app
from tests.factories import NOW

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(autouse=True)
def clock(request: pytest.FixtureRequest) -> Iterator[Clock]:
    """The one clock of server and handheld, frozen at this run's NOW (tests.factories) so that
    no outcome depends on the day or on the machine's speed; a test moves it with `advance`.

    Tests marked `real_clock` (a handheld in another process, a browser) leave it on the
    machine's time, which those processes read too; they date things relative to NOW, which is
    never later than the machine's time."""
    if request.node.get_closest_marker("real_clock"):
        the_clock.follow_system()
    else:
        the_clock.freeze(NOW)
    try:
        yield the_clock
    finally:
        the_clock.follow_system()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "gridwalk.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_engine() -> Iterator[Engine]:
    assert TEST_DATABASE_URL
    engine = make_engine(TEST_DATABASE_URL)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    migrate.upgrade(TEST_DATABASE_URL)
    yield engine
    engine.dispose()


def _truncate_postgres(engine: Engine) -> None:
    tables = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    with engine.begin() as conn:
        # TRUNCATE fires no row triggers, so the readings lock does not stand in the way.
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        conn.execute(text("INSERT INTO change_counter (id, value) VALUES (1, 0)"))
        # The one row the migrations put in (server.sync.epoch), as they do.
        conn.execute(
            text("INSERT INTO data_epoch (id, value, started_at) VALUES (1, :value, :at)"),
            {"value": str(uuid.uuid4()), "at": the_clock.now()},
        )


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty, migrated database: SQLite, then PostgreSQL."""
    if request.param == "postgresql":
        if not TEST_DATABASE_URL:
            if IN_CI:
                pytest.fail(
                    "CI=true but TEST_DATABASE_URL is not set: PostgreSQL tests may "
                    "not be skipped in CI (`make test` starts PostgreSQL)"
                )
            pytest.skip("TEST_DATABASE_URL not set (`make test` sets it up)")
        _truncate_postgres(request.getfixturevalue("postgres_engine"))
        return TEST_DATABASE_URL
    path = tmp_path / "gridwalk.db"
    shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
    return f"sqlite:///{path}"


@pytest.fixture
def settings(db_url: str) -> Settings:
    # Cheap argon2 parameters: the KDF's cost is not what these tests are about.
    return Settings(
        environment="test",
        database_url=db_url,
        password_time_cost=1,
        password_memory_kib=1024,
        # Tests close assignments themselves; a background closer would race them.
        close_due_every_minutes=0,
        # A push's queued validation is drained at the end of its request, after its commit,
        # by the same claim-validate-delete path the workers take: a test sees the flags when
        # the answer arrives, with no thread racing it (tests of the workers start their own).
        validation_workers=0,
        validation_in_request=True,
    )


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session(settings: Settings) -> Iterator[Session]:
    """The test's own session. On SQLite its transactions begin deferred, so that a test
    holding a read open does not take the write lock the app's requests need; end a
    transaction (commit) before reading what a request wrote. Objects are not expired on
    commit, so that using a factory's result does not quietly open a new transaction."""
    engine = make_engine(settings.database_url, sqlite_immediate=False)
    with Session(engine, expire_on_commit=False) as session:
        yield session
    engine.dispose()


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(settings, engine)) as client:
        yield client


@dataclass
class LiveServer:
    """The real app served by uvicorn on a free loopback port, in a background thread."""

    url: str
    settings: Settings
    engine: Engine


@pytest.fixture
def live_server(settings: Settings, engine: Engine) -> Iterator[LiveServer]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    config = uvicorn.Config(
        create_app(settings, engine),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    yield LiveServer(f"http://127.0.0.1:{port}", settings, engine)
    server.should_exit = True
    thread.join(timeout=20)
