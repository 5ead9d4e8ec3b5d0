"""Schemathesis against the app's /openapi.json, as every role, on SQLite and PostgreSQL.

For each (database, role) the demo utility is loaded (a user of every role, two routes read
through the real push, flags, a fault being repaired, a planned outage) plus a second grid whose
rows the GRID-01 supervisor must not see; the role logs in, and every documented operation is
called with generated requests, valid and invalid. Path ids are drawn from the seeded rows as
well as made up, so that answers about real rows are checked too. Checks: no 5xx, and every
answer's status, content type and body are the ones /openapi.json documents.

The generation is bounded (EXAMPLES per operation in the fuzzing phase, plus the examples and
coverage phases' own finite cases) and derandomised with a fixed seed: a run is repeatable and
takes about 90 s for both databases and all roles on a 2-core machine.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import strategies as st
from schemathesis.checks import load_all_checks
from schemathesis.specs.openapi import checks as openapi_checks
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from common.contract import APP_VERSION_HEADER, CONTRACT_VERSION_HEADER
from server.core.config import Settings
from server.demo.utility import USERS, load_demo
from server.main import create_app
from server.models import Account, Assignment, Device, Flag, Job, User
from tests.factories import assign, auth, make_route, make_user, reader_day, reading

PUSH = "/api/v1/sync/push"

load_all_checks()  # the checks below are attributes schemathesis fills in on first load

ROLES = ("admin", "supervisor", "reader", "crew", "agent")
# Generated requests per operation in the fuzzing phase; the examples and coverage phases add
# their own (finite) cases. CI keeps the default; to search harder locally, raise it or change
# the seed: GRIDWALK_FUZZ_EXAMPLES=200 GRIDWALK_FUZZ_SEED=7 pytest tests/server/test_schemathesis.py
EXAMPLES = int(os.environ.get("GRIDWALK_FUZZ_EXAMPLES", "10"))
SEED = int(os.environ.get("GRIDWALK_FUZZ_SEED", "20261101"))
CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        # Hypothesis times the generation of inputs; on a busy 2-core machine that is the
        # machine's speed, which must decide nothing (request time has no deadline either).
        "suppress-health-check": ["too_slow"],
        # Schemathesis gives a request 10 s by default; on a shared machine a GET queued behind
        # the validation worker's write lock took longer. Slowness is not what this test finds.
        "request-timeout": 600,
        "generation": {
            "max-examples": EXAMPLES,
            "deterministic": True,
            # No .hypothesis directory: each run is the same run, nothing replayed from the last.
            "database": "none",
        },
    }
)
# What a handheld sends on every sync and auth request; contract 1, the one whose push body the
# OpenAPI schema describes (contract 2's compact body is tested in tests/server/test_sync_wire.py).
CLIENT_HEADERS = {CONTRACT_VERSION_HEADER: "1", APP_VERSION_HEADER: "1.0.0"}
CHECKS = [
    schemathesis.checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
]


@dataclass
class Seeded:
    """The caller's token, and real values for each path parameter name."""

    role: str
    bearer: dict[str, str]
    path_values: dict[str, list[Any]]
    calls: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)


def _seed(session: Session, settings: Settings) -> None:
    load_demo(session, settings)
    # A second grid with its own reader and route: the GRID-01 supervisor's ids that hit it
    # must be refused, not answered.
    make_user(session, settings, "supervisor2", "supervisor", grid_code="GRID-02")
    make_user(session, settings, "reader3", "reader", grid_code="GRID-02")
    make_route(session, "R-201", 4, grid_code="GRID-02")
    assign(session, "R-201", "reader3")


def _path_values(session: Session, *, username: str, device_id: str) -> dict[str, list[Any]]:
    # The caller's own user and device are left out: an admin fuzzed into revoking itself
    # would test nothing but 401 from then on.
    values: dict[str, list[Any]] = {
        "assignment_id": list(session.exec(select(Assignment.id))),
        "flag_id": list(session.exec(select(Flag.id))),
        "job_id": [str(j) for j in session.exec(select(Job.id))],
        "account_no": list(session.exec(select(Account.account_no).limit(20))),
        "username": list(session.exec(select(User.username).where(User.username != username))),
        "device_id": list(session.exec(select(Device.id).where(col(Device.id) != device_id))),
    }
    session.commit()
    return values


@pytest.fixture(autouse=True)
def _nodeid_for_schemathesis(request: pytest.FixtureRequest) -> None:
    # schemathesis 4.32's lazy (fixture) schema reads and renames `item._nodeid`, which pytest
    # 9.2 no longer has; it only labels the per-operation subtests, so give it a copy to use.
    request.node._nodeid = request.node.nodeid


@pytest.fixture(params=ROLES)
def seeded(
    request: pytest.FixtureRequest, settings: Settings, engine: Engine, session: Session
) -> Iterator[Seeded]:
    role = str(request.param)
    _seed(session, settings)
    session.commit()
    user = next(u for u in USERS if u.role == role)
    device_id = f"schemathesis-{role}"
    with TestClient(create_app(settings, engine)) as client:
        answer = client.post(
            "/api/v1/auth/login",
            json={"username": user.username, "password": user.password, "device_id": device_id},
        )
        assert answer.status_code == 200, answer.text
        bearer = {"Authorization": f"Bearer {answer.json()['access_token']}"}
        seeded = Seeded(
            role, bearer, _path_values(session, username=user.username, device_id=device_id)
        )
        yield seeded
        # The run is only worth something while the role stayed logged in: a fuzzed logout
        # or revoke that ended its access would leave every later call a 401.
        still = client.get("/api/v1/jobs/00000000-0000-0000-0000-000000000000", headers=bearer)
        assert still.status_code != 401, still.text
    print(
        f"\n[schemathesis] {request.node.callspec.id}: {len(seeded.calls)} operations, "
        f"{sum(seeded.calls.values())} requests; statuses {dict(sorted(seeded.statuses.items()))}"
    )


def _with(headers: Any, real: dict[str, str]) -> Any:
    # A negative case arrives wrapped (schemathesis' GeneratedValue): left as it is.
    if headers is None or isinstance(headers, dict):
        return {**(headers or {}), **real}
    return headers


@pytest.fixture
def api(settings: Settings, engine: Engine, seeded: Seeded) -> Any:
    schema = schemathesis.openapi.from_asgi(
        "/openapi.json", create_app(settings, engine), config=CONFIG
    )

    @schema.hook
    def before_generate_path_parameters(context: Any, strategy: Any) -> Any:
        names = [p.name for p in context.operation.path_parameters]
        if not names or any(not seeded.path_values.get(n) for n in names):
            return strategy
        real = st.fixed_dictionaries({n: st.sampled_from(seeded.path_values[n]) for n in names})
        return st.one_of(real, strategy)

    @schema.hook
    def before_generate_headers(context: Any, strategy: Any) -> Any:
        # Half the time the app's real version headers: made-up ones are a 426 before the
        # body is even read, and the body is what is worth fuzzing.
        names = {p.name for p in context.operation.headers}
        real = {h: v for h, v in CLIENT_HEADERS.items() if h in names}
        if not real:
            return strategy
        return st.one_of(strategy.map(lambda headers: _with(headers, real)), strategy)

    return schema


# Logging out ends the caller's own session at once (refresh and access tokens alike), after
# which every later call would be a 401: it is not fuzzed but tested on its own in
# tests/server/test_auth.py.
schema = schemathesis.pytest.from_fixture("api").exclude(path="/api/v1/auth/logout")


@schema.parametrize()
def test_every_answer_is_documented_and_no_server_error(case: Any, seeded: Seeded) -> None:
    response = case.call(headers=seeded.bearer)
    seeded.calls[case.operation.label] += 1
    seeded.statuses[response.status_code] += 1
    case.validate_response(response, checks=CHECKS, headers=seeded.bearer)


# ------------------------------------------------------------------ what the fuzzing found
# Each finding also gets a plain test, so that it stays fixed when the generation changes.


@pytest.mark.parametrize("row_id", [2**31, 2**63 - 2], ids=["int32+1", "int64-1"])
def test_a_row_id_no_integer_key_can_hold_is_a_422_naming_it_not_a_500(
    client: TestClient, session: Session, settings: Settings, row_id: int
) -> None:
    """PostgreSQL's INTEGER keys refused to be compared with 2**31 and beyond: a 500."""
    day = reader_day(session, settings, client)
    make_user(session, settings, "sup1", "supervisor", grid_code="G1")
    supervisor = auth(client, "sup1", "sup-desk-01")
    answers = {
        "assignment_id": client.get(f"/api/v1/audit/assignments/{row_id}", headers=supervisor),
        "flag_id": client.post(
            f"/api/v1/audit/flags/{row_id}/review",
            headers=supervisor,
            json={"decision": "accepted", "note": "seen"},
        ),
        "meter_id": client.post(
            f"/api/v1/audit/assignments/{day.assignment.id}/rereads",
            headers=supervisor,
            json={"meter_id": row_id, "reason": "smudged"},
        ),
    }
    for name, answer in answers.items():
        assert answer.status_code == 422, (name, answer.text)
        assert name in answer.text
    assert day.assignment.id is not None
    good = reading(day.assignment.id, day.meters[0])
    bad = reading(day.assignment.id, day.meters[1]) | {"meter_id": row_id}
    pushed = client.post(PUSH, headers=day.headers, json={"readings": [good, bad]})
    assert pushed.status_code == 200, pushed.text
    first, second = pushed.json()["results"]
    assert first["status"] == "accepted"
    assert (second["status"], second["error"]) == ("rejected", "invalid")
    assert "meter_id" in second["detail"]


@pytest.mark.parametrize("path", ["/api/v1/auth/login", "/api/v1/jobs", "/api/v1/admin/grids"])
def test_a_body_that_is_not_utf8_is_a_documented_400_with_a_code(
    client: TestClient, path: str
) -> None:
    """FastAPI's own 400 had no `code` and was not in /openapi.json."""
    answer = client.post(
        path, content=b'{"username": "\xff\xfe"}', headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 400
    assert answer.json() == {
        "detail": "There was an error parsing the body",
        "code": "unreadable_body",
    }
    documented = client.get("/openapi.json").json()["paths"][path]["post"]["responses"]
    assert documented["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }


@pytest.mark.parametrize(
    ("export", "media_type"),
    [
        ("track.gpx", "application/gpx+xml"),
        ("track.geojson", "application/geo+json"),
        ("readings.csv", "text/csv"),
    ],
)
def test_an_export_documents_its_file_type_and_its_errors_as_json(
    client: TestClient, session: Session, settings: Settings, export: str, media_type: str
) -> None:
    """The exports' errors were documented as text/plain, the GeoJSON as application/json."""
    day = reader_day(session, settings, client)
    make_user(session, settings, "sup1", "supervisor", grid_code="G1")
    supervisor = auth(client, "sup1", "sup-desk-01")
    path = f"/api/v1/audit/assignments/{day.assignment.id}/{export}"
    ok = client.get(path, headers=supervisor)
    refused = client.get(path)
    assert ok.status_code == 200
    assert ok.headers["content-type"].split(";")[0] == media_type
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/json"
    documented = client.get("/openapi.json").json()["paths"][
        f"/api/v1/audit/assignments/{{assignment_id}}/{export}"
    ]["get"]["responses"]
    assert list(documented["200"]["content"]) == [media_type]
    assert {
        status: list(answer["content"]) for status, answer in documented.items() if status != "200"
    } == {status: ["application/json"] for status in documented if status != "200"}
