"""The handheld's sync client against the real server, over real HTTP."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import jwt
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func
from sqlmodel import Session, select

from common import clock, compact
from common.wire import Fix
from mobile.core.route import nearest_unread
from mobile.core.store import Store
from mobile.core.sync import LoginRequiredError, OfflineError, SyncClient
from server.core.config import Settings
from server.demo.utility import USERS, load_demo
from server.main import create_app
from server.models import Reading, TrackPoint
from tests.conftest import LiveServer
from tests.factories import PASSWORD, READ_AT, assign, auth, make_route, make_user

T0 = READ_AT


@pytest.fixture
def handheld(tmp_path: Path) -> Iterator[Callable[[str, str], SyncClient]]:
    """Makes handhelds (a store and a sync client); closes them after the test."""
    made: list[SyncClient] = []

    def make(name: str, url: str) -> SyncClient:
        client = SyncClient(Store(tmp_path / f"{name}.db"), server_url=url)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
        client.store.close()


@pytest.fixture
def device(
    handheld: Callable[[str, str], SyncClient], live_server: LiveServer, session: Session
) -> SyncClient:
    make_user(session, live_server.settings, "reader1", "reader", "G1")
    make_route(session, "R-1", 6)
    assign(session, "R-1", "reader1")
    client = handheld("device", live_server.url)
    client.login("reader1", PASSWORD)
    return client


def held(session: Session, model: type) -> int:
    session.commit()
    return int(session.exec(select(func.count()).select_from(model)).one())


def read_all(device: SyncClient, n: int) -> list[str]:
    [assignment] = device.store.assignments()
    ids = []
    for i, meter in enumerate(device.store.meters(assignment.id)[:n]):
        at = T0 + timedelta(minutes=2 * i)
        fix = Fix(lat=meter.lat, lon=meter.lon, accuracy_m=5, fix_time=at)
        ids.append(
            device.store.confirm_reading(
                assignment.id, meter.id, value=Decimal(1100 + i), read_at=at, fix=fix
            ).id
        )
        device.store.add_track_point(t=at, lat=meter.lat, lon=meter.lon, accuracy_m=5)
    return ids


def test_login_pull_read_sync_and_the_server_holds_exactly_those(
    device: SyncClient, session: Session
) -> None:
    device.sync()
    [assignment] = device.store.assignments()
    assert assignment.total == 6
    ids = read_all(device, 3)
    [first] = device.store.assignments()
    device.store.skip_meter(
        first.id,
        device.store.meters(first.id)[3].id,
        skip_code="locked",
        note="gate locked",
        read_at=T0 + timedelta(minutes=9),
        fix=None,
    )
    report = device.sync()
    assert (report.accepted, report.rejected, report.points) == (4, 0, 3)
    assert device.store.sync_state().waiting == 0
    assert device.store.sync_state().last_error is None
    assert {str(r) for r in session.exec(select(Reading.id))} >= set(ids)
    assert held(session, Reading) == 4
    assert held(session, TrackPoint) == 3
    # Nothing left to send: a second sync pushes nothing.
    assert device.sync().pushed == 0


def test_a_batch_whose_answer_was_lost_is_sent_again_and_stored_once(
    device: SyncClient, session: Session
) -> None:
    device.sync()
    read_all(device, 4)
    batch = device.store.outbox_batch()
    # The push reaches the server, but the device dies before it records the answer.
    device._call("POST", "/sync/push", json=compact.encode_push(batch.push))
    report = device.sync()
    assert (report.accepted, report.duplicate) == (0, 4)
    assert held(session, Reading) == 4
    assert device.store.sync_state().waiting == 0


def test_a_rejected_reading_stays_visible_and_does_not_block_the_rest(
    device: SyncClient,
    session: Session,
    handheld: Callable[[str, str], SyncClient],
    live_server: LiveServer,
) -> None:
    device.sync()
    [assignment] = device.store.assignments()
    meters = device.store.meters(assignment.id)
    # Another handheld of the same reader already sent a reading of meter 0.
    other = handheld("other", live_server.url)
    other.login("reader1", PASSWORD)
    other.sync()
    other.store.confirm_reading(
        assignment.id, meters[0].id, value=Decimal(1150), read_at=T0, fix=None
    )
    other.sync()
    device.store.confirm_reading(
        assignment.id, meters[0].id, value=Decimal(1151), read_at=T0, fix=None
    )
    device.store.confirm_reading(
        assignment.id, meters[1].id, value=Decimal(1152), read_at=T0, fix=None
    )
    report = device.sync()
    assert (report.accepted, report.rejected) == (1, 1)
    [rejected] = device.store.rejected()
    assert rejected.sync_error == "already_read"
    assert device.store.sync_state().waiting == 0
    assert held(session, Reading) == 2


def test_an_expired_access_token_is_refreshed_without_the_user(
    device: SyncClient, session: Session, live_server: LiveServer
) -> None:
    user_id = device.store.setting("user_id")
    expired = jwt.encode(
        {
            "sub": user_id,
            "dev": device.store.device_id(),
            "role": "reader",
            "typ": "access",
            "exp": clock.now() - timedelta(minutes=1),
        },
        live_server.settings.secret_key,
        algorithm="HS256",
    )
    old_refresh = device.store.setting("refresh_token")
    device.store.set_settings(access_token=expired)
    device.sync()
    assert device.store.setting("refresh_token") != old_refresh
    assert device.store.setting("last_error") is None


def test_a_revoked_device_must_log_in_again_and_keeps_its_records(
    device: SyncClient, session: Session, live_server: LiveServer
) -> None:
    device.sync()
    read_all(device, 2)
    make_user(session, live_server.settings, "admin", "admin")
    with TestClient(create_app(live_server.settings, live_server.engine)) as admin_client:
        response = admin_client.post(
            f"/api/v1/admin/devices/{device.store.device_id()}/revoke",
            headers=auth(admin_client, "admin", "admin-desk-01"),
        )
        assert response.status_code == 200
    with pytest.raises(LoginRequiredError, match="revoked"):
        device.sync()
    assert device.store.sync_state().waiting == 2
    assert "revoked" in (device.store.setting("last_error") or "")


def test_with_no_link_nothing_is_lost_and_sync_resumes(
    device: SyncClient, session: Session
) -> None:
    device.sync()
    ids = read_all(device, 3)
    offline = SyncClient(device.store, server_url="http://127.0.0.1:9")  # nothing listens
    with pytest.raises(OfflineError):
        offline.sync()
    offline.close()
    assert device.store.sync_state().waiting == 3
    device.sync()
    assert {str(r) for r in session.exec(select(Reading.id))} == set(ids)


def test_a_large_route_is_pulled_in_pages(
    handheld: Callable[[str, str], SyncClient],
    live_server: LiveServer,
    session: Session,
    settings: Settings,
) -> None:
    settings.pull_page_size = 10
    make_user(session, settings, "reader9", "reader", "G1")
    make_route(session, "R-9", 35)
    assign(session, "R-9", "reader9")
    client = handheld("device9", live_server.url)
    client.login("reader9", PASSWORD)
    report = client.sync()
    assert report.pulled_pages == 4
    [assignment] = client.store.assignments()
    assert assignment.total == 35


def test_a_fresh_handheld_shows_the_route_as_the_office_holds_it_and_offers_no_read_meter(
    device: SyncClient,
    handheld: Callable[[str, str], SyncClient],
    live_server: LiveServer,
) -> None:
    """A swapped handheld mid-cycle: what the first one read and skipped is read and skipped on
    the second, with its values, and the nearest-customer card never offers those meters."""
    device.sync()
    [assignment] = device.store.assignments()
    meters = device.store.meters(assignment.id)
    read_all(device, 3)
    at = T0 + timedelta(minutes=9)
    skipped = device.store.skip_meter(
        assignment.id, meters[3].id, skip_code="dog", note="", read_at=at, fix=None
    )
    device.sync()

    swapped = handheld("swapped", live_server.url)
    swapped.login("reader1", PASSWORD)
    swapped.sync()
    [progress] = swapped.store.assignments()
    assert (progress.read, progress.skipped, progress.left) == (3, 1, 2)
    fresh = {m.id: m for m in swapped.store.meters(assignment.id)}
    assert [fresh[m.id].status for m in meters] == ["read"] * 3 + ["skipped", "todo", "todo"]
    assert fresh[meters[0].id].reading_value == Decimal(1100)
    assert fresh[meters[0].id].elsewhere
    assert fresh[meters[3].id].elsewhere_skip_code == "dog"
    assert fresh[meters[3].id].reading_id == skipped.id
    standing_at_the_first = (meters[0].lat, meters[0].lon)
    near = nearest_unread(swapped.store.meters(assignment.id), *standing_at_the_first, 500)
    assert near is not None
    assert near[0].id == meters[4].id


def test_a_meter_read_on_one_handheld_turns_read_on_the_other_at_its_next_pull(
    device: SyncClient,
    handheld: Callable[[str, str], SyncClient],
    live_server: LiveServer,
) -> None:
    other = handheld("other", live_server.url)
    other.login("reader1", PASSWORD)
    other.sync()
    device.sync()
    [assignment] = other.store.assignments()
    assert other.store.assignments()[0].read == 0
    read_all(device, 2)
    device.sync()
    other.sync()  # with its cursor: only what changed comes, the two meters among it
    [progress] = other.store.assignments()
    assert (progress.read, progress.left) == (2, 4)
    # Its own first reading of one of them would be refused: the screens offer no entry.
    assert other.store.meters(assignment.id)[0].done


def test_reader1_starting_fresh_on_the_demo_sees_r101_as_the_office_holds_it(
    handheld: Callable[[str, str], SyncClient], live_server: LiveServer, session: Session
) -> None:
    """The issue's own case: a new data directory, the demo's R-101 as yesterday left it."""
    load_demo(session, live_server.settings)
    session.commit()
    fresh = handheld("fresh", live_server.url)
    fresh.login("reader1", next(u.password for u in USERS if u.username == "reader1"))
    fresh.sync()
    r101 = next(a for a in fresh.store.assignments() if a.route_code == "R-101")
    assert (r101.read, r101.skipped, r101.left) == (35, 2, 4)


class Recording(httpx.HTTPTransport):
    """Keeps each exchange as it went over the link: the request, the answer's headers."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[httpx.Request, httpx.Headers]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        self.seen.append((request, response.headers))
        return response


def test_the_handheld_speaks_contract_2_and_takes_its_answers_gzipped(
    live_server: LiveServer, session: Session, tmp_path: Path
) -> None:
    make_user(session, live_server.settings, "reader1", "reader", "G1")
    make_route(session, "R-1", 30)
    assign(session, "R-1", "reader1")
    link = Recording()
    device = SyncClient(Store(tmp_path / "d.db"), server_url=live_server.url, transport=link)
    device.login("reader1", PASSWORD)
    device.sync()
    ids = read_all(device, 3)
    report = device.sync()
    device.close()
    device.store.close()
    assert (report.accepted, report.points) == (3, 3)
    assert {str(r) for r in session.exec(select(Reading.id))} == set(ids)
    pull = next(h for r, h in link.seen if r.url.path.endswith("/sync/pull"))
    assert pull["content-encoding"] == "gzip"
    [push] = [(r, h) for r, h in link.seen if r.url.path.endswith("/sync/push")]
    request, answer = push
    assert request.headers["X-Gridwalk-Contract"] == answer["X-Gridwalk-Contract"] == "2"
    body = json.loads(gzip.decompress(request.content))
    assert set(body) == {"sent_at", "readings", "track", "job_events"}
    assert body["track"]["n"] == 3


def test_against_a_server_that_speaks_only_contract_1_the_handheld_steps_down_and_syncs(
    device: SyncClient, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server not yet updated: the app is told 426 with the server's contract, which it
    also speaks; it syncs in that one instead of asking the reader to update."""
    from server.api import deps

    monkeypatch.setattr(deps, "SUPPORTED_CONTRACT_VERSIONS", frozenset({1}))
    monkeypatch.setattr(deps, "CONTRACT_VERSION", 1)
    device.sync()
    assert device.contract == 1
    ids = read_all(device, 3)
    report = device.sync()
    assert (report.accepted, report.points) == (3, 3)
    assert {str(r) for r in session.exec(select(Reading.id))} == set(ids)
    assert device.store.sync_state().last_error is None


def test_a_push_stepped_down_mid_sync_is_sent_again_in_contract_1(
    device: SyncClient, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server is rolled back between two syncs: the push refused in contract 2 goes again,
    written in 1, and is stored."""
    from server.api import deps

    device.sync()
    ids = read_all(device, 2)
    monkeypatch.setattr(deps, "SUPPORTED_CONTRACT_VERSIONS", frozenset({1}))
    monkeypatch.setattr(deps, "CONTRACT_VERSION", 1)
    assert device.sync().accepted == 2
    assert device.contract == 1
    assert {str(r) for r in session.exec(select(Reading.id))} == set(ids)
