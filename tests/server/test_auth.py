"""Logging in, refreshing, revoking, and the role and object checks on every endpoint."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from common import clock
from common.clock import Clock
from server.core.config import Settings
from server.main import create_app
from server.models import AdminLog, User
from tests.factories import (
    CYCLE,
    PASSWORD,
    TODAY,
    auth,
    login,
    make_route,
    make_user,
    reader_day,
    reading,
)


def test_login_returns_tokens_and_the_user(
    client: TestClient, session: Session, settings: Settings
) -> None:
    make_user(session, settings, "reader1", "reader", "G1")
    body = login(client, "reader1")
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == settings.access_token_minutes * 60
    assert body["user"]["username"] == "reader1"
    assert body["user"]["role"] == "reader"
    assert body["access_token"]
    assert body["refresh_token"]


def test_password_is_stored_as_an_argon2_hash(session: Session, settings: Settings) -> None:
    make_user(session, settings, "reader1", "reader")
    user = session.exec(select(User)).one()
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash


def test_wrong_password_and_unknown_user_get_the_same_401(
    client: TestClient, session: Session, settings: Settings
) -> None:
    make_user(session, settings, "reader1", "reader")
    answers = [
        client.post(
            "/api/v1/auth/login",
            json={"username": name, "password": "wrong-password", "device_id": "device-0001"},
        )
        for name in ("reader1", "nobody")
    ]
    assert [a.status_code for a in answers] == [401, 401]
    assert (
        answers[0].json()["detail"] == answers[1].json()["detail"] == "Wrong user name or password."
    )
    # Said in the language the handheld or page asks for; the code stays the same.
    chinese = client.post(
        "/api/v1/auth/login",
        headers={"Accept-Language": "zh-CN"},
        json={"username": "reader1", "password": "wrong-password", "device_id": "device-0001"},
    )
    assert chinese.json() | {"detail": None} == answers[0].json() | {"detail": None}
    assert chinese.json()["detail"] == "用户名或密码错误。"


def test_login_with_a_malformed_body_names_the_field(client: TestClient) -> None:
    response = client.post("/api/v1/auth/login", json={"username": "x", "password": "y"})
    assert response.status_code == 422
    assert "device_id" in response.json()["detail"]


def test_refresh_rotates_and_a_spent_token_revokes_the_chain(
    client: TestClient, session: Session, settings: Settings
) -> None:
    make_user(session, settings, "reader1", "reader")
    first = login(client, "reader1")
    second = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    assert second.json()["refresh_token"] != first["refresh_token"]
    # The spent token again: somebody copied it. Both it and its successor die.
    replay = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert replay.status_code == 401
    assert replay.json()["code"] == "refresh_reused"
    after = client.post(
        "/api/v1/auth/refresh", json={"refresh_token": second.json()["refresh_token"]}
    )
    assert after.status_code == 401


def test_requests_without_or_with_a_bad_token_are_401(client: TestClient) -> None:
    assert client.get("/api/v1/sync/pull").status_code == 401
    bad = client.get("/api/v1/sync/pull", headers={"Authorization": "Bearer not-a-token"})
    assert bad.status_code == 401
    assert bad.json()["code"] == "invalid_token"


def test_an_access_token_expires_when_the_servers_clock_passes_its_life(
    client: TestClient, session: Session, settings: Settings, clock: Clock
) -> None:
    make_user(session, settings, "reader1", "reader")
    headers = auth(client, "reader1")
    clock.advance(timedelta(minutes=settings.access_token_minutes) - timedelta(seconds=1))
    assert client.get("/api/v1/sync/pull", headers=headers).status_code == 200
    clock.advance(timedelta(seconds=1))
    response = client.get("/api/v1/sync/pull", headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == "token_expired"


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "abc", "role": "reader"},
        {"sub": "99999999999999999999999", "role": "reader"},
        {"sub": "1"},
        {"sub": "1", "role": ["admin"]},
        {"sub": "1", "role": "reader", "exp": "tomorrow"},
    ],
    ids=["sub-not-a-number", "sub-beyond-64-bits", "no-role", "role-not-a-string", "exp-text"],
)
def test_a_signed_token_with_forged_claims_is_401_invalid_token(
    client: TestClient, session: Session, settings: Settings, claims: dict[str, object]
) -> None:
    make_user(session, settings, "reader1", "reader")
    payload = {
        "dev": "device-0001",
        "typ": "access",
        "exp": int((clock.now() + timedelta(minutes=5)).timestamp()),
    } | claims
    token = jwt.encode(payload, settings.secret_key, algorithm="HS256")
    response = client.get("/api/v1/sync/pull", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"


def test_revoking_a_device_kills_its_tokens_and_its_logins(
    client: TestClient, session: Session, settings: Settings
) -> None:
    make_user(session, settings, "admin", "admin")
    make_user(session, settings, "reader1", "reader")
    reader = login(client, "reader1", "lost-device-7")
    headers = {"Authorization": f"Bearer {reader['access_token']}"}
    assert client.get("/api/v1/sync/pull", headers=headers).status_code == 200

    revoked = client.post(
        "/api/v1/admin/devices/lost-device-7/revoke", headers=auth(client, "admin", "admin-desk-01")
    )
    assert revoked.status_code == 200

    assert client.get("/api/v1/sync/pull", headers=headers).json()["code"] == "device_revoked"
    again = client.post("/api/v1/auth/refresh", json={"refresh_token": reader["refresh_token"]})
    assert again.status_code == 401
    relogin = client.post(
        "/api/v1/auth/login",
        json={"username": "reader1", "password": PASSWORD, "device_id": "lost-device-7"},
    )
    assert relogin.status_code == 401
    assert relogin.json()["code"] == "device_revoked"
    # The same reader on another device still works; the revocation is on the audit log.
    assert login(client, "reader1", "new-device-8")
    assert session.exec(select(AdminLog).where(AdminLog.action == "device.revoke")).one()


def test_revoking_a_user_kills_all_their_tokens(
    client: TestClient, session: Session, settings: Settings
) -> None:
    make_user(session, settings, "admin", "admin")
    make_user(session, settings, "reader1", "reader")
    reader = login(client, "reader1")
    response = client.post(
        "/api/v1/admin/users/reader1/revoke", headers=auth(client, "admin", "admin-desk-01")
    )
    assert response.status_code == 200
    assert response.json()["active"] is False
    headers = {"Authorization": f"Bearer {reader['access_token']}"}
    assert client.get("/api/v1/sync/pull", headers=headers).json()["code"] == "user_revoked"
    assert (
        client.post(
            "/api/v1/auth/refresh", json={"refresh_token": reader["refresh_token"]}
        ).status_code
        == 401
    )


def test_revoking_an_unknown_device_is_404(
    client: TestClient, session: Session, settings: Settings
) -> None:
    make_user(session, settings, "admin", "admin")
    response = client.post(
        "/api/v1/admin/devices/never-seen-1/revoke", headers=auth(client, "admin", "admin-desk-01")
    )
    assert response.status_code == 404


def test_only_an_admin_may_use_the_admin_api(
    client: TestClient, session: Session, settings: Settings
) -> None:
    for role in ("reader", "crew", "supervisor", "agent"):
        make_user(session, settings, role, role, grid_code="G1")
        response = client.post(
            "/api/v1/admin/users",
            headers=auth(client, role),
            json={"username": "x", "password": "password-1", "role": "reader"},
        )
        assert response.status_code == 403, role
        assert response.json()["code"] == "wrong_role"


def test_agents_and_admins_cannot_pull_a_route(
    client: TestClient, session: Session, settings: Settings
) -> None:
    for role in ("agent", "admin"):
        make_user(session, settings, role, role)
        assert client.get("/api/v1/sync/pull", headers=auth(client, role)).status_code == 403


def test_a_reader_cannot_push_into_another_readers_assignment(
    client: TestClient, session: Session, settings: Settings
) -> None:

    day = reader_day(session, settings, client)
    make_user(session, settings, "reader2", "reader", "G1")
    other = auth(client, "reader2", "device-0002")
    response = client.post(
        "/api/v1/sync/push",
        headers=other,
        json={"readings": [reading(day.assignment.id, day.meters[0])]},
    )
    assert response.json()["results"][0]["error"] == "not_your_assignment"
    pulled = client.get("/api/v1/sync/pull", headers=other).json()
    assert pulled["assignments"] == []


def test_admin_creates_users_grids_and_assignments(
    client: TestClient, session: Session, settings: Settings
) -> None:

    make_user(session, settings, "admin", "admin")
    make_route(session, "R-9", 3)
    headers = auth(client, "admin", "admin-desk-01")
    user_in_g9 = {"username": "sup9", "password": "password-9", "role": "supervisor"}
    unknown_grid = client.post(
        "/api/v1/admin/users", headers=headers, json=user_in_g9 | {"grid_code": "G9"}
    )
    assert unknown_grid.status_code == 404
    assert unknown_grid.json()["code"] == "grid_not_found"
    grid = client.post(
        "/api/v1/admin/grids", headers=headers, json={"code": "G9", "name": "Riverside"}
    )
    assert grid.status_code == 201, grid.text
    assert grid.json()["name"] == "Riverside"
    twice = client.post("/api/v1/admin/grids", headers=headers, json={"code": "G9"})
    assert twice.status_code == 409
    created = client.post(
        "/api/v1/admin/users",
        headers=headers,
        json={
            "username": "sup9",
            "password": "password-9",
            "role": "supervisor",
            "grid_code": "G9",
        },
    )
    assert created.status_code == 201
    assert created.json()["grid_code"] == "G9"
    reader = client.post(
        "/api/v1/admin/users",
        headers=headers,
        json={"username": "reader9", "password": "password-9", "role": "reader", "grid_code": "G9"},
    )
    assert reader.status_code == 201
    again = client.post(
        "/api/v1/admin/users",
        headers=headers,
        json={"username": "reader9", "password": "password-9", "role": "reader"},
    )
    assert again.status_code == 409
    bad_role = client.post(
        "/api/v1/admin/users",
        headers=headers,
        json={"username": "x9", "password": "password-9", "role": "wizard"},
    )
    assert bad_role.status_code == 422
    assert "role" in bad_role.json()["detail"]

    first, fifth = TODAY.isoformat(), (TODAY + timedelta(days=4)).isoformat()
    assignment = client.post(
        "/api/v1/admin/assignments",
        headers=headers,
        json={
            "route_code": "R-9",
            "reader": "reader9",
            "cycle": CYCLE,
            "window_start": first,
            "window_end": fifth,
        },
    )
    assert assignment.status_code == 201, assignment.text
    assert assignment.json()["id"] > 0
    assert assignment.json()["cycle"] == CYCLE

    backwards = client.post(
        "/api/v1/admin/assignments",
        headers=headers,
        json={
            "route_code": "R-9",
            "reader": "reader9",
            "cycle": CYCLE,
            "window_start": fifth,
            "window_end": first,
        },
    )
    assert backwards.status_code == 422
    unknown_route = client.post(
        "/api/v1/admin/assignments",
        headers=headers,
        json={
            "route_code": "R-404",
            "reader": "reader9",
            "cycle": CYCLE,
            "window_start": first,
            "window_end": fifth,
        },
    )
    assert unknown_route.status_code == 404
    to_supervisor = client.post(
        "/api/v1/admin/assignments",
        headers=headers,
        json={
            "route_code": "R-9",
            "reader": "sup9",
            "cycle": CYCLE,
            "window_start": first,
            "window_end": fifth,
        },
    )
    assert to_supervisor.status_code == 422


def test_an_old_contract_version_gets_a_clear_426(
    client: TestClient, session: Session, settings: Settings
) -> None:
    make_user(session, settings, "reader1", "reader")
    headers = auth(client, "reader1") | {"X-Gridwalk-Contract": "0"}
    response = client.get("/api/v1/sync/pull", headers=headers)
    assert response.status_code == 426
    assert "update the app" in response.json()["detail"]
    old_app = client.get(
        "/api/v1/sync/pull",
        headers=auth(client, "reader1") | {"X-Gridwalk-App": "0.0.1", "X-Gridwalk-Contract": "1"},
    )
    assert old_app.status_code == 426
    assert old_app.json()["code"] == "app_too_old"


def test_logging_out_kills_this_devices_refresh_token_only(
    client: TestClient, session: Session, settings: Settings
) -> None:
    make_user(session, settings, "sup1", "supervisor", "G1")
    desk = login(client, "sup1", "web-desk-0001")
    phone = login(client, "sup1", "phone-000001")
    response = client.post(
        "/api/v1/auth/logout", headers={"Authorization": f"Bearer {desk['access_token']}"}
    )
    assert response.status_code == 204
    refused = client.post("/api/v1/auth/refresh", json={"refresh_token": desk["refresh_token"]})
    assert refused.status_code == 401
    kept = client.post("/api/v1/auth/refresh", json={"refresh_token": phone["refresh_token"]})
    assert kept.status_code == 200
    assert client.post("/api/v1/auth/logout").status_code == 401


def test_refresh_token_reuse_ends_the_devices_access_tokens_at_once(
    client: TestClient, session: Session, settings: Settings
) -> None:
    make_user(session, settings, "reader1", "reader", "G1")
    first = login(client, "reader1", "device-0001")
    elsewhere = auth(client, "reader1", "device-0002")
    second = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    replay = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert replay.json()["code"] == "refresh_reused"
    # Both access tokens of the copied chain stop working now, not when they run out.
    for tokens in (first, second.json()):
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        response = client.get("/api/v1/sync/pull", headers=headers)
        assert (response.status_code, response.json()["code"]) == (401, "session_ended")
    # Another device of the same user is not touched; a new login on this device works at once
    # (the frozen clock: in the very second of the reset).
    assert client.get("/api/v1/sync/pull", headers=elsewhere).status_code == 200
    assert client.get("/api/v1/sync/pull", headers=auth(client, "reader1")).status_code == 200


def test_logging_out_ends_the_access_token_at_once(
    client: TestClient, session: Session, settings: Settings
) -> None:
    make_user(session, settings, "sup1", "supervisor", "G1")
    desk = {"Authorization": f"Bearer {login(client, 'sup1', 'web-desk-0001')['access_token']}"}
    phone = auth(client, "sup1", "phone-000001")
    assert client.post("/api/v1/auth/logout", headers=desk).status_code == 204
    after = client.get("/api/v1/jobs", headers=desk)
    assert (after.status_code, after.json()["code"]) == (401, "session_ended")
    assert client.get("/api/v1/jobs", headers=phone).status_code == 200
    again = auth(client, "sup1", "web-desk-0001")
    assert client.get("/api/v1/jobs", headers=again).status_code == 200


def _try(client: TestClient, username: str, password: str, **kw: Any) -> Any:
    return client.post(
        "/api/v1/auth/login",
        json={"username": username, "password": password, "device_id": "device-0001"},
        **kw,
    )


@pytest.mark.parametrize("username", ["admin", "nobody"], ids=["known-user", "unknown-user"])
def test_failed_logins_lock_the_user_name_out_with_429_and_retry_after(
    client: TestClient, session: Session, settings: Settings, clock: Clock, username: str
) -> None:
    make_user(session, settings, "admin", "admin")
    limit = settings.login_max_failures_per_username
    for _ in range(limit):
        assert _try(client, username, "wrong-password").status_code == 401
    locked = _try(client, username, "wrong-password")
    assert (locked.status_code, locked.json()["code"]) == (429, "too_many_attempts")
    window = settings.login_failure_window_minutes * 60
    assert int(locked.headers["Retry-After"]) == window
    # Even the right password is refused while locked out; a known and an unknown name alike.
    assert _try(client, username, PASSWORD).status_code == 429
    clock.advance(timedelta(seconds=window - 1))
    assert int(_try(client, username, PASSWORD).headers["Retry-After"]) == 1
    clock.advance(timedelta(seconds=1))
    after = _try(client, username, PASSWORD)
    assert after.status_code == (200 if username == "admin" else 401)
    # Other names are not locked out by these failures.
    make_user(session, settings, "reader1", "reader")
    assert login(client, "reader1")


def test_the_lock_counts_failures_within_the_window_only(
    client: TestClient, session: Session, settings: Settings, clock: Clock
) -> None:
    make_user(session, settings, "admin", "admin")
    limit = settings.login_max_failures_per_username
    window = timedelta(minutes=settings.login_failure_window_minutes)
    for _ in range(limit - 1):
        assert _try(client, "admin", "wrong-password").status_code == 401
    clock.advance(window)
    # The first failures have left the window: limit - 1 more are allowed before the lock.
    for _ in range(limit - 1):
        assert _try(client, "admin", "wrong-password").status_code == 401
    assert _try(client, "admin", "wrong-password").status_code == 401
    assert _try(client, "admin", PASSWORD).status_code == 429


def test_a_successful_login_resets_the_user_names_count(
    client: TestClient, session: Session, settings: Settings
) -> None:
    make_user(session, settings, "admin", "admin")
    limit = settings.login_max_failures_per_username
    for _ in range(limit - 1):
        assert _try(client, "admin", "wrong-password").status_code == 401
    assert _try(client, "admin", PASSWORD).status_code == 200
    for _ in range(limit - 1):
        assert _try(client, "admin", "wrong-password").status_code == 401
    assert _try(client, "admin", PASSWORD).status_code == 200


def test_failed_logins_from_one_address_lock_it_out_whatever_the_names(
    client: TestClient, session: Session, settings: Settings
) -> None:
    make_user(session, settings, "admin", "admin")
    limit = settings.login_max_failures_per_address
    for i in range(limit):
        assert _try(client, f"guess-{i}", "wrong-password").status_code == 401
    locked = _try(client, "admin", PASSWORD)
    assert (locked.status_code, locked.json()["code"]) == (429, "too_many_attempts")
    assert int(locked.headers["Retry-After"]) > 0
    # The same name from another address is not locked out.
    other = TestClient(client.app, client=("203.0.113.9", 50000))
    assert _try(other, "admin", PASSWORD).status_code == 200


def test_the_login_lock_holds_across_app_instances(
    client: TestClient, session: Session, settings: Settings, engine: Any
) -> None:
    """Counted in the database: another worker (or a restarted server) sees the same count."""
    make_user(session, settings, "admin", "admin")
    for _ in range(settings.login_max_failures_per_username):
        assert _try(client, "admin", "wrong-password").status_code == 401
    with TestClient(create_app(settings, engine)) as restarted:
        assert _try(restarted, "admin", PASSWORD).status_code == 429
