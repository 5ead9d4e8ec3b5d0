"""One user at a time on a shared handheld: what one user pulled, read and has not sent yet
belongs to them; the next user never sees, edits or sends it, and it goes out at its owner's
next login (the handheld core against the real server, no window)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from mobile.core.field import FieldSession, FieldSettings
from mobile.core.location import FixedSource
from mobile.core.sync import SyncError
from server.models import Reading
from tests.conftest import LiveServer
from tests.factories import PASSWORD, assign, make_route, make_user


@pytest.fixture
def handheld(live_server: LiveServer, session: Session, tmp_path: Path) -> Iterator[FieldSession]:
    settings = live_server.settings
    make_user(session, settings, "reader1", "reader", "G1")
    make_user(session, settings, "reader2", "reader", "G1")
    make_route(session, "R-1", 4)
    make_route(session, "R-2", 3)
    assign(session, "R-1", "reader1")
    assign(session, "R-2", "reader2")
    # Background sync an hour apart: the test syncs when it means to.
    field = FieldSession(
        tmp_path / "device", FixedSource(30.2742, 120.1552), FieldSettings(sync_interval_s=3600)
    )
    yield field
    field.close()


def held(session: Session) -> int:
    session.commit()
    return int(session.exec(select(func.count()).select_from(Reading)).one())


def test_the_next_user_sees_nothing_of_the_first_and_the_first_users_outbox_waits_for_them(
    handheld: FieldSession, live_server: LiveServer, session: Session
) -> None:
    field = handheld
    field.login(live_server.url, "reader1", PASSWORD)
    assert field.client is not None
    field.client.sync()
    [r1] = field.store.assignments()
    meter = field.store.meters(r1.id)[0]
    field.shutdown_sync()  # the link is gone: what is confirmed now waits in the outbox
    field.confirm(meter, field.check(meter, "1100")[0])
    device_id = field.store.device_id()
    assert field.unsent() == 1
    field.logout()

    field.login(live_server.url, "reader2", PASSWORD)
    assert field.client is not None
    field.client.sync()
    # reader2's own route only; none of reader1's customers, readings or outbox.
    assert [a.route_code for a in field.store.assignments()] == ["R-2"]
    assert field.store.readings() == []
    assert field.unsent() == 0
    assert field.store.device_id() == device_id  # one handheld, whoever holds it
    assert held(session) == 0  # reader1's reading was not sent under reader2's token
    field.logout()

    field.login(live_server.url, "reader1", PASSWORD)
    assert [a.route_code for a in field.store.assignments()] == ["R-1"]
    assert field.unsent() == 1
    assert field.client is not None
    field.client.sync()
    assert field.unsent() == 0
    assert held(session) == 1


def test_a_wrong_password_changes_nothing_on_the_handheld(
    handheld: FieldSession, live_server: LiveServer
) -> None:
    field = handheld
    field.login(live_server.url, "reader1", PASSWORD)
    assert field.client is not None
    field.client.sync()
    field.logout()
    with pytest.raises(SyncError):
        field.login(live_server.url, "reader2", "not the password")
    # Still reader1's store in use: their route is there for their next login.
    assert field.username == "reader1"
    assert [a.route_code for a in field.store.assignments()] == ["R-1"]
