"""The contract as other tools see it: OpenAPI, and at-least-once delivery under concurrency."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from server.core.config import Settings
from server.main import create_app
from server.models import Reading
from tests.factories import reader_day, reading


def test_openapi_describes_every_endpoint_and_the_push_body(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path in (
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/sync/pull",
        "/api/v1/sync/push",
        "/api/v1/admin/users",
        "/api/v1/admin/assignments",
        "/api/v1/admin/meters/import",
        "/api/v1/admin/devices/{device_id}/revoke",
    ):
        assert path in spec["paths"], path
    schemas = spec["components"]["schemas"]
    assert set(schemas["PushRequest"]["properties"]) == {
        "sent_at",
        "readings",
        "track_points",
        "job_events",
    }
    assert {
        "ReadingIn",
        "Fix",
        "TrackPointIn",
        "JobEventIn",
        "PullResponse",
        "PushResponse",
    } <= set(schemas)
    assert client.get("/docs").status_code == 200


def test_the_same_batch_pushed_twice_at_once_stores_each_reading_once(
    client: TestClient, session: Session, settings: Settings, engine: Engine
) -> None:
    """A device that retries while its first push is still in flight: each record once."""
    day = reader_day(session, settings, client, n_meters=20)
    batch = {
        "readings": [
            reading(day.assignment.id, m, value=str(1500 + i)) for i, m in enumerate(day.meters)
        ]
    }

    # Two servers (apps) over one database. FastAPI builds a route's handling on its first
    # request; two test clients doing that in two threads at once race inside pydantic (a
    # server has one event loop and never does): an empty push first, one app at a time.
    with ExitStack() as stack:
        clients = [stack.enter_context(TestClient(create_app(settings, engine))) for _ in "ab"]
        for other in clients:
            warm = other.post("/api/v1/sync/push", headers=day.headers, json={})
            assert warm.status_code == 200, warm.text

        def send(i: int) -> list[dict[str, Any]]:
            response = clients[i].post("/api/v1/sync/push", headers=day.headers, json=batch)
            assert response.status_code == 200, response.text
            results: list[dict[str, Any]] = response.json()["results"]
            return results

        with ThreadPoolExecutor(max_workers=2) as pool:
            first, second = pool.map(send, range(2))
    for a, b in zip(first, second, strict=True):
        assert sorted([a["status"], b["status"]]) == ["accepted", "duplicate"], (a, b)
    session.commit()
    assert session.exec(select(func.count()).select_from(Reading)).one() == 20


def test_openapi_documents_every_answer_and_its_errors(client: TestClient) -> None:
    """Every API route says what it answers (no bare `object`), and its error body."""
    spec = client.get("/openapi.json").json()
    untyped, undocumented = [], []
    for path, operations in spec["paths"].items():
        if not path.startswith("/api/v1/"):
            continue
        for method, op in operations.items():
            where = f"{method.upper()} {path}"
            ok = next(op["responses"][s] for s in ("200", "201", "204") if s in op["responses"])
            json_body = ok.get("content", {}).get("application/json")
            if json_body is not None:
                schema = json_body["schema"]
                if schema in ({}, {"type": "object"}) or schema.get("additionalProperties") is True:
                    untyped.append(where)
            errors = {s for s in op["responses"] if s.startswith(("4", "5"))}
            refs = {
                body["schema"].get("$ref")
                for s in errors - {"422"}
                for body in op["responses"][s]["content"].values()
            }
            if not errors or refs != {"#/components/schemas/ErrorBody"}:
                undocumented.append(where)
    assert untyped == []
    assert undocumented == []
