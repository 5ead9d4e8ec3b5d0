"""The wire is written once (common.wire); the server's pydantic twins have the same fields, so
the handheld and the server cannot drift apart without a test failing here."""

from __future__ import annotations

import dataclasses
import typing
from datetime import timedelta
from decimal import Decimal

import pytest
from pydantic import BaseModel

from common import job_lifecycle, wire
from server.schemas import wire as twins
from tests.factories import NOW, TODAY

PAIRS: list[tuple[type[wire.Record], type[BaseModel]]] = [
    (wire.Fix, twins.Fix),
    (wire.Reading, twins.ReadingIn),
    (wire.TrackPoint, twins.TrackPointIn),
    (wire.MeterCheck, twins.MeterCheck),
    (wire.JobEvent, twins.JobEventIn),
    (wire.Push, twins.PushRequest),
    (wire.PushResult, twins.PushResult),
    (wire.TrackRejection, twins.TrackRejection),
    (wire.TrackResult, twins.TrackResult),
    (wire.PushAnswer, twins.PushResponse),
    (wire.Meter, twins.MeterOut),
    (wire.Assignment, twins.AssignmentOut),
    (wire.RereadOrder, twins.RereadOrderOut),
    (wire.Job, twins.JobOut),
    (wire.Withdrawn, twins.Withdrawn),
    (wire.PullPage, twins.PullResponse),
]


def test_every_wire_record_has_a_twin() -> None:
    assert {record for record, _ in PAIRS} == set(wire.WIRE_RECORDS)


@pytest.mark.parametrize(("record", "twin"), PAIRS, ids=lambda c: c.__name__)
def test_a_record_and_its_twin_have_the_same_fields_and_the_same_required_ones(
    record: type[wire.Record], twin: type[BaseModel]
) -> None:
    fields = {f.name: f for f in dataclasses.fields(record)}
    assert set(fields) == set(twin.model_fields)
    required = {
        name
        for name, f in fields.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    assert required == {name for name, f in twin.model_fields.items() if f.is_required()}


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (wire.SKIP_CODES, twins.SkipCode),
        (wire.PUSH_STATUSES, twins.PushStatus),
        (tuple(job_lifecycle.JobEventKind), twins.JobEventKind),
    ],
)
def test_the_named_values_are_the_same_on_both_sides(ours: tuple[str, ...], theirs: object) -> None:
    assert set(ours) == set(typing.get_args(theirs))


def test_the_withdrawn_types_are_the_twins() -> None:
    assert set(wire.WITHDRAWN_TYPES) == set(
        typing.get_args(twins.Withdrawn.model_fields["type"].annotation)
    )


def test_a_push_goes_to_json_and_back_and_the_server_accepts_its_shape() -> None:
    fix = wire.Fix(lat=30.27, lon=120.15, accuracy_m=5.0, fix_time=NOW - timedelta(seconds=3))
    push = wire.Push(
        sent_at=NOW,
        readings=(
            wire.Reading(
                id="5f0c1a52-8d7e-4c56-9a49-0a3d8b7e1f01",
                assignment_id=1,
                meter_id=41,
                value=Decimal("29786.5"),
                read_at=NOW - timedelta(minutes=1),
                confirmed_at=NOW,
                fix=fix,
            ),
        ),
        track_points=(wire.TrackPoint(t=NOW, lat=30.27, lon=120.15, accuracy_m=4.0),),
        job_events=(
            wire.JobEvent(
                id="6f0c1a52-8d7e-4c56-9a49-0a3d8b7e1f02",
                job_id="7f0c1a52-8d7e-4c56-9a49-0a3d8b7e1f03",
                kind="finished",
                at=NOW,
                fix=fix,
                meter_check=wire.MeterCheck(method="pulse_lamp", outcome="meter_ok"),
            ),
        ),
    )
    body = push.to_json()
    assert wire.Push.from_json(body) == push
    checked = twins.PushRequest.model_validate(body)
    assert checked.readings[0].value == Decimal("29786.5")
    assert checked.job_events[0].meter_check is not None


def test_a_pull_page_as_the_server_writes_it_reads_back_whole() -> None:
    page = twins.PullResponse(
        cursor="c1",
        has_more=False,
        assignments=[
            twins.AssignmentOut(
                id=1,
                route_code="R-1",
                route_name="Route 1",
                cycle="2026-12",
                window_start=TODAY,
                window_end=TODAY + timedelta(days=4),
                meters=[
                    twins.MeterOut(
                        id=7,
                        meter_no="M-7",
                        account_no="A-7",
                        customer_name="王芳",
                        address="滨江路1号",
                        lat=30.27,
                        lon=120.15,
                        digits=6,
                        multiplier=Decimal(1),
                        last_reading=Decimal("1000.000"),
                        last_read_at=NOW - timedelta(days=30),
                        expected_low=None,
                        expected_high=Decimal(400),
                        sequence=10,
                    )
                ],
            )
        ],
        jobs=[],
        reread_orders=[],
        withdrawn=[twins.Withdrawn(type="meter", id="8", assignment_id=1)],
    )
    read = wire.PullPage.from_json(page.model_dump(mode="json"))
    [assignment] = read.assignments
    assert assignment.window_end == TODAY + timedelta(days=4)
    assert assignment.meters[0].last_reading == Decimal("1000.000")
    assert assignment.meters[0].customer_name == "王芳"
    assert read.withdrawn[0].assignment_id == 1


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({"lat": 1, "lon": 2, "accuracy_m": 3}, "fix_time is missing"),
        ({"lat": "north", "lon": 2, "accuracy_m": 3, "fix_time": NOW.isoformat()}, "Fix.lat"),
        (
            {"lat": 1, "lon": 2, "accuracy_m": 3, "fix_time": NOW.replace(tzinfo=None).isoformat()},
            "no time zone",
        ),
        ([1, 2], "expected an object"),
    ],
)
def test_a_shape_that_is_not_the_contract_is_named(data: object, says: str) -> None:
    with pytest.raises(wire.WireError, match=says):
        wire.Fix.from_json(data)


def test_a_refusal_carries_its_params_to_the_handheld_and_an_answer_without_them_still_reads() -> (
    None
):
    refused = {
        "id": "r1",
        "status": "rejected",
        "error": "already_read",
        "detail": "电表 M-1 在此任务中已有示数；重新抄表需要网格长下达复抄任务",
        "params": {"meter": "M-1"},
    }
    assert wire.PushResult.from_json(refused).params == {"meter": "M-1"}
    assert wire.PushResult.from_json({"id": "r2", "status": "accepted"}).params is None
