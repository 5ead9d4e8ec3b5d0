"""A crew's job on the handheld core (no window): the one lifecycle decides on the device as on
the server, and "+1 h" means one more hour than the current estimate, on both sides."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from common.clock import Clock
from mobile.core.field import EntryError, FieldSession, FieldSettings
from mobile.core.location import FixedSource
from server.main import create_app
from tests.conftest import LiveServer
from tests.factories import NOW, PASSWORD, auth, dispatch_fault, make_route, make_user


@pytest.fixture
def desk_and_crew(
    live_server: LiveServer, session: Session, tmp_path: Path
) -> Iterator[tuple[TestClient, dict[str, str], FieldSession, str]]:
    """The office with a fault job for crew1, expected to be finished in 30 minutes, and
    crew1's handheld logged in and synced."""
    settings = live_server.settings
    make_route(session, "R-1", 3)
    make_user(session, settings, "agent1", "agent")
    make_user(session, settings, "crew1", "crew", "G1")
    with TestClient(create_app(settings, live_server.engine)) as office:
        agent = auth(office, "agent1", "desk-agent-01")
        job = dispatch_fault(
            office, agent, expected_finish=(NOW + timedelta(minutes=30)).isoformat()
        )
        # Background sync only when nudged, an hour apart: the test syncs when it means to.
        field = FieldSession(
            tmp_path / "device", FixedSource(30.2742, 120.1552), FieldSettings(sync_interval_s=3600)
        )
        try:
            field.login(live_server.url, "crew1", PASSWORD)
            sync(field)
            yield office, agent, field, job["id"]
        finally:
            field.close()


def sync(field: FieldSession) -> None:
    assert field.client is not None
    field.client.sync()


def on_server(office: TestClient, job_id: str) -> dict[str, Any]:
    """The job as an agent sees it (logged in now: the clock has moved past older tokens)."""
    agent = auth(office, "agent1", "desk-agent-01")
    response = office.get(f"/api/v1/jobs/{job_id}", headers=agent)
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return job


def test_plus_one_hour_adds_an_hour_to_the_current_expected_finish_on_both_sides(
    desk_and_crew: tuple[TestClient, dict[str, str], FieldSession, str], clock: Clock
) -> None:
    office, _, field, job_id = desk_and_crew
    clock.advance(timedelta(minutes=5))
    field.start_job(job_id)
    clock.advance(timedelta(minutes=5))
    # Expected at NOW + 30 min; ten minutes on, the crew needs one hour more than that.
    assert field.extend_eta(job_id, timedelta(hours=1)) == NOW + timedelta(minutes=90)
    clock.advance(timedelta(minutes=1))
    assert field.extend_eta(job_id, timedelta(hours=1)) == NOW + timedelta(minutes=150)
    assert field.store.job(job_id).expected_finish == NOW + timedelta(minutes=150)

    sync(field)

    job = on_server(office, job_id)
    assert job["status"] == "started"
    assert datetime.fromisoformat(job["expected_finish"]) == NOW + timedelta(minutes=150)


def test_the_handheld_refuses_offline_what_the_server_would_refuse(
    desk_and_crew: tuple[TestClient, dict[str, str], FieldSession, str], clock: Clock
) -> None:
    office, _, field, job_id = desk_and_crew
    with pytest.raises(EntryError, match="cannot finish before it starts"):
        field.finish_job(job_id, "done")
    clock.advance(timedelta(minutes=5))
    field.start_job(job_id)
    with pytest.raises(EntryError, match="already started"):
        field.start_job(job_id)
    clock.advance(timedelta(minutes=30))
    field.finish_job(job_id, "fuse replaced")
    assert field.store.job(job_id).status == "finished"
    with pytest.raises(EntryError, match="job is closed"):
        field.extend_eta(job_id, timedelta(hours=1))
    clock.advance(timedelta(minutes=1))
    field.note_job(job_id, "customer thanked the crew")  # a note is welcome at any time
    sync(field)
    assert [(e["kind"], e["sync_status"]) for e in field.store.job_events(job_id)] == [
        ("started", "accepted"),
        ("finished", "accepted"),
        ("note", "accepted"),
    ]
    assert on_server(office, job_id)["status"] == "finished"
