"""Bad input of any kind gets a clear 4xx naming what is wrong, per item in a batch, and the
good items beside it are stored: no 500, no half-written push, no outbox stuck for good."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from server.core.config import Settings
from server.models import Reading
from tests.factories import auth, make_user, reader_day, reading

PUSH = "/api/v1/sync/push"


def held(session: Session) -> int:
    session.commit()
    return int(session.exec(select(func.count()).select_from(Reading)).one())


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"note": "gate\u0000locked"}, "note"),
        (
            {"read_at": "9999-12-31T23:59:00+00:00", "confirmed_at": "9999-12-31T23:59:30+00:00"},
            "read_at",
        ),
        ({"read_at": "0001-01-01T00:00:00+00:00"}, "read_at"),
    ],
    ids=["nul-in-note", "year-9999", "year-0001"],
)
def test_one_bad_reading_is_rejected_by_name_and_the_good_one_beside_it_is_stored(
    client: TestClient, session: Session, settings: Settings, bad: dict[str, Any], field: str
) -> None:
    day = reader_day(session, settings, client)
    good = reading(day.assignment.id, day.meters[0])
    broken = reading(day.assignment.id, day.meters[1]) | bad
    response = client.post(PUSH, headers=day.headers, json={"readings": [good, broken]})
    assert response.status_code == 200, response.text
    first, second = response.json()["results"]
    assert first["status"] == "accepted"
    assert (second["status"], second["error"]) == ("rejected", "invalid")
    assert field in second["detail"]
    assert held(session) == 1


def test_json_nested_thousands_deep_is_a_400_not_a_crash(
    client: TestClient, session: Session, settings: Settings
) -> None:
    day = reader_day(session, settings, client)
    deep = "[" * 3000 + "]" * 3000
    response = client.post(
        PUSH, headers=day.headers | {"Content-Type": "application/json"}, content=deep
    )
    assert response.status_code == 400
    assert response.json()["code"] == "not_json"


@pytest.mark.parametrize("assignment_id", ["99999999999999999999", "-1", "0"])
def test_an_id_no_row_can_have_is_a_422_naming_it(
    client: TestClient, session: Session, settings: Settings, assignment_id: str
) -> None:
    make_user(session, settings, "sup1", "supervisor", "G1")
    headers = auth(client, "sup1", "sup-desk-01")
    response = client.get(f"/api/v1/audit/assignments/{assignment_id}", headers=headers)
    assert response.status_code == 422
    assert "assignment_id" in response.text
