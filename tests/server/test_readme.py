"""The README's /docs walk-through, pushed as written to the demo: it says what really happens,
on any day."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session

from server.core.config import Settings
from server.demo.utility import USERS, load_demo
from tests.factories import NOW

README = Path(__file__).resolve().parents[2] / "README.md"


def walkthrough_push() -> dict[str, Any]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Trying the sync contract at /docs") :]
    body: dict[str, Any] = json.loads(re.search(r"```json\n(.*?)```", section, re.S)[1])  # type: ignore[index]
    return body


def test_the_readme_walkthrough_push_is_accepted_then_duplicate_then_locked_and_flagged(
    client: TestClient, session: Session, settings: Settings
) -> None:
    load_demo(session, settings)
    session.commit()
    password = {u.username: u.password for u in USERS}

    def login(username: str, device_id: str) -> dict[str, str]:
        response = client.post(
            "/api/v1/auth/login",
            json={"username": username, "password": password[username], "device_id": device_id},
        )
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    reader = login("reader1", "my-test-device")
    pulled = client.get("/api/v1/sync/pull", headers=reader).json()
    [r101] = [a for a in pulled["assignments"] if a["route_code"] == "R-101"]
    meters = {m["id"]: m for m in r101["meters"]}

    body = walkthrough_push()
    [item] = body["readings"]
    # What the README says of them, as the pull shows it.
    assert item["assignment_id"] == r101["id"] == 1
    assert meters[41]["last_reading"] == "29486.000"
    # "put the time now in read_at and a few seconds later in confirmed_at"
    item["read_at"] = NOW.isoformat()
    item["confirmed_at"] = (NOW + timedelta(seconds=20)).isoformat()

    def push(reading: dict[str, Any]) -> dict[str, Any]:
        response = client.post("/api/v1/sync/push", headers=reader, json={"readings": [reading]})
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()["results"][0]
        return result

    assert push(item)["status"] == "accepted"
    assert push(item)["status"] == "duplicate"
    assert push(item | {"value": "29790"})["error"] == "locked"

    supervisor = login("supervisor", "supervisor-desk-01")
    flags = client.get("/api/v1/audit/assignments/1/flags", headers=supervisor).json()
    on_it = {f["code"] for f in flags if f.get("meter_id") == 41}
    assert on_it == {"no_fix", "not_on_track"}
