"""The device database: pulled work, drafts, the lock on confirmed readings, the outbox."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from common import wire
from common.clock import Clock
from common.wire import Fix
from mobile.core.store import Store
from mobile.core.views import AlreadyReadError, StoreError
from tests.factories import CYCLE, LAST_READ_AT, READ_AT, WINDOW_END, WINDOW_START

T0 = READ_AT


def pulled(n: int = 3, **extra: Any) -> dict[str, Any]:
    meters = [
        {
            "id": 100 + i,
            "meter_no": f"M-{i}",
            "account_no": f"A-{i}",
            "customer_name": f"Customer {i}",
            "address": f"{i} River Road",
            "lat": 30.27 + i * 3e-4,
            "lon": 120.15,
            "digits": 6,
            "multiplier": "1",
            "last_reading": "1000",
            "last_read_at": LAST_READ_AT.isoformat(),
            "expected_low": "50",
            "expected_high": "400",
            "sequence": (i + 1) * 10,
        }
        for i in range(n)
    ]
    body = {
        "cursor": "c1",
        "has_more": False,
        "assignments": [
            {
                "id": 7,
                "route_code": "R-1",
                "route_name": "Route 1",
                "cycle": CYCLE,
                "window_start": WINDOW_START.isoformat(),
                "window_end": WINDOW_END.isoformat(),
                "meters": meters,
            }
        ],
        "jobs": [],
        "reread_orders": [],
        "withdrawn": [],
    }
    body.update(extra)
    return body


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "device.db")
    store.apply_pull(wire.PullPage.from_json(pulled()))
    return store


def fix_at(lat: float = 30.27, lon: float = 120.15) -> Fix:
    return Fix(lat=lat, lon=lon, accuracy_m=5.0, fix_time=T0)


def test_the_device_id_is_made_once_and_kept(tmp_path: Path) -> None:
    first = Store(tmp_path / "d.db")
    device_id = first.device_id()
    first.close()
    assert Store(tmp_path / "d.db").device_id() == device_id
    assert device_id.startswith("gw-")


def test_a_pull_is_stored_with_its_cursor_and_progress(store: Store) -> None:
    [assignment] = store.assignments()
    assert (assignment.route_code, assignment.total, assignment.left) == ("R-1", 3, 3)
    assert [m.meter_no for m in store.meters(7)] == ["M-0", "M-1", "M-2"]
    assert store.setting("cursor") == "c1"
    # A changed meter in a later pull updates it in place.
    later = pulled()
    later["assignments"][0]["meters"] = [
        dict(later["assignments"][0]["meters"][1], address="1 New Road")
    ]
    later["cursor"] = "c2"
    store.apply_pull(wire.PullPage.from_json(later))
    assert store.meter(7, 101).address == "1 New Road"
    assert len(store.meters(7)) == 3


def test_a_confirmed_reading_is_locked_even_against_raw_sql(store: Store, tmp_path: Path) -> None:
    reading = store.confirm_reading(7, 100, value=Decimal("1100.5"), read_at=T0, fix=fix_at())
    assert reading.locked
    with pytest.raises(AlreadyReadError):
        store.confirm_reading(7, 100, value=Decimal("1200"), read_at=T0, fix=None)
    db = sqlite3.connect(tmp_path / "device.db")
    with pytest.raises(sqlite3.IntegrityError, match="locked"):
        db.execute("UPDATE readings SET value = '9' WHERE id = ?", (reading.id,))
    with pytest.raises(sqlite3.IntegrityError, match="locked"):
        db.execute("DELETE FROM readings WHERE id = ?", (reading.id,))
    db.close()
    assert store.reading(reading.id).value == Decimal("1100.5")


def test_a_draft_survives_a_restart_and_becomes_the_confirmed_reading(tmp_path: Path) -> None:
    store = Store(tmp_path / "device.db")
    store.apply_pull(wire.PullPage.from_json(pulled()))
    draft_id = store.save_draft(7, 101, value=Decimal("1234"), read_at=T0, fix=fix_at())
    store.close()
    reopened = Store(tmp_path / "device.db")
    draft = reopened.draft(7, 101)
    assert draft is not None
    assert (draft.id, draft.value, draft.locked) == (draft_id, Decimal("1234"), False)
    confirmed = reopened.confirm_reading(7, 101, value=Decimal("1235"), read_at=T0, fix=fix_at())
    assert confirmed.id == draft_id
    assert reopened.draft(7, 101) is None


def test_a_skip_needs_a_known_code_and_counts_as_done(store: Store) -> None:
    with pytest.raises(StoreError, match="skip code"):
        store.skip_meter(7, 100, skip_code="aliens", note="", read_at=T0, fix=None)
    store.skip_meter(7, 100, skip_code="dog", note="big dog at the gate", read_at=T0, fix=None)
    store.confirm_reading(7, 101, value=Decimal("1100"), read_at=T0, fix=None)
    [assignment] = store.assignments()
    assert (assignment.read, assignment.skipped, assignment.left) == (1, 1, 1)
    assert [m.status for m in store.meters(7)] == ["skipped", "read", "todo"]


def test_a_reread_order_is_a_task_answered_once(store: Store) -> None:
    first = store.confirm_reading(7, 100, value=Decimal("1000"), read_at=T0, fix=None)
    store.apply_pull(
        wire.PullPage.from_json(
            pulled(
                cursor="c2",
                assignments=[],
                reread_orders=[
                    {
                        "id": "order-1",
                        "assignment_id": 7,
                        "meter_id": 100,
                        "reading_id": first.id,
                        "reason": "unchanged register",
                        "ordered_at": T0.isoformat(),
                    }
                ],
            )
        )
    )
    meter = store.meter(7, 100)
    assert (meter.reread_order_id, meter.done) == ("order-1", False)
    store.confirm_reading(
        7,
        100,
        value=Decimal("1090"),
        read_at=T0 + timedelta(hours=1),
        fix=None,
        reread_of="order-1",
    )
    assert store.meter(7, 100).done
    with pytest.raises(AlreadyReadError):
        store.confirm_reading(
            7, 100, value=Decimal("1091"), read_at=T0, fix=None, reread_of="order-1"
        )


def test_withdrawn_work_leaves_the_screens(store: Store) -> None:
    store.apply_pull(
        wire.PullPage.from_json(
            pulled(
                cursor="c2",
                assignments=[],
                withdrawn=[{"type": "meter", "id": "101", "assignment_id": 7}],
            )
        )
    )
    assert [m.id for m in store.meters(7)] == [100, 102]
    store.apply_pull(
        wire.PullPage.from_json(
            pulled(
                cursor="c3",
                assignments=[],
                withdrawn=[{"type": "assignment", "id": "7", "assignment_id": 7}],
            )
        )
    )
    assert store.assignments() == []


def test_the_outbox_clears_accepted_and_keeps_rejected_visible(store: Store, clock: Clock) -> None:
    good = store.confirm_reading(7, 100, value=Decimal("1100"), read_at=T0, fix=None)
    clock.advance(timedelta(seconds=30))  # the outbox sends in the order confirmed
    bad = store.confirm_reading(7, 101, value=Decimal("1101"), read_at=T0, fix=None)
    store.save_draft(7, 102, value=Decimal("5"), read_at=T0, fix=None)  # drafts are not sent
    store.add_track_point(t=T0, lat=30.27, lon=120.15, accuracy_m=5)
    store.add_track_point(t=T0, lat=30.27, lon=120.15, accuracy_m=5)  # same t: one point
    batch = store.outbox_batch()
    assert batch.reading_ids == [good.id, bad.id]
    assert len(batch.push.track_points) == 1
    store.record_push(
        batch,
        wire.PushAnswer.from_json(
            {
                "results": [
                    {"id": good.id, "status": "accepted"},
                    {
                        "id": bad.id,
                        "status": "rejected",
                        "error": "already_read",
                        "detail": "meter already read",
                    },
                ],
                "track": {"accepted": 1, "duplicate": 0, "rejected": []},
            }
        ),
    )
    assert store.outbox_batch().empty
    state = store.sync_state()
    assert (state.waiting, state.rejected) == (0, 1)
    [rejected] = store.rejected()
    assert (rejected.id, rejected.sync_error) == (bad.id, "already_read")
    # The route shows it as refused, on its meter, with the office's code; the accepted one not.
    meters = {m.id: m for m in store.meters(7)}
    assert (meters[100].refusal, meters[101].refusal) == (None, "already_read")


def test_a_refusal_is_told_in_words_with_what_to_do_in_the_readers_language() -> None:
    from mobile.core import language

    happened, todo = language.refusal_advice("already_read")
    assert "another handheld" in happened
    assert "re-read" in todo
    language.use("zh_CN")
    happened, todo = language.refusal_advice("already_read")
    assert "复抄" in todo
    # A code this app does not know yet is still a refusal, with the safe advice.
    assert language.refusal_advice("new_code_from_a_newer_server") == language.refusal_advice(
        "invalid"
    )
